"""Live events: Mailpit's websocket at `/api/events`, and the same stream as Server-Sent Events at `/api/v1/events`.

Every event is Mailpit's `{"Type": ..., "Data": ...}`; as in Mailpit, events that queued up while a client was
being written to travel together in one websocket message, one JSON object per line:
- `new`: the message summary (as in `GET /api/v1/messages`);
- `update`: `{"ID", "Read"}` or `{"ID", "Tags"}` for each changed message;
- `delete`: `{"ID"}` for each deleted message (mailnest adds `"IDs": [ID]`);
- `prune`: messages went by retention, or this client fell behind: reload (`Data` is null or `{"IDs": [...]}`);
- `truncate`: every message was deleted (`Data` null);
- `stats`: `{"Total", "Unread", "Version"}`, sent on connect and at most twice a second after changes;
- `error`: `{"Level", "Type", "IP", "Message"}`.
Over SSE each event is an unnamed `data:` line holding the same JSON, so `EventSource.onmessage` gets it all.

One hub subscription serves every client: each event is rendered once and offered to each client's bounded
queue. A client that cannot keep up (slow network, stopped tab) loses events instead of holding anything up, and
is then sent a `prune` (reload) and fresh `stats`. Ingest never waits for a client.

Cross-site use is refused: a request with an Origin header must come from the page's own host (Origin host
equals the Host header) or from an origin in `Config.cors_origins` (`*` allows any). Tools without an Origin
header (curl, scripts) are welcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__, events
from ..events import Event, Hub
from ..models import Summary
from ..store.base import Store
from . import json as render

log = logging.getLogger("mailnest.http")

CLIENT_QUEUE = 1000  # frames a client may be behind before it is told to reload (above one commit batch)
HUB_QUEUE = 10_000
MAX_EVENTS_PER_CHANGE = 200  # above this many messages in one change, clients get one "prune" instead
STATS_INTERVAL = 0.5  # stats count every message: at most twice a second, whatever the ingest rate
SEND_TIMEOUT = 10.0
SSE_HEARTBEAT = 15.0
BATCH_BYTES = 256 * 1024
COALESCE = 0.02  # seconds between two sends to one client, at least


def frame(type_: str, data: Any) -> str:
    return json.dumps({"Type": type_, "Data": data}, ensure_ascii=False, separators=(",", ":"))


RELOAD = frame(events.PRUNE, None)


def frames(event: Event) -> list[str]:
    """Mailpit's websocket messages for one hub event (pure)."""
    data = event.data
    if event.type == events.NEW and isinstance(data, Summary):
        return [frame(events.NEW, render.summary(data))]
    if event.type == events.UPDATE and isinstance(data, dict):
        ids: Sequence[str] = data.get("ids") or ()
        if len(ids) > MAX_EVENTS_PER_CHANGE:
            return [RELOAD]
        if "read" in data:
            return [frame(events.UPDATE, {"ID": i, "Read": bool(data["read"])}) for i in ids]
        if "tags" in data:
            return [frame(events.UPDATE, {"ID": i, "Tags": list(data["tags"])}) for i in ids]
        return []  # IMAP flags and folders: not Mailpit's business
    if event.type == events.DELETE and isinstance(data, dict):
        deleted: Sequence[str] = data.get("ids") or ()
        if len(deleted) > MAX_EVENTS_PER_CHANGE:
            return [frame(events.PRUNE, {"IDs": list(deleted)})]
        return [frame(events.DELETE, {"ID": i, "IDs": [i]}) for i in deleted]
    if event.type == events.PRUNE:
        pruned: Sequence[str] = (data.get("ids") if isinstance(data, dict) else None) or ()
        small = 0 < len(pruned) <= 10 * MAX_EVENTS_PER_CHANGE
        return [frame(events.PRUNE, {"IDs": list(pruned)} if small else None)]
    if event.type == events.TRUNCATE:
        return [frame(events.TRUNCATE, None)]
    if event.type == events.STATS:
        return [frame(events.STATS, render.stats(data.total, data.unread, __version__))] if data else []
    if event.type == events.ERROR:
        if isinstance(data, Mapping):
            return [frame(events.ERROR, dict(data))]
        return [frame(events.ERROR, {"Level": "error", "Type": "", "IP": "", "Message": str(data)})]
    return []


def batches(items: Sequence[str], limit: int = BATCH_BYTES) -> list[str]:
    """Pending events joined by newlines into as few websocket messages as fit `limit`, as Mailpit sends them
    (a burst of events then costs one send per client, not one per event)."""
    out: list[str] = []
    current: list[str] = []
    size = 0
    for text in items:
        if current and size + len(text) > limit:
            out.append("\n".join(current))
            current, size = [], 0
        current.append(text)
        size += len(text) + 1
    if current:
        out.append("\n".join(current))
    return out


def origin_allowed(headers: Mapping[str, str], allowed: Sequence[str]) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return True
    if origin in allowed or "*" in allowed:
        return True
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc == headers.get("host", "").lower()


