"""Group commit for PostgresStore: concurrent `add()` calls share one transaction, and each returns only after
that COMMIT (so the SMTP 250 follows it).

A message is parsed before it is queued (a small one on the loop, a large one in a parse thread), with exactly
SQLiteStore's parse-and-prepare path, so both backends store the same fields. One writer task takes everything
queued, inserts the batch in one transaction, applies the tag rules, prunes beyond max_messages, NOTIFYs,
commits, and only then resolves each `add()`. In pipeline mode that is two round trips a batch: BEGIN with the
uids drawn from the sequence, then one statement inserting every row of every table (one array a column,
unnested: a row at a time cost the database and this process several times more per message, measured with
benchmarks/team_bench.py and pg_stat_statements) with the NOTIFY and the COMMIT. A batch that fails is retried a message at a time, so one bad message fails alone; a
database that is down fails the batch at once (StoreUnavailableError) without retrying it message by message.
A message no retry can store (a value beyond a database limit, errors.rejected) fails with MessageRejectedError.

A connection lost after the COMMIT was sent leaves its outcome unknown to us: the server may have committed and
its answer been lost on the way. Answering 451 then would make the client send the message again, and store it
twice. So the batch's ids (drawn here, before the insert, and unique) are looked up once the database answers
again, for up to OUTCOME_WAIT seconds: found, the batch was committed and each add() returns its summary (the
250); not found, it was not, and 451 is right. A database still unreachable after OUTCOME_WAIT leaves the outcome
unknown and the answer 451 (logged as possibly stored): a duplicate is better than a loss.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from ... import events, search
from ...models import Envelope, Summary
from .. import codec
from ..base import DuplicateMessageError, StoreFullError, StoreUnavailableError
from ..faithful import faithful_text
from ..sqlite.prepare import PREPARE_ON_LOOP_UP_TO, _Prepared
from ..sqlite.prepare import prepare as prepare_rows
from ..sqlite.rows import _SUMMARY_COLUMNS, summary_from_row
from .errors import rejected, store_error
from .work import insert_work

if TYPE_CHECKING:
    from ..sqlite.work import WorkPlan
    from .store import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")

_BATCH_MAX_MESSAGES = 500
_BATCH_MAX_BYTES = 64 * 1024 * 1024
_PARSE_THREADS = 2
OUTCOME_WAIT = 10.0  # seconds to learn whether a batch whose connection dropped at its COMMIT was committed
_OUTCOME_RETRY = 0.25
# SQLiteStore's parse-and-prepare path (sqlite/prepare.py), shared so both backends store the same fields. Its
# rows are dicts by column name: `messages` (all but uid, folder, owner, flags) and `bodies` (all but uid).
Prepared = _Prepared
# The type of every column the ingest writes that is not text (schema.py; tests/store/postgres checks this
# against the database): an array parameter is cast to it.
COLUMN_TYPES = {"uid": "bigint", "created": "double precision", "sent": "double precision", "size": "bigint",
                "attachments": "integer", "inline": "integer", "read": "integer", "raw": "bytea",
                "raw_codec": "integer"}
SEARCH_COLUMNS = ("uid", *search.CONTENT_COLUMNS, "words")
RECIPIENT_COLUMNS = ("mailbox", "uid")


def search_words(values: Sequence[str]) -> str:
    """search_index.words: each distinct space-separated token of a message's search texts, once (the one
    trigram index covers it; query.py tests each token of a needle there, then the needle on its columns)."""
    return " ".join(dict.fromkeys(token for value in values for token in value.split(" ") if token))


def _unnest(table: str, columns: Sequence[str], suffix: str = "") -> str:
    """An INSERT of many rows from one array parameter a column (binary, cast to the column's type)."""
    arrays = ", ".join(f"%b::{COLUMN_TYPES.get(c, 'text')}[]" for c in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays}){suffix}"


def insert_rows(message_columns: Sequence[str], body_columns: Sequence[str]) -> str:
    """One statement writing a batch's messages, bodies, search rows and recipients (the same text for every
    batch, so the server plans it once per connection)."""
    return (f"WITH m AS ({_unnest('messages', message_columns)}), b AS ({_unnest('bodies', body_columns)}), "
            f"s AS ({_unnest('search_index', SEARCH_COLUMNS)}) "
            f"{_unnest('recipients', RECIPIENT_COLUMNS, ' ON CONFLICT DO NOTHING')}")


