"""Tenants on one PostgreSQL (issue 13, item 5): `mailnest serve --tenant NAME` nodes share a database without
seeing each other's mail through any front door, while every node of the same tenant sees all of it.

One database and four real `mailnest serve` processes for the whole module: a1 and a2 of tenant `team_a`, b of
`team_b`, d of none (the default schema). Each test sends mail of its own (unique subjects and mailboxes), so the
tests do not depend on each other or on their order. Every "the other tenant gets nothing" check is paired with a
positive one (another node of the sender's tenant gets it, or the other tenant gets its own mail first), so none
of them passes merely because nothing arrived anywhere.

The tests under "tenant names" and the last one each found a bug when written (see their docstrings): the tenant
name `mailnest` read the default schema, reserved schema names passed the check, a 63-character name (then
allowed) made every write fail on the NOTIFY channel name, and first nodes of several tenants on a new database
raced on CREATE EXTENSION. Names are now checked (1-54 characters, none reserved) and migrations take a
database-wide lock.
"""

from __future__ import annotations

import contextlib
import imaplib
import itertools
import json
import poplib
import queue
import smtplib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from websockets.sync.client import ClientConnection, connect

from mailnest.store.postgres import schema

from .nodes import MAILNEST, Node, wait_until

TEAM_A, TEAM_B = "team_a", "team_b"
_serial = itertools.count(1)


def unique(prefix: str) -> str:
    """A word no other test (or earlier run on the same database) uses."""
    return f"{prefix}{next(_serial)}x{uuid.uuid4().hex[:8]}"


class Hooks:
    """A webhook receiver: records the JSON body of every POST."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"

    def ids(self) -> list[str]:
        return [str(post["ID"]) for post in list(self.received)]

    def has(self, message_id: str) -> Callable[[], bool]:
        return lambda: message_id in self.ids()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Cluster:
    db: str
    workdir: Path
    a1: Node  # team_a, posts to hooks["a"]
    a2: Node  # team_a, posts to hooks["a"] too
    b: Node  # team_b, posts to hooks["b"]
    d: Node  # no tenant: the default schema, posts to hooks["d"]
    hooks: dict[str, Hooks] = field(default_factory=dict)
    extra: list[Node] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Node:
        """One more node on the module's database, stopped with the others."""
        node = Node.start(name, self.db, self.workdir / unique(name), *args)
        self.extra.append(node)
        return node


