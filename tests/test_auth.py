"""Login throttling: a failed login slows the NEXT attempt from the same address and for the same user name,
across connections (and protocols, through the one FailureGuard), with bounded memory."""

from __future__ import annotations

import asyncio
import itertools
import smtplib
import time
from pathlib import Path

import pytest

from mailnest import Config, ServerThread
from mailnest.auth import Credentials, FailureGuard, LoginChecker


@pytest.fixture
def accounts(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    path.write_text("alice:wonderland\nbob:builder\n")
    return path


def login(port: int, user: str, password: str, source: str) -> tuple[bool, float]:
    """One login on a fresh connection from `source`: (accepted, seconds from AUTH to its answer)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=20, source_address=(source, 0)) as client:
        client.ehlo()
        client.user, client.password = user, password
        started = time.monotonic()
        try:
            # One mechanism: smtplib's login() tries up to three, and each wrong try counts as a failure.
            client.auth("PLAIN", client.auth_plain)
        except smtplib.SMTPAuthenticationError:
            return False, time.monotonic() - started
        return True, time.monotonic() - started


def test_wrong_guesses_on_fresh_connections_are_slowed(accounts: Path) -> None:
    with ServerThread(Config(auth_file=accounts)) as server:
        port = server.smtp_port
        assert login(port, "alice", "wonderland", "127.0.0.4")[0]  # alice's own machine, before the attack
        waits = []
        for guess in range(5):
            ok, waited = login(port, "alice", f"guess{guess}", "127.0.0.2")
            assert not ok
            waits.append(waited)
        assert waits[0] < 0.2 and waits[1] < 0.2  # the first failure (a typo) costs nothing
        assert waits[4] >= 0.9, waits  # the delay doubles: 0.25, 0.5, 1 s ... up to 5 s (less the reconnect)
        assert sum(waits) >= 1.6
        # Separately per user: the same name from a new address waits too...
        ok, waited = login(port, "alice", "guess5", "127.0.0.3")
        assert not ok and waited >= 1.5, waited
        # ...but not a right login for another user elsewhere, nor alice from where she logged in before.
        ok, waited = login(port, "bob", "builder", "127.0.0.1")
        assert ok and waited < 0.2, waited
        ok, waited = login(port, "alice", "wonderland", "127.0.0.4")
        assert ok and waited < 0.2, waited


def test_concurrent_guesses_queue_behind_each_other() -> None:
    async def scenario() -> list[float]:
        guard = FailureGuard()
        for _ in range(2):
            guard.record_failure("198.51.100.7", "SMTP", "alice")
        started = time.monotonic()

        async def attempt() -> float:
            await guard.throttle("198.51.100.7", "mallory")
            return time.monotonic() - started

        return sorted(await asyncio.gather(*(attempt() for _ in range(4))))

    answered = asyncio.run(scenario())
    # After 2 failures each attempt waits 0.25 s more than the one before it: no burst is answered at once.
    assert answered[0] >= 0.2 and answered[3] >= 0.95, answered
    assert all(b - a >= 0.2 for a, b in itertools.pairwise(answered)), answered


def test_imap_and_pop3_logins_share_the_throttle(accounts: Path) -> None:
    """Failures over IMAP and POP3 add up, and it is the NEXT attempt from that address that waits (even a
    right one: the answer must not tell a guesser early that it guessed right); another address does not."""
    async def scenario() -> tuple[float, float]:
        checker = LoginChecker(Credentials.load(accounts), FailureGuard())
        for protocol in ("IMAP", "POP3", "IMAP", "POP3"):
            assert not await checker.password(protocol, "alice", "nope", peer_host="192.0.2.9")
        started = time.monotonic()
        assert await checker.password("POP3", "bob", "builder", peer_host="192.0.2.9")
        slowed = time.monotonic() - started
        started = time.monotonic()
        assert await checker.password("IMAP", "bob", "builder", peer_host="192.0.2.10")
        return slowed, time.monotonic() - started

    slowed, other = asyncio.run(scenario())
    assert slowed >= 0.9 and other < 0.5, (slowed, other)  # another address is not slowed (bound: a busy CI)


def test_the_guard_forgets_the_oldest_addresses_first() -> None:
    guard = FailureGuard()
    for _ in range(3):
        guard.record_failure("192.0.2.1", "SMTP", "first")
    assert guard.delay_for("192.0.2.1") > 0.4
    for n in range(12_000):
        guard.record_failure(f"10.0.{n >> 8}.{n & 255}", "SMTP", f"user{n}")
    for _ in range(3):
        guard.record_failure("192.0.2.2", "SMTP", "last")
    assert len(guard._by_address) <= 10_000 and len(guard._by_user) <= 10_000
    assert guard.delay_for("192.0.2.1") == 0.0  # the oldest, forgotten
    assert guard.delay_for("192.0.2.2") > 0.4
    assert guard.delay_for("203.0.113.1", "last") > 0.4  # by user name, from anywhere
