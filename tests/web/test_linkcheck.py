"""Link check: links found in a message, requested for real against a local HTTP server, private addresses refused
unless allowed (Config.allow_private_link_check)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.web.linkcheck import blocked_address, extract
from tests.conftest import http_site, send


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
    with http_site(Site) as url:
        yield url


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


# Every IPv6 spelling that carries a non-global IPv4 address (issue 12 item 12): 169.254.169.254 is the cloud
# metadata service, 127.0.0.1 loopback, 10.0.0.1 private. Teredo's client address is stored XORed with ones.
EMBEDDED_PRIVATE = [
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:0a00:0001:1234::5",  # 6to4 of 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo, client 169.254.169.254
    "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix
    "64:ff9b::127.0.0.1",
    "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix (RFC 8215)
    "64:ff9b:1:a9fe:a9:fe00::",  # the same in RFC 6052's /48 layout (u-octet skipped)
    "::a9fe:a9fe",  # IPv4-compatible
    "::127.0.0.1",
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:a9fe:a9fe",
    "::ffff:0:169.254.169.254",  # IPv4-translated (SIIT)
]


@pytest.mark.parametrize("address", EMBEDDED_PRIVATE)
def test_ipv6_forms_embedding_a_private_ipv4_address_are_blocked(address: str) -> None:
    assert blocked_address(address)


@pytest.mark.parametrize("address", ["2002:808:808::1", "64:ff9b::8.8.8.8", "::ffff:8.8.8.8",
                                     "2001:4860:4860::8888"])
def test_ipv6_forms_embedding_a_global_ipv4_address_are_allowed(address: str) -> None:
    assert not blocked_address(address)


def test_link_check_refuses_every_embedded_spelling_over_http(server: ServerThread, api: httpx.Client) -> None:
    send(server, body="".join(f"http://[{address}]/latest/meta-data/\n" for address in EMBEDDED_PRIVATE))
    result = link_check(api)
    assert result["Errors"] == len(EMBEDDED_PRIVATE)
    for link in result["Links"]:
        assert link["StatusCode"] == 0, link
        assert link["Status"].startswith("blocked:") and "--allow-private-link-check" in link["Status"], link


def test_link_extraction_is_linear_on_an_unclosed_html_tail() -> None:
    """HTMLParser rescans an unclosed tail on every feed: 16 KB of `<a` took 0.12 s and 1 MB would take minutes."""
    import time

    from mailnest.web.linkcheck import extract

    def cost(n: int) -> float:
        html = '<a href="http://x.test/">x</a>' + "<a" * n
        start = time.process_time()
        assert extract("", html) == ["http://x.test/"]
        return time.process_time() - start

    small = min(cost(50_000) for _ in range(3))
    large = min(cost(200_000) for _ in range(3))
    assert large < max(small, 0.005) * 8, (small, large)  # 4x the input: linear is ~4x, quadratic ~16x
