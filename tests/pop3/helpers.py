"""Test helpers for POP3: a handle on a running mailnest, and a raw socket client."""

from __future__ import annotations

import poplib
import smtplib
import socket
from dataclasses import dataclass

from mailnest.models import Envelope, Summary
from mailnest.runtime import ServerThread


@dataclass
class Mailnest:
    thread: ServerThread

    @property
    def pop3_port(self) -> int:
        port = self.thread.pop3_port
        assert port is not None
        return int(port)

    def pop(self, user: str = "*", password: str = "secret") -> poplib.POP3:
        client = poplib.POP3("127.0.0.1", self.pop3_port, timeout=10)
        client.user(user)
        client.pass_(password)
        return client

    def send(self, raw: bytes, rcpt_tos: list[str], mail_from: str = "sender@example.com") -> None:
        with smtplib.SMTP("127.0.0.1", self.thread.smtp_port, timeout=10) as smtp:
            smtp.sendmail(mail_from, rcpt_tos, raw)

    def add(self, raw: bytes, rcpt_tos: tuple[str, ...] = ("rcpt@example.com",)) -> Summary:
        """Store bytes exactly as given (bare LFs and all), as an import or the API would."""
        summary: Summary = self.thread.call(
            self.thread.store.add(raw, Envelope("sender@example.com", rcpt_tos, source="import")))
        return summary



class RawPOP3:
    """A bare socket client for the input poplib refuses to send."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.greeting = self.file.readline()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def line(self) -> bytes:
        return self.file.readline()

    def cmd(self, line: bytes) -> bytes:
        self.send(line + b"\r\n")
        return self.line()

    def multiline(self) -> list[bytes]:
        lines = []
        while (line := self.line()) not in (b".\r\n", b""):
            lines.append(line)
        return lines

    def close(self) -> None:
        self.file.close()
        self.sock.close()
