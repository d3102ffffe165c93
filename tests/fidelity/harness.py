"""Drive one SMTP session at mailnest and at the reference, and collect what each stored.

The rule the comparison holds (issue 11): where every line of the message ends in CRLF, mailnest stores exactly
the bytes and envelope the reference does. Where a line ends in a bare LF or bare CR, the reference (aiosmtpd,
which reads DATA lines only at CRLF) keeps the extra dot a client stuffed after a bare LF, breaking RFC 5321
4.5.2; mailnest stores what the sender meant, as Postfix does (a leading dot removed after every LF, the line
endings kept as sent), and `protocol_warnings` names the bare line endings.
"""

from __future__ import annotations

import imaplib
import poplib
import random
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass

from mailnest import ServerThread
from mailnest.mime.wire import protocol_warnings
from tests.fidelity.reference import Delivered, ReferenceServer

_REPLY_CODE = re.compile(rb"^(\d{3}) ", re.MULTILINE)


@dataclass(frozen=True)
class Session:
    """One SMTP conversation: the commands before DATA, the message as the sender means it, and the envelope."""

    message: bytes
    mail_from: str = "sender@example.com"
    rcpt_tos: tuple[str, ...] = ("rcpt@example.com",)
    mail_options: str = ""

    def commands(self) -> bytes:
        rcpts = b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in self.rcpt_tos)
        options = f" {self.mail_options}" if self.mail_options else ""
        return (b"EHLO client.test\r\n" + f"MAIL FROM:<{self.mail_from}>{options}\r\n".encode() + rcpts
                + b"DATA\r\n")

    def data(self) -> bytes:
        """DATA's bytes as a typical client sends them: dot-stuffed after every LF (Python's smtplib does this
        for bytes, whatever the line endings), CRLF added when the message does not end in one, then "." CRLF."""
        stuffed = re.sub(rb"(?m)^\.", b"..", self.message)
        return stuffed + (b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n"

    def wire(self) -> bytes:
        return self.commands() + self.data() + b"QUIT\r\n"

    def meant(self) -> bytes:
        """What the sender meant, as Postfix stores it: the message, with the CRLF the client added."""
        return self.message + (b"" if self.message.endswith(b"\r\n") else b"\r\n")


def all_crlf(data: bytes) -> bool:
    return data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r")


def aiosmtpd_reading(data_on_wire: bytes) -> bytes:
    """What aiosmtpd makes of DATA's bytes (its behaviour, asserted so that a change shows): lines end only at
    CRLF and each loses one leading dot, so a dot stuffed after a bare LF stays."""
    body = data_on_wire[: -len(b".\r\n")]
    return b"\r\n".join(line[1:] if line.startswith(b".") else line for line in body.split(b"\r\n"))


def write(sock: socket.socket, data: bytes, how: str, rng: random.Random) -> None:
    """Send `data` all at once (pipelined), one byte per write, or in random-size pieces."""
    if how == "whole":
        sock.sendall(data)
        return
    position = 0
    while position < len(data):
        size = 1 if how == "bytes" else rng.randint(1, 3000)
        sock.sendall(data[position:position + size])
        position += size


def converse(port: int, data: bytes, how: str = "whole", seed: int = 0) -> list[bytes]:
    """Write a whole session and read every reply to the server's close; the reply codes in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        write(sock, data, how, random.Random(seed))
        replies = b""
        while chunk := sock.recv(65536):
            replies += chunk
    return _REPLY_CODE.findall(replies)


@dataclass(frozen=True)
class Stored:
    uid: int
    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


class Mailnest:
    """The mailnest under test, and what it stored since the last look."""

    def __init__(self, server: ServerThread) -> None:
        self.server = server
        self.seen = max(server.call(server.store.uids()), default=0)

    def take(self) -> list[Stored]:
        server = self.server
        new = sorted(uid for uid in server.call(server.store.uids()) if uid > self.seen)
        if new:
            self.seen = new[-1]
        ids = {uid: server.call(server.store.id_for_uid(uid)) for uid in new}
        found = server.call(server.store.raw_with_envelopes([i for i in ids.values() if i]))
        taken = []
        for uid, id_ in ids.items():
            raw, envelope = found[id_]
            taken.append(Stored(uid, envelope.mail_from, tuple(envelope.rcpt_tos), raw))
        return taken

    def imap_body(self, uid: int) -> bytes:
        assert self.server.imap_port is not None
        with imaplib.IMAP4("127.0.0.1", self.server.imap_port, timeout=30) as imap:
            imap.login("*", "any")
            imap.select("INBOX", readonly=True)
            status, data = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
            assert status == "OK", data
            literal = next(part for part in data if isinstance(part, tuple))
            return literal[1]

    def pop3_lines(self, uid: int) -> list[bytes]:
        """RETR of the message with this UID (poplib undoes dot-stuffing and splits lines). The maildrop of `*`
        holds every message in UID order."""
        number = sorted(self.server.call(self.server.store.uids())).index(uid) + 1
        assert self.server.pop3_port is not None
        pop = poplib.POP3("127.0.0.1", self.server.pop3_port, timeout=30)
        try:
            pop.user("*")
            pop.pass_("any")
            _, lines, _ = pop.retr(number)
            return lines
        finally:
            pop.quit()


def pop3_view(content: bytes) -> list[bytes]:
    """The lines a POP3 client sees for stored bytes: POP3 sends lines ending in CRLF (RFC 1939), so a bare LF
    ends a line too; a bare CR stays inside its line."""
    lines = re.split(rb"\r?\n", content)
    return lines[:-1] if lines and lines[-1] == b"" else lines


def check_session(mailnest: Mailnest, reference: ReferenceServer, session: Session, how: str = "whole",
                  seed: int = 0, *, read_back: bool = True) -> Stored:
    """Send the same session to both; assert the fidelity rule; return what mailnest stored."""
    wire = session.wire()
    ours = converse(mailnest.server.smtp_port, wire, how, seed)
    theirs = converse(reference.port, wire, how, seed)
    assert ours == theirs, (ours, theirs)
    assert ours[-2:] == [b"250", b"221"], ours
    [stored] = mailnest.take()
    [delivered] = reference.take()
    check_stored(stored, delivered, session.meant(), session.data())
    if read_back:
        check_read_back(mailnest, stored)
    return stored


def check_client(mailnest: Mailnest, reference: ReferenceServer, send: Callable[[int], object],
                 meant: bytes | None = None) -> Stored:
    """Let a real client send the same message to both servers; assert the fidelity rule (against `meant`, the
    message the application meant, when the client may send bare line endings); read it back."""
    send(mailnest.server.smtp_port)
    send(reference.port)
    [stored] = mailnest.take()
    [delivered] = reference.take()
    check_stored(stored, delivered, meant, None)
    check_read_back(mailnest, stored)
    return stored


def check_stored(stored: Stored, delivered: Delivered, meant: bytes | None, data_on_wire: bytes | None) -> None:
    assert (stored.mail_from, stored.rcpt_tos) == (delivered.mail_from, delivered.rcpt_tos)
    if all_crlf(stored.content):
        assert stored.content == delivered.content
        assert meant is None or stored.content == meant
        assert not {w.code for w in protocol_warnings(stored.content)} & {"bare-lf", "bare-cr"}
        return
    # Bare line endings: mailnest stores what the sender meant and says how it broke the rules...
    assert meant is not None, "a client sent bare line endings where the test expected none"
    assert stored.content == meant
    codes = {w.code for w in protocol_warnings(stored.content)}
    assert codes & {"bare-lf", "bare-cr"}, codes
    # ...while aiosmtpd keeps every dot stuffed after a bare LF (its documented reading, asserted here).
    if data_on_wire is not None:
        assert delivered.content == aiosmtpd_reading(data_on_wire)
        if re.search(rb"(?<!\r)\n\.", meant):  # a dot right after a bare LF: aiosmtpd keeps its stuffing
            assert delivered.content != stored.content


def check_read_back(mailnest: Mailnest, stored: Stored) -> None:
    # IMAP literals cannot carry NUL: mailnest sends stored NUL bytes as 0x80, as Dovecot does (imap/__init__.py).
    assert mailnest.imap_body(stored.uid) == stored.content.replace(b"\0", b"\x80")
    assert mailnest.pop3_lines(stored.uid) == pop3_view(stored.content)
