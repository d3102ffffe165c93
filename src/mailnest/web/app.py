"""The ASGI application: the routes table of the HTTP listener.

Order matters where paths overlap: Mailpit's routes come before MailHog's (`GET /api/v1/messages` is Mailpit's),
and the web UI's routes (the page and `/view/...`) come last.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..auth import Credentials, FailureGuard
from ..chaos import Chaos
from ..search import QueryError
from .access import BasicAuth
from .api import Api, ApiError, Context, handle_api_error, handle_query_error
from .application import Application, RuntimeCounters
from .chaos_api import ChaosApi
from .checks import Checks
from .compat_mailhog import MailHog
from .events import LiveEvents, origin_allowed
from .openapi import OpenApi
from .send import SendApi
from .tagging import Tagging

if TYPE_CHECKING:
    from ..runtime import MailServer

log = logging.getLogger("mailnest.http")


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
        return origin if origin in self.origins else None

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
            response = JSONResponse({"Error": f"requests from {headers.get('origin')} are not allowed"}, 403)
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
            return await endpoints[request.method](request)  # type: ignore[no-any-return]

        out.append(Route(item, dispatch, methods=list(endpoints)))
    return out


def _ui_routes(server: Any) -> list[BaseRoute]:
    try:
        from .ui import ui_routes
    except ImportError:
        return []
    return list(ui_routes(server.store, server.config))


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
    routes: list[BaseRoute] = [
        *api.routes(),
        *checks.routes(),
        *SendApi(context).routes(),
        *Tagging(context).routes(),
        *Application(context, RuntimeCounters(server.hub)).routes(),
        *ChaosApi(context).routes(),
        *LiveEvents(server.store, server.hub, server.config.cors_origins).routes(),
        *OpenApi().routes(),
        *MailHog(context, checks).routes(),
        *_ui_routes(server),
    ]

    config = server.config
    ui_accounts = Credentials.load(config.http_auth_file) if config.http_auth_file else None
    send_accounts = Credentials.load(config.send_auth_file) if config.send_auth_file else None
    guard = getattr(server, "login_failures", None) or FailureGuard()
    return Starlette(
        routes=merged(routes),
        # CORS first: a browser's preflight carries no credentials and must still be answered.
        middleware=[Middleware(Cors, origins=config.cors_origins),
                    Middleware(BasicAuth, ui=ui_accounts, send_api=send_accounts, guard=guard)],
        exception_handlers={ApiError: handle_api_error, QueryError: handle_query_error,
                            HTTPException: handle_http_exception},
    )
