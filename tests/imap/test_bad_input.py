"""Hostile and broken clients on a raw socket: every mistake gets a BAD or NO with a reason, nothing crashes,
nothing hangs; idle and half-open connections are dropped after Config.idle_timeout."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from mailnest.runtime import ServerThread

from .helpers import deliver


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""
        assert self.line().startswith(b"* OK")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def until_tag(self, tag: bytes) -> list[bytes]:
        lines = []
        while True:
            line = self.line()
            lines.append(line)
            if line.startswith(tag + b" "):
                return lines

    def closed(self) -> bool:
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buffer += chunk
        except (ConnectionError, TimeoutError):
            return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def short(make_server: Callable[..., ServerThread]) -> ServerThread:
    return make_server(idle_timeout=1.0, command_timeout=1.0)


@pytest.fixture
def conn(short: ServerThread) -> Iterator[Raw]:
    raw = Raw(short.imap_port)
    yield raw
    raw.close()


def _still_serves(server: ServerThread) -> None:
    other = Raw(server.imap_port)
    other.send(b"z NOOP\r\n")
    assert other.line() == b"z OK NOOP completed"
    other.close()


@pytest.mark.parametrize(("command", "answer"), [
    (b"a1 FROBNICATE\r\n", b"a1 BAD Unknown command FROBNICATE"),
    (b"a1 UID FROB 1\r\n", b"a1 BAD Unknown UID command FROB"),
    (b"a1\r\n", b"a1 BAD Missing command"),
    (b"+ NOOP\r\n", b"* BAD Invalid tag"),
    (b"a{b NOOP\r\n", b"* BAD Invalid tag"),
    (b"\r\n", b"* BAD Invalid tag"),
    (b"a1 LOGIN \"unterminated\r\n", b"a1 BAD Line break inside a quoted string"),
    (b"a1 LOGIN a\r\n", b"a1 BAD LOGIN: missing password"),
    (b"a1 LOGIN a b c\r\n", b"a1 BAD LOGIN: unexpected extra arguments"),
    (b"a1 NOOP extra\r\n", b"a1 BAD NOOP: unexpected extra arguments"),
    (b"a1 SELECT INBOX\r\n", b"a1 BAD SELECT is not allowed in the not authenticated state"),
    (b"a1 LOGIN a (b\r\n", b"a1 BAD Missing ')'"),
    (b"a1 LOGIN a " + b"(" * 200 + b"\r\n", b"a1 BAD Lists nested too deeply"),
    (b"a1 LOGIN \x00\x01 b\r\n", b"a1 BAD Invalid character in atom"),
])
def test_bad_commands_get_bad(conn: Raw, short: ServerThread, command: bytes, answer: bytes) -> None:
    conn.send(command)
    assert conn.line() == answer
    conn.send(b"a2 NOOP\r\n")
    assert conn.line() == b"a2 OK NOOP completed"


@pytest.mark.parametrize("sequence", [b"1:x", b"0", b"1,,2", b"*:", b"4294967296", b"-1", b"1:2:3"])
def test_malformed_sequence_sets(conn: Raw, short: ServerThread, sequence: bytes) -> None:
    deliver(short)
    conn.send(b"a1 LOGIN * x\r\na2 SELECT INBOX\r\n")
    conn.until_tag(b"a2")
    conn.send(b"a3 FETCH " + sequence + b" FLAGS\r\n")
    line = conn.line()
    assert line.startswith(b"a3 BAD Invalid sequence set")


def test_sequence_number_out_of_range(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 LOGIN * x\r\na2 SELECT INBOX\r\n")
    conn.until_tag(b"a2")
    conn.send(b"a3 FETCH 1 FLAGS\r\na4 UID FETCH 1 FLAGS\r\n")
    assert conn.line().startswith(b"a3 BAD Invalid messageset")
    assert conn.line() == b"a4 OK Fetch completed"


def test_literal_that_lies_about_its_length(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 LOGIN {10}\r\n")
    assert conn.line().startswith(b"+ ")
    conn.send(b"ab\r\n")  # 4 of the 10 bytes, then the client moves on
    conn.send(b"a2 NOOP\r\n")  # the rest of the literal swallows part of this line
    assert conn.line().startswith(b"a1 BAD")
    conn.send(b"a3 NOOP\r\n")
    assert conn.line() == b"a3 OK NOOP completed"


def test_client_that_never_finishes_a_literal_is_dropped(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 LOGIN {100}\r\n")
    assert conn.line().startswith(b"+ ")
    conn.send(b"only a little")
    started = time.monotonic()
    assert conn.line() == b"* BYE Timed out waiting for literal data"
    assert conn.closed()
    assert time.monotonic() - started < 5
    _still_serves(short)


def test_huge_literals_are_refused(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 LOGIN {99999999999}\r\n")
    assert conn.line() == b"a1 BAD Literal too large"
    conn.send(b"a2 NOOP\r\n")
    assert conn.line() == b"a2 OK NOOP completed"
    conn.send(b"a3 LOGIN {99999999999+}\r\n")
    assert conn.line() == b"* BYE Literal too large"
    assert conn.closed()


def test_line_over_64k(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 NOOP " + b"x" * 200_000 + b"\r\na2 NOOP\r\n")
    assert conn.line() == b"* BAD Line too long (the limit is 65536 bytes)"
    assert conn.line() == b"a2 OK NOOP completed"


def test_idle_connection_times_out(conn: Raw, short: ServerThread) -> None:
    assert conn.line() == b"* BYE Disconnected for inactivity"
    assert conn.closed()


def test_half_open_command_times_out(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 NOO")  # no line end, ever: cut after command_timeout
    assert conn.line() == b"* BYE Command not completed in time (limit 1s)"
    assert conn.closed()
    _still_serves(short)


def test_idle_command_times_out(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 LOGIN * x\r\na2 IDLE\r\n")
    conn.until_tag(b"a1")
    assert conn.line().startswith(b"+ ")
    assert conn.line() == b"a2 NO Idle timed out"


def test_idle_with_garbage_instead_of_done(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 LOGIN * x\r\na2 IDLE\r\n")
    conn.until_tag(b"a1")
    assert conn.line().startswith(b"+ ")
    conn.send(b"NOT DONE\r\n")
    assert conn.line() == b"a2 BAD Expected DONE"


def test_bad_authenticate(conn: Raw, short: ServerThread) -> None:
    conn.send(b"a1 AUTHENTICATE CRAM-MD5\r\n")
    assert conn.line() == b"a1 NO Unsupported authentication mechanism"
    conn.send(b"a2 AUTHENTICATE PLAIN !!!\r\n")
    assert conn.line() == b"a2 BAD Invalid PLAIN response"
    conn.send(b"a3 AUTHENTICATE PLAIN\r\n")
    assert conn.line().startswith(b"+")
    conn.send(b"*\r\n")
    assert conn.line() == b"a3 BAD Authentication canceled"


def test_client_vanishing_mid_fetch_leaves_server_running(short: ServerThread) -> None:
    for _ in range(30):
        deliver(short, body="x" * 20_000)
    conn = Raw(short.imap_port)
    conn.send(b"a1 LOGIN * x\r\na2 SELECT INBOX\r\na3 FETCH 1:* (BODY[])\r\n")
    conn.close()
    _still_serves(short)


def test_client_that_stops_reading_is_dropped(short: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(40):
        deliver(short, body="z" * 200_000)
    conn = Raw(short.imap_port)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with caplog.at_level(logging.INFO, logger="mailnest.imap.server"):
        conn.send(b"a1 LOGIN * x\r\na2 SELECT INBOX\r\na3 FETCH 1:* (BODY.PEEK[])\r\n")
        deadline = time.monotonic() + 10
        while "the client stopped reading" not in caplog.text:  # never reading: writes stall, then time out
            assert time.monotonic() < deadline
            time.sleep(0.1)
    _still_serves(short)
    conn.close()
