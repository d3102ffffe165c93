"""One IMAP client must not hurt the others: connection caps per listener and per client address, the deadline
for a command once started (slowloris), IDLE's one deadline, and login throttling by client address.

Attackers connect from 127.0.0.2, the normal client from 127.0.0.1; every attack is bounded and on loopback, and
a normal client's login and FETCH are timed while it runs."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailnest.auth import Credentials, FailureGuard, LoginChecker
from mailnest.config import Config, Listen
from mailnest.events import Hub
from mailnest.imap.server import checking_authenticator, start_imap
from mailnest.runtime import ServerThread
from mailnest.store.sqlite import SQLiteStore

from ..test_limits import read_to_close, slow_senders
from .helpers import deliver, login
from .wire import raw

ATTACKER = "127.0.0.2"


class Attacker:
    """Raw sockets from the attacker's address; all closed at the end of the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sockets: list[socket.socket] = []

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5, source_address=(ATTACKER, 0))
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()


@pytest.fixture
def attacker() -> Iterator[Callable[[int], Attacker]]:
    made: list[Attacker] = []

    def make(port: int) -> Attacker:
        made.append(Attacker(port))
        return made[-1]

    yield make
    for one in made:
        one.close()


def normal_client_reads_mail(server: ServerThread) -> float:
    """Seconds a normal client from 127.0.0.1 takes to log in, select and fetch a message."""
    started = time.monotonic()
    client = login(server)
    try:
        raw(client, "EXAMINE INBOX")
        untagged, done = raw(client, "FETCH 1 (BODY.PEEK[])")
        assert b" OK " in done and b"Hello there." in untagged[0]
    finally:
        client.logout()
    return time.monotonic() - started


def test_connections_over_the_per_client_cap_are_refused(make_server: Callable[..., ServerThread],
                                                         attacker: Callable[[int], Attacker],
                                                         caplog: pytest.LogCaptureFixture) -> None:
    server = make_server(max_connections_per_client=3)
    deliver(server)
    attack = attacker(server.imap_port)
    held = [attack.connect() for _ in range(3)]
    for sock in held:
        assert sock.recv(4096).startswith(b"* OK ")
    with caplog.at_level(logging.WARNING, logger="mailnest.imap.server"):
        for _ in range(20):
            assert read_to_close(attack.connect()) == b"* BYE Too many connections\r\n"
    refusals = [r for r in caplog.records if "refused a connection" in r.getMessage()]
    assert len(refusals) == 1, "refusals are logged once per interval, not once per connection"
    assert "--max-connections-per-client" in refusals[0].getMessage() and not refusals[0].exc_info
    assert normal_client_reads_mail(server) < 1.0
    held[0].close()  # a closed connection frees its place
    deadline = time.monotonic() + 2
    while True:
        greeting = attack.connect().recv(4096)
        if greeting.startswith(b"* OK ") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert greeting.startswith(b"* OK ")


def test_connections_over_the_listener_cap_are_refused_for_everyone(make_server: Callable[..., ServerThread],
                                                                    attacker: Callable[[int], Attacker]) -> None:
    server = make_server(max_connections=4, max_connections_per_client=50)
    attack = attacker(server.imap_port)
    held = [attack.connect() for _ in range(4)]
    for sock in held:
        assert sock.recv(4096).startswith(b"* OK ")
    with socket.create_connection(("127.0.0.1", server.imap_port), timeout=5) as normal:
        assert read_to_close(normal) == b"* BYE Too many connections\r\n"
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 2
    while True:  # the server notices the closed connections within moments
        try:
            deliver(server)
            assert normal_client_reads_mail(server) < 1.0
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_a_slow_sender_is_cut_after_the_command_timeout(make_server: Callable[..., ServerThread],
                                                        attacker: Callable[[int], Attacker]) -> None:
    server = make_server(command_timeout=1.5)  # between two of the sender's bytes: no race with them
    deliver(server)
    attack = attacker(server.imap_port)
    slow = [attack.connect() for _ in range(5)]
    for sock in slow:
        sock.recv(4096)
    timed: list[float] = []
    results = slow_senders(slow, b"a1 LOGIN user password\r\n", lambda: timed.append(normal_client_reads_mail(server)))
    assert timed[0] < 1.0  # while the slow senders hold their connections
    for answer, elapsed in results:
        assert answer == b"* BYE Command not completed in time (limit 1.5s)\r\n"
        assert 1.4 < elapsed < 4