@dataclass(slots=True)
class Item:
    """One message to store, as sqlite/prepare.py takes it."""

    raw: bytes
    envelope: Envelope
    tags: tuple[str, ...] = ()
    read: bool = False
    future: asyncio.Future[Summary] | None = None
    prepared: Prepared | None = field(default=None, repr=False)
    use_message_dates: bool = False  # the store's option, carried to the parse thread
    compress: bool = False  # the store's option too: raw bytes stored zstd-compressed (codec.py)


def _text(value: Any) -> Any:
    """A value PostgreSQL text accepts: no lone surrogate (faithful_text) and no NUL, which text cannot hold."""
    if isinstance(value, str):
        value = faithful_text(value)
        if "\x00" in value:
            value = value.replace("\x00", "\ufffd")
    return value


def prepare(item: Item) -> Prepared:
    """SQLiteStore's rows for one message, cleaned for PostgreSQL text."""
    prepared = prepare_rows(item.raw, item.envelope, item.tags, item.read, use_message_dates=item.use_message_dates,
                            compress=item.compress)
    return prepared._replace(row={k: _text(v) for k, v in prepared.row.items()},
                             body={k: _text(v) for k, v in prepared.body.items()},
                             fts=tuple(map(_text, prepared.fts)), mailboxes=[_text(m) for m in prepared.mailboxes])


