"""`--webroot /mail/` (and MAILNEST_WEBROOT): every HTTP route under the path, end to end against `mailnest serve`
in its own process, with httpx, a websocket client, `mailnest readyz` and Chromium."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import Browser

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")


@dataclass
class Served:
    smtp: int
    http: int
    log: Path

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.http}"

    def send(self, subject: str, *, html: str | None = None) -> None:
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = "sender@example.com", "alice@example.com", subject
        msg.set_content("Hello there.\n")
        if html is not None:
            msg.add_alternative(html, subtype="html")
            msg.get_payload()[-1].add_related(PNG, maintype="image", subtype="png", cid="<logo@mail.test>")
        with smtplib.SMTP("127.0.0.1", self.smtp) as client:
            client.send_message(msg)


@contextmanager
def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    ports_file = tmp_path / "ports.json"
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "mailnest.cli", "serve", "--smtp", "127.0.0.1:0", "--http",
                                 "127.0.0.1:0", "--imap", "off", "--pop3", "off", "--ports-file", str(ports_file),
                                 "--log-level", "WARNING", *args],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    try:
        deadline = time.monotonic() + 20
        while not (ports_file.exists() and ports_file.read_text().endswith("\n")):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.02)
        ports = json.loads(ports_file.read_text())
        yield Served(ports["smtp"], ports["http"], log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def mail_root(tmp_path: Path) -> Iterator[Served]:
    with serve(tmp_path, "--webroot", "/mail/") as served:
        yield served


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_every_route_answers_under_the_webroot(mail_root: Served) -> None:
    with httpx.Client(base_url=mail_root.origin, timeout=10) as client:
        for path in ("/mail/livez", "/mail/readyz", "/mail/api/v1/info", "/mail/api/v1/webui", "/mail/api/v1/messages",
                     "/mail/api/v2/messages", "/mail/", "/mail/static/js/main.js"):
            assert client.get(path).status_code == 200, path
        mail_root.send("under the root", html='<p id="p">hi</p><img id="logo" src="cid:logo@mail.test">')
        wait_for(lambda: client.get("/mail/api/v1/messages").json()["total"] == 1, "the message is listed")
        message_id = client.get("/mail/api/v1/messages").json()["messages"][0]["ID"]
        assert client.get(f"/mail/api/v1/message/{message_id}").json()["Subject"] == "under the root"
        assert client.get("/mail/api/v2/messages").json()["total"] == 1  # MailHog's API too

        # Documents link the parts under the webroot, and those links work.
        original = client.get(f"/mail/view/{message_id}.html").text
        preview = client.get(f"/mail/view/{message_id}.preview.html").text
        for document in (original, preview):
            start = document.index(f"/mail/api/v1/message/{message_id}/part/")
            part = client.get(document[start:document.index('"', start)])
            assert part.status_code == 200 and part.content == PNG
        assert client.get("/mail/view/latest.txt").text.startswith("Hello there.")
        # Redirects (the UI links, Starlette's trailing slash) stay under the webroot.
        assert client.get(f"/mail/view/{message_id}").headers["location"] == f"/mail/#id={message_id}"
        assert client.get("/mail/search", params={"q": "x"}).headers["location"] == "/mail/#q=x"
        slash = client.get("/mail/api/v1/messages/")
        assert slash.status_code in (301, 302, 307, 308)
        assert httpx.URL(slash.headers["location"]).path == "/mail/api/v1/messages"
        assert client.get(f"{mail_root.origin}//mail//view/latest.txt").headers["location"] == "/mail/view/latest.txt"

        # Live events under the webroot: SSE here, the websocket below.
        with client.stream("GET", "/mail/api/v1/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")

        # Outside it: the bare root and the root without its slash lead in; anything else is a 404 that says where.
        assert client.get("/").headers["location"] == "/mail/"
        assert client.get("/mail").headers["location"] == "/mail/"
        outside = client.get("/api/v1/messages")
        assert outside.status_code == 404 and "/mail/" in outside.json()["Error"]
        for path in ("/livez", "/view/latest.txt", "/static/js/main.js", "/mailbox"):
            response = client.get(path)
            assert response.status_code == 404 and "--webroot" in response.text, path


def test_websocket_and_mcp_under_the_webroot(mail_root: Served) -> None:
    websockets = pytest.importorskip("websockets.sync.client")
    with websockets.connect(f"ws://127.0.0.1:{mail_root.http}/mail/api/events", open_timeout=10) as socket:
        mail_root.send("over the socket")
        deadline = time.monotonic() + 20
        types: list[str] = []
        while "new" not in types:
            assert time.monotonic() < deadline, types
            for line in str(socket.recv(timeout=max(0.1, deadline - time.monotonic()))).splitlines():
                types.append(json.loads(line)["Type"])
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused, \
            websockets.connect(f"ws://127.0.0.1:{mail_root.http}/api/events", open_timeout=10):
        pass
    assert refused.value.response.status_code == 403  # outside the webroot
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"protocolVersion": "2025-03-26", "capabilities": {},
                             "clientInfo": {"name": "test", "version": "1"}}}
    with httpx.Client(base_url=mail_root.origin, timeout=30,
                      headers={"Accept": "application/json, text/event-stream"}) as client:
        answer = client.post("/mail/mcp", json=initialize)
        assert answer.status_code == 200 and "mailnest" in answer.text
        assert client.post("/mcp", json=initialize).status_code == 404


def test_readyz_probe_and_the_variable(tmp_path: Path) -> None:
    with serve(tmp_path, env={"MAILNEST_WEBROOT": "/tools/mail"}) as served:
        check_readyz(served)


def check_readyz(served: Served) -> None:
    with httpx.Client(base_url=served.origin, timeout=10) as client:
        assert client.get("/tools/mail/readyz").status_code == 200
        assert client.get("/readyz").status_code == 404
        assert client.get("/").headers["location"] == "/tools/mail/"

    def readyz(webroot: str | None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "MAILNEST_HTTP": f"127.0.0.1:{served.http}"}
        env.pop("MAILNEST_WEBROOT", None)
        if webroot is not None:
            env["MAILNEST_WEBROOT"] = webroot
        return subprocess.run([sys.executable, "-m", "mailnest.cli", "readyz"], env=env, capture_output=True,
                              text=True, timeout=60)

    assert readyz("/tools/mail/").returncode == 0
    missed = readyz(None)
    assert missed.returncode == 1 and "/readyz answered 404" in missed.stderr
    url = subprocess.run([sys.executable, "-m", "mailnest.cli", "readyz", "--url",
                          f"{served.origin}/tools/mail/"], capture_output=True, text=True, timeout=60)
    assert url.returncode == 0, url.stderr


def test_the_ui_works_under_the_webroot(browser: Browser, mail_root: Served) -> None:
    browser.watch.reset(mail_root.origin)
    page = browser.context.new_page()
    try:
        page.goto(mail_root.origin + "/")  # the bare port leads to the UI
        assert page.url == mail_root.origin + "/mail/"
        page.wait_for_selector("#list-count:not(:empty)")
        page.wait_for_selector('#live[data-state="live"]')
        assert page.locator("#live").get_attribute("title") == "Live updates (websocket)"
        mail_root.send("live under the root", html='<p id="hello">Hello from under the root</p>'
                                                   '<img id="logo" src="cid:logo@mail.test">')
        row = page.locator(".row[data-id]", has_text="live under the root")
        row.wait_for()  # arrived live, no reload
        message_id = row.get_attribute("data-id")
        row.click()
        page.wait_for_selector(f'#message[data-ready="{message_id}"]')
        frame = page.frame_locator("#html-frame")
        assert frame.locator("#hello").inner_text() == "Hello from under the root"
        frame.locator("#logo").evaluate("img => img.complete || new Promise(r => img.onload = r)")
        assert frame.locator("#logo").evaluate("img => img.naturalWidth") == 1
        page.click('[role="tab"][data-tab="source"]')
        page.wait_for_function("() => document.querySelector('#source-body').textContent.includes('Subject:')")
        # A UI link from a failure report opens the message under the webroot too.
        page.goto(f"{mail_root.origin}/mail/view/{message_id}")
        page.wait_for_selector(f'#message[data-ready="{message_id}"]')
        outside = [url for url in browser.watch.requests if not url.startswith(mail_root.origin + "/mail/")]
        assert outside == [mail_root.origin + "/"], outside  # only the first request, which was redirected
        assert browser.watch.foreign == [] and browser.watch.page_errors == []
    finally:
        page.close()


def test_the_label_titles_the_ui(browser: Browser, tmp_path: Path) -> None:
    """`--label NAME` (item 4 of issue 14): in the document title and the header, as text, as Mailpit shows it."""
    label = "staging <b>&amp; co</b>"
    with serve(tmp_path, "--webroot", "/mail/", "--label", label) as served:
        browser.watch.reset(served.origin)
        page = browser.context.new_page()
        try:
            page.goto(served.origin + "/mail/")
            page.wait_for_selector("#list-count:not(:empty)")
            assert page.title() == f"mailnest - {label}"
            badge = page.locator("#instance-label")
            assert badge.is_visible() and badge.inner_text() == label
            assert page.locator(".topbar b").count() == 0  # text, not markup
            served.send("counted")
            page.wait_for_function("() => document.title.startsWith('(1) ')")
            assert page.title() == f"(1) mailnest - {label}"
        finally:
            page.close()
    with serve(tmp_path / "plain") as served, httpx.Client(base_url=served.origin) as client:
        page_html = client.get("/").text
        assert "<title>mailnest</title>" in page_html and 'id="instance-label"' in page_html
