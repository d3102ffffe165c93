"""SQLiteStore: the embedded store. WAL mode, one writer thread with group commit, read connections off the loop.

Ingest path: `add()` parses the message (a small one on the loop, a large one in a parse thread, never in the
writer) and queues the rows; the writer task takes everything queued, inserts the batch in one transaction,
commits, and only then resolves each `add()` and publishes `new` events. So the SMTP 250 follows the commit and
many concurrent messages share one fsync. A batch that fails is retried one message at a time, so one bad
message fails its own `add()` only. A full disk raises StoreFullError from the write that met it; the writer
truncates the WAL and carries on, and the next write succeeds once there is room again.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import contextlib
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, TypeVar

from .. import events, mime, search
from ..events import Hub
from ..models import Address, Attachment, Envelope, Message, Page, Stats, Summary, TLSInfo
from ..tags import ingest_tags
from . import schema
from .base import FolderInfo, MailboxInfo, Query, StoreFullError
from .faithful import faithful_envelope, faithful_text
from .imap_sql import ImapStoreMixin
from .sqlite_failures import rollback, store_error
from .tags_sql import TagStoreMixin

log = logging.getLogger(__name__)
T = TypeVar("T")

_BATCH_MAX_MESSAGES = 500
_BATCH_MAX_BYTES = 64 * 1024 * 1024
PREPARE_ON_LOOP_UP_TO = 16 * 1024  # bytes; larger messages are parsed in a parse thread, never the writer
_PARSE_THREADS = 2
BODIES_KEPT_UP_TO = 256 * 1024  # characters of decoded text + HTML stored beside the raw message
# The writer never checkpoints: copying the WAL into the database doubled the cost of every big commit. A
# separate thread checkpoints (PASSIVE: never blocks the writer or readers) after this much new data, and on
# an idle tick.
_CHECKPOINT_AFTER_BYTES = 8 * 1024 * 1024
_CHECKPOINT_TICK = 1.0
# A passive checkpoint never catches up with a writer that never pauses, and the WAL is only rewound when one
# has: under a steady flood it grew past 2 GB in 10 s and every page lookup slowed with it (ingest fell by half).
# Past this size the writer itself checkpoints (TRUNCATE) between batches; the checkpoint thread has already
# copied nearly everything, so that pause is short.
_WAL_REWIND_BYTES = 64 * 1024 * 1024
_BUSY_TIMEOUT_MS = 30_000
# After a checkpoint has reset the WAL, SQLite cuts the file back to this size: without a limit the WAL keeps its
# largest size for good, space a full disk needs back. And a WAL file past this size starts a checkpoint: the
# estimate above counts message bytes, but a commit writes several times that (bodies, decoded text, search rows,
# b-tree pages, indexing): on a 20 MB disk 27 messages of 100 KB grew the WAL to 20 MB before any checkpoint,
# which then had no room to copy it into the database.
_WAL_SIZE_LIMIT = 4 * 1024 * 1024
_FULL_REWIND_EVERY = 1.0  # seconds between attempts to give back WAL space while the disk is full
# The WAL file is only cut back when a checkpoint has caught up with the writer, which a passive one racing a busy
# writer may never do; so past this file size the writer rewinds it too (then again only after as much growth).
_WAL_REWIND_FILE_BYTES = 2 * _WAL_SIZE_LIMIT
# Indexing (search.py's search_pending -> search) runs in the writer thread whenever no message is waiting, a
# chunk of at most this many characters per transaction, so a message arriving meanwhile waits a few ms at most.
_INDEX_CHUNK_CHARS = 32 * 1024
_INDEX_CHUNK_ROWS = 256
# Beyond this many characters waiting (a steady flood that leaves the writer no idle moment), each batch also
# indexes as much as it added, so unindexed text stays bounded: searches scan it with LIKE, about 8 ms per MB.
_PENDING_MAX_CHARS = 1024 * 1024
_SUMMARY_COLUMNS = (
    "m.uid, m.id, m.message_id, m.read, m.from_json, m.to_json, m.cc_json, m.bcc_json, m.reply_to_json, "
    "m.subject, m.created, m.size, m.attachments, m.snippet, m.tags, m.folder"
)
_SUMMARY_WIDTH = _SUMMARY_COLUMNS.count(",") + 1


def new_id() -> str:
    """22 URL-safe characters from 132 random bits, the shape of Mailpit's IDs."""
    return base64.urlsafe_b64encode(os.urandom(17))[:22].decode()


# json.dumps with keyword arguments builds a new encoder on every call; ingest encodes eight values a message.
_to_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _addr_json(addresses: Sequence[Address]) -> str:
    return _to_json([[a.name, a.address] for a in addresses])


def _addr_load(text: str | None) -> tuple[Address, ...]:
    return tuple(Address(n, a) for n, a in json.loads(text)) if text else ()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def envelope_to_json(envelope: Envelope) -> str:
    return _to_json(
        {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "helo": envelope.helo,
            "peer": envelope.peer,
            "received": envelope.received.timestamp() if envelope.received else None,
            "auth_user": envelope.auth_user,
            "tls": [envelope.tls.version, envelope.tls.cipher] if envelope.tls else None,
            "smtputf8": envelope.smtputf8,
            "source": envelope.source,
        }
    )


def envelope_from_json(text: str) -> Envelope:
    data = json.loads(text)
    return Envelope(
        mail_from=data["mail_from"],
        rcpt_tos=tuple(data["rcpt_tos"]),
        helo=data.get("helo", ""),
        peer=data.get("peer", ""),
        received=_utc(data["received"]) if data.get("received") is not None else None,
        auth_user=data.get("auth_user"),
        tls=TLSInfo(*data["tls"]) if data.get("tls") else None,
        smtputf8=bool(data.get("smtputf8")),
        source=data.get("source", "smtp"),
    )