class IngestMixin:
    """Mixed into PostgresStore."""

    if TYPE_CHECKING:
        _closed: bool
        work_plan: WorkPlan
        ignore_duplicate_ids: bool
        use_message_dates: bool
        compress: bool
        duplicates_ignored: int

        async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, announce: bool = True,
                         pipeline: bool = False) -> T: ...
        async def _tag_after_insert(self, tx: Tx, uid: int, summary: Summary) -> Summary: ...
        async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
        hub: events.Hub
        async def _prune_excess(self, tx: Tx) -> None: ...

    def _init_ingest(self) -> None:
        self._parse_pool: ThreadPoolExecutor | None = None
        self._queue: asyncio.Queue[Item | None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._parsing = 0
        self._parsed = asyncio.Event()

    def _start_ingest(self) -> None:
        self._parse_pool = ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="mailnest-parse")
        self._queue = asyncio.Queue()
        self._parsed = asyncio.Event()
        self._writer_task = asyncio.create_task(self._write_loop(), name="mailnest-postgres-writer")

    async def _stop_ingest(self) -> None:
        if self._writer_task is not None and self._queue is not None:
            # Messages queued (or being parsed) are stored first: their clients wait for a 250.
            while self._parsing:
                self._parsed.clear()
                await self._parsed.wait()
            self._queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await self._writer_task
        if self._parse_pool is not None:
            self._parse_pool.shutdown(wait=True)

    async def add(self, raw: bytes, envelope: Envelope, *, tags: Sequence[str] = (), read: bool = False) -> Summary:
        if self._closed or self._queue is None:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        item = Item(bytes(raw), envelope, tuple(tags), read, loop.create_future(),
                    use_message_dates=self.use_message_dates, compress=self.compress)
        if len(item.raw) <= PREPARE_ON_LOOP_UP_TO:
            item.prepared = prepare(item)  # tens of microseconds: less than a hand-off to a thread
        else:
            self._parsing += 1
            try:
                item.prepared = await self.prepare_off_loop(item)
            finally:
                self._parsing -= 1
                if not self._parsing:
                    self._parsed.set()
        self._queue.put_nowait(item)
        assert item.future is not None
        return await item.future

    async def prepare_off_loop(self, item: Item) -> Prepared:
        assert self._parse_pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._parse_pool, prepare, item)

    async def _decoded(self, rows: builtins.list[tuple[Any, Any, int]], prefix: int | None = None
                       ) -> dict[Any, bytes]:
        """The received bytes (or their first `prefix` bytes) of (key, bodies.raw, raw_codec) rows (codec.py),
        decoded in a parse thread when they are large enough to hold up the loop."""
        if not codec.costly(rows):
            return codec.decode_all(rows, prefix)
        assert self._parse_pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._parse_pool, codec.decode_all, rows, prefix)

    @staticmethod
    async def _new_uids(tx: Tx, count: int) -> builtins.list[int]:
        rows = await tx.all("SELECT nextval('uid_seq') FROM generate_series(1, %s)", (count,))
        return sorted(int(r[0]) for r in rows)

    @classmethod
    async def _insert_prepared(cls, tx: Tx, prepared: Sequence[Prepared], *, folder: str = "", owner: str = "",
                               flags: str = "", uids: Sequence[int] = ()) -> builtins.list[int]:
        """Write prepared messages; returns their uids, in order (`uids`, drawn before, or new ones). Delivered
        mail (folder '') is also filed under each envelope recipient's mailbox; IMAP folder rows are not."""
        uids = builtins.list(uids) or await cls._new_uids(tx, len(prepared))
        pairs = list(zip(uids, prepared, strict=True))
        filing = ("folder", "owner", "flags")  # the insert's, not the parse's
        message_columns = ["uid", *(c for c in prepared[0].row if c not in filing), *filing]
        body_columns = ["uid", *prepared[0].body]
        filed = {"folder": folder, "owner": owner, "flags": flags}
        params: list[list[Any]] = [uids]
        params += [[p.row[c] for p in prepared] if c not in filed else [filed[c]] * len(prepared)
                   for c in message_columns[1:]]
        params += [uids] + [[p.body[c] for p in prepared] for c in body_columns[1:]]
        params += [uids] + [[p.fts[i] for p in prepared] for i in range(len(search.CONTENT_COLUMNS))]
        params.append([search_words(p.fts) for p in prepared])
        recipients = [] if folder else [(mb, uid) for uid, p in pairs for mb in p.mailboxes]
        params += [[mb for mb, _ in recipients], [uid for _, uid in recipients]]
        await tx.conn.execute(insert_rows(message_columns, body_columns), params)
        tx.added += uids
        return uids

    async def _claim_message_ids(self, tx: Tx, prepared: Sequence[Prepared], uids: Sequence[int]
                                 ) -> builtins.list[DuplicateMessageError | None]:
        """ignore_duplicate_ids: each message's Message-ID claimed for its uid in one INSERT ... ON CONFLICT DO
        NOTHING. A claim that meets another transaction's uncommitted claim of the same ID waits for it: if that
        one commits, this one finds the conflict (so two nodes given one Message-ID at once keep exactly one);
        if it rolls back, this one gets it. Per message: None (claimed, or no Message-ID) or its duplicate."""
        # In Message-ID order: two batches claiming the same IDs then wait for each other in one order, never
        # in a cycle (a deadlock would cost both a retry message by message).
        wanted = sorted((p.summary.message_id, uid) for p, uid in zip(prepared, uids, strict=True)
                        if p.summary.message_id)
        if not wanted:
            return [None] * len(prepared)
        rows = await tx.all("INSERT INTO message_ids (message_id, uid) SELECT * FROM unnest(%s::text[], "
                            "%s::bigint[]) ON CONFLICT DO NOTHING RETURNING uid",
                            ([m for m, _ in wanted], [u for _, u in wanted]))
        claimed = {int(r[0]) for r in rows}
        lost = [m for m, uid in wanted if uid not in claimed]
        firsts: dict[str, str] = {}
        if lost:
            found = await tx.all("SELECT d.message_id, m.id FROM message_ids d JOIN messages m ON m.uid = d.uid "
                                 "WHERE d.message_id = ANY(%s)", (lost,))
            firsts = {str(r[0]): str(r[1]) for r in found}
        return [None if not p.summary.message_id or uid in claimed
                else DuplicateMessageError(p.summary.message_id, firsts.get(p.summary.message_id, ""))
                for p, uid in zip(prepared, uids, strict=True)]

    async def _insert_batch(self, tx: Tx, batch: Sequence[Item]) -> builtins.list[Summary | DuplicateMessageError]:
        prepared = [item.prepared or prepare(item) for item in batch]
        uids = await self._new_uids(tx, len(prepared))
        duplicates: list[DuplicateMessageError | None] = [None] * len(prepared)
        if self.ignore_duplicate_ids:
            duplicates = await self._claim_message_ids(tx, prepared, uids)
        kept = [(uid, p) for uid, p, duplicate in zip(uids, prepared, duplicates, strict=True) if duplicate is None]
        if kept:
            await self._insert_prepared(tx, [p for _, p in kept], uids=[uid for uid, _ in kept])
            await insert_work(tx, self.work_plan, [uid for uid, _ in kept])
        stored: dict[int, Summary] = {}
        for uid, prepared_one in kept:
            summary = replace(await self._tag_after_insert(tx, uid, prepared_one.summary), uid=uid)
            stored[uid] = summary
            tx.emit(events.MessageAdded(summary))
        if kept:
            await self._prune_excess(tx)
        return [duplicate or stored[uid] for uid, duplicate in zip(uids, duplicates, strict=True)]

    async def _commit_batch(self, batch: builtins.list[Item]) -> builtins.list[Summary | BaseException]:
        """The batch in one transaction; if that fails for a reason of its own, each message in its own."""
        sent = False

        async def insert(tx: Tx) -> builtins.list[Summary | DuplicateMessageError]:
            nonlocal sent
            sent = True  # statements go out from here on: a lost connection may have committed them
            return await self._insert_batch(tx, batch)

        try:
            return builtins.list(await self._write(insert, pipeline=True))
        except Exception as exc:
            error = store_error(exc)
            if isinstance(error, StoreUnavailableError) and sent:
                committed = await self._committed(batch)
                if committed is not None:
                    return builtins.list(committed)
            if isinstance(error, (StoreFullError, StoreUnavailableError)) or len(batch) == 1:
                if len(batch) == 1 and error is exc:
                    log.warning("could not store a %d-byte message from %r: %s", len(batch[0].raw),
                                batch[0].envelope.peer, exc)
                    error = rejected(exc)
                return [error] * len(batch)
            log.warning("storing a batch of %d messages failed (%s); storing them one at a time", len(batch), exc)
        results: list[Summary | BaseException] = []
        for item in batch:
            results += await self._commit_batch([item])
        return results

    async def _committed(self, batch: Sequence[Item]) -> builtins.list[Summary | DuplicateMessageError] | None:
        """After a connection lost at a batch's COMMIT: its summaries if it was committed (published here as a
        commit of ours is), None if it was not or cannot be known within OUTCOME_WAIT."""
        ids = [(item.prepared or prepare(item)).row["id"] for item in batch]

        async def look(tx: Tx) -> builtins.list[tuple[Any, ...]]:
            return await tx.all(f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE m.id = ANY(%s)", (ids,))

        deadline = asyncio.get_running_loop().time() + OUTCOME_WAIT
        while True:
            try:
                rows = await self._read(look)
                break
            except StoreUnavailableError:
                if asyncio.get_running_loop().time() >= deadline:
                    log.error("the connection to PostgreSQL was lost at the COMMIT of %d message(s) and the "
                              "database did not answer within %.0fs: they may have been stored, and are answered "
                              "451 (a client that sends them again may store them twice)", len(batch), OUTCOME_WAIT)
                    return None
                await asyncio.sleep(_OUTCOME_RETRY)
        if not rows:
            return None  # not committed: the 451 is right, and the client's retry stores it once
        found = {summary.id: summary for summary in map(summary_from_row, rows)}
        if len(found) != len(ids) and not self.ignore_duplicate_ids:
            # One transaction: all or nothing (but for duplicates, never inserted); anything else is not ours.
            log.error("a batch of %d message(s) is only partly in the database (%d found)", len(ids), len(found))
            return None
        summaries = [found[id_] for id_ in ids if id_ in found]
        results: list[Summary | DuplicateMessageError] = [
            found.get(id_) or DuplicateMessageError((item.prepared or prepare(item)).summary.message_id, "")
            for id_, item in zip(ids, batch, strict=True)]
        log.warning("the connection to PostgreSQL was lost at the COMMIT of %d message(s); they were committed, "
                    "and are acknowledged", len(summaries))
        for summary in summaries:
            self.hub.publish(events.MessageAdded(summary))
        return results

    async def _write_loop(self) -> None:
        assert self._queue is not None
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first.raw)
            while len(batch) < _BATCH_MAX_MESSAGES and size < _BATCH_MAX_BYTES and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                size += len(item.raw)
            try:
                results = await self._commit_batch(batch)
            except Exception as exc:  # the writer itself failed (not one message): every message of it fails
                log.exception("storing %d message(s) failed", len(batch))
                results = [exc] * len(batch)
            for item, result in zip(batch, results, strict=True):
                assert item.future is not None
                if isinstance(result, DuplicateMessageError):
                    self.duplicates_ignored += 1
                    log.info("%s message from %s (%s, %d bytes) not stored: %s", item.envelope.source,
                             item.envelope.peer or "-", item.envelope.mail_from or "<>", len(item.raw), result)
                if item.future.done():
                    continue
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
