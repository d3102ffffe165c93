"""The HTTP API's core: Mailpit's API v1 messages and message routes, plus mailnest's wait, mailboxes and envelope.

Mailpit compatibility notes (where Mailpit's own behaviour is followed on purpose):
- `GET /api/v1/message/{ID}` marks the message read, as Mailpit documents;
- `PUT /api/v1/messages` without "Read" marks unread (Go's zero value), so mailpit-api's `setReadStatus()` works;
- header names in `/headers` use Go's canonical spelling (`Message-Id`), keeping the message's order;
- errors are JSON `{"Error": reason}` (the shape Mailpit's send API uses) with Mailpit's status codes: 400 for bad
  input, 404 for a message that does not exist. Unlike Mailpit, a malformed body never means "all messages".
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import events, mime
from ..chaos import Chaos
from ..config import Config
from ..models import Message
from ..store.base import MailboxInfo, Store
from . import json as render
from . import thumbnail

log = logging.getLogger("mailnest.http")

MAX_LIMIT = 1000
MAX_START = 2**31 - 1
MAX_WAIT = 300.0
MAX_JSON_BODY = 1024 * 1024
MAX_SEND_BODY = 64 * 1024 * 1024  # the send API carries base64 attachments


class ApiError(Exception):
    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra


def error_response(status: int, reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"Error": reason, **extra}, status_code=status)


@dataclass
class Context:
    """What every route module needs: the store, the config, and the live state shared with other front doors."""

    store: Store
    config: Config
    chaos: Chaos
    outputs: Any = None  # outputs.dispatcher.OutputDispatcher when the runtime has one (relay, release)
    started: float = field(default_factory=time.time)


# -- request parsing -------------------------------------------------------------------------------------------


def int_param(request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        raise ApiError(400, f"{name} must be a whole number, not {text!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f" and {maximum}" if maximum is not None else ""
        raise ApiError(400, f"{name} must be between {minimum}{bound}, not {value}")
    return value


def float_param(request: Request, name: str, default: float, *, maximum: float) -> float:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = float(text.rstrip("s"))
    except ValueError:
        raise ApiError(400, f"{name} must be a number of seconds, not {text!r}") from None
    if not 0 <= value <= maximum:
        raise ApiError(400, f"{name} must be between 0 and {maximum:g} seconds, not {text}")
    return value


def tz_param(request: Request) -> tzinfo | None:
    """Mailpit's `tz`: the zone of before:/after: dates written without one."""
    name = request.query_params.get("tz", "").strip()
    if not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ApiError(400, f"tz: unknown time zone {name!r} (use an IANA name such as Europe/Paris)") from None


def query_param(request: Request, name: str = "query") -> str:
    """A search query parameter, stripped. A NUL cannot be searched for (SQLite's full-text index stops there)."""
    text = request.query_params.get(name, "").strip()
    if "\x00" in text:
        raise ApiError(400, f"{name} may not contain NUL characters")
    return text


def mailbox_param(request: Request) -> str | None:
    return request.query_params.get("mailbox") or None


