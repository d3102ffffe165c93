"""Retention for PostgresStore, once per database however many nodes share it: max_messages in the ingest
transaction under an advisory lock (nodes take turns, so two never count the same excess and prune twice),
max_age by whichever node holds the lock that round (the others skip it)."""

from __future__ import annotations

import asyncio
import builtins
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..base import StoreUnavailableError
from . import schema

if TYPE_CHECKING:
    from .store import Tx

log = logging.getLogger(__name__)
T = TypeVar("T")


class RetentionMixin:
    """Mixed into PostgresStore."""

    max_messages: int
    max_age: float | None
    schema: str

    if TYPE_CHECKING:
        async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, announce: bool = True,
                         pipeline: bool = False) -> T: ...
        @staticmethod
        async def _delete_rows(tx: Tx, where: str, params: Sequence[Any], *,
                               pruned: bool = False) -> builtins.list[tuple[int, str]]: ...

    async def _prune_excess(self, tx: Tx) -> None:
        """Inside an ingest transaction: delete the oldest delivered mail beyond max_messages. The advisory lock
        makes nodes take turns, so two never count the same excess and prune twice."""
        if not self.max_messages:
            return
        await tx.run("SELECT pg_advisory_xact_lock(hashtext(%s))", (schema.lock_key(self.schema, "retention"),))
        row = await tx.one("SELECT total FROM totals")
        excess = int(row[0]) - self.max_messages if row else 0
        if excess > 0:
            await self._delete_rows(tx, "m.uid IN (SELECT uid FROM messages WHERE folder = '' AND owner = '' "
                                        "ORDER BY uid LIMIT %s)", (excess,), pruned=True)

    async def _prune_older(self, tx: Tx, cutoff: float) -> builtins.list[tuple[int, str]]:
        """Once per database however many nodes: whoever holds the lock prunes, the others skip this round.

        The totals row first, then the retention lock: the order an ingest takes them in (its INSERT's trigger
        locks the row, then `_prune_excess` the lock). The other order deadlocked with a concurrent ingest."""
        await tx.run("SELECT 1 FROM totals FOR UPDATE")
        row = await tx.one("SELECT pg_try_advisory_xact_lock(hashtext(%s))",
                           (schema.lock_key(self.schema, "retention"),))
        if not row or not row[0]:
            return []
        return await self._delete_rows(tx, "m.created < %s", (cutoff,), pruned=True)

    async def _age_loop(self) -> None:
        assert self.max_age
        while True:
            try:
                cutoff = time.time() - self.max_age
                pruned = await self._write(functools.partial(self._prune_older, cutoff=cutoff))
                if pruned:
                    log.info("pruned %d message(s) older than the retention age", len(pruned))
            except asyncio.CancelledError:
                raise
            except StoreUnavailableError as exc:
                log.warning("age-based pruning waits for the database: %s", exc)
            except Exception:
                log.exception("age-based pruning failed")
            await asyncio.sleep(min(60.0, max(1.0, self.max_age / 10)))
