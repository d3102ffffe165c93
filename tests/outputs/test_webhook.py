"""Webhooks: a POST per new message to a real local HTTP receiver, retried with backoff, never blocking ingest,
never dropped silently."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from mailnest import Config, ServerThread
from mailnest.config import ConfigError
from mailnest.events import Hub
from mailnest.outputs.webhook import WebhookDispatcher
from tests.conftest import send


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    fail_first: int = 0  # answer 500 to this many requests first
    delay: float = 0.0  # seconds before answering
    seen: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_for(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.posts) >= count:
                    return list(self.posts)
            time.sleep(0.02)
        raise AssertionError(f"only {len(self.posts)} of {count} webhook posts arrived")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(state.delay)
            with state.lock:
                state.seen += 1
                failing = state.seen <= state.fail_first
                if not failing:
                    state.posts.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def hooked(receiver: Receiver, **extra: Any) -> Config:
    return Config(webhooks=(receiver.url,), extra={"webhook_backoff": 0.05, "webhook_max_backoff": 0.2, **extra})


def test_each_new_message_is_posted_in_mailpit_shape(receiver: Receiver) -> None:
    with ServerThread(hooked(receiver)) as server:
        for i in range(3):
            send(server, subject=f"hook {i}", X_Tags="Hooked")
        posts = receiver.wait_for(3)
    assert [p["body"]["Subject"] for p in posts] == ["hook 0", "hook 1", "hook 2"]
    body = posts[0]["body"]
    assert set(body) >= {"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Created",
                         "Tags", "Size", "Attachments", "Snippet"}
    assert body["Tags"] == ["Hooked"] and body["To"] == [{"Name": "", "Address": "rcpt@example.com"}]
    headers = {k.lower(): v for k, v in posts[0]["headers"].items()}
    assert headers["content-type"] == "application/json" and headers["user-agent"].startswith("mailnest/")


def test_failures_are_retried_with_backoff(receiver: Receiver) -> None:
    receiver.fail_first = 3
    with ServerThread(hooked(receiver)) as server:
        send(server, subject="eventually")
        posts = receiver.wait_for(1)
        server.call(server.webhooks.flush(10))
        assert server.webhooks.stats()[receiver.url]["delivered"] == 1
    assert posts[0]["body"]["Subject"] == "eventually" and receiver.seen == 4


def test_giving_up_is_logged(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.fail_first = 1000
    caplog.set_level(logging.WARNING, logger="mailnest.outputs.webhook")
    with ServerThread(hooked(receiver, webhook_attempts=2)) as server:
        send(server, subject="unlucky")
        server.call(server.webhooks.flush(10))
        assert server.webhooks.stats()[receiver.url]["failed"] == 1
    assert receiver.seen == 2
    assert any("gave up on message" in r.getMessage() and "HTTP 500" in r.getMessage() for r in caplog.records)


def test_a_slow_receiver_never_slows_ingest(receiver: Receiver) -> None:
    receiver.delay = 0.3
    with ServerThread(hooked(receiver)) as server:
        started = time.monotonic()
        for i in range(6):
            send(server, subject=f"fast {i}")
        assert time.monotonic() - started < 1.0  # six posts would take 1.8 s in line
        assert len(receiver.wait_for(6, timeout=20)) == 6


def test_a_full_queue_is_refused_loudly(receiver: Receiver, caplog: pytest.LogCaptureFixture) -> None:
    receiver.delay = 0.3
    caplog.set_level(logging.ERROR, logger="mailnest.outputs.webhook")
    with ServerThread(hooked(receiver, webhook_queue=2)) as server:
        for i in range(6):
            send(server, subject=f"burst {i}")
        stats = server.webhooks.stats()[receiver.url]
        assert stats["refused"] >= 3
    refusals = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
    assert refusals and "NOT posted" in refusals[-1] and f"{stats['refused']} refused so far" in refusals[-1]


def test_bad_urls_are_refused_at_start() -> None:
    with pytest.raises(ConfigError, match="--webhook"):
        WebhookDispatcher(["ftp://example.com/x"], Hub())
    assert WebhookDispatcher.from_config(Config(), Hub()) is None
