"""Publish/subscribe on one event loop: the store publishes what changed, every front door that cares subscribes.

Publishing never blocks and never fails: a subscriber that cannot keep up loses events and is told so
(`Subscription.lagged`), so a slow websocket or a stuck IMAP IDLE never slows ingest.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable

from .kinds import Event

log = logging.getLogger("mailnest.events")


class Subscription:
    """An async iterator of events with a bounded backlog.

    A plain deque and at most one waiting future: offering an event is an append and, when the consumer waits,
    one wake-up; no lock, no task, no copy."""

    __slots__ = ("_closed", "_hub", "_items", "_maxsize", "_waiter", "lagged", "types")

    def __init__(self, hub: Hub, maxsize: int, types: frozenset[str] | None = None) -> None:
        self._hub = hub
        self._items: deque[Event] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.types = types  # None: every type
        self.lagged = False  # set when events were dropped because the consumer was too slow

    def _offer(self, event: Event) -> None:
        if len(self._items) >= self._maxsize:
            self.lagged = True
            return
        self._items.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            await waiter
        finally:
            self._waiter = None

    async def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or None on timeout or after close.

        The waiter is in place before this first yields to the loop: `wait_for` runs a coroutine as a task that
        starts a turn later, and an event offered in that turn would have found no waiter to wake."""
        if not self._items and not self._closed:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(waiter, timeout)
            except TimeoutError:
                pass
            finally:
                self._waiter = None
        return self.get_nowait()

    def get_nowait(self) -> Event | None:
        return self._items.popleft() if self._items else None

    def close(self) -> None:
        self._hub._unsubscribe(self)
        self._closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            if not self._items:
                if self._closed:
                    return
                await self._wait()
                continue
            yield self._items.popleft()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Hub:
    """Publish/subscribe on one event loop. `publish` must be called on the loop's thread.

    Publishing costs one append per interested subscriber: subscribers are indexed by the event types they asked
    for, and the tuple iterated is rebuilt only after a subscribe or unsubscribe, not on every publish."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        self._by_type: dict[str, tuple[Subscription, ...]] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self._local_listeners: list[Callable[[Event], None]] = []  # changes made by this node only

    def subscribe(self, maxsize: int = 1000, *, types: Iterable[str] | None = None) -> Subscription:
        """A subscription to every event, or only to those whose `Event.type` is one of `types` (Mailpit's type
        strings, such as NEW; others are never offered to it)."""
        sub = Subscription(self, maxsize, frozenset(types) if types is not None else None)
        self._subscriptions.add(sub)
        self._changed()
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscriptions:
            self._subscriptions.discard(sub)
            self._changed()

    def _changed(self) -> None:
        self._by_type.clear()

    def _interested(self, type: str) -> tuple[Subscription, ...]:
        subs = self._by_type.get(type)
        if subs is None:
            subs = self._by_type[type] = tuple(s for s in self._subscriptions if s.types is None or type in s.types)
        return subs

    def add_listener(self, listener: Callable[[Event], None], *, local_only: bool = False) -> None:
        """A synchronous callback run for every event (it must be quick and must not raise).

        `local_only`: only for changes this node made. A store shared by several nodes republishes the other
        nodes' changes here (`publish(remote=True)`); work that must happen once per message (outputs, relay,
        webhooks) listens to the node that received the message, and no other."""
        (self._local_listeners if local_only else self._listeners).append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        for listeners in (self._listeners, self._local_listeners):
            if listener in listeners:
                listeners.remove(listener)

    def publish(self, event: Event, *, remote: bool = False) -> None:
        """Hand `event` to every listener, then to the subscriptions that asked for its `type`. `remote`: the
        change was made by another node sharing the store (local-only listeners do not hear of it)."""
        listeners = self._listeners if remote else (*self._listeners, *self._local_listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type(event).__name__)
        for sub in self._interested(event.type):
            sub._offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)
