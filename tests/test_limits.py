"""The shared connection-limit machinery (mailnest.limits): places counted per listener and per client address and
given back on every way a connection ends, refusals and accept errors logged once per interval with a count of
what was left out. Real sockets on loopback; the listeners' own tests (tests/smtp, tests/imap, tests/pop3) check
the protocol answers."""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import json
import logging
import poplib
import select
import smtplib
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import Listen
from mailnest.limits import (
    ConnectionLimits,
    RateLimitedLog,
    TooManyConnections,
    client_address,
    quiet_accept_errors,
)

GOODBYE = b"BYE full\r\n"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


# -- helpers for the listeners' own limit tests (tests/smtp, tests/imap, tests/pop3) ------------------------


def read_to_close(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the server says until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def _trickle(sock: socket.socket, data: bytes) -> tuple[bytes, float]:
    started = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            break
        if select.select([sock], [], [], 1.0)[0]:
            break
    try:
        answer = read_to_close(sock)
    except OSError:
        answer = b""
    return answer, time.monotonic() - started


def slow_senders(socks: list[socket.socket], data: bytes, meanwhile: Callable[[], object]) -> list[tuple[bytes, float]]:
    """Every socket sends `data` one byte per second (each in its own thread) until the server answers, while
    `meanwhile` runs; what each was told before the server closed it, and the seconds that took."""
    results: list[tuple[bytes, float]] = []
    threads = [threading.Thread(target=lambda s=s: results.append(_trickle(s, data))) for s in socks]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    try:
        meanwhile()
    finally:
        for thread in threads:
            thread.join(10)
    assert len(results) == len(socks), "a slow sender was never cut off"
    return results


# -- RateLimitedLog --------------------------------------------------------------------------------------------


def test_rate_limited_log_counts_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger("mailnest.test"), interval=0.2)
    with caplog.at_level(logging.WARNING, logger="mailnest.test"):
        for _ in range(5):
            limited.warning("refused", "refused %s", "x")
        assert limited.left_out("refused") == 4
        time.sleep(0.25)
        limited.warning("refused", "refused %s", "y")
        assert limited.left_out("refused") == 0
    assert [r.getMessage()[:38] for r in caplog.records] == ["refused x", "refused y (and 4 more like it in the l"]
    assert caplog.records[1].getMessage().endswith("more like it in the last 0s)")


def test_rate_limited_log_keeps_kinds_apart(caplog: pytest.LogCaptureFixture) -> None:
    """A flood of one kind of trouble does not hide the first line of another."""
    limited = RateLimitedLog(logging.getLogger("mailnest.test"))
    with caplog.at_level(logging.WARNING, logger="mailnest.test"):
        for _ in range(3):
            limited.warning("refused", "refused")
            limited.warning("timeout", "timed out with %d%% done", 50)
    assert [r.getMessage() for r in caplog.records] == ["refused", "timed out with 50% done"]


# -- ConnectionLimits over real sockets -------------------------------------------------------------------------


def test_client_address_is_the_host_part_of_a_peer_name() -> None:
    assert client_address(("127.0.0.2", 40000)) == "127.0.0.2"
    assert client_address(("::1", 40000, 0, 0)) == "::1"
    assert client_address("/tmp/socket") == "/tmp/socket"
    assert client_address(None) == ""


def test_caps_count_by_listener_and_by_client_and_a_slot_is_given_back_once() -> None:
    limits = ConnectionLimits("TEST", total=3, per_client=2, logger=logging.getLogger("mailnest.test"))
    first, second = limits.admit("127.0.0.2"), limits.admit("127.0.0.2")
    with pytest.raises(TooManyConnections, match=r"^too many connections from 127.0.0.2 \(at most 2\)$"):
        limits.admit("127.0.0.2")
    third = limits.admit("127.0.0.3")
    with pytest.raises(TooManyConnections, match=r"^too many connections \(at most 3\)$"):
        limits.admit("127.0.0.4")
    first.release()
    first.release()  # a connection that ends by two paths gives its place back once
    assert (limits.open, dict(limits.by_client)) == (2, {"127.0.0.2": 1, "127.0.0.3": 1})
    second.release()
    third.release()
    assert (limits.open, dict(limits.by_client)) == (0, {})


