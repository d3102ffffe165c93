"""POP3 reply rendering: pure, no sockets."""

from __future__ import annotations

import hashlib

import pytest

from mailnest.pop3 import responses


def test_status_lines() -> None:
    assert responses.ok() == b"+OK\r\n"
    assert responses.ok("2 320") == b"+OK 2 320\r\n"
    assert responses.err("no such message") == b"-ERR no such message\r\n"
    # Text that quotes client input can never split the reply into two lines.
    assert responses.err("bad\r\nUSER x") == b"-ERR bad  USER x\r\n"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        (b"a\nb\n", b"a\r\nb\r\n"),
        (b"a\r\nb\r\n", b"a\r\nb\r\n"),
        (b"a\r\nb\nc", b"a\r\nb\r\nc\r\n"),
        (b"a\rb\n", b"a\rb\r\n"),  # a bare CR inside a line is content, not a line end
        (b"\n\n", b"\r\n\r\n"),
        (b"", b""),
    ],
)
def test_normalize_crlf_and_size(raw: bytes, normal: bytes) -> None:
    assert responses.normalize_crlf(raw) == normal
    assert responses.maildrop_octets(raw) == len(normal)


def test_dot_stuffing() -> None:
    assert responses.dot_stuff(b".a\r\nb.\r\n.\r\n..\r\n") == b"..a\r\nb.\r\n..\r\n...\r\n"
    assert responses.multiline("x", b".\r\n") == b"+OK x\r\n..\r\n.\r\n"
    assert responses.multiline_lines("2 messages", ["1 10", "2 20"]) == b"+OK 2 messages\r\n1 10\r\n2 20\r\n.\r\n"
    assert responses.multiline_lines("none", []) == b"+OK none\r\n.\r\n"


def test_top() -> None:
    text = b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\nl3\r\n"
    assert responses.top(text, 0) == b"A: 1\r\nB: 2\r\n\r\n"
    assert responses.top(text, 2) == b"A: 1\r\nB: 2\r\n\r\nl1\r\nl2\r\n"
    assert responses.top(text, 9) == text
    assert responses.top(b"A: 1\r\n", 3) == b"A: 1\r\n"  # no body at all
    assert responses.top(b"\r\nbody\r\nmore\r\n", 1) == b"\r\nbody\r\n"  # empty header section


def test_apop_digest_matches_rfc_1939_example() -> None:
    # RFC 1939 section 7's worked example.
    timestamp = "<1896.697170952@dbc.mtview.ca.us>"
    assert responses.apop_digest(timestamp, "tanstaaf") == "c4c9334bac560ecc979e58001b3e22fb"
    assert responses.apop_digest(timestamp, "x") == hashlib.md5(f"{timestamp}x".encode()).hexdigest()


def test_greeting_carries_the_timestamp() -> None:
    assert responses.greeting("mailnest", "<a.1@mailnest>") == b"+OK mailnest POP3 server ready <a.1@mailnest>\r\n"
