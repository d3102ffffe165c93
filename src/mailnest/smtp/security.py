"""SMTP authentication and TLS settings: the authenticator aiosmtpd calls, CRAM-MD5, throttled AUTH, and the
listener's options.

By default any credentials are accepted and the user name is recorded with the message; with an auth file
they are checked. Plain-text mechanisms are refused before TLS whenever TLS is configured, unless allowed.
Each AUTH attempt waits its turn (`FailureGuard.throttle`) before its answer is sent, so failures slow down the
next attempt from the same address or for the same user, on this connection or any other.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import ssl
import time
from dataclasses import dataclass
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as SMTPEnvelope

from ..auth import Credentials, FailureGuard
from ..config import Config


@dataclass(frozen=True)
class SMTPSecurity:
    credentials: Credentials
    guard: FailureGuard
    tls_context: ssl.SSLContext | None = None


class ThrottledAuth(SMTP):
    """aiosmtpd's AUTH, with each attempt's answer held until its turn and its outcome counted."""

    security: SMTPSecurity | None = None
    failed_login: str | None = None  # set by the authenticator when credentials are wrong

    async def smtp_AUTH(self, arg: str) -> None:
        self.failed_login = None
        await super().smtp_AUTH(arg)
        if self.security is None or self.session is None:
            return
        if self.failed_login is not None:
            self.security.guard.record_failure(peer_host(self.session), "SMTP", self.failed_login)
        elif self.session.authenticated:
            self.security.guard.succeeded(peer_host(self.session), _login_of(self.session.auth_data))

    async def _after_check(self, result: AuthResult) -> AuthResult:
        """Wait this attempt's turn once the user name is known and before the answer goes out."""
        if self.security is not None and self.session is not None and (result.success or not result.handled):
            user = self.failed_login if self.failed_login is not None else _login_of(result.auth_data)
            await self.security.guard.throttle(peer_host(self.session), user)
        return result

    async def auth_PLAIN(self, _: object, args: list[str]) -> AuthResult:
        return await self._after_check(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: object, args: list[str]) -> AuthResult:
        return await self._after_check(await super().auth_LOGIN(_, args))

    async def auth_CRAM__MD5(self, _: object, args: list[str]) -> AuthResult:
        assert self.security is not None
        return await self._after_check(await cram_md5(self, self.security.credentials, self.hostname))


def _login_of(auth_data: object) -> str:
    login = getattr(auth_data, "login", None)
    return login.decode("utf-8", "replace") if isinstance(login, bytes) else str(login or "")


def peer_host(session: Session) -> str:
    peer = session.peer
    return str(peer[0]) if isinstance(peer, tuple) and peer else str(peer or "")


def make_authenticator(credentials: Credentials) -> Any:
    def authenticator(server: SMTP, session: Session, envelope: SMTPEnvelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if credentials.check(user, password):
            return AuthResult(success=True, auth_data=auth_data)
        server.failed_login = user  # type: ignore[attr-defined]
        return AuthResult(success=False, handled=False)

    return authenticator


async def cram_md5(server: SMTP, credentials: Credentials, hostname: str) -> AuthResult:
    """RFC 2195: the client proves it knows the password by an HMAC of a challenge we choose."""
    challenge = f"<{int.from_bytes(os.urandom(8), 'big')}.{int(time.time())}@{hostname}>".encode()
    answer = await server.challenge_auth(challenge)
    if not isinstance(answer, bytes):
        return AuthResult(success=False, handled=True)  # aborted or bad base64: already answered
    user_bytes, _, digest = answer.rpartition(b" ")
    user = user_bytes.decode("utf-8", "replace")
    if not user or not digest:
        await server.push("501 5.5.2 Expected 'user digest'")
        return AuthResult(success=False, handled=True)
    if credentials.accept_all:
        ok = True
    else:
        password = credentials.clear_password(user)
        expected = hmac.new(password.encode(), challenge, hashlib.md5).hexdigest().encode() if password else b""
        ok = bool(password) and hmac.compare_digest(expected, digest.lower())
    if ok:
        return AuthResult(success=True, auth_data=LoginPassword(user_bytes, b""))
    server.failed_login = user  # type: ignore[attr-defined]
    return AuthResult(success=False, handled=False)


def smtp_options(config: Config, security: SMTPSecurity, *, implicit_tls: bool) -> dict[str, Any]:
    """aiosmtpd SMTP keyword arguments for one listener (plain with STARTTLS, or implicit TLS)."""
    starttls = security.tls_context if not implicit_tls else None
    tls_configured = security.tls_context is not None
    return {
        "tls_context": starttls,
        "require_starttls": bool(config.require_tls and starttls is not None),
        "auth_required": config.require_auth,
        # On an implicit-TLS listener the whole connection is already encrypted.
        "auth_require_tls": tls_configured and not implicit_tls and not config.allow_insecure_auth,
        "authenticator": make_authenticator(security.credentials),
    }