@pytest.fixture(scope="module")
def cluster(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    db = str(postgres_server.create_database())
    workdir = tmp_path_factory.mktemp("tenants")
    hooks = {name: Hooks() for name in ("a", "b", "d")}
    pop3 = ("--pop3", "127.0.0.1:0")
    started: list[Node] = []
    cluster = None
    try:
        for name, args in (("a1", ("--tenant", TEAM_A, *pop3, "--webhook", hooks["a"].url)),
                           ("a2", ("--tenant", TEAM_A, *pop3, "--webhook", hooks["a"].url)),
                           ("b", ("--tenant", TEAM_B, *pop3, "--webhook", hooks["b"].url)),
                           ("d", (*pop3, "--webhook", hooks["d"].url))):
            started.append(Node.start(name, db, workdir / name, *args))
        a1, a2, b, d = started
        cluster = Cluster(db, workdir, a1, a2, b, d, hooks=hooks)
        yield cluster
    finally:
        nodes = [*started, *(cluster.extra if cluster else [])]
        for node in nodes:  # all at once: each takes a moment to finish
            if node.proc.poll() is None:
                node.proc.terminate()
        for node in nodes:
            node.stop()
        for receiver in hooks.values():
            receiver.close()
    for node in started:
        assert "Traceback" not in node.output(), f"{node.name}:\n{node.output()}"


# -- helpers over the front doors -------------------------------------------------------------------------

def with_attachment(subject: str, to: str, secret: str) -> str:
    return (f"From: app@example.com\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\nContent-Type: text/plain\r\n\r\n"
            f"the body of {subject}\r\n--b1\r\nContent-Type: text/plain\r\n"
            f"Content-Disposition: attachment; filename={secret}.txt\r\n\r\n{secret}\r\n--b1--\r\n")


def get(node: Node, path: str, **params: Any) -> httpx.Response:
    with node.api() as api:
        return api.get(path, params=params)


def found(node: Node, query: str) -> list[str]:
    """The ids /api/v1/search finds for `query`."""
    response = get(node, "/api/v1/search", query=query, limit=200)
    assert response.status_code == 200, response.text
    return [m["ID"] for m in response.json()["messages"]]


def listed(node: Node) -> list[str]:
    response = get(node, "/api/v1/messages", limit=1000)
    assert response.status_code == 200, response.text
    return [m["ID"] for m in response.json()["messages"]]


def summary(node: Node, subject: str) -> dict[str, Any]:
    """The one message of this subject, as listed (GET /api/v1/message/ID would mark it read, as Mailpit does)."""
    response = get(node, "/api/v1/search", query=subject_query(subject))
    assert response.status_code == 200 and response.json()["messages_count"] == 1, response.text
    return dict(response.json()["messages"][0])


def total(node: Node) -> int:
    return int(get(node, "/api/v1/messages", limit=1).json()["total"])


def subject_query(subject: str) -> str:
    return f'subject:"{subject}"'


def frames_of(text: str | bytes) -> list[dict[str, Any]]:
    """Mailpit's events: one JSON object per line of a websocket message or SSE data field."""
    if isinstance(text, bytes):
        text = text.decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


class Events:
    """The frames of one live stream (Mailpit websocket, MailHog websocket or SSE), read by a thread."""

    def __init__(self, node: Node, kind: str) -> None:
        self.node, self.kind = node, kind
        self.frames: queue.Queue[dict[str, Any]] = queue.Queue()
        self._ws: ClientConnection | None = None
        self._http: httpx.Client | None = None
        self._open = contextlib.ExitStack()
        if kind == "sse":
            self._http = httpx.Client(base_url=node.url, timeout=httpx.Timeout(10, read=None))
            threading.Thread(target=self._read_sse, daemon=True).start()
        else:
            path = "/api/events" if kind == "ws" else "/api/v2/websocket"
            self._ws = self._open.enter_context(
                connect(f"ws://127.0.0.1:{node.ports['http']}{path}", open_timeout=10))
            threading.Thread(target=self._read_ws, daemon=True).start()

    def _read_ws(self) -> None:
        assert self._ws is not None
        with contextlib.suppress(Exception):
            for message in self._ws:
                for frame in frames_of(message) if self.kind == "ws" else [json.loads(message)]:
                    self.frames.put(frame)

    def _read_sse(self) -> None:
        assert self._http is not None
        with contextlib.suppress(Exception), self._http.stream("GET", "/api/v1/events") as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    for frame in frames_of(line[5:]):
                        self.frames.put(frame)

    def next(self, timeout: float = 15) -> dict[str, Any]:
        try:
            return self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.kind} of {self.node.name}: nothing within {timeout} s") from None

    def until(self, done: Callable[[dict[str, Any]], bool], timeout: float = 15) -> list[dict[str, Any]]:
        """Every frame up to and including the first `done` accepts."""
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while not seen or not done(seen[-1]):
            seen.append(self.next(max(0.1, deadline - time.monotonic())))
        return seen

    def close(self) -> None:
        self._open.close()
        if self._http is not None:
            self._http.close()


def new_id(frame: dict[str, Any], kind: str) -> str | None:
    """The id of the message a `new` frame announces (MailHog's websocket sends only new messages)."""
    if kind == "mailhog":
        return str(frame.get("ID"))
    return str(frame["Data"]["ID"]) if frame.get("Type") == "new" else None