def summary_from_row(row: Sequence[Any]) -> Summary:
    uid, id_, message_id, read, from_json, to_json, cc_json, bcc_json, reply_json, subject, created, size, \
        attachments, snippet, tags, folder = row
    froms = _addr_load(from_json)
    return Summary(
        id=id_, uid=uid, message_id=message_id, read=bool(read), from_=froms[0] if froms else None,
        to=_addr_load(to_json), cc=_addr_load(cc_json), bcc=_addr_load(bcc_json), reply_to=_addr_load(reply_json),
        subject=subject, created=_utc(created), size=size, attachments=attachments, snippet=snippet,
        tags=tuple(json.loads(tags)), folder=folder,
    )


def _chars(fts: Sequence[str]) -> int:
    """search_pending.n: the row's characters, at least 1 so that every pending row counts as work to do."""
    return max(1, sum(map(len, fts)))


_NUDGE = object()  # queued by other writes that may leave rows to index: wakes the write loop
# (messages row, bodies row, search row, recipient mailboxes, summary without its uid)
_Prepared = tuple[tuple[Any, ...], tuple[Any, ...], tuple[str, ...], list[str], Summary]


@dataclass(slots=True)
class _Pending:
    raw: bytes
    envelope: Envelope
    tags: tuple[str, ...]
    read: bool
    future: asyncio.Future[Summary]
    prepared: _Prepared | None = None


def mailbox_clause(mailbox: str) -> tuple[str, str]:
    """SQL over `messages AS m` for one mailbox: a recipient address, or `@domain` for every recipient at exactly
    that domain (how the pytest plugin gives each test its own inbox)."""
    mailbox = mailbox.lower()
    if mailbox.startswith("@"):
        escaped = mailbox.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return "m.uid IN (SELECT uid FROM recipients WHERE mailbox LIKE ? ESCAPE '\\')", "%" + escaped
    return "m.uid IN (SELECT uid FROM recipients WHERE mailbox = ?)", mailbox


def _mailbox_anywhere(mailbox: str) -> tuple[str, list[Any]]:
    """A mailbox's delivered mail and the IMAP folders of the login of that name (or of every login at that
    domain, for `@domain`): IMAP folder rows have no recipients, they belong to the login that filed them."""
    clause, value = mailbox_clause(mailbox)
    owner = "lower(m.owner) LIKE ? ESCAPE '\\'" if mailbox.startswith("@") else "lower(m.owner) = ?"
    return (f"((m.folder = '' AND m.owner = '' AND {clause}) OR (m.folder != '' AND {owner}))",
            [value, value])


def _parse_or_empty(raw: bytes) -> mime.Parsed:
    # mime.parse is built never to raise; if it ever does, the message is still stored (as received),
    # just with fewer fields, because a 250 must never be lost to a parser bug.
    try:
        return mime.parse(raw)
    except Exception:
        log.exception("could not parse a %d-byte message; storing it unparsed", len(raw))
        return mime.Parsed(from_=None, to=(), cc=(), reply_to=(), subject="", date=None, message_id="",
                           text=raw[:100_000].decode("utf-8", "replace"), html="", attachments=(), inline=(),
                           snippet="")


def _bcc(parsed: mime.Parsed, envelope: Envelope) -> tuple[Address, ...]:
    visible = {a.address.lower() for a in (*parsed.to, *parsed.cc)}
    seen: set[str] = set()
    bcc = []
    for rcpt in envelope.rcpt_tos:
        key = rcpt.lower()
        if key not in visible and key not in seen:
            seen.add(key)
            bcc.append(Address("", rcpt))
    return tuple(bcc)


