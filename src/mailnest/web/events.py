"""Live events: Mailpit's websocket at `/api/events`, and the same stream as Server-Sent Events at `/api/v1/events`.

Every event is Mailpit's `{"Type": ..., "Data": ...}`; as in Mailpit, events that queued up while a client was
being written to travel together in one websocket message, one JSON object per line:
- `new`: the message summary (as in `GET /api/v1/messages`);
- `update`: `{"ID", "Read"}` or `{"ID", "Tags"}` for each changed message;
- `delete`: `{"ID"}` for each deleted message (mailnest adds `"IDs": [ID]`);
- `prune`: messages went by retention, or more changed at once than a client may queue: reload (`Data` is null or `{"IDs": [...]}`);
- `truncate`: every message was deleted (`Data` null);
- `stats`: `{"Total", "Unread", "Version"}`, sent on connect and at most twice a second after changes;
- `error`: `{"Level", "Type", "IP", "Message"}`.
Over SSE each event is an unnamed `data:` line holding the same JSON, so `EventSource.onmessage` gets it all.

One hub subscription serves every client (`Broadcast`): each event is rendered once, and what arrived within one
short interval is joined once into shared websocket messages that every client is handed by reference, a slice
of clients per turn of the loop. The interval is eight times what the last fan-out took (20 ms to 1 s; 2,000
clients: about 0.5 s), so fan-out takes a bounded share of the loop whatever the ingest rate, and ingest never
waits for a client. A client with more than `--max-event-queue` events not yet sent (slow network, stopped tab)
is dropped: the websocket is closed with code 1013 and a reason, the SSE stream ends with an `error` event of
Type "too-slow" (where it can still be written); the UI then reconnects and reloads.

Cross-site use is refused: a request with an Origin header must come from the page's own host (Origin host
equals the Host header) or from an origin in `Config.cors_origins` (`*` allows any). Tools without an Origin
header (curl, scripts) are welcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__, events
from ..events import SEND_TIMEOUT, Broadcast, Event, FeedClient, Hub
from ..store.base import Store
from . import json as render

log = logging.getLogger("mailnest.http")

MAX_EVENTS_PER_CHANGE = 200  # above this many messages in one change, clients get one "prune" instead
STATS_INTERVAL = 0.5  # stats count every message: at most twice a second, whatever the ingest rate
SSE_HEARTBEAT = 15.0
BATCH_BYTES = 256 * 1024
TOO_SLOW = 1013  # websocket close code "try again later"


def frame(type_: str, data: Any) -> str:
    return json.dumps({"Type": type_, "Data": data}, ensure_ascii=False, separators=(",", ":"))


RELOAD = frame(events.PRUNE, None)


def frames(event: Event) -> list[str]:
    """Mailpit's websocket messages for one hub event (pure)."""
    match event:
        case events.MessageAdded(summary=summary):
            return [frame(events.NEW, render.summary(summary))]
        case events.ReadChanged(ids=ids, read=read):
            if len(ids) > MAX_EVENTS_PER_CHANGE:
                return [RELOAD]
            return [frame(events.UPDATE, {"ID": i, "Read": read}) for i in ids]
        case events.TagsChanged(ids=ids, tags=tags):
            if len(ids) > MAX_EVENTS_PER_CHANGE:
                return [RELOAD]
            return [frame(events.UPDATE, {"ID": i, "Tags": list(tags)}) for i in ids]
        case events.MessagesDeleted(ids=deleted):
            if len(deleted) > MAX_EVENTS_PER_CHANGE:
                return [frame(events.PRUNE, {"IDs": list(deleted)})]
            return [frame(events.DELETE, {"ID": i, "IDs": [i]}) for i in deleted]
        case events.MessagesPruned(ids=pruned):
            small = 0 < len(pruned) <= 10 * MAX_EVENTS_PER_CHANGE
            return [frame(events.PRUNE, {"IDs": list(pruned)} if small else None)]
        case events.AllDeleted():
            return [frame(events.TRUNCATE, None)]
        case events.StatsChanged(stats=stats):
            return [frame(events.STATS, render.stats(stats.total, stats.unread, f"v{__version__}"))]
        case events.ErrorReported(message=message, level=level, kind=kind, ip=ip):
            return [frame(events.ERROR, {"Level": level, "Type": kind, "IP": ip, "Message": message})]
    return []  # IMAP flags and folders: not Mailpit's business


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


def fold_origin(origin: str) -> str:
    """An Origin as --cors origins are kept: ASCII lower-cased, as Mailpit compares them (a non-ASCII origin
    matches nothing)."""
    return origin.lower() if origin.isascii() else "\x00"


def origin_allowed(headers: Mapping[str, str], allowed: Sequence[str]) -> bool:
    origin = headers.get("origin")
    if origin is None:
        return True
    if "*" in allowed or fold_origin(origin) in allowed:
        return True
    netloc = urlsplit(origin).netloc.lower()
    return bool(netloc) and netloc == headers.get("host", "").lower()


