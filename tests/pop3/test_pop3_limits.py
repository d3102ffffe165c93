"""POP3: RETR marks mail read (as Dovecot does), connection caps, the command deadline, and login throttling by
client address. Attackers connect from 127.0.0.2; a normal poplib client from 127.0.0.1 is timed meanwhile."""

from __future__ import annotations

import logging
import poplib
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mailnest.config import Listen

from ..test_limits import read_to_close, slow_senders
from .helpers import Mailnest

ATTACKER = "127.0.0.2"
MESSAGE = b"From: a@example.com\r\nTo: bob@example.com\r\nSubject: %d\r\n\r\nBody %d.\r\n"


@pytest.fixture
def with_api(make_mailnest: Callable[..., Mailnest]) -> Iterator[tuple[Mailnest, httpx.Client]]:
    mailnest = make_mailnest(http=Listen("127.0.0.1", 0))
    with httpx.Client(base_url=mailnest.thread.http_url, timeout=10) as api:
        yield mailnest, api


def _read_flags(api: httpx.Client) -> dict[str, bool]:
    """Subject -> read, as the HTTP API shows it."""
    return {m["Subject"]: m["Read"] for m in api.get("/api/v1/messages").json()["messages"]}


def _deliver(mailnest: Mailnest, count: int) -> None:
    for n in range(1, count + 1):
        mailnest.send(MESSAGE % (n, n), ["bob@example.com"])


def test_retr_marks_the_message_read_at_quit_and_top_does_not(with_api: tuple[Mailnest, httpx.Client]) -> None:
    mailnest, api = with_api
    _deliver(mailnest, 3)
    client = mailnest.pop("bob@example.com")
    client.retr(1)
    client.top(2, 0)
    assert _read_flags(api) == {"1": False, "2": False, "3": False}  # applied when the session ends, as Dovecot
    client.quit()
    assert _read_flags(api) == {"1": True, "2": False, "3": False}
    page = mailnest.thread.call(mailnest.thread.store.list(mailbox="bob@example.com"))
    assert {s.subject: s.read for s in page.messages} == {"1": True, "2": False, "3": False}


def test_rset_forgets_retrieved_messages_and_deleted_ones_are_not_marked(
        with_api: tuple[Mailnest, httpx.Client]) -> None:
    mailnest, api = with_api
    _deliver(mailnest, 3)
    client = mailnest.pop("bob@example.com")
    client.retr(1)
    client.rset()
    client.retr(2)
    client.retr(3)
    client.dele(3)
    client.quit()
    assert _read_flags(api) == {"1": False, "2": True}


