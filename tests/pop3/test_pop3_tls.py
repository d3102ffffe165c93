"""POP3 over TLS (STLS and POP3S) and login checks, with poplib."""

from __future__ import annotations

import hashlib
import poplib
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailnest import Config, Listen, ServerThread
from tests.conftest import trusting


@pytest.fixture
def tls_server(certificate: dict[str, object]) -> Iterator[ServerThread]:
    config = Config(http=None, pop3=Listen("127.0.0.1", 0), pop3s=Listen("127.0.0.1", 0)).replace(**certificate)
    with ServerThread(config) as server:
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            client.sendmail("a@example.com", ["reader@example.com"], b"Subject: over tls\r\n\r\nprivate\r\n")
        yield server


def test_stls_then_login_and_retr(tls_server: ServerThread) -> None:
    client = poplib.POP3("127.0.0.1", tls_server.pop3_port, timeout=10)
    assert "STLS" in client.capa()
    client.stls(context=trusting(tls_server))
    assert "STLS" not in client.capa()
    client.user("reader@example.com")
    client.pass_("anything")
    _, lines, _ = client.retr(1)
    assert b"Subject: over tls" in lines
    client.quit()


def test_pop3s(tls_server: ServerThread) -> None:
    client = poplib.POP3_SSL("localhost", tls_server.pop3s_port, context=trusting(tls_server), timeout=10)
    assert "STLS" not in client.capa()
    client.user("reader@example.com")
    client.pass_("x")
    assert client.stat()[0] == 1
    client.quit()


def test_clear_text_password_is_refused_before_stls_but_apop_is_not(tls_server: ServerThread) -> None:
    client = poplib.POP3("127.0.0.1", tls_server.pop3_port, timeout=10)
    with pytest.raises(poplib.error_proto, match="STLS"):
        client.user("reader@example.com")
    client.apop("reader@example.com", "secret")  # no password travels: allowed before TLS
    assert client.stat()[0] == 1
    client.quit()


def test_require_tls_refuses_every_login_before_stls() -> None:
    config = Config(http=None, pop3=Listen("127.0.0.1", 0), tls=True, require_tls=True)
    with ServerThread(config) as server:
        client = poplib.POP3("127.0.0.1", server.pop3_port, timeout=10)
        with pytest.raises(poplib.error_proto, match="STLS"):
            client.apop("reader@example.com", "secret")
        client.stls(context=trusting(server))
        client.user("reader@example.com")
        client.pass_("secret")
        client.quit()


def test_stls_without_a_certificate_says_so() -> None:
    with ServerThread(Config(http=None, pop3=Listen("127.0.0.1", 0))) as server:
        client = poplib.POP3("127.0.0.1", server.pop3_port, timeout=10)
        assert "STLS" not in client.capa()
        with pytest.raises(poplib.error_proto, match="no TLS certificate"):
            client._shortcmd("STLS")
        client.quit()


def test_commands_pipelined_behind_stls_are_dropped(tls_server: ServerThread) -> None:
    sock = socket.create_connection(("127.0.0.1", tls_server.pop3_port), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"STLS\r\nUSER injected@example.com\r\n")
    assert reader.readline().startswith(b"+OK")
    tls = trusting(tls_server).wrap_socket(sock, server_hostname="localhost")
    tls_reader = tls.makefile("rb")
    tls.sendall(b"PASS x\r\n")  # had USER been run inside TLS, this would log in
    assert tls_reader.readline().startswith(b"-ERR")
    tls.close()


def test_auth_file_checks_user_pass_and_apop(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("reader@example.com:right\n")
    config = Config(http=None, pop3=Listen("127.0.0.1", 0), auth_file=users)
    with ServerThread(config) as server:
        ok = poplib.POP3("127.0.0.1", server.pop3_port, timeout=10)
        ok.user("reader@example.com")
        ok.pass_("right")
        ok.quit()
        bad = poplib.POP3("127.0.0.1", server.pop3_port, timeout=10)
        bad.user("reader@example.com")
        with pytest.raises(poplib.error_proto, match="AUTH"):
            bad.pass_("wrong")
        bad.close()
        apop = poplib.POP3("127.0.0.1", server.pop3_port, timeout=10)
        apop.apop("reader@example.com", "right")
        apop.quit()
        wrong = poplib.POP3("127.0.0.1", server.pop3_port, timeout=10)
        timestamp = wrong.timestamp.search(wrong.welcome).group(1)
        digest = hashlib.md5(timestamp + b"wrong").hexdigest()
        with pytest.raises(poplib.error_proto):
            wrong._shortcmd(f"APOP reader@example.com {digest}")
        wrong.close()
