"""A byte-exact IMAP transcript helper on top of imaplib's transport (socket or Dovecot's pipe alike)."""

from __future__ import annotations

import imaplib
import itertools
import re

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_tags = itertools.count(1)


def raw(client: imaplib.IMAP4, command: bytes | str) -> tuple[list[bytes], bytes]:
    """Send one command (no literals); return every untagged response as received and the tagged line."""
    if isinstance(command, str):
        command = command.encode()
    tag = b"W%d" % next(_tags)
    client.send(tag + b" " + command + b"\r\n")
    untagged: list[bytes] = []
    while True:
        response = bytearray()
        while True:
            line = client.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            response += line
            match = _LITERAL.search(line)
            if not match:
                break
            response += client.read(int(match.group(1)))
        if response.startswith(tag + b" "):
            return untagged, bytes(response)
        untagged.append(bytes(response))


def fetches(untagged: list[bytes]) -> list[bytes]:
    """Only the `* n FETCH` responses."""
    return [r for r in untagged if re.match(rb"\* \d+ FETCH ", r)]


def append(client: imaplib.IMAP4, mailbox: str, message: bytes, flags: str = "", date: str = "") -> bytes:
    """APPEND with a synchronizing literal, the bytes sent exactly; returns the tagged response."""
    tag = b"W%d" % next(_tags)
    head = mailbox + " " + (f"({flags}) " if flags else "") + (f'"{date}" ' if date else "")
    client.send(tag + b" APPEND " + head.encode() + b"{%d}\r\n" % len(message))
    line = client.readline()
    if not line.startswith(b"+"):
        raise AssertionError(f"no continuation for APPEND: {line!r}")
    client.send(message + b"\r\n")
    while True:
        line = client.readline()
        if line.startswith(tag + b" "):
            return line
