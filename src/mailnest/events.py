"""The hub: the store publishes what changed, every front door that cares subscribes.

Each change is one frozen event object, one class per kind (as h11 does): its fields are typed, and its class
says which of Mailpit's websocket types it is (`Event.type`), which is what subscriptions filter on. Every event
also has a JSON form (`to_json` / `event_from_json`) so that nodes sharing a database can pass events to each
other (PostgreSQL NOTIFY); a NOTIFY payload is small, so that form carries ids and uids and leaves rich payloads
(a new message's Summary) optional for the receiving node to read again.

Publishing never blocks and never fails: a subscriber that cannot keep up loses events and is told so
(`Subscription.lagged`), so a slow websocket or a stuck IMAP IDLE never slows ingest.

`Broadcast` serves many consumers of the same events (websocket and SSE clients) from one subscription: each
event is rendered once, and fan-outs are spaced and sliced so that thousands of clients take a bounded share of
the loop.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from .models import Address, Stats, Summary

log = logging.getLogger(__name__)

# Mailpit's websocket event types, which the whole system uses (subscriptions filter on them).
NEW = "new"  # MessageAdded
UPDATE = "update"  # ReadChanged, TagsChanged, FlagsChanged, MessagesFiled, FolderRenamed
DELETE = "delete"  # MessagesDeleted
PRUNE = "prune"  # MessagesPruned (retention)
TRUNCATE = "truncate"  # AllDeleted
STATS = "stats"  # StatsChanged
ERROR = "error"  # ErrorReported


class EventError(ValueError):
    """A JSON form that is no event (unknown kind, missing or mistyped field)."""


@dataclass(frozen=True, slots=True)
class Event:
    """What changed. `type` is Mailpit's websocket type of the kind, fixed per class; several kinds share one."""

    type: ClassVar[str] = ""

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict that `event_from_json` turns back into an equal event."""
        return {"event": type(self).__name__}


@dataclass(frozen=True, slots=True)
class MessageAdded(Event):
    """A message was delivered (SMTP, the API, an import, or an IMAP APPEND/COPY to INBOX): the web UI lists it."""

    type: ClassVar[str] = NEW
    summary: Summary

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def uid(self) -> int:
        return self.summary.uid

    def to_json(self, with_summary: bool = True) -> dict[str, Any]:
        """Without the summary, the receiving node reads it again by `id` (see `needs_summary`)."""
        out: dict[str, Any] = {"event": "MessageAdded", "id": self.summary.id, "uid": self.summary.uid}
        if with_summary:
            out["summary"] = summary_to_json(self.summary)
        return out


@dataclass(frozen=True, slots=True)
class ReadChanged(Event):
    """These messages are now read (or unread); from the API, POP3 or IMAP's \\Seen."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    uids: tuple[int, ...]
    read: bool

    def to_json(self) -> dict[str, Any]:
        return {"event": "ReadChanged", "ids": list(self.ids), "uids": list(self.uids), "read": self.read}


@dataclass(frozen=True, slots=True)
class TagsChanged(Event):
    """These messages now carry exactly `tags`. `uids` may be empty: the API's set_tags knows only ids."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    tags: tuple[str, ...]
    uids: tuple[int, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"event": "TagsChanged", "ids": list(self.ids), "uids": list(self.uids), "tags": list(self.tags)}


@dataclass(frozen=True, slots=True)
class FlagsChanged(Event):
    """IMAP flags other than \\Seen changed: `flags[n]` is the whole new set of `uids[n]` (and `ids[n]`)."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    uids: tuple[int, ...]
    flags: tuple[frozenset[str], ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": "FlagsChanged", "ids": list(self.ids), "uids": list(self.uids),
                "flags": [sorted(f) for f in self.flags]}


@dataclass(frozen=True, slots=True)
class MessagesFiled(Event):
    """New rows in an IMAP folder (COPY, MOVE, APPEND to a folder other than INBOX): only IMAP shows them."""

    type: ClassVar[str] = UPDATE
    ids: tuple[str, ...]
    uids: tuple[int, ...]
    folder: str

    def to_json(self) -> dict[str, Any]:
        return {"event": "MessagesFiled", "ids": list(self.ids), "uids": list(self.uids), "folder": self.folder}


