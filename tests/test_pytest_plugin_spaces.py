"""The pytest plugin against a shared remote server (`--mailnest-url`), through pytester: each test gets a mailbox
on demand, made with a retention and deleted with its mail after the test (kept after a failure, for a look); a
server without mailboxes on demand (an older mailnest, here behind a proxy that answers as one does) still works,
with today's domains, and is asked only once per session. Real servers, real HTTP, real SMTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpcore  # noqa: F401  (see tests/test_pytest_plugin.py: imported before any in-process pytester run)
import httpx
import pytest

from mailnest.client import Client
from mailnest.pytest_plugin import SPACE_MAX_AGE
from mailnest.runtime import ServerThread

pytest_plugins = ["pytester"]

INNER = r'''
import smtplib
from pathlib import Path
import pytest

def _use(mailnest, name):
    with open(Path(__file__).with_name("domains.txt"), "a") as log:
        log.write(f"{name} {mailnest.domain}\n")
    with smtplib.SMTP(mailnest.smtp_host, mailnest.smtp_port) as smtp:
        smtp.sendmail("app@example.com", [mailnest.address("alice")], f"Subject: {name}\r\n\r\nhi\r\n")
        smtp.sendmail("app@example.com", ["outsider@example.com"], f"Subject: outside {name}\r\n\r\n.\r\n")
    [mail] = mailnest.wait_for(timeout=10)
    assert mail.subject == name
    assert [s.subject for s in mailnest.messages()] == [name]

@pytest.mark.parametrize("n", range(3))
def test_passes(mailnest, n):
    _use(mailnest, f"passes {n}")

def test_fails(mailnest):
    _use(mailnest, "fails")
    assert False, "on purpose"
'''


def domains(pytester: pytest.Pytester) -> dict[str, str]:
    lines = (pytester.path / "domains.txt").read_text().splitlines()
    return dict(line.rsplit(" ", 1) for line in lines)


def run_inner(pytester: pytest.Pytester, http_url: str, smtp_port: int) -> pytest.RunResult:
    pytester.makepyfile(test_inner=INNER)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--timeout=60", "--mailnest-url", http_url,
                                         "--mailnest-smtp", f"127.0.0.1:{smtp_port}")


def test_each_test_gets_a_mailbox_deleted_after_it_passes(pytester: pytest.Pytester) -> None:
    with ServerThread() as shared, Client(shared.http_url) as client:
        result = run_inner(pytester, shared.http_url, shared.smtp_port)
        result.assert_outcomes(passed=3, failed=1)
        used = domains(pytester)
        assert len(set(used.values())) == 4
        for name, domain in used.items():
            assert domain.startswith(name.split()[0]) and domain.endswith(".mailnest.test"), domain
        remaining = sorted(s.subject for s in client.messages(limit=100))
        # The passed tests' mailboxes went with their mail; the failed test's stays (its retention takes it).
        assert remaining == ["fails", "outside fails", "outside passes 0", "outside passes 1", "outside passes 2"]
        kept = client.mailbox(used["fails"])
        assert (kept.total, kept.max_age) == (1, SPACE_MAX_AGE)
        for n in range(3):
            assert httpx.get(f"{shared.http_url}/api/v1/mailboxes/{used[f'passes {n}']}").status_code == 404


class OlderServer:
    """A real HTTP proxy in front of a real mailnest, answering the mailboxes on demand routes as a mailnest
    without them does (405 for the POST, 404 under the path); counts the POSTs it refused."""

    def __init__(self, upstream: str) -> None:
        self.refused = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.split("?")[0]
                if path.startswith("/api/v1/mailboxes/") or (path == "/api/v1/mailboxes" and self.command != "GET"):
                    proxy.refused += self.command == "POST"
                    status = 405 if path == "/api/v1/mailboxes" else 404
                    reason = "Method Not Allowed (allowed: GET)" if status == 405 else "Not Found"
                    self._reply(status, json.dumps({"Error": f"{self.command} {path}: {reason}"}).encode(),
                                "application/json")
                    return
                with httpx.Client(base_url=upstream, timeout=60) as client:
                    answer = client.request(self.command, self.path, content=body,
                                            headers={"Content-Type": self.headers.get("Content-Type", "")})
                self._reply(answer.status_code, answer.content, answer.headers.get("content-type", ""))

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = _answer

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def older(tmp_path: Path) -> Iterator[tuple[ServerThread, OlderServer]]:
    with ServerThread() as upstream:
        proxy = OlderServer(upstream.http_url)
        try:
            yield upstream, proxy
        finally:
            proxy.close()


def test_a_server_without_mailboxes_on_demand_gets_todays_domains(
        pytester: pytest.Pytester, older: tuple[ServerThread, OlderServer]) -> None:
    upstream, proxy = older
    result = run_inner(pytester, proxy.url, upstream.smtp_port)
    result.assert_outcomes(passed=3, failed=1)
    assert proxy.refused == 1  # asked once; the session then knew
    used = domains(pytester)
    assert len(set(used.values())) == 4 and all(d.endswith(".mailnest.test") for d in used.values())
    with Client(upstream.http_url) as client:
        assert client.messages(limit=100).total == 8  # nothing deleted: as before
