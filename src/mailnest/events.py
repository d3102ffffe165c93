"""The hub: the store publishes what changed, every front door that cares subscribes.

Publishing never blocks and never fails: a subscriber that cannot keep up loses events and is told so
(`Subscription.lagged`), so a slow websocket or a stuck IMAP IDLE never slows ingest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Mailpit's websocket event types, which the whole system uses.
NEW = "new"  # data: Summary
UPDATE = "update"  # data: {"ids": [...], "read": bool} or {"ids": [...], "tags": [...]} or {"ids": [...], "flags": ...}
DELETE = "delete"  # data: {"ids": [...], "uids": [...]}
PRUNE = "prune"  # data: {"ids": [...], "uids": [...]}  (retention)
TRUNCATE = "truncate"  # data: None (everything deleted)
STATS = "stats"  # data: Stats
ERROR = "error"  # data: str


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: Any = None


class Subscription:
    """An async iterator of events with a bounded backlog."""

    def __init__(self, hub: Hub, maxsize: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(maxsize)
        self.lagged = False  # set when events were dropped because the consumer was too slow

    def _offer(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or after close."""
        try:
            if timeout is None:
                return await self._queue.get()
            return await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None

    def get_nowait(self) -> Event | None:
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        self._hub._unsubscribe(self)
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            pass

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            event = await self._queue.get()
            if event is None:
                return
            yield event

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """Publish/subscribe on one event loop. `publish` must be called on the loop's thread."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._listeners: list[Callable[[Event], None]] = []

    def subscribe(self, maxsize: int = 1000) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscriptions.add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        self._subscriptions.discard(sub)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """A synchronous callback run for every event (it must be quick and must not raise)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def publish(self, type: str, data: Any = None) -> None:
        event = Event(type, data)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type)
        for sub in tuple(self._subscriptions):
            sub._offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
