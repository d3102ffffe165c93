"""Declarative recipient rules (Mailpit's --smtp-allowed-recipients and --smtp-ignore-rejected-recipients), the
instance label in the greeting, and --max-message-size 0, with real smtplib and swaks clients."""

from __future__ import annotations

import smtplib
import subprocess

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.conftest import require_tool

ALLOWED = r"@(example\.com|test\.example)$"


def greeting(server: ServerThread) -> tuple[bytes, bytes]:
    """The 220 line's text and the first line of the EHLO answer."""
    with smtplib.SMTP(timeout=10) as client:
        code, text = client.connect("127.0.0.1", server.smtp_port)
        assert code == 220
        assert client.ehlo("label.test")[0] == 250
        return text, client.ehlo_resp.splitlines()[0] if client.ehlo_resp else b""


def subjects(api: httpx.Client) -> list[str]:
    return [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]]


def message(subject: str, size: int = 0) -> bytes:
    return f"Subject: {subject}\r\n\r\n".encode() + b"x" * size + b"\r\n"


@pytest.mark.parametrize("server_config", [Config(smtp_allowed_recipients=ALLOWED)])
def test_a_recipient_that_does_not_match_gets_550(server: ServerThread, api: httpx.Client) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as client:
        client.ehlo("rules.test")
        client.mail("app@example.com")
        assert client.rcpt("dev@example.com")[0] == 250
        code, text = client.rcpt("someone@elsewhere.org")
        assert code == 550 and b"5.1.0" in text, text
        assert client.rcpt("ops@test.example")[0] == 250
        assert client.data(message("mixed"))[0] == 250
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.sendmail("app@example.com", ["only@elsewhere.org"], message("refused"))
    assert subjects(api) == ["mixed"]
    stored = api.get("/api/v1/message/latest").json()
    assert [a["Address"] for a in stored["To"] + stored["Bcc"]] == ["dev@example.com", "ops@test.example"]


@pytest.mark.parametrize("server_config", [Config(smtp_allowed_recipients=ALLOWED,
                                                  smtp_ignore_rejected_recipients=True)])
def test_ignored_recipients_get_250_and_are_dropped(server: ServerThread, api: httpx.Client) -> None:
    """As Mailpit: a recipient that does not match gets 250 and is left out; a message with no other recipient
    gets 250 to DATA and is not stored."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as client:
        assert client.sendmail("app@example.com", ["dev@example.com", "x@elsewhere.org"], message("kept")) == {}
        assert client.sendmail("app@example.com", ["x@elsewhere.org"], message("dropped")) == {}
        client.mail("app@example.com")
        assert client.rcpt("y@elsewhere.org")[0] == 250
        assert client.data(message("dropped too"))[0] == 250
    assert subjects(api) == ["kept"]
    stored = api.get("/api/v1/message/latest").json()
    assert [a["Address"] for a in stored["To"] + stored["Bcc"]] == ["dev@example.com"]


@pytest.mark.parametrize("server_config", [Config(smtp_allowed_recipients=ALLOWED)])
def test_swaks_sees_the_refusal(server: ServerThread, api: httpx.Client) -> None:
    swaks = require_tool("swaks")
    result = subprocess.run([swaks, "--server", f"127.0.0.1:{server.smtp_port}", "--from", "a@example.com",
                             "--to", "nobody@elsewhere.org", "--helo", "swaks.test"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "<** 550 5.1.0" in result.stdout, result.stdout
    assert subjects(api) == []


@pytest.mark.parametrize("server_config", [Config(label="Team A staging")])
def test_the_label_is_in_the_greeting(server: ServerThread) -> None:
    # As Mailpit's "220 host Mailpit (label) ESMTP": the greeting names the instance; EHLO names the host.
    assert greeting(server) == (b"mailnest mailnest (Team A staging) ESMTP", b"mailnest")


def test_without_a_label_the_greeting_is_unchanged(server: ServerThread) -> None:
    assert greeting(server) == (b"mailnest mailnest ESMTP", b"mailnest")


@pytest.mark.parametrize("server_config", [Config(max_message_size=0)])
def test_max_message_size_0_is_unlimited(server: ServerThread, api: httpx.Client) -> None:
    """0 means no limit, as in Mailpit: no SIZE limit is advertised and a message over the 50 MiB default (and
    over 32 MiB, aiosmtpd's own default) is stored."""
    assert server.config.max_message_size > 1 << 40
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as client:
        client.ehlo("big.test")
        assert not client.esmtp_features.get("size"), client.esmtp_features
        big = message("big", 51 * 1024 * 1024)
        assert client.sendmail("a@example.com", ["b@example.com"], big) == {}
    stored = api.get("/api/v1/message/latest").json()
    assert stored["Subject"] == "big" and stored["Size"] >= 51 * 1024 * 1024