def test_a_dropped_connection_still_marks_what_was_retrieved(with_api: tuple[Mailnest, httpx.Client]) -> None:
    mailnest, api = with_api
    _deliver(mailnest, 2)
    client = mailnest.pop("bob@example.com")
    client.retr(2)
    client.close()  # no QUIT: nothing is deleted, but the message was read
    deadline = time.monotonic() + 3
    while not _read_flags(api)["2"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _read_flags(api) == {"1": False, "2": True}


def _attacker(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(ATTACKER, 0))


def _normal_client_reads_mail(mailnest: Mailnest) -> float:
    started = time.monotonic()
    client = mailnest.pop("bob@example.com")
    assert b"Body 1." in client.retr(1)[1]
    client.quit()
    return time.monotonic() - started


def test_connections_over_the_caps_are_refused(make_mailnest: Callable[..., Mailnest],
                                               caplog: pytest.LogCaptureFixture) -> None:
    mailnest = make_mailnest(max_connections=6, max_connections_per_client=3)
    _deliver(mailnest, 1)
    held = [_attacker(mailnest.pop3_port) for _ in range(3)]
    try:
        for sock in held:
            assert sock.recv(4096).startswith(b"+OK ")
        with caplog.at_level(logging.WARNING, logger="mailnest.pop3.server"):
            for _ in range(10):
                with _attacker(mailnest.pop3_port) as extra:
                    assert read_to_close(extra) == b"-ERR [SYS/TEMP] too many connections\r\n"
        refusals = [r for r in caplog.records if "refused a connection" in r.getMessage()]
        assert len(refusals) == 1 and not refusals[0].exc_info
        assert _normal_client_reads_mail(mailnest) < 1.0
        # the listener's own cap: three more from 127.0.0.1 fill it, a seventh is refused whoever it is
        normal = [poplib.POP3("127.0.0.1", mailnest.pop3_port, timeout=5) for _ in range(3)]
        with socket.create_connection(("127.0.0.1", mailnest.pop3_port), timeout=5) as seventh:
            assert read_to_close(seventh) == b"-ERR [SYS/TEMP] too many connections\r\n"
        for client in normal:
            client.quit()
    finally:
        for sock in held:
            sock.close()


def test_a_slow_sender_is_cut_after_the_command_timeout(make_mailnest: Callable[..., Mailnest]) -> None:
    mailnest = make_mailnest(command_timeout=1.5)  # between two of the sender's bytes: no race with them
    _deliver(mailnest, 1)
    slow = [_attacker(mailnest.pop3_port) for _ in range(5)]
    for sock in slow:
        sock.recv(4096)
    timed: list[float] = []
    try:
        results = slow_senders(slow, b"USER somebody@example.com\r\n",
                               lambda: timed.append(_normal_client_reads_mail(mailnest)))
    finally:
        for sock in slow:
            sock.close()
    assert timed[0] < 1.0  # while the slow senders hold their connections
    for answer, elapsed in results:
        assert answer == b"-ERR command not completed in time (limit 1.5s)\r\n"
        assert 1.4 < elapsed < 4


def test_waiting_between_commands_is_not_cut_by_the_command_timeout(make_mailnest: Callable[..., Mailnest]) -> None:
    mailnest = make_mailnest(command_timeout=0.3)
    with socket.create_connection(("127.0.0.1", mailnest.pop3_port), timeout=5) as sock:
        assert sock.recv(4096).startswith(b"+OK")
        time.sleep(0.7)
        sock.sendall(b"CAPA\r\n")
        assert sock.recv(4096).startswith(b"+OK")


def test_wrong_logins_on_fresh_connections_are_slowed_down_by_client_address(
        make_mailnest: Callable[..., Mailnest], tmp_path: Path) -> None:
    """A new connection and a new user name for every guess still gets slower: the wait is per client address
    (and per user) across connections. A client at another address is not held up."""
    accounts = tmp_path / "accounts"
    accounts.write_text("owner:right\n")
    mailnest = make_mailnest(auth_file=accounts)

    def attempt(user: str, source: str) -> tuple[bytes, float]:
        with socket.create_connection(("127.0.0.1", mailnest.pop3_port), timeout=10,
                                      source_address=(source, 0)) as sock:
            stream = sock.makefile("rb")
            stream.readline()
            sock.sendall(f"USER {user}\r\n".encode())
            stream.readline()
            started = time.monotonic()
            sock.sendall(b"PASS wrong\r\n")
            answer = stream.readline()
            return answer, time.monotonic() - started

    waits = []
    for n in range(8):
        answer, elapsed = attempt(f"guess{n}", ATTACKER)
        assert answer == b"-ERR [AUTH] invalid user name or password\r\n"
        waits.append(elapsed)
        if elapsed >= 0.5:
            break
    assert waits[-1] >= 0.5, f"wrong logins from one address were never slowed down: {waits}"
    assert len(waits) <= 6, waits
    other, other_elapsed = attempt("someone", "127.0.0.1")
    assert other.startswith(b"-ERR [AUTH]") and other_elapsed < 0.5
    assert mailnest.pop("owner", "right").stat() == (0, 0)  # the owner still gets in
