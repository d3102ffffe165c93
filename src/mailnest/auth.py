"""Who may log in: any credentials by default (the name is recorded), or those of an auth file.

An auth file has one `user:password` per line; the password is either plain text or a bcrypt hash (`$2b$...`,
as `htpasswd -B` writes). Blank lines and lines starting with `#` are ignored. User names compare exactly.
Mechanisms that need the clear password (CRAM-MD5, APOP) work only for plain-text entries.

Wrong passwords are slowed down per client address (exponential, capped) and logged.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError

log = logging.getLogger("mailnest.auth")

_MAX_DELAY = 5.0
_FORGET_AFTER = 600.0


@dataclass(frozen=True)
class Credentials:
    """The accounts of an auth file, or `accept_all` when no file was given."""

    users: dict[str, str] = field(default_factory=dict)
    accept_all: bool = True

    @classmethod
    def load(cls, path: Path | None) -> Credentials:
        if path is None:
            return cls()
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read the auth file {path}: {exc.strerror}") from exc
        users: dict[str, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, secret = line.partition(":")
            if not sep or not user:
                raise ConfigError(f"{path}:{number}: expected user:password")
            users[user] = secret
        if not users:
            raise ConfigError(f"the auth file {path} has no user:password lines")
        return cls(users=users, accept_all=False)

    def check(self, user: str, password: str) -> bool:
        if self.accept_all:
            return True
        secret = self.users.get(user)
        if secret is None:
            return False
        if secret.startswith(("$2a$", "$2b$", "$2y$")):
            import bcrypt

            try:
                return bcrypt.checkpw(password.encode(), secret.encode())
            except ValueError:
                log.error("the bcrypt hash for %r in the auth file is malformed", user)
                return False
        return hmac.compare_digest(secret.encode(), password.encode())

    def clear_password(self, user: str) -> str | None:
        """The plain-text password (for CRAM-MD5/APOP), or None when unknown or hashed."""
        secret = self.users.get(user)
        if secret is None or secret.startswith(("$2a$", "$2b$", "$2y$")):
            return None
        return secret


class FailureGuard:
    """Counts failed logins per client address and makes each further failure wait longer."""

    def __init__(self) -> None:
        self._failures: dict[str, tuple[int, float]] = {}

    def delay_for(self, peer_host: str) -> float:
        count, _ = self._failures.get(peer_host, (0, 0.0))
        return 0.0 if count == 0 else min(_MAX_DELAY, 0.1 * 2 ** (count - 1))

    async def failed(self, peer_host: str, protocol: str, user: str) -> None:
        now = time.monotonic()
        count, last = self._failures.get(peer_host, (0, now))
        if now - last > _FORGET_AFTER:
            count = 0
        self._failures[peer_host] = (count + 1, now)
        delay = self.delay_for(peer_host)
        log.warning("%s login failed for %r from %s (%d in a row); next answer in %.1fs", protocol, user,
                    peer_host, count + 1, delay)
        if len(self._failures) > 10_000:  # bounded memory under a scan of many addresses
            self._failures = dict(list(self._failures.items())[-5_000:])
        await asyncio.sleep(delay)

    def succeeded(self, peer_host: str) -> None:
        self._failures.pop(peer_host, None)


class LoginChecker:
    """The one place IMAP and POP3 logins are decided: credentials plus slowing down repeated failures."""

    def __init__(self, credentials: Credentials, guard: FailureGuard) -> None:
        self.credentials = credentials
        self.guard = guard

    async def password(self, protocol: str, user: str, password: str, peer_host: str = "") -> bool:
        ok = self.credentials.check(user, password)
        await self._record(ok, protocol, user, peer_host)
        return ok

    async def digest(self, protocol: str, user: str, digest: str, expected_for: Callable[[str], str],
                     peer_host: str = "") -> bool:
        """Challenge-response logins (APOP, CRAM-MD5): `expected_for(password)` computes the right answer."""
        if self.credentials.accept_all:
            ok = True
        else:
            secret = self.credentials.clear_password(user)
            ok = secret is not None and hmac.compare_digest(expected_for(secret).lower(), digest.lower())
        await self._record(ok, protocol, user, peer_host)
        return ok

    async def _record(self, ok: bool, protocol: str, user: str, peer_host: str) -> None:
        key = peer_host or f"{protocol}:{user}"
        if ok:
            self.guard.succeeded(key)
        else:
            await self.guard.failed(key, protocol, user)
