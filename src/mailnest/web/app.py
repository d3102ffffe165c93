"""The ASGI application: the routes table of the HTTP listener.

Order matters where paths overlap: Mailpit's routes come before MailHog's (`GET /api/v1/messages` is Mailpit's),
and the web UI's routes (the page and `/view/...`) come last.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable, Sequence
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import Credentials, FailureGuard
from ..chaos import Chaos
from ..metrics import HttpMetrics, Metrics, metrics_endpoint
from ..search import QueryError
from ..store.base import StoreFullError, StoreUnavailableError
from .access import BasicAuth
from .api import Api, ApiError, Context, handle_api_error, handle_query_error, handle_unexpected_error
from .application import Application, RuntimeCounters
from .chaos_api import ChaosApi
from .checks import Checks
from .compat_mailhog import MailHog
from .events import LiveEvents, fold_origin, origin_allowed
from .openapi import OpenApi
from .send import SendApi
from .spaces import Spaces
from .tagging import Tagging

if TYPE_CHECKING:
    from ..runtime import MailServer

log = logging.getLogger("mailnest.http")


# Probes (Kubernetes sends the pod's IP as Host) read nothing: they need no Host check.
UNCHECKED_PATHS = frozenset({"/livez", "/readyz"})
_REFUSED_LOGGED = 64  # distinct refused names logged, at most: a scan must not flood the log


def host_name(header: str) -> str:
    """The name in a Host header, without port, brackets or trailing dot, lower-cased (pure)."""
    text = header.strip().lower()
    if text.startswith("["):
        return text[1:].partition("]")[0]
    if text.count(":") == 1:
        text = text.partition(":")[0]
    return text.rstrip(".")


def is_loopback_name(name: str) -> bool:
    """localhost, *.localhost (RFC 6761: always loopback), and every loopback address in any spelling."""
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        try:  # the shorthand IPv4 forms curl sends as written: 127.1, 0x7f.1
            return socket.inet_aton(name)[0] == 127
        except OSError:
            return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def _allowed_name(entry: str) -> str:
    """An --allowed-host entry as HostCheck compares it: a name, or ".domain" for a domain and all under it."""
    text = entry.strip().lower()
    if text.startswith("*."):
        text = text[1:]
    return text.rstrip(".") if text.startswith(".") else host_name(text)


class HostCheck:
    """A defence against DNS rebinding: only the names this server is known by are served.

    A web page on evil.example can make its own name resolve to 127.0.0.1; the browser then treats this server as
    evil.example, same origin, and lets the page read mail and delete it. The page cannot change the Host header,
    so any name that is not loopback, the listen address, `--hostname` or an `--allowed-host` is refused with
    400 and a reason that says how to allow it. An entry ".example.com" (or "*.example.com") allows that name and
    every name under it; "*" allows any. Applies to websockets too (before the handshake)."""

    def __init__(self, app: ASGIApp, *, allowed: Iterable[str], listen_host: str | None, hostname: str) -> None:
        self.app = app
        names = {_allowed_name(entry) for entry in allowed if entry.strip()}
        self.any = "*" in names
        for extra in (listen_host, hostname):
            if extra and extra not in ("0.0.0.0", "::", ""):
                names.add(host_name(extra) if ":" not in extra else extra.lower())
        self.suffixes = tuple(n for n in names if n.startswith("."))
        self.names = frozenset(n for n in names if not n.startswith("."))
        self._logged: set[str] = set()

    def allows(self, header: str | None) -> bool:
        if self.any or header is None:  # HTTP/1.0 without Host: no browser sends that
            return True
        name = host_name(header)
        return (name in self.names or is_loopback_name(name)
                or any(name.endswith(suffix) or name == suffix[1:] for suffix in self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in UNCHECKED_PATHS:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        name = host_name(header or "")
        reason = (f"this mailnest does not answer to the host name {name!r} (a defence against DNS rebinding); "
                  f"if you reach it by that name, start it with --allowed-host {name or 'NAME'}")
        if name not in self._logged and len(self._logged) < _REFUSED_LOGGED:
            self._logged.add(name)
            log.warning("refused %s %s for Host %r: %s", scope.get("method", "websocket"), scope["path"],
                        header, "not a name this server is known by; allow it with --allowed-host")
        headers = {"X-Content-Type-Options": "nosniff"}  # the reason quotes the name the client sent
        if scope["path"].startswith("/api/"):
            response: Response = JSONResponse({"Error": reason}, status_code=400, headers=headers)
        else:
            response = PlainTextResponse(reason + "\n", status_code=400, headers=headers)
        if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            await response(scope, receive, send)  # Starlette answers a handshake as websocket.http.response
        else:
            await send({"type": "websocket.close", "code": 1008})  # the server answers 403


class Cors:
    """CORS for `/api/` when `Config.cors_origins` is set (`*` allows any origin), as Mailpit's
    --api-cors: the allowed origin is echoed back, and a preflight (OPTIONS) is answered here.

    A change (any method but GET, HEAD and OPTIONS) from a browser page of another origin is refused with 403,
    whatever its Content-Type: a text/plain POST needs no preflight, so without this any web page could send
    mail or switch on chaos through a developer's browser. Requests without an Origin (curl, clients) pass."""

    def __init__(self, app: ASGIApp, origins: Sequence[str]) -> None:
        self.app = app
        self.origins = frozenset(origins)

    def _allowed(self, origin: str | None) -> str | None:
        if not origin or not self.origins:
            return None
        if "*" in self.origins:
            return "*"
        return origin if fold_origin(origin) in self.origins else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        allowed = self._allowed(headers.get("origin"))
        extra = [(b"access-control-allow-origin", allowed.encode()), (b"vary", b"Origin"),
                 (b"access-control-allow-methods", b"GET, POST, PUT, DELETE, OPTIONS"),
                 (b"access-control-allow-headers", b"*")] if allowed else []
        if scope["method"] not in ("GET", "HEAD", "OPTIONS") and not origin_allowed(headers, tuple(self.origins)):
            log.warning("refused %s %s from the web page of another origin (%s); allow it with --cors ORIGIN",
                        scope["method"], scope["path"], headers.get("origin"))
            response: Response = JSONResponse({"Error": f"requests from {headers.get('origin')} are not allowed"},
                                              403)
            await response(scope, receive, send)
            return
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            response = Response(b"", status_code=200 if allowed else 403, media_type="text/plain")
            response.raw_headers.extend(extra)
            await response(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)