async def serve_websocket(broadcast: Broadcast, websocket: WebSocket, first: Sequence[str] = ()) -> None:
    """Run an accepted websocket on `broadcast`: `first`, then every fan-out, until the peer leaves or is
    dropped (closed with 1013 and the reason)."""
    client = broadcast.attach()
    receiver = asyncio.get_running_loop().create_task(_drain_incoming(websocket, client))
    code, reason = 1000, ""
    try:
        for text in first:
            await client.send(websocket.send_text, text)
        while True:
            messages = await broadcast.next_messages(client)
            if client.dropped:
                code, reason = TOO_SLOW, broadcast.too_slow()
                log.info("closed a slow websocket client %s: %s", _peer(websocket), reason)
                break
            if client.gone:
                break
            for text in messages or ():
                await client.send(websocket.send_text, text)
    except TimeoutError:
        code, reason = TOO_SLOW, (broadcast.too_slow() if client.dropped else
                                  f"too slow: a message could not be sent within {SEND_TIMEOUT:g}s")
        log.info("closed a slow websocket client %s: %s", _peer(websocket), reason)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        broadcast.detach(client)
        receiver.cancel()
        if not client.gone:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(websocket.close(code, reason), 1.0)


def _peer(connection: WebSocket | Request) -> str:
    client = connection.client
    return f"{client.host}:{client.port}" if client else "?"


async def _drain_incoming(websocket: WebSocket, client: FeedClient) -> None:
    # Clients send nothing useful; reading is how a closed connection is noticed.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
    client.gone = True
    client.ready.set()


class LiveEvents:
    """Mailpit's event stream: the websocket and SSE routes over one `Broadcast`, plus stats."""

    def __init__(self, store: Store, hub: Hub, cors_origins: Sequence[str], max_queue: int = 1000) -> None:
        self.store = store
        self.cors_origins = tuple(cors_origins)
        self.stream = Broadcast(hub, frames, max_queue=max_queue, join=batches, reload=RELOAD)
        self.stream.on_event = self._changed
        self._stats_task: asyncio.Task[None] | None = None
        self._stats: asyncio.Future[str] | None = None  # the stats frame, shared until the next change

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute("/api/events", self.websocket),
            Route("/api/v1/events", self.server_sent, methods=["GET"]),
        ]

    def _changed(self, event: Event) -> None:
        if isinstance(event, events.StatsChanged):
            return
        self._stats = None
        if self.stream.clients and (self._stats_task is None or self._stats_task.done()):
            self._stats_task = self.stream.later(self._send_stats())

    async def _send_stats(self) -> None:
        await asyncio.sleep(STATS_INTERVAL)  # stats count every message: at most twice a second
        try:
            text = await self.stats_frame()
        except RuntimeError:  # the store is closing
            return
        self.stream.publish([text])

    async def stats_frame(self) -> str:
        """The current stats, asked of the store once however many clients connect at the same moment."""
        shared = self._stats
        if shared is None or (shared.done() and (shared.cancelled() or shared.exception() is not None)):
            shared = self._stats = asyncio.ensure_future(self._query_stats())
        return await asyncio.shield(shared)

    async def _query_stats(self) -> str:
        stats = await self.store.stats()
        return frame(events.STATS, render.stats(stats.total, stats.unread, f"v{__version__}"))

    async def websocket(self, websocket: WebSocket) -> None:
        if not origin_allowed(websocket.headers, self.cors_origins):
            log.warning("refused a websocket from origin %r (host %r)", websocket.headers.get("origin"),
                        websocket.headers.get("host"))
            await websocket.close(code=1008)  # before accept: the client gets HTTP 403
            return
        await websocket.accept()
        await serve_websocket(self.stream, websocket, first=[await self.stats_frame()])

    async def server_sent(self, request: Request) -> Response:
        if not origin_allowed(request.headers, self.cors_origins):
            return JSONResponse({"Error": "cross-site use of the event stream is not allowed"}, status_code=403)
        return _ServerSentEvents(self)


class _ServerSentEvents(Response):
    """The SSE stream as a bare ASGI response, so a send stuck on a slow client can be ended when it is dropped
    (Starlette's StreamingResponse would wait on it for good)."""

    def __init__(self, live: LiveEvents) -> None:
        super().__init__(media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # a stream: chunked
        self.live = live

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self.live.stream

        async def body(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        client = stream.attach()
        watcher = asyncio.get_running_loop().create_task(_watch_disconnect(receive, client))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await client.send(body, f"retry: 3000\n\ndata: {await self.live.stats_frame()}\n\n")
            while True:
                messages = await stream.next_messages(client, timeout=SSE_HEARTBEAT)
                if client.gone or client.dropped:
                    break
                await client.send(body, ": keep-alive\n\n" if messages is None else
                                  "".join(map(_sse_lines, messages)))
        except TimeoutError:  # a send that did not finish in time, or was ended by the drop
            pass
        except (OSError, RuntimeError):
            client.gone = True
        finally:
            stream.detach(client)
            watcher.cancel()
        if client.dropped or not client.gone:
            reason = stream.too_slow() if client.dropped else (
                f"too slow: a message could not be sent within {SEND_TIMEOUT:g}s")
            log.info("ended a slow event-stream client %s: %s", _address(scope), reason)
            error = frame(events.ERROR, {"Level": "warning", "Type": "too-slow", "IP": "", "Message": reason})
            # Said where it can still be written; the stream ends either way, and EventSource reconnects.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(send({"type": "http.response.body", "body": f"data: {error}\n\n".encode(),
                                             "more_body": False}), 1.0)
        else:
            with contextlib.suppress(Exception):
                await send({"type": "http.response.body", "body": b"", "more_body": False})


def _address(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "?"


@functools.lru_cache(maxsize=16)
def _sse_lines(message: str) -> str:
    """A shared websocket message as SSE events: one `data:` line per event. Every client of one fan-out gets
    the same string, so this runs once per message, not once per client."""
    return "".join(f"data: {line}\n\n" for line in message.split("\n"))


async def _watch_disconnect(receive: Receive, client: FeedClient) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    client.gone = True
    client.ready.set()
