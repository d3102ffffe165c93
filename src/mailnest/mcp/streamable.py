"""MCP over Streamable HTTP, as an ASGI endpoint to mount at `/mcp` in mailnest's web application.

`McpHttp()` reaches the API of the application it is mounted in (Starlette puts that application in the
request's scope) without a socket, and forwards the caller's own `Authorization` header: an agent has exactly
the access its login has in the API, and the application's middleware (Host check, HTTP authentication) guards
`/mcp` as it guards the API. `McpHttp(Target(...))` talks to a mailnest at a URL instead, for serving on its own.

Stateless and answered in JSON: every POST is one self-contained exchange, so no session outlives a request, a
session cannot pass from one login to another, and nothing is kept between calls. A request from a web page of
another origin is refused (403) before the SDK sees it, so a page a developer opens cannot drive the tools
through the developer's browser; set `allowed_origins` for a browser-based client that should.

The SDK is imported, and its session manager started, by the first request (or by `await endpoint.start()`);
the manager runs in a task of its own, so start and stop may happen in different tasks. `await endpoint.stop()`
on shutdown (or `async with endpoint.lifespan():`, also usable as a Starlette lifespan). Without the SDK
installed, /mcp answers 501 saying how to install it; the rest of mailnest does not need it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from .backend import MailApi, Target

if TYPE_CHECKING:
    from mcp.server.mcpserver import Context
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

log = logging.getLogger("mailnest.mcp")

_INTERNAL_URL = "http://127.0.0.1/"  # a loopback name: the application's Host check lets it through
_CROSS_SITE = frozenset({"cross-site", "same-site"})


def _header(scope: Scope, name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name), None)


def same_origin(origin: str, host: str | None) -> bool:
    """True when `origin` (a browser's Origin header) names the server the request went to (its Host header)."""
    parts = urlsplit(origin)
    return bool(host) and parts.scheme in ("http", "https") and parts.netloc.lower() == (host or "").lower()


class McpHttp:
    """The Streamable HTTP endpoint; an ASGI application (mount it with `Route("/mcp", endpoint=it)`)."""

    def __init__(self, target: Target | None = None, *, allowed_origins: Sequence[str] = (),
                 allowed_hosts: Sequence[str] | None = None) -> None:
        """`target` None: the API of the application this is mounted in, with the caller's credentials.
        `allowed_origins`: web origins (scheme://host:port, or "*") whose pages may call it; the server's own
        origin always may. `allowed_hosts`: Host values to accept ("name:*" for any port), for serving it on its
        own; None leaves the Host check to the application it is mounted in."""
        self.target = target
        self.allowed_origins = frozenset(allowed_origins)
        self.allowed_hosts = None if allowed_hosts is None else list(allowed_hosts)
        self.manager: StreamableHTTPSessionManager | None = None
        self._running: asyncio.Task[None] | None = None
        self._stopping: asyncio.Event | None = None
        self._stopped = False
        self._starting = asyncio.Lock()

    def _build(self) -> StreamableHTTPSessionManager:
        """The SDK's session manager for the tools: the SDK is imported here, when /mcp is first used, so a
        mailnest nobody asks over MCP neither loads it nor builds the tools' schemas."""
        from mcp.server.transport_security import TransportSecuritySettings

        from .tools import build_server

        server = build_server(self._connect, target=self.target.base_url if self.target else "")
        # Origins are checked in __call__ (the server's own origin passes there); hosts here only when asked.
        security = (TransportSecuritySettings(allowed_hosts=self.allowed_hosts, allowed_origins=["*"])
                    if self.allowed_hosts is not None
                    else TransportSecuritySettings(enable_dns_rebinding_protection=False))
        # The SDK makes its session manager as part of its own Starlette app; only the manager is used here.
        server.streamable_http_app(stateless_http=True, json_response=True, transport_security=security)
        return server.session_manager

    # -- the tools' way to the API ----------------------------------------------------------------------------

    def _connect(self, ctx: Context) -> MailApi:
        request: Any = ctx.request_context.request
        scope: Scope = getattr(request, "scope", {}) or {}
        authorization = _header(scope, b"authorization")
        if self.target is not None:
            target = self.target
            if authorization and target.auth is None:
                target = Target(target.base_url, transport=target.transport,
                                headers={**target.headers, "Authorization": authorization})
            return target.client()
        app: ASGIApp | None = scope.get("app")
        if app is None:
            raise RuntimeError("McpHttp() without a target must be mounted in a Starlette application")
        headers = {"Authorization": authorization} if authorization else {}
        client = scope.get("client") or ("127.0.0.1", 0)
        transport = httpx.ASGITransport(app=app, client=(str(client[0]), int(client[1])))
        return Target(_INTERNAL_URL, transport=transport, headers=headers).client()

    # -- ASGI ------------------------------------------------------------------------------------------

    def _origin_refused(self, scope: Scope) -> str | None:
        origin = _header(scope, b"origin")
        fetch_site = (_header(scope, b"sec-fetch-site") or "").lower()
        if origin is None and fetch_site not in _CROSS_SITE:
            return None  # not from a web page of another site: agents, curl, SDK clients
        if origin is not None and ("*" in self.allowed_origins or origin in self.allowed_origins
                                   or same_origin(origin, _header(scope, b"host"))):
            return None
        return (f"requests from the web page of another origin ({origin or fetch_site}) may not use this MCP "
                "endpoint; an agent or MCP client talks to it directly, without a browser")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
            return
        refused = self._origin_refused(scope)
        if refused is not None:
            log.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), refused)
            await _json_error(send, 403, refused)
            return
        if self._running is None and not self._stopped:
            try:
                async with self._starting:
                    if self._running is None:
                        await self.start()
            except ImportError as exc:
                log.error("MCP is unavailable: %s", exc)
                await _json_error(send, 501, f"MCP needs the mcp SDK, which is not installed ({exc}); install "
                                             "it with `pip install 'mailnest[mcp]'` and restart mailnest")
                return
        if self.manager is None or self._running is None or self._running.done():
            await _json_error(send, 503, "the MCP endpoint has stopped (mailnest is shutting down)")
            return
        await self.manager.handle_request(scope, receive, send)

    # -- life cycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Run the SDK's session manager in a task of its own; returns once it is up. Optional: the first
        request starts it too."""
        if self._running is not None or self._stopped:
            raise RuntimeError("this McpHttp was already started; make a new one")
        manager = self.manager = self._build()
        started = asyncio.Event()
        self._stopping = asyncio.Event()
        stopping = self._stopping

        async def run() -> None:
            async with manager.run():
                started.set()
                await stopping.wait()

        self._running = asyncio.create_task(run(), name="mailnest-mcp")
        waiter = asyncio.ensure_future(started.wait())
        await asyncio.wait({waiter, self._running}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if self._running.done():
            self._running.result()  # the manager failed to start: raise its error here

    async def stop(self) -> None:
        """Stop the session manager (requests still in flight are cancelled); safe to call when it never
        started. Later requests are answered 503."""
        self._stopped = True
        if self._running is None or self._stopping is None:
            return
        self._stopping.set()
        try:
            await self._running
        except Exception:
            log.exception("the MCP session manager failed while stopping")

    @asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """`async with endpoint.lifespan():` (or `Starlette(lifespan=endpoint.lifespan)`)."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()


async def _json_error(send: Send, status: int, message: str) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
