"""Hostile input against the HTTP API (issue 12), over real sockets on loopback, each attack bounded.

Each test times what a normal client sees while the attack runs (an SMTP send, `/livez`, another message's GET).
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.conftest import send


def many_attachments(count: int) -> bytes:
    """A message of `count` small base64 attachments (1,000 of them are about 98 KB)."""
    parts = [b"From: a@example.com\r\nTo: b@example.com\r\nSubject: many parts\r\nMIME-Version: 1.0\r\n"
             b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n']
    for i in range(count):
        parts.append(b'--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; '
                     b'filename="f%d.bin"\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n' % i)
    parts.append(b"--b--\r\n")
    return b"".join(parts)


def deliver(server: ServerThread, raw: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        client.sendmail("a@example.com", ["b@example.com"], raw)
    with httpx.Client(base_url=server.http_url) as api:
        return str(api.get("/api/v1/messages", params={"limit": 1}).json()["messages"][0]["ID"])


def timed_get(api: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = api.get(path)
    return time.perf_counter() - started, response


def live_seconds(api: httpx.Client) -> float:
    """The best of three /livez answers: a blocked loop delays all three, a busy machine rarely does."""
    return min(timed_get(api, "/livez")[0] for _ in range(3))


def normal_send_seconds(server: ServerThread) -> float:
    started = time.perf_counter()
    send(server, subject="normal client")
    return time.perf_counter() - started


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    # A bounded client: an attack that makes a request hang fails the test instead of stalling the suite.
    with httpx.Client(base_url=server.http_url, timeout=10) as client:
        yield client


# -- issue 12 item 2: GET /api/v1/message/{ID} with many attachments -------------------------------------------


def test_message_json_is_linear_in_attachments(server: ServerThread, api: httpx.Client) -> None:
    small = deliver(server, many_attachments(250))
    large = deliver(server, many_attachments(2000))
    timed_get(api, f"/api/v1/message/{small}")  # warm up
    smalls, larges = [], []
    for _ in range(5):  # interleaved, so a busy moment of the machine falls on both
        smalls.append(timed_get(api, f"/api/v1/message/{small}")[0])
        larges.append(timed_get(api, f"/api/v1/message/{large}"))
    t_small = min(smalls)
    t_large, response = min(larges, key=lambda r: r[0])
    body = response.json()
    assert len(body["Attachments"]) == 2000
    checksum = body["Attachments"][1999]["Checksums"]
    assert checksum["SHA256"] == hashlib.sha256(bytes(range(10))).hexdigest()
    # 8 times the attachments: linear takes about 8 times as long, quadratic 64 times. The bound is between.
    assert t_large < 16 * t_small + 0.1, (t_small, t_large)
    assert t_large < 4.0, t_large  # 1,000 took 41 s of CPU before the fix


def test_checksums_match_the_part_download(server: ServerThread, api: httpx.Client) -> None:
    id_ = deliver(server, many_attachments(3))
    body = api.get(f"/api/v1/message/{id_}").json()
    for attachment in body["Attachments"]:
        data = api.get(f"/api/v1/message/{id_}/part/{attachment['PartID']}").content
        assert data == bytes(range(10))
        assert attachment["Checksums"] == {"MD5": hashlib.md5(data).hexdigest(),
                                           "SHA1": hashlib.sha1(data).hexdigest(),
                                           "SHA256": hashlib.sha256(data).hexdigest()}


def abandon(server: ServerThread, path: str, count: int) -> None:
    """`count` clients that ask for `path` and hang up at once."""
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", server.http_port)) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())


def test_abandoned_heavy_requests_do_not_starve_other_reads(server: ServerThread, api: httpx.Client) -> None:
    heavy = deliver(server, many_attachments(3000))
    normal = deliver(server, b"From: a@example.com\r\nSubject: normal\r\n\r\nhello\r\n")
    before = min(timed_get(api, f"/api/v1/message/{normal}")[0] for _ in range(3))
    abandon(server, f"/api/v1/message/{heavy}", 40)  # about 4 s of work, were it not abandoned
    elapsed, response = timed_get(api, f"/api/v1/message/{normal}")
    assert response.status_code == 200 and response.json()["Subject"] == "normal"
    # Was: behind every abandoned request, about 4 s. The bound leaves a busy CI machine room (1.2 s seen) while
    # staying well below that.
    assert elapsed < 2.0 + 10 * before, (before, elapsed)
    assert normal_send_seconds(server) < 1.0
    assert live_seconds(api) < 0.1


def test_an_abandoned_request_is_logged_as_499_not_as_a_failure(server: ServerThread,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """Off-loop work whose client left ends as a 499 (logged at INFO), never as an unexpected error's 500."""
    heavy = deliver(server, many_attachments(3000))
    caplog.set_level(logging.INFO, logger="mailnest.http")
    abandon(server, f"/api/v1/message/{heavy}", 3)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum("-> 499" in r.getMessage() for r in caplog.records) < 3:
        time.sleep(0.05)
    answered = [r.getMessage() for r in caplog.records if r.name == "mailnest.http"]
    assert sum(f"/api/v1/message/{heavy} -> 499 the client closed the connection" in m for m in answered) == 3, \
        answered
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], answered