async def _listen(limits: ConnectionLimits, handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(limits.serve(GOODBYE, handler), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _until_released(limits: ConnectionLimits) -> None:
    async with asyncio.timeout(3):
        while limits.open or limits.by_client:
            await asyncio.sleep(0.01)


def test_every_way_a_connection_ends_gives_its_place_back() -> None:
    """The handler returns, raises, sees the client hang up or reset, times out, or is cancelled: each time the
    place is free again, and a refused connection is told why and never counted."""
    limits = ConnectionLimits("TEST", total=10, per_client=1, logger=logging.getLogger("mailnest.test"))
    running: list[asyncio.Task[None]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.append(task)
        writer.write(b"HELLO\r\n")
        line = await reader.readline()  # b"" when the client hung up; ConnectionResetError on a reset
        if line == b"raise\r\n":
            raise RuntimeError("a handler bug")
        if line == b"slow\r\n":
            await asyncio.wait_for(reader.readline(), 0.05)  # TimeoutError out of the handler
        if line == b"wait\r\n":
            await asyncio.sleep(30)  # cancelled below
        writer.close()

    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: None)  # the handler's planned errors are not the point
        server, port = await _listen(limits, handler)
        ended = []
        try:
            for how in ("return", "raise", "slow", "hang up", "reset", "cancel"):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                assert await reader.readline() == b"HELLO\r\n"
                assert limits.by_client == {"127.0.0.1": 1}
                refused_reader, refused_writer = await asyncio.open_connection("127.0.0.1", port)
                assert await refused_reader.read() == GOODBYE  # over the per-client cap: told, closed, not counted
                refused_writer.close()
                assert limits.open == 1
                if how == "hang up":
                    writer.close()
                elif how == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                elif how == "cancel":
                    writer.write(b"wait\r\n")
                    await asyncio.sleep(0.05)
                    running[-1].cancel()
                else:
                    writer.write(f"{how}\r\n".encode())
                await _until_released(limits)
                ended.append(how)
                writer.close()
        finally:
            server.close()
            await server.wait_closed()
        return ended

    assert asyncio.run(scenario()) == ["return", "raise", "slow", "hang up", "reset", "cancel"]


@pytest.mark.parametrize("protocol", ["smtp", "imap", "pop3"])
def test_the_listeners_give_a_place_back_whichever_way_a_session_ends(protocol: str) -> None:
    """With one connection allowed per client, each session below can only start if the one before it, ended in
    another way (a polite goodbye, a reset, a deadline, a line too long), gave its place back."""
    config = Config(imap=Listen("127.0.0.1", 0), pop3=Listen("127.0.0.1", 0), http=None, max_connections_per_client=1,
                    smtp_timeout=0.5, idle_timeout=0.5)
    with ServerThread(config) as server:
        port = getattr(server, f"{protocol}_port")
        polite = {"smtp": lambda: smtplib.SMTP("127.0.0.1", port, timeout=5).quit(),
                  "imap": lambda: imaplib.IMAP4("127.0.0.1", port, timeout=5).logout(),
                  "pop3": lambda: poplib.POP3("127.0.0.1", port, timeout=5).quit()}[protocol]
        greeting = {"smtp": b"220 ", "imap": b"* OK ", "pop3": b"+OK "}[protocol]

        def greeted() -> socket.socket:
            """A connection that got the greeting, once the previous session's place is free."""
            deadline = time.monotonic() + 3
            while True:
                sock = socket.create_connection(("127.0.0.1", port), timeout=5)
                if sock.recv(4096).startswith(greeting):
                    return sock
                sock.close()
                assert time.monotonic() < deadline, "the place of the previous session was never given back"
                time.sleep(0.02)

        polite()
        sock = greeted()  # reset by the client
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        sock = greeted()  # closed by the server's idle deadline
        sock.settimeout(5)
        while sock.recv(4096):
            pass
        sock.close()
        sock = greeted()  # an over-long line, then the client leaves without a word
        sock.sendall(b"x" * 200_000 + b"\r\n")
        sock.close()
        greeted().close()
        deadline = time.monotonic() + 3
        while True:  # the polite way again, from a real client
            try:
                polite()
                break
            except (OSError, smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto):
                assert time.monotonic() < deadline
                time.sleep(0.02)


# -- accept errors ------------------------------------------------------------------------------------------------


def test_accept_errors_are_logged_once_per_interval_and_socket(caplog: pytest.LogCaptureFixture) -> None:
    """Out of file descriptors, asyncio reports every failed accept (one per second per listener) to the loop's
    exception handler with a traceback; this says it in one rate-limited line per listening socket."""
    logger = logging.getLogger("mailnest.test")
    seen_by_previous: list[str] = []

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda loop, context: seen_by_previous.append(context["message"]))
        quiet_accept_errors(loop, logger)
        quiet_accept_errors(loop, logger)  # a second listener on the same loop changes nothing
        with socket.socket() as one, socket.socket() as other:
            one.bind(("127.0.0.1", 0))
            other.bind(("127.0.0.1", 0))
            for _ in range(50):
                for sock in (one, other):
                    loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                                 "exception": OSError(24, "Too many open files"), "socket": sock})
        loop.call_exception_handler({"message": "something else"})

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    accept = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(accept) == 2 and all("Too many open files" in r.getMessage() and not r.exc_info for r in accept)
    assert all("cannot accept connections on 127.0.0.1:" in r.getMessage() for r in accept)
    assert accept[0].getMessage() != accept[1].getMessage()  # one line for each socket
    assert seen_by_previous == ["something else"], "other errors still reach the handler installed before"


