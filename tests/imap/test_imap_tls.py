"""IMAP over TLS (STARTTLS and IMAPS) and login checks, with imaplib and IMAPClient."""

from __future__ import annotations

import imaplib
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import imapclient
import pytest

from mailnest import Config, Listen, ServerThread
from tests.conftest import trusting


@pytest.fixture
def tls_server(certificate: dict[str, object]) -> Iterator[ServerThread]:
    config = Config(http=None, imap=Listen("127.0.0.1", 0), imaps=Listen("127.0.0.1", 0)).replace(**certificate)
    with ServerThread(config) as server:
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            client.sendmail("a@example.com", ["reader@example.com"], b"Subject: over tls\r\n\r\nprivate\r\n")
        yield server


def test_starttls_then_login(tls_server: ServerThread) -> None:
    client = imaplib.IMAP4("127.0.0.1", tls_server.imap_port, timeout=10)
    assert "STARTTLS" in client.capabilities and "LOGINDISABLED" in client.capabilities
    with pytest.raises(imaplib.IMAP4.error, match="PRIVACYREQUIRED"):
        client.login("reader@example.com", "pw")
    client.starttls(ssl_context=trusting(tls_server))
    assert "STARTTLS" not in client.capabilities and "LOGINDISABLED" not in client.capabilities
    client.login("reader@example.com", "pw")
    client.select("INBOX")
    _, data = client.fetch("1", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    assert b"over tls" in data[0][1]
    client.logout()


def test_imaps_with_imapclient(tls_server: ServerThread) -> None:
    with imapclient.IMAPClient("localhost", port=tls_server.imaps_port, ssl=True,
                               ssl_context=trusting(tls_server), timeout=10) as client:
        assert b"STARTTLS" not in client.capabilities()
        client.login("reader@example.com", "pw")
        client.select_folder("INBOX")
        assert len(client.search("ALL")) == 1


def test_imaplib_imap4_ssl(tls_server: ServerThread) -> None:
    client = imaplib.IMAP4_SSL("localhost", tls_server.imaps_port, ssl_context=trusting(tls_server), timeout=10)
    client.login("*", "x")
    assert client.select("INBOX")[1] == [b"1"]
    client.logout()


def test_allow_insecure_auth_permits_login_before_tls() -> None:
    config = Config(http=None, imap=Listen("127.0.0.1", 0), tls=True, allow_insecure_auth=True)
    with ServerThread(config) as server:
        client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
        assert "STARTTLS" in client.capabilities and "LOGINDISABLED" not in client.capabilities
        client.login("reader@example.com", "pw")
        client.logout()


def test_starttls_without_a_certificate_is_refused() -> None:
    with ServerThread(Config(http=None, imap=Listen("127.0.0.1", 0))) as server:
        client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
        assert "STARTTLS" not in client.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="no TLS certificate"):
            client._simple_command("STARTTLS")
        client.logout()


def test_commands_pipelined_behind_starttls_are_dropped(tls_server: ServerThread) -> None:
    sock = socket.create_connection(("127.0.0.1", tls_server.imap_port), timeout=10)
    reader = sock.makefile("rb")
    reader.readline()
    sock.sendall(b"a STARTTLS\r\nb LOGIN injected pw\r\n")
    assert reader.readline().startswith(b"a OK")
    tls = trusting(tls_server).wrap_socket(sock, server_hostname="localhost")
    tls_reader = tls.makefile("rb")
    tls.sendall(b"c SELECT INBOX\r\n")  # had the LOGIN run inside TLS, this would succeed
    reply = tls_reader.readline()
    assert reply.startswith((b"c BAD", b"c NO")), reply
    tls.close()


def test_auth_file_checks_imap_logins(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("reader@example.com:right\n")
    with ServerThread(Config(http=None, imap=Listen("127.0.0.1", 0), auth_file=users)) as server:
        ok = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
        ok.login("reader@example.com", "right")
        ok.logout()
        bad = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            bad.login("reader@example.com", "wrong")
        bad.logout()
        with imapclient.IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=10) as plain:
            plain.plain_login("reader@example.com", "right")
