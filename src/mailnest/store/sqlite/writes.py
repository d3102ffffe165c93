"""Writes: every change goes through the one writer thread as one transaction, and a full disk is a temporary
StoreFullError rather than a crash: said once per episode, with the WAL's room given back."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..sqlite_failures import store_error
from .checkpoints import Wal
from .connections import Connections

log = logging.getLogger("mailnest.store.sqlite")
T = TypeVar("T")

_FULL_REWIND_EVERY = 1.0  # seconds between attempts to give back WAL space while the disk is full


class Writer:
    """Transactions in the writer thread, and the store's full-disk state."""

    def __init__(self, connections: Connections, wal: Wal) -> None:
        self.connections = connections
        self.wal = wal
        self.full = False  # the last write met a full disk (logged once until a write succeeds again)
        self._last_full_rewind = 0.0

    def transaction(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """In the writer thread: fn(conn, *args) in one transaction, then the WAL measured."""
        result = self.connections.transaction(fn, args)
        self.wal.measure()
        return result

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run fn(conn, *args) in the writer thread inside one transaction."""
        if self.connections.closed:
            raise RuntimeError("the store is closed")
        try:
            result = await self.connections.in_writer(self.transaction, fn, args)
        except Exception as exc:
            error = store_error(exc)
            if error is exc:
                raise
            await self.after_full(error)
            raise error from exc
        self.wal.wrote(16 * 1024)  # a rough size: these are small changes (flags, deletions)
        return result

    async def after_full(self, error: BaseException) -> None:
        """A write met a full disk: say so once per episode, and give back the WAL's space (a failed transaction
        may have grown it; no other process can use that room until it is truncated)."""
        if not self.full:
            self.full = True
            log.error("%s; writes are refused with a temporary error until there is room", error)
        now = time.monotonic()
        if now - self._last_full_rewind >= _FULL_REWIND_EVERY:
            self._last_full_rewind = now
            await self.connections.in_writer(self.wal.rewind)

    def writable_again(self) -> None:
        """A write succeeded: the full-disk episode (if any) is over."""
        if self.full:
            self.full = False
            log.warning("the database is writable again: storing messages")