@dataclass(frozen=True, slots=True)
class FolderRenamed(Event):
    """An IMAP folder (and its subfolders) was renamed from `old` to `new`; `uids` are the messages that moved."""

    type: ClassVar[str] = UPDATE
    uids: tuple[int, ...]
    old: str
    new: str

    def to_json(self) -> dict[str, Any]:
        return {"event": "FolderRenamed", "uids": list(self.uids), "old": self.old, "new": self.new}


@dataclass(frozen=True, slots=True)
class MessagesDeleted(Event):
    """Deleted on request (API, POP3, IMAP EXPUNGE or DELETE of a folder, a MOVE's sources)."""

    type: ClassVar[str] = DELETE
    ids: tuple[str, ...]
    uids: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": "MessagesDeleted", "ids": list(self.ids), "uids": list(self.uids)}


@dataclass(frozen=True, slots=True)
class MessagesPruned(Event):
    """Deleted by retention (the message limit or the age limit)."""

    type: ClassVar[str] = PRUNE
    ids: tuple[str, ...]
    uids: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"event": "MessagesPruned", "ids": list(self.ids), "uids": list(self.uids)}


@dataclass(frozen=True, slots=True)
class AllDeleted(Event):
    """Every delivered message was deleted at once (IMAP folders keep theirs)."""

    type: ClassVar[str] = TRUNCATE


@dataclass(frozen=True, slots=True)
class StatsChanged(Event):
    """The counts Mailpit's UI shows in its header."""

    type: ClassVar[str] = STATS
    stats: Stats

    def to_json(self) -> dict[str, Any]:
        stats = self.stats
        return {"event": "StatsChanged", "total": stats.total, "unread": stats.unread, "size": stats.size,
                "tags": list(stats.tags)}


@dataclass(frozen=True, slots=True)
class ErrorReported(Event):
    """A problem the web UI shows as a notice; the fields of Mailpit's error event (`kind` is its "Type")."""

    type: ClassVar[str] = ERROR
    message: str
    level: str = "error"
    kind: str = ""
    ip: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"event": "ErrorReported", "message": self.message, "level": self.level, "kind": self.kind,
                "ip": self.ip}


# -- the JSON forms ---------------------------------------------------------------------------------------------


def _address_json(address: Address) -> list[str]:
    return [address.name, address.address]


