"""WAL checkpoints: copying the write-ahead log back into the database, off the writer, and keeping it bounded.

The writer never checkpoints on its own: copying the WAL into the database doubled the cost of every big
commit. A thread of its own checkpoints (PASSIVE: never blocks the writer or readers) after enough new data
and on an idle tick; the writer rewinds (TRUNCATE) between batches only when the WAL outgrows its bounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor

from .connections import BUSY_TIMEOUT_MS, WAL_SIZE_LIMIT, Connections

log = logging.getLogger("mailnest.store.sqlite")

_CHECKPOINT_AFTER_BYTES = 8 * 1024 * 1024
_CHECKPOINT_TICK = 1.0
# A passive checkpoint never catches up with a writer that never pauses, and the WAL is only rewound when one
# has: under a steady flood it grew past 2 GB in 10 s and every page lookup slowed with it (ingest fell by half).
# Past this size the writer itself checkpoints (TRUNCATE) between batches; the checkpoint thread has already
# copied nearly everything, so that pause is short.
_WAL_REWIND_BYTES = 64 * 1024 * 1024
# The WAL file is only cut back when a checkpoint has caught up with the writer, which a passive one racing a busy
# writer may never do; so past this file size the writer rewinds it too (then again only after as much growth).
_WAL_REWIND_FILE_BYTES = 2 * WAL_SIZE_LIMIT


class Wal:
    """The WAL of one database: how much it holds, the checkpoint thread, and the writer's rewinds."""

    def __init__(self, connections: Connections) -> None:
        self._connections = connections
        self.page_size = 8192  # the database's, read when the writer opens it
        self._pool: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._job: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._unflushed = 0  # bytes written since the last checkpoint (estimated)
        self._wal_bytes = 0  # the WAL's size at the last checkpoint
        self._file_bytes = 0  # the WAL file's size after the last commit (writer thread)
        self._last_error = ""  # logged once until a checkpoint succeeds
        self._rewind_file_at = _WAL_REWIND_FILE_BYTES  # WAL file size at which the writer next rewinds it

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="mailnest-checkpoint")
        self._task = asyncio.create_task(self._loop(), name="mailnest-store-checkpoint")

    def wrote(self, nbytes: int) -> None:
        """Called on the loop after each write; starts a checkpoint once enough new data has piled up."""
        self._unflushed += nbytes
        if self._unflushed >= _CHECKPOINT_AFTER_BYTES or self._file_bytes > WAL_SIZE_LIMIT:
            self._start_checkpoint()

    def measure(self) -> None:
        """In the writer thread after a commit: one stat() of the WAL file (microseconds)."""
        try:
            self._file_bytes = os.stat(f"{self._connections.path}-wal").st_size
        except OSError:
            self._file_bytes = 0
        if self._file_bytes <= WAL_SIZE_LIMIT:  # cut back by a checkpoint: the usual bound applies again
            self._rewind_file_at = _WAL_REWIND_FILE_BYTES

    @property
    def needs_rewind(self) -> bool:
        """The writer should rewind before its next batch: the WAL outgrew what checkpoints keep up with."""
        return self._wal_bytes > _WAL_REWIND_BYTES or self._file_bytes > self._rewind_file_at

    def _start_checkpoint(self) -> None:
        if self._pool is None or self._connections.closed:
            return
        if self._job is not None and not self._job.done():
            return
        self._unflushed = 0
        self._job = asyncio.get_running_loop().run_in_executor(self._pool, self._checkpoint)

    def _checkpoint(self) -> None:
        if self._conn is None:
            self._conn = self._connections.connect()
        try:
            _, frames, _ = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
            return
        self._wal_bytes = max(frames, 0) * self.page_size
        self._last_error = ""

    def rewind(self) -> None:
        """In the writer thread, between transactions: checkpoint everything and truncate the WAL."""
        conn = self._connections.writer_conn
        assert conn is not None
        self._wal_bytes = 0  # measured again by the next checkpoint, which decides whether to try again
        conn.execute("PRAGMA busy_timeout=250")  # waits for readers to move on; never holds ingest up for long
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            self._failed(exc)
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self.measure()
            # Not truncated (readers still on it, or no room to copy it): try again after as much growth again.
            self._rewind_file_at = self._file_bytes + _WAL_REWIND_FILE_BYTES

    def _failed(self, exc: sqlite3.Error) -> None:
        """Log a failed checkpoint once per kind of failure (a full disk fails one every second until freed)."""
        text = str(exc)
        if text != self._last_error:
            self._last_error = text
            log.warning("WAL checkpoint failed (will retry): %s", text)

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(_CHECKPOINT_TICK)
            if self._unflushed:
                self._start_checkpoint()

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
        if self._job is not None:
            with contextlib.suppress(Exception):
                await self._job
        if self._pool:
            await asyncio.get_running_loop().run_in_executor(self._pool, self._close_conn)
            self._pool.shutdown(wait=True)
