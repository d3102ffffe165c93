"""Threads and connections: the database file and who may touch it.

One writer thread holds the one writing connection (every write, in order); reader threads hold a read-only
connection each (WAL: a read never waits for the writer, and reads run off the event loop); parse threads hold
none (MIME parsing, off the loop and out of the writer). A store without a path gets a temporary file.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from ..sqlite_failures import rollback

T = TypeVar("T")

BUSY_TIMEOUT_MS = 30_000
# After a checkpoint has reset the WAL, SQLite cuts the file back to this size: without a limit the WAL keeps its
# largest size for good, space a full disk needs back. And a WAL file past this size starts a checkpoint: the
# estimate above counts message bytes, but a commit writes several times that (bodies, decoded text, search rows,
# b-tree pages, indexing): on a 20 MB disk 27 messages of 100 KB grew the WAL to 20 MB before any checkpoint,
# which then had no room to copy it into the database.
WAL_SIZE_LIMIT = 4 * 1024 * 1024
_PARSE_THREADS = 2
_READER_THREADS = 4


class Connections:
    """The database file, its threads and their connections. `start` and `close` run on the loop."""

    def __init__(self, path: Path | str | None) -> None:
        self._path = Path(path) if path is not None else None
        self.temp_dir: str | None = None  # set when the store made its own temporary database
        self.writer_pool: ThreadPoolExecutor | None = None
        self.parse_pool: ThreadPoolExecutor | None = None
        self.reader_pool: ThreadPoolExecutor | None = None
        self.writer_conn: sqlite3.Connection | None = None  # used only in the writer thread
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self.closed = False

    @property
    def path(self) -> Path:
        assert self._path is not None, "store not started"
        return self._path

    def start(self) -> None:
        if self._path is None:
            self.temp_dir = tempfile.mkdtemp(prefix="mailnest-")
            self._path = Path(self.temp_dir) / "mailnest.db"
        self.writer_pool = ThreadPoolExecutor(1, thread_name_prefix="mailnest-writer")
        self.parse_pool = ThreadPoolExecutor(_PARSE_THREADS, thread_name_prefix="mailnest-parse")
        self.reader_pool = ThreadPoolExecutor(_READER_THREADS, thread_name_prefix="mailnest-reader")

    def connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30)
        # Raw messages are stored as blobs: 8 KiB pages write a 5 MB message ~15% faster than 4 KiB pages at no
        # measurable cost for small ones (larger pages slow small commits). Only takes effect on a new file.
        conn.execute("PRAGMA page_size=8192")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
        return conn

    def open_writer(self) -> sqlite3.Connection:
        """In the writer thread: the writing connection."""
        try:
            conn = self.connect()
        except sqlite3.Error as exc:
            raise RuntimeError(f"cannot open the database {self.path}: {exc}") from exc
        # A temporary database dies with the process, so fsync buys nothing there; a --db file gets FULL
        # so that a message acknowledged with 250 survives a power cut too (group commit pays for it).
        conn.execute(f"PRAGMA synchronous={'NORMAL' if self.temp_dir else 'FULL'}")
        conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints.py decides when
        self.writer_conn = conn
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self.connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(conn, *args) on a reader thread's connection."""
        if self.closed or self.reader_pool is None:
            raise RuntimeError("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self.reader_pool,
                                                                lambda: fn(self._reader(), *args))

    async def in_writer(self, fn: Callable[..., T], *args: Any) -> T:
        """fn(*args) in the writer thread (fn takes `writer_conn` itself, and its own transaction)."""
        if self.writer_pool is None:
            raise RuntimeError("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self.writer_pool, fn, *args)

    async def in_parser(self, fn: Callable[..., T], *args: Any) -> T:
        assert self.parse_pool is not None
        return await asyncio.get_running_loop().run_in_executor(self.parse_pool, fn, *args)

    def transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """In the writer thread: fn(conn, *args) inside one transaction, rolled back if it raises."""
        conn = self.writer_conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn, *args)
            conn.execute("COMMIT")  # inside: a COMMIT that fails (a full disk) must not leave the transaction open
        except BaseException:
            rollback(conn)
            raise
        return result

    def close_readers(self) -> None:
        if self.reader_pool:
            self.reader_pool.shutdown(wait=True)
        if self.parse_pool:
            self.parse_pool.shutdown(wait=True)
        with self._reader_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    def _close_writer(self) -> None:
        if self.writer_conn is not None:
            try:
                self.writer_conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            self.writer_conn.close()
            self.writer_conn = None

    async def close_writer(self) -> None:
        """The last step of closing: the WAL folded into the database, a temporary database removed."""
        if self.writer_pool:
            await asyncio.get_running_loop().run_in_executor(self.writer_pool, self._close_writer)
            self.writer_pool.shutdown(wait=True)
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
