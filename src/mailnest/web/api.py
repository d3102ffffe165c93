"""The HTTP API's core: Mailpit's API v1 messages and message routes, plus mailnest's wait, mailboxes and envelope.

Mailpit compatibility notes (where Mailpit's own behaviour is followed on purpose):
- `GET /api/v1/message/{ID}` marks the message read, as Mailpit documents, except for a request from a web page of
  another site (`Sec-Fetch-Site: cross-site`/`same-site`, or a foreign `Origin`): an <img> must change nothing;
- `PUT /api/v1/messages` without "Read" marks unread (Go's zero value), so mailpit-api's `setReadStatus()` works;
- header names in `/headers` use Go's canonical spelling (`Message-Id`), keeping the message's order;
- errors are JSON `{"Error": reason}` (the shape Mailpit's send API uses) with Mailpit's status codes: 400 for bad
  input, 404 for a message that does not exist. Unlike Mailpit, a malformed body never means "all messages".
  A full disk is 507 and anything unexpected a JSON 500 (`guarded`).

mailnest's additions to the message: `Envelope` (`MailFrom` "<>" for the null sender), `Folder` ("INBOX" for
delivered mail) and `ProtocolWarnings`; `GET /api/v1/folders`; the long-poll `GET /api/v1/wait` (its registry is
`waiters.Waiters`). CPU work (MIME walks, checksums, rendering) runs in `offloop.OffLoop`, abandoned with its
request (`ClientGone` is answered 499).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import re
import time
import zoneinfo
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import mime
from ..chaos import Chaos
from ..config import Config
from ..mime import content as mime_content
from ..mime import wire
from ..models import Message
from ..search import QueryError
from ..store.base import MailboxInfo, Store, StoreFullError, StoreUnavailableError
from . import json as render
from . import thumbnail
from .events import origin_allowed
from .offloop import Abandoned as Abandoned  # re-exported: compat_mailhog imports it from here
from .offloop import ClientGone, OffLoop, _client_gone
from .waiters import Waiters, WaitersFull

log = logging.getLogger("mailnest.http")

MAX_LIMIT = 1000  # the most a count or wait may ask for
# The most messages one page of Mailpit's lists holds: `limit=0` (Mailpit: everything) and larger limits get this
# many, so one request cannot make the server build an unbounded response.
PAGE_CAP = 10_000
DEFAULT_LIMIT = 50
MAX_START = 2**31 - 1
MAX_WAIT = 300.0
MAX_JSON_BODY = 1024 * 1024
MAX_SEND_BODY = 64 * 1024 * 1024  # the send API carries base64 attachments


class ApiError(Exception):
    """An answer `{"Error": reason, **extra}` with this status (and these HTTP headers)."""

    def __init__(self, status: int, reason: str, *, headers: Mapping[str, str] | None = None, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = dict(headers or {})
        self.extra = extra


def error_response(status: int, reason: str, *, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"Error": reason, **extra}, status_code=status, headers=headers)


@dataclass
class Context:
    """What every route module needs: the store, the config, and the live state shared with other front doors."""

    store: Store
    config: Config
    chaos: Chaos
    outputs: Any = None  # outputs.dispatcher.OutputDispatcher when the runtime has one (relay, release)
    started: float = field(default_factory=time.time)
    work: OffLoop = field(default_factory=OffLoop)


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


def paging(request: Request) -> tuple[int, int]:
    """Mailpit's lenient `start` and `limit`: a value that is not a whole number, or a negative one, falls back to
    the default (start 0, limit 50); `limit=0` means everything, up to PAGE_CAP, as does any larger limit."""

    def number(name: str) -> int | None:
        text = request.query_params.get(name, "").strip()
        try:
            value = int(text)
        except ValueError:
            return None
        return value if value >= 0 else None

    start = min(number("start") or 0, MAX_START)
    limit = number("limit")
    if limit is None:
        limit = DEFAULT_LIMIT
    return start, PAGE_CAP if limit == 0 else min(limit, PAGE_CAP)


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
    (and so Mailpit) matches them; an unknown field is ignored (logged at debug level) as Go's decoder ignores it;
    anything but an object is a 400."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ApiError(400, f"expected a JSON object such as {example}")
    by_lower = {name.lower(): name for name in known}
    out: dict[str, Any] = {}
    for key, value in body.items():
        name = by_lower.get(key.lower())
        if name is None:  # ignored, as Go's decoder (and so Mailpit) ignores it
            log.debug("ignored the unknown field %r (known: %s)", key, ", ".join(by_lower.values()))
            continue
        out[name] = value
    return out


_FORM = "application/x-www-form-urlencoded"
_BOOLEANS = {"true": True, "1": True, "on": True, "yes": True, "false": False, "0": False, "off": False, "no": False}


async def body_fields(request: Request, known: Sequence[str], *, example: str,
                      lists: Sequence[str] = (), booleans: Sequence[str] = (),
                      known_needed: bool = False) -> dict[str, Any] | None:
    """The fields of a JSON body, or of a form-encoded one (`ids=A&ids=B&Read=true`, which PyPI's
    mailpit-api-client sends) read as the same JSON: names without regard to case, `lists` from every value
    (comma-separated too), `booleans` from true/false. None when there is no body. With `known_needed`, a body
    whose every field is unknown is a 400 rather than an empty one (where an empty body means "everything")."""
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != _FORM:
        body = await json_body(request)
        if body is None:
            return None
        given = fields(body, known, example=example)
        if known_needed and not given and body:
            raise ApiError(400, f"none of the fields {', '.join(map(repr, body))} is known; expected {example}")
        return given
    raw = await request.body()
    if len(raw) > MAX_JSON_BODY:
        raise ApiError(413, f"the request body is over {MAX_JSON_BODY} bytes")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise ApiError(400, "the form body is not UTF-8") from None
    if not pairs:
        return None
    by_lower = {name.lower(): name for name in known}
    out: dict[str, Any] = {}
    for key, value in pairs:
        name = by_lower.get(key.lower().removesuffix("[]"))
        if name is None:
            log.debug("ignored the unknown form field %r", key)
        elif name in lists:
            out.setdefault(name, []).extend(v.strip() for v in value.split(",") if v.strip())
        elif name in booleans:
            if value.strip().lower() not in _BOOLEANS:
                raise ApiError(400, f"{name} must be true or false, not {value!r}")
            out[name] = _BOOLEANS[value.strip().lower()]
        else:
            out[name] = value
    if known_needed and not out:
        raise ApiError(400, f"none of the form fields {', '.join(repr(k) for k, _ in pairs)} is known; expected "
                            f"{', '.join(known)}")
    return out


def string_list(value: Any, what: str) -> list[str]:
    """A list of strings; pass [] for an absent field (an explicit null is as wrong as a number)."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ApiError(400, f"{what} must be a list of strings")
    return value