class SQLiteStore(ImapStoreMixin, TagStoreMixin):
    def __init__(self, path: Path | str | None, hub: Hub, *, max_messages: int = 0,
                 max_age: float | None = None) -> None:
        self.hub = hub
        self._temp_dir: str | None = None
        self._path = Path(path) if path is not None else None
        self.max_messages = max_messages
        self.max_age = max_age
        self.uidvalidity = 0
        self._writer_pool: ThreadPoolExecutor | None = None
        self._parse_pool: ThreadPoolExecutor | None = None
        self._parsing = 0  # add() calls parsing in the parse pool; close() waits for them to queue their rows
        self._parsed: asyncio.Event | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._queue: asyncio.Queue[_Pending | object | None] | None = None
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpoint_pool: ThreadPoolExecutor | None = None
        self._checkpoint_conn: sqlite3.Connection | None = None
        self._checkpoint_job: asyncio.Future[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._unflushed = 0  # bytes written since the last checkpoint (estimated)
        self._wal_bytes = 0  # the WAL's size at the last checkpoint
        self._wal_file_bytes = 0  # the WAL file's size after the last commit (writer thread)
        self._last_full_rewind = 0.0
        self._last_checkpoint_error = ""  # logged once until a checkpoint succeeds
        self._rewind_file_at = _WAL_REWIND_FILE_BYTES  # WAL file size at which the writer next rewinds it
        self._page_size = 8192
        self._age_task: asyncio.Task[None] | None = None
        self._count = 0  # delivered messages, maintained by the writer thread for retention
        self._unindexed = 0  # characters in search_pending (an estimate, corrected by each index chunk); writer thread
        self._next_analyze = 1_000  # refresh the query planner's statistics as the store grows tenfold
        self._tags: tuple[str, ...] | None = None  # every tag in use; None until read, reset by tag changes
        self._tags_generation = 0  # bumped by every reset, so a read that raced a change is not cached
        self._closed = False
        self._full = False  # the last write met a full disk (logged once until a write succeeds again)

    @property
    def path(self) -> Path:
        assert self._path is not None, "store not started"
        return self._path

    # -- life cycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._path is None:
            self._temp_dir = tempfile.mkdtemp(prefix="mailnest-")
            self._path = Path(self._temp_dir) / "mailnest.db"
        self._writer_pool = ThreadPoolExecutor(1, thread_name_prefix="mailnest-writer")
        self._parse_pool = ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="mailnest-parse")
        self._parsed = asyncio.Event()
        self._reader_pool = ThreadPoolExecutor(4, thread_name_prefix="mailnest-reader")
        self._checkpoint_pool = ThreadPoolExecutor(1, thread_name_prefix="mailnest-checkpoint")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer_pool, self._open_writer)
        self._queue = asyncio.Queue()
        self.hub.add_listener(self._forget_tags_on_change)
        self._writer_task = asyncio.create_task(self._write_loop(), name="mailnest-store-writer")
        self._checkpoint_task = asyncio.create_task(self._checkpoint_loop(), name="mailnest-store-checkpoint")
        if self.max_age:
            self._age_task = asyncio.create_task(self._age_loop(), name="mailnest-store-retention")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        # Raw messages are stored as blobs: 8 KiB pages write a 5 MB message ~15% faster than 4 KiB pages at no
        # measurable cost for small ones (larger pages slow small commits). Only takes effect on a new file.
        conn.execute("PRAGMA page_size=8192")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
        return conn

    def _open_writer(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error as exc:
            raise RuntimeError(f"cannot open the database {self.path}: {exc}") from exc
        # A temporary database dies with the process, so fsync buys nothing there; a --db file gets FULL
        # so that a message acknowledged with 250 survives a power cut too (group commit pays for it).
        conn.execute(f"PRAGMA synchronous={'NORMAL' if self._temp_dir else 'FULL'}")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        schema.migrate(conn)
        row = conn.execute("SELECT value FROM meta WHERE key='uidvalidity'").fetchone()
        if row is None:
            self.uidvalidity = int(time.time())
            conn.execute("INSERT INTO meta VALUES ('uidvalidity', ?)", (str(self.uidvalidity),))
        else:
            self.uidvalidity = int(row[0])
        self._count = self._delivered(conn)
        self._unindexed = int(conn.execute("SELECT total(n) FROM search_pending").fetchone()[0])
        self._next_analyze = max(self._count, 100) * 10
        if self._count >= 1_000:
            self._analyze(conn)
        self._writer_conn = conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._age_task:
            self._age_task.cancel()
        if self._writer_task:
            assert self._queue is not None and self._parsed is not None
            # Messages already queued (or being parsed) are stored first: their clients are waiting for a 250.
            while self._parsing:
                self._parsed.clear()
                await self._parsed.wait()
            self._queue.put_nowait(None)
            await self._writer_task
        loop = asyncio.get_running_loop()
        if self._checkpoint_task:
            self._checkpoint_task.cancel()
        if self._checkpoint_job is not None:
            with contextlib.suppress(Exception):
                await self._checkpoint_job
        if self._checkpoint_pool:
            await loop.run_in_executor(self._checkpoint_pool, self._close_checkpointer)
            self._checkpoint_pool.shutdown(wait=True)
        if self._reader_pool:
            self._reader_pool.shutdown(wait=True)
        if self._parse_pool:
            self._parse_pool.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        if self._writer_pool:
            await loop.run_in_executor(self._writer_pool, self._close_writer)
            self._writer_pool.shutdown(wait=True)
        if self._temp_dir:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    # -- checkpoints ------------------------------------------------------------------------------------

    def _wrote(self, nbytes: int) -> None:
        """Called on the loop after each write; starts a checkpoint once enough new data has piled up."""
        self._unflushed += nbytes
        if self._unflushed >= _CHECKPOINT_AFTER_BYTES or self._wal_file_bytes > _WAL_SIZE_LIMIT:
            self._start_checkpoint()

    def _measure_wal(self) -> None:
        """In the writer thread after a commit: one stat() of the WAL file (microseconds)."""
        try:
            self._wal_file_bytes = os.stat(f"{self.path}-wal").st_size
        except OSError:
            self._wal_file_bytes = 0
        if self._wal_file_bytes <= _WAL_SIZE_LIMIT:  # cut back by a checkpoint: the usual bound applies again
            self._rewind_file_at = _WAL_REWIND_FILE_BYTES

    def _start_checkpoint(self) -> None:
        if self._checkpoint_pool is None or self._closed:
            return
        if self._checkpoint_job is not None and not self._checkpoint_job.done():
            return
        self._unflushed = 0
        self._checkpoint_job = asyncio.get_running_loop().run_in_executor(self._checkpoint_pool, self._checkpoint)

    def _checkpoint(self) -> None:
        if self._checkpoint_conn is None:
            self._checkpoint_conn = self._connect()
        try:
            _, frames, _ = self._checkpoint_conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self._checkpoint_failed(exc)
            return
        self._wal_bytes = max(frames, 0) * self._page_size
        self._last_checkpoint_error = ""

    def _rewind_wal(self) -> None:
        """In the writer thread, between transactions: checkpoint everything and truncate the WAL."""
        conn = self._writer_conn
        assert conn is not None
        self._wal_bytes = 0  # measured again by the next checkpoint, which decides whether to try again
        conn.execute("PRAGMA busy_timeout=250")  # waits for readers to move on; never holds ingest up for long
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            self._checkpoint_failed(exc)
        finally:
            conn.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._measure_wal()
            # Not truncated (readers still on it, or no room to copy it): try again after as much growth again.
            self._rewind_file_at = self._wal_file_bytes + _WAL_REWIND_FILE_BYTES

    def _checkpoint_failed(self, exc: sqlite3.Error) -> None:
        """Log a failed checkpoint once per kind of failure (a full disk fails one every second until freed)."""
        text = str(exc)
        if text != self._last_checkpoint_error:
            self._last_checkpoint_error = text
            log.warning("WAL checkpoint failed (will retry): %s", text)

    def _close_checkpointer(self) -> None:
        if self._checkpoint_conn is not None:
            self._checkpoint_conn.close()
            self._checkpoint_conn = None

    async def _checkpoint_loop(self) -> None:
        while True:
            await asyncio.sleep(_CHECKPOINT_TICK)
            if self._unflushed:
                self._start_checkpoint()

    def _close_writer(self) -> None:
        if self._writer_conn is not None:
            try:
                self._writer_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self._writer_conn.close()
            self._writer_conn = None

    def _forget_tags_on_change(self, event: events.Event) -> None:
        if (isinstance(event, events.MessageAdded) and event.summary.tags) or isinstance(event, (
                events.MessagesDeleted, events.MessagesPruned, events.AllDeleted, events.TagsChanged)):
            self._tags_generation += 1
            self._tags = None

    def _all_tags(self, conn: sqlite3.Connection) -> tuple[str, ...]:
        """Every tag in use, sorted. Scanning every message's tags costs ~100 ms at 100,000 messages, so the
        answer is kept until an event says tags may have changed."""
        tags, generation = self._tags, self._tags_generation
        if tags is None:
            rows = conn.execute("SELECT DISTINCT j.value FROM messages m, json_each(m.tags) j "
                                "WHERE m.tags != '[]' ORDER BY 1").fetchall()
            tags = tuple(r[0] for r in rows)
            if generation == self._tags_generation:
                self._tags = tags
        return tags

    # -- helpers for this class and its mixins --------------------------------------------------------

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed or self._reader_pool is None:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reader_pool, lambda: fn(self._reader(), *args))

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) in the writer thread inside one transaction."""
        if self._closed or self._writer_pool is None:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._writer_pool, self._in_transaction, fn, args)
        except Exception as exc:
            error = store_error(exc)
            if error is exc:
                raise
            await self._after_full(error)
            raise error from exc
        self._wrote(16 * 1024)  # a rough size: these are small changes (flags, deletions)
        return result

    async def _after_full(self, error: BaseException) -> None:
        """A write met a full disk: say so once per episode, and give back the WAL's space (a failed transaction
        may have grown it; no other process can use that room until it is truncated)."""
        if not self._full:
            self._full = True
            log.error("%s; writes are refused with a temporary error until there is room", error)
        assert self._writer_pool is not None
        now = time.monotonic()
        if now - self._last_full_rewind >= _FULL_REWIND_EVERY:
            self._last_full_rewind = now
            await asyncio.get_running_loop().run_in_executor(self._writer_pool, self._rewind_wal)

    @staticmethod
    def _delivered(conn: sqlite3.Connection) -> int:
        """Delivered messages (what retention counts), from the totals the triggers keep: no count of rows."""
        return int(conn.execute("SELECT total FROM totals").fetchone()[0])

    def _nudge_indexer(self) -> None:
        """After a write outside the ingest batches that added search rows (IMAP APPEND, COPY): index them."""
        if self._queue is not None:
            self._queue.put_nowait(_NUDGE)

    def _in_transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        conn = self._writer_conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")  # inside: a COMMIT that fails (a full disk) must not leave the transaction open
        except BaseException:
            rollback(conn)
            raise
        self._measure_wal()
        return result

    @staticmethod
    def _view(mailbox: str | None, query: Query, tz: tzinfo | None = None) -> tuple[str, list[Any]]:
        """WHERE clause for delivered mail in a mailbox (or all), narrowed by a query, or by any of several
        queries (ORed: MailHog's search and Mailpit's tag rules need that). Dates in queries are read in `tz`.
        A query with a `folder:` term chooses its folders itself: it is narrowed to the mailbox only."""
        delivered = ["m.folder = '' AND m.owner = ''"]
        params: list[Any] = []
        if mailbox:
            clause, value = mailbox_clause(mailbox)
            delivered.append(clause)
            params.append(value)
        compiled = [search.compile(one, tz=tz) for one in ((query,) if isinstance(query, str) else query)]
        if not compiled or any(c is search.MATCH_ALL for c in compiled):  # one matches all: so do all of them
            return " AND ".join(delivered), params
        if not any(c.all_folders for c in compiled):
            where = " AND ".join(delivered) + " AND (" + " OR ".join(f"({c.where})" for c in compiled) + ")"
            return where, params + [p for c in compiled for p in c.params]
        anywhere, anywhere_params = ("1", []) if not mailbox else _mailbox_anywhere(mailbox)
        alternatives: list[str] = []
        alternative_params: list[Any] = []
        for c in compiled:
            scope, scope_params = (anywhere, anywhere_params) if c.all_folders else (" AND ".join(delivered), params)
            alternatives.append(f"({scope} AND ({c.where}))")
            alternative_params += [*scope_params, *c.params]
        return "(" + " OR ".join(alternatives) + ")", alternative_params

    # -- ingest ----------------------------------------------------------------------------------------

    async def add(self, raw: bytes, envelope: Envelope, *, tags: Sequence[str] = (), read: bool = False) -> Summary:
        if self._closed or self._queue is None:
            raise RuntimeError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Summary] = loop.create_future()
        item = _Pending(bytes(raw), envelope, tuple(tags), read, future)
        if len(item.raw) <= PREPARE_ON_LOOP_UP_TO:
            # Parsing a small message here (tens of microseconds) costs less than a hand-off to a thread.
            item.prepared = self._prepare(item)
            self._queue.put_nowait(item)
        else:
            # A large one is parsed in a parse thread: never on the loop, and never in the writer, where it
            # would hold up every other client's commit (and 250) for as long as it takes.
            assert self._parse_pool is not None and self._parsed is not None
            self._parsing += 1
            try:
                item.prepared = await loop.run_in_executor(self._parse_pool, self._prepare, item)
                self._queue.put_nowait(item)
            finally:
                self._parsing -= 1
                if not self._parsing:
                    self._parsed.set()
        return await future

    async def prepare_off_loop(self, item: Any) -> _Prepared:
        """Parse one message in a parse thread (IMAP APPEND): off the loop and out of the writer."""
        assert self._parse_pool is not None
        return await asyncio.get_running_loop().run_in_executor(self._parse_pool, self._prepare, item)

    async def _write_loop(self) -> None:
        assert self._queue is not None and self._writer_pool is not None
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            if self._wal_bytes > _WAL_REWIND_BYTES or self._wal_file_bytes > self._rewind_file_at:
                await loop.run_in_executor(self._writer_pool, self._rewind_wal)
            if self._unindexed and self._queue.empty():
                await self._index_when_idle()
                continue
            first = await self._queue.get()
            if first is None:  # close(): everything queued before it has been stored
                return
            if not isinstance(first, _Pending):  # a nudge: look for rows to index
                self._unindexed = max(self._unindexed, 1)
                continue
            batch = [first]
            size = len(first.raw)
            while len(batch) < _BATCH_MAX_MESSAGES and size < _BATCH_MAX_BYTES and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                if isinstance(item, _Pending):
                    batch.append(item)
                    size += len(item.raw)
            try:
                results, pruned = await loop.run_in_executor(self._writer_pool, self._commit_batch, batch)
            except Exception as exc:  # the writer itself failed (not one message): every message of it fails
                log.exception("storing %d message(s) failed", len(batch))
                results, pruned = [exc] * len(batch), None
            full = [error for result in results if isinstance(result, BaseException)
                    and isinstance(error := store_error(result), StoreFullError)]
            if full:
                await self._after_full(full[0])
            elif self._full and any(isinstance(result, Summary) for result in results):
                self._full = False
                log.warning("the database is writable again: storing messages")
            self._wrote(size)
            for item, result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    if not item.future.done():
                        item.future.set_exception(store_error(result))
                    continue
                if not item.future.done():
                    item.future.set_result(result)
                self.hub.publish(events.MessageAdded(result))
            if pruned:
                self.hub.publish(events.MessagesPruned(tuple(pruned["ids"]), tuple(pruned["uids"])))

    async def _index_when_idle(self) -> None:
        assert self._writer_pool is not None
        try:
            indexed = await asyncio.get_running_loop().run_in_executor(
                self._writer_pool, self._in_transaction, self._index_some, (_INDEX_CHUNK_CHARS,))
        except Exception as exc:
            # The rows stay in search_pending, where every search still finds them; try again after more mail.
            if isinstance(store_error(exc), StoreFullError):
                log.warning("indexing for search waits for disk space: %s", exc)
            else:
                log.exception("indexing stored messages for search failed")
            self._unindexed = 0
            return
        self._wrote(indexed * 4)

    def _index_some(self, conn: sqlite3.Connection, budget: int) -> int:
        """In the writer's transaction: move the oldest pending search rows, about `budget` characters of them
        (at least one row), into the full-text index. Returns the characters indexed."""
        rows = conn.execute("SELECT id, n FROM search_pending ORDER BY id LIMIT ?", (_INDEX_CHUNK_ROWS,)).fetchall()
        if not rows:
            self._unindexed = 0
            return 0
        total, last = 0, 0
        for uid, chars in rows:
            if total and total + chars > budget:
                break
            total, last = total + chars, uid
        for statement in search.INDEX_PENDING:
            conn.execute(statement, (last,))
        drained = last == rows[-1][0] and len(rows) < _INDEX_CHUNK_ROWS
        self._unindexed = 0 if drained else max(1, self._unindexed - total)
        return total

    def _commit_batch(self, batch: list[_Pending]) -> tuple[list[Summary | Exception], dict[str, list[Any]] | None]:
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
                    item.prepared = _faithful_prepared(item.prepared or self._prepare(item))
                    [summary], pruned = self._insert_batch([item])
            except Exception as exc:
                log.warning("could not store a %d-byte message from %r: %s", len(item.raw), item.envelope.peer, exc)
                results.append(exc)
                continue
            results.append(summary)
            for key in pruned_all:
                pruned_all[key] += (pruned or {}).get(key, [])
        return results, pruned_all if pruned_all["ids"] else None

    def _insert_batch(self, batch: list[_Pending]) -> tuple[list[Summary], dict[str, list[Any]] | None]:
        conn = self._writer_conn
        assert conn is not None
        prepared = [item.prepared or self._prepare(item) for item in batch]
        summaries = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for prepared_one in prepared:
                uid = self._insert_prepared(conn, prepared_one)
                summaries.append(replace(self._tag_after_insert(conn, uid, prepared_one[4]), uid=uid))
            self._count += len(batch)
            added = sum(_chars(prepared_one[2]) for prepared_one in prepared)
            self._unindexed += added
            if self._unindexed > _PENDING_MAX_CHARS:
                indexed = 0
                while indexed < added and (chunk := self._index_some(conn, added - indexed)):
                    indexed += chunk
            pruned = self._prune_excess(conn)
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            self._count = self._delivered(conn)
            raise
        self._measure_wal()
        if self._count >= self._next_analyze:
            self._analyze(conn)
        return summaries, pruned

    @staticmethod
    def _insert_prepared(conn: sqlite3.Connection, prepared: _Prepared, *, folder: str = "", owner: str = "",
                         flags: str = "") -> int:
        """Write one prepared message (see `_prepare`); returns its uid. Delivered mail (folder '') is also
        filed under each envelope recipient's mailbox; IMAP folder copies are not."""
        row, body, fts, mailboxes, _ = prepared
        uid = conn.execute(
            "INSERT INTO messages (id, message_id, subject, from_json, to_json, cc_json, bcc_json, reply_to_json, "
            "created, sent, size, attachments, inline, snippet, read, tags, mail_from, auth_user, envelope_json, "
            "folder, owner, flags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (*row, folder, owner, flags),
        ).lastrowid
        assert uid is not None
        conn.execute("INSERT INTO bodies (uid, raw, text, html, extra_json) VALUES (?,?,?,?,?)", (uid, *body))
        conn.execute(search.INSERT_PENDING, (uid, _chars(fts), *fts))
        if not folder:
            conn.executemany("INSERT OR IGNORE INTO recipients (mailbox, uid) VALUES (?, ?)",
                             [(mb, uid) for mb in mailboxes])
        return uid

    def _analyze(self, conn: sqlite3.Connection) -> None:
        """Without statistics SQLite sorts every match of a common word to find the newest page (~0.4 s at
        100,000 messages); with them it walks the newest-first index. Sampled, so it costs ~0.3 s at 100,000."""
        conn.execute("PRAGMA analysis_limit=1000")
        conn.execute("ANALYZE")
        self._next_analyze = max(self._count, 1) * 10

    def _prepare(self, item: _Pending) -> _Prepared:
        """Everything one message needs before the transaction: parse once, build the rows."""
        raw, envelope = item.raw, faithful_envelope(item.envelope)
        if envelope.received is None:
            envelope = replace(envelope, received=datetime.now(UTC))
        assert envelope.received is not None
        parsed = _parse_or_empty(raw)
        bcc = _bcc(parsed, envelope)
        tags = ingest_tags(x_tags=parsed.x_tags, to=parsed.to, cc=parsed.cc, envelope=envelope,
                           explicit=tuple(faithful_text(t) for t in item.tags))
        mailboxes = sorted({r.lower() for r in envelope.rcpt_tos})
        id_ = new_id()
        created = envelope.received.timestamp()
        summary = Summary(
            id=id_, uid=0, message_id=parsed.message_id, read=item.read, from_=parsed.from_, to=parsed.to,
            cc=parsed.cc, bcc=bcc, reply_to=parsed.reply_to, subject=parsed.subject, created=envelope.received,
            size=len(raw), attachments=len(parsed.attachments), snippet=parsed.snippet, tags=tags,
        )
        row = (
            id_, parsed.message_id, parsed.subject,
            _addr_json([parsed.from_]) if parsed.from_ else None,
            _addr_json(parsed.to), _addr_json(parsed.cc), _addr_json(bcc), _addr_json(parsed.reply_to),
            created, parsed.date.timestamp() if parsed.date else None, len(raw), len(parsed.attachments),
            len(parsed.inline), parsed.snippet, int(item.read), _to_json(list(tags)),
            envelope.mail_from.lower(), envelope.auth_user, envelope_to_json(envelope),
        )
        extra: dict[str, object] = {
            "attachments": [_attachment_json(a) for a in parsed.attachments],
            "inline": [_attachment_json(a) for a in parsed.inline],
            "return_path": parsed.return_path,
            "list_unsubscribe": parsed.list_unsubscribe,
        }
        if len(parsed.text) + len(parsed.html) > BODIES_KEPT_UP_TO:
            # Keeping a copy of a huge decoded body would double what a big message writes; reading it back is
            # one parse of the raw bytes (about a millisecond for 5 MB), so get() re-derives it instead.
            extra["bodies_in_raw"] = True
            body = (raw, "", "", _to_json(extra))
        else:
            body = (raw, parsed.text, parsed.html, _to_json(extra))
        fts = search.index_values(
            subject=parsed.subject, from_=parsed.from_, to=parsed.to, cc=parsed.cc, bcc=bcc,
            reply_to=parsed.reply_to, message_id=parsed.message_id, text=parsed.text, html=parsed.html,
            envelope_from=envelope.mail_from, mailboxes=mailboxes,
            attachment_names=[a.filename for a in parsed.attachments],
        )
        return row, body, fts, mailboxes, summary

    def _prune_excess(self, conn: sqlite3.Connection) -> dict[str, list[Any]] | None:
        if not self.max_messages or self._count <= self.max_messages:
            return None
        excess = self._count - self.max_messages
        # owner='' too, as in _view: then the (folder, owner, uid) index gives the oldest without a sort.
        rows = conn.execute("SELECT uid, id FROM messages WHERE folder='' AND owner='' ORDER BY uid LIMIT ?",
                            (excess,)).fetchall()
        return self._delete_rows(conn, rows)

    def _delete_rows(self, conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> dict[str, list[Any]] | None:
        if not rows:
            return None
        conn.executemany("DELETE FROM messages WHERE uid = ?", [(uid,) for uid, _ in rows])
        self._count = self._delivered(conn)
        return {"ids": [id_ for _, id_ in rows], "uids": [uid for uid, _ in rows]}

    def _prune_older(self, conn: sqlite3.Connection, cutoff: float) -> dict[str, list[Any]] | None:
        rows = conn.execute("SELECT uid, id FROM messages WHERE created < ?", (cutoff,)).fetchall()
        return self._delete_rows(conn, rows)

    async def _age_loop(self) -> None:
        assert self.max_age
        while True:
            try:
                cutoff = time.time() - self.max_age

                pruned = await self._write(self._prune_older, cutoff)
                if pruned:
                    log.info("pruned %d message(s) older than the retention age", len(pruned["ids"]))
                    self.hub.publish(events.MessagesPruned(tuple(pruned["ids"]), tuple(pruned["uids"])))
            except asyncio.CancelledError:
                raise
            except StoreFullError as exc:
                log.warning("age-based pruning waits for disk space: %s", exc)
            except Exception:
                log.exception("age-based pruning failed")
            await asyncio.sleep(min(60.0, max(1.0, self.max_age / 10)))

    # -- reading ---------------------------------------------------------------------------------------

    async def list(self, *, query: Query = "", mailbox: str | None = None, start: int = 0, limit: int = 50,
                   tz: tzinfo | None = None) -> Page:
        base_where, base_params = self._view(mailbox, "")
        where, params = self._view(mailbox, query, tz)

        def run(conn: sqlite3.Connection) -> Page:
            total, unread = conn.execute(
                f"SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m WHERE {base_where}", base_params
            ).fetchone()
            matching, matching_unread = (total, unread) if where == base_where else conn.execute(
                f"SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m WHERE {where}", params).fetchone()
            rows = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE {where} ORDER BY m.uid DESC LIMIT ? OFFSET ?",
                [*params, limit, start],
            ).fetchall()
            return Page(total=total, unread=unread, messages_count=matching, start=start,
                        messages=tuple(summary_from_row(r) for r in rows), tags=self._all_tags(conn),
                        messages_unread=matching_unread)

        return await self._read(run)

    async def get(self, id: str) -> Message | None:
        def run(conn: sqlite3.Connection) -> Message | None:
            row = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS}, m.sent, m.envelope_json, m.flags, b.text, b.html, b.extra_json "
                "FROM messages m JOIN bodies b ON b.uid = m.uid WHERE m.id = ?", (id,)
            ).fetchone()
            if row is None:
                return None
            summary = summary_from_row(row[:_SUMMARY_WIDTH])
            sent, envelope_json, flags, text, html, extra_json = row[_SUMMARY_WIDTH:]
            extra = json.loads(extra_json)
            if extra.get("bodies_in_raw"):
                raw = conn.execute("SELECT raw FROM bodies WHERE uid = ?", (summary.uid,)).fetchone()[0]
                parsed = _parse_or_empty(bytes(raw))
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
        def run(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT b.raw FROM messages m JOIN bodies b ON b.uid = m.uid WHERE m.id = ?",
                               (id,)).fetchone()
            return bytes(row[0]) if row else None

        return await self._read(run)

    async def latest(self, *, query: Query = "", mailbox: str | None = None,
                     tz: tzinfo | None = None) -> Summary | None:
        page = await self.list(query=query, mailbox=mailbox, limit=1, tz=tz)
        return page.messages[0] if page.messages else None

    async def count(self, *, query: Query = "", mailbox: str | None = None, tz: tzinfo | None = None) -> int:
        where, params = self._view(mailbox, query, tz)
        return await self._read(
            lambda conn: conn.execute(f"SELECT count(*) FROM messages m WHERE {where}", params).fetchone()[0])

    async def stats(self, *, mailbox: str | None = None) -> Stats:
        where, params = self._view(mailbox, "")

        def run(conn: sqlite3.Connection) -> Stats:
            if mailbox:
                total, unread, size = conn.execute(
                    f"SELECT count(*), coalesce(sum(m.read = 0), 0), coalesce(sum(m.size), 0) FROM messages m "
                    f"WHERE {where}", params).fetchone()
            else:  # kept by triggers (schema.py)
                total, unread, size = conn.execute("SELECT total, unread, size FROM totals").fetchone()
            return Stats(total=total, unread=unread, size=size, tags=self._all_tags(conn))

        return await self._read(run)

    async def mailboxes(self) -> builtins.list[MailboxInfo]:
        def run(conn: sqlite3.Connection) -> list[MailboxInfo]:
            rows = conn.execute(
                "SELECT r.mailbox, count(*), coalesce(sum(m.read = 0), 0) FROM recipients r "
                "JOIN messages m ON m.uid = r.uid WHERE m.folder = '' GROUP BY r.mailbox ORDER BY r.mailbox"
            ).fetchall()
            return [MailboxInfo(*r) for r in rows]

        return await self._read(run)

    async def folders(self) -> builtins.list[FolderInfo]:
        """Every IMAP folder but INBOX that exists or holds messages, with its owner's login ('*': catch-all)."""
        def run(conn: sqlite3.Connection) -> list[FolderInfo]:
            rows = conn.execute(
                "SELECT name, owner, sum(total), sum(unread) FROM ("
                " SELECT folder AS name, owner, count(*) AS total, coalesce(sum(read = 0), 0) AS unread"
                " FROM messages WHERE folder != '' GROUP BY folder, owner"
                " UNION ALL SELECT name, owner, 0, 0 FROM imap_folders"
                ") GROUP BY name, owner ORDER BY name, owner").fetchall()
            return [FolderInfo(*r) for r in rows]

        return await self._read(run)

    async def summaries_by_uid(self, uids: Sequence[int]) -> builtins.list[Summary]:
        wanted = list(uids)

        def run(conn: sqlite3.Connection) -> list[Summary]:
            found: dict[int, Summary] = {}
            for chunk in range(0, len(wanted), 500):
                part = wanted[chunk:chunk + 500]
                rows = conn.execute(f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE m.uid IN "
                                    f"({','.join('?' * len(part))})", part).fetchall()
                found.update((r[0], summary_from_row(r)) for r in rows)
            return [found[u] for u in wanted if u in found]

        return await self._read(run)

    async def uids(self, *, mailbox: str | None = None, query: Query = "") -> builtins.list[int]:
        where, params = self._view(mailbox, query)
        return await self._read(lambda conn: [r[0] for r in conn.execute(
            f"SELECT m.uid FROM messages m WHERE {where} ORDER BY m.uid", params)])

    async def id_for_uid(self, uid: int) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT id FROM messages WHERE uid = ?", (uid,)).fetchone()
            return row[0] if row else None

        return await self._read(run)

    # -- changing --------------------------------------------------------------------------------------

    async def set_read(self, ids: Sequence[str], read: bool) -> builtins.list[str]:
        wanted = list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            changed = []
            for id_ in wanted:
                row = conn.execute("UPDATE messages SET read = ? WHERE id = ? AND read != ? RETURNING uid, id",
                                   (int(read), id_, int(read))).fetchone()
                if row:
                    changed.append((row[0], row[1]))
            return changed

        changed = await self._write(run)
        if changed:
            self.hub.publish(events.ReadChanged(tuple(i for _, i in changed), tuple(u for u, _ in changed), read))
        return [i for _, i in changed]

    async def set_read_matching(self, read: bool, *, query: Query = "", mailbox: str | None = None,
                                tz: tzinfo | None = None) -> builtins.list[str]:
        where, params = self._view(mailbox, query, tz)

        def run(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            return conn.execute(f"UPDATE messages AS m SET read = ? WHERE {where} AND m.read != ? RETURNING uid, id",
                                [int(read), *params, int(read)]).fetchall()

        changed = await self._write(run)
        if changed:
            self.hub.publish(events.ReadChanged(tuple(i for _, i in changed), tuple(u for u, _ in changed), read))
        return [i for _, i in changed]

    async def _delete_found(self, find: Callable[[sqlite3.Connection], builtins.list[tuple[int, str]]]
                            ) -> dict[str, builtins.list[Any]] | None:
        """Delete the (uid, id) rows `find` picks, in one transaction, and tell the hub."""
        deleted = await self._write(lambda conn: self._delete_rows(conn, find(conn)))
        if deleted:
            self.hub.publish(events.MessagesDeleted(tuple(deleted["ids"]), tuple(deleted["uids"])))
        return deleted

    @staticmethod
    def _rows_where_in(conn: sqlite3.Connection, column: str, values: Sequence[Any]) -> builtins.list[tuple[int, str]]:
        """(uid, id) of the messages whose `column` (uid or id) is one of `values`, in chunks SQLite accepts."""
        wanted = list(dict.fromkeys(values))
        rows: list[tuple[int, str]] = []
        for start in range(0, len(wanted), 500):
            part = wanted[start:start + 500]
            rows += conn.execute(f"SELECT uid, id FROM messages WHERE {column} IN ({','.join('?' * len(part))})",
                                 part).fetchall()
        return rows

    async def delete(self, ids: Sequence[str]) -> builtins.list[str]:
        deleted = await self._delete_found(lambda conn: self._rows_where_in(conn, "id", ids))
        return list(deleted["ids"]) if deleted else []

    async def delete_matching(self, *, query: Query = "", mailbox: str | None = None,
                              tz: tzinfo | None = None) -> builtins.list[str]:
        where, params = self._view(mailbox, query, tz)
        deleted = await self._delete_found(
            lambda conn: conn.execute(f"SELECT m.uid, m.id FROM messages m WHERE {where}", params).fetchall())
        return list(deleted["ids"]) if deleted else []

    async def delete_all(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            count = conn.execute("SELECT count(*) FROM messages WHERE folder = ''").fetchone()[0]
            conn.execute("DELETE FROM messages WHERE folder = ''")
            self._count = 0
            return int(count)

        count = await self._write(run)
        self.hub.publish(events.AllDeleted())
        return count

    async def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> builtins.list[str]:
        tag_json = json.dumps(list(dict.fromkeys(faithful_text(t) for t in tags if t)), ensure_ascii=False)
        wanted = list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> list[str]:
            changed = []
            for id_ in wanted:
                if conn.execute("UPDATE messages SET tags = ? WHERE id = ? AND tags != ?",
                                (tag_json, id_, tag_json)).rowcount:
                    changed.append(id_)
            return changed

        changed = await self._write(run)
        if changed:
            self.hub.publish(events.TagsChanged(tuple(changed), tuple(json.loads(tag_json))))
        return changed


def _faithful_prepared(prepared: _Prepared) -> _Prepared:
    row, body, fts, mailboxes, summary = prepared

    def clean(values: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(faithful_text(v) if isinstance(v, str) else v for v in values)

    return clean(row), clean(body), clean(fts), list(clean(mailboxes)), summary


def _attachment_json(a: Attachment) -> dict[str, Any]:
    return {"part_id": a.part_id, "filename": a.filename, "content_type": a.content_type,
            "content_id": a.content_id, "size": a.size, "inline": a.inline}
