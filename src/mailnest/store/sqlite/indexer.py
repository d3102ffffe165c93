"""The search indexer: rows wait in search_pending (where searches already find them) and move into the FTS5
index in chunks, in the writer thread, whenever no message is waiting; under a flood that leaves no idle moment,
each batch indexes as much as it added, so the unindexed text stays bounded.
"""

from __future__ import annotations

import logging
import sqlite3

from ... import search
from ..base import StoreFullError
from ..sqlite_failures import store_error
from .writes import Writer

log = logging.getLogger("mailnest.store.sqlite")

# Indexing (search.py's search_pending -> search) runs in the writer thread whenever no message is waiting, a
# chunk of at most this many characters per transaction, so a message arriving meanwhile waits a few ms at most.
_INDEX_CHUNK_CHARS = 32 * 1024
_INDEX_CHUNK_ROWS = 256
# Beyond this many characters waiting (a steady flood that leaves the writer no idle moment), each batch also
# indexes as much as it added, so unindexed text stays bounded: searches scan it with LIKE, about 8 ms per MB.
_PENDING_MAX_CHARS = 1024 * 1024


class Indexer:
    """What is waiting to be indexed (an estimate, corrected by each chunk; writer thread) and the indexing."""

    pending_max_chars = _PENDING_MAX_CHARS  # an attribute so that a test can make every batch index

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self.unindexed = 0  # characters in search_pending

    def load(self, conn: sqlite3.Connection) -> None:
        """In the writer thread at start: what an earlier run left unindexed."""
        self.unindexed = int(conn.execute("SELECT total(n) FROM search_pending").fetchone()[0])

    def poke(self) -> None:
        """Rows were added outside the ingest batches (IMAP APPEND, COPY): look for them."""
        self.unindexed = max(self.unindexed, 1)

    def index_some(self, conn: sqlite3.Connection, budget: int) -> int:
        """In the writer's transaction: move the oldest pending search rows, about `budget` characters of them
        (at least one row), into the full-text index. Returns the characters indexed."""
        rows = conn.execute("SELECT id, n FROM search_pending ORDER BY id LIMIT ?", (_INDEX_CHUNK_ROWS,)).fetchall()
        if not rows:
            self.unindexed = 0
            return 0
        total, last = 0, 0
        for uid, chars in rows:
            if total and total + chars > budget:
                break
            total, last = total + chars, uid
        for statement in search.INDEX_PENDING:
            conn.execute(statement, (last,))
        drained = last == rows[-1][0] and len(rows) < _INDEX_CHUNK_ROWS
        self.unindexed = 0 if drained else max(1, self.unindexed - total)
        return total

    def added(self, conn: sqlite3.Connection, chars: int) -> None:
        """In an ingest batch's transaction that added `chars` characters to search_pending."""
        self.unindexed += chars
        if self.unindexed > self.pending_max_chars:
            indexed = 0
            while indexed < chars and (chunk := self.index_some(conn, chars - indexed)):
                indexed += chunk

    async def index_when_idle(self) -> None:
        """One chunk, in its own transaction (the write loop calls this when no message is waiting)."""
        try:
            indexed = await self._writer.connections.in_writer(self._writer.transaction, self.index_some,
                                                               (_INDEX_CHUNK_CHARS,))
        except Exception as exc:
            # The rows stay in search_pending, where every search still finds them; try again after more mail.
            if isinstance(store_error(exc), StoreFullError):
                log.warning("indexing for search waits for disk space: %s", exc)
            else:
                log.exception("indexing stored messages for search failed")
            self.unindexed = 0
            return
        self._writer.wal.wrote(indexed * 4)
