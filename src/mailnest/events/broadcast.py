"""One hub subscription, many consumers (websocket and SSE clients): each event is rendered once, and fan-outs
are spaced and sliced so that thousands of clients take a bounded share of the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from typing import Any

from .hub import Hub
from .kinds import Event

log = logging.getLogger("mailnest.events")

HUB_QUEUE = 10_000  # events a broadcast's own subscription may be behind before everyone reloads
SEND_TIMEOUT = 10.0  # seconds one send to one client may take
COALESCE = 0.02  # seconds between two fan-outs, at least
FANOUT_SHARE = 8  # the interval between fan-outs is at least this many times what the last one took to send
FANOUT_SLICE = 100  # clients handed a fan-out per turn of the loop
MAX_INTERVAL = 1.0  # seconds: what a live page may lag behind, at most, however many clients there are


class FeedClient:
    """One connection's share of the broadcast: the shared messages not yet sent to it."""

    __slots__ = ("dropped", "gone", "queue", "queued", "ready", "sending", "waiting")

    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.queued = 0  # events (not messages) waiting in `queue`
        self.ready = asyncio.Event()
        self.dropped = False  # fell more than max_queue events behind: to be closed
        self.gone = False  # the peer went away
        self.sending: asyncio.Timeout | None = None  # the deadline of the send under way
        self.waiting = False  # in next_messages, so it will take the next fan-out at once

    def offer(self, messages: Sequence[str], count: int, max_queue: int) -> bool:
        """True when the client is waiting and will now send these at once."""
        if self.dropped:
            return False
        if self.queued + count > max_queue:
            self.drop()
            return False
        self.queue.extend(messages)
        self.queued += count
        self.ready.set()
        return self.waiting

    def drop(self) -> None:
        self.dropped = True
        self.queue.clear()
        self.queued = 0
        self.ready.set()
        if self.sending is not None:  # a send stuck on a full socket ends now, not at its deadline
            self.sending.reschedule(asyncio.get_running_loop().time())

    def take(self) -> list[str]:
        items = list(self.queue)
        self.queue.clear()
        self.queued = 0
        return items

    async def send(self, send: Callable[[str], Awaitable[None]], text: str) -> None:
        """One message, within SEND_TIMEOUT; raises TimeoutError when it could not be sent or the client was
        dropped meanwhile."""
        async with asyncio.timeout(SEND_TIMEOUT) as deadline:
            self.sending = deadline
            try:
                await send(text)
            finally:
                self.sending = None


Render = Callable[[Event], "list[str] | Awaitable[list[str]]"]


