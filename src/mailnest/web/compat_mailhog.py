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
(the stored bytes are never changed). Unlike MailHog, a nested multipart rendered with its own `MIME` has an
empty `Body` (MailHog repeats every subtree at every level: 99 levels turned 2.1 MB into 217 MB), and below
MAX_RENDER_DEPTH levels a multipart is a leaf with its raw Body, so the JSON stays linear in the message.

A part download (`/mime/part/{n}/download`) is always an attachment with a safe file name, the part's type
written anew, `nosniff` and a sandboxing CSP; none of the part's own header fields reach the HTTP response
(MailHog copies them: Set-Cookie, CORS, CSP, Link, Refresh, Location from a captured message).

Release (`POST /api/v1/messages/{id}/release`) sends to the body's `Email` through mailnest's configured relay and
its allow-list; the body's Host and Port are ignored, so the API cannot make mailnest connect anywhere else.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from .. import chaos as chaos_module
from .. import events, mime
from ..config import parse_listen
from ..models import Envelope
from .api import (
    MAX_START,
    Abandoned,
    ApiError,
    Context,
    attachment_disposition,
    fields,
    guarded_routes,
    int_param,
    json_body,
    query_param,
)
from .checks import Checks
from .events import origin_allowed, serve_websocket
from .json import canonical_header

log = logging.getLogger("mailnest.http")

MAX_LIMIT = 250  # MailHog's cap
MAX_RENDER_DEPTH = 20  # multipart levels rendered as MIME.Parts; deeper ones are leaves with their raw Body
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


def _content(raw: bytes, node: mime.MimePart, depth: int = 0) -> dict[str, Any]:
    """A part in MailHog's shape. A multipart part whose parts are rendered below it has an empty Body: MailHog
    repeats each subtree's bytes at every level, so a message nested 99 deep became a response 100 times its
    size. Below MAX_RENDER_DEPTH a multipart is rendered as a leaf (its Body the raw bytes, MIME null), so every
    byte of the message appears at most once in MIME.Parts."""
    body = raw[node.body_start:node.body_end]
    nested = node.is_multipart and depth < MAX_RENDER_DEPTH
    content: dict[str, Any] = {"Headers": header_fields(raw[node.header_start:node.header_end]),
                               "Body": "" if nested and depth else _text(body), "Size": len(body), "MIME": None}
    if nested:
        content["MIME"] = {"Parts": [_content(raw, child, depth + 1) for child in node.children]}
    return content


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}")
_TRANSFER_ENCODINGS = frozenset({"7bit", "8bit", "binary", "base64", "quoted-printable"})
def safe_content_type(part: mime.MimePart) -> str:
    """The part's type as type/subtype tokens and an optional token charset, written anew (never the header's
    own text); application/octet-stream when it is not that simple."""
    main, _, sub = part.content_type.partition("/")
    if not (_TOKEN.fullmatch(main) and _TOKEN.fullmatch(sub)) or main == "multipart":
        return "application/octet-stream"
    charset = part.charset
    return f"{main}/{sub}; charset={charset}" if charset and _TOKEN.fullmatch(charset) else f"{main}/{sub}"


