"""The HTTP listener under attack: DNS rebinding (a forged Host with a matching Origin), and thousands of live-event
clients during ingest. Real sockets on loopback, real clients (httpx, raw websocket handshakes, smtplib)."""

from __future__ import annotations

import base64
import json
import os
import resource
import selectors
import smtplib
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import Listen
from mailnest.web.app import HostCheck, host_name
from tests.conftest import require_tool, send

# -- DNS rebinding ----------------------------------------------------------------------------------------------

EVIL = "rebind.evil.example"


def forged(server: ServerThread, name: str = EVIL) -> dict[str, str]:
    """What a browser sends once evil.example resolves to 127.0.0.1: its own name as Host, and as Origin."""
    host = f"{name}:{server.http_port}"
    return {"Host": host, "Origin": f"http://{host}"}


def handshake(port: int, host: str, path: str = "/api/events") -> bytes:
    """A raw websocket opening handshake; returns the response head."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://{host}\r\n\r\n"
                     .encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_a_rebound_name_can_neither_read_nor_change_anything(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="secret")
    headers = forged(server)
    listing = api.get("/api/v1/messages", headers=headers)
    assert listing.status_code == 400
    assert "secret" not in listing.text
    assert f"--allowed-host {EVIL}" in listing.json()["Error"]
    assert api.delete("/api/v1/messages", headers=headers).status_code == 400
    assert api.put("/api/v1/chaos", json={"Sender": {"ErrorCode": 451, "Probability": 100}},
                   headers=headers).status_code == 400
    page = api.get("/", headers=headers)
    assert page.status_code == 400 and page.headers["content-type"].startswith("text/plain")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "--allowed-host" in page.text
    assert api.get("/api/v1/message/latest/raw", headers=headers).status_code == 400
    # Nothing was changed: the message is there and chaos is off, for the real names.
    assert api.get("/api/v1/messages").json()["total"] == 1
    assert send(server, subject="still accepted")
    # Probes read nothing and stay open whatever the name (Kubernetes sends the pod's address).
    assert api.get("/livez", headers=headers).status_code == 200


def test_a_rebound_name_cannot_open_the_websocket(server: ServerThread) -> None:
    refused = handshake(server.http_port, f"{EVIL}:{server.http_port}")
    assert refused.startswith(b"HTTP/1.1 400"), refused
    assert b"--allowed-host" in refused or b"content-length" in refused.lower()
    accepted = handshake(server.http_port, f"127.0.0.1:{server.http_port}")
    assert accepted.startswith(b"HTTP/1.1 101"), accepted
    sse = httpx.get(f"{server.http_url}/api/v1/events", headers=forged(server), timeout=10)
    assert sse.status_code == 400


def test_the_names_a_local_server_is_known_by_are_served(server: ServerThread, api: httpx.Client) -> None:
    port = server.http_port
    for host in (f"127.0.0.1:{port}", "127.0.0.1", f"localhost:{port}", "LOCALHOST.", f"app.localhost:{port}",
                 f"[::1]:{port}", "[::1]", f"127.1.2.3:{port}", "127.1", f"mailnest:{port}",
                 f"[::ffff:127.0.0.1]:{port}"):
        response = api.get("/api/v1/info", headers={"Host": host, "Origin": f"http://{host}"})
        assert response.status_code == 200, (host, response.text)
    for host in ("localhost.evil.example", "127.0.0.1.nip.io", "10.0.0.1", "[::2]", "mailnest.evil.example",
                 "evil.example:8025"):
        assert api.get("/api/v1/info", headers={"Host": host}).status_code == 400, host


@pytest.mark.parametrize("server_config", [Config(allowed_hosts=("mail.test", ".dev.test", "*.lan.test"),
                                                 hostname="box.lan")])
def test_allowed_hosts_and_the_hostname_are_served(server: ServerThread, api: httpx.Client) -> None:
    for host in ("mail.test", f"MAIL.test:{server.http_port}", "dev.test", "a.b.dev.test:1", "box.lan:8025",
                 "pc.lan.test"):
        assert api.get("/api/v1/info", headers={"Host": host}).status_code == 200, host
    for host in ("mail.test.evil", "xdev.test", "mailnest", "lan.test.evil"):
        assert api.get("/api/v1/info", headers={"Host": host}).status_code == 400, host
    assert handshake(server.http_port, "a.dev.test").startswith(b"HTTP/1.1 101")


@pytest.mark.parametrize("server_config", [Config(allowed_hosts=("*",))])
def test_a_star_answers_any_name(server: ServerThread, api: httpx.Client) -> None:
    assert api.get("/api/v1/info", headers=forged(server)).status_code == 200
    assert handshake(server.http_port, EVIL).startswith(b"HTTP/1.1 101")


def test_host_names_are_read_as_browsers_send_them() -> None:
    assert host_name("Example.COM:8025") == "example.com"
    assert host_name("[::1]:8025") == "::1"
    assert host_name("localhost.") == "localhost"
    wildcard = HostCheck(lambda *a: None, allowed=(), listen_host="0.0.0.0", hostname="mailnest")  # type: ignore
    assert not wildcard.allows("0.0.0.0:8025")  # listening everywhere is not a name: --allowed-host it
    assert not wildcard.allows("192.0.2.10:8025")
    given = HostCheck(lambda *a: None, allowed=(), listen_host="192.0.2.10", hostname="mailnest")  # type: ignore
    assert given.allows("192.0.2.10:8025") and given.allows("192.0.2.10")
    v6 = HostCheck(lambda *a: None, allowed=(), listen_host="2001:db8::5", hostname="mailnest")  # type: ignore
    assert v6.allows("[2001:db8::5]:8025") and not v6.allows("[2001:db8::6]")


def test_a_server_on_every_address_still_checks_the_host() -> None:
    config = Config(http=Listen("0.0.0.0", 0), smtp=None)
    with ServerThread(config) as server:
        url = f"http://127.0.0.1:{server.http_port}"
        assert httpx.get(f"{url}/api/v1/info", timeout=10).status_code == 200
        refused = httpx.get(f"{url}/api/v1/info", headers={"Host": "192.0.2.44"}, timeout=10)
        assert refused.status_code == 400 and "--allowed-host 192.0.2.44" in refused.json()["Error"]


# -- thousands of live-event clients ----------------------------------------------------------------------------

LISTENERS = 2000


def raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"this test needs {needed} open files; the hard limit is {hard} (raise it: ulimit -Hn)")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY else hard, hard))


def open_websockets(port: int, count: int, path: str = "/api/events") -> list[socket.socket]:
    """`count` websocket handshakes at once on non-blocking sockets; the clients then never read, as stalled
    browser tabs (what the server sends them waits in the kernel's buffers)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
    return open_many(port, count, request, b"HTTP/1.1 101")


def open_event_streams(port: int, count: int) -> list[socket.socket]:
    """`count` SSE streams (`GET /api/v1/events`), opened the same way and never read."""
    request = f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    return open_many(port, count, request, b"HTTP/1.1 200")


def open_many(port: int, count: int, request: bytes, answer: bytes) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    pending: dict[socket.socket, bytes] = {}
    with selectors.DefaultSelector() as selector:
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
            sock.sendall(request)
            sock.setblocking(False)
            sockets.append(sock)
            pending[sock] = b""
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while pending:
            assert time.monotonic() < deadline, f"{len(pending)} handshakes unanswered"
            for key, _ in selector.select(timeout=1):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                pending[sock] += sock.recv(65536)
                if b"\r\n\r\n" in pending[sock]:
                    assert pending[sock].startswith(answer), pending[sock][:200]
                    del pending[sock]
                    selector.unregister(sock)
    return sockets


def ingest(smtp_port: int, count: int, tag: str) -> float:
    """Seconds to send `count` messages one after another over one SMTP connection."""
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.test", timeout=30) as client:
        for i in range(count):
            client.sendmail("load@example.com", ["rcpt@example.com"],
                            f"From: load@example.com\r\nTo: rcpt@example.com\r\nSubject: {tag} {i}\r\n\r\n"
                            f"{'body ' * 40}\r\n")
    return time.monotonic() - started


@pytest.fixture
def serving(tmp_path: Path) -> Iterator[dict[str, int]]:
    """`mailnest serve` in its own process, as people run it: its loop does not share this process's GIL with
    the test's clients, so what is timed is the server."""
    raise_fd_limit(2 * LISTENERS + 512)  # the child inherits the limit; this process holds the client ends
    ports_file = tmp_path / "ports.json"
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mailnest.cli", "serve", "--smtp", "127.0.0.1:0", "--http",
                                 "127.0.0.1:0", "--imap", "off", "--pop3", "off", "--ports-file", str(ports_file),
                                 "--log-level", "WARNING"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while not (ports_file.exists() and ports_file.read_text().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.02)
        yield json.loads(ports_file.read_text())
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("opener", [open_websockets, open_event_streams], ids=["websockets", "sse"])
def test_two_thousand_stalled_listeners_barely_slow_ingest(serving: dict[str, int],
                                                          opener: Callable[[int, int], list[socket.socket]]) -> None:
    """Issue 12 item 8: 2,000 websockets made 50 messages take 18.5 s instead of 0.06 s (measured before this
    fix: 1.6 s with websockets, 5.5 s with SSE streams, against `mailnest serve`). Each fan-out is now rendered
    once, handed out a slice of clients at a time, and spaced by what the last one cost."""
    smtp_port, http_port = serving["smtp"], serving["http"]
    ingest(smtp_port, 5, "warm-up")
    alone = sum(ingest(smtp_port, 50, f"alone {run}") for run in range(3)) / 3
    sockets = opener(http_port, LISTENERS)
    try:
        # Once, unmeasured: the server's first fan-outs to the new crowd, and the collector's one full pass over
        # the objects of 2,000 new connections (about 0.1 s), belong to opening them, not to feeding them.
        ingest(smtp_port, 50, "crowd warm-up")
        probes: dict[str, list[float]] = {"smtp": [], "livez": []}
        done = threading.Event()

        def probe(api: httpx.Client) -> None:  # a normal client, again and again while the crowd is being fed
            while not done.is_set():
                started = time.monotonic()
                with smtplib.SMTP("127.0.0.1", smtp_port, local_hostname="client.test", timeout=10) as client:
                    client.sendmail("normal@example.com", ["rcpt@example.com"], "Subject: normal\r\n\r\nhi\r\n")
                probes["smtp"].append(time.monotonic() - started)
                started = time.monotonic()
                assert api.get("/livez").text == "ok"
                probes["livez"].append(time.monotonic() - started)
                time.sleep(0.01)

        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=10) as api:
            api.get("/livez")  # the probe's connection is open before the clock starts
            prober = threading.Thread(target=probe, args=(api,))
            prober.start()
            try:
                # Three runs back to back (0.15 s or more in all): longer than the interval between fan-outs, so
                # the time includes them.
                crowded = sum(ingest(smtp_port, 50, "crowded" if run == 2 else f"crowd {run}")
                              for run in range(3)) / 3
            finally:
                done.set()
                prober.join(30)
        slowest = {name: max(times) for name, times in probes.items()}
        print(f"50 messages: {alone:.3f}s alone, {crowded:.3f}s with {LISTENERS} listeners; slowest probes "
              f"{slowest} of {len(probes['smtp'])}")
        # Before the fix: 1.6 s (websockets) and 5.5 s (SSE); a busy CI machine has taken 0.86 s since.
        assert crowded < max(5 * alone, 1.0), (alone, crowded)
        # The typical probe meets the bounds (about 3 ms each when idle); the worst of every probe gets
        # more room, as a busy CI machine can stall one for a few hundred ms. Before the fix a fan-out held the
        # loop for seconds.
        assert statistics.median(probes["livez"]) < 0.1, probes
        assert statistics.median(probes["smtp"]) < 0.2, probes
        assert slowest["smtp"] < 2.0 and slowest["livez"] < 0.5, probes  # 1.27 s seen on a loaded CI machine
        # Every client was sent the news: each sampled socket holds the crowded messages.
        for sock in sockets[:: LISTENERS // 20]:
            sock.setblocking(True)
            sock.settimeout(10)
            received = b""
            while b"crowded 49" not in received:
                received += sock.recv(1 << 20)
    finally:
        for sock in sockets:
            sock.close()


def test_the_readme_curl_examples_still_work(server: ServerThread) -> None:
    """The README's curl lines use 127.0.0.1 and localhost: the Host check must let both through."""
    curl = require_tool("curl")
    send(server, subject="hello from the readme")
    for host in ("127.0.0.1", "localhost"):
        base = f"http://{host}:{server.http_port}"
        for path in ("/api/v1/messages", "/api/v1/message/latest", "/api/v1/message/latest/raw",
                     "/api/v1/wait?query=subject:hello&timeout=5"):
            run = subprocess.run([curl, "-s", "-f", "--max-time", "10", base + path], capture_output=True,
                                 timeout=20, check=False)
            assert run.returncode == 0 and b"hello from the readme" in run.stdout, (host, path, run)
    refused = subprocess.run([curl, "-s", "-H", "Host: rebind.evil.example", f"{server.http_url}/api/v1/messages"],
                             capture_output=True, timeout=20, check=False)
    assert b"--allowed-host rebind.evil.example" in refused.stdout
