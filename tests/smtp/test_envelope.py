"""The envelope: the null sender of bounces, and command arguments that are not UTF-8 (refused at the command)."""

from __future__ import annotations

import smtplib
import subprocess
import threading
import time
from pathlib import Path

import httpx

from mailnest import ServerThread
from tests.conftest import require_tool, send
from tests.smtp.test_bad_input import Conversation
from tests.smtp.test_limits import probe

BOUNCE = b"From: MAILER-DAEMON@example.com\r\nTo: a@example.com\r\nSubject: bounce\r\n\r\nundeliverable\r\n"


def stored_sender(server: ServerThread) -> str:
    latest = server.call(server.store.latest())
    assert latest is not None
    message = server.call(server.store.get(latest.id))
    assert message is not None
    return message.envelope.mail_from


def test_null_sender_takes_recipients_and_refuses_a_nested_mail(server: ServerThread, api: httpx.Client) -> None:
    c = Conversation(server.smtp_port)
    c.say(b"EHLO bounce.test\r\n")
    assert c.say(b"RCPT TO:<a@example.com>\r\n").startswith(b"503")  # no MAIL yet
    assert c.say(b"MAIL FROM:<>\r\n").startswith(b"250")
    assert c.say(b"MAIL FROM:<other@example.com>\r\n").startswith(b"503 5.5.1 Error: nested MAIL command")
    assert c.say(b"MAIL FROM:<>\r\n").startswith(b"503 5.5.1")
    assert c.say(b"RCPT TO:<a@example.com>\r\n").startswith(b"250")
    assert c.say(b"RCPT TO:<b@example.com>\r\n").startswith(b"250")
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(BOUNCE + b".\r\n").startswith(b"250")
    # After the message the transaction is over: a new MAIL is welcome, and so is RSET then MAIL.
    assert c.say(b"MAIL FROM:<next@example.com>\r\n").startswith(b"250")
    assert c.say(b"RSET\r\n").startswith(b"250")
    assert c.say(b"MAIL FROM:<>\r\n").startswith(b"250")
    c.close()
    assert stored_sender(server) == ""  # the null reverse-path is kept as an empty sender
    message = api.get("/api/v1/message/latest").json()
    assert message["Envelope"]["MailFrom"] == "<>"
    assert message["Envelope"]["RcptTo"] == ["a@example.com", "b@example.com"]
    assert api.get(f"/api/v1/message/{message['ID']}/raw").content == BOUNCE


def test_null_sender_with_smtplib(server: ServerThread) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("<>", ["a@example.com"], BOUNCE) == {}
    assert stored_sender(server) == ""
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        assert client.sendmail("", ["a@example.com"], BOUNCE) == {}  # smtplib sends MAIL FROM:<> for ""
    assert stored_sender(server) == ""


def test_null_sender_with_swaks(server: ServerThread, tmp_path: Path) -> None:
    swaks = require_tool("swaks")
    result = subprocess.run([swaks, "--server", f"127.0.0.1:{server.smtp_port}", "--from", "<>",
                             "--to", "a@example.com", "--header", "Subject: swaks bounce"],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MAIL FROM:<>" in result.stdout
    assert stored_sender(server) == ""


def test_arguments_that_are_not_utf8_are_refused_at_the_command(server: ServerThread, api: httpx.Client) -> None:
    c = Conversation(server.smtp_port)
    assert c.say("EHLO münchen.test\r\n".encode("latin-1")).startswith(b"501 5.5.4 the EHLO name is not valid UTF-8")
    assert c.say("HELO münchen.test\r\n".encode("latin-1")).startswith(b"501 5.5.4")
    assert c.say(b"EHLO ok.test\r\n").startswith(b"250")
    assert c.say("MAIL FROM:<jürgen@x.test>\r\n".encode("latin-1")).startswith(
        b"553 5.1.7 the sender address is not valid UTF-8")
    assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"250")
    assert c.say("RCPT TO:<jürgen@x.test>\r\n".encode("latin-1")).startswith(
        b"553 5.1.3 the recipient address is not valid UTF-8")
    # The same names in UTF-8 are fine, with SMTPUTF8.
    assert c.say("RCPT TO:<jürgen@x.test>\r\n".encode()).startswith(b"250")
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(b"Subject: utf8\r\n\r\nok\r\n.\r\n").startswith(b"250")
    assert c.say("EHLO münchen.test\r\n".encode()).startswith(b"250")
    assert c.say("MAIL FROM:<jürgen@x.test> SMTPUTF8\r\n".encode()).startswith(b"250")
    assert c.say("RCPT TO:<zoë@x.test>\r\n".encode()).startswith(b"250")
    assert c.say(b"DATA\r\n").startswith(b"354")
    assert c.say(b"Subject: utf8 too\r\n\r\nok\r\n.\r\n").startswith(b"250")
    c.close()
    listing = api.get("/api/v1/messages").json()
    assert listing["total"] == 2
    latest = api.get("/api/v1/message/latest").json()
    assert latest["Envelope"]["MailFrom"] == "jürgen@x.test"
    assert latest["Envelope"]["RcptTo"] == ["zoë@x.test"]


def test_one_latin1_client_does_not_refuse_the_others(server: ServerThread) -> None:
    """20 normal clients and one that keeps sending a Latin-1 recipient: every normal message gets its 250."""
    stop = threading.Event()
    bad_replies: list[bytes] = []

    def latin1_client() -> None:
        c = Conversation(server.smtp_port)
        c.say(b"EHLO legacy.test\r\n")
        while not stop.is_set():
            c.say(b"MAIL FROM:<a@example.com>\r\n")
            reply = c.say("RCPT TO:<jürgen@x>\r\n".encode("latin-1"))
            bad_replies.append(reply)
            if reply.startswith(b"250"):  # (it used to be taken, and its message broke the store's whole batch)
                c.say(b"DATA\r\n")
                c.say(b"Subject: legacy\r\n\r\nx\r\n.\r\n")
            c.say(b"RSET\r\n")
        c.close()

    failures: list[str] = []

    def normal_client(n: int) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as client:
                for i in range(5):
                    client.ehlo()
                    client.sendmail("a@example.com", [f"r{n}@example.com"], f"Subject: {n}-{i}\r\n\r\nx\r\n")
        except smtplib.SMTPException as exc:
            failures.append(repr(exc))

    bad = threading.Thread(target=latin1_client)
    bad.start()
    try:
        while not bad_replies:
            time.sleep(0.01)
        smtp, livez = probe(server)  # the attack running: a normal client's 250 and /livez stay fast
        assert smtp < 1.0 and livez < 0.1, (smtp, livez)
        normal = [threading.Thread(target=normal_client, args=(n,)) for n in range(20)]
        for thread in normal:
            thread.start()
        for thread in normal:
            thread.join(30)
    finally:
        stop.set()
        bad.join(10)
    assert failures == []
    assert server.call(server.store.count()) == 101  # the probe's and every normal client's
    assert bad_replies and all(reply.startswith(b"553 5.1.3") for reply in bad_replies)
    send(server, subject="still serving")
