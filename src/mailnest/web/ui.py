"""The web UI's routes: the page, its static files, and the sanitized message preview.

The page itself only ever talks to the public HTTP API. The preview routes are here rather than in the API
because they exist for the page: `/view/{ID}.html` is what the sandboxed iframe loads, under a CSP that allows
no script, no form target and (by default) no remote image; `/view/{ID}.json` tells the page what the preview
blocked and which links the message holds.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import Config
from ..models import Message as MailMessage
from ..search import QueryError
from ..store.base import Store
from . import sanitize
from .api import ApiError, mailbox_param, query_param, tz_param

log = logging.getLogger("mailnest.http")

STATIC_DIR = Path(__file__).parent / "static"

# The page: scripts and styles from our own /static only; Trusted Types turn any innerHTML with a string into
# an error, so message text can only ever reach the DOM as text. Frames: only our own preview.
UI_CSP = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "connect-src 'self'",
    "frame-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
])

COMMON_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=()",
}

UI_HEADERS: Mapping[str, str] = {
    **COMMON_HEADERS,
    "Content-Security-Policy": UI_CSP,
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-cache",
}

STATIC_HEADERS: Mapping[str, str] = {
    **COMMON_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; sandbox",
    "Cache-Control": "no-cache",
}


def preview_csp(*, allow_remote: bool) -> str:
    """The preview document's policy: no script at all, no form posts, images only from here unless asked."""
    images = "'self' data: http: https:" if allow_remote else "'self' data:"
    return "; ".join([
        "default-src 'none'",
        f"img-src {images}",
        "style-src 'unsafe-inline'",
        "font-src data:",
        "form-action 'none'",
        "base-uri 'none'",
        "frame-ancestors 'self'",
        # Even opened outside the iframe (a new tab on /view/...), the document stays sandboxed.
        "sandbox allow-popups allow-popups-to-escape-sandbox",
    ])


def preview_headers(*, allow_remote: bool = False) -> dict[str, str]:
    return {
        **COMMON_HEADERS,
        "Content-Security-Policy": preview_csp(allow_remote=allow_remote),
        "X-Frame-Options": "SAMEORIGIN",
        "Cache-Control": "private, no-cache",
    }


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    media_type: str
    etag: str


_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".svg": "image/svg+xml", ".html": "text/html; charset=utf-8", ".png": "image/png",
          ".ico": "image/x-icon", ".json": "application/json"}


# References between the UI's files, rewritten to carry the assets' version so browsers may cache them for good.
_REFERENCES = re.compile(rb'((?:src|href)="/static/[^"?]+|from "\./[^"?]+\.js|url\("/static/[^"?]+)"')


def _load_assets(root: Path) -> tuple[dict[str, _Asset], str]:
    """Every file of the UI, read once (a dozen small files served from memory beat a thread hop each).

    Returns the assets and their version: a hash of them all, appended as `?v=` to every reference between
    them, so a new mailnest never runs with an old module cached by the browser.
    """
    files = {p.relative_to(root).as_posix(): p.read_bytes()
             for p in sorted(root.rglob("*")) if p.is_file() and p.suffix in _TYPES}
    digest = hashlib.sha256()
    for name, body in files.items():
        digest.update(name.encode() + b"\0" + body)
    version = digest.hexdigest()[:12]
    assets = {}
    for name, body in files.items():
        if name.endswith((".html", ".js", ".css")):
            body = _REFERENCES.sub(lambda m: m.group(1) + b"?v=" + version.encode() + b'"', body)
        etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        assets[name] = _Asset(body, _TYPES[Path(name).suffix], etag)
    return assets, version


# Sanitizing a large HTML body takes milliseconds per hundred kilobytes: past this size it leaves the loop.
_THREAD_THRESHOLD = 64 * 1024
# Opening a message asks for its preview (/view/ID.html) and what the preview blocked (/view/ID.json) at the same
# moment: both come from one sanitizing pass, kept for the last few messages (stored mail never changes).
_PREVIEWS_KEPT = 16
_PREVIEW_BUDGET = 16 * 1024 * 1024  # characters of kept previews, at most