def test_an_idle_connection_is_not_cut_by_the_command_timeout(make_server: Callable[..., ServerThread]) -> None:
    """Waiting between commands is the idle timeout's business; only a started command has to hurry."""
    server = make_server(command_timeout=0.3)
    with socket.create_connection(("127.0.0.1", server.imap_port), timeout=5) as sock:
        assert sock.recv(4096).startswith(b"* OK ")
        time.sleep(0.7)
        sock.sendall(b"a1 NOOP\r\n")
        assert sock.recv(4096) == b"a1 OK NOOP completed\r\n"


def test_idle_times_out_with_no_after_an_event(make_server: Callable[..., ServerThread]) -> None:
    """One deadline for IDLE, counted from its start: the events sent meanwhile do not start a second timer."""
    server = make_server(idle_timeout=1.5)
    client = login(server)
    raw(client, "SELECT INBOX")
    started = time.monotonic()
    client.send(b"i1 IDLE\r\n")
    assert client.readline().startswith(b"+ ")
    time.sleep(0.3)
    deliver(server)
    assert client.readline() == b"* 1 EXISTS\r\n"
    assert client.readline() == b"* 1 RECENT\r\n"
    assert client.readline() == b"i1 NO Idle timed out\r\n"
    assert 1.3 < time.monotonic() - started < 3
    client.send(b"i2 NOOP\r\n")  # the session goes on
    assert client.readline() == b"i2 OK NOOP completed\r\n"


def test_wrong_logins_on_fresh_connections_are_slowed_down_by_client_address(tmp_path: Path) -> None:
    """Guessing with a new connection and a new user name each time still gets slower, per client address; a
    client at another address is not held up. Wired as the runtime wires it: `checking_authenticator`."""

    async def attempt(port: int, user: str, source: str, plain: bool = False) -> tuple[bytes, float]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            await reader.readline()
            started = time.monotonic()
            if plain:  # AUTHENTICATE PLAIN goes the same way as LOGIN
                response = base64.b64encode(f"\0{user}\0wrong".encode()).decode()
                writer.write(f"a1 AUTHENTICATE PLAIN {response}\r\n".encode())
            else:
                writer.write(f"a1 LOGIN {user} wrong\r\n".encode())
            answer = await asyncio.wait_for(reader.readline(), 10)
            return answer, time.monotonic() - started
        finally:
            writer.close()

    async def scenario() -> tuple[list[float], bytes, float]:
        hub = Hub()
        store = SQLiteStore(tmp_path / "mail.db", hub)
        await store.start()
        listen = Listen("127.0.0.1", 0)
        checker = LoginChecker(Credentials(users={"owner": "right"}, accept_all=False), FailureGuard())
        server = await start_imap(Config(imap=listen), store, hub, listen, authenticate=checking_authenticator(checker))
        port = server.sockets[0].getsockname()[1]
        try:
            waits = []
            for n in range(8):
                answer, elapsed = await attempt(port, f"guess{n}", ATTACKER, plain=n % 2 == 1)
                assert answer == b"a1 NO [AUTHENTICATIONFAILED] Authentication failed\r\n"
                waits.append(elapsed)
                if elapsed >= 0.5:
                    break
            other, other_elapsed = await attempt(port, "someone", "127.0.0.1")
            return waits, other, other_elapsed
        finally:
            server.close()
            await server.wait_closed()
            await store.close()

    waits, other, other_elapsed = asyncio.run(scenario())
    assert waits[-1] >= 0.5, f"wrong logins from one address were never slowed down: {waits}"
    assert len(waits) <= 6, waits
    assert other.startswith(b"a1 NO ") and other_elapsed < 0.5

