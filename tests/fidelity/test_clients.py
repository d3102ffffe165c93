"""Real clients send the same message to mailnest and to the reference: smtplib (`sendmail` with str and with
bytes, `send_message`), aiosmtplib and swaks. Then each stored message is read back through IMAP and POP3."""

from __future__ import annotations

import asyncio
import smtplib
import subprocess
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from tests.conftest import require_tool
from tests.fidelity.harness import Mailnest, check_client
from tests.fidelity.reference import ReferenceServer

BODY = "first line\n.one leading dot\n..two leading dots\n.\nafter a lone dot\n"


def message(subject: str = "from a client", body: str = BODY) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "app@example.com"
    msg["To"] = "dev@example.com"
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def test_smtplib_sendmail_str(mailnest: Mailnest, reference: ReferenceServer) -> None:
    text = message().as_string()  # LF line endings; smtplib turns a str's line endings into CRLF

    def send(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("app@example.com", ["dev@example.com"], text)

    stored = check_client(mailnest, reference, send)
    assert b"\r\n.one leading dot\r\n..two leading dots\r\n.\r\n" in stored.content


def test_smtplib_sendmail_bytes_with_lf(mailnest: Mailnest, reference: ReferenceServer) -> None:
    """The case of issue 11: bytes from as_bytes() keep LF; smtplib stuffs dots after them anyway. mailnest
    stores the message meant (one dot), with a bare-LF warning; aiosmtpd keeps two."""
    data = message().as_bytes()

    def send(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("app@example.com", ["dev@example.com"], data)

    stored = check_client(mailnest, reference, send, meant=data + b"\r\n")  # smtplib ends the data with CRLF
    assert b"\n.one leading dot\n..two leading dots\n.\n" in stored.content


def test_smtplib_send_message(mailnest: Mailnest, reference: ReferenceServer) -> None:
    msg = message()

    def send(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)

    stored = check_client(mailnest, reference, send)
    assert b"\r\n.one leading dot\r\n" in stored.content


def test_smtplib_send_message_smtputf8(mailnest: Mailnest, reference: ReferenceServer) -> None:
    msg = message("Grüße ☃", "Hallo Jürgen\n.ümlaut after a dot\n")
    msg.replace_header("From", "Jürgen <jürgen@exämple.com>")

    def send(port: int) -> None:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.send_message(msg)  # non-ASCII addresses: smtplib asks for SMTPUTF8

    stored = check_client(mailnest, reference, send)
    assert stored.mail_from == "jürgen@exämple.com"


def test_aiosmtplib(mailnest: Mailnest, reference: ReferenceServer) -> None:
    msg = message("aiosmtplib")
    data = message("aiosmtplib bytes").as_bytes()

    def send(port: int) -> None:
        async def both() -> None:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
                await client.send_message(msg)
        asyncio.run(both())

    check_client(mailnest, reference, send)

    def send_bytes(port: int) -> None:
        async def one() -> None:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port) as client:
                await client.sendmail("app@example.com", ["dev@example.com"], data)
        asyncio.run(one())

    # aiosmtplib turns every line ending into CRLF before it stuffs dots: both servers store the same bytes.
    stored = check_client(mailnest, reference, send_bytes, meant=data.replace(b"\n", b"\r\n"))
    assert b"\r\n.one leading dot\r\n" in stored.content


def test_swaks(mailnest: Mailnest, reference: ReferenceServer, tmp_path: Path) -> None:
    swaks = require_tool("swaks")
    source = tmp_path / "message.eml"
    source.write_bytes(message("swaks").as_bytes())  # LF line endings in the file

    def send(port: int) -> None:
        result = subprocess.run([swaks, "--server", f"127.0.0.1:{port}", "--from", "app@example.com",
                                 "--to", "dev@example.com", "--data", f"@{source}"],
                                capture_output=True, text=True, timeout=30, check=False)
        assert result.returncode == 0, result.stdout + result.stderr

    stored = check_client(mailnest, reference, send)
    assert b"\r\n.one leading dot\r\n..two leading dots\r\n" in stored.content
