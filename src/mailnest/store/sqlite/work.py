"""Once-only work on SQLite: the `work` table (schema version 4), written by ingest in each message's transaction
and claimed, renewed and finished in the writer thread (see base.py's Store protocol and WorkItem).

One row per message and kind, not one row per message with a set of kinds: finishing a kind is the delete of
its own row (no read-modify-write of a shared set, which two consumers finishing the same message at once would
have to serialize), a kind still retrying (a webhook in backoff) keeps its lease while the finished ones are
gone, and "the row goes when every kind is done" needs no code. A message has one to three kinds in practice:
as many small rows, written by the statement that writes its other rows.
"""

from __future__ import annotations

import builtins
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..base import WorkItem
from .connections import Connections
from .writes import Writer

_COLUMNS = "uid, kind, holder, lease_until, attempts"


@dataclass(frozen=True, slots=True)
class WorkPlan:
    """What `configure_work` said: the kinds ingest writes a row for, this node's holder id, the lease."""

    kinds: tuple[str, ...] = ()
    holder: str = ""
    lease: float = 30.0

    @classmethod
    def of(cls, kinds: Sequence[str], holder: str, lease: float) -> WorkPlan:
        wanted = tuple(dict.fromkeys(k for k in kinds if k))
        if wanted and not holder:
            raise ValueError("configure_work: a holder id is needed with kinds")
        if lease <= 0:
            raise ValueError(f"configure_work: the lease must be positive, not {lease!r}")
        return cls(wanted, holder, float(lease))


def _item(row: Sequence[object]) -> WorkItem:
    uid, kind, holder, lease_until, attempts = row
    return WorkItem(int(uid), str(kind), str(holder), float(lease_until), int(attempts))  # type: ignore[call-overload,arg-type]


def insert_work(conn: sqlite3.Connection, plan: WorkPlan, uids: Sequence[int]) -> None:
    """In the ingest transaction: a row per new message and configured kind, held by this node."""
    if plan.kinds and uids:
        until = time.time() + plan.lease
        conn.executemany("INSERT OR IGNORE INTO work (uid, kind, holder, lease_until) VALUES (?, ?, ?, ?)",
                         [(uid, kind, plan.holder, until) for uid in uids for kind in plan.kinds])


class WorkMethods:
    """Composed into SQLiteStore, which provides these collaborators."""

    writer: Writer
    connections: Connections
    work_plan: WorkPlan

    def configure_work(self, kinds: Sequence[str], *, holder: str, lease: float) -> None:
        self.work_plan = WorkPlan.of(kinds, holder, lease)

    async def claim_work(self, limit: int = 100) -> builtins.list[WorkItem]:
        plan = self.work_plan
        if not plan.kinds or limit <= 0:
            return []

        def run(conn: sqlite3.Connection) -> list[WorkItem]:
            now = time.time()
            marks = ", ".join("?" * len(plan.kinds))
            # One writer at a time (BEGIN IMMEDIATE), so two claimers never take the same row.
            rows = conn.execute(
                f"UPDATE work SET holder = ?, lease_until = ?, attempts = attempts + 1 WHERE (uid, kind) IN "
                f"(SELECT uid, kind FROM work WHERE lease_until < ? AND kind IN ({marks}) "
                f"ORDER BY lease_until LIMIT ?) RETURNING {_COLUMNS}",
                (plan.holder, now + plan.lease, now, *plan.kinds, limit)).fetchall()
            return sorted((_item(r) for r in rows), key=lambda item: (item.uid, item.kind))

        return await self.writer.write(run)

    async def renew_work(self) -> int:
        plan = self.work_plan
        if not plan.kinds:
            return 0

        def run(conn: sqlite3.Connection) -> int:
            now = time.time()
            return conn.execute("UPDATE work SET lease_until = ? WHERE holder = ? AND lease_until < ?",
                                (now + plan.lease, plan.holder, now + plan.lease / 2)).rowcount

        return await self.writer.write(run)

    async def finish_work(self, done: Sequence[tuple[int, str]]) -> int:
        pairs = [(int(uid), str(kind)) for uid, kind in dict.fromkeys(done)]
        if not pairs:
            return 0

        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            conn.executemany("DELETE FROM work WHERE uid = ? AND kind = ?", pairs)
            return conn.total_changes - before

        return await self.writer.write(run)

    async def release_work(self) -> int:
        plan = self.work_plan
        if not plan.holder:
            return 0

        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE work SET lease_until = 0 WHERE holder = ?", (plan.holder,)).rowcount

        return await self.writer.write(run)

    async def pending_work(self) -> builtins.list[WorkItem]:
        def run(conn: sqlite3.Connection) -> list[WorkItem]:
            return [_item(r) for r in conn.execute(f"SELECT {_COLUMNS} FROM work ORDER BY uid, kind")]

        return await self.connections.read(run)