def summary_to_json(summary: Summary) -> dict[str, Any]:
    """A Summary as plain JSON values; `summary_from_json` gives back an equal one."""
    return {
        "id": summary.id, "uid": summary.uid, "message_id": summary.message_id, "read": summary.read,
        "from": _address_json(summary.from_) if summary.from_ is not None else None,
        "to": [_address_json(a) for a in summary.to], "cc": [_address_json(a) for a in summary.cc],
        "bcc": [_address_json(a) for a in summary.bcc], "reply_to": [_address_json(a) for a in summary.reply_to],
        "subject": summary.subject, "created": summary.created.isoformat(), "size": summary.size,
        "attachments": summary.attachments, "snippet": summary.snippet, "tags": list(summary.tags),
        "folder": summary.folder,
    }


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise EventError(f"event field {key!r}: expected {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _items(data: Mapping[str, Any], key: str, kind: type) -> tuple[Any, ...]:
    values = _get(data, key, list)
    if not all(isinstance(v, kind) and not (isinstance(v, bool) and kind is int) for v in values):
        raise EventError(f"event field {key!r}: expected a list of {kind.__name__}, got {values!r}")
    return tuple(values)


def _address(value: Any) -> Address:
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        raise EventError(f"an address is [name, address], not {value!r}")
    return Address(value[0], value[1])


def _addresses(data: Mapping[str, Any], key: str) -> tuple[Address, ...]:
    return tuple(_address(v) for v in _get(data, key, list))


def summary_from_json(data: Mapping[str, Any]) -> Summary:
    """The Summary `summary_to_json` wrote (EventError when `data` is not one)."""
    try:
        created = datetime.fromisoformat(_get(data, "created", str))
    except ValueError as exc:
        raise EventError(f"summary field 'created': {exc}") from None
    sender = data.get("from")
    return Summary(
        id=_get(data, "id", str), uid=_get(data, "uid", int), message_id=_get(data, "message_id", str),
        read=_get(data, "read", bool), from_=None if sender is None else _address(sender),
        to=_addresses(data, "to"), cc=_addresses(data, "cc"), bcc=_addresses(data, "bcc"),
        reply_to=_addresses(data, "reply_to"), subject=_get(data, "subject", str), created=created,
        size=_get(data, "size", int), attachments=_get(data, "attachments", int),
        snippet=_get(data, "snippet", str), tags=_items(data, "tags", str), folder=_get(data, "folder", str))


def needs_summary(data: Mapping[str, Any]) -> str | None:
    """The id of the message whose Summary the receiving node must read to rebuild this MessageAdded (sent
    without it), else None."""
    if data.get("event") == "MessageAdded" and data.get("summary") is None:
        return str(_get(data, "id", str))
    return None


def _message_added(data: Mapping[str, Any], summary: Summary | None) -> MessageAdded:
    sent = data.get("summary")
    if sent is not None:
        return MessageAdded(summary_from_json(_get(data, "summary", dict)))
    if summary is None:
        raise EventError("a MessageAdded sent without its summary needs the summary read again (needs_summary)")
    if summary.id != data.get("id"):
        raise EventError(f"the summary given is of {summary.id!r}, the event of {data.get('id')!r}")
    return MessageAdded(summary)


def event_from_json(data: Mapping[str, Any], summary: Summary | None = None) -> Event:
    """The event `Event.to_json` wrote. A MessageAdded written without its summary needs `summary`, read again
    by the id `needs_summary` names. Raises EventError (a ValueError) for anything else."""
    kind = data.get("event")
    if kind == "MessageAdded":
        return _message_added(data, summary)
    if kind == "ReadChanged":
        return ReadChanged(_items(data, "ids", str), _items(data, "uids", int), _get(data, "read", bool))
    if kind == "TagsChanged":
        return TagsChanged(_items(data, "ids", str), _items(data, "tags", str), _items(data, "uids", int))
    if kind == "FlagsChanged":
        flags = tuple(frozenset(_items({"flags": f}, "flags", str)) for f in _get(data, "flags", list))
        event = FlagsChanged(_items(data, "ids", str), _items(data, "uids", int), flags)
        if not len(event.ids) == len(event.uids) == len(event.flags):
            raise EventError("FlagsChanged: ids, uids and flags must be as long as each other")
        return event
    if kind == "MessagesFiled":
        return MessagesFiled(_items(data, "ids", str), _items(data, "uids", int), _get(data, "folder", str))
    if kind == "FolderRenamed":
        return FolderRenamed(_items(data, "uids", int), _get(data, "old", str), _get(data, "new", str))
    if kind == "MessagesDeleted":
        return MessagesDeleted(_items(data, "ids", str), _items(data, "uids", int))
    if kind == "MessagesPruned":
        return MessagesPruned(_items(data, "ids", str), _items(data, "uids", int))
    if kind == "AllDeleted":
        return AllDeleted()
    if kind == "StatsChanged":
        return StatsChanged(Stats(_get(data, "total", int), _get(data, "unread", int), _get(data, "size", int),
                                  _items(data, "tags", str)))
    if kind == "ErrorReported":
        return ErrorReported(_get(data, "message", str), _get(data, "level", str), _get(data, "kind", str),
                             _get(data, "ip", str))
    raise EventError(f"not an event: {kind!r}")


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
        """The next event, or None on timeout or after close."""
        if not self._items and not self._closed:
            try:
                await asyncio.wait_for(self._wait(), timeout)
            except TimeoutError:
                return None
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

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """A synchronous callback run for every event (it must be quick and must not raise)."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def publish(self, event: Event) -> None:
        """Hand `event` to every listener, then to the subscriptions that asked for its `type`."""
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:
                log.exception("event listener failed on %s", type(event).__name__)
        for sub in self._interested(event.type):
            sub._offer(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscriptions)


# -- one subscription, many consumers ---------------------------------------------------------------------------

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
