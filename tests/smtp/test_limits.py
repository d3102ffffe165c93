"""One client must not hurt the others: connection caps and deadlines, each answered with a 421 and a closed
connection, never a traceback, while a normal client's send and /livez stay fast."""

from __future__ import annotations

import logging
import select
import smtplib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from mailnest import Config, ServerThread

from ..test_limits import read_to_close

CAPS = Config(max_connections=40, max_connections_per_client=20)
DEADLINES = Config(smtp_timeout=2.0, command_timeout=1.0, data_timeout=1.5)


def connect(port: int, source: str = "127.0.0.1") -> tuple[socket.socket, bytes]:
    """A raw connection from `source`, and the first line the server said."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock, sock.makefile("rb").readline()


def probe(server: ServerThread) -> tuple[float, float]:
    """(seconds for a normal SMTP send to get its 250, seconds for GET /livez)."""
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=5) as client:
        client.sendmail("a@example.com", ["probe@example.com"], b"Subject: probe\r\n\r\nprobe\r\n")
    smtp = time.monotonic() - started
    # A fresh connection for each timed request (no keep-alive), from a client built beforehand (building one
    # loads certificates, which is no part of the server's answer). The best of three: a blocked loop delays all
    # three, a busy machine (CI runs two test workers on two cores) rarely does.
    with httpx.Client(base_url=server.http_url, timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as http:
        answers = []
        for _ in range(3):
            started = time.monotonic()
            assert http.get("/livez").status_code == 200
            answers.append(time.monotonic() - started)
        return smtp, min(answers)


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


@pytest.mark.parametrize("server_config", [CAPS])
def test_connections_over_the_per_client_cap_get_421(server: ServerThread, sockets: list[socket.socket],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for _ in range(20):
        sock, greeting = connect(server.smtp_port, "127.0.0.2")
        sockets.append(sock)
        assert greeting.startswith(b"220")
    for _ in range(10):
        sock, greeting = connect(server.smtp_port, "127.0.0.2")
        sockets.append(sock)
        assert greeting.startswith(b"421 4.7.0 mailnest too many connections from 127.0.0.2 (at most 20)")
        assert read_to_close(sock) == b""
    smtp, livez = probe(server)  # another address is not affected
    assert smtp < 1.0 and livez < 0.1, (smtp, livez)
    refusals = [r for r in caplog.records if "SMTP: refused a connection from 127.0.0.2" in r.getMessage()]
    assert len(refusals) == 1  # ten refusals, one line: the log cannot be flooded
    no_tracebacks(caplog)
    # A closed connection frees its place.
    for sock in sockets[:20]:
        sock.close()
    deadline = time.monotonic() + 5
    while True:
        sock, greeting = connect(server.smtp_port, "127.0.0.2")
        sockets.append(sock)
        if greeting.startswith(b"220") or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert greeting.startswith(b"220")


@pytest.mark.parametrize("server_config", [CAPS])
def test_connections_over_the_listener_cap_get_421(server: ServerThread, sockets: list[socket.socket],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    for source, count in (("127.0.0.2", 20), ("127.0.0.3", 19)):
        for _ in range(count):
            sock, greeting = connect(server.smtp_port, source)
            sockets.append(sock)
            assert greeting.startswith(b"220")
    smtp, livez = probe(server)  # the 40th connection
    assert smtp < 1.0 and livez < 0.1, (smtp, livez)
    sockets.append(connect(server.smtp_port, "127.0.0.4")[0])  # now 40 are open
    sock, greeting = connect(server.smtp_port, "127.0.0.5")
    sockets.append(sock)
    assert greeting.startswith(b"421 4.7.0 mailnest too many connections (at most 40)")
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=5)
    assert refused.value.smtp_code == 421
    no_tracebacks(caplog)


@pytest.mark.parametrize("server_config", [DEADLINES])
def test_an_idle_client_gets_421_after_smtp_timeout(server: ServerThread, sockets: list[socket.socket]) -> None:
    sock, _ = connect(server.smtp_port)
    sockets.append(sock)
    sock.sendall(b"EHLO idle.test\r\n")
    started = time.monotonic()
    said = read_to_close(sock)
    assert b"421 4.4.2 mailnest timeout: nothing received for 2s" in said
    assert 1.5 < time.monotonic() - started < 3.5


def trickle(socks: list[socket.socket], payload: bytes, until: float) -> dict[socket.socket, bytes]:
    """Send `payload` one byte per 0.1 s on every socket; what each one was told before the server closed it."""
    told = {sock: b"" for sock in socks}
    open_ = set(socks)
    position = 0
    while open_ and time.monotonic() < until:
        for sock in list(open_):
            try:
                sock.sendall(payload[position % len(payload):][:1])
            except OSError:
                open_.discard(sock)
        position += 1
        readable, _, _ = select.select(list(open_), [], [], 0.1)
        for sock in readable:
            try:
                chunk = sock.recv(4096)
            except OSError:
                chunk = b""
            told[sock] += chunk
            if not chunk:
                open_.discard(sock)
    assert not open_, f"{len(open_)} connections still open"
    return told


@pytest.mark.parametrize("server_config", [DEADLINES])
def test_a_command_line_sent_slowly_gets_421_after_command_timeout(server: ServerThread,
                                                                   sockets: list[socket.socket]) -> None:
    for _ in range(5):
        sock, _ = connect(server.smtp_port)
        sockets.append(sock)
    started = time.monotonic()
    told = trickle(sockets, b"EHLO slow.test", until=started + 4)
    elapsed = time.monotonic() - started
    assert all(said.endswith(b"421 4.4.2 mailnest timeout: a command line took more than 1s; closing\r\n")
               for said in told.values()), told
    assert elapsed < 2.0  # the command deadline, not the longer idle one


@pytest.mark.parametrize("server_config", [DEADLINES])
def test_slowloris_data_gets_421_after_data_timeout_and_nothing_is_stored(
        server: ServerThread, sockets: list[socket.socket], caplog: pytest.LogCaptureFixture) -> None:
    """20 connections sending DATA a byte at a time: the idle deadline never fires (bytes keep coming), the
    DATA deadline does; meanwhile a normal client is served at once."""
    for _ in range(20):
        sock, _ = connect(server.smtp_port)
        sockets.append(sock)
        sock.sendall(b"EHLO slow.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n")
    # Unbuffered reads up to each 354: on a busy machine the 421 may already follow it, and a buffered reader
    # would keep it from `trickle` (that socket then looked told nothing).
    after_354: dict[socket.socket, bytes] = {}
    for sock in sockets:
        received = b""
        while not any(line.startswith(b"354") for line in received.split(b"\r\n")[:-1]):
            chunk = sock.recv(4096)
            assert chunk, received
            received += chunk
        after_354[sock] = received.partition(b"354 ")[2].partition(b"\r\n")[2]
    started = time.monotonic()
    smtp, livez = probe(server)
    assert smtp < 1.0 and livez < 0.1, (smtp, livez)
    told = trickle(sockets, b"Subject: slow\r\n\r\nbody ", until=started + 5)
    told = {sock: after_354[sock] + said for sock, said in told.items()}
    elapsed = time.monotonic() - started
    data_deadline = b"421 4.4.2 mailnest timeout: DATA took more than 1.5s; closing, nothing stored"
    assert all(data_deadline in said for said in told.values()), [
        said for said in told.values() if data_deadline not in said]
    assert 1.4 < elapsed < 3.0
    assert server.call(server.store.count()) == 1  # the probe only
    no_tracebacks(caplog)



@pytest.mark.parametrize("server_config", [DEADLINES])
def test_what_follows_a_data_deadline_is_not_read_as_commands(server: ServerThread, sockets: list[socket.socket],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """After the DATA deadline's 421 the lines the client had already sent (the start of its message) are not
    taken for commands: aiosmtpd's loop used to read them before the close took effect ("unrecognised:
    SUBJECT:", a 500 for each)."""
    caplog.set_level(logging.INFO)
    sock, _ = connect(server.smtp_port)
    sockets.append(sock)
    sock.sendall(b"EHLO slow.test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n"
                 b"Subject: half a message\r\nX-Second: line\r\nQUIT\r\n\r\nno end yet\r\n")
    said = read_to_close(sock)
    assert b"421 4.4.2 mailnest timeout: DATA took more than 1.5s" in said, said
    assert said.endswith(b"nothing stored\r\n"), said  # nothing answered after the 421
    assert b"500" not in said and b"221" not in said, said
    read_as_commands = [r.getMessage() for r in caplog.records if "unrecognised" in r.getMessage()
                        or ">> b'Subject" in r.getMessage()]
    assert read_as_commands == []
    assert server.call(server.store.count()) == 0
    no_tracebacks(caplog)
