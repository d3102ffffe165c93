"""Mailboxes on demand, end to end: real HTTP (httpx) to a real server, real SMTP (smtplib), on both backends.
`POST /api/v1/mailboxes` makes a random domain with its own retention and webhook; GET shows it, DELETE removes
it and its mail; bad bodies are 400s that say what to change; the server's retention job applies each space's
limits; its webhook gets each message for the domain once (also with two nodes on one PostgreSQL), with the body
`--webhook` posts. Also `Latest` in `GET /api/v1/mailboxes`."""

from __future__ import annotations

import asyncio
import json
import smtplib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.client import AsyncClient, Client, MailnestError, NotFoundError
from tests.pgcluster import postgres_server  # noqa: F401  (the throwaway PostgreSQL server)

DEADLINE = 60.0  # seconds a test waits for the retention job (it runs every 5 s) or a webhook


@dataclass
class Receiver:
    """A real HTTP server recording each webhook POST's JSON body."""

    url: str = ""
    bodies: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.bodies) >= count:
                    return list(self.bodies)
            time.sleep(0.05)
        raise AssertionError(f"only {len(self.bodies)} of {count} webhook posts arrived")


def receiving() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                state.bodies.append(body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


receiver = pytest.fixture(receiving)
global_receiver = pytest.fixture(receiving)


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_server").create_database())
    return tmp_path / "mail.db"


@pytest.fixture
def server(database: Path | str) -> Iterator[ServerThread]:
    with ServerThread(Config(db=database)) as running:
        yield running


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        yield client


def send(server: ServerThread, rcpts: list[str], subject: str, *, to_header: str = "") -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.sendmail("app@example.com", rcpts,
                        f"From: app@example.com\r\nTo: {to_header or ', '.join(rcpts)}\r\nSubject: {subject}\r\n"
                        f"\r\nbody of {subject}\r\n".encode())


def subjects(api: httpx.Client, **params: str) -> list[str]:
    return sorted(m["Subject"] for m in api.get("/api/v1/messages", params={"limit": "1000", **params})
                  .json()["messages"])


def eventually(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {DEADLINE:g} s: {what}")
        time.sleep(0.25)


def test_a_mailbox_is_made_shown_and_deleted_with_its_mail(server: ServerThread, api: httpx.Client) -> None:
    before = time.time()
    made = api.post("/api/v1/mailboxes", json={"Label": "Signup", "MaxMessages": 50})
    assert made.status_code == 201, made.text
    box = made.json()
    domain = box["Domain"]
    assert domain.startswith("signup-") and domain.endswith(".mailnest.test")
    assert made.headers["location"] == f"/api/v1/mailboxes/{domain}"
    assert box["Address"] == f"user@{domain}" and box["Mailbox"] == f"@{domain}"
    assert box["Query"] == f"mailbox:@{domain}"
    assert (box["MaxMessages"], box["MaxAge"], box["Webhook"], box["Total"]) == (50, 86400, None, 0)
    assert before - 2 <= datetime.fromisoformat(box["Created"].replace("Z", "+00:00")).timestamp() <= time.time() + 2
    other = api.post("/api/v1/mailboxes").json()["Domain"]  # no body at all: every default
    assert other != domain

    send(server, [f"alice@{domain}"], "to alice")
    send(server, [f"Bob@{domain.upper()}", "carol@example.com"], "to bob and carol")
    send(server, [f"dave@{other}"], "to the other space")
    send(server, ["erin@example.com"], "to erin", to_header=f"alice@{domain}")  # named, not sent to it

    shown = api.get(f"/api/v1/mailboxes/{domain.upper()}").json()
    assert (shown["Domain"], shown["Total"], shown["Unread"], shown["MaxMessages"]) == (domain, 2, 2, 50)
    assert subjects(api, mailbox=box["Mailbox"]) == ["to alice", "to bob and carol"]
    found = api.get("/api/v1/search", params={"query": box["Query"]}).json()["messages"]
    assert sorted(m["Subject"] for m in found) == ["to alice", "to bob and carol"]

    gone = api.delete(f"/api/v1/mailboxes/{domain}")
    assert gone.status_code == 200 and gone.json() == {"Domain": domain, "Deleted": 2}
    assert subjects(api) == ["to erin", "to the other space"]
    missing = api.get(f"/api/v1/mailboxes/{domain}")
    assert missing.status_code == 404 and "POST /api/v1/mailboxes" in missing.json()["Error"]
    assert api.delete(f"/api/v1/mailboxes/{domain}").status_code == 404
    assert api.get("/api/v1/mailboxes/not a domain").status_code == 404
    assert api.get(f"/api/v1/mailboxes/{other}").json()["Total"] == 1


@pytest.mark.parametrize(("body", "says"), [
    (b"{not json", "not valid JSON"),
    (b"[1, 2]", "expected a JSON object"),
    (b'{"MaxAg": 60}', "unknown field 'MaxAg'"),
    (b'{"MaxMessages": -1}', "MaxMessages must be 0 (no limit) or more"),
    (b'{"MaxMessages": "10"}', "MaxMessages must be a whole number"),
    (b'{"MaxMessages": 1.5}', "MaxMessages must be a whole number"),
    (b'{"MaxMessages": true}', "MaxMessages must be a whole number"),
    (b'{"MaxMessages": 10000000000}', "MaxMessages must be at most"),
    (b'{"MaxAge": -5}', "MaxAge must be 0 (no limit) or more"),
    (b'{"MaxAge": NaN}', "MaxAge must be 0 (no limit) or more"),
    (b'{"MaxAge": "1h"}', "MaxAge must be a number of seconds"),
    (b'{"Webhook": "ftp://example.com/x"}', "expected an http:// or https:// URL"),
    (b'{"Webhook": "http://"}', "expected an http:// or https:// URL"),
    (b'{"Webhook": 5}', "Webhook must be an http:// or https:// URL"),
    (b'{"Webhook": "http://ci:secret@127.0.0.1:9000/hook"}', "a user name or password in the URL"),
    (b'{"Label": "-bad-"}', "Label must be up to 40 letters"),
    (b'{"Label": "a.b"}', "Label must be up to 40 letters"),
])
def test_a_bad_body_is_a_400_that_says_what_to_change(tmp_path: Path, body: bytes, says: str) -> None:
    with ServerThread(Config(db=tmp_path / "mail.db")) as server, httpx.Client(base_url=server.http_url) as api:
        answer = api.post("/api/v1/mailboxes", content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400, answer.text
        assert says in answer.json()["Error"]
        assert api.get("/api/v1/mailboxes").json() == []


def test_the_server_applies_each_mailboxs_retention(server: ServerThread, api: httpx.Client) -> None:
    few = api.post("/api/v1/mailboxes", json={"MaxMessages": 2, "MaxAge": 0}).json()
    brief = api.post("/api/v1/mailboxes", json={"MaxAge": 1}).json()
    lasting = api.post("/api/v1/mailboxes", json={"MaxAge": None}).json()
    for i in range(4):
        send(server, [f"u@{few['Domain']}"], f"few {i}")
    send(server, [f"u@{brief['Domain']}"], "brief")
    send(server, [f"u@{lasting['Domain']}"], "lasting")
    send(server, ["outsider@example.com"], "outsider")
    eventually(lambda: subjects(api, mailbox=few["Mailbox"]) == ["few 2", "few 3"], "the newest 2 kept")
    eventually(lambda: subjects(api, mailbox=brief["Mailbox"]) == [], "mail past MaxAge gone")
    # Past its age with no mail left, the brief space goes too; the others stay.
    eventually(lambda: api.get(f"/api/v1/mailboxes/{brief['Domain']}").status_code == 404, "the brief space gone")
    assert api.get(f"/api/v1/mailboxes/{few['Domain']}").json()["Total"] == 2
    assert subjects(api) == ["few 2", "few 3", "lasting", "outsider"]


@pytest.fixture
def nodes(database: Path | str, global_receiver: Receiver) -> Iterator[list[ServerThread]]:
    """One node on SQLite; two on one PostgreSQL database. Each also has a --webhook, to compare bodies with."""
    config = Config(db=database, webhooks=(global_receiver.url,))
    with ServerThread(config) as first:
        if isinstance(database, Path):
            yield [first]
            return
        with ServerThread(config) as second:
            yield [first, second]


def test_a_mailboxs_webhook_gets_each_of_its_messages_once(nodes: list[ServerThread], receiver: Receiver,
                                                           global_receiver: Receiver) -> None:
    made_on, sent_to = nodes[0], nodes[-1]  # with two nodes: made on one, mail sent to the other
    with httpx.Client(base_url=made_on.http_url, timeout=30) as api:
        hooked = api.post("/api/v1/mailboxes", json={"Webhook": receiver.url}).json()
        plain = api.post("/api/v1/mailboxes").json()
        assert hooked["Webhook"] == receiver.url
        send(sent_to, [f"a@{hooked['Domain']}"], "one")
        send(sent_to, [f"b@{hooked['Domain']}", f"c@{hooked['Domain']}", "d@example.com"], "two")
        send(sent_to, [f"e@{plain['Domain']}"], "not hooked")
        send(sent_to, ["f@example.com"], "only named", to_header=f"a@{hooked['Domain']}")
        send(sent_to, [f"g@{hooked['Domain']}"], "three")
        posted = receiver.wait_for(3)
        every = global_receiver.wait_for(5)
        time.sleep(3)  # a second post of any of them (another node, a retry) would have come by now
    assert sorted(b["Subject"] for b in receiver.bodies) == ["one", "three", "two"]
    by_subject = {b["Subject"]: b for b in every}
    for body in posted:
        assert body == by_subject[body["Subject"]]  # what --webhook posts for the same message


def test_mailboxes_tell_when_their_newest_message_came(server: ServerThread, api: httpx.Client) -> None:
    send(server, ["a@example.com"], "first")
    time.sleep(0.05)
    send(server, ["a@example.com", "b@example.com"], "second")
    boxes = {b["Address"]: b for b in api.get("/api/v1/mailboxes").json()}
    newest = {m["Subject"]: m["Created"] for m in api.get("/api/v1/messages").json()["messages"]}
    assert boxes["a@example.com"]["Latest"] == newest["second"]
    assert boxes["b@example.com"]["Latest"] == newest["second"]
    assert (boxes["a@example.com"]["Total"], boxes["b@example.com"]["Total"]) == (2, 1)


def test_the_clients_make_show_and_delete_mailboxes(server: ServerThread) -> None:
    with Client(server.http_url) as client:
        box = client.create_mailbox(label="client", max_messages=3)
        assert box.domain.startswith("client-") and (box.max_messages, box.max_age) == (3, 86400.0)
        send(server, [box.address("alice")], "for the client")
        [mail] = client.wait_for(mailbox=box.mailbox)
        assert mail.subject == "for the client" and client.mailbox(box.domain).total == 1
        with pytest.raises(MailnestError, match="MaxAge must be 0"):
            client.create_mailbox(max_age=-1)

        async def use_async() -> tuple[int, int]:
            async with AsyncClient(server.http_url) as aclient:
                other = await aclient.create_mailbox(webhook="http://127.0.0.1:9/hook")
                shown = await aclient.mailbox(other)
                assert shown.webhook == "http://127.0.0.1:9/hook"
                return await aclient.delete_mailbox(box), await aclient.delete_mailbox(other.domain)

        assert asyncio.run(use_async()) == (1, 0)
        with pytest.raises(NotFoundError):
            client.mailbox(box)
        assert client.messages().total == 0
