"""Once-only work survives the process on SQLite: a `mailnest serve --db FILE` killed with `kill -9` while its
webhook receiver is down posts the missing webhooks once restarted; one stopped cleanly lets its work go and the
next start posts it at once. And the `X-Mailnest-Label` header a labelled instance puts on its posts."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mailnest import Config, ServerThread
from mailnest.outputs.webhook import kind_of
from tests.cluster import nodes
from tests.cluster.nodes import Node, wait_until
from tests.conftest import send

# `mailnest serve` exactly as the CLI runs it, with Config.extra from MAILNEST_TEST_EXTRA (JSON): the CLI has no
# flag for the tunables (work_lease, work_sweep, webhook_backoff), and these tests need short ones.
SERVE_WITH_EXTRA = [sys.executable, "-c", """
import json, os, sys
from mailnest import cli
config_from_args = cli.config_from_args
cli.config_from_args = lambda args: config_from_args(args).replace(
    extra=json.loads(os.environ.get("MAILNEST_TEST_EXTRA", "{}")))
sys.exit(cli.main(sys.argv[1:]))
"""]
FAST = {"work_lease": 1.5, "work_sweep": 0.3, "webhook_backoff": 0.1, "webhook_max_backoff": 0.2,
        "webhook_attempts": 100_000, "webhook_timeout": 2.0}


def start(name: str, db: str, workdir: Path, *args: str, extra: dict[str, Any] | None = None) -> Node:
    """A real `mailnest serve` process with Config.extra `extra` (FAST by default)."""
    return Node.start(name, db, workdir, *args, env={"MAILNEST_TEST_EXTRA": json.dumps(extra or FAST)})


@pytest.fixture(autouse=True)
def serve_with_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nodes, "MAILNEST", SERVE_WITH_EXTRA)


@dataclass
class Hooks:
    """A webhook receiver: `up` False answers 503 to every POST (the endpoint is down)."""

    url: str = ""
    up: bool = True
    posts: list[dict[str, Any]] = field(default_factory=list)  # (the summaries taken)
    headers: list[dict[str, str]] = field(default_factory=list)
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ids(self) -> list[str]:
        with self.lock:
            return [str(post["ID"]) for post in self.posts]


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    state = Hooks()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with state.lock:
                taken = state.up
                if taken:
                    state.posts.append(body)
                    state.headers.append(dict(self.headers))
                else:
                    state.refused += 1
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


def test_a_killed_process_posts_the_missing_webhooks_after_a_restart(hooks: Hooks, tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    hooks.up = False
    first = start("first", db, tmp_path / "first", "--webhook", hooks.url)
    try:
        sent = [first.send(f"while down {i}") for i in range(3)]
        wait_until(lambda: hooks.refused >= 3, what="the webhook retrying against the endpoint that is down")
    finally:
        first.kill()
    assert hooks.ids() == []
    hooks.up = True
    second = start("second", db, tmp_path / "second", "--webhook", hooks.url)
    try:
        wait_until(lambda: len(hooks.ids()) >= 3, timeout=30, what="the 3 webhooks posted after the restart")
        later = second.send("after the restart")
        wait_until(lambda: later in hooks.ids(), what="the new message's webhook")
        time.sleep(1.0)  # a second post of any message would arrive by now
        assert sorted(hooks.ids()) == sorted([*sent, later])  # each once
    finally:
        second.stop()
    assert "taking over once-only work" in second.output()


def test_a_clean_stop_leaves_its_unposted_webhooks_to_the_next_start(hooks: Hooks, tmp_path: Path) -> None:
    db = str(tmp_path / "mail.db")
    hooks.up = False
    slow = {**FAST, "work_lease": 600.0, "work_sweep": 0.3}  # a lease that never ends within the test
    first = start("first", db, tmp_path / "first", "--webhook", hooks.url, extra=slow)
    sent = [first.send(f"unposted {i}") for i in range(2)]
    wait_until(lambda: hooks.refused >= 2, what="the webhook retrying")
    first.stop()
    assert first.proc.returncode == 0, first.output()
    assert "left for the next node to sweep" in first.output()
    hooks.up = True
    second = start("second", db, tmp_path / "second", "--webhook", hooks.url, extra=slow)
    try:
        wait_until(lambda: len(hooks.ids()) >= 2, what="the webhooks the first run let go")
        time.sleep(0.5)
        assert sorted(hooks.ids()) == sorted(sent)
    finally:
        second.stop()


def test_a_labelled_instance_names_itself_on_each_webhook_post(hooks: Hooks) -> None:
    with ServerThread(Config(webhooks=(hooks.url,), label="staging-eu")) as labelled:
        send(labelled, subject="labelled")
        wait_until(lambda: len(hooks.ids()) >= 1, what="the labelled post")
    with ServerThread(Config(webhooks=(hooks.url,))) as unlabelled:
        send(unlabelled, subject="unlabelled")
        wait_until(lambda: len(hooks.ids()) >= 2, what="the unlabelled post")
    labels = [{k.lower(): v for k, v in h.items()}.get("x-mailnest-label") for h in hooks.headers]
    assert labels == ["staging-eu", None]


def test_a_webhook_password_stays_out_of_the_stored_work_kind() -> None:
    with_password = kind_of("https://hooks:s3cret@hooks.test/in")
    assert "s3cret" not in with_password and with_password.startswith("webhook:https://hooks.test/in#")
    assert with_password != kind_of("https://hooks:other@hooks.test/in")  # still one kind per URL
    assert kind_of("http://hooks.test/in") == "webhook:http://hooks.test/in"
