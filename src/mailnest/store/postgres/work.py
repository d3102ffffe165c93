"""Once-only work on PostgreSQL: the `work` table (schema version 3), one row per message and kind, written by
ingest in the batch's own statement pipeline and claimed by any node once its lease has run out (see base.py's
Store protocol and WorkItem; sqlite/work.py says why a row per kind).

Leases are read and written by the server's clock (`clock_timestamp()`), so nodes with skewed clocks agree on
when a lease ends. A claim is `UPDATE ... FROM (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n) RETURNING`: two nodes
sweeping at once take disjoint rows and neither waits for the other.
"""

from __future__ import annotations

import builtins
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..base import WorkItem
from ..sqlite.work import WorkPlan

if TYPE_CHECKING:
    from .store import Tx

T = TypeVar("T")

_NOW = "extract(epoch FROM clock_timestamp())"
_COLUMNS = "uid, kind, holder, lease_until, attempts"
INSERT_WORK = (f"INSERT INTO work (uid, kind, holder, lease_until) SELECT u, k, %s, {_NOW} + %s "
               "FROM unnest(%s::bigint[]) AS u, unnest(%s::text[]) AS k ON CONFLICT DO NOTHING")


def _item(row: Sequence[Any]) -> WorkItem:
    return WorkItem(int(row[0]), str(row[1]), str(row[2]), float(row[3]), int(row[4]))


async def insert_work(tx: Tx, plan: WorkPlan, uids: Sequence[int]) -> None:
    """In the ingest transaction (pipeline mode: sent, not waited for): a row per new message and kind."""
    if plan.kinds and uids:
        await tx.conn.execute(INSERT_WORK, (plan.holder, plan.lease, builtins.list(uids), builtins.list(plan.kinds)))


class WorkMixin:
    """Mixed into PostgresStore."""

    work_plan: WorkPlan = WorkPlan()

    if TYPE_CHECKING:
        async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
        async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, announce: bool = True,
                         pipeline: bool = False) -> T: ...

    def configure_work(self, kinds: Sequence[str], *, holder: str, lease: float) -> None:
        self.work_plan = WorkPlan.of(kinds, holder, lease)

    async def claim_work(self, limit: int = 100) -> builtins.list[WorkItem]:
        plan = self.work_plan
        if not plan.kinds or limit <= 0:
            return []

        async def run(tx: Tx) -> list[WorkItem]:
            rows = await tx.all(
                f"UPDATE work AS w SET holder = %s, lease_until = {_NOW} + %s, attempts = w.attempts + 1 "
                f"FROM (SELECT uid, kind FROM work WHERE lease_until < {_NOW} AND kind = ANY(%s) "
                "ORDER BY lease_until LIMIT %s FOR UPDATE SKIP LOCKED) AS c "
                "WHERE w.uid = c.uid AND w.kind = c.kind "
                "RETURNING w.uid, w.kind, w.holder, w.lease_until, w.attempts",
                (plan.holder, plan.lease, builtins.list(plan.kinds), limit))
            return sorted((_item(r) for r in rows), key=lambda item: (item.uid, item.kind))

        return await self._write(run, announce=False)

    async def renew_work(self) -> int:
        plan = self.work_plan
        if not plan.kinds:
            return 0

        async def run(tx: Tx) -> int:
            return await tx.run(f"UPDATE work SET lease_until = {_NOW} + %s WHERE holder = %s "
                                f"AND lease_until < {_NOW} + %s", (plan.lease, plan.holder, plan.lease / 2))

        return await self._write(run, announce=False)

    async def finish_work(self, done: Sequence[tuple[int, str]]) -> int:
        pairs = builtins.list(dict.fromkeys((int(uid), str(kind)) for uid, kind in done))
        if not pairs:
            return 0

        async def run(tx: Tx) -> int:
            return await tx.run("DELETE FROM work AS w USING unnest(%s::bigint[], %s::text[]) AS d(uid, kind) "
                                "WHERE w.uid = d.uid AND w.kind = d.kind",
                                ([u for u, _ in pairs], [k for _, k in pairs]))

        return await self._write(run, announce=False)

    async def release_work(self) -> int:
        plan = self.work_plan
        if not plan.holder:
            return 0

        async def run(tx: Tx) -> int:
            return await tx.run("UPDATE work SET lease_until = 0 WHERE holder = %s", (plan.holder,))

        return await self._write(run, announce=False)

    async def pending_work(self) -> builtins.list[WorkItem]:
        async def run(tx: Tx) -> list[WorkItem]:
            return [_item(r) for r in await tx.all(f"SELECT {_COLUMNS} FROM work ORDER BY uid, kind")]

        return await self._read(run)
