"""SMTP over TLS (STARTTLS and implicit) and AUTH, with real clients: smtplib, aiosmtplib, swaks."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import bcrypt
import httpx
import pytest

from mailnest import Config, Listen, ServerThread
from mailnest.tls import generate_self_signed
from tests.conftest import require_tool, trusting
from tests.smtp.test_bad_input import Conversation

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: secure\r\n\r\nsecret body\r\n"


def latest(server: ServerThread) -> dict:
    return httpx.get(f"{server.http_url}/api/v1/message/latest").json()


@pytest.fixture
def auth_file(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    hashed = bcrypt.hashpw(b"hunter2", bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"# test accounts\nalice:wonderland\nbob:{hashed}\n\n")
    return path


@pytest.fixture
def tls_server() -> Iterator[ServerThread]:
    with ServerThread(Config(tls=True, smtps=Listen("127.0.0.1", 0))) as server:
        yield server


def test_starttls_with_the_generated_certificate_records_tls(tls_server: ServerThread) -> None:
    import smtplib

    with smtplib.SMTP("127.0.0.1", tls_server.smtp_port) as client:
        client.starttls(context=trusting(tls_server))
        client.login("anyone", "anything")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    envelope = latest(tls_server)["Envelope"]
    assert envelope["TLS"]["Version"].startswith("TLSv1.")
    assert envelope["TLS"]["Cipher"]
    assert envelope["AuthUser"] == "anyone"


def test_implicit_tls_listener(tls_server: ServerThread) -> None:
    import smtplib

    with smtplib.SMTP_SSL("localhost", tls_server.smtps_port, context=trusting(tls_server)) as client:
        assert b"STARTTLS" not in client.ehlo()[1]
        client.login("user@example.com", "pw")
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    message = latest(tls_server)
    assert message["Envelope"]["TLS"] is not None
    assert message["Envelope"]["AuthUser"] == "user@example.com"


def test_user_given_certificate(tmp_path: Path) -> None:
    import smtplib

    material = generate_self_signed(tmp_path / "mine", ["mail.test", "127.0.0.1"])
    with ServerThread(Config(tls_cert=material.cert, tls_key=material.key)) as server:
        assert server.tls_cert == material.cert
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            client.starttls(context=ssl.create_default_context(cafile=str(material.cert)))
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
        assert latest(server)["Envelope"]["TLS"] is not None


def test_auth_file_checks_plain_login_and_cram_md5(auth_file: Path) -> None:
    import smtplib

    with ServerThread(Config(auth_file=auth_file)) as server:
        for mechanism in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
                client.ehlo()
                assert mechanism in client.esmtp_features["auth"]
                client.user, client.password = "alice", "wonderland"
                client.auth(mechanism, getattr(client, "auth_" + mechanism.lower().replace("-", "_")))
                client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
            assert latest(server)["Envelope"]["AuthUser"] == "alice"
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            client.login("bob", "hunter2")  # bcrypt entry
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client, pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("alice", "wrong")
        # (from another address: smtplib's login tries three mechanisms, and the failures above slow this one)
        with smtplib.SMTP("127.0.0.1", server.smtp_port, source_address=("127.0.0.2", 0)) as client, \
                pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("mallory", "wonderland")


def test_cram_md5_by_hand(auth_file: Path) -> None:
    with ServerThread(Config(auth_file=auth_file)) as server:
        c = Conversation(server.smtp_port)
        c.say(b"EHLO x.test\r\n")
        challenge = c.say(b"AUTH CRAM-MD5\r\n")
        assert challenge.startswith(b"334 ")
        nonce = base64.b64decode(challenge[4:].strip())
        digest = hmac.new(b"wonderland", nonce, hashlib.md5).hexdigest()
        assert c.say(base64.b64encode(b"alice " + digest.encode()) + b"\r\n").startswith(b"235")
        c.close()


def test_repeated_wrong_passwords_are_slowed_down(auth_file: Path) -> None:
    with ServerThread(Config(auth_file=auth_file)) as server:
        c = Conversation(server.smtp_port)
        c.say(b"EHLO x.test\r\n")
        bad = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0nope") + b"\r\n"
        timings = []
        for _ in range(4):
            started = time.monotonic()
            assert c.say(bad).startswith(b"535")
            timings.append(time.monotonic() - started)
        assert timings[-1] >= 0.35 > timings[0]
        c.close()


def test_bad_base64_in_auth(server: ServerThread) -> None:
    c = Conversation(server.smtp_port)
    c.say(b"EHLO x.test\r\n")
    assert c.say(b"AUTH PLAIN !!!notbase64\r\n").startswith(b"501")
    assert c.say(b"AUTH LOGIN\r\n").startswith(b"334")
    assert c.say(b"%%%\r\n").startswith(b"501")
    assert c.say(b"NOOP\r\n").startswith(b"250")
    c.close()


def test_require_auth_refuses_mail_without_login() -> None:
    import smtplib

    with ServerThread(Config(require_auth=True)) as server:
        c = Conversation(server.smtp_port)
        c.say(b"EHLO x.test\r\n")
        assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"530")
        c.close()
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            client.login("someone", "pw")
            client.sendmail("a@example.com", ["b@example.com"], MESSAGE)


def test_require_tls_refuses_mail_and_auth_before_starttls() -> None:
    with ServerThread(Config(tls=True, require_tls=True)) as server:
        c = Conversation(server.smtp_port)
        assert b"STARTTLS" in c.say(b"EHLO x.test\r\n")
        assert c.say(b"MAIL FROM:<a@example.com>\r\n").startswith(b"530")
        assert c.say(b"AUTH PLAIN " + base64.b64encode(b"\0u\0p") + b"\r\n").startswith(b"530")
        c.close()


def test_plain_auth_before_tls_is_refused_when_tls_is_configured_unless_allowed() -> None:
    with ServerThread(Config(tls=True)) as server:
        c = Conversation(server.smtp_port)
        c.say(b"EHLO x.test\r\n")
        assert c.say(b"AUTH PLAIN " + base64.b64encode(b"\0u\0p") + b"\r\n").startswith(b"538")
        c.close()
    with ServerThread(Config(tls=True, allow_insecure_auth=True)) as server:
        c = Conversation(server.smtp_port)
        c.say(b"EHLO x.test\r\n")
        assert c.say(b"AUTH PLAIN " + base64.b64encode(b"\0u\0p") + b"\r\n").startswith(b"235")
        c.close()


def test_commands_pipelined_before_starttls_are_discarded(tls_server: ServerThread) -> None:
    sock = socket.create_connection(("127.0.0.1", tls_server.smtp_port), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"EHLO x.test\r\n")
    while not reader.readline().startswith(b"250 "):
        pass
    # The injected MAIL FROM travels in plain text behind STARTTLS and must not be run inside TLS.
    sock.sendall(b"STARTTLS\r\nMAIL FROM:<injected@evil.test>\r\n")
    assert reader.readline().startswith(b"220")
    tls_sock = trusting(tls_server).wrap_socket(sock, server_hostname="localhost")
    tls_reader = tls_sock.makefile("rb")
    tls_sock.sendall(b"EHLO x.test\r\n")
    while not tls_reader.readline().startswith(b"250 "):
        pass
    tls_sock.sendall(b"RCPT TO:<b@example.com>\r\n")
    assert tls_reader.readline().startswith(b"503")  # no MAIL FROM was accepted
    tls_sock.close()


def test_plaintext_to_the_tls_port_and_a_stalled_handshake_do_not_hurt(tls_server: ServerThread) -> None:
    import smtplib

    plain = socket.create_connection(("127.0.0.1", tls_server.smtps_port), timeout=10)
    plain.sendall(b"EHLO plain.test\r\n")
    plain.settimeout(5)
    try:
        assert plain.recv(100) == b""  # the server hangs up on a failed handshake
    except (ConnectionResetError, TimeoutError):
        pass
    plain.close()
    stalled = socket.create_connection(("127.0.0.1", tls_server.smtps_port), timeout=10)  # never says hello
    with smtplib.SMTP_SSL("localhost", tls_server.smtps_port, context=trusting(tls_server)) as client:
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE)
    stalled.close()
    assert latest(tls_server)["Subject"] == "secure"


def test_aiosmtplib_starttls_and_login(tls_server: ServerThread) -> None:
    async def main() -> None:
        await aiosmtplib.send(MESSAGE, sender="a@example.com", recipients=["b@example.com"], hostname="localhost",
                              port=tls_server.smtp_port, start_tls=True, tls_context=trusting(tls_server),
                              username="async-user", password="pw")

    asyncio.run(main())
    assert latest(tls_server)["Envelope"]["AuthUser"] == "async-user"


def test_swaks_tls_and_auth(tls_server: ServerThread, tmp_path: Path) -> None:
    swaks = require_tool("swaks")
    result = subprocess.run(
        [swaks, "--server", f"127.0.0.1:{tls_server.smtp_port}", "--tls", "--tls-verify", "--tls-ca-path",
         str(tls_server.tls_cert), "--tls-sni", "localhost", "--auth", "LOGIN", "--auth-user", "swaks-user",
         "--auth-password", "pw", "--to", "b@example.com", "--from", "a@example.com",
         "--header", "Subject: swaks tls"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    message = latest(tls_server)
    assert message["Subject"] == "swaks tls"
    assert message["Envelope"]["AuthUser"] == "swaks-user"
    assert message["Envelope"]["TLS"] is not None