class Frame:
    """The outermost layer: a `Date` header on every response, computed for it (uvicorn's is cached for up to a
    second, and clients that filter "since server time" then miss mail), a path with repeated slashes redirected
    to its clean form as Mailpit does (cypress-mailpit asks for `//view/{ID}.txt`), and the webroot.

    With `--webroot /mail/` every route (UI, API, events, websockets, probes, MCP, MailHog's) answers under
    `/mail/` only: the path is stripped of it here, so everything inside sees the paths it always sees, and a
    `Location` the inside answers with (an absolute path, or this server's own URL) gets it back. `/mail` and `/`
    redirect to `/mail/` (Mailpit redirects the first and answers 404 to the second; a browser pointed at the bare
    port lands on the UI instead); any other path outside it is a 404 that says where mailnest is."""

    def __init__(self, app: ASGIApp, webroot: str = "/") -> None:
        self.app = app
        self.webroot = webroot
        self.prefix = webroot.rstrip("/")  # "" without a webroot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["type"] == "http" and "//" in path:
            clean = _SLASHES.sub("/", path)
            query = scope.get("query_string", b"").decode("latin-1")
            location = quote(clean, safe="/:@!$&'()*+,;=-._~") + (f"?{query}" if query else "")
            await Response(b"", status_code=301, headers={"Location": location})(scope, receive, send)
            return
        if self.prefix:
            if not path.startswith(self.webroot):
                await self._outside(scope, receive, send)
                return
            scope = dict(scope)
            scope["path"] = path[len(self.prefix):]
            raw: bytes | None = scope.get("raw_path")
            if raw is not None and raw.startswith(self.webroot.encode()):
                scope["raw_path"] = raw[len(self.prefix):]
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")

        async def send_framed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"date"]
                if self.prefix and 300 <= message["status"] < 400:
                    headers = [(k, self._rooted(v, host)) if k.lower() == b"location" else (k, v)
                               for k, v in headers]
                message["headers"] = [(b"date", formatdate(usegmt=True).encode()), *headers]
            await send(message)

        await self.app(scope, receive, send_framed)

    def _rooted(self, location: bytes, host: str) -> bytes:
        """A Location from inside the webroot, as the client must follow it."""
        text = location.decode("latin-1")
        if text.startswith("/") and not text.startswith("//"):
            return (self.prefix + text).encode("latin-1")
        parts = urlsplit(text)
        if parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower() and parts.path.startswith("/"):
            return urlunsplit(parts._replace(path=self.prefix + parts.path)).encode("latin-1")
        return location

    async def _outside(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # the server answers 403
            return
        if path in ("/", self.prefix):
            query = scope.get("query_string", b"").decode("latin-1")
            location = self.webroot + (f"?{query}" if query and path == self.prefix else "")
            await Response(b"", status_code=302, headers={"Location": location})(scope, receive, send)
            return
        reason = (f"{path} is not served here: this mailnest serves its UI and API under {self.webroot} "
                  f"(--webroot); try {self.prefix}{path}")
        headers = {"X-Content-Type-Options": "nosniff"}
        response: Response = (JSONResponse({"Error": reason}, status_code=404, headers=headers)
                              if path.startswith("/api/") else
                              PlainTextResponse(reason + "\n", status_code=404, headers=headers))
        await response(scope, receive, send)


_SLASHES = re.compile(r"/{2,}")


def merged(routes: Sequence[BaseRoute]) -> list[BaseRoute]:
    """One Route per path, dispatching on the method, so a wrong method gets a 405 whose Allow header lists every
    method the path has (Starlette would list only those of the first route with that path)."""
    by_path: dict[str, dict[str, Any]] = {}
    order: list[BaseRoute | str] = []
    for route in routes:
        if type(route) is not Route:
            order.append(route)
            continue
        methods = by_path.get(route.path)
        if methods is None:
            methods = by_path[route.path] = {}
            order.append(route.path)
        for method in route.methods or ():
            methods.setdefault(method, route.endpoint)
    out: list[BaseRoute] = []
    for item in order:
        if not isinstance(item, str):
            out.append(item)
            continue
        endpoints = by_path[item]

        async def dispatch(request: Request, endpoints: dict[str, Any] = endpoints) -> Response:
            return await endpoints[request.method](request)

        out.append(Route(item, dispatch, methods=list(endpoints)))
    return out


def _ui_routes(server: Any) -> list[BaseRoute]:
    try:
        from .ui import ui_routes
    except ImportError:
        return []
    # SMTP is bound before the web app is made: the empty inbox names the port really bound, even with :0.
    return list(ui_routes(server.store, server.config, smtp_port=getattr(server, "smtp_port", None)))


async def handle_http_exception(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods: JSON with a reason under /api/, as every other API error; plain text
    elsewhere."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if request.url.path.startswith("/api/"):
        reason = f"{request.method} {request.url.path}: {exc.detail}"
        if exc.status_code == 405 and "allow" in {k.lower() for k in headers}:
            reason += f" (allowed: {next(v for k, v in headers.items() if k.lower() == 'allow')})"
        return JSONResponse({"Error": reason}, status_code=exc.status_code, headers=headers)
    return PlainTextResponse(str(exc.detail), status_code=exc.status_code, headers=headers)


def create_app(server: MailServer) -> Starlette:
    chaos = getattr(server, "chaos", None)
    if chaos is None:  # an embedding runtime without chaos wiring: the API still works, chaos stays off
        chaos = Chaos.from_config(server.config)
    context = Context(store=server.store, config=server.config, chaos=chaos,
                      outputs=getattr(server, "outputs", None))
    api = Api(context)
    checks = Checks(context, api)
    metrics: Metrics | None = getattr(server, "metrics", None)  # an embedding runtime may have none
    routes: list[BaseRoute] = [
        *api.routes(),
        *checks.routes(),
        *SendApi(context).routes(),
        *Tagging(context).routes(),
        *Spaces(context).routes(),
        *Application(context, RuntimeCounters(server.hub, metrics)).routes(),
        *ChaosApi(context).routes(),
        *LiveEvents(server.store, server.hub, server.config.cors_origins, server.config.max_event_queue).routes(),
        *OpenApi().routes(),
        *MailHog(context, checks).routes(),
        *_ui_routes(server),
        *([Route("/metrics", metrics_endpoint(metrics, server.store.stats), methods=["GET"])] if metrics else []),
    ]

    config = server.config
    ui_accounts = Credentials.load(config.http_auth_file) if config.http_auth_file else None
    send_accounts = Credentials.load(config.send_auth_file) if config.send_auth_file else None
    guard = getattr(server, "login_failures", None) or FailureGuard()
    # MCP for coding agents (an ASGI endpoint, kept out of merged(), which takes plain routes only).
    mcp_endpoint = getattr(server, "mcp", None)
    extra: list[BaseRoute] = [Route("/mcp", endpoint=mcp_endpoint)] if mcp_endpoint is not None else []
    return Starlette(
        routes=[*merged(routes), *extra],
        # The frame (Date, clean paths, the webroot), then the request metrics, then the Host check: a rebound
        # name is refused whatever it asks. Then CORS: a browser's preflight carries no credentials and must still
        # be answered.
        middleware=[Middleware(Frame, webroot=config.webroot),
                    *([Middleware(HttpMetrics, metrics=metrics)] if metrics else []),
                    Middleware(HostCheck, allowed=config.allowed_hosts,
                               listen_host=config.http.host if config.http else None, hostname=config.hostname),
                    Middleware(Cors, origins=config.cors_origins),
                    Middleware(BasicAuth, ui=ui_accounts, send_api=send_accounts, guard=guard)],
        exception_handlers={ApiError: handle_api_error, QueryError: handle_query_error,
                            HTTPException: handle_http_exception, StoreFullError: handle_unexpected_error,
                            StoreUnavailableError: handle_unexpected_error,
                            Exception: handle_unexpected_error},
    )
