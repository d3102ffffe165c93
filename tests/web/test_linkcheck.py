"""Link check: links found in a message, requested for real against a local HTTP server, private addresses refused
unless allowed (Config.allow_private_link_check)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.web.linkcheck import blocked_address, extract
from tests.conftest import send


class Site(BaseHTTPRequestHandler):
    def _answer(self, with_body: bool) -> None:
        routes = {"/ok": (200, {}), "/missing": (404, {}), "/moved": (302, {"Location": "/ok"}),
                  "/loop": (302, {"Location": "/loop"}), "/gone-away": (301, {"Location": "/missing"})}
        if self.path == "/no-head":
            status, headers = (405, {}) if self.command == "HEAD" else (200, {})
        else:
            status, headers = routes.get(self.path, (500, {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", "2")
        self.end_headers()
        if with_body:
            self.wfile.write(b"ok")

    def do_HEAD(self) -> None:
        self._answer(False)

    def do_GET(self) -> None:
        self._answer(True)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Site)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_extract_links() -> None:
    html = ('<a href="https://a.example/x">a</a><img src="http://b.example/i.png"><a href="mailto:x@y">m</a>'
            '<a href="/relative">r</a><a href="https://a.example/x">again</a>')
    text = "See https://c.example/page?q=1, or (https://d.example/). Not ftp://e.example."
    assert extract(text, html) == ["https://a.example/x", "http://b.example/i.png", "https://c.example/page?q=1",
                                   "https://d.example/"]
    assert extract("", "<a href='http://x.example'") == []  # unfinished tag: no crash
    assert len(extract(" ".join(f"http://h{i}.example" for i in range(500)), "")) == 100


@pytest.mark.parametrize(("address", "blocked"), [
    ("127.0.0.1", True), ("10.1.2.3", True), ("192.168.0.1", True), ("169.254.169.254", True), ("::1", True),
    ("fe80::1", True), ("fc00::1", True), ("::ffff:127.0.0.1", True), ("0.0.0.0", True), ("224.0.0.1", True),
    ("93.184.216.34", False), ("2606:4700::1111", False),
])
def test_blocked_addresses(address: str, blocked: bool) -> None:
    assert blocked_address(address) is blocked


def link_check(api: httpx.Client, follow: bool = False) -> dict:
    response = api.get("/api/v1/message/latest/link-check", params={"follow": "true"} if follow else {})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_private_addresses_are_refused_by_default(server: ServerThread, api: httpx.Client, site: str) -> None:
    send(server, body=f"Visit {site}/ok and http://localhost:{site.rsplit(':', 1)[1]}/ok\n")
    result = link_check(api)
    assert result["Errors"] == 2
    for link in result["Links"]:
        assert link["StatusCode"] == 0 and "--allow-private-link-check" in link["Status"]


@pytest.mark.parametrize("server_config", [Config(allow_private_link_check=True)])
def test_links_are_checked_when_allowed(server: ServerThread, api: httpx.Client, site: str) -> None:
    links = ["ok", "missing", "moved", "no-head", "gone-away", "loop"]
    send(server, body="\n".join(f"{site}/{name}" for name in links) + "\n")
    plain = {link["URL"].rsplit("/", 1)[1]: (link["StatusCode"], link["Status"]) for link in link_check(api)["Links"]}
    assert plain == {"ok": (200, "OK"), "missing": (404, "Not Found"), "moved": (302, "Found"),
                     "no-head": (200, "OK"), "gone-away": (301, "Moved Permanently"), "loop": (302, "Found")}
    followed = link_check(api, follow=True)
    by_name = {link["URL"].rsplit("/", 1)[1]: link["StatusCode"] for link in followed["Links"]}
    assert by_name == {"ok": 200, "missing": 404, "moved": 200, "no-head": 200, "gone-away": 404, "loop": 302}
    assert followed["Errors"] == 2


def test_link_check_errors(server: ServerThread, api: httpx.Client) -> None:
    assert api.get("/api/v1/message/nope/link-check").status_code == 404
    send(server, body="No links at all.\n")
    assert link_check(api) == {"Errors": 0, "Links": []}
    send(server, body="http://unresolvable.invalid/x\n")
    result = link_check(api)
    assert result["Errors"] == 1 and "resolve" in result["Links"][0]["Status"]