def test_stopping_does_not_wait_for_abandoned_requests() -> None:
    running = ServerThread(Config()).start()
    heavy = deliver(running, many_attachments(3000))
    abandon(running, f"/api/v1/message/{heavy}", 80)  # about 8 s of work, were it not abandoned
    stopper = threading.Thread(target=running.stop)
    started = time.perf_counter()
    stopper.start()
    stopper.join(10)
    assert not stopper.is_alive(), "stopping hung on abandoned requests"
    stopped = time.perf_counter() - started
    print(f"stopped in {stopped:.2f} s")
    assert stopped < 5


# -- issue 12 item 4: MailHog's JSON of a deeply nested multipart ------------------------------------------------


def nested(depth: int, payload: int) -> bytes:
    """A multipart nested `depth` levels deep around one text part of `payload` bytes."""
    head = [b"From: a@example.com\r\nTo: b@example.com\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"]
    for level in range(depth):
        head.append(b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level))
    line = b"x" * 76 + b"\r\n"
    body = [b"Content-Type: text/plain\r\n\r\n", line * (payload // len(line))]
    tail = [b"--b%d--\r\n" % level for level in reversed(range(depth))]
    return b"".join(head + body + tail)


class Prober(threading.Thread):
    """Times /livez over and over while an attack runs."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.worst = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self.done.is_set():
                elapsed, response = timed_get(client, "/livez")
                assert response.status_code == 200
                self.worst = max(self.worst, elapsed)
                time.sleep(0.01)

    def __enter__(self) -> Prober:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.join(5)


def test_mailhog_json_of_a_deeply_nested_message_is_linear(server: ServerThread, api: httpx.Client) -> None:
    raw = nested(99, 2_000_000)
    assert len(raw) > 2_000_000
    deliver(server, raw)
    with Prober(server.http_url) as quiet:
        time.sleep(0.5)
    with Prober(server.http_url) as probe:
        started = time.perf_counter()
        response = api.get("/api/v2/messages")
        elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert len(response.content) < 4 * len(raw), len(response.content)  # was 217 MB for 2.1 MB
    assert elapsed < 3, elapsed
    # 100 ms, unless the machine itself is that slow (a loaded CI runner): then no worse than without the attack.
    assert probe.worst < max(0.1, 2 * quiet.worst), (quiet.worst, probe.worst)
    item = response.json()["items"][0]
    level, depth = item["MIME"], 1
    while level["Parts"][0]["MIME"] is not None:
        assert level["Parts"][0]["Body"] == ""  # a rendered multipart does not repeat its parts' bytes
        level, depth = level["Parts"][0]["MIME"], depth + 1
    assert depth == 20  # MAX_RENDER_DEPTH: below, the rest of the tree is one leaf with its raw bytes
    leaf = level["Parts"][0]
    assert leaf["Headers"]["Content-Type"] == ['multipart/mixed; boundary="b20"'] and "xxxx" in leaf["Body"]
    assert normal_send_seconds(server) < 1.0


def test_mailhog_json_of_a_shallow_multipart_keeps_mailhogs_shape(server: ServerThread, api: httpx.Client) -> None:
    deliver(server, nested(2, 1000))
    item = api.get("/api/v2/messages").json()["items"][0]
    assert item["Content"]["Body"].startswith("--b0")  # the top level keeps the whole body, as MailHog
    inner = item["MIME"]["Parts"][0]
    assert inner["Headers"]["Content-Type"] == ['multipart/mixed; boundary="b1"'] and inner["Body"] == ""
    assert inner["MIME"]["Parts"][0]["Body"].startswith("xxxx")


# -- issue 12 item 8: thousands of long-polls ------------------------------------------------------------------

WAITERS = 2000


def open_waiters(server: ServerThread, count: int, query: str) -> list[socket.socket]:
    """`count` long-polls of /api/v1/wait, each for its own query, on raw sockets (cheap to hold open)."""
    socks = []
    for i in range(count):
        sock = socket.create_connection(("127.0.0.1", server.http_port))
        target = f"/api/v1/wait?timeout=60&query={query.format(i)}".replace(" ", "%20").replace('"', "%22")
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        socks.append(sock)
    return socks


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """(status line, body) of one HTTP/1.1 response with a Content-Length, read within 10 s."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, body
        body += chunk
    return head.split(b"\r\n", 1)[0], body


def wait_until_full(api: httpx.Client) -> httpx.Response:
    """Asks to wait until the server refuses one more waiter: then every waiter opened before is registered."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = api.get("/api/v1/wait", params={"timeout": "0", "query": "subject:probe"})
        if response.status_code == 503:
            return response
        assert response.status_code == 408, response.text
        time.sleep(0.05)
    raise AssertionError("the waiters never filled up")


def ingest_seconds(server: ServerThread, count: int, subject: str) -> float:
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        for i in range(count):
            client.sendmail("a@example.com", ["b@example.com"],
                            f"From: a@example.com\r\nSubject: {subject} {i}\r\n\r\nbody {i}\r\n".encode())
    return time.perf_counter() - started


# 80% of the connections may be long-polls: 2,500 connections allow exactly 2,000 waiters.
@pytest.mark.parametrize("server_config", [Config(max_connections=2500, max_connections_per_client=2500)])
def test_two_thousand_waiters_do_not_slow_ingest(server: ServerThread, api: httpx.Client) -> None:
    ingest_seconds(server, 10, "warm-up")
    baseline = min(ingest_seconds(server, 50, "baseline") for _ in range(3))
    socks = open_waiters(server, WAITERS, 'subject:"never {}"')
    try:
        refused = wait_until_full(api)
        assert refused.headers["retry-after"] == "2" and "too many clients are waiting" in refused.json()["Error"]
        loaded = min(ingest_seconds(server, 50, "loaded") for _ in range(5))  # the least noisy of five
        print(f"50 messages: {baseline:.3f} s without waiters, {loaded:.3f} s with {WAITERS}")
        # Before the fix: 90-300x slower. A loaded CI machine has taken 3.5x (0.25 s against 0.07 s) since.
        assert loaded < 5 * baseline + 0.2, (baseline, loaded)
        assert normal_send_seconds(server) < 1.0
        assert live_seconds(api) < 0.1
        # The waiters still work: the one waiting for "never 7" gets its message.
        send(server, subject="never 7")
        status, body = read_response(socks[7])
        assert status.startswith(b"HTTP/1.1 200") and b"never 7" in body
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("server_config", [Config(max_connections=10)])
def test_waiters_over_the_cap_get_503_and_a_leaving_waiter_frees_its_place(server: ServerThread,
                                                                            api: httpx.Client) -> None:
    socks = open_waiters(server, 8, "subject:same")  # 80% of 10; all in one group
    try:
        refused = wait_until_full(api)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        socks.pop().close()  # a client that gives up leaves: its place is free again
        deadline = time.monotonic() + 5
        while api.get("/api/v1/wait", params={"timeout": "0"}).status_code == 503:
            assert time.monotonic() < deadline, "a closed waiter kept its place"
            time.sleep(0.05)
        send(server, subject="same")
        for sock in socks:
            assert read_response(sock)[0].startswith(b"HTTP/1.1 200")
    finally:
        for sock in socks:
            sock.close()
