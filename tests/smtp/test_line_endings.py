"""Bare line endings in DATA: stored as sent, with the leading dot a broken client stuffed after them removed
(as Postfix reads lines: to each LF), a warning logged and shown (mime.wire.protocol_warnings)."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

import pytest

from mailnest import ServerThread
from mailnest.mime.wire import protocol_warnings
from mailnest.smtp.server import unstuff
from tests.smtp.test_bad_input import Conversation


def stored_raw(server: ServerThread) -> bytes:
    latest = server.call(server.store.latest())
    assert latest is not None
    return server.call(server.store.raw(latest.id))


def test_smtplib_bytes_with_lf_line_endings_keep_their_single_leading_dot(server: ServerThread,
                                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    message = EmailMessage()
    message["From"] = "app@example.com"
    message["To"] = "dev@example.com"
    message["Subject"] = "dots"
    message.set_content("first line\n.leading dot line\n..two dots\n")
    sent = message.as_bytes()  # LF line endings: smtplib dot-stuffs them but does not fix them
    assert b"\r\n" not in sent
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.sendmail("app@example.com", ["dev@example.com"], sent)
    raw = stored_raw(server)
    # What the application meant, line endings as sent (smtplib adds a CRLF to data that does not end in one).
    assert raw == sent + b"\r\n"
    assert b"\n.leading dot line\n..two dots\n" in raw
    assert [w.code for w in protocol_warnings(raw)] == ["bare-lf"]
    warnings = [r.getMessage() for r in caplog.records if "bare LF" in r.getMessage()]
    assert len(warnings) == 1 and "127.0.0.1" in warnings[0]


@pytest.mark.parametrize(("wire", "meant"), [
    (b"a\r\n..b\r\n", b"a\r\n.b\r\n"),
    (b"a\n..b\r\n", b"a\n.b\r\n"),  # (only CRLF "." CRLF ends the data, so each case ends in CRLF)
    (b"a\r..b\r\n", b"a\r..b\r\n"),  # a bare CR is no line end (Postfix; smtplib does not stuff after one)
    (b"a\r\n.\n..\r...\r\n", b"a\r\n\n.\r...\r\n"),
    (b"..first\r\n", b".first\r\n"),
    (b"a\r\n\r.\r\n", b"a\r\n\r.\r\n"),
], ids=["crlf", "lf", "cr", "mixed", "first-line", "cr-then-crlf"])
def test_a_leading_dot_is_removed_after_crlf_and_bare_lf(server: ServerThread, wire: bytes, meant: bytes) -> None:
    assert unstuff(wire) == meant
    c = Conversation(server.smtp_port)
    c.say(b"EHLO ok.test\r\n")
    c.say(b"MAIL FROM:<a@example.com>\r\n")
    c.say(b"RCPT TO:<b@example.com>\r\n")
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(wire + b".\r\n").startswith(b"250")
    c.close()
    assert stored_raw(server) == meant
