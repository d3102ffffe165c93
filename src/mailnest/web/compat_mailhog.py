"""MailHog's API, for MailHog's clients: `GET /api/v2/messages`, `GET /api/v2/search` (`kind` = from / to /
containing), `/api/v2/jim` (MailHog's chaos monkey, mapped onto mailnest's chaos settings), `/api/v2/outgoing-smtp`,
the `/api/v2/websocket` feed of new messages, and MailHog's v1 message routes.

Where a MailHog path is also a Mailpit path (`GET`/`DELETE /api/v1/messages`, `/api/v1/events`), Mailpit's
meaning wins; `DELETE /api/v1/messages` answers an empty body to a client that sends no Accept header, which is
what MailHog's Node client needs.

Messages are rendered in MailHog's shape (`ID`, `From`/`To` as SMTP paths from the envelope, `Content` with the
header fields (raw values, Go's canonical names) and the raw body, `MIME.Parts` for multipart messages (each part
the same way, nested multiparts with their own `MIME`), `Created`, and `Raw` with the envelope and the whole
message). MailHog itself adds Message-ID and Return-Path fields when a message lacks them; so does this view
(the stored bytes are never changed).

Release (`POST /api/v1/messages/{id}/release`) sends to the body's `Email` through mailnest's configured relay and
its allow-list; the body's Host and Port are ignored, so the API cannot make mailnest connect anywhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import chaos as chaos_module
from .. import events, mime
from ..config import parse_listen
from ..models import Envelope
from .api import MAX_START, ApiError, Context, fields, int_param, json_body, query_param
from .checks import Checks
from .events import origin_allowed
from .json import canonical_header

log = logging.getLogger("mailnest.http")

MAX_LIMIT = 250  # MailHog's cap
_FIELD = re.compile(rb"\r?\n(?![ \t])")


def path(address: str) -> dict[str, Any]:
    """MailHog's SMTP path: {Relays, Mailbox, Domain, Params}."""
    relays = None
    text = address
    if ":" in address and address.startswith("@"):  # source route: @a,@b:user@host
        route, _, text = address.partition(":")
        relays = route.split(",")
    mailbox, at, domain = text.partition("@")
    return {"Relays": relays, "Mailbox": mailbox, "Domain": domain if at else "", "Params": ""}


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def header_fields(block: bytes) -> dict[str, list[str]]:
    """A header block as MailHog (Go's net/textproto) gives it: canonical names, folded lines joined by a space,
    values not decoded."""
    out: dict[str, list[str]] = {}
    for item in _FIELD.split(block):
        colon = item.find(b":")
        if colon <= 0 or b"\n" in item[:colon]:
            continue
        name = _text(item[:colon].strip())
        lines = [line.strip() for line in _text(item[colon + 1:]).splitlines()]
        out.setdefault(canonical_header(name), []).append(" ".join(line for line in lines if line))
    return out


def _content(raw: bytes, node: mime.MimePart) -> dict[str, Any]:
    body = raw[node.body_start:node.body_end]
    content: dict[str, Any] = {"Headers": header_fields(raw[node.header_start:node.header_end]),
                               "Body": _text(body), "Size": len(body), "MIME": None}
    if node.is_multipart:
        content["MIME"] = {"Parts": [_content(raw, child) for child in node.children]}
    return content


def rfc3339(moment: datetime | None) -> str:
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def message(id_: str, raw: bytes, envelope: Envelope, hostname: str = "mailnest") -> dict[str, Any]:
    """One message in MailHog's shape (pure)."""
    root = mime.structure(raw)
    content = _content(raw, root)
    headers = content["Headers"]
    if "Message-Id" not in headers:
        headers["Message-Id"] = [f"{id_}@{hostname}"]
    if "Return-Path" not in headers:
        headers["Return-Path"] = [f"<{envelope.mail_from}>"]
    mime_body = content.pop("MIME")
    content["MIME"] = None
    return {
        "ID": id_,
        "From": path(envelope.mail_from),
        "To": [path(r) for r in envelope.rcpt_tos],
        "Content": content,
        "Created": rfc3339(envelope.received),
        "MIME": mime_body,
        "Raw": {"From": envelope.mail_from, "To": list(envelope.rcpt_tos), "Data": _text(raw), "Helo": envelope.helo},
    }


def _quoted(value: str) -> str:
    """A user's search text as one quoted term of mailnest's search language."""
    return '"' + " ".join(value.replace('"', " ").split()) + '"'


