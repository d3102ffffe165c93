"""Several mailnest nodes on one PostgreSQL (issue 13): every front door of every node sees mail received by any
node, once-only work happens once, and no failure loses what was acknowledged. Real processes, real sockets."""

from __future__ import annotations

import imaplib
import json
import poplib
import smtplib
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from websockets.sync.client import connect

from mailnest import Config, ServerThread

from .nodes import Node, wait_until

StartNode = Callable[..., Node]


def total(node: Node, query: str = "") -> int:
    with node.api() as api:
        return int(api.get("/api/v1/search" if query else "/api/v1/messages",
                           params={"query": query} if query else {}).json()["messages_count"])


def test_mail_sent_to_one_node_is_live_on_every_node(start_node: StartNode) -> None:
    node1, node2, node3 = start_node(), start_node(), start_node()
    waited: dict[str, object] = {}

    def wait_on_node2() -> None:
        with node2.api(timeout=30) as api:
            response = api.get("/api/v1/wait", params={"query": 'subject:"across nodes"', "timeout": 20})
            waited["status"], waited["body"] = response.status_code, response.json()

    waiter = threading.Thread(target=wait_on_node2)
    waiter.start()
    imap = imaplib.IMAP4("127.0.0.1", node3.ports["imap"], timeout=15)
    imap.login("*", "x")
    imap.select("INBOX")
    imap.send(b"i1 IDLE\r\n")
    assert imap.readline().startswith(b"+")
    with connect(f"ws://127.0.0.1:{node2.ports['http']}/api/events", open_timeout=10) as ws:
        time.sleep(0.3)  # the waiter, the IDLE and the websocket are all listening
        sent = time.monotonic()
        message_id = node1.send("across nodes")
        frame = json.loads(ws.recv(timeout=10))
        while frame.get("Type") != "new":
            frame = json.loads(ws.recv(timeout=10))
        assert frame["Data"]["ID"] == message_id
        live_seconds = time.monotonic() - sent
    idle_line = imap.readline()
    assert idle_line == b"* 1 EXISTS\r\n", idle_line
    imap.send(b"DONE\r\n")
    line = imap.readline()
    while line.startswith(b"* "):  # * 1 RECENT may follow
        line = imap.readline()
    assert line.startswith(b"i1 OK"), line
    imap.logout()
    waiter.join(30)
    assert waited["status"] == 200 and waited["body"]["messages"][0]["ID"] == message_id, waited
    assert live_seconds < 5, live_seconds  # through NOTIFY; the benchmark measures the real figure (ms)


class _Hooks(BaseHTTPRequestHandler):
    received: list[dict[str, object]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_each_message_is_posted_to_the_webhook_once(start_node: StartNode) -> None:
    hooks = type("Hooks", (_Hooks,), {"received": []})
    receiver = ThreadingHTTPServer(("127.0.0.1", 0), hooks)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_port}/hook"
        nodes = [start_node("--webhook", url) for _ in range(3)]
        sent = [nodes[i % 3].send(f"hook {i}") for i in range(9)]
        wait_until(lambda: len(hooks.received) >= 9, what="9 webhook posts")
        time.sleep(1.0)  # any duplicate from another node would arrive by now
        assert sorted(str(post["ID"]) for post in hooks.received) == sorted(sent)
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_each_allowed_message_is_relayed_once(start_node: StartNode) -> None:
    with ServerThread(Config()) as upstream:
        nodes = [start_node("--relay", f"127.0.0.1:{upstream.smtp_port}", "--relay-allow", "*@allowed.test")
                 for _ in range(3)]
        sent = [nodes[i % 3].send(f"relay {i}", to="dev@allowed.test") for i in range(6)]
        with httpx.Client(base_url=upstream.http_url, timeout=10) as api:
            def relayed() -> list[str]:
                return [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]]

            wait_until(lambda: len(relayed()) >= 6, what="6 relayed messages")
            time.sleep(1.0)  # any duplicate from another node would arrive by now
            assert sorted(relayed()) == sorted(f"relay {i}" for i in range(6)), sent