async def json_body(request: Request, *, limit: int = MAX_JSON_BODY) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the request body is over {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the request body is over {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        return None
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    if parsed is None:
        raise ApiError(400, "the request body is JSON null; send an object, or no body")
    return parsed


def fields(body: Any, known: Iterable[str], *, example: str) -> dict[str, Any]:
    """A JSON object's fields by their canonical names. Names match without regard to case, as Go's JSON decoder
    (and so Mailpit) matches them; an unknown field, or anything but an object, is a 400."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, f"expected a JSON object such as {example}")
    by_lower = {name.lower(): name for name in known}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = by_lower.get(key.lower())
        if name is None:
            raise ApiError(400, f"unknown field {key!r}; expected {', '.join(by_lower.values())}")
        out[name] = value
    return out


def string_list(value: Any, what: str) -> list[str]:
    """A list of strings; pass [] for an absent field (an explicit null is as wrong as a number)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(400, f"{what} must be a list of strings")
    return value


def ok(request: Request) -> Response:
    """Mailpit's plain "ok". A client that sends no Accept header at all (MailHog's Node client) JSON-parses any
    body it gets, so it gets an empty one."""
    if "accept" not in request.headers:
        return Response(b"", media_type="text/plain")
    return Response("ok", media_type="text/plain")


# -- the routes --------------------------------------------------------------------------------------------------


class Api:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.store = context.store

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/messages", self.list_messages, methods=["GET"]),
            Route("/api/v1/messages", self.delete_messages, methods=["DELETE"]),
            Route("/api/v1/messages", self.mark_messages, methods=["PUT"]),
            Route("/api/v1/search", self.search, methods=["GET"]),
            Route("/api/v1/search", self.delete_search, methods=["DELETE"]),
            Route("/api/v1/message/{id}", self.get_message, methods=["GET"]),
            Route("/api/v1/message/{id}/raw", self.get_raw, methods=["GET"]),
            Route("/api/v1/message/{id}/headers", self.get_headers, methods=["GET"]),
            Route("/api/v1/message/{id}/part/{part_id}", self.get_part, methods=["GET"]),
            Route("/api/v1/message/{id}/part/{part_id}/thumb", self.get_thumbnail, methods=["GET"]),
            Route("/api/v1/wait", self.wait, methods=["GET"]),
            Route("/api/v1/mailboxes", self.list_mailboxes, methods=["GET"]),
            Route("/livez", self.livez, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]

    # -- lists and searches ----------------------------------------------------------------------------

    async def list_messages(self, request: Request) -> Response:
        query = query_param(request)
        if query or "tz" in request.query_params:
            return await self._search_page(request, query)
        start = int_param(request, "start", 0, maximum=MAX_START)
        limit = int_param(request, "limit", 50, minimum=1, maximum=MAX_LIMIT)
        page = await self.store.list(mailbox=mailbox_param(request), start=start, limit=limit)
        return JSONResponse(render.page(page))

    async def search(self, request: Request) -> Response:
        query = query_param(request)
        if not query:
            raise ApiError(400, "the query parameter 'query' is required, e.g. ?query=subject:welcome")
        return await self._search_page(request, query)

    async def _search_page(self, request: Request, query: str) -> Response:
        start = int_param(request, "start", 0, maximum=MAX_START)
        limit = int_param(request, "limit", 50, minimum=1, maximum=MAX_LIMIT)
        page = await self.store.list(query=query, tz=tz_param(request), mailbox=mailbox_param(request),
                                     start=start, limit=limit)
        return JSONResponse(render.page(page))

    async def delete_messages(self, request: Request) -> Response:
        body = fields(await json_body(request), ["IDs"], example='{"IDs": ["..."]}')
        ids = string_list(body.get("IDs", []), "IDs")
        if ids:
            await self.store.delete(ids)
        elif mailbox := mailbox_param(request):
            await self.store.delete_matching(mailbox=mailbox)
        else:
            await self.store.delete_all()
        return ok(request)

    async def mark_messages(self, request: Request) -> Response:
        body = await json_body(request)
        if body is None:
            raise ApiError(400, 'expected a JSON object such as {"IDs": ["..."], "Read": true}')
        values = fields(body, ["IDs", "Read", "Search"], example='{"IDs": ["..."], "Read": true}')
        tz = tz_param(request)
        read = values.get("Read", False)
        if not isinstance(read, bool):
            raise ApiError(400, "Read must be true or false")
        ids = string_list(values.get("IDs", []), "IDs")
        search = values.get("Search", "")
        if not isinstance(search, str):
            raise ApiError(400, "Search must be a string")
        if ids:
            await self.store.set_read(ids, read)
        else:
            await self.store.set_read_matching(read, query=search.strip(), tz=tz, mailbox=mailbox_param(request))
        return ok(request)

    async def delete_search(self, request: Request) -> Response:
        query = query_param(request)
        if not query:
            raise ApiError(400, "the query parameter 'query' is required; to delete everything use DELETE "
                                "/api/v1/messages")
        await self.store.delete_matching(query=query, tz=tz_param(request), mailbox=mailbox_param(request))
        return ok(request)

    # -- one message -----------------------------------------------------------------------------------

    async def resolve(self, request: Request) -> str:
        """The ID in the path; `latest` (optionally `?query=`, `?tz=`, `?mailbox=`) is the newest match."""
        id_ = request.path_params["id"]
        if id_ != "latest":
            return str(id_)
        query = query_param(request)
        mailbox = mailbox_param(request)
        latest = await self.store.latest(query=query, tz=tz_param(request), mailbox=mailbox)
        if latest is None:
            raise ApiError(404, "there are no messages" + (" matching the query" if query else ""))
        return latest.id

    async def message(self, request: Request) -> Message:
        id_ = await self.resolve(request)
        message = await self.store.get(id_)
        if message is None:
            raise ApiError(404, f"message {id_!r} not found")
        return message

    async def get_message(self, request: Request) -> Response:
        message = await self.message(request)
        raw = await self.store.raw(message.id) if (message.attachments or message.inline) else None
        sums = await asyncio.to_thread(_checksums, raw, message) if raw is not None else None
        out = render.message(message, sums)
        if self.context.outputs is not None:  # mailnest: where relaying got to, per recipient (None: not relayed)
            out["Relay"] = self.context.outputs.relay_status(message.id)
        if not message.summary.read:
            await self.store.set_read([message.id], True)
            out["Read"] = True
        return JSONResponse(out)

    async def raw(self, request: Request) -> tuple[str, bytes]:
        id_ = await self.resolve(request)
        raw = await self.store.raw(id_)
        if raw is None:
            raise ApiError(404, f"message {id_!r} not found")
        return id_, raw

    async def get_raw(self, request: Request) -> Response:
        id_, raw = await self.raw(request)
        headers = {"X-Content-Type-Options": "nosniff"}
        if request.query_params.get("dl") not in (None, "", "0"):
            headers["Content-Disposition"] = f'attachment; filename="{id_}.eml"'
        return Response(raw, media_type="message/rfc822", headers=headers)

    async def get_headers(self, request: Request) -> Response:
        _, raw = await self.raw(request)
        return JSONResponse(render.headers(await asyncio.to_thread(mime.headers, raw)))

    async def _part(self, request: Request) -> tuple[str, str, mime.PartContent]:
        id_, raw = await self.raw(request)
        part_id = request.path_params["part_id"]
        content = await asyncio.to_thread(mime.part, raw, part_id)
        if content is None:
            raise ApiError(404, f"message {id_!r} has no part {part_id!r}")
        return id_, part_id, content

    async def get_part(self, request: Request) -> Response:
        _, _, content = await self._part(request)
        disposition = "attachment" if request.query_params.get("dl") not in (None, "", "0") else "inline"
        if content.filename:
            disposition += f"; filename*=UTF-8''{quote(content.filename, safe='')}"
        media_type = content.content_type if content.content_type.isascii() else ""
        return Response(content.data, media_type=media_type or "application/octet-stream",
                        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; sandbox"})

    async def get_thumbnail(self, request: Request) -> Response:
        """Mailpit's 180x120 JPEG thumbnail of an image part (a blank one for anything else)."""
        _, _, content = await self._part(request)
        data = await asyncio.to_thread(thumbnail.make, content.data, content.content_type)
        return Response(data, media_type="image/jpeg", headers={"X-Content-Type-Options": "nosniff"})

    # -- waiting ---------------------------------------------------------------------------------------

    async def wait(self, request: Request) -> Response:
        query = query_param(request)
        mailbox = mailbox_param(request)
        count = int_param(request, "count", 1, minimum=1, maximum=MAX_LIMIT)
        timeout = float_param(request, "timeout", 10.0, maximum=MAX_WAIT)
        deadline = time.monotonic() + timeout
        # Subscribe before the first count, so a message that lands in between is not missed.
        with self.store.hub.subscribe(maxsize=64) as sub:
            while True:
                if await self.store.count(query=query, mailbox=mailbox) >= count:
                    page = await self.store.list(query=query, mailbox=mailbox, limit=max(count, 50))
                    return JSONResponse(render.page(page))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                event = await sub.get(timeout=remaining)
                # Only new messages (or a lagged queue, where one may have been dropped) can satisfy the wait.
                while event is not None and event.type != events.NEW and not sub.lagged:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    event = await sub.get(timeout=remaining)
                sub.lagged = False
        arrived = await self.store.count(query=query, mailbox=mailbox)
        what = f"{count} message(s)" + (f" matching {query!r}" if query else "") + (
            f" in mailbox {mailbox}" if mailbox else "")
        raise ApiError(408, f"timed out after {timeout:g}s waiting for {what}; {arrived} arrived",
                       Arrived=arrived, Expected=count)

    # -- everything else -------------------------------------------------------------------------------

    async def list_mailboxes(self, request: Request) -> Response:
        boxes: Iterable[MailboxInfo] = await self.store.mailboxes()
        return JSONResponse([{"Address": b.address, "Total": b.total, "Unread": b.unread} for b in boxes])

    async def livez(self, request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def readyz(self, request: Request) -> Response:
        await self.store.count()
        return Response("ok", media_type="text/plain")


def _checksums(raw: bytes, message: Message) -> dict[str, Mapping[str, str]]:
    """Mailpit's attachment Checksums: MD5, SHA1 and SHA256 of each part's decoded content."""
    out: dict[str, Mapping[str, str]] = {}
    for a in (*message.attachments, *message.inline):
        content = mime.part(raw, a.part_id) if a.part_id else None
        if content is not None:
            out[a.part_id] = {"MD5": hashlib.md5(content.data, usedforsecurity=False).hexdigest(),
                              "SHA1": hashlib.sha1(content.data, usedforsecurity=False).hexdigest(),
                              "SHA256": hashlib.sha256(content.data).hexdigest()}
    return out


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    log.info("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.reason)
    return error_response(exc.status, exc.reason, **exc.extra)


async def handle_query_error(request: Request, exc: Exception) -> Response:
    log.info("%s %s -> 400 bad query: %s", request.method, request.url.path, exc)
    return error_response(400, f"bad search query: {exc}")
