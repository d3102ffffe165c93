"""`Username` in message summaries, as Mailpit's MessageSummary has it: the SMTP AUTH user the message came with
("" when none), in /api/v1/messages, /api/v1/search and the message itself, on both backends. Real smtplib logins."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.pgcluster import postgres_server  # noqa: F401  (the throwaway PostgreSQL server)

MESSAGE = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: %s\r\n\r\nbody\r\n"


@pytest.fixture(params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerThread]:
    users = tmp_path / "users"
    users.write_text("alice:wonderland\n")
    db: Any = None
    if request.param == "postgres":
        db = request.getfixturevalue("postgres_server").create_database()
    with ServerThread(Config(auth_file=users, db=db)) as running:
        yield running


def send(server: ServerThread, subject: str, login: tuple[str, str] | None) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        if login:
            client.login(*login)
        client.sendmail("a@example.com", ["b@example.com"], MESSAGE % subject.encode())


def test_username_is_the_smtp_auth_user_in_summaries_and_messages(server: ServerThread) -> None:
    send(server, "with login", ("alice", "wonderland"))
    send(server, "anonymous", None)
    with httpx.Client(base_url=server.http_url, timeout=10) as api:
        listed = api.get("/api/v1/messages").json()["messages"]
        assert {m["Subject"]: m["Username"] for m in listed} == {"with login": "alice", "anonymous": ""}
        found = api.get("/api/v1/search", params={"query": "subject:login"}).json()["messages"]
        assert [(m["Subject"], m["Username"]) for m in found] == [("with login", "alice")]
        by_subject = {m["Subject"]: m["ID"] for m in listed}
        assert api.get(f"/api/v1/message/{by_subject['with login']}").json()["Username"] == "alice"
        assert api.get(f"/api/v1/message/{by_subject['anonymous']}").json()["Username"] == ""
