"""Browser fixtures for the web UI tests: Debian's Chromium driven by Playwright, one per xdist worker.

Every page is watched: a dialog, an uncaught page error, or a request to any host other than the test server
is recorded (and the request aborted), so a test can prove that nothing ran and nothing left the machine.
"""

from __future__ import annotations

import os
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import pytest

from mailnest import ServerThread
from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def missing(what: str) -> NoReturn:
    """Skip where a piece is missing, except in CI, where a missing piece is a failure."""
    if IN_CI:
        pytest.fail(f"{what} (required in CI)")
    pytest.skip(what)


@dataclass
class Watch:
    """What a page did that a test may need to assert did not happen."""

    allowed_origin: str = ""
    foreign: list[str] = field(default_factory=list)  # requests to any other origin (aborted)
    dialogs: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    console: list[tuple[str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL requested from the test server

    def reset(self, origin: str) -> None:
        self.allowed_origin = origin
        for record in (self.foreign, self.dialogs, self.page_errors, self.console, self.requests):
            record.clear()


@dataclass
class Browser:
    context: Any  # playwright BrowserContext
    watch: Watch


@pytest.fixture(scope="session")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        missing(f"Chromium is not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("the playwright package is not installed")
    profile = tmp_path_factory.mktemp("chromium-profile")  # a fresh user-data-dir for each worker
    playwright = sync_playwright().start()
    context = playwright.chromium.launch_persistent_context(
        str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS, accept_downloads=True,
        viewport={"width": 1280, "height": 800}, color_scheme="light", locale="en-US", timezone_id="UTC",
        service_workers="block",
    )
    watch = Watch()

    def route(route: Any) -> None:
        url = route.request.url
        origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
        if url.startswith(("data:", "blob:", "about:")) or origin == watch.allowed_origin:
            watch.requests.append(url)
            route.continue_()
        else:
            watch.foreign.append(url)
            route.abort("blockedbyclient")

    def on_page(page: Any) -> None:
        page.on("dialog", lambda dialog: (watch.dialogs.append(dialog.message), dialog.dismiss()))
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        page.on("console", lambda message: watch.console.append((message.type, message.text)))

    context.route("**/*", route)
    context.on("page", on_page)
    try:
        yield Browser(context, watch)
    finally:
        context.close()
        playwright.stop()


@dataclass
class UI:
    """A page on a running mailnest, with the server and what the page did."""

    page: Any
    server: ServerThread
    watch: Watch
    api: httpx.Client

    @property
    def url(self) -> str:
        return self.server.http_url

    def open(self, fragment: str = "") -> None:
        self.page.goto(self.url + "/" + fragment)
        self.page.wait_for_selector("#list-count:not(:empty)")

    def rows(self) -> Any:
        return self.page.locator(".row[data-id]")

    def subjects(self) -> list[str]:
        return self.page.locator(".row[data-id] .subj").all_inner_texts()

    def open_message(self, subject: str) -> None:
        """Click the row with this subject and wait until header and preview are both in."""
        row = self.page.locator(".row[data-id]", has_text=subject).first
        message_id = row.get_attribute("data-id")
        row.click()
        self.page.wait_for_selector(f'#message[data-ready="{message_id}"]')

    def tab(self, name: str) -> Any:
        self.page.click(f'[role="tab"][data-tab="{name}"]')
        return self.page.locator(f'[data-panel="{name}"]')


@pytest.fixture
def ui(browser: Browser, server: ServerThread) -> Iterator[UI]:
    browser.watch.reset(server.http_url)
    page = browser.context.new_page()
    try:
        with httpx.Client(base_url=server.http_url, timeout=30) as client:
            yield UI(page, server, browser.watch, client)
    finally:
        for extra in browser.context.pages:
            extra.close()
    # The UI itself must never throw, whatever the mail looked like.
    assert browser.watch.page_errors == [], browser.watch.page_errors


def require_endpoint(client: httpx.Client, method: str, path: str, body: object = None) -> None:
    """For UI pieces whose API endpoint comes from another part of mailnest: run once it exists.

    The probe must name things that exist (a real message ID), so that a 404 can only mean "no such route".
    """
    response = client.request(method, path, json=body)
    if response.status_code in (404, 405):
        missing(f"{method} {path} is not served by this mailnest yet ({response.status_code})")


def mail(server: ServerThread, *, subject: str = "Hello", sender: str = "Sender <sender@example.com>",
         to: tuple[str, ...] = ("alice@example.com",), cc: tuple[str, ...] = (), rcpt: tuple[str, ...] | None = None,
         text: str = "Hello there.\n", html: str | None = None,
         attachments: tuple[tuple[str, bytes, str], ...] = (), inline: tuple[tuple[str, bytes, str], ...] = (),
         headers: dict[str, str] | None = None, helo: str = "client.test") -> bytes:
    """Build a message with the stdlib and send it over SMTP; returns the bytes sent.

    `inline` parts are (content-id, bytes, type) related to the HTML body; `rcpt` adds envelope recipients
    beyond the headers (Bcc).
    """
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = subject
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(text)
    if html is not None:
        msg.add_alternative(html, subtype="html")
        if inline:
            html_part = msg.get_payload()[-1]
            for cid, data, ctype in inline:
                maintype, subtype = ctype.split("/")
                html_part.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{cid}>",
                                      filename=f"{cid.split('@')[0]}.{subtype}")
    for name, data, ctype in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    raw = bytes(msg)
    envelope_from = sender.rpartition("<")[2].rstrip(">") or sender
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname=helo) as client:
        client.sendmail(envelope_from, list(rcpt or (*to, *cc)), raw)
    return raw


def send_raw(server: ServerThread, raw: bytes, *, sender: str = "evil@example.com",
             rcpt: tuple[str, ...] = ("alice@example.com",)) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        client.sendmail(sender, list(rcpt), raw)


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def screenshot(page: Any, name: str, scratch: Path) -> Path:
    """Take a screenshot. With MAILNEST_UPDATE_SCREENSHOTS=1 it replaces the README's docs/screenshots/NAME.png;
    otherwise it goes to `scratch`, so an ordinary test run leaves the work tree clean."""
    folder = SCREENSHOTS if os.environ.get("MAILNEST_UPDATE_SCREENSHOTS") == "1" else scratch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    return path