def announcing(kind: str, message_id: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """Accepts the frame announcing `message_id` (or any new message)."""
    if message_id is None:
        return lambda frame: new_id(frame, kind) is not None
    return lambda frame: new_id(frame, kind) == message_id


def imap_login(node: Node, user: str) -> imaplib.IMAP4:
    imap = imaplib.IMAP4("127.0.0.1", node.ports["imap"], timeout=15)
    imap.login(user, "x")
    return imap


@contextlib.contextmanager
def logged_in(node: Node, user: str) -> Iterator[imaplib.IMAP4]:
    imap = imap_login(node, user)
    try:
        yield imap
    finally:
        with contextlib.suppress(Exception):
            imap.logout()


def folder_list(imap: imaplib.IMAP4) -> bytes:
    status, data = imap.list()
    assert status == "OK", data
    return b"\n".join(line for line in data if isinstance(line, bytes))


def selected(imap: imaplib.IMAP4, folder: str = "INBOX") -> int:
    status, data = imap.select(folder)
    assert status == "OK", data
    return int(data[0] or 0)


def uid_search(imap: imaplib.IMAP4, *criteria: str) -> list[int]:
    status, data = imap.uid("SEARCH", *criteria)
    assert status == "OK", data
    return [int(u) for u in (data[0] or b"").split()]


def until_tagged(imap: imaplib.IMAP4, tag: bytes) -> list[bytes]:
    """The untagged answers before the tagged OK of `tag` (read off the socket, as during IDLE)."""
    lines: list[bytes] = []
    while True:
        line = imap.readline()
        assert line, f"connection closed after {lines}"
        if line.startswith(tag + b" "):
            assert line.startswith(tag + b" OK"), line
            return lines
        lines.append(line)


def fetched_bytes(imap: imaplib.IMAP4, uids: str) -> bytes:
    status, data = imap.uid("FETCH", uids, "(BODY.PEEK[])")
    assert status == "OK", data
    return b"".join(part[1] if isinstance(part, tuple) else (part or b"") for part in data)


# -- HTTP API ------------------------------------------------------------------------------------------

def test_lists_and_searches_of_another_tenant_find_nothing(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    for sender, same, others in ((a1, a2, (b, d)), (b, b, (a2, d)), (d, d, (a1, b))):
        subject = unique("listed")
        sent = sender.send(subject, to=f"{unique('box')}@example.com")
        assert found(same, subject_query(subject)) == [sent] and sent in listed(same)
        with same.api() as api:
            assert sent in [m["ID"] for m in api.get("/api/v2/messages", params={"limit": 250}).json()["items"]]
            assert api.get("/api/v2/search", params={"kind": "containing", "query": subject}).json()["total"] == 1
        for other in others:
            assert found(other, subject_query(subject)) == [], (sender.name, other.name)
            assert found(other, subject) == [], (sender.name, other.name)  # a plain text term too
            assert sent not in listed(other), (sender.name, other.name)
            with other.api() as api:
                items = api.get("/api/v2/messages", params={"limit": 250}).json()["items"]
                assert sent not in [m["ID"] for m in items], (sender.name, other.name)
                mailhog = api.get("/api/v2/search", params={"kind": "containing", "query": subject}).json()
                assert mailhog["total"] == 0 and mailhog["items"] == [], (sender.name, other.name, mailhog)


def test_a_message_id_of_another_tenant_is_not_found(cluster: Cluster) -> None:
    subject, secret = unique("by id"), unique("secret")
    sent = cluster.a1.send_raw(with_attachment(subject, "byid@example.com", secret), "byid@example.com")
    message = get(cluster.a2, f"/api/v1/message/{sent}").json()
    part = message["Attachments"][0]["PartID"]
    paths = [f"/api/v1/message/{sent}", f"/api/v1/message/{sent}/raw", f"/api/v1/message/{sent}/headers",
             f"/api/v1/message/{sent}/part/{part}", f"/api/v1/message/{sent}/link-check", f"/view/{sent}.txt",
             f"/view/{sent}.json", f"/api/v1/messages/{sent}", f"/api/v1/messages/{sent}/download"]
    for path in paths:
        response = get(cluster.a2, path)
        assert response.status_code == 200, (path, response.text)
    assert secret.encode() in get(cluster.a2, f"/api/v1/message/{sent}/raw").content
    for other in (cluster.b, cluster.d):
        for path in paths:
            response = get(other, path)
            assert response.status_code == 404, (other.name, path, response.status_code, response.text)
            assert secret.encode() not in response.content and subject.encode() not in response.content


def test_wait_on_another_tenant_times_out_while_the_tenant_gets_it_at_once(cluster: Cluster) -> None:
    subject = unique("waited")
    results: dict[str, httpx.Response] = {}

    def wait_on(node: Node, seconds: float) -> None:
        with node.api(timeout=seconds + 20) as api:
            results[node.name] = api.get("/api/v1/wait", params={"query": subject_query(subject),
                                                                 "timeout": seconds})

    # b and d wait through the arrival (they must not be woken by it); a2 waits for it to arrive.
    waiters = [threading.Thread(target=wait_on, args=(node, seconds))
               for node, seconds in ((cluster.a2, 20), (cluster.b, 3), (cluster.d, 3))]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.3)  # the waiters are registered
    sent = cluster.a1.send(subject)
    for waiter in waiters:
        waiter.join(40)
    assert results["a2"].status_code == 200, results["a2"].text
    assert [m["ID"] for m in results["a2"].json()["messages"]] == [sent]
    for name in ("b", "d"):
        assert results[name].status_code == 408, (name, results[name].text)
        assert results[name].json()["Arrived"] == 0


def test_mailboxes_and_counts_are_per_tenant(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    mailbox = f"{unique('counted')}@example.com"
    before = {node.name: get(node, "/api/v1/info").json() for node in (a2, b, d)}
    for _ in range(3):
        a1.send(unique("counted"), to=mailbox)
    after = {node.name: get(node, "/api/v1/info").json() for node in (a2, b, d)}
    assert after["a2"]["Messages"] == before["a2"]["Messages"] + 3, (before, after)
    assert after["a2"]["Unread"] == before["a2"]["Unread"] + 3, (before, after)
    for name in ("b", "d"):
        assert (after[name]["Messages"], after[name]["Unread"]) == (
            before[name]["Messages"], before[name]["Unread"]), (name, before, after)
    boxes = {box["Address"]: box for box in get(a2, "/api/v1/mailboxes").json()}
    assert (boxes[mailbox]["Total"], boxes[mailbox]["Unread"]) == (3, 3), boxes.get(mailbox)
    assert len(found(a2, f"mailbox:{mailbox}")) == 3
    for other in (b, d):
        assert mailbox not in {box["Address"] for box in get(other, "/api/v1/mailboxes").json()}, other.name
        assert found(other, f"mailbox:{mailbox}") == [], other.name
        assert get(other, "/api/v1/messages", limit=1).json()["total"] == after[other.name]["Messages"]


def test_tags_are_per_tenant(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    tag, subject = unique("secret-tag"), unique("tagged")
    sent = a1.send(subject)
    with a1.api() as api:
        assert api.put("/api/v1/tags", json={"IDs": [sent], "Tags": [tag]}).status_code == 200
    assert tag in get(a2, "/api/v1/tags").json() and found(a2, f"tag:{tag}") == [sent]
    for other in (b, d):
        assert tag not in get(other, "/api/v1/tags").json(), other.name
        assert found(other, f"tag:{tag}") == [], other.name
        with other.api() as api:
            api.put("/api/v1/tags", json={"IDs": [sent], "Tags": ["overwritten"]})
            api.put(f"/api/v1/tags/{tag}", json={"Name": "renamed"})
            api.delete(f"/api/v1/tags/{tag}")
    assert summary(a2, subject)["Tags"] == [tag]
    assert tag in get(a2, "/api/v1/tags").json()
    # b's own tags still work, and stay b's
    own = b.send(unique("tagged on b"))
    b_tag = unique("b-tag")
    with b.api() as api:
        assert api.put("/api/v1/tags", json={"IDs": [own], "Tags": [b_tag]}).status_code == 200
    assert b_tag in get(b, "/api/v1/tags").json()
    assert b_tag not in get(a2, "/api/v1/tags").json() and b_tag not in get(d, "/api/v1/tags").json()


def test_marking_read_on_another_tenant_changes_nothing_there(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    subject, own_subject = unique("unread"), unique("unread on b")
    sent = a1.send(subject)
    b.send(own_subject)
    for other in (b, d):
        with other.api() as api:
            api.put("/api/v1/messages", json={"IDs": [sent], "Read": True})
            api.put("/api/v1/messages", json={"Read": True})  # every message of this tenant
    assert summary(a2, subject)["Read"] is False and summary(a1, subject)["Read"] is False
    assert summary(b, own_subject)["Read"] is True  # b's "mark all" did mark b's own mail
    with a2.api() as api:
        assert api.put("/api/v1/messages", json={"IDs": [sent], "Read": True}).status_code == 200
    assert summary(a1, subject)["Read"] is True  # the same tenant shares it


def test_deleting_on_another_tenant_leaves_its_mail_intact(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    subject = unique("kept")
    sent = a1.send(subject)
    on_d = d.send(unique("kept on d"))
    a_total = total(a2)
    with b.api() as api:
        api.request("DELETE", "/api/v1/messages", json={"IDs": [sent]})
        api.delete(f"/api/v1/messages/{sent}")  # MailHog v1
        api.delete("/api/v1/search", params={"query": subject_query(subject)})
    own = b.send(unique("doomed on b"))
    with b.api() as api:
        assert api.delete("/api/v1/messages").status_code == 200  # delete all, on b
    assert total(b) == 0 and get(b, f"/api/v1/message/{own}").status_code == 404
    assert total(a2) == a_total and get(a2, f"/api/v1/message/{sent}").status_code == 200
    assert get(a1, f"/api/v1/message/{sent}").status_code == 200
    assert get(d, f"/api/v1/message/{on_d}").status_code == 200
    d_total = total(d)
    with a2.api() as api:
        assert api.delete("/api/v1/search", params={"query": subject_query(subject)}).status_code == 200
    assert get(a1, f"/api/v1/message/{sent}").status_code == 404  # deleted for the whole tenant
    assert total(d) == d_total


# -- live events ---------------------------------------------------------------------------------------

def test_live_events_of_another_tenant_get_nothing(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    streams = {(node.name, kind): Events(node, kind) for node in (a2, b, d) for kind in ("ws", "sse", "mailhog")}
    try:
        for (_, kind), stream in streams.items():
            if kind != "mailhog":
                stream.until(lambda f: f.get("Type") == "stats")  # sent once the client is attached
        # MailHog's websocket says nothing on connect: its own tenant's message shows it is attached.
        for node in (a2, b, d):
            warm = node.send(unique("warm-up"))
            for kind in ("mailhog", "ws", "sse"):
                streams[(node.name, kind)].until(announcing(kind, warm))
        subject = unique("live")
        counts = {node.name: total(node) for node in (b, d)}
        sent = a1.send(subject)
        for kind in ("ws", "sse", "mailhog"):
            seen = streams[("a2", kind)].until(announcing(kind))
            assert new_id(seen[-1], kind) == sent, (kind, seen)
        own = {node.name: node.send(unique("own")) for node in (b, d)}
        for name in ("b", "d"):
            for kind in ("ws", "sse", "mailhog"):
                seen = streams[(name, kind)].until(announcing(kind))
                assert new_id(seen[-1], kind) == own[name], (name, kind, seen)
                for frame in seen[:-1]:
                    assert frame.get("Type") == "stats", (name, kind, seen)
                    assert frame["Data"]["Total"] in (counts[name], counts[name] + 1), (name, kind, seen)
                assert sent not in json.dumps(seen) and subject not in json.dumps(seen), (name, kind, seen)
    finally:
        for stream in streams.values():
            stream.close()



# -- IMAP and POP3 -------------------------------------------------------------------------------------

def test_imap_of_another_tenant_lists_counts_searches_and_fetches_nothing(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    login, folder = f"{unique('imap')}@example.com", unique("Secret")
    subject = unique("imap only a")
    for n in range(2):
        a1.send_raw(f"From: app@example.com\r\nTo: {login}\r\nSubject: {subject} {n}\r\n\r\nfor a\r\n", login)
    b.send(unique("imap on b"), to=login)
    with logged_in(a1, login) as imap:
        assert imap.create(folder)[0] == "OK"
    sessions = {node.name: imap_login(node, login) for node in (a2, b, d)}
    try:
        names = {name: folder_list(imap) for name, imap in sessions.items()}
        assert folder.encode() in names["a2"]
        assert folder.encode() not in names["b"] and folder.encode() not in names["d"], names
        folders = {node.name: {f["Name"] for f in get(node, "/api/v1/folders").json()["Folders"]}
                   for node in (a2, b, d)}
        assert folder in folders["a2"] and folder not in folders["b"] | folders["d"], folders
        assert {name: selected(imap) for name, imap in sessions.items()} == {"a2": 2, "b": 1, "d": 0}
        a_uids = uid_search(sessions["a2"], "SUBJECT", f'"{subject}"')
        assert len(a_uids) == 2
        assert uid_search(sessions["b"], "SUBJECT", f'"{subject}"') == []
        assert uid_search(sessions["d"], "SUBJECT", f'"{subject}"') == []
        assert subject.encode() in fetched_bytes(sessions["a2"], ",".join(map(str, a_uids)))
        for name in ("b", "d"):
            # the uids are a_uids in team_a's sequence; another tenant has none of those messages under them
            assert subject.encode() not in fetched_bytes(sessions[name], ",".join(map(str, a_uids))), name
            assert subject.encode() not in fetched_bytes(sessions[name], "1:*"), name
            assert sessions[name].select(folder)[0] == "NO", name
    finally:
        for imap in sessions.values():
            with contextlib.suppress(Exception):
                imap.logout()
    with logged_in(b, "*") as everything:
        selected(everything)
        assert uid_search(everything, "SUBJECT", f'"{subject}"') == []  # nor in the catch-all view


def test_imap_idle_of_another_tenant_gets_no_exists(cluster: Cluster) -> None:
    a1, a2, b, d = cluster.a1, cluster.a2, cluster.b, cluster.d
    sessions = {node.name: imap_login(node, "*") for node in (a2, b, d)}
    try:
        counts = {name: selected(imap) for name, imap in sessions.items()}
        for name, imap in sessions.items():
            imap.send(b"i1 IDLE\r\n")
            assert imap.readline().startswith(b"+"), name

        def untagged_until(name: str, last: bytes) -> list[bytes]:
            """The untagged answers up to and including `last` (a keep-alive `* OK` says nothing about mail)."""
            lines: list[bytes] = []
            while not lines or lines[-1] != last:
                line = sessions[name].readline()
                assert line, f"{name}: connection closed after {lines}"
                if not line.startswith(b"* OK"):
                    lines.append(line)
            return lines

        def exists(count: int) -> bytes:
            return f"* {count} EXISTS\r\n".encode()

        a1.send(unique("idle a"))
        assert untagged_until("a2", exists(counts["a2"] + 1)) == [exists(counts["a2"] + 1)]
        for node in (b, d):
            node.send(unique("idle own"))  # after team_a's message: a leaked EXISTS would come first
        for name, imap in sessions.items():
            answers = untagged_until(name, exists(counts[name] + 1)) if name != "a2" else []
            imap.send(b"DONE\r\n")
            answers += until_tagged(imap, b"i1")
            imap.send(b"i2 NOOP\r\n")  # anything still pending is told now
            answers += until_tagged(imap, b"i2")
            assert [line for line in answers if line.endswith(b"EXISTS\r\n")] == (
                [] if name == "a2" else [exists(counts[name] + 1)]), (name, answers)
    finally:
        for imap in sessions.values():
            with contextlib.suppress(Exception):
                imap.logout()


def test_pop3_of_another_tenant_has_none_of_its_mail(cluster: Cluster) -> None:
    a1, b, d = cluster.a1, cluster.b, cluster.d
    login = f"{unique('pop')}@example.com"
    subject = unique("pop only a")
    for n in range(2):
        cluster.a2.send(f"{subject} {n}", to=login)
    own = unique("pop on b")
    b.send(own, to=login)

    def drop(node: Node) -> tuple[tuple[int, int], list[bytes], list[bytes]]:
        pop = poplib.POP3("127.0.0.1", node.ports["pop3"], timeout=15)
        try:
            pop.user(login)
            pop.pass_("x")
            stat = pop.stat()
            listing = pop.list()[1]
            texts = [b"\r\n".join(pop.retr(n)[1]) for n in range(1, stat[0] + 1)]
            with pytest.raises(poplib.error_proto):
                pop.retr(stat[0] + 1)
            return stat, listing, texts
        finally:
            pop.quit()

    stat, listing, texts = drop(a1)
    assert stat[0] == 2 and len(listing) == 2 and all(subject.encode() in t for t in texts), texts
    stat, listing, texts = drop(b)
    assert stat[0] == 1 and len(listing) == 1 and own.encode() in texts[0] and subject.encode() not in texts[0]
    stat, listing, texts = drop(d)
    assert stat == (0, 0) and listing == [] and texts == []


# -- once-only work and other writers ------------------------------------------------------------------

def test_webhooks_post_only_their_own_tenants_mail(cluster: Cluster) -> None:
    hooks = cluster.hooks
    a_ids = [cluster.a1.send(unique("hook a1")), cluster.a2.send(unique("hook a2"))]
    wait_until(lambda: set(a_ids) <= set(hooks["a"].ids()), what="team_a's webhook posts")
    own = {node.name: node.send(unique("hook own")) for node in (cluster.b, cluster.d)}
    for name in ("b", "d"):
        wait_until(hooks[name].has(own[name]), what=f"{name}'s webhook post")
        assert not set(a_ids) & set(hooks[name].ids()), (name, hooks[name].received)
    assert own["b"] not in hooks["a"].ids() and own["d"] not in hooks["a"].ids()
    assert own["b"] not in hooks["d"].ids() and own["d"] not in hooks["b"].ids()


def test_retention_on_another_tenant_prunes_nothing_here(cluster: Cluster) -> None:
    a_ids = [cluster.a1.send(unique("retained a")) for _ in range(3)]
    d_id = cluster.d.send(unique("retained d"))
    a_total, d_total = total(cluster.a2), total(cluster.d)
    pruning = cluster.start("b-pruning", "--tenant", TEAM_B, "--max-messages", "2")
    b_ids = [pruning.send(unique("pruned b")) for _ in range(4)]
    wait_until(lambda: total(cluster.b) == 2, what="team_b pruned to 2")
    assert sorted(listed(cluster.b)) == sorted(b_ids[-2:])
    assert total(cluster.a2) == a_total and total(cluster.d) == d_total
    for message_id in a_ids:
        assert get(cluster.a2, f"/api/v1/message/{message_id}").status_code == 200
    assert get(cluster.d, f"/api/v1/message/{d_id}").status_code == 200
    pruning.stop()


def test_ingest_writes_into_its_tenant_only(cluster: Cluster, tmp_path: Path) -> None:
    subjects = {"a": unique("ingested a"), "default": unique("ingested default")}
    files = {}
    for key, subject in subjects.items():
        files[key] = tmp_path / f"{key}.eml"
        files[key].write_bytes(f"From: app@example.com\r\nTo: ingest@example.com\r\nSubject: {subject}\r\n\r\n"
                               "ingested\r\n".encode())
    waited: dict[str, httpx.Response] = {}

    def wait_on_a2() -> None:
        with cluster.a2.api(timeout=40) as api:
            waited["a2"] = api.get("/api/v1/wait", params={"query": subject_query(subjects["a"]), "timeout": 30})

    waiter = threading.Thread(target=wait_on_a2)
    waiter.start()
    time.sleep(0.3)  # registered: the message reaches a2 live, through NOTIFY, not by a later read
    for key, tenant in (("a", ["--tenant", TEAM_A]), ("default", [])):
        result = subprocess.run([*MAILNEST, "ingest", "--db", cluster.db, *tenant, str(files[key])],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    waiter.join(45)
    assert waited["a2"].status_code == 200, waited["a2"].text
    assert len(found(cluster.a1, subject_query(subjects["a"]))) == 1
    assert found(cluster.b, subject_query(subjects["a"])) == [] and found(cluster.d, subject_query(subjects["a"])) == []
    assert len(found(cluster.d, subject_query(subjects["default"]))) == 1
    for node in (cluster.a2, cluster.b):
        assert found(node, subject_query(subjects["default"])) == [], node.name


def test_the_same_tenant_on_two_nodes_shares_mail_and_changes(cluster: Cluster) -> None:
    a1, a2 = cluster.a1, cluster.a2
    subject = unique("shared")
    sent = a2.send(subject)
    assert found(a1, subject_query(subject)) == [sent]
    with logged_in(a1, "*") as imap:
        selected(imap)
        assert len(uid_search(imap, "SUBJECT", f'"{subject}"')) == 1
    tag = unique("shared-tag")
    with a1.api() as api:
        assert api.put("/api/v1/tags", json={"IDs": [sent], "Tags": [tag]}).status_code == 200
        assert api.put("/api/v1/messages", json={"IDs": [sent], "Read": True}).status_code == 200
    shared = summary(a2, subject)
    assert shared["Read"] is True and shared["Tags"] == [tag]
    with a2.api() as api:
        assert api.request("DELETE", "/api/v1/messages", json={"IDs": [sent]}).status_code == 200
    assert get(a1, f"/api/v1/message/{sent}").status_code == 404


# -- tenant names --------------------------------------------------------------------------------------

def test_a_tenant_named_like_the_default_schema_is_refused() -> None:
    """The default schema is called `mailnest`: a team that picked that name would get the mail of every node run
    without --tenant. The name is reserved: exit 2 and a message, before anything connects."""
    result = subprocess.run([*MAILNEST, "serve", "--db", "postgresql://127.0.0.1:1/unused", "--tenant", "mailnest"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "--tenant 'mailnest' is reserved" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("tenant", ["pg_team", "information_schema"])
def test_a_system_schema_name_is_refused_as_a_tenant(cluster: Cluster, tenant: str) -> None:
    """PostgreSQL refuses to create a pg_* schema (today: exit 1 and a traceback), and information_schema holds
    its catalog views and is left out by pg_dump (that team's mail would be missing from every backup). The name
    check must refuse both, with exit 2 and a message, as for any other bad name."""
    ports = cluster.workdir / f"{unique('refused')}.json"
    serve = subprocess.Popen([*MAILNEST, "serve", "--db", cluster.db, "--tenant", tenant, "--smtp", "127.0.0.1:0",
                              "--http", "127.0.0.1:0", "--imap", "off", "--pop3", "off", "--ports-file", str(ports)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: serve.poll() is not None or ports.exists(), timeout=30, what="exit or start")
    finally:
        if serve.poll() is None:
            serve.terminate()
        _, stderr = serve.communicate(timeout=20)
    assert not ports.exists(), f"--tenant {tenant} was accepted: mailnest served its mail from that schema"
    assert serve.returncode == 2, (serve.returncode, stderr[-2000:])
    assert f"--tenant {tenant!r}" in stderr and "Traceback" not in stderr, stderr


def test_the_longest_tenant_names_work_and_keep_apart(cluster: Cluster) -> None:
    """54 characters is the longest name the check allows: the NOTIFY channel `mailnest_<name>` must fit
    PostgreSQL's 63 bytes (at 63 characters every message got 451). Two long names that differ only at the end
    must not share a channel either; one character more is refused before anything starts."""
    too_long = subprocess.run([sys.executable, "-m", "mailnest.cli", "serve", "--db", cluster.db, "--tenant",
                               "t" * 55], capture_output=True, text=True, timeout=30)
    assert too_long.returncode == 2 and "1-54" in too_long.stderr, too_long.stderr
    x_name, y_name = "t" * 53 + "x", "t" * 53 + "y"
    x1 = cluster.start("long-x1", "--tenant", x_name)
    x2 = cluster.start("long-x2", "--tenant", x_name)
    y = cluster.start("long-y", "--tenant", y_name)
    streams = {node.name: Events(node, "ws") for node in (x2, y)}
    try:
        for stream in streams.values():
            stream.until(lambda f: f.get("Type") == "stats")
        try:
            sent = x1.send(unique("long name"))
        except smtplib.SMTPException as exc:
            pytest.fail(f"a node of the 54-character tenant refused mail ({exc}); its log ends:\n"
                        f"{x1.output()[-1500:]}")
        seen = streams["long-x2"].until(announcing("ws"))
        assert new_id(seen[-1], "ws") == sent
        own = y.send(unique("long name y"))
        seen = streams["long-y"].until(announcing("ws"))
        assert new_id(seen[-1], "ws") == own and sent not in json.dumps(seen), seen
        assert get(y, f"/api/v1/message/{sent}").status_code == 404
    finally:
        for stream in streams.values():
            stream.close()



def start_together(db: str, workdir: Path, tenants: list[str]) -> dict[str, Node | Exception]:
    """A first node of each tenant, all let into their migrations at the same moment: the test holds every
    tenant's migration lock until each node waits for it. Each a Node, or why it did not start."""
    outcomes: dict[str, Node | Exception] = {}

    def start(tenant: str) -> None:
        try:
            outcomes[tenant] = Node.start(tenant, db, workdir / tenant, "--tenant", tenant)
        except Exception as exc:  # reported by the caller, with the node's log
            outcomes[tenant] = exc

    threads = [threading.Thread(target=start, args=(tenant,)) for tenant in tenants]
    with psycopg.connect(db, autocommit=True) as gate:
        for tenant in tenants:
            gate.execute("SELECT pg_advisory_lock(hashtext(%s))", (schema.lock_key(tenant, "migrate"),))
        for thread in threads:
            thread.start()

        def all_waiting() -> bool:
            row = gate.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").fetchone()
            return bool(row and row[0] >= len(tenants)) or len(outcomes) > 0

        wait_until(all_waiting, timeout=30, what="every node waiting for its migration lock")
    for thread in threads:  # the gate is closed: its locks are gone, every node migrates at once
        thread.join(60)
    return outcomes


def test_tenants_starting_together_on_a_new_database_all_start(postgres_server: Any, tmp_path: Path) -> None:
    """Each tenant migrates its own schema under its own lock, but the first migration also creates the
    database-wide pg_trgm extension: first nodes of several tenants starting at once must not trip over each
    other there."""
    outcomes = start_together(str(postgres_server.create_database()), tmp_path, [f"team_{n}" for n in range(3)])
    for outcome in outcomes.values():
        if isinstance(outcome, Node):
            outcome.stop()
    failed = {tenant: str(outcome)[-800:] for tenant, outcome in outcomes.items() if not isinstance(outcome, Node)}
    assert len(outcomes) == 3 and not failed, "\n".join(f"{tenant}: {reason}" for tenant, reason in failed.items())
