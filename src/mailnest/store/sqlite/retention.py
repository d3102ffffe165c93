"""Retention: how many messages are delivered, and what goes: the oldest past the message limit, those past the
age limit, and every deletion (all go through `delete_rows`, so the count retention relies on stays true).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from ...events import Hub, MessagesDeleted, MessagesPruned
from ..base import StoreFullError
from .writes import Writer

log = logging.getLogger("mailnest.store.sqlite")

Deleted = dict[str, list[Any]]  # {"ids": [...], "uids": [...]} of the rows deleted


def delivered(conn: sqlite3.Connection) -> int:
    """Delivered messages (what retention counts), from the totals the triggers keep: no count of rows."""
    return int(conn.execute("SELECT total FROM totals").fetchone()[0])


def rows_where_in(conn: sqlite3.Connection, column: str, values: Sequence[Any]) -> list[tuple[int, str]]:
    """(uid, id) of the messages whose `column` (uid or id) is one of `values`, in chunks SQLite accepts."""
    wanted = list(dict.fromkeys(values))
    rows: list[tuple[int, str]] = []
    for start in range(0, len(wanted), 500):
        part = wanted[start:start + 500]
        rows += conn.execute(f"SELECT uid, id FROM messages WHERE {column} IN ({','.join('?' * len(part))})",
                             part).fetchall()
    return rows


class Retention:
    """The delivered count (kept in the writer thread) and the two limits."""

    def __init__(self, writer: Writer, hub: Hub, max_messages: int = 0, max_age: float | None = None) -> None:
        self._writer = writer
        self._hub = hub
        self.max_messages = max_messages
        self.max_age = max_age
        self.count = 0  # delivered messages, maintained by the writer thread
        self._task: asyncio.Task[None] | None = None

    def recount(self, conn: sqlite3.Connection) -> None:
        """In the writer thread, after anything that may have added or removed delivered mail."""
        self.count = delivered(conn)

    def start(self) -> None:
        if self.max_age:
            self._task = asyncio.create_task(self._age_loop(), name="mailnest-store-retention")

    def stop(self) -> None:
        if self._task:
            self._task.cancel()

    def delete_rows(self, conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> Deleted | None:
        """In the writer's transaction: delete these (uid, id) rows."""
        if not rows:
            return None
        conn.executemany("DELETE FROM messages WHERE uid = ?", [(uid,) for uid, _ in rows])
        self.recount(conn)
        return {"ids": [id_ for _, id_ in rows], "uids": [uid for uid, _ in rows]}

    async def delete_found(self, find: Callable[[sqlite3.Connection], list[tuple[int, str]]]) -> Deleted | None:
        """Delete the (uid, id) rows `find` picks, in one transaction, and tell the hub."""
        deleted = await self._writer.write(lambda conn: self.delete_rows(conn, find(conn)))
        if deleted:
            self._hub.publish(MessagesDeleted(tuple(deleted["ids"]), tuple(deleted["uids"])))
        return deleted

    def prune_excess(self, conn: sqlite3.Connection) -> Deleted | None:
        """In the ingest batch's transaction: the oldest delivered messages beyond the message limit."""
        if not self.max_messages or self.count <= self.max_messages:
            return None
        excess = self.count - self.max_messages
        # owner='' too, as in the views: then the (folder, owner, uid) index gives the oldest without a sort.
        rows = conn.execute("SELECT uid, id FROM messages WHERE folder='' AND owner='' ORDER BY uid LIMIT ?",
                            (excess,)).fetchall()
        return self.delete_rows(conn, rows)

    def _prune_older(self, conn: sqlite3.Connection, cutoff: float) -> Deleted | None:
        rows = conn.execute("SELECT uid, id FROM messages WHERE created < ?", (cutoff,)).fetchall()
        return self.delete_rows(conn, rows)

    async def _age_loop(self) -> None:
        assert self.max_age
        while True:
            try:
                pruned = await self._writer.write(self._prune_older, time.time() - self.max_age)
                if pruned:
                    log.info("pruned %d message(s) older than the retention age", len(pruned["ids"]))
                    self._hub.publish(MessagesPruned(tuple(pruned["ids"]), tuple(pruned["uids"])))
            except asyncio.CancelledError:
                raise
            except StoreFullError as exc:
                log.warning("age-based pruning waits for disk space: %s", exc)
            except Exception:
                log.exception("age-based pruning failed")
            await asyncio.sleep(min(60.0, max(1.0, self.max_age / 10)))
