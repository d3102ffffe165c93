"""Small helpers for the IMAP end-to-end tests."""

from __future__ import annotations

import imaplib
import smtplib
from email.message import EmailMessage

from mailnest.runtime import ServerThread


def deliver(server: ServerThread, *, to: tuple[str, ...] = ("rcpt@example.com",), subject: str = "Hello",
            body: str = "Hello there.\n", sender: str = "sender@example.com", raw: bytes | None = None) -> bytes:
    """Deliver one message over SMTP; returns the bytes sent."""
    if raw is None:
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = ", ".join(to)
        msg["Subject"] = subject
        msg["Message-ID"] = f"<{abs(hash(subject))}@example.com>"
        msg.set_content(body)
        raw = bytes(msg)
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        client.sendmail(sender, list(to), raw)
    return raw


def login(server: ServerThread, user: str = "*") -> imaplib.IMAP4:
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    client.login(user, "secret")
    return client


def multipart(subject: str = "Report") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Reporter <reporter@example.com>"
    msg["To"] = "team@example.com"
    msg["Subject"] = subject
    msg.set_content("Plain body.\n")
    msg.add_alternative("<p>HTML body.</p>\n", subtype="html")
    msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream", filename="data.bin")
    return bytes(msg).replace(b"\n", b"\r\n")
