"""The web UI's routes: the page, its static files, the message's HTML (original and sanitized), the UI links.

The page itself only ever talks to the public HTTP API. The preview routes are here rather than in the API
because they exist for the page: `/view/{ID}.preview.html` is what the sandboxed iframe loads, sanitized, under a
CSP that allows no script, no form target and (by default) no remote image; `/view/{ID}.json` tells the page what
the preview blocked and which links the message holds.

`/view/{ID}.html` is Mailpit's testing route: the message's own HTML, unchanged but for `cid:` references (and,
with `?embed=1`, link targets), so a browser test finds the email's forms and buttons. It is made harmless by its
headers instead: a CSP sandbox without scripts and without remote fetches unless `?remote=1`.

`/view/{ID}`, `/view/latest` and `/search?q=` are the links Mailpit clients print (pytest-mailpit's failure
reports): they redirect to the page, which opens that message or that search (its state lives in the URL's
fragment, `#id=...&q=...`). Every path here is inside the webroot (`app.py` strips it from requests and puts it
back on a redirect's Location); a URL written into a document served here carries it (`cid:` part links).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import Config, Listen
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
    # CSP does not cover `<link rel=dns-prefetch>`: without this a browser may look up a tracker's name.
    "X-DNS-Prefetch-Control": "off",
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


def original_csp(*, allow_remote: bool) -> str:
    """The original HTML's policy: the document is sandboxed without `allow-scripts`, so no script, inline
    handler or `javascript:` URL in it runs, whatever the markup. A link clicked navigates as in the email (the
    document itself, a new window, or the top window when framed: by user activation only), and a form the
    reader submits goes where the email sends it (no script can submit one). Images, styles, fonts and media come
    from this server (the message's parts) and `data:` only: captured HTML fetches nothing remote unless asked
    (`?remote=1`), so opening it tells no tracker the address is live."""
    remote = " http: https:" if allow_remote else ""
    return "; ".join([
        "default-src 'none'",
        f"img-src 'self' data:{remote}",
        f"style-src 'self' 'unsafe-inline'{remote}",
        f"font-src 'self' data:{remote}",
        f"media-src 'self' data:{remote}",
        "base-uri 'none'",
        "frame-ancestors 'self'",
        "sandbox allow-forms allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation",
    ])


def original_headers(*, allow_remote: bool = False) -> dict[str, str]:
    return {
        **COMMON_HEADERS,
        "Content-Security-Policy": original_csp(allow_remote=allow_remote),
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
# All relative (the page is served at the webroot, whatever it is): `static/...` from the page, `./x.js` between
# modules, `../icons/...` from the stylesheet.
_REFERENCES = re.compile(rb'((?:src|href)="static/[^"?]+|from "\./[^"?]+\.js|url\("\.\./[^"?]+)"')


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
    def __init__(self, store: Store, config: Config, *, smtp_port: int | None = None) -> None:
        """`smtp_port` is the SMTP listener's bound port, where the caller knows it (with `--smtp :0` the config
        says 0); without it the page names the configured port, or none for port 0."""
        self.store = store
        self.config = config
        self.webroot = config.webroot
        self._assets, self.version = _load_assets(STATIC_DIR)
        self._index = _with_smtp(_with_label(self._assets["index.html"].body, config.label),
                                 smtp_address(config, smtp_port))
        self._previews: OrderedDict[tuple[str, bool], asyncio.Future[sanitize.Preview]] = OrderedDict()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.index, methods=["GET"]),
            Route("/static/{path:path}", self.static, methods=["GET"]),
            # Before /view/{id}.html, which would take "X.preview" for an ID.
            Route("/view/{id}.preview.html", self.view_preview, methods=["GET"]),
            Route("/view/{id}.html", self.view_original, methods=["GET"]),
            Route("/view/{id}.txt", self.view_text, methods=["GET"]),
            Route("/view/{id}.json", self.view_info, methods=["GET"]),
            Route("/view/{id}", self.open_message, methods=["GET"]),
            Route("/search", self.open_search, methods=["GET"]),
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

    def _part_urls(self, message: MailMessage) -> dict[str, str]:
        """Content-ID -> URL of that part, so `cid:` images in the HTML resolve to this server."""
        urls: dict[str, str] = {}
        for part in (*message.inline, *message.attachments):
            if part.content_id and part.part_id:
                urls[part.content_id] = (f"{self.webroot}api/v1/message/{quote(message.id, safe='')}"
                                         f"/part/{quote(part.part_id)}")
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

    async def view_preview(self, request: Request) -> Response:
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

    async def view_original(self, request: Request) -> Response:
        """The message's own HTML, as Mailpit serves it: 404 with a reason for an unknown message or one without
        an HTML part, 400 for a bad `latest` query."""
        headers = original_headers(allow_remote=request.query_params.get("remote") == "1")
        message = await self._message_or_reason(request)
        if isinstance(message, str):
            return PlainTextResponse(message + "\n", status_code=400, headers=headers)
        if message is None:
            return PlainTextResponse("message not found\n", status_code=404, headers=headers)
        if not message.html:
            return PlainTextResponse("this message has no HTML part\n", status_code=404, headers=headers)
        html = await _off_loop(partial(sanitize.link_parts, cid_urls=self._part_urls(message)), message.html)
        if request.query_params.get("embed") == "1":
            html = await _off_loop(sanitize.embed_links, html)
        return Response(html, media_type="text/html; charset=utf-8", headers=headers)

    async def open_message(self, request: Request) -> Response:
        """`/view/{ID}` and `/view/latest` (newest matching `?query=`, as Mailpit): the page, that message open;
        the page alone when there is no such message."""
        id_ = request.path_params["id"]
        try:
            tz_param(request)  # checked whatever the ID, so that a mistyped link says so rather than open the page
            query_param(request)
            if id_ == "latest":
                message = await self._message(request)
                id_ = message.id if message else ""
        except (ApiError, QueryError) as exc:
            reason = exc.reason if isinstance(exc, ApiError) else f"bad search query: {exc}"
            return PlainTextResponse(reason + "\n", status_code=400, headers=dict(COMMON_HEADERS))
        return self._open_page({"id": id_} if id_ else {})

    async def open_search(self, request: Request) -> Response:
        """`/search?q=...` (Mailpit's UI link; `query=` too): the page showing that search."""
        query = request.query_params.get("q") or request.query_params.get("query") or ""
        return self._open_page({"q": query} if query.strip() else {})

    def _open_page(self, state: dict[str, str]) -> Response:
        fragment = "#" + urlencode(state, quote_via=quote) if state else ""
        return RedirectResponse("/" + fragment, status_code=302, headers=dict(COMMON_HEADERS))

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
        texts = await asyncio.to_thread(link_texts, message.html) if message.html else {}
        return JSONResponse({"ID": message.id, "RemoteImages": preview.remote_images, "Links": list(links),
                             "LinkText": {url: texts[url] for url in links if texts.get(url)}},
                            headers={**COMMON_HEADERS, "Cache-Control": "private, no-cache"})


class _AnchorText(HTMLParser):
    """Collects the text of each `<a href>`: the words a reader clicks, for the Links tab."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}
        self._href: str | None = None
        self._words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._close()
            href = next((v for k, v in attrs if k == "href" and v), None)
            self._href = None if href is None else sanitize._normalise_url(href)  # as the preview lists it
        elif tag == "img" and self._href is not None:
            alt = next((v for k, v in attrs if k == "alt" and v), "")
            self._words.append(f"[{alt}]" if alt else "[image]")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._close()

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._words.append(data)

    def _close(self) -> None:
        if self._href is not None:
            text = " ".join("".join(self._words).split())[:LINK_TEXT_LIMIT]
            if text and self._href not in self.texts:
                self.texts[self._href] = text
        self._href, self._words = None, []


LINK_TEXT_LIMIT = 200  # characters of link text kept per link


def link_texts(html: str) -> dict[str, str]:
    """{href: the text of the first link to it}, from the message's HTML (hrefs as written)."""
    parser = _AnchorText()
    parser.feed(html)
    parser.close()
    parser._close()
    return parser.texts


def _with_label(index: bytes, label: str | None) -> bytes:
    """The page with the instance's `--label` in its title and its header (escaped: it is text, never markup)."""
    if not label:
        return index
    text = escape(label).encode()
    index = index.replace(b"<title>mailnest</title>", b"<title>mailnest - " + text + b"</title>", 1)
    return index.replace(b'class="instance-label" title="This instance\'s --label" hidden></span>',
                         b'class="instance-label" title="This instance\'s --label">' + text + b"</span>", 1)


_WILDCARD_HOSTS = ("", "0.0.0.0", "::")


def smtp_address(config: Config, bound_port: int | None = None) -> str:
    """Where the empty inbox tells the reader to send mail: `127.0.0.1:1025`; `*:1025` when SMTP listens on every
    address (the page puts in the host it was reached by); "" without SMTP or with a port not known (port 0)."""
    listen = config.smtp
    if listen is None:
        return ""
    port = bound_port or listen.port
    if not port:
        return ""
    if listen.host in _WILDCARD_HOSTS:
        return f"*:{port}"
    return str(Listen(listen.host, port))


def _with_smtp(index: bytes, address: str) -> bytes:
    """The page with the SMTP address in its `mailnest-smtp` meta tag (escaped: it is an attribute value)."""
    return index.replace(b'<meta name="mailnest-smtp" content="">',
                         b'<meta name="mailnest-smtp" content="' + escape(address).encode() + b'">', 1)


async def _off_loop(function: Callable[[str], str], html: str) -> str:
    return function(html) if len(html) < _THREAD_THRESHOLD else await asyncio.to_thread(function, html)


def _succeeded(future: asyncio.Future[sanitize.Preview]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


def ui_routes(store: Store, config: Config, *, smtp_port: int | None = None) -> list[BaseRoute]:
    """The UI's routes, for the application's routes table (after the API's routes). `smtp_port`: the bound
    SMTP port, so that the empty inbox names it even with `--smtp :0`."""
    return UI(store, config, smtp_port=smtp_port).routes()
