"""The HTTP API's core: Mailpit's API v1 paths and JSON, plus mailnest's wait, mailboxes and envelope."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__, events, mime
from ..store.base import Store
from . import json as render

log = logging.getLogger("mailnest.http")

MAX_LIMIT = 1000
MAX_WAIT = 300.0
MAX_JSON_BODY = 1024 * 1024


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def error_response(status: int, reason: str) -> JSONResponse:
    return JSONResponse({"Error": reason}, status_code=status)


def _int_param(request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
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


def _float_param(request: Request, name: str, default: float, *, maximum: float) -> float:
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


async def json_body(request: Request) -> Any:
    body = await request.body()
    if len(body) > MAX_JSON_BODY:
        raise ApiError(413, f"the request body is over {MAX_JSON_BODY} bytes")
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None


def _ids_from(body: Any, *, required: bool = False) -> list[str] | None:
    if body is None:
        if required:
            raise ApiError(400, 'expected a JSON object such as {"IDs": ["..."]}')
        return None
    if not isinstance(body, dict):
        raise ApiError(400, 'expected a JSON object such as {"IDs": ["..."]}')
    ids = body.get("IDs", body.get("ids"))
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ApiError(400, "IDs must be a list of message ID strings")
    return ids


class Api:
    def __init__(self, store: Store, started: float | None = None) -> None:
        self.store = store
        self.started = started or time.time()

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
            Route("/api/v1/wait", self.wait, methods=["GET"]),
            Route("/api/v1/mailboxes", self.list_mailboxes, methods=["GET"]),
            Route("/api/v1/info", self.info, methods=["GET"]),
            Route("/livez", self.livez, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
        ]

    # -- lists and searches ----------------------------------------------------------------------------

    async def list_messages(self, request: Request) -> Response:
        return await self._page(request, query=request.query_params.get("query", ""))

    async def search(self, request: Request) -> Response:
        query = request.query_params.get("query")
        if query is None:
            raise ApiError(400, "the query parameter 'query' is required, e.g. ?query=subject:welcome")
        return await self._page(request, query=query)

    async def _page(self, request: Request, *, query: str) -> Response:
        start = _int_param(request, "start", 0)
        limit = _int_param(request, "limit", 50, minimum=1, maximum=MAX_LIMIT)
        page = await self.store.list(query=query, mailbox=self._mailbox(request), start=start, limit=limit)
        return JSONResponse(render.page(page))

    @staticmethod
    def _mailbox(request: Request) -> str | None:
        return request.query_params.get("mailbox") or None

    async def delete_messages(self, request: Request) -> Response:
        ids = _ids_from(await json_body(request))
        if ids:
            await self.store.delete(ids)
        elif mailbox := self._mailbox(request):
            await self.store.delete_matching(mailbox=mailbox)
        else:
            await self.store.delete_all()
        return Response("ok", media_type="text/plain")

    async def mark_messages(self, request: Request) -> Response:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise ApiError(400, 'expected a JSON object such as {"IDs": ["..."], "Read": true}')
        read = body.get("Read", body.get("read"))
        if not isinstance(read, bool):
            raise ApiError(400, "Read must be true or false")
        ids = _ids_from(body)
        if ids:
            await self.store.set_read(ids, read)
        else:
            search = body.get("Search", "")
            if not isinstance(search, str):
                raise ApiError(400, "Search must be a string")
            await self.store.set_read_matching(read, query=search, mailbox=self._mailbox(request))
        return Response("ok", media_type="text/plain")

    async def delete_search(self, request: Request) -> Response:
        query = request.query_params.get("query")
        if not query:
            raise ApiError(400, "the query parameter 'query' is required; to delete everything use DELETE "
                                "/api/v1/messages")
        await self.store.delete_matching(query=query, mailbox=self._mailbox(request))
        return Response("ok", media_type="text/plain")

    # -- one message -----------------------------------------------------------------------------------

    async def _resolve(self, request: Request) -> str:
        id_ = request.path_params["id"]
        if id_ == "latest":
            latest = await self.store.latest(query=request.query_params.get("query", ""),
                                             mailbox=self._mailbox(request))
            if latest is None:
                raise ApiError(404, "there are no messages" + (" matching the query" if
                                                                 request.query_params.get("query") else ""))
            return latest.id
        return id_

    async def get_message(self, request: Request) -> Response:
        id_ = await self._resolve(request)
        message = await self.store.get(id_)
        if message is None:
            raise ApiError(404, f"message {id_!r} not found")
        return JSONResponse(render.message(message))

    async def _raw(self, request: Request) -> tuple[str, bytes]:
        id_ = await self._resolve(request)
        raw = await self.store.raw(id_)
        if raw is None:
            raise ApiError(404, f"message {id_!r} not found")
        return id_, raw

    async def get_raw(self, request: Request) -> Response:
        id_, raw = await self._raw(request)
        headers = {}
        if request.query_params.get("dl"):
            headers["Content-Disposition"] = f'attachment; filename="{id_}.eml"'
        return Response(raw, media_type="message/rfc822", headers=headers)

    async def get_headers(self, request: Request) -> Response:
        _, raw = await self._raw(request)
        grouped: dict[str, list[str]] = {}
        for name, value in await asyncio.to_thread(mime.headers, raw):
            grouped.setdefault(name, []).append(value)
        return JSONResponse(grouped)

    async def get_part(self, request: Request) -> Response:
        id_, raw = await self._raw(request)
        part_id = request.path_params["part_id"]
        content = await asyncio.to_thread(mime.part, raw, part_id)
        if content is None:
            raise ApiError(404, f"message {id_!r} has no part {part_id!r}")
        disposition = "attachment" if request.query_params.get("dl") else "inline"
        if content.filename:
            disposition += f"; filename*=UTF-8''{quote(content.filename, safe='')}"
        return Response(content.data, media_type=content.content_type or "application/octet-stream",
                        headers={"Content-Disposition": disposition, "X-Content-Type-Options": "nosniff",
                                 "Content-Security-Policy": "default-src 'none'; sandbox"})

    # -- waiting ---------------------------------------------------------------------------------------

    async def wait(self, request: Request) -> Response:
        query = request.query_params.get("query", "")
        mailbox = self._mailbox(request)
        count = _int_param(request, "count", 1, minimum=1, maximum=MAX_LIMIT)
        timeout = _float_param(request, "timeout", 10.0, maximum=MAX_WAIT)
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
        return JSONResponse({"Error": f"timed out after {timeout:g}s waiting for {what}; {arrived} arrived",
                             "Arrived": arrived, "Expected": count}, status_code=408)

    # -- everything else -------------------------------------------------------------------------------

    async def list_mailboxes(self, request: Request) -> Response:
        boxes = await self.store.mailboxes()
        return JSONResponse([{"Address": b.address, "Total": b.total, "Unread": b.unread} for b in boxes])

    async def info(self, request: Request) -> Response:
        stats = await self.store.stats()
        path = getattr(self.store, "path", "")
        return JSONResponse({
            "Version": __version__,
            "LatestVersion": "",
            "Database": str(path),
            "DatabaseSize": _file_size(path),
            "Messages": stats.total,
            "Unread": stats.unread,
            "Tags": {t: 0 for t in stats.tags},
            "RuntimeStats": {"Uptime": int(time.time() - self.started), "Memory": _rss(),
                             "MessagesDeleted": 0, "SMTPAccepted": 0, "SMTPAcceptedSize": 0,
                             "SMTPRejected": 0, "SMTPIgnored": 0},
        })

    async def livez(self, request: Request) -> Response:
        return Response("ok", media_type="text/plain")

    async def readyz(self, request: Request) -> Response:
        await self.store.count()
        return Response("ok", media_type="text/plain")


def _file_size(path: object) -> int:
    try:
        return os.path.getsize(str(path)) if path else 0
    except OSError:
        return 0


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


async def handle_api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    log.info("%s %s -> %d %s", request.method, request.url.path, exc.status, exc.reason)
    return error_response(exc.status, exc.reason)


async def handle_query_error(request: Request, exc: Exception) -> Response:
    log.info("%s %s -> 400 bad query: %s", request.method, request.url.path, exc)
    return error_response(400, f"bad search query: {exc}")
