"""Group-commit ingest: `add()` queues a prepared message; the write loop takes everything queued, inserts the
batch in one transaction, commits, and only then resolves each `add()` and publishes MessageAdded.

So the SMTP 250 follows the commit and many concurrent messages share one fsync. A batch that fails is retried
one message at a time, so one bad message fails its own `add()` only. A full disk fails the batch with
StoreFullError; the writer gives back the WAL's room and carries on, and the next batch succeeds once there is
room again. Between batches the loop rewinds an overgrown WAL and, when nothing waits, indexes for search.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from ...events import Hub, MessageAdded, MessagesPruned
from ...models import Envelope, Summary
from ..base import DuplicateMessageError, MessageRejectedError, StoreFullError
from ..sqlite_failures import rollback, store_error
from .indexer import Indexer
from .prepare import (
    PREPARE_ON_LOOP_UP_TO,
    _chars,
    _faithful_prepared,
    _Pending,
    _Prepared,
    insert_prepared,
    prepare,
)
from .retention import Deleted, Retention
from .tags import TagRules
from .work import WorkPlan, insert_work
from .writes import Writer

log = logging.getLogger("mailnest.store.sqlite")

_BATCH_MAX_MESSAGES = 500
_BATCH_MAX_BYTES = 64 * 1024 * 1024
_NUDGE = object()  # queued by other writes that may leave rows to index: wakes the write loop


def rejected(exc: Exception) -> Exception:
    """For one message's own transaction: MessageRejectedError when SQLite can never store it as it is (a value
    beyond its limits: SQLITE_TOOBIG, a type or range mismatch, which sqlite3 raises as DataError), else `exc`."""
    if isinstance(exc, sqlite3.DataError):
        return MessageRejectedError(f"the database cannot store this message: {exc}")
    return exc


def _prepare_item(item: _Pending, use_message_dates: bool = False, compress: bool = False) -> _Prepared:
    return prepare(item.raw, item.envelope, item.tags, item.read, use_message_dates=use_message_dates,
                   compress=compress)


def first_with_message_id(conn: sqlite3.Connection, message_id: str) -> str | None:
    """The public id of the delivered message that claimed `message_id` (message_ids), None when none did."""
    row = conn.execute("SELECT m.id FROM message_ids d JOIN messages m ON m.uid = d.uid WHERE d.message_id = ?",
                       (message_id,)).fetchone()
    return str(row[0]) if row else None


def claim_existing_message_ids(conn: sqlite3.Connection) -> None:
    """In the writer at start with ignore_duplicate_ids: the Message-IDs of delivered mail stored while it was
    off, so that a duplicate of those is recognised too (the earliest message of each is the one kept)."""
    conn.execute("INSERT OR IGNORE INTO message_ids (message_id, uid) SELECT message_id, min(uid) FROM messages "
                 "WHERE folder = '' AND owner = '' AND message_id != '' GROUP BY message_id")


class Ingest:
    """The ingest queue and the task that writes it."""

    def __init__(self, writer: Writer, indexer: Indexer, retention: Retention, tag_rules: TagRules,
                 hub: Hub) -> None:
        self._writer = writer
        self._connections = writer.connections
        self._indexer = indexer
        self._retention = retention
        self._tag_rules = tag_rules
        self._hub = hub
        self.queue: asyncio.Queue[_Pending | object | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._parsing = 0  # add() calls parsing in the parse pool; stop() waits for them to queue their rows
        self._parsed: asyncio.Event | None = None
        self.next_analyze = 1_000  # refresh the query planner's statistics as the store grows tenfold
        self.work_plan = WorkPlan()  # once-only work written with each message (none unless configured)
        self.ignore_duplicate_ids = False
        self.use_message_dates = False
        self.compress = False  # store raw bytes zstd-compressed (codec.py)
        self.duplicates_ignored = 0  # add() calls answered DuplicateMessageError since start

    def opened(self, conn: sqlite3.Connection) -> None:
        """In the writer thread at start, once the delivered count is known."""
        self.next_analyze = max(self._retention.count, 100) * 10
        if self.ignore_duplicate_ids:
            conn.execute("BEGIN IMMEDIATE")
            try:
                claim_existing_message_ids(conn)
                conn.execute("COMMIT")
            except BaseException:
                rollback(conn)
                raise
        if self._retention.count >= 1_000:
            self._analyze(conn)

    def start(self) -> None:
        self._parsed = asyncio.Event()
        self.queue = asyncio.Queue()
        self._task = asyncio.create_task(self._write_loop(), name="mailnest-store-writer")

    async def stop(self) -> None:
        """Messages already queued (or being parsed) are stored first: their clients are waiting for a 250."""
        if self._task is None:
            return
        assert self.queue is not None and self._parsed is not None
        while self._parsing:
            self._parsed.clear()
            await self._parsed.wait()
        self.queue.put_nowait(None)
        await self._task

    async def add(self, raw: bytes, envelope: Envelope, tags: Sequence[str], read: bool) -> Summary:
        if self._connections.closed or self.queue is None:
            raise RuntimeError("the store is closed")
        future: asyncio.Future[Summary] = asyncio.get_running_loop().create_future()
        item = _Pending(bytes(raw), envelope, tuple(tags), read, future)
        if len(item.raw) <= PREPARE_ON_LOOP_UP_TO:
            # Parsing a small message here (tens of microseconds) costs less than a hand-off to a thread.
            item.prepared = _prepare_item(item, self.use_message_dates, self.compress)
            self.queue.put_nowait(item)
        else:
            # A large one is parsed in a parse thread: never on the loop, and never in the writer, where it
            # would hold up every other client's commit (and 250) for as long as it takes.
            assert self._parsed is not None
            self._parsing += 1
            try:
                item.prepared = await self._connections.in_parser(_prepare_item, item, self.use_message_dates,
                                                                  self.compress)
                self.queue.put_nowait(item)
            finally:
                self._parsing -= 1
                if not self._parsing:
                    self._parsed.set()
        return await future

    async def prepare_off_loop(self, raw: bytes, envelope: Envelope, read: bool) -> _Prepared:
        """Parse one message in a parse thread (IMAP APPEND): off the loop and out of the writer."""
        return await self._connections.in_parser(partial(prepare, compress=self.compress), raw, envelope, (), read)

    def nudge(self) -> None:
        """After a write outside the ingest batches that added search rows (IMAP APPEND, COPY): index them."""
        if self.queue is not None:
            self.queue.put_nowait(_NUDGE)

    async def _write_loop(self) -> None:
        assert self.queue is not None
        wal, stopping = self._writer.wal, False
        while not stopping:
            if wal.needs_rewind:
                await self._connections.in_writer(wal.rewind)
            if self._indexer.unindexed and self.queue.empty():
                await self._indexer.index_when_idle()
                continue
            first = await self.queue.get()
            if first is None:  # stop(): everything queued before it has been stored
                return
            if not isinstance(first, _Pending):  # a nudge: look for rows to index
                self._indexer.poke()
                continue
            batch = [first]
            size = len(first.raw)
            while len(batch) < _BATCH_MAX_MESSAGES and size < _BATCH_MAX_BYTES and not self.queue.empty():
                item = self.queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                if isinstance(item, _Pending):
                    batch.append(item)
                    size += len(item.raw)
            try:
                results, pruned = await self._connections.in_writer(self._commit_batch, batch)
            except Exception as exc:  # the writer itself failed (not one message): every message of it fails
                log.exception("storing %d message(s) failed", len(batch))
                results, pruned = [exc] * len(batch), None
            await self._settle(batch, results, size)
            if pruned:
                self._hub.publish(MessagesPruned(tuple(pruned["ids"]), tuple(pruned["uids"])))

    async def _settle(self, batch: list[_Pending], results: Sequence[Summary | Exception], size: int) -> None:
        """On the loop after a batch: each add() gets its summary or its error; the hub hears of each message."""
        full = [error for result in results if isinstance(result, BaseException)
                and isinstance(error := store_error(result), StoreFullError)]
        if full:
            await self._writer.after_full(full[0])
        elif any(isinstance(result, Summary) for result in results):
            self._writer.writable_again()
        self._writer.wal.wrote(size)
        for item, result in zip(batch, results, strict=True):
            if isinstance(result, DuplicateMessageError):
                self.duplicates_ignored += 1
                log.info("%s message from %s (%s, %d bytes) not stored: %s", item.envelope.source,
                         item.envelope.peer or "-", item.envelope.mail_from or "<>", len(item.raw), result)
            if isinstance(result, BaseException):
                if not item.future.done():
                    item.future.set_exception(store_error(result))
                continue
            if not item.future.done():
                item.future.set_result(result)
            self._hub.publish(MessageAdded(result))

    def _commit_batch(self, batch: list[_Pending]) -> tuple[list[Summary | Exception], Deleted | None]:
        """In the writer thread: the batch in one transaction; if that fails, each message in its own, so that
        a message SQLite refuses fails alone (its result is its exception). A full disk fails them all at once:
        one at a time would meet it again."""
        try:
            summaries, pruned = self._insert_batch(batch)
            return list(summaries), pruned
        except Exception as exc:
            if isinstance(store_error(exc), StoreFullError):
                return [exc] * len(batch), None
            if len(batch) > 1:
                log.warning("storing a batch of %d messages failed (%s); storing them one at a time",
                            len(batch), exc)
        results: list[Summary | Exception] = []
        pruned_all: dict[str, list[Any]] = {"ids": [], "uids": []}
        for item in batch:
            try:
                try:
                    [summary], pruned = self._insert_batch([item])
                except UnicodeEncodeError:
                    # A lone surrogate the envelope cleaning did not reach (a parsed field): store it cleaned too.
                    item.prepared = _faithful_prepared(item.prepared
                                                       or _prepare_item(item, self.use_message_dates))
                    [summary], pruned = self._insert_batch([item])
            except Exception as exc:
                log.warning("could not store a %d-byte message from %r: %s", len(item.raw), item.envelope.peer, exc)
                results.append(rejected(exc))
                continue
            results.append(summary)
            for key in pruned_all:
                pruned_all[key] += (pruned or {}).get(key, [])
        return results, pruned_all if pruned_all["ids"] else None

    def _insert_batch(self, batch: list[_Pending]) -> tuple[list[Summary | DuplicateMessageError], Deleted | None]:
        """One transaction; a duplicate (ignore_duplicate_ids) is its DuplicateMessageError in the results. The
        writer holds SQLite's write lock (BEGIN IMMEDIATE) from the look-up to the commit, so no other
        connection, in this process or another, can store the same Message-ID in between."""
        conn = self._connections.writer_conn
        assert conn is not None
        prepared = [item.prepared or _prepare_item(item, self.use_message_dates) for item in batch]
        results: list[Summary | DuplicateMessageError] = []
        stored_chars = 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            for prepared_one in prepared:
                message_id = prepared_one.summary.message_id if self.ignore_duplicate_ids else ""
                if message_id:
                    first = first_with_message_id(conn, message_id)
                    if first is not None:
                        results.append(DuplicateMessageError(message_id, first))
                        continue
                uid = insert_prepared(conn, prepared_one)
                if message_id:
                    conn.execute("INSERT OR REPLACE INTO message_ids (message_id, uid) VALUES (?, ?)",
                                 (message_id, uid))
                results.append(replace(self._tag_rules.apply(conn, uid, prepared_one.summary), uid=uid))
                stored_chars += _chars(prepared_one.fts)
            stored = [result.uid for result in results if isinstance(result, Summary)]
            insert_work(conn, self.work_plan, stored)
            self._retention.count += len(stored)
            self._indexer.added(conn, stored_chars)
            pruned = self._retention.prune_excess(conn)
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            self._retention.recount(conn)
            raise
        self._writer.wal.measure()
        if self._retention.count >= self.next_analyze:
            self._analyze(conn)
        return results, pruned

    def _analyze(self, conn: sqlite3.Connection) -> None:
        """Without statistics SQLite sorts every match of a common word to find the newest page (~0.4 s at
        100,000 messages); with them it walks the newest-first index. Sampled, so it costs ~0.3 s at 100,000."""
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")
        self.next_analyze = max(self._retention.count, 1) * 10
