"""--ignore-duplicate-ids and --use-message-dates end to end, on both backends: messages sent with smtplib, read
back over HTTP with httpx, as a Mailpit user would."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.pgcluster import postgres_server  # noqa: F401  (the throwaway PostgreSQL server)

Start = Callable[..., ServerThread]


@pytest.fixture(params=["sqlite", "postgres"])
def start(request: pytest.FixtureRequest) -> Iterator[Start]:
    started: list[ServerThread] = []

    def run(**options: Any) -> ServerThread:
        db = request.getfixturevalue("postgres_server").create_database() if request.param == "postgres" else None
        server = ServerThread(Config(db=db, **options))
        server.__enter__()
        started.append(server)
        return server

    yield run
    for server in started:
        server.__exit__(None, None, None)


def raw(subject: str, *, message_id: str | None = None, date: str | None = None) -> bytes:
    lines = ["From: a@example.com", "To: b@example.com", f"Subject: {subject}"]
    lines += [f"Message-ID: <{message_id}>"] if message_id else []
    lines += [f"Date: {date}"] if date else []
    return ("\r\n".join(lines) + "\r\n\r\nbody\r\n").encode()


def data_reply(server: ServerThread, message: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.ehlo()
        client.mail("a@example.com")
        client.rcpt("b@example.com")
        return client.data(message)


def messages(server: ServerThread, query: str = "") -> list[dict[str, Any]]:
    path, params = ("/api/v1/search", {"query": query}) if query else ("/api/v1/messages", {})
    response = httpx.get(server.http_url + path, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["messages"])


def test_a_duplicate_message_id_is_answered_250_and_not_stored(start: Start, caplog: pytest.LogCaptureFixture
                                                               ) -> None:
    server = start(ignore_duplicate_ids=True)
    with caplog.at_level(logging.INFO):
        assert data_reply(server, raw("first", message_id="dup@example.com"))[0] == 250
        code, text = data_reply(server, raw("second", message_id="dup@example.com"))
    assert code == 250 and b"duplicate" in text, text
    assert data_reply(server, raw("no id 1"))[0] == 250 and data_reply(server, raw("no id 2"))[0] == 250
    assert sorted(m["Subject"] for m in messages(server)) == ["first", "no id 1", "no id 2"]
    assert any("dup@example.com" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    assert server.store.duplicates_ignored == 1
    stats = httpx.get(server.http_url + "/api/v1/info", timeout=10).json()["RuntimeStats"]
    assert stats["SMTPIgnored"] == 1 and stats["SMTPAccepted"] == 3  # Mailpit's counts
    # The send API writes a new Message-ID into each message it builds: two identical requests are two messages.
    for _ in range(2):
        sent = httpx.post(server.http_url + "/api/v1/send", timeout=10, json={
            "From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": "via api"})
        assert sent.status_code == 200, sent.text
    assert len(messages(server, 'subject:"via api"')) == 2


def test_message_dates_order_the_list_and_are_created_and_searched(start: Start) -> None:
    server = start(use_message_dates=True)
    for subject, date in (("in 2020", "Wed, 01 Jan 2020 10:00:00 +0000"), ("in 2010", "Fri, 01 Jan 2010 12:00:00 "
                          "+0200"), ("undated", None), ("garbled", "Someday soon")):
        assert data_reply(server, raw(subject, date=date))[0] == 250
    listed = messages(server)
    assert [m["Subject"] for m in listed][2:] == ["in 2020", "in 2010"]
    assert {m["Subject"] for m in listed[:2]} == {"undated", "garbled"}  # fall back to arrival: now
    created = {m["Subject"]: m["Created"] for m in listed}
    assert created["in 2010"] == "2010-01-01T10:00:00.000Z" and created["in 2020"] == "2020-01-01T10:00:00.000Z"
    assert created["undated"] > "2025"
    assert [m["Subject"] for m in messages(server, "before:2015-01-01")] == ["in 2010"]
    assert "in 2010" not in {m["Subject"] for m in messages(server, "after:2015-01-01")}
    one = httpx.get(f"{server.http_url}/api/v1/message/{listed[-1]['ID']}", timeout=10).json()
    assert one["Created"] == one["Date"] == "2010-01-01T10:00:00.000Z"
    assert one["Envelope"]["Received"] > "2025"  # the arrival time is kept in the envelope
