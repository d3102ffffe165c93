"""Who may log in: any credentials by default (the name is recorded), or those of an auth file.

An auth file has one `user:password` per line; the password is either plain text or a bcrypt hash (`$2b$...`,
as `htpasswd -B` writes). Blank lines and lines starting with `#` are ignored. User names compare exactly.
Mechanisms that need the clear password (CRAM-MD5, APOP) work only for plain-text entries.

Wrong passwords are logged and slow down the next attempts from the same client address and for the same user
name, on every protocol and across connections (see `FailureGuard`).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import ConfigError

log = logging.getLogger("mailnest.auth")

_FREE_FAILURES = 1  # a typo costs nothing
_FIRST_DELAY = 0.25
_MAX_DELAY = 5.0
_FORGET_AFTER = 600.0
_MAX_KEYS = 10_000


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
    """Slows down password guessing: after failed logins, the NEXT attempt waits, across connections.

    Failures are counted per client address and, separately, per user name (a guesser who spreads attempts over
    many addresses is still slowed for the account it targets). An attempt waits for the later of the two;
    concurrent attempts queue behind each other, so opening many connections at once does not help. The first
    failure is free (a typo); then the wait doubles from 0.25 s up to 5 s. A user's own address, once it has logged
    in successfully, is exempt from that user's per-name wait, so a guesser elsewhere cannot lock the owner out.
    Counts are forgotten 10 minutes after the last failure, and at most 10,000 addresses, names and known
    (user, address) pairs are kept (the oldest are dropped first), so memory stays bounded under a scan.
    """

    def __init__(self) -> None:
        self._by_address: OrderedDict[str, _Failures] = OrderedDict()
        self._by_user: OrderedDict[str, _Failures] = OrderedDict()
        self._known: OrderedDict[tuple[str, str], None] = OrderedDict()  # (user, address) that logged in

    def _records(self, peer_host: str, user: str, *, create: bool) -> list[_Failures]:
        now = time.monotonic()
        found = []
        tables = [(self._by_address, peer_host)]
        if user and (user, peer_host) not in self._known:
            tables.append((self._by_user, user))
        for table, key in tables:
            if not key:
                continue
            record = table.get(key)
            if record is not None and now - record.last_failure > _FORGET_AFTER and record.not_before <= now:
                del table[key]
                record = None
            if record is None and create:
                record = table[key] = _Failures()
                _bound(table)
            if record is not None:
                table.move_to_end(key)
                found.append(record)
        return found

    def delay_for(self, peer_host: str, user: str = "") -> float:
        """How long an attempt starting now would wait."""
        now = time.monotonic()
        return max([0.0, *(r.not_before - now for r in self._records(peer_host, user, create=False))])

    async def throttle(self, peer_host: str, user: str = "") -> float:
        """Wait for this attempt's turn (before its answer is given); returns the seconds waited."""
        records = self._records(peer_host, user, create=False)
        if not records:
            return 0.0
        now = time.monotonic()
        start = max(now, *(r.not_before for r in records))
        for record in records:
            # The next attempt queues behind this one: concurrent guesses are spread out, not answered at once.
            record.not_before = start + _delay_after(record.failures)
        wait = start - now
        if wait > 0:
            await asyncio.sleep(wait)
        return wait

    def record_failure(self, peer_host: str, protocol: str, user: str) -> None:
        """Count a failed login; the next attempt from this address (or for this user) will wait."""
        now = time.monotonic()
        waits = []
        for record in self._records(peer_host, user, create=True):
            record.failures += 1
            record.last_failure = now
            record.not_before = max(record.not_before, now + _delay_after(record.failures))
            waits.append(record.not_before - now)
        by_address = self._by_address.get(peer_host)
        log.warning("%s login failed for %r from %s (%d in a row from there); the next attempt waits %.2fs",
                    protocol, user, peer_host or "an unknown address", by_address.failures if by_address else 0,
                    max(waits, default=0.0))

    async def failed(self, peer_host: str, protocol: str, user: str) -> None:
        """Count a failed login and delay this answer too, for callers that do not `throttle` up front."""
        self.record_failure(peer_host, protocol, user)
        await self.throttle(peer_host, user)

    def succeeded(self, peer_host: str, user: str = "") -> None:
        self._by_address.pop(peer_host, None)
        if user and peer_host:
            self._known[(user, peer_host)] = None
            self._known.move_to_end((user, peer_host))
            _bound(self._known)


@dataclass
class _Failures:
    failures: int = 0
    last_failure: float = 0.0
    not_before: float = 0.0  # monotonic time before which the next attempt is not answered


def _delay_after(failures: int) -> float:
    return 0.0 if failures <= _FREE_FAILURES else min(_MAX_DELAY, _FIRST_DELAY * 2 ** (failures - _FREE_FAILURES - 1))


def _bound(table: OrderedDict[Any, Any]) -> None:
    while len(table) > _MAX_KEYS:
        table.popitem(last=False)


class LoginChecker:
    """The one place IMAP and POP3 logins are decided: credentials, and slowing down repeated failures.

    Each attempt waits its turn (`FailureGuard.throttle`) before the answer, so a guesser on fresh connections is
    slowed as much as one on a single connection."""

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
        await self.guard.throttle(peer_host, user)
        if ok:
            self.guard.succeeded(peer_host, user)
        else:
            self.guard.record_failure(peer_host, protocol, user)