_UNSAFE_NAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|;%]+')


def safe_filename(name: str, fallback: str) -> str:
    """A file name for a download: the last path component, without control characters, quotes or path
    separators, at most 200 characters; `fallback` when nothing usable is left."""
    base = re.split(r"[\\/]", name.encode("utf-8", "replace").decode("utf-8"))[-1]  # lone surrogates go
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" ._")[:200]
    return cleaned or _UNSAFE_NAME.sub("_", fallback)


def attachment_disposition(name: str, fallback: str, kind: str = "attachment") -> str:
    """A Content-Disposition with an ASCII filename and, for any other name, RFC 6266's filename* in UTF-8."""
    safe = safe_filename(name, fallback)
    ascii_name = safe.encode("ascii", "replace").decode().replace("?", "_")
    out = f'{kind}; filename="{ascii_name}"'
    if ascii_name != safe:
        out += f"; filename*=UTF-8''{quote(safe, safe='')}"
    return out


def cross_site(request: Request, cors_origins: Sequence[str]) -> str | None:
    """Why this request comes from a web page of another site, or None when it does not.

    A GET with a side effect (marking read, starting a link check) can be made by any page: an <img> sends no
    Origin, but browsers send `Sec-Fetch-Site`. A client that sends neither (curl, API clients, Mailpit's
    tools) is not a browser and keeps Mailpit's behaviour; so does a page of an allowed CORS origin."""
    origin = request.headers.get("origin")
    if origin is not None:
        if origin != "null" and origin_allowed(request.headers, cors_origins):
            return None
        return f"Origin {origin}"
    site = request.headers.get("sec-fetch-site", "").strip().lower()
    if site in ("cross-site", "same-site"):
        return f"Sec-Fetch-Site: {site}"
    return None


def refuse_cross_site(request: Request, config: Config, what: str) -> None:
    """403 for a side effect a web page of another site asked for."""
    reason = cross_site(request, config.cors_origins)
    if reason is not None:
        raise ApiError(403, f"{what} is refused for a request from the web page of another site ({reason}); "
                            "allow that site with --cors ORIGIN")