def test_retention_prunes_once_for_every_node(start_node: StartNode) -> None:
    nodes = [start_node("--max-messages", "5") for _ in range(3)]
    sent = [nodes[i % 3].send(f"keep {i}") for i in range(12)]
    wait_until(lambda: all(total(node) == 5 for node in nodes), what="5 messages on every node")
    for node in nodes:
        with node.api() as api:
            listed = [m["ID"] for m in api.get("/api/v1/messages").json()["messages"]]
        assert sorted(listed) == sorted(sent[-5:]), node.name


def test_a_node_killed_mid_load_loses_nothing_acknowledged(start_node: StartNode) -> None:
    victim, survivor, other = start_node(), start_node(), start_node()
    stop = threading.Event()
    errors: list[Exception] = []

    def load(node: Node, prefix: str) -> None:
        n = 0
        while not stop.is_set():
            try:
                node.send(f"{prefix} {n}")
            except (OSError, smtplib.SMTPException) as exc:
                if node is not victim:
                    errors.append(exc)
                return  # the victim: killed
            n += 1

    senders = [threading.Thread(target=load, args=(victim, f"victim {i}")) for i in range(3)]
    senders.append(threading.Thread(target=load, args=(other, "other")))
    for thread in senders:
        thread.start()
    wait_until(lambda: len(victim.acknowledged) >= 30, what="30 messages acknowledged by the victim")
    victim.kill()
    time.sleep(0.5)
    stop.set()
    for thread in senders:
        thread.join(30)
    assert not errors and not any(t.is_alive() for t in senders), errors
    assert other.acknowledged
    acknowledged = list(victim.acknowledged) + list(other.acknowledged)
    with survivor.api() as api:
        for message_id in acknowledged:
            assert api.get(f"/api/v1/message/{message_id}").status_code == 200, message_id
    assert survivor.send("after the kill") and other.send("after the kill too")


def test_postgresql_restart_gives_temporary_errors_then_recovers(start_node: StartNode, postgres_server) -> None:
    node1, node2 = start_node(), start_node("--pop3", "127.0.0.1:0")
    before = node1.send("before the restart")
    postgres_server.stop()
    try:
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            node1.send("while the database is down")
        assert refused.value.smtp_code == 451, refused.value
        with node2.api() as api:
            assert api.get("/readyz").status_code == 503
            down = api.get("/api/v1/messages")
            assert down.status_code == 503 and "database" in down.json()["Error"], down.text
            assert down.headers["Retry-After"] == "2"
        with imaplib.IMAP4("127.0.0.1", node2.ports["imap"], timeout=15) as imap:
            imap.login("*", "x")
            status, reply = imap._simple_command("SELECT", "INBOX")
            assert status == "NO" and b"[UNAVAILABLE]" in reply[-1], (status, reply)
        pop = poplib.POP3("127.0.0.1", node2.ports["pop3"], timeout=15)
        try:
            pop.user("*")
            with pytest.raises(poplib.error_proto, match=r"SYS/TEMP"):
                pop.pass_("x")
                pop.stat()
        finally:
            pop.close()
    finally:
        postgres_server.start(same_port=True)

    def ready() -> bool:
        with node1.api() as api1, node2.api() as api2:
            return api1.get("/readyz").status_code == 200 and api2.get("/readyz").status_code == 200

    wait_until(ready, timeout=30, what="both nodes ready again")
    after = node1.send("after the restart")
    with node2.api(timeout=30) as api:
        found = api.get("/api/v1/wait", params={"query": 'subject:"after the restart"', "timeout": 10})
        assert found.status_code == 200 and found.json()["messages"][0]["ID"] == after
        assert api.get(f"/api/v1/message/{before}").status_code == 200
    for node in (node1, node2):
        assert "Traceback" not in node.output(), node.output()
