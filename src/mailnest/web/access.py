"""Basic authentication for the web UI and the API (`--http-auth-file`, and `--send-auth-file` for the send API).

Pure ASGI middleware, so it guards websockets and server-sent events as well as plain requests. Health checks
(`/livez`, `/readyz`) stay open for probes. With `--send-auth-file`, `POST /api/v1/send` takes those accounts
instead of the UI's (as Mailpit's --send-api-auth-file), so a test suite can inject mail without the UI password.
Wrong credentials are answered 401 after the same growing delay as the other front doors.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import Credentials, FailureGuard

log = logging.getLogger("mailnest.http")

OPEN_PATHS = frozenset({"/livez", "/readyz"})
SEND_PATH = "/api/v1/send"
REALM = 'Basic realm="mailnest", charset="UTF-8"'


def basic_credentials(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an `Authorization: Basic ...` header, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class BasicAuth:
    def __init__(self, app: ASGIApp, *, ui: Credentials | None, send_api: Credentials | None,
                 guard: FailureGuard) -> None:
        self.app = app
        self.ui = ui
        self.send_api = send_api
        self.guard = guard
        # bcrypt makes every check slow on purpose; a browser sends the same header with every request, so a
        # header that passed once (for the same accounts) is remembered by its digest, never in clear.
        self._passed: set[tuple[int, bytes]] = set()

    def _accounts_for(self, path: str) -> Credentials | None:
        if path in OPEN_PATHS:
            return None
        if path == SEND_PATH and self.send_api is not None:
            return self.send_api
        return self.ui

    def _check(self, accounts: Credentials, header: str | None) -> tuple[bool, str]:
        offered = basic_credentials(header)
        if offered is None:
            return False, ""
        key = (id(accounts), hashlib.sha256(header.encode("utf-8", "surrogateescape")).digest()) if header \
            else (0, b"")
        if key in self._passed:
            return True, offered[0]
        ok = accounts.check(*offered)
        if ok:
            if len(self._passed) > 1000:
                self._passed.clear()
            self._passed.add(key)
        return ok, offered[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        accounts = self._accounts_for(scope["path"])
        if accounts is None:
            await self.app(scope, receive, send)
            return
        header = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), None)
        client = str((scope.get("client") or ("", 0))[0])
        if header:
            # After failures from this address or for this user, the next attempt waits (auth.FailureGuard).
            await self.guard.throttle(client, (basic_credentials(header) or ("", ""))[0])
        ok, user = self._check(accounts, header)
        if ok:
            if header:
                self.guard.succeeded(client, user)
            await self.app(scope, receive, send)
            return
        if header:
            self.guard.record_failure(client, "HTTP", user)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "authentication required"})
            return
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"www-authenticate", REALM.encode()), (b"content-type", b"application/json")]})
        await send({"type": "http.response.body",
                    "body": b'{"Error": "authentication required: log in with a user from the auth file"}'})