class UI:
    def __init__(self, store: Store, config: Config) -> None:
        self.store = store
        self.config = config
        self._assets, self.version = _load_assets(STATIC_DIR)
        self._index = self._assets["index.html"].body
        self._previews: OrderedDict[tuple[str, bool], asyncio.Future[sanitize.Preview]] = OrderedDict()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/static/{path:path}", self.static, methods=["GET"]),
            Route("/view/{id}.html", self.view_html, methods=["GET"]),
            Route("/view/{id}.txt", self.view_text, methods=["GET"]),
            Route("/view/{id}.json", self.view_info, methods=["GET"]),
        ]

    async def index(self, request: Request) -> Response:
        return Response(self._index, media_type="text/html; charset=utf-8", headers=dict(UI_HEADERS))

    async def static(self, request: Request) -> Response:
        asset = self._assets.get(request.path_params["path"])
        if asset is None:
            return PlainTextResponse("not found\n", status_code=404, headers=dict(STATIC_HEADERS))
        headers = {**STATIC_HEADERS, "ETag": asset.etag}
        if request.query_params.get("v") == self.version:
            headers["Cache-Control"] = "public, max-age=31536000, immutable"
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    async def _message(self, request: Request) -> MailMessage | None:
        """The message of the path; `latest` is the newest, or the newest matching `?query=` (dates in `?tz=`)
        in `?mailbox=`, exactly as the API's `latest`. Raises ApiError or QueryError for a bad parameter."""
        id_ = request.path_params["id"]
        if id_ == "latest":
            latest = await self.store.latest(query=query_param(request), tz=tz_param(request),
                                             mailbox=mailbox_param(request))
            if latest is None:
                return None
            id_ = latest.id
        return await self.store.get(id_)

    async def _message_or_reason(self, request: Request) -> MailMessage | str | None:
        try:
            return await self._message(request)
        except (ApiError, QueryError) as exc:
            reason = exc.reason if isinstance(exc, ApiError) else f"bad search query: {exc}"
            log.info("%s %s -> 400 %s", request.method, request.url.path, reason)
            return reason

    @staticmethod
    def _part_urls(message: MailMessage) -> dict[str, str]:
        """Content-ID -> URL of that part, so `cid:` images in the HTML resolve to this server."""
        urls: dict[str, str] = {}
        for part in (*message.inline, *message.attachments):
            if part.content_id and part.part_id:
                urls[part.content_id] = f"/api/v1/message/{quote(message.id, safe='')}/part/{quote(part.part_id)}"
        return urls

    async def _preview(self, message: MailMessage, *, allow_remote: bool) -> sanitize.Preview:
        key = (message.id, allow_remote)
        shared = self._previews.get(key)
        if shared is None or (shared.done() and not _succeeded(shared)):
            shared = self._previews[key] = asyncio.ensure_future(self._sanitize(message, allow_remote=allow_remote))
            shared.add_done_callback(lambda _: self._trim_previews())
        self._previews.move_to_end(key)
        return await asyncio.shield(shared)

    async def _sanitize(self, message: MailMessage, *, allow_remote: bool) -> sanitize.Preview:
        html, cid_urls = message.html, self._part_urls(message)
        started = time.perf_counter()
        if len(html) < _THREAD_THRESHOLD:
            preview = sanitize.sanitize(html, cid_urls=cid_urls, allow_remote=allow_remote)
        else:
            preview = await asyncio.to_thread(sanitize.sanitize, html, cid_urls=cid_urls, allow_remote=allow_remote)
        log.debug("sanitized the HTML of %s (%d characters) in %.1f ms", message.id, len(html),
                  (time.perf_counter() - started) * 1000)
        return preview

    def _trim_previews(self) -> None:
        sizes = [len(f.result().body) if _succeeded(f) else 0 for f in self._previews.values()]
        total = sum(sizes)
        while len(self._previews) > _PREVIEWS_KEPT or total > _PREVIEW_BUDGET:
            self._previews.popitem(last=False)
            total -= sizes.pop(0)

    async def view_html(self, request: Request) -> Response:
        allow_remote = request.query_params.get("remote") == "1"
        headers = preview_headers(allow_remote=allow_remote)
        message = await self._message_or_reason(request)
        if isinstance(message, str):
            return Response(sanitize.text_document(message), status_code=400, media_type="text/html; charset=utf-8",
                            headers=headers)
        if message is None:
            body = sanitize.text_document("This message no longer exists.")
            return Response(body, status_code=404, media_type="text/html; charset=utf-8", headers=headers)
        if not message.html:  # 404 as Mailpit answers; the page in the frame still says why
            body = sanitize.text_document("This message has no HTML part.")
            return Response(body, status_code=404, media_type="text/html; charset=utf-8", headers=headers)
        body = sanitize.document(await self._preview(message, allow_remote=allow_remote))
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    async def view_text(self, request: Request) -> Response:
        message = await self._message_or_reason(request)
        headers = preview_headers()
        if isinstance(message, str):
            return PlainTextResponse(message + "\n", status_code=400, headers=headers)
        if message is None:
            return PlainTextResponse("message not found\n", status_code=404, headers=headers)
        return PlainTextResponse(message.text, headers=headers)

    async def view_info(self, request: Request) -> Response:
        message = await self._message(request)
        if message is None:
            return JSONResponse({"Error": "message not found"}, status_code=404, headers=dict(COMMON_HEADERS))
        preview = await self._preview(message, allow_remote=False)
        links = dict.fromkeys(preview.links)
        links.update(dict.fromkeys(sanitize.text_links(message.text)))
        return JSONResponse({"ID": message.id, "RemoteImages": preview.remote_images, "Links": list(links)},
                            headers={**COMMON_HEADERS, "Cache-Control": "private, no-cache"})


def _succeeded(future: asyncio.Future[sanitize.Preview]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def ui_routes(store: Store, config: Config) -> list[BaseRoute]:
    """The UI's routes, for the application's routes table (after the API's routes)."""
    return UI(store, config).routes()