def json_bytes(value: Any) -> bytes:
    """JSON as Starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8", "replace")


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
        # One subscription for every MailHog websocket: each new message is rendered once, not once per client.
        self.feed = events.Broadcast(self.store.hub, self._live_frames, max_queue=context.config.max_event_queue,
                                     types=(events.NEW,))

    def routes(self) -> list[BaseRoute]:
        websocket: list[BaseRoute] = [WebSocketRoute("/api/v2/websocket", self.websocket)]
        return [*websocket, *guarded_routes([
            Route("/api/v2/messages", self.messages, methods=["GET"]),
            Route("/api/v2/search", self.search, methods=["GET"]),
            Route("/api/v2/jim", self.get_jim, methods=["GET"]),
            Route("/api/v2/jim", self.create_jim, methods=["POST"]),
            Route("/api/v2/jim", self.update_jim, methods=["PUT"]),
            Route("/api/v2/jim", self.delete_jim, methods=["DELETE"]),
            Route("/api/v2/outgoing-smtp", self.outgoing_smtp, methods=["GET"]),
            Route("/api/v1/messages/{id}", self.get_message, methods=["GET"]),
            Route("/api/v1/messages/{id}", self.delete_message, methods=["DELETE"]),
            Route("/api/v1/messages/{id}/download", self.download, methods=["GET"]),
            Route("/api/v1/messages/{id}/mime/part/{part}/download", self.download_part, methods=["GET"]),
            Route("/api/v1/messages/{id}/release", self.release, methods=["POST"]),
        ])]

    # -- lists -----------------------------------------------------------------------------------------

    def _start_limit(self, request: Request) -> tuple[int, int]:
        start = int_param(request, "start", 0, maximum=MAX_START)
        limit = min(int_param(request, "limit", 50, minimum=1, maximum=MAX_START), MAX_LIMIT)
        return start, limit

    async def _render(self, ids: Sequence[str], request: Request | None = None,
                      wrap: Callable[[list[dict[str, Any]]], Any] = lambda items: items) -> bytes:
        """The messages in MailHog's shape, wrapped and serialized as JSON off the loop (a large message's JSON
        takes a while to build and to write)."""
        found = await self.store.raw_with_envelopes(ids)
        hostname = self.context.config.hostname

        def build(*, cancelled: Callable[[], bool]) -> bytes:
            items = []
            for i in ids:
                if cancelled():
                    raise Abandoned
                if i in found:
                    items.append(message(i, found[i][0], found[i][1], hostname))
            return json_bytes(wrap(items))

        return await self.context.work.run(request, build, cancellable=True)

    async def _page(self, queries: Sequence[str], request: Request) -> Response:
        start, limit = self._start_limit(request)
        page = await self.store.list(query=queries, start=start, limit=limit)
        total = page.total if queries == ("",) else page.messages_count
        body = await self._render([s.id for s in page.messages], request,
                                  lambda items: {"total": total, "count": len(items), "start": start, "items": items})
        return Response(body, media_type="application/json")

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
        found = await self.store.raw_with_envelopes([id_])
        if id_ not in found:
            raise ApiError(404, f"message {id_!r} not found")
        raw, envelope = found[id_]
        return id_, raw, envelope

    async def get_message(self, request: Request) -> Response:
        id_, raw, envelope = await self._one(request)
        body = await self.context.work.run(
            request, lambda: json_bytes(message(id_, raw, envelope, self.context.config.hostname)))
        return Response(body, media_type="application/json")

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
        """A part's body as it is in the message (MailHog's behaviour: not decoded), always as a download.

        MailHog copies the part's header fields onto the response; a captured message is hostile, so that would
        let it set cookies for the server's origin, CORS, CSP, Link, Refresh and Location headers. Only a
        Content-Type parsed and written anew, the transfer encoding (so the body can be decoded), a safe file
        name and protective headers are sent."""
        id_, raw, _ = await self._one(request)
        index_text = str(request.path_params["part"])
        root = await self.context.work.run(request, mime.structure, raw)
        if not index_text.isdigit() or not root.is_multipart or int(index_text) >= len(root.children):
            raise ApiError(404, f"message {id_!r} has no MIME part {index_text}")
        part = root.children[int(index_text)]
        headers = {"Content-Disposition": attachment_disposition(part.filename, f"{id_}-part-{index_text}"),
                   "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": "default-src 'none'; sandbox",
                   "Cache-Control": "private, no-store"}
        encoding = (part.encoding or "").strip().lower()
        if encoding in _TRANSFER_ENCODINGS:
            headers["Content-Transfer-Encoding"] = encoding
        return Response(raw[part.body_start:part.body_end], media_type=safe_content_type(part), headers=headers)

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

    async def _live_frames(self, event: events.Event) -> list[str]:
        if not isinstance(event, events.MessageAdded):  # the feed subscribes to NEW only
            return []
        body = await self._render([event.id], wrap=lambda items: items[0] if items else None)
        return [] if body == b"null" else [body.decode()]

    async def websocket(self, websocket: WebSocket) -> None:
        """MailHog's v2 websocket: each new message, in MailHog's shape, as it arrives."""
        if not origin_allowed(websocket.headers, self.context.config.cors_origins):
            await websocket.close(code=1008)
            return
        await websocket.accept()
        await serve_websocket(self.feed, websocket)
