"""Prometheus metrics at /metrics (issue 15 item 4), read with prometheus-client's own text parser from a real
`mailnest serve`-like server: what SMTP, IMAP, POP3, the API, retention and the store did shows in the counts."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
import socket
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailnest import Config, Listen, ServerThread
from tests.conftest import http_site


@pytest.fixture
def server() -> Iterator[ServerThread]:
    config = Config(imap=Listen("127.0.0.1", 0), pop3=Listen("127.0.0.1", 0), max_messages=3,
                    smtp_allowed_recipients="@example\\.com$", max_message_size=10_000,
                    max_connections_per_client=4)
    with ServerThread(config) as running:
        yield running


def scrape(server: ServerThread) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = httpx.get(f"{server.http_url}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")  # the exposition format
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def send(server: ServerThread, subject: str, to: str = "dev@example.com", body: str = "hi") -> None:
    with smtplib.SMTP(server.smtp_host, server.smtp_port) as client:
        client.sendmail("app@example.com", [to], f"Subject: {subject}\r\n\r\n{body}\r\n")


def test_what_happened_shows_in_the_counts(server: ServerThread) -> None:
    before = scrape(server)
    assert value(before, "mailnest_messages_stored_total") == 0
    for number in range(5):  # two more than --max-messages: two are pruned
        send(server, f"m{number}")
    with pytest.raises(smtplib.SMTPRecipientsRefused), smtplib.SMTP(server.smtp_host, server.smtp_port) as client:
        client.sendmail("app@example.com", ["x@elsewhere.test"], "Subject: refused\r\n\r\nx\r\n")
    big = "Subject: big\r\n\r\n" + "x" * 20_000 + "\r\n"
    with pytest.raises(smtplib.SMTPSenderRefused), smtplib.SMTP(server.smtp_host, server.smtp_port) as client:
        client.sendmail("app@example.com", ["dev@example.com"], big)  # SIZE= says it: refused at MAIL
    with smtplib.SMTP(server.smtp_host, server.smtp_port) as client:  # no SIZE=: refused after DATA
        client.ehlo()
        client.mail("app@example.com")
        client.rcpt("dev@example.com")
        assert client.data(big)[0] == 552
    with imaplib.IMAP4("127.0.0.1", server.imap_port) as imap:
        imap.login("*", "x")
    pop = poplib.POP3("127.0.0.1", server.pop3_port)
    pop.user("*")
    pop.pass_("x")
    pop.quit()
    messages = httpx.get(f"{server.http_url}/api/v1/messages").json()["messages"]
    httpx.request("DELETE", f"{server.http_url}/api/v1/messages", json={"IDs": [messages[0]["ID"]]})
    httpx.get(f"{server.http_url}/api/v1/message/{messages[1]['ID']}")

    deadline = time.monotonic() + 10
    while True:  # retention runs just after the commit
        samples = scrape(server)
        if value(samples, "mailnest_messages_deleted_total", reason="retention") >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert value(samples, "mailnest_messages_stored_total") == 5
    assert value(samples, "mailnest_message_bytes_stored_total") == 5 * len("Subject: m0\r\n\r\nhi\r\n")
    assert value(samples, "mailnest_messages_deleted_total", reason="retention") == 2
    assert value(samples, "mailnest_messages_deleted_total", reason="request") == 1
    assert value(samples, "mailnest_store_messages") == 2
    assert value(samples, "mailnest_store_unread_messages") == 1
    assert value(samples, "mailnest_smtp_refused_total", code="550") == 1  # the recipient off the allow-list
    assert value(samples, "mailnest_smtp_refused_total", code="552") == 2  # too big, at MAIL and after DATA
    assert value(samples, "mailnest_smtp_rejected_messages_total") == 1
    assert value(samples, "mailnest_connections_total", protocol="smtp") == 8
    assert value(samples, "mailnest_connections_total", protocol="imap") == 1
    assert value(samples, "mailnest_connections_total", protocol="pop3") == 1
    assert value(samples, "mailnest_connections_open", protocol="smtp") == 0
    # Routes by template, never by ID; the scrape itself is counted too.
    assert value(samples, "mailnest_http_requests_total", method="GET", route="/api/v1/message/{id}",
                 status="200") == 1
    assert value(samples, "mailnest_http_requests_total", method="DELETE", route="/api/v1/messages",
                 status="200") == 1
    assert value(samples, "mailnest_http_request_duration_seconds_count", method="GET",
                 route="/api/v1/messages") == 1
    assert not [key for key in samples if any(m["ID"] in str(key) for m in messages)]
    # Mailpit's figure in /api/v1/info is the same count.
    assert httpx.get(f"{server.http_url}/api/v1/info").json()["RuntimeStats"]["SMTPRejected"] == 1


def test_connections_over_the_cap_and_unknown_paths(server: ServerThread) -> None:
    held = [socket.create_connection((server.smtp_host, server.smtp_port)) for _ in range(4)]
    try:
        for sock in held:
            sock.recv(512)  # the greeting: admitted
        with socket.create_connection((server.smtp_host, server.smtp_port)) as extra:
            assert extra.recv(512).startswith(b"421")
        samples = scrape(server)
        assert value(samples, "mailnest_connections_open", protocol="smtp") == 4
        assert value(samples, "mailnest_connections_refused_total", protocol="smtp") == 1
    finally:
        for sock in held:
            sock.close()
    for path in ("/no/such/path/1", "/no/such/path/2"):
        assert httpx.get(f"{server.http_url}{path}").status_code == 404
    samples = scrape(server)
    assert value(samples, "mailnest_http_requests_total", method="GET", route="unmatched", status="404") == 2


def test_webhook_and_relay_outcomes() -> None:
    """Webhook POSTs and relayed recipients by outcome, from a real upstream mailnest and a real HTTP receiver."""
    received: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    with http_site(Hook) as hooks, ServerThread(Config()) as upstream:
        config = Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("*@relayed.test",),
                        webhooks=(f"{hooks}/hook",))
        with ServerThread(config) as server:
            send(server, "out", to="dev@relayed.test")
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                samples = scrape(server)
                if (value(samples, "mailnest_relay_recipients_total", outcome="sent") == 1
                        and value(samples, "mailnest_webhook_deliveries_total", outcome="delivered") == 1):
                    break
                time.sleep(0.05)
            assert value(samples, "mailnest_relay_recipients_total", outcome="sent") == 1
            assert value(samples, "mailnest_relay_recipients_total", outcome="failed") == 0
            assert value(samples, "mailnest_webhook_deliveries_total", outcome="delivered") == 1
            assert len(received) == 1


def test_a_made_up_method_cannot_make_new_series(server: ServerThread) -> None:
    """A review found it: the method label took whatever token a client sent, so each one made new series."""
    port = int(server.http_url.rsplit(":", 1)[1])
    for method in ("M0X", "M1X", "BREW"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            raw.sendall(f"{method} /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            while raw.recv(4096):
                pass
    samples = scrape(server)
    methods = {dict(labels).get("method") for name, labels in samples if name == "mailnest_http_requests_total"}
    assert "M0X" not in methods and "BREW" not in methods
    assert sum(v for (name, labels), v in samples.items() if name == "mailnest_http_requests_total"
               and dict(labels).get("method") == "other") == 3
