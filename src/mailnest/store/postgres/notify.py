"""Events across nodes: every committed change also sends `pg_notify` (in its own transaction), and each store
LISTENs on a dedicated connection and publishes the other nodes' changes on its own hub.

A payload is small JSON: {"n": node id, "c": change counter, "e": [events]}, each event in the form of
`events.event_to_json`. A MessageAdded carries its summary whole when that fits (a few hundred bytes), so the
other nodes need not read it back: every node reading every other node's new rows cost the database more than
sending them (measured, benchmarks/team_bench.py); one too long for a payload carries id and uid, and the
receiver reads the summary. NOTIFY takes at most 8000 bytes, so long id lists are split across several payloads.

The listener reconnects when its connection drops (a server restart). What happened meanwhile is caught up
from the database: rows above the highest uid it had seen are announced as new (delivered) or filed (folders),
and if the change counter moved further than that explains, a StatsChanged tells every front door to refresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

import psycopg

from ... import events
from ...events import Event, Hub
from ...models import Stats, Summary

log = logging.getLogger(__name__)

PAYLOAD_MAX = 7000  # bytes; PostgreSQL refuses a NOTIFY payload of 8000 or more
_SPLIT_FIELDS = ("ids", "uids", "flags")  # per-message lists, all as long as each other
_RETRY_FIRST, _RETRY_MAX = 0.1, 2.0  # seconds between reconnect attempts, doubling
_OWN_UIDS_KEPT = 100_000
CATCH_UP_MAX = 1000  # new rows announced one by one after a reconnect; beyond, only a StatsChanged
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_HEAD_MAX = 100  # bytes of a payload's wrapping: node id, a counter of up to 20 digits, brackets


def _split(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One event's JSON as pieces that each fit a payload (halving its per-message lists)."""
    if len(_dumps(data).encode()) <= PAYLOAD_MAX:
        return [data]
    lists = [name for name in _SPLIT_FIELDS if isinstance(data.get(name), list) and data[name]]
    length = max((len(data[name]) for name in lists), default=0)
    if length < 2:
        return [data]  # one message's event: cannot be split (never this long in practice)
    half = length // 2
    first = {**data, **{name: data[name][:half] for name in lists}}
    second = {**data, **{name: data[name][half:] for name in lists}}
    return _split(first) + _split(second)


def _pieces(event: Event) -> list[dict[str, Any]]:
    """One event's JSON for payloads: with its summary if that fits one, else without (read back there)."""
    if isinstance(event, events.MessageAdded):
        whole = events.event_to_json(event)
        if len(_dumps(whole).encode()) <= PAYLOAD_MAX - _HEAD_MAX:
            return [whole]
    return _split(events.event_to_json(event, with_summary=False))


def _head(node: str) -> str:
    """A payload's text up to its counter."""
    return '{"n":' + _dumps(node) + ',"c":'


def _tails(node: str, changes: Iterable[Event]) -> list[str]:
    """What follows the counter in each payload announcing `changes` (in order); every payload stays under
    PAYLOAD_MAX bytes whatever the counter (up to 20 digits)."""
    out: list[str] = []
    batch: list[str] = []
    size = 0
    head = len(_head(node).encode()) + 20 + len(',"e":[]}')
    for event in changes:
        for piece in _pieces(event):
            text = _dumps(piece)
            if batch and head + size + len(text.encode()) + 1 > PAYLOAD_MAX:
                out.append(',"e":[' + ",".join(batch) + "]}")
                batch, size = [], 0
            batch.append(text)
            size += len(text.encode()) + 1
    if batch:
        out.append(',"e":[' + ",".join(batch) + "]}")
    return out


def payloads(node: str, counter: int, changes: Iterable[Event]) -> list[str]:
    """The NOTIFY payloads announcing `changes` (in order), each under PAYLOAD_MAX bytes."""
    return [_head(node) + str(counter) + tail for tail in _tails(node, changes)]


# The counter is bumped and the payloads sent in one statement, so announcing costs no round trip of its own
# (the counter goes into each payload there); the NOTIFYs go out in the order of the array.
_ANNOUNCE = ("WITH c AS (UPDATE totals SET changes = changes + 1 RETURNING changes), "
             "n AS (SELECT pg_notify(%s, %s || c.changes || p) FROM c, unnest(%s::text[]) AS p) "
             "SELECT c.changes, (SELECT count(*) FROM n) FROM c")


async def announce(conn: psycopg.AsyncConnection[Any], channel: str, node: str,
                   changes: Sequence[Event]) -> psycopg.AsyncCursor[Any] | None:
    """Inside a write transaction that changed something: bump the change counter and NOTIFY the other nodes.
    Returns the cursor whose row holds the counter (read it with `counter()`, after the COMMIT in pipeline
    mode), or None when there is nothing to announce."""
    if not changes:
        return None
    return await conn.execute(_ANNOUNCE, (channel, _head(node), _tails(node, changes)))


async def counter(cur: psycopg.AsyncCursor[Any] | None) -> int:
    """The change counter an `announce()` reached (0 for None: nothing was announced)."""
    if cur is None:
        return 0
    row = await cur.fetchone()
    return int(row[0]) if row else 0