class Broadcast:
    """One hub subscription, many clients: each event is rendered once by `render` (sync or async) and each
    fan-out hands every client the same message strings. Starts with the first client, stops with the last.

    `join`: turns the frames of one fan-out into the messages sent (Mailpit's websocket joins them by lines);
    without it each rendered frame is a message of its own (MailHog's). `reload`: the frame sent instead when
    more than `max_queue` events arrive within one interval; without it the oldest of them are left out.
    A client more than `max_queue` events behind (its sends blocked) is dropped: `next_messages` returns []
    and `client.dropped` is set; the connection's code closes it and says why (`too_slow`)."""

    def __init__(self, hub: Hub, render: Render, *, max_queue: int, types: Iterable[str] | None = None,
                 join: Callable[[list[str]], list[str]] | None = None, reload: str | None = None) -> None:
        self.hub = hub
        self.render = render
        self.max_queue = max_queue
        self.types = tuple(types) if types is not None else None
        self.join = join
        self.reload = reload
        self.clients: set[FeedClient] = set()
        self.dropped = 0  # clients dropped as too slow, since start
        self._pending: list[str] = []
        self._overflow = False
        self._flush: asyncio.TimerHandle | None = None
        self._last_flush = 0.0
        self._pump: asyncio.Task[None] | None = None
        self._offering = False  # a fan-out is being handed out, slice by slice
        self._round_left = 0  # waiting clients yet to take the last fan-out
        self._round_started = 0.0
        self.cost = 0.0  # seconds the last fan-out took until every waiting client had been handed it
        self.on_event: Callable[[Event], None] | None = None  # called for every event, before rendering
        self._helpers: set[asyncio.Task[None]] = set()

    def later(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run `work` for the clients; it is cancelled when the last client leaves."""
        task = asyncio.get_running_loop().create_task(work)
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)
        return task

    @property
    def client_count(self) -> int:
        return len(self.clients)

    def attach(self) -> FeedClient:
        client = FeedClient()
        self.clients.add(client)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run(), name="mailnest-live-events")
        return client

    def detach(self, client: FeedClient) -> None:
        self.clients.discard(client)
        if not self.clients:
            if self._pump is not None:
                self._pump.cancel()
            if self._flush is not None:
                self._flush.cancel()
            self._pump = self._flush = None
            self._offering, self._round_left = False, 0
            for task in self._helpers:
                task.cancel()
            self._pending, self._overflow = [], False

    def interval(self) -> float:
        """Fan-outs are at least this far apart: so sending to many clients takes a bounded share of the loop
        (measured, not guessed: the cost depends on the machine and on what the clients read)."""
        return min(MAX_INTERVAL, max(COALESCE, FANOUT_SHARE * self.cost))

    async def _run(self) -> None:
        handled = 0
        with self.hub.subscribe(maxsize=HUB_QUEUE, types=self.types) as sub:
            async for event in sub:
                if sub.lagged:  # the pump itself fell behind: everyone reloads
                    sub.lagged = False
                    if self.reload is not None:
                        self._pending, self._overflow = [self.reload], True
                        self._schedule()
                if self.on_event is not None:
                    self.on_event(event)
                rendered = self.render(event)
                items = await rendered if inspect.isawaitable(rendered) else rendered
                if items:
                    self.publish(items)
                handled += 1
                if handled % 100 == 0:
                    await asyncio.sleep(0)  # a commit publishes hundreds at once: let the rest of the loop run

    def publish(self, items: Sequence[str]) -> None:
        """Frames for every client, sent with the next fan-out."""
        if not self.clients:
            return
        if not self._overflow:
            self._pending.extend(items)
            if len(self._pending) > self.max_queue:
                if self.reload is not None:
                    self._pending, self._overflow = [self.reload], True
                else:
                    del self._pending[:-self.max_queue]
        self._schedule()

    def _schedule(self) -> None:
        # One fan-out at a time: a client must get the messages in the order they were published.
        if self._flush is None and not self._offering and self._pending:
            loop = asyncio.get_running_loop()
            delay = max(0.0, self._last_flush + self.interval() - loop.time())
            self._flush = loop.call_later(delay, self._fan_out)

    def _fan_out(self) -> None:
        self._flush = None
        self._last_flush = asyncio.get_running_loop().time()
        items, self._pending, self._overflow = self._pending, [], False
        if not items:
            return
        messages = self.join(items) if self.join is not None else items
        self._offering, self._round_left, self._round_started = True, 0, self._last_flush
        self._offer_slice(tuple(self.clients), 0, messages, len(items))

    def _offer_slice(self, clients: tuple[FeedClient, ...], start: int, messages: list[str], count: int) -> None:
        """Hand the messages to FANOUT_SLICE clients, then let the loop run (their sends, other listeners'
        I/O) before the next slice: thousands of clients never hold the loop for one long stretch."""
        end = start + FANOUT_SLICE
        for client in clients[start:end]:
            self._round_left += client.offer(messages, count, self.max_queue)
        if end < len(clients):
            asyncio.get_running_loop().call_soon(self._offer_slice, clients, end, messages, count)
            return
        self._offering = False
        if not self._round_left:
            self.cost = asyncio.get_running_loop().time() - self._round_started
        self._schedule()

    def _took(self) -> None:
        """A waiting client took its share of the last fan-out."""
        if self._round_left > 0:
            self._round_left -= 1
            if not self._round_left and not self._offering:
                self.cost = asyncio.get_running_loop().time() - self._round_started
                log.debug("fan-out to %d clients took %.1f ms", len(self.clients), self.cost * 1000)

    async def next_messages(self, client: FeedClient, timeout: float | None = None) -> list[str] | None:
        """The client's pending messages (waiting for some); None on timeout; [] once it is dropped or gone."""
        if not client.queue and not client.dropped and not client.gone:
            client.ready.clear()
            client.waiting = True
            try:
                await asyncio.wait_for(client.ready.wait(), timeout)
            except TimeoutError:
                return None
            finally:
                client.waiting = False
            self._took()
        return [] if client.dropped or client.gone else client.take()

    def too_slow(self) -> str:
        self.dropped += 1
        return f"too slow: more than {self.max_queue} events were waiting; reconnect to catch up"