def search_queries(kind: str, query: str) -> list[str]:
    """MailHog's search kinds as mailnest queries, any of which may match (header or envelope, as MailHog)."""
    term = _quoted(query)
    if kind == "from":
        return [f"from:{term}", f"envelope-from:{term}"]
    if kind == "to":
        return [f"to:{term}", f"cc:{term}", f"mailbox:{term}"]
    return [term]


class MailHog:
    def __init__(self, context: Context, checks: Checks) -> None:
        self.context = context
        self.store = context.store
        self.checks = checks

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/api/v2/messages", self.messages, methods=["GET"]),
            Route("/api/v2/search", self.search, methods=["GET"]),
            Route("/api/v2/jim", self.get_jim, methods=["GET"]),
            Route("/api/v2/jim", self.create_jim, methods=["POST"]),
            Route("/api/v2/jim", self.update_jim, methods=["PUT"]),
            Route("/api/v2/jim", self.delete_jim, methods=["DELETE"]),
            Route("/api/v2/outgoing-smtp", self.outgoing_smtp, methods=["GET"]),
            WebSocketRoute("/api/v2/websocket", self.websocket),
            Route("/api/v1/messages/{id}", self.get_message, methods=["GET"]),
            Route("/api/v1/messages/{id}", self.delete_message, methods=["DELETE"]),
            Route("/api/v1/messages/{id}/download", self.download, methods=["GET"]),
            Route("/api/v1/messages/{id}/mime/part/{part}/download", self.download_part, methods=["GET"]),
            Route("/api/v1/messages/{id}/release", self.release, methods=["POST"]),
        ]

    # -- lists -----------------------------------------------------------------------------------------

    def _start_limit(self, request: Request) -> tuple[int, int]:
        start = int_param(request, "start", 0, maximum=MAX_START)
        limit = min(int_param(request, "limit", 50, minimum=1, maximum=MAX_START), MAX_LIMIT)
        return start, limit

    async def _render(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        found = await self.store.raw_with_envelopes(ids)  # type: ignore[attr-defined]
        hostname = self.context.config.hostname
        return await asyncio.to_thread(
            lambda: [message(i, found[i][0], found[i][1], hostname) for i in ids if i in found])

    async def _page(self, queries: Sequence[str], request: Request) -> Response:
        start, limit = self._start_limit(request)
        page = await self.store.list(query=queries, start=start, limit=limit)
        items = await self._render([s.id for s in page.messages])
        total = page.total if queries == ("",) else page.messages_count
        return JSONResponse({"total": total, "count": len(items), "start": start, "items": items})

    async def messages(self, request: Request) -> Response:
        return await self._page(("",), request)

    async def search(self, request: Request) -> Response:
        kind = request.query_params.get("kind", "")
        if kind not in ("from", "to", "containing"):
            raise ApiError(400, "kind must be from, to or containing")
        query = query_param(request)
        if not query:
            raise ApiError(400, "the query parameter 'query' is required")
        return await self._page(search_queries(kind, query), request)

    # -- one message -------------------------------------------------------------------------------------

    async def _one(self, request: Request) -> tuple[str, bytes, Envelope]:
        id_ = str(request.path_params["id"])
        found = await self.store.raw_with_envelopes([id_])  # type: ignore[attr-defined]
        if id_ not in found:
            raise ApiError(404, f"message {id_!r} not found")
        raw, envelope = found[id_]
        return id_, raw, envelope

    async def get_message(self, request: Request) -> Response:
        id_, raw, envelope = await self._one(request)
        return JSONResponse(await asyncio.to_thread(message, id_, raw, envelope, self.context.config.hostname))

    async def delete_message(self, request: Request) -> Response:
        id_ = str(request.path_params["id"])
        if not await self.store.delete([id_]):
            raise ApiError(404, f"message {id_!r} not found")
        return Response(b"", media_type="application/json")

    async def download(self, request: Request) -> Response:
        id_, raw, _ = await self._one(request)
        return Response(raw, media_type="message/rfc822",
                        headers={"Content-Disposition": f'attachment; filename="{id_}.eml"'})

    async def download_part(self, request: Request) -> Response:
        id_, raw, _ = await self._one(request)
        index_text = str(request.path_params["part"])
        root = await asyncio.to_thread(mime.structure, raw)
        if not index_text.isdigit() or not root.is_multipart or int(index_text) >= len(root.children):
            raise ApiError(404, f"message {id_!r} has no MIME part {index_text}")
        part = root.children[int(index_text)]
        headers = {"Content-Disposition": f'attachment; filename="{id_}-part-{index_text}"'}
        content_type = "application/octet-stream"
        for name, values in header_fields(raw[part.header_start:part.header_end]).items():
            # MailHog copies the part's header fields onto the response; only those HTTP can carry are copied.
            if not values or not (name + values[0]).isascii() or not name.isprintable():
                continue
            if name == "Content-Type":
                content_type = values[0]
            elif name not in ("Content-Disposition", "Content-Length", "Transfer-Encoding", "Connection"):
                headers[name] = values[0]
        return Response(raw[part.body_start:part.body_end], media_type=content_type, headers=headers)

    async def release(self, request: Request) -> Response:
        id_ = str(request.path_params["id"])
        body = fields(await json_body(request), ["Host", "Port", "Email", "Username", "Password", "Mechanism",
                                                 "Name", "Save"], example='{"Email": "someone@example.com"}')
        address = body.get("Email")
        if not isinstance(address, str) or "@" not in address:
            raise ApiError(400, 'Email (the address to release to) is required, e.g. {"Email": "qa@example.com"}')
        await self.checks.release_to(id_, [address.strip()])
        return Response(b"", media_type="application/json")

    # -- Jim, the chaos monkey -------------------------------------------------------------------------------

    def _jim_or_404(self) -> None:
        if not self.context.chaos.jim:
            raise ApiError(404, "Jim is not enabled (POST /api/v2/jim to invite him)")

    async def get_jim(self, request: Request) -> Response:
        self._jim_or_404()
        return JSONResponse(chaos_module.to_jim(self.context.chaos.settings))

    async def _jim_body(self, request: Request, base: chaos_module.ChaosSettings) -> chaos_module.ChaosSettings:
        try:
            return chaos_module.from_jim(await json_body(request), base)
        except chaos_module.ChaosError as exc:
            raise ApiError(400, str(exc)) from None

    async def create_jim(self, request: Request) -> Response:
        state = self.context.chaos
        if state.jim:
            raise ApiError(409, "Jim is already enabled; PUT /api/v2/jim changes him")
        defaults = chaos_module.from_jim(chaos_module.JIM_DEFAULTS, state.settings)
        state.update(await self._jim_body(request, defaults))
        state.jim = True
        log.warning("chaos: MailHog's Jim invited: %s", chaos_module.describe(state.settings))
        return Response(b"", status_code=201, media_type="application/json")

    async def update_jim(self, request: Request) -> Response:
        self._jim_or_404()
        state = self.context.chaos
        state.update(await self._jim_body(request, state.settings))
        return Response(b"", media_type="application/json")

    async def delete_jim(self, request: Request) -> Response:
        self._jim_or_404()
        state = self.context.chaos
        off = {key: 0 for key in chaos_module.JIM_FIELDS} | {"AcceptChance": 1}
        off.pop("LinkSpeedMin")
        off.pop("LinkSpeedMax")
        state.update(chaos_module.from_jim(off, state.settings))
        state.jim = False
        return Response(b"", media_type="application/json")

    async def outgoing_smtp(self, request: Request) -> Response:
        relay = self.context.config.relay
        if not relay:
            return JSONResponse({})
        listen = parse_listen(relay, what="relay")
        return JSONResponse({"relay": {"Name": "relay", "Save": False, "Email": "", "Host": listen.host,
                                       "Port": str(listen.port), "Username": "", "Password": "",
                                       "Mechanism": ""}})

    # -- the live feed -------------------------------------------------------------------------------------

    async def websocket(self, websocket: WebSocket) -> None:
        """MailHog's v2 websocket: each new message, in MailHog's shape, as it arrives."""
        if not origin_allowed(websocket.headers, self.context.config.cors_origins):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        with self.store.hub.subscribe(maxsize=256) as sub:
            receiving = asyncio.get_running_loop().create_task(websocket.receive())
            try:
                while True:
                    getting = asyncio.ensure_future(sub.get())
                    done, _ = await asyncio.wait({getting, receiving}, return_when=asyncio.FIRST_COMPLETED)
                    if receiving in done:
                        getting.cancel()
                        if receiving.result()["type"] == "websocket.disconnect":
                            return
                        receiving = asyncio.get_running_loop().create_task(websocket.receive())
                        continue
                    event = getting.result()
                    if event is None or event.type != events.NEW:
                        continue
                    items = await self._render([event.data.id])
                    for item in items:
                        await asyncio.wait_for(websocket.send_text(json.dumps(item, ensure_ascii=False)), 10)
            except (WebSocketDisconnect, TimeoutError, RuntimeError, OSError):
                pass
            finally:
                receiving.cancel()
                with contextlib.suppress(Exception):
                    await websocket.close()