class _Client:
    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.ready = asyncio.Event()
        self.lagged = False
        self.last_send = 0.0

    def offer(self, items: Sequence[str]) -> None:
        if self.lagged:
            return
        if len(self.queue) + len(items) > CLIENT_QUEUE:
            self.queue.clear()
            self.lagged = True
        else:
            self.queue.extend(items)
        self.ready.set()


class EventStream:
    """The shared subscription and fan-out. Starts with the first client, stops with the last."""

    def __init__(self, store: Store, hub: Hub) -> None:
        self.store = store
        self.hub = hub
        self.clients: set[_Client] = set()
        self._pump: asyncio.Task[None] | None = None
        self._stats_task: asyncio.Task[None] | None = None

    @property
    def client_count(self) -> int:
        return len(self.clients)

    def attach(self) -> _Client:
        client = _Client()
        self.clients.add(client)
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run(), name="mailnest-live-events")
        return client

    def detach(self, client: _Client) -> None:
        self.clients.discard(client)
        if not self.clients:
            for task in (self._pump, self._stats_task):
                if task is not None:
                    task.cancel()
            self._pump = self._stats_task = None

    async def stats_frame(self) -> str:
        stats = await self.store.stats()
        return frame(events.STATS, render.stats(stats.total, stats.unread, __version__))

    async def _run(self) -> None:
        handled = 0
        with self.hub.subscribe(maxsize=HUB_QUEUE) as sub:
            async for event in sub:
                if sub.lagged:
                    sub.lagged = False
                    for client in self.clients:
                        client.offer([RELOAD])
                        client.lagged = True
                items = frames(event)
                if items:
                    for client in self.clients:
                        client.offer(items)
                    handled += 1
                    if handled % 100 == 0:
                        await asyncio.sleep(0)  # a commit publishes hundreds at once: let the senders drain
                if event.type != events.STATS and (self._stats_task is None or self._stats_task.done()):
                    self._stats_task = asyncio.get_running_loop().create_task(self._send_stats())

    async def _send_stats(self) -> None:
        await asyncio.sleep(STATS_INTERVAL)
        try:
            text = await self.stats_frame()
        except RuntimeError:  # the store is closing
            return
        for client in self.clients:
            client.offer([text])

    async def next_frames(self, client: _Client, timeout: float | None = None) -> list[str] | None:
        """The client's pending frames (waiting for some), or None on timeout."""
        if not client.queue and not client.lagged:
            client.ready.clear()
            try:
                await asyncio.wait_for(client.ready.wait(), timeout)
            except TimeoutError:
                return None
            # Under load, events come in runs: a client is sent to at most once per COALESCE seconds, so a run
            # becomes one send per client instead of one per event. A lone event still goes out at once.
            wait = client.last_send + COALESCE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        client.last_send = time.monotonic()
        if client.lagged:
            client.lagged = False
            client.queue.clear()
            return [RELOAD, await self.stats_frame()]
        items = list(client.queue)
        client.queue.clear()
        return items


class LiveEvents:
    def __init__(self, store: Store, hub: Hub, cors_origins: Sequence[str]) -> None:
        self.stream = EventStream(store, hub)
        self.cors_origins = tuple(cors_origins)

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute("/api/events", self.websocket),
            Route("/api/v1/events", self.server_sent, methods=["GET"]),
        ]

    async def websocket(self, websocket: WebSocket) -> None:
        if not origin_allowed(websocket.headers, self.cors_origins):
            log.warning("refused a websocket from origin %r (host %r)", websocket.headers.get("origin"),
                        websocket.headers.get("host"))
            await websocket.close(code=1008)  # before accept: the client gets HTTP 403
            return
        await websocket.accept()
        client = self.stream.attach()
        receiver = asyncio.get_running_loop().create_task(self._drain_incoming(websocket))
        try:
            await websocket.send_text(await self.stream.stats_frame())
            while not receiver.done():
                waiter = asyncio.ensure_future(self.stream.next_frames(client))
                done, _ = await asyncio.wait({waiter, receiver}, return_when=asyncio.FIRST_COMPLETED)
                if waiter not in done:
                    waiter.cancel()
                    break
                for text in batches(waiter.result() or ()):
                    await asyncio.wait_for(websocket.send_text(text), SEND_TIMEOUT)
        except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
            pass
        finally:
            self.stream.detach(client)
            receiver.cancel()
            with contextlib.suppress(Exception):
                await websocket.close()

    @staticmethod
    async def _drain_incoming(websocket: WebSocket) -> None:
        # Clients send nothing useful; reading is how a closed connection is noticed.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    return

    async def server_sent(self, request: Request) -> Response:
        if not origin_allowed(request.headers, self.cors_origins):
            return JSONResponse({"Error": "cross-site use of the event stream is not allowed"}, status_code=403)
        return StreamingResponse(self._sse(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _sse(self) -> AsyncIterator[str]:
        client = self.stream.attach()
        try:
            yield "retry: 3000\n\n"
            yield f"data: {await self.stream.stats_frame()}\n\n"
            while True:
                items = await self.stream.next_frames(client, timeout=SSE_HEARTBEAT)
                if items is None:
                    yield ": keep-alive\n\n"
                    continue
                yield "".join(f"data: {text}\n\n" for text in items)
        finally:
            self.stream.detach(client)