# (uids) -> their summaries; (after uid, limit) -> (uid, id, folder) of the rows above it; () -> (changes, max uid)
SummaryReader = Callable[[Sequence[int]], Awaitable[list[Summary]]]
RowsAbove = Callable[[int, int], Awaitable[list[tuple[int, str, str]]]]
Counters = Callable[[], Awaitable[tuple[int, int]]]
StatsReader = Callable[[], Awaitable[Stats]]


class Listener:
    """LISTEN on a dedicated connection; publish other nodes' changes on `hub`."""

    def __init__(self, conninfo: str, search_path: str, channel: str, node: str, hub: Hub, *,
                 summaries: SummaryReader, rows_above: RowsAbove, counters: Counters, stats: StatsReader,
                 on_lost: Callable[[], None] = lambda: None) -> None:
        self._conninfo = conninfo
        self._search_path = search_path
        self.channel = channel
        self.node = node
        self.hub = hub
        self._summaries = summaries
        self._rows_above = rows_above
        self._counters = counters
        self._stats = stats
        self._on_lost = on_lost  # the LISTEN connection doubles as a probe: its loss says the server is gone
        self.seen_changes = 0  # the change counter of the newest change this node knows about
        self.seen_uid = 0  # the highest uid of a row this node knows about
        self._own_uids: dict[int, None] = {}  # uids this node added (ordered: the oldest are forgotten)
        self._own_while_away = 0  # changes this node committed while the listener was disconnected
        self.connected = asyncio.Event()
        self.reconnects = 0  # how many times the connection was made again after losing it
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[Any] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mailnest-postgres-listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()

    def own_commit(self, counter: int, added_uids: Iterable[int]) -> None:
        """This node committed change `counter`, adding rows `added_uids`: already published here."""
        if not counter:
            return
        for uid in added_uids:
            self._own_uids[uid] = None
        while len(self._own_uids) > _OWN_UIDS_KEPT:
            del self._own_uids[next(iter(self._own_uids))]
        if not self.connected.is_set():
            self._own_while_away += 1

    async def _run(self) -> None:
        delay = _RETRY_FIRST
        first = True
        while True:
            try:
                self._conn = await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, options=f"-c search_path={self._search_path}")
                await self._conn.execute(f'LISTEN "{self.channel}"')
                await self._catch_up(first)
                if not first:
                    self.reconnects += 1
                    log.warning("LISTEN connection to PostgreSQL restored; caught up on missed changes")
                first = False
                delay = _RETRY_FIRST
                self.connected.set()
                async for notice in self._conn.notifies():
                    await self._receive(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if self.connected.is_set():
                    log.warning("LISTEN connection to PostgreSQL lost (%s); reconnecting", exc)
                    self._on_lost()
                self.connected.clear()
            finally:
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        await self._conn.close()
                    self._conn = None
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)

    async def _catch_up(self, first: bool) -> None:
        changes, max_uid = await self._counters()
        if first:
            self.seen_changes, self.seen_uid = changes, max_uid
            return
        above = await self._rows_above(self.seen_uid, CATCH_UP_MAX + 1)
        flood = len(above) > CATCH_UP_MAX  # away for long: one "look again" beats a flood of events
        missed = [] if flood else [row for row in above if row[0] not in self._own_uids]
        delivered = [uid for uid, _, folder in missed if not folder]
        for summary in await self._summaries(delivered) if delivered else []:
            self.hub.publish(events.MessageAdded(summary), remote=True)
        filed: dict[str, list[tuple[int, str]]] = {}
        for uid, id_, folder in missed:
            if folder:
                filed.setdefault(folder, []).append((uid, id_))
        for folder, rows in filed.items():
            self.hub.publish(events.MessagesFiled(tuple(i for _, i in rows), tuple(u for u, _ in rows), folder),
                             remote=True)
        if flood or changes - self.seen_changes - self._own_while_away > 0:
            # Other nodes changed something while we were away; beyond new rows (reads, deletions, tags) the
            # counter does not say what, so every front door is told to look again.
            self.hub.publish(events.StatsChanged(await self._stats()), remote=True)
        self._own_while_away = 0
        self.seen_changes = max(self.seen_changes, changes)
        self.seen_uid = max(self.seen_uid, max_uid)

    async def _receive(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            node, counter, items = str(data["n"]), int(data["c"]), list(data["e"])
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a NOTIFY payload that is not mailnest's: %.200r", payload)
            return
        try:
            if node != self.node:
                await self._publish(node, items)
        finally:  # only once published: whoever waits for a counter then finds its events on the hub
            self.seen_changes = max(self.seen_changes, counter)
            for item in items:
                uids = item.get("uids") or ([item["uid"]] if "uid" in item else [])
                self.seen_uid = max([self.seen_uid, *(u for u in uids if isinstance(u, int))])

    async def _publish(self, node: str, items: list[Any]) -> None:
        wanted = [int(item["uid"]) for item in items if events.needs_summary(item)]
        found = {s.id: s for s in await self._summaries(wanted)} if wanted else {}
        for item in items:
            try:
                summary_id = events.needs_summary(item)
                if summary_id is not None:
                    summary = found.get(summary_id)
                    if summary is None:
                        continue  # gone again before we could read it: its deletion follows
                    event = events.event_from_json(item, summary)
                else:
                    event = events.event_from_json(item)
            except events.EventError as exc:
                log.warning("ignoring an event from node %s: %s", node, exc)
                continue
            self.hub.publish(event, remote=True)  # another node's change: no once-only work here