def ok(request: Request, *, body_given: bool = True) -> Response:
    """Mailpit's plain "ok", whatever the Accept header (Go's client, and so Mailpit's tools, sends none). The
    one route MailHog shares, DELETE /api/v1/messages, answers MailHog's Node client (no Accept, no body; it
    JSON-parses what it gets) with an empty body, as MailHog does."""
    if not body_given and "accept" not in request.headers:
        return Response(b"", media_type="text/plain")
    return Response("ok", media_type="text/plain")


_HEAD_END = re.compile(rb"\r?\n\r?\n")


def _unsubscribe_post(raw: bytes, message: Message) -> str:
    """The List-Unsubscribe-Post value (RFC 8058's one-click), read from the header block only, and only for a
    message with a List-Unsubscribe (what it qualifies)."""
    if not message.list_unsubscribe:
        return ""
    head = raw[:1024 * 1024]
    end = _HEAD_END.search(head)
    pairs = mime.headers(head[:end.end()] if end else head)
    return next((value.strip() for name, value in pairs if name.lower() == "list-unsubscribe-post"), "")


# -- failures ----------------------------------------------------------------------------------------------------

Endpoint = Callable[[Request], Awaitable[Response]]


def disk_full(exc: StoreFullError) -> ApiError:
    return ApiError(507, f"the disk is full: {exc}")


def unavailable(exc: StoreUnavailableError) -> ApiError:
    return ApiError(503, f"the database is unavailable, try again shortly: {exc}", headers={"Retry-After": "2"})


def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """A JSON 500 for an error no route expected, logged with its traceback once."""
    log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return error_response(500, f"internal error while answering {request.method} {request.url.path}: "
                               f"{type(exc).__name__}: {exc}; the server log has the details")


def guarded(endpoint: Endpoint) -> Endpoint:
    """An API route whose failures are JSON: 507 when the disk is full, 500 for anything unexpected."""

    @functools.wraps(endpoint)
    async def run(request: Request) -> Response:
        try:
            return await endpoint(request)
        except StoreFullError as exc:
            raise disk_full(exc) from None
        except StoreUnavailableError as exc:
            raise unavailable(exc) from None
        except ClientGone as exc:
            raise ApiError(499, exc.reason) from None
        except (ApiError, QueryError, HTTPException):
            raise
        except Exception as exc:
            return unexpected(request, exc)

    return run


def guarded_routes(routes: Iterable[Route]) -> list[Route]:
    return [Route(r.path, guarded(r.endpoint), methods=sorted((r.methods or set()) - {"HEAD"})) for r in routes]


async def handle_unexpected_error(request: Request, exc: Exception) -> Response:
    """For the application's exception handlers (`Exception`): JSON under /api/, Starlette's text elsewhere."""
    if isinstance(exc, StoreFullError):
        reason = disk_full(exc)
        log.warning("%s %s -> 507 %s", request.method, request.url.path, reason.reason)
        return error_response(507, reason.reason)
    if isinstance(exc, StoreUnavailableError):
        reason = unavailable(exc)
        log.warning("%s %s -> 503 %s", request.method, request.url.path, reason.reason)
        return error_response(503, reason.reason, headers=reason.headers)
    if isinstance(exc, ClientGone):  # off-loop work of a route that is not `guarded`
        log.info("%s %s -> 499 %s", request.method, request.url.path, exc.reason)
        return error_response(499, exc.reason)
    if request.url.path.startswith("/api/"):
        return unexpected(request, exc)
    log.error("%s %s failed: %s", request.method, request.url.path, exc, exc_info=exc)
    return Response("Internal Server Error", status_code=500, media_type="text/plain")


# -- the routes --------------------------------------------------------------------------------------------------


