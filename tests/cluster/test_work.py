"""Once-only work across nodes (issue 13): three `mailnest serve` processes on one PostgreSQL post each message's
webhook and relay it once; node 1 holds its messages' work (its webhook endpoint refuses node 1, its relay
upstream is down) for longer than a lease without anybody taking it, and when node 1 is killed with `kill -9`
the other nodes take the work over: every acknowledged message gets its webhook and its relay, exactly once."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.outputs.test_work_restart import SERVE_WITH_EXTRA

from . import nodes
from .nodes import Node, wait_until

LEASE = 3.0
EXTRA = {"work_lease": LEASE, "work_sweep": 0.5, "webhook_backoff": 0.1, "webhook_max_backoff": 0.3,
         "webhook_attempts": 100_000, "webhook_timeout": 2.0, "relay_backoff": 0.1, "relay_max_backoff": 0.3,
         "relay_attempts": 100_000, "relay_timeout": 2.0}


@dataclass
class Hooks:
    """A webhook receiver that answers 503 to the posts of the nodes labelled in `refuse`."""

    url: str = ""
    refuse: set[str] = field(default_factory=set)
    posts: list[tuple[str, str]] = field(default_factory=list)  # (label, message id) of each post taken
    refused: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [id_ for _, id_ in self.posts]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    state = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            label = self.headers.get("X-Mailnest-Label", "")
            with state.lock:
                taken = label not in state.refuse
                if taken:
                    state.posts.append((label, str(body["ID"])))
                else:
                    state.refused[label] += 1
            self.send_response(204 if taken else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def start(database: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Node]]:
    """`start(label, *args)`: a node on the test's database with short leases (Config.extra), stopped at the end."""
    monkeypatch.setattr(nodes, "MAILNEST", SERVE_WITH_EXTRA)
    started: list[Node] = []

    def run(label: str, *args: str) -> Node:
        node = Node.start(label, database, tmp_path / label, "--label", label, *args,
                          env={"MAILNEST_TEST_EXTRA": json.dumps(EXTRA)})
        started.append(node)
        return node

    yield run
    for node in started:
        node.stop()


@pytest.fixture
def dead_port() -> Iterator[int]:
    """A port bound but not listening: connections to it are refused (a relay upstream that is down)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def test_work_held_by_a_killed_node_is_done_once_by_the_others(start: Callable[..., Node], hooks: Hooks,
                                                                dead_port: int) -> None:
    hooks.refuse = {"node1"}
    with ServerThread(Config()) as upstream:
        allow = ("--relay-allow", "*@allowed.test")
        first = start("node1", "--webhook", hooks.url, "--relay", f"127.0.0.1:{dead_port}", *allow)
        others = [start(name, "--webhook", hooks.url, "--relay", f"127.0.0.1:{upstream.smtp_port}", *allow)
                  for name in ("node2", "node3")]
        held = [first.send(f"held {i}", to="dev@allowed.test") for i in range(3)]
        normal = [node.send(f"normal {node.name} {i}", to="dev@allowed.test") for node in others for i in range(2)]

        with httpx.Client(base_url=upstream.http_url, timeout=10) as api:
            def relayed() -> Counter[str]:
                return Counter(m["Subject"] for m in api.get("/api/v1/messages", params={"limit": 100}).json()[
                    "messages"])

            wait_until(lambda: sorted(hooks.ids()) == sorted(normal), what="the other nodes' own webhooks")
            wait_until(lambda: sum(relayed().values()) >= len(normal), what="the other nodes' own relays")
            wait_until(lambda: hooks.refused["node1"] >= 3, what="node 1 retrying its webhooks")
            # Node 1 lives and renews: for three leases nobody takes its work over.
            time.sleep(3 * LEASE)
            assert not set(hooks.ids()) & set(held), hooks.posts
            assert not any(subject.startswith("held") for subject in relayed())

            first.kill()
            wait_until(lambda: set(held) <= set(hooks.ids()), timeout=30, what="node 1's webhooks, taken over")
            wait_until(lambda: sum(relayed().values()) >= len(held) + len(normal), timeout=30,
                       what="node 1's relays, taken over")
            time.sleep(2 * LEASE)  # a second post or relay of anything would have come by now
            posts = Counter(hooks.ids())
            assert posts == Counter(held + normal), hooks.posts  # every acknowledged message, exactly once
            assert {label for label, id_ in hooks.posts if id_ in held} <= {"node2", "node3"}
            subjects = [f"held {i}" for i in range(3)] + [f"normal {n.name} {i}" for n in others for i in range(2)]
            assert relayed() == Counter(subjects)
    for node in others:
        assert "Traceback" not in node.output(), node.output()
    assert any("taking over once-only work" in node.output() for node in others)