@contextlib.contextmanager
def child_process(script: str) -> Iterator[subprocess.Popen[str]]:
    """A Python child running `script`, talked to through its stdin and stdout; killed if still running."""
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def accept_error_lines(err: str) -> list[str]:
    assert "Traceback" not in err, err[-3000:]
    return [line for line in err.splitlines() if "cannot accept connections" in line]


SERVER_CHILD = """
import json, logging, resource, sys
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, (120, 120))
from mailnest import Config, ServerThread
from mailnest.config import Listen
caps = Config(max_connections=1000, max_connections_per_client=1000)
# The defaults (SMTP and HTTP) on one loop, IMAP and POP3 alone on another: each loop is covered by itself.
with ServerThread(caps) as web, ServerThread(caps.replace(smtp=None, http=None, imap=Listen("127.0.0.1", 0),
                                                          pop3=Listen("127.0.0.1", 0))) as readers:
    print(json.dumps({**web.ports(), **readers.ports()}), flush=True)
    sys.stdin.readline()
"""


def _works(protocol: str, port: int) -> None:
    """A normal client is served on `port`."""
    if protocol == "smtp":
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as client:
            assert client.sendmail("a@example.com", ["b@example.com"], b"Subject: after\r\n\r\nx\r\n") == {}
    elif protocol == "http":
        assert httpx.get(f"http://127.0.0.1:{port}/livez", timeout=2).status_code == 200
    elif protocol == "imap":
        imaplib.IMAP4("127.0.0.1", port, timeout=5).logout()
    else:
        poplib.POP3("127.0.0.1", port, timeout=5).quit()


def _served_again(protocol: str, port: int) -> None:
    deadline = time.monotonic() + 5
    while True:
        try:
            return _works(protocol, port)
        except (OSError, httpx.HTTPError, smtplib.SMTPException, imaplib.IMAP4.error, poplib.error_proto):
            assert time.monotonic() < deadline, f"{protocol} did not recover"
            time.sleep(0.1)


def test_out_of_file_descriptors_logs_one_line_not_a_traceback_per_accept() -> None:
    """A mailnest whose open-file limit is far below its connection caps: when accept() fails with EMFILE on its
    listeners (the HTTP server's too, which is not ours), the log gets a rate-limited line for each, not a
    traceback per attempt, and every listener serves again once clients leave."""
    socks: list[socket.socket] = []
    with child_process(SERVER_CHILD) as child:
        assert child.stdout is not None and child.stdin is not None
        ports: dict[str, int] = json.loads(child.stdout.readline())
        try:
            # The first listener accepts until the descriptors run out (120), the others accept none; no port
            # gets more than its listen backlog (100) holds waiting, so connecting never stalls.
            for count, port in zip((110, 20, 20, 20), ports.values(), strict=True):
                for _ in range(count):
                    socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
                time.sleep(0.2)  # the first listener's accepts use the descriptors up before the others try
            time.sleep(1.0)  # asyncio retries accepting every second
        finally:
            for sock in socks:
                sock.close()
        for protocol, port in ports.items():
            _served_again(protocol, port)
        _, err = child.communicate("\n", timeout=15)
    lines = accept_error_lines(err)
    for protocol, port in ports.items():
        here = [line for line in lines if f"on 127.0.0.1:{port}: [Errno 24] Too many open files" in line]
        assert 1 <= len(here) <= 2, (protocol, err[-3000:])
    assert len(lines) <= 2 * len(ports)


PLAIN_CHILD = """
import asyncio, logging, os, sys
from mailnest.limits import quiet_accept_errors
logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")

async def main():
    quiet_accept_errors(asyncio.get_running_loop(), logging.getLogger("child"))
    server = await asyncio.start_server(lambda reader, writer: writer.close(), "127.0.0.1", 0)
    hoard = []
    try:
        while True:  # use up every file descriptor: the next accept() fails with EMFILE
            hoard.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass
    print(server.sockets[0].getsockname()[1], flush=True)
    go_on = asyncio.Event()
    asyncio.get_running_loop().add_reader(sys.stdin.fileno(), go_on.set)  # no new file descriptor needed
    await go_on.wait()
    await asyncio.sleep(0.3)  # accept() failed: asyncio has retries pending, one per waiting connection
    server.close()
    await asyncio.sleep(1.3)  # the retries fire after the listener closed
    print("done", flush=True)

asyncio.run(main())
"""


def test_a_listener_closed_while_out_of_file_descriptors_stops_without_tracebacks() -> None:
    """Any asyncio listener on the loop: one line for the failed accepts, and nothing for the retries asyncio had
    already scheduled when the listener closed (each would log 'Invalid file descriptor: -1' with a traceback)."""
    with child_process(PLAIN_CHILD) as child:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(20)]
        try:
            out, err = child.communicate("\n", timeout=15)
        finally:
            for sock in socks:
                sock.close()
    lines = accept_error_lines(err)
    assert out == "done\n" and len(lines) == 1 and "Too many open files" in lines[0], err[-3000:]
