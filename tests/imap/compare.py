"""Load the same messages into mailnest and Dovecot and ask both the same questions.

Dovecot keeps messages with LF line ends and always answers with CRLF, so what it returns for a message is
what mailnest returns for that message with every bare LF turned into CRLF (`crlf`). mailnest keeps bytes as
received. So each message goes into mailnest twice: as received into INBOX, and CRLF-normalized into the
folder CRLF. Answers from the CRLF folder must equal Dovecot's byte for byte; answers from INBOX must equal
them for every message already in CRLF form, and for bare-LF messages differ only as documented (literals
carry the stored bytes, sizes count them).
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from mailnest.mime import structure

from .wire import append, raw


def internal_date(n: int) -> str:
    """A different INTERNALDATE for each message, in assorted time zones, all within early 2024."""
    return f"{1 + n % 28:02d}-{('Jan', 'Feb')[n % 2]}-2024 {n % 24:02d}:30:00 {('+0000', '+0200', '-0700')[n % 3]}"
_LITERAL = re.compile(rb"\{(\d+)\}\r\n")
_BARE_LF = re.compile(rb"(?<!\r)\n")


def crlf(data: bytes) -> bytes:
    return _BARE_LF.sub(b"\r\n", data)


def crlf_literals(response: bytes) -> bytes:
    """A response with the contents of every literal CRLF-normalized (and its length fixed)."""
    out = bytearray()
    pos = 0
    while True:
        match = _LITERAL.search(response, pos)
        if not match:
            out += response[pos:]
            return bytes(out)
        size = int(match.group(1))
        data = crlf(response[match.end():match.end() + size])
        out += response[pos:match.start()] + b"{%d}\r\n" % len(data) + data
        pos = match.end() + size


def load(client: imaplib.IMAP4, mailbox: str, messages: list[bytes]) -> None:
    for n, message in enumerate(messages):
        line = append(client, mailbox, message, date=internal_date(n))
        assert b" OK " in line, line
    # The first session to select a mailbox takes the \Recent flags; later sessions see none.
    _untagged, done = raw(client, f"SELECT {mailbox}")
    assert b" OK " in done, done


def part_ids(message: bytes) -> list[str]:
    """Every section number the message has, plus one past the end of each level (a part that is not there)."""
    ids = {"1", "2"}
    for part in structure(message).walk():
        if part.part_id:
            ids.add(part.part_id)
            head, _, last = part.part_id.rpartition(".")
            ids.add((head + "." if head else "") + str(int(last) + 1))
            ids.add(part.part_id + ".1")
    return sorted(ids, key=lambda s: [int(n) for n in s.split(".")])


def section_items(message: bytes) -> Iterator[str]:
    for pid in part_ids(message):
        yield f"BODY.PEEK[{pid}]"
        yield f"BODY.PEEK[{pid}.MIME]"
        yield f"BODY.PEEK[{pid}.HEADER]"
        yield f"BODY.PEEK[{pid}.TEXT]"
        yield f"BODY.PEEK[{pid}.HEADER.FIELDS (Content-Type From)]"
        yield f"BODY.PEEK[{pid}]<3.40>"


MESSAGE_ITEMS = (
    "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY", "BODYSTRUCTURE", "BODY.PEEK[]",
    "BODY.PEEK[HEADER]", "BODY.PEEK[TEXT]", "RFC822.HEADER",
    "BODY.PEEK[HEADER.FIELDS (From To Cc Subject Date Message-ID Content-Type MIME-Version)]",
    "BODY.PEEK[HEADER.FIELDS.NOT (Received Subject From)]",
    'BODY.PEEK[HEADER.FIELDS ("subject" x-unknown)]',
    "BODY.PEEK[]<0.100>", "BODY.PEEK[]<17.35>", "BODY.PEEK[TEXT]<5.20>", "BODY.PEEK[TEXT]<100000000.10>",
    "ALL", "FAST", "FULL", "(ENVELOPE FLAGS UID RFC822.SIZE BODY[HEADER] INTERNALDATE BODY)",
)
# Items that set \Seen, asked last, in this order, so both servers see the same flag changes.
SEEN_ITEMS = ("BODY[1]", "RFC822.TEXT", "RFC822", "BODY[]")
SIZE_ITEMS = frozenset({"RFC822.SIZE", "BODY", "BODYSTRUCTURE", "ALL", "FAST", "FULL"})


@dataclass
class Mismatch:
    message: int
    question: str | bytes
    mailnest: bytes
    dovecot: bytes

    def __str__(self) -> str:
        return (f"message {self.message}: {self.question}\n  mailnest: {self.mailnest[:600]!r}\n"
                f"  dovecot:  {self.dovecot[:600]!r}")


def fetch_lines(client: imaplib.IMAP4, question: str | bytes) -> bytes:
    untagged, done = raw(client, question)
    assert b" OK " in done, (question, done)
    return b"".join(r for r in untagged if re.match(rb"\* \d+ FETCH ", r))


def search_line(client: imaplib.IMAP4, question: str | bytes) -> bytes:
    untagged, done = raw(client, question)
    return b"".join(r for r in untagged if r.startswith(b"* SEARCH")) + done.split(b" ", 2)[1]