class Api:
    def __init__(self, context: Context) -> None:
        self.context = context
        self.store = context.store
        # A long-poll holds a connection: they may take most of the listener's, never all.
        self.waiters = Waiters(context.store, max(1, context.config.max_connections * 4 // 5))

    def routes(self) -> list[Route]:
        return guarded_routes([
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
            Route("/api/v1/folders", self.list_folders, methods=["GET"]),
            Route("/livez", self.livez, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ])

    # -- lists and searches ----------------------------------------------------------------------------

    async def list_messages(self, request: Request) -> Response:
        query = query_param(request)
        if query or "tz" in request.query_params:
            return await self._search_page(request, query)
        start, limit = paging(request)
        page = await self.store.list(mailbox=mailbox_param(request), start=start, limit=limit)
        return JSONResponse(render.page(page))

    async def search(self, request: Request) -> Response:
        query = query_param(request)
        if not query:
            raise ApiError(400, "the query parameter 'query' is required, e.g. ?query=subject:welcome")
        return await self._search_page(request, query)

    async def _search_page(self, request: Request, query: str) -> Response:
        start, limit = paging(request)
        page = await self.store.list(query=query, tz=tz_param(request), mailbox=mailbox_param(request),
                                     start=start, limit=limit)
        return JSONResponse(render.page(page))

    async def delete_messages(self, request: Request) -> Response:
        given = await body_fields(request, ["IDs"], example='{"IDs": ["..."]}', lists=["IDs"], known_needed=True)
        body = given or {}
        ids = string_list(body.get("IDs", []), "IDs")
        if ids:
            await self.store.delete(ids)
        elif mailbox := mailbox_param(request):
            await self.store.delete_matching(mailbox=mailbox)
        else:
            await self.store.delete_all()
        return ok(request, body_given=given is not None)

    async def mark_messages(self, request: Request) -> Response:
        values = await body_fields(request, ["IDs", "Read", "Search"], example='{"IDs": ["..."], "Read": true}',
                                   lists=["IDs"], booleans=["Read"])
        if values is None:
            raise ApiError(400, 'expected a JSON object such as {"IDs": ["..."], "Read": true}')
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
            raise ApiError(400, "no search query: the query parameter 'query' is required; to delete everything "
                                "use DELETE /api/v1/messages")
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
        raw = await self.store.raw(message.id)
        if raw is None:
            raise ApiError(404, f"message {message.id!r} not found")
        sums, warnings = await self.context.work.run(request, _message_extras, raw, message, cancellable=True)
        out = render.message(message, sums, warnings, unsubscribe_post=_unsubscribe_post(raw, message))
        if self.context.outputs is not None:  # mailnest: where relaying got to, per recipient (None: not relayed)
            out["Relay"] = self.context.outputs.relay_status(message.id)
        # Mailpit marks a message read when it is opened; not for a web page of another site (an <img> would do).
        if not message.summary.read and cross_site(request, self.context.config.cors_origins) is None:
            try:
                await self.store.set_read([message.id], True)
                out["Read"] = True
            except StoreFullError as exc:  # the message is still shown; it stays unread until there is room
                log.warning("could not mark message %s read: %s", message.id, exc)
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
        # text/plain as Mailpit serves it, so a browser shows the source instead of offering a download
        return Response(raw, media_type="text/plain; charset=utf-8", headers=headers)

    async def get_headers(self, request: Request) -> Response:
        _, raw = await self.raw(request)
        return JSONResponse(render.headers(await self.context.work.run(request, mime.headers, raw)))

    async def _part(self, request: Request) -> tuple[str, str, mime.PartContent]:
        id_, raw = await self.raw(request)
        part_id = request.path_params["part_id"]
        content = await self.context.work.run(request, mime.part, raw, part_id)
        if content is None:
            raise ApiError(404, f"message {id_!r} has no part {part_id!r}")
        return id_, part_id, content

    async def get_part(self, request: Request) -> Response:
        _, part_id, content = await self._part(request)
        kind = "attachment" if request.query_params.get("dl") not in (None, "", "0") else "inline"
        disposition = attachment_disposition(content.filename, f"part-{part_id}", kind) if content.filename else kind
        media_type = content.content_type if content.content_type.isascii() else ""
        return Response(content.data, media_type=media_type or "application/octet-stream",
                        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; sandbox"})

    async def get_thumbnail(self, request: Request) -> Response:
        """Mailpit's 180x120 JPEG thumbnail of an image part (a blank one for anything else)."""
        _, _, content = await self._part(request)
        data = await self.context.work.run(request, thumbnail.make, content.data, content.content_type)
        return Response(data, media_type="image/jpeg", headers={"X-Content-Type-Options": "nosniff"})

    # -- waiting ---------------------------------------------------------------------------------------

    async def wait(self, request: Request) -> Response:
        query = query_param(request)
        mailbox = mailbox_param(request)
        count = int_param(request, "count", 1, minimum=1, maximum=MAX_LIMIT)
        timeout = float_param(request, "timeout", 10.0, maximum=MAX_WAIT)
        key = (query, mailbox.lower() if mailbox else None)
        # Registered before the first count, so a message that lands in between is not missed.
        try:
            arrived_future = self.waiters.add(key, count)
        except WaitersFull as exc:
            raise ApiError(503, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
        try:
            if await self.store.count(query=query, mailbox=mailbox) < count:
                gone = asyncio.ensure_future(_client_gone(request))
                either: set[asyncio.Future[int] | asyncio.Future[None]] = {arrived_future, gone}
                try:
                    await asyncio.wait(either, timeout=timeout,
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    gone.cancel()
                if not arrived_future.done():
                    if gone.done() and not gone.cancelled():
                        raise ApiError(499, "the client closed the connection while waiting")
                    arrived = await self.store.count(query=query, mailbox=mailbox)
                    if arrived < count:
                        what = f"{count} message(s)" + (f" matching {query!r}" if query else "") + (
                            f" in mailbox {mailbox}" if mailbox else "")
                        raise ApiError(408, f"timed out after {timeout:g}s waiting for {what}; {arrived} arrived",
                                       Arrived=arrived, Expected=count)
        finally:
            self.waiters.remove(key, arrived_future)
        page = await self.store.list(query=query, mailbox=mailbox, limit=max(count, 50))
        return JSONResponse(render.page(page))

    # -- everything else -------------------------------------------------------------------------------

    async def list_mailboxes(self, request: Request) -> Response:
        boxes: Iterable[MailboxInfo] = await self.store.mailboxes()
        return JSONResponse([{"Address": b.address, "Total": b.total, "Unread": b.unread,
                              "Latest": render.rfc3339(b.latest)} for b in boxes])

    async def list_folders(self, request: Request) -> Response:
        """INBOX (delivered mail) first, then every folder IMAP clients made, whoever's; list a folder's messages
        with `?query=folder:NAME`."""
        stats = await self.store.stats()
        folders = await self.store.folders()
        return JSONResponse({"Folders": [
            {"Name": render.INBOX, "Owner": "", "Total": stats.total, "Unread": stats.unread},
            *({"Name": f.name, "Owner": f.owner, "Total": f.total, "Unread": f.unread} for f in folders)]})

    async def livez(self, request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def readyz(self, request: Request) -> Response:
        """Ready when the store answers: 503 while its database is unreachable (a load balancer then sends
        clients to another node)."""
        try:
            await self.store.count()
        except StoreUnavailableError as exc:
            return Response(f"database unavailable: {exc}", status_code=503, media_type="text/plain",
                            headers={"Retry-After": "2"})
        return Response("ok", media_type="text/plain")


def checksums(raw: bytes, message: Message, *, cancelled: Callable[[], bool] = lambda: False
              ) -> dict[str, Mapping[str, str]]:
    """Mailpit's attachment Checksums: MD5, SHA1 and SHA256 of each part's decoded content.

    One walk of the MIME tree for the whole message, then each part's bytes by offset: linear in the message
    (parsing the message again for each part made 1,000 attachments take 41 s)."""
    out: dict[str, Mapping[str, str]] = {}
    wanted = [a.part_id for a in (*message.attachments, *message.inline) if a.part_id]
    if not wanted:
        return out
    root = mime.structure(raw)
    for part_id in wanted:
        if cancelled():
            raise Abandoned
        node = mime.find_part(root, part_id)
        if node is None or node.is_multipart:
            continue
        data = mime_content.decode_transfer(raw[node.body_start:node.body_end], node.encoding)
        out[part_id] = {"MD5": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                        "SHA1": hashlib.sha1(data, usedforsecurity=False).hexdigest(),
                        "SHA256": hashlib.sha256(data).hexdigest()}
    return out


def _message_extras(raw: bytes, message: Message, *, cancelled: Callable[[], bool]
                    ) -> tuple[dict[str, Mapping[str, str]], tuple[wire.ProtocolWarning, ...]]:
    return checksums(raw, message, cancelled=cancelled), wire.protocol_warnings(raw)


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    log.info("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.reason)
    return error_response(exc.status, exc.reason, headers=exc.headers, **exc.extra)


async def handle_query_error(request: Request, exc: Exception) -> Response:
    log.info("%s %s -> 400 bad query: %s", request.method, request.url.path, exc)
    return error_response(400, f"bad search query: {exc}")
