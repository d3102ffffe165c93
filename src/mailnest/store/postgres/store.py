"""PostgresStore: the team store. Several mailnest nodes share one database; each gives the same answers as
SQLiteStore (the conformance suite in tests/store/conformance holds both to that).

Connections come from a psycopg AsyncConnectionPool (autocommit; a write is one explicit transaction). Every
write also bumps the change counter and NOTIFYs the other nodes in the same transaction (notify.py) and, once
committed, publishes its events on this node's hub. Ingest is group commit (ingest.py), IMAP in imap.py, tags in
tags.py, the search language in query.py, the layout in schema.py.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Any, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from ... import events, mime
from ...config import tenant_problem
from ...events import Event, Hub
from ...models import Attachment, Envelope, Message, Page, Stats, Summary
from .. import codec, shared
from ..base import FolderInfo, Mailbox, Mailboxes, MailboxInfo, Query, StoreUnavailableError
from ..faithful import faithful_text
from ..shared import among_where, newest_first
from ..sqlite.prepare import _parse_or_empty
from ..sqlite.rows import _SUMMARY_COLUMNS, _SUMMARY_WIDTH, _utc, envelope_from_json, summary_from_row
from . import notify, schema
from . import query as compiler
from .errors import store_error
from .imap import ImapMixin
from .ingest import IngestMixin, _text
from .retention import RetentionMixin
from .spaces import SpaceMixin
from .tags import TagMixin
from .work import WorkMixin

log = logging.getLogger(__name__)
T = TypeVar("T")


def _parse_decoded(stored: bytes, raw_codec: int) -> mime.Parsed:
    """In a parse thread: the parse of a stored message, decoded first (codec.py)."""
    return _parse_or_empty(codec.decode(stored, raw_codec))


DEFAULT_SCHEMA = "mailnest"
_POOL_MIN, _POOL_MAX = 2, 10
CONNECT_TIMEOUT = 5.0  # seconds a call waits for a connection before it raises StoreUnavailableError
# While the database is known to be down (the last call found it so), calls wait only this long: a 451 or 503
# should not take seconds each. The first call that gets a connection ends the episode.
DOWN_TIMEOUT = 0.5
# The pool keeps trying to reconnect in the background with doubling delays; past this many seconds it starts a
# fresh attempt at the shortest delay, so recovery after a long outage is as quick as after a short one.
RECONNECT_EVERY = 3.0
CHECK_AFTER = 1.0  # seconds: a connection idle for longer is tested before it is lent again


class Tx:
    """One write transaction: its connection, and the events it will publish once committed."""

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self.conn = conn
        self.events: list[Event] = []
        self.added: list[int] = []  # uids of new rows (the listener must not announce them again)

    def emit(self, event: Event) -> None:
        self.events.append(event)

    async def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = await self.conn.execute(sql, _params(params))
        return await cur.fetchall()

    async def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        cur = await self.conn.execute(sql, _params(params))
        return await cur.fetchone()

    async def run(self, sql: str, params: Sequence[Any] = ()) -> int:
        cur = await self.conn.execute(sql, _params(params))
        return cur.rowcount


def _params(params: Sequence[Any]) -> Sequence[Any]:
    """Text parameters as ingest stored them (a NUL, which PostgreSQL text cannot hold, as U+FFFD): a lookup by
    an id or a mailbox holding a NUL finds nothing, as on SQLite, instead of failing."""
    if not any((isinstance(p, str) and "\x00" in p) or isinstance(p, list) for p in params):
        return params
    return [_text(p) if isinstance(p, str) else [_text(v) for v in p] if isinstance(p, list) else p
            for p in params]


def schema_name(tenant: str | None) -> str:
    if tenant is None:
        return DEFAULT_SCHEMA
    problem = tenant_problem(tenant) if isinstance(tenant, str) else f"{tenant!r} is not a name"
    if problem:
        raise ValueError(f"tenant {problem}")
    return tenant


class PostgresStore(ImapMixin, TagMixin, IngestMixin, RetentionMixin, WorkMixin, SpaceMixin):
    def __init__(self, url: str, hub: Hub, *, max_messages: int = 0, max_age: float | None = None,
                 tenant: str | None = None) -> None:
        self.hub = hub
        self.url = str(url)
        self.schema = schema_name(tenant)
        self.max_messages = max_messages
        self.max_age = max_age
        self.uidvalidity = 0
        self.node = os.urandom(8).hex()  # tells this node's NOTIFYs from the others'
        self.channel = f"mailnest_{self.schema}"
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._search_path = ""
        self._listener: notify.Listener | None = None
        self._age_task: asyncio.Task[None] | None = None
        self._space_task: asyncio.Task[None] | None = None
        self._tags: tuple[str, ...] | None = None  # every tag in use; None until read, reset by tag changes
        self._tags_generation = 0
        self._closed = False
        self._started = False
        self._down = False  # the last call found the database unreachable
        # when each pooled connection was last given back in good order (see _check)
        self._returned: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = weakref.WeakKeyDictionary()
        self.ignore_duplicate_ids = False
        self.use_message_dates = False
        self.compress = False
        self.duplicates_ignored = 0  # add() calls answered DuplicateMessageError since start, on this node
        self.login_patterns: dict[str, tuple[str, ...]] = {}  # configure_logins
        self._init_ingest()

    def configure_ingest(self, *, ignore_duplicate_ids: bool = False, use_message_dates: bool = False,
                         compress: bool = False) -> None:
        self.ignore_duplicate_ids = ignore_duplicate_ids
        self.use_message_dates = use_message_dates
        self.compress = compress

    def configure_logins(self, patterns: Mapping[str, Sequence[str]]) -> None:
        self.login_patterns = {login.lower(): tuple(p.lower() for p in values)
                               for login, values in patterns.items() if values}

    def login_mailbox(self, login: str | None) -> Mailbox:
        return shared.login_mailbox(login, self.login_patterns)

    # -- life cycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            async with await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                             connect_timeout=int(CONNECT_TIMEOUT)) as conn:
                await schema.migrate(conn, self.schema)
                self._search_path = await schema.search_path(conn, self.schema)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(f"cannot open the PostgreSQL database: {exc}") from exc
        self._pool = AsyncConnectionPool(
            self.url, min_size=_POOL_MIN, max_size=_POOL_MAX, open=False, timeout=CONNECT_TIMEOUT,
            # Plans for the values at hand: one generic plan for every word of a search shape was up to 40x slower
            # for short or common words (psycopg prepares a statement after its fifth run). No JIT: it cost 9-18 ms
            # of 50 on the queries it picked. Ingest batches choose generic plans for themselves (SET LOCAL).
            kwargs={"autocommit": True, "options": f"-c search_path={self._search_path} "
                                                   "-c plan_cache_mode=force_custom_plan -c jit=off",
                    "connect_timeout": int(CONNECT_TIMEOUT)},
            check=self._check, reconnect_timeout=RECONNECT_EVERY,
            name=f"mailnest-{self.schema}")
        try:
            await self._pool.open(wait=True, timeout=CONNECT_TIMEOUT * 2)
        except psycopg.OperationalError as exc:
            raise StoreUnavailableError(f"cannot connect to the PostgreSQL database: {exc}") from exc
        self.uidvalidity = await self._write(self._uidvalidity, announce=False)
        if self.ignore_duplicate_ids:
            await self._write(self._claim_existing_message_ids, announce=False)
        self.hub.add_listener(self._forget_tags_on_change)
        self._listener = notify.Listener(
            self.url, self._search_path, self.channel, self.node, self.hub, summaries=self.summaries_by_uid,
            rows_above=self._rows_above, counters=self._counters, stats=self.stats, on_lost=self._lost)
        self._listener.start()
        self._start_ingest()
        if self.max_age:
            self._age_task = asyncio.create_task(self._age_loop(), name="mailnest-postgres-retention")
        self._space_task = asyncio.create_task(self._space_loop(), name="mailnest-postgres-space-retention")
        self._started = True

    @staticmethod
    async def _claim_existing_message_ids(tx: Tx) -> None:
        """With ignore_duplicate_ids, at start: the Message-IDs of delivered mail stored while it was off (by
        this node or another), so that duplicates of those are recognised too; the earliest of each is kept."""
        await tx.run("INSERT INTO message_ids (message_id, uid) SELECT message_id, min(uid) FROM messages "
                     "WHERE folder = '' AND owner = '' AND message_id != '' GROUP BY message_id "
                     "ON CONFLICT DO NOTHING")

    @staticmethod
    async def _uidvalidity(tx: Tx) -> int:
        await tx.run("INSERT INTO meta (key, value) VALUES ('uidvalidity', %s) ON CONFLICT DO NOTHING",
                     (str(int(time.time())),))
        row = await tx.one("SELECT value FROM meta WHERE key = 'uidvalidity'")
        assert row is not None
        return int(row[0])

    async def wait_listening(self, timeout: float = 30.0) -> None:
        """Until the LISTEN connection is up (changes by other nodes reach this hub from then on)."""
        assert self._listener is not None, "store not started"
        await asyncio.wait_for(self._listener.connected.wait(), timeout)

    @property
    def listener(self) -> notify.Listener:
        assert self._listener is not None, "store not started"
        return self._listener

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._age_task:
            self._age_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._age_task
        if self._space_task:
            self._space_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._space_task
        await self._stop_ingest()
        if self._listener is not None:
            await self._listener.close()
        if self._started:
            self.hub.remove_listener(self._forget_tags_on_change)
        if self._pool is not None:
            await self._pool.close()

    # -- connections ------------------------------------------------------------------------------------

    async def _check(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The pool's test of a connection it lends: a round trip, skipped for one given back in good order
        within CHECK_AFTER seconds (under load that round trip was a third of the database's CPU per batch; a
        connection the server dropped meanwhile fails its call, which the caller sees as unavailable, and the
        pool replaces it)."""
        returned = self._returned.get(conn)
        if returned is not None and time.monotonic() - returned < CHECK_AFTER:
            return
        await AsyncConnectionPool.check_connection(conn)

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        if self._pool is None or self._pool.closed:  # not `_closed`: close() lets queued adds finish first
            raise RuntimeError("the store is closed")
        try:
            async with self._pool.connection(timeout=DOWN_TIMEOUT if self._down else CONNECT_TIMEOUT) as conn:
                self._down = False
                self._returned.pop(conn, None)
                yield conn
                if conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
                    self._returned[conn] = time.monotonic()
        except Exception as exc:
            error = store_error(exc)
            if error is exc:
                raise
            if not self._down:
                log.warning("%s; calls fail fast until it is back", error)
            self._down = True
            raise error from exc

    async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T:
        async with self._connection() as conn:
            return await fn(Tx(conn))

    async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, announce: bool = True,
                     pipeline: bool = False) -> T:
        """fn(tx) in one transaction; then its events are NOTIFYed (same transaction) and published here.
        `pipeline` sends statements without waiting for each one's answer (psycopg's pipeline mode: only
        reading a result waits), so BEGIN goes with the first statement and the NOTIFY with the COMMIT."""
        async with self._connection() as conn:
            tx = Tx(conn)
            if pipeline:
                # BEGIN and COMMIT by hand: psycopg's transaction() waits for each in pipeline mode (six round
                # trips a batch, measured with strace; two now), and round trips were most of the database's
                # CPU per batch.
                try:
                    async with conn.pipeline():
                        await conn.execute("BEGIN")
                        # The same statements every batch: planning them again each time (PostgreSQL keeps
                        # choosing custom plans for array parameters) was a sixth of the database's CPU.
                        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                        result = await fn(tx)
                        sent = await notify.announce(conn, self.channel, self.node, tx.events) if announce else None
                        await conn.execute("COMMIT")
                except BaseException:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        with contextlib.suppress(Exception):
                            await conn.execute("ROLLBACK")
                    raise
            else:
                async with conn.transaction():
                    result = await fn(tx)
                    sent = await notify.announce(conn, self.channel, self.node, tx.events) if announce else None
            counter = await notify.counter(sent)
        if announce and self._listener is not None:
            self._listener.own_commit(counter, tx.added)
        for event in tx.events:
            self.hub.publish(event)
        return result

    def _lost(self) -> None:
        """The LISTEN connection dropped: the server is likely gone, so calls fail fast until one gets through."""
        self._down = True

    async def _counters(self) -> tuple[int, int]:
        async def run(tx: Tx) -> tuple[int, int]:
            row = await tx.one("SELECT (SELECT changes FROM totals), (SELECT coalesce(max(uid), 0) FROM messages)")
            assert row is not None
            return int(row[0]), int(row[1])

        return await self._read(run)

    async def _rows_above(self, uid: int, limit: int) -> builtins.list[tuple[int, str, str]]:
        async def run(tx: Tx) -> list[tuple[int, str, str]]:
            return [(int(r[0]), r[1], r[2]) for r in await tx.all(
                "SELECT uid, id, folder FROM messages WHERE uid > %s ORDER BY uid LIMIT %s", (uid, limit))]

        return await self._read(run)

    # -- tags cache ---------------------------------------------------------------------------------------

    def _forget_tags_on_change(self, event: events.Event) -> None:
        if (isinstance(event, events.MessageAdded) and event.summary.tags) or isinstance(event, (
                events.MessagesDeleted, events.MessagesPruned, events.AllDeleted, events.TagsChanged,
                events.StatsChanged)):
            self._tags_generation += 1
            self._tags = None

    async def _all_tags(self, tx: Tx) -> tuple[str, ...]:
        """Every tag in use, sorted (by code point, as SQLite); kept until an event says tags may have changed."""
        tags, generation = self._tags, self._tags_generation
        if tags is None:
            rows = await tx.all("SELECT DISTINCT j.value COLLATE \"C\" FROM messages m, "
                                "jsonb_array_elements_text(m.tags::jsonb) AS j(value) WHERE m.tags != '[]' ORDER BY 1")
            tags = tuple(r[0] for r in rows)
            if generation == self._tags_generation:
                self._tags = tags
        return tags

    # -- reading ---------------------------------------------------------------------------------------

    async def list(self, *, query: Query = "", mailbox: Mailbox = None, start: int = 0, limit: int = 50,
                   tz: tzinfo | None = None) -> Page:
        base_where, base_params = compiler.view(mailbox, "")
        where, params = compiler.view(mailbox, query, tz)

        async def run(tx: Tx) -> Page:
            counts = "SELECT count(*), count(*) FILTER (WHERE m.read = 0) FROM messages m WHERE "
            # All delivered mail: the totals row the triggers keep (counting 100,000 rows took ~0.3 s)
            row = await tx.one("SELECT total, unread FROM totals" if not mailbox else counts + base_where,
                               base_params if mailbox else ())
            assert row is not None
            total, unread = row
            if where == base_where:
                matching, matching_unread = total, unread
            else:
                row = await tx.one(counts + where, params)
                assert row is not None
                matching, matching_unread = row
            rows = [] if start >= matching or limit <= 0 else await tx.all(  # nothing to show: no second scan
                f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE {where} "
                f"ORDER BY {newest_first(self.use_message_dates)} LIMIT %s OFFSET %s",
                [*params, limit, start])
            return Page(total=total, unread=unread, messages_count=matching, start=start,
                        messages=tuple(summary_from_row(r) for r in rows), tags=await self._all_tags(tx),
                        messages_unread=matching_unread)

        return await self._read(run)

    async def get(self, id: str) -> Message | None:
        async def run(tx: Tx) -> Message | None:
            row = await tx.one(
                f"SELECT {_SUMMARY_COLUMNS}, m.sent, m.envelope_json, m.flags, b.text, b.html, b.extra_json "
                "FROM messages m JOIN bodies b ON b.uid = m.uid WHERE m.id = %s", (id,))
            if row is None:
                return None
            summary = summary_from_row(row[:_SUMMARY_WIDTH])
            sent, envelope_json, flags, text, html, extra_json = row[_SUMMARY_WIDTH:]
            extra = json.loads(extra_json)
            if extra.get("bodies_in_raw"):
                stored = await tx.one("SELECT raw, raw_codec FROM bodies WHERE uid = %s", (summary.uid,))
                assert stored is not None
                parsed = await asyncio.get_running_loop().run_in_executor(
                    self._parse_pool, _parse_decoded, stored[0], stored[1])
                text, html = parsed.text, parsed.html
            return Message(
                summary=summary, date=_utc(sent) if sent is not None else None, text=text, html=html,
                attachments=tuple(Attachment(**a) for a in extra.get("attachments", [])),
                inline=tuple(Attachment(**a) for a in extra.get("inline", [])),
                envelope=envelope_from_json(envelope_json), return_path=extra.get("return_path", ""),
                list_unsubscribe=extra.get("list_unsubscribe", ""),
                flags=(("\\Seen",) if summary.read else ()) + tuple(flags.split()),
            )

        return await self._read(run)

    async def raw(self, id: str) -> bytes | None:
        async def run(tx: Tx) -> bytes | None:
            row = await tx.one("SELECT b.raw, b.raw_codec FROM messages m JOIN bodies b ON b.uid = m.uid "
                               "WHERE m.id = %s", (id,))
            return (await self._decoded([(id, row[0], row[1])]))[id] if row else None

        return await self._read(run)

    async def raw_with_envelopes(self, ids: Sequence[str]) -> dict[str, tuple[bytes, Envelope]]:
        wanted = builtins.list(dict.fromkeys(ids))

        async def run(tx: Tx) -> dict[str, tuple[bytes, Envelope]]:
            rows = await tx.all("SELECT m.id, b.raw, b.raw_codec, m.envelope_json FROM messages m "
                                "JOIN bodies b ON b.uid = m.uid WHERE m.id = ANY(%s)", (wanted,))
            raws = await self._decoded([(id_, raw, raw_codec) for id_, raw, raw_codec, _ in rows])
            return {id_: (raws[id_], envelope_from_json(envelope_json)) for id_, _, _, envelope_json in rows}

        return await self._read(run)

    async def latest(self, *, query: Query = "", mailbox: Mailbox = None,
                     tz: tzinfo | None = None) -> Summary | None:
        page = await self.list(query=query, mailbox=mailbox, limit=1, tz=tz)
        return page.messages[0] if page.messages else None

    async def count(self, *, query: Query = "", mailbox: Mailbox = None, tz: tzinfo | None = None) -> int:
        where, params = compiler.view(mailbox, query, tz)

        async def run(tx: Tx) -> int:
            row = await tx.one(f"SELECT count(*) FROM messages m WHERE {where}", params)
            return int(row[0]) if row else 0

        return await self._read(run)

    async def stats(self, *, mailbox: Mailbox = None) -> Stats:
        where, params = compiler.view(mailbox, "")

        async def run(tx: Tx) -> Stats:
            if mailbox:
                row = await tx.one("SELECT count(*), count(*) FILTER (WHERE m.read = 0), coalesce(sum(m.size), 0) "
                                   f"FROM messages m WHERE {where}", params)
            else:  # kept by triggers (schema.py)
                row = await tx.one("SELECT total, unread, size FROM totals")
            assert row is not None
            return Stats(total=int(row[0]), unread=int(row[1]), size=int(row[2]), tags=await self._all_tags(tx))

        return await self._read(run)

    async def mailboxes(self) -> builtins.list[MailboxInfo]:
        async def run(tx: Tx) -> list[MailboxInfo]:
            rows = await tx.all(
                "SELECT r.mailbox, count(*), count(*) FILTER (WHERE m.read = 0), max(m.created) FROM recipients r "
                "JOIN messages m ON m.uid = r.uid WHERE m.folder = '' GROUP BY r.mailbox "
                "ORDER BY r.mailbox COLLATE \"C\"")
            return [MailboxInfo(r[0], int(r[1]), int(r[2]), _utc(r[3]) if r[3] is not None else None)
                    for r in rows]

        return await self._read(run)

    async def folders(self) -> builtins.list[FolderInfo]:
        async def run(tx: Tx) -> list[FolderInfo]:
            rows = await tx.all(
                "SELECT name, owner, sum(total), sum(unread) FROM ("
                " SELECT folder AS name, owner, count(*) AS total, count(*) FILTER (WHERE read = 0) AS unread"
                " FROM messages WHERE folder != '' GROUP BY folder, owner"
                " UNION ALL SELECT name, owner, 0, 0 FROM imap_folders"
                ") AS f GROUP BY name, owner ORDER BY name COLLATE \"C\", owner COLLATE \"C\"")
            return [FolderInfo(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

        return await self._read(run)

    async def summaries_by_uid(self, uids: Sequence[int]) -> builtins.list[Summary]:
        wanted = builtins.list(uids)

        async def run(tx: Tx) -> list[Summary]:
            rows = await tx.all(f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE m.uid = ANY(%s)", (wanted,))
            found = {int(r[0]): summary_from_row(r) for r in rows}
            return [found[u] for u in wanted if u in found]

        return await self._read(run)

    async def uids(self, *, mailbox: Mailbox = None, query: Query = "") -> builtins.list[int]:
        where, params = compiler.view(mailbox, query)

        async def run(tx: Tx) -> list[int]:
            return [int(r[0]) for r in await tx.all(f"SELECT m.uid FROM messages m WHERE {where} ORDER BY m.uid",
                                                    params)]

        return await self._read(run)

    async def id_for_uid(self, uid: int) -> str | None:
        async def run(tx: Tx) -> str | None:
            row = await tx.one("SELECT id FROM messages WHERE uid = %s", (uid,))
            return str(row[0]) if row else None

        return await self._read(run)

    async def among(self, ids: Sequence[str], mailbox: Mailboxes) -> builtins.list[str]:
        wanted = builtins.list(dict.fromkeys(i for i in ids if "\x00" not in i))  # a NUL finds nothing

        async def run(tx: Tx) -> set[str]:
            held: set[str] = set()
            for at in range(0, len(wanted), 1000):
                where, params = among_where(wanted[at:at + 1000], mailbox, "%s", "ascii_lower")
                held.update(str(r[0]) for r in await tx.all(f"SELECT m.id FROM messages m WHERE {where}", params))
            return held

        held = await self._read(run) if wanted else set()
        return [i for i in wanted if i in held]

    # -- changing --------------------------------------------------------------------------------------

    async def set_read(self, ids: Sequence[str], read: bool) -> builtins.list[str]:
        wanted = builtins.list(dict.fromkeys(ids))

        async def run(tx: Tx) -> list[str]:
            rows = await tx.all("UPDATE messages SET read = %s WHERE id = ANY(%s) AND read != %s RETURNING uid, id",
                                (int(read), wanted, int(read)))
            order = {id_: n for n, id_ in enumerate(wanted)}
            changed = sorted(((int(u), i) for u, i in rows), key=lambda r: order[r[1]])
            if changed:
                tx.emit(events.ReadChanged(tuple(i for _, i in changed), tuple(u for u, _ in changed), read))
            return [i for _, i in changed]

        return await self._write(run)

    async def set_read_matching(self, read: bool, *, query: Query = "", mailbox: Mailbox = None,
                                tz: tzinfo | None = None) -> builtins.list[str]:
        where, params = compiler.view(mailbox, query, tz)

        async def run(tx: Tx) -> list[str]:
            rows = await tx.all(f"UPDATE messages AS m SET read = %s WHERE {where} AND m.read != %s "
                                "RETURNING m.uid, m.id", [int(read), *params, int(read)])
            changed = sorted((int(u), i) for u, i in rows)
            if changed:
                tx.emit(events.ReadChanged(tuple(i for _, i in changed), tuple(u for u, _ in changed), read))
            return [i for _, i in changed]

        return await self._write(run)

    @staticmethod
    async def _delete_rows(tx: Tx, where: str, params: Sequence[Any], *,
                           pruned: bool = False) -> builtins.list[tuple[int, str]]:
        """Delete the messages `where` picks (over `messages AS m`), in uid order; emits the matching event."""
        rows = await tx.all(f"DELETE FROM messages AS m WHERE {where} RETURNING m.uid, m.id", params)
        deleted = sorted((int(u), i) for u, i in rows)
        if deleted:
            ids, uids = tuple(i for _, i in deleted), tuple(u for u, _ in deleted)
            tx.emit(events.MessagesPruned(ids, uids) if pruned else events.MessagesDeleted(ids, uids))
        return deleted

    async def delete(self, ids: Sequence[str]) -> builtins.list[str]:
        wanted = builtins.list(dict.fromkeys(ids))
        deleted = await self._write(lambda tx: self._delete_rows(tx, "m.id = ANY(%s)", (wanted,)))
        return [i for _, i in deleted]

    async def delete_matching(self, *, query: Query = "", mailbox: Mailbox = None,
                              tz: tzinfo | None = None) -> builtins.list[str]:
        where, params = compiler.view(mailbox, query, tz)
        deleted = await self._write(lambda tx: self._delete_rows(tx, where, params))
        return [i for _, i in deleted]

    async def delete_all(self) -> int:
        async def run(tx: Tx) -> int:
            count = await tx.run("DELETE FROM messages WHERE folder = ''")
            tx.emit(events.AllDeleted())
            return count

        return await self._write(run)

    async def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> builtins.list[str]:
        tag_json = json.dumps(builtins.list(dict.fromkeys(faithful_text(t) for t in tags if t)), ensure_ascii=False)
        wanted = builtins.list(dict.fromkeys(ids))

        async def run(tx: Tx) -> list[str]:
            rows = await tx.all("UPDATE messages SET tags = %s WHERE id = ANY(%s) AND tags != %s RETURNING id",
                                (tag_json, wanted, tag_json))
            found = {r[0] for r in rows}
            changed = [i for i in wanted if i in found]
            if changed:
                tx.emit(events.TagsChanged(tuple(changed), tuple(json.loads(tag_json))))
            return changed

        return await self._write(run)
