"""`/view/{ID}.html`: the message's own HTML, as Mailpit serves it for browser tests (cypress-mailpit visits it and
clicks what it finds), made harmless by its headers: a sandbox without scripts, nothing fetched from elsewhere
unless `?remote=1`. The UI's own iframe keeps the sanitized document (`/view/{ID}.preview.html`)."""

from __future__ import annotations

from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from mailnest import ServerThread
from tests.conftest import http_site
from tests.web.conftest import UI, mail, send_raw
from tests.web.test_ui_hostile import hostile_message
from tests.web.test_ui_routes import csp

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db00000000049454e44ae426082")

EMAIL = """<html><head><style>.cta {{ color: rgb(1, 2, 3) }}</style></head><body>
<h1 id="title" data-test="heading">Confirm your address</h1>
<script>window.__pwned = 1; document.title = "pwned"; new Image().src = "/pwned-script";</script>
<img id="broken" src="x" onerror="window.__pwned = 2; new Image().src = '/pwned-onerror'">
<img id="logo" src="cid:logo@mail.test" alt="logo">
<img id="tracker" src="{remote}/pixel.png" alt="">
<form id="confirm" action="/api/v1/search" method="get">
  <input name="query" value="subject:confirm">
  <button id="confirm-btn" class="cta" type="submit" data-test="confirm">Confirm</button>
</form>
<a id="link" href="/api/v1/info">release notes</a>
<a id="jslink" href="javascript:window.__pwned=3">javascript</a>
</body></html>"""


class _Recorder(BaseHTTPRequestHandler):
    """A remote image host: records every request it gets."""

    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def remote_host() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Recorder", (_Recorder,), {"seen": seen})
    with http_site(handler) as url:
        yield url, seen


def send_email(server: ServerThread, remote: str) -> str:
    mail(server, subject="confirm", html=EMAIL.format(remote=remote), inline=(("logo@mail.test", PNG, "image/png"),))
    with httpx.Client(base_url=server.http_url) as client:
        return str(client.get("/api/v1/messages").json()["messages"][0]["ID"])


def test_the_original_html_is_served_as_written_under_a_sandbox(server: ServerThread, api: httpx.Client) -> None:
    message_id = send_email(server, "https://img.example")
    response = api.get(f"/view/{message_id}.html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    message = api.get(f"/api/v1/message/{message_id}").json()
    part = next(p["PartID"] for p in message["Inline"] + message["Attachments"] if p["ContentID"] == "logo@mail.test")
    # Only the cid: reference changed: script, form, button, data-* and the remote image are all there.
    assert response.text == message["HTML"].replace("cid:logo@mail.test", f"/api/v1/message/{message_id}/part/{part}")
    assert "<script>" in response.text and 'data-test="confirm"' in response.text
    policy = csp(response)
    assert policy["default-src"] == "'none'"
    assert "script-src" not in policy
    sandbox = policy["sandbox"].split()
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox
    assert {"allow-forms", "allow-popups", "allow-top-navigation-by-user-activation"} <= set(sandbox)
    assert policy["img-src"] == "'self' data:" and policy["base-uri"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-dns-prefetch-control"] == "off"  # CSP does not cover dns-prefetch links
    assert response.headers["x-frame-options"] == "SAMEORIGIN"

    remote = api.get(f"/view/{message_id}.html", params={"remote": "1"})
    assert remote.text == response.text
    assert csp(remote)["img-src"] == "'self' data: http: https:"
    assert "script-src" not in csp(remote) and csp(remote)["sandbox"] == policy["sandbox"]

    assert api.get("/view/latest.html").text == response.text
    assert 'target="_blank"' not in response.text
    embedded = api.get(f"/view/{message_id}.html", params={"embed": "1"}).text
    assert '<a id="link" href="/api/v1/info" target="_blank" rel="noreferrer noopener">' in embedded
    assert embedded.count('target="_blank"') == 2
    assert embedded.replace(' target="_blank" rel="noreferrer noopener"', "") == response.text


def test_the_original_html_answers_404_and_400_as_mailpit(server: ServerThread, api: httpx.Client) -> None:
    assert api.get("/view/nope.html").status_code == 404
    assert api.get("/view/latest.html").status_code == 404
    mail(server, subject="plain", text="only text\n")
    text_only = api.get("/view/latest.html")
    assert text_only.status_code == 404 and "no HTML part" in text_only.text
    assert "sandbox" in text_only.headers["content-security-policy"]
    bad = api.get("/view/latest.html", params={"query": 'subject:"open'})
    assert bad.status_code == 400 and bad.text.strip()
    assert api.get("/view/latest.txt").text.startswith("only text")


def test_in_a_browser_nothing_runs_and_nothing_remote_loads(ui: UI, remote_host: tuple[str, list[str]]) -> None:
    origin, seen = remote_host
    message_id = send_email(ui.server, origin)
    page = ui.page
    # Let this one foreign origin through the harness, so a request to it would arrive there.
    page.route(f"{origin}/**", lambda route: route.continue_())
    page.goto(f"{ui.url}/view/{message_id}.html")
    page.locator("#title").wait_for()
    page.wait_for_function("() => document.querySelector('#logo').complete")
    assert page.evaluate("() => document.querySelector('#logo').naturalWidth") == 1  # the cid: image loaded
    assert page.evaluate("() => document.querySelector('#tracker').naturalWidth") == 0
    # What a browser test looks for is there, as written.
    assert page.locator('form#confirm button[data-test="confirm"]').count() == 1
    assert page.locator("#confirm-btn").evaluate("b => getComputedStyle(b).color") == "rgb(1, 2, 3)"
    page.locator("#jslink").click()
    page.wait_for_timeout(500)
    assert page.evaluate("() => window.__pwned") is None
    assert page.title() != "pwned"
    assert not [url for url in ui.watch.requests if "/pwned" in url]
    assert ui.watch.dialogs == []
    assert seen == []  # the remote image was never asked for

    page.goto(f"{ui.url}/view/{message_id}.html?remote=1")
    page.wait_for_function("() => document.querySelector('#tracker').complete")
    assert seen == ["/pixel.png"]  # asked for: loaded (so the check above could fail)
    assert page.evaluate("() => window.__pwned") is None


def test_hostile_mail_opened_as_written_runs_nothing_and_loads_nothing(ui: UI) -> None:
    """The hostile corpus of test_ui_hostile, unsanitized: the sandbox and the CSP alone must hold. Every script,
    handler, `javascript:` link, meta refresh, `<base>`, frame, object and remote URL in it is inert."""
    send_raw(ui.server, hostile_message())
    message_id = ui.api.get("/api/v1/messages").json()["messages"][0]["ID"]
    page = ui.page
    page.goto(f"{ui.url}/view/{message_id}.html")
    page.locator("#title").wait_for()
    assert page.locator("form button#submit").count() == 1  # as written, not sanitized
    for link in ("#jslink", "#entitylink", "#datalink", "#clicky"):
        page.locator(link).click()
    page.locator("#clicky").hover()
    page.wait_for_timeout(1200)
    assert page.url == f"{ui.url}/view/{message_id}.html"
    assert page.evaluate("() => window.__pwned") is None
    for frame in page.frames:
        try:
            assert frame.evaluate("() => window.__pwned") is None, frame.url
        except Exception as exc:  # a frame with no script context at all is fine too
            if isinstance(exc, AssertionError):
                raise
    assert ui.watch.dialogs == []
    assert not [url for url in ui.watch.requests if "/pwned" in url]
    assert ui.watch.foreign == []  # refused by the CSP before any request was made
    refused = [text for _, text in ui.watch.console if "sandboxed" in text or "Content Security Policy" in text]
    assert refused  # the browser says it refused what the markup asked for


def test_in_a_browser_links_and_forms_work_as_in_the_email(ui: UI) -> None:
    message_id = send_email(ui.server, "https://img.invalid")
    page = ui.page
    page.goto(f"{ui.url}/view/{message_id}.html")
    page.locator("#confirm-btn").click()
    page.wait_for_url("**/api/v1/search?query=subject*")
    assert page.url.endswith("/api/v1/search?query=subject%3Aconfirm")
    page.goto(f"{ui.url}/view/{message_id}.html")
    page.locator("#link").click()
    page.wait_for_url("**/api/v1/info")


def test_the_ui_still_shows_the_sanitized_preview(ui: UI) -> None:
    message_id = send_email(ui.server, "https://img.invalid")
    ui.open()
    ui.open_message("confirm")
    frame = ui.page.frame_locator("#html-frame")
    frame.locator("#title").wait_for()
    assert ui.page.locator("#html-frame").evaluate("f => f.src") == f"{ui.url}/view/{message_id}.preview.html"
    assert frame.locator("form, button, script").count() == 0
    assert frame.locator("#logo").evaluate("img => img.complete && img.naturalWidth") == 1


# --- /view/{ID}, /view/latest, /search: the links Mailpit clients print open the UI there ---------------------


def test_ui_links_redirect_to_the_page_with_its_state(server: ServerThread, api: httpx.Client) -> None:
    assert api.get("/view/latest").headers["location"] == "/"  # nothing yet: the page itself, as Mailpit
    mail(server, subject="first")
    mail(server, subject="second")
    first, second = (m["ID"] for m in reversed(api.get("/api/v1/messages").json()["messages"]))
    for path, location in [(f"/view/{first}", f"/#id={first}"), ("/view/latest", f"/#id={second}"),
                           ("/view/latest?query=subject:first", f"/#id={first}"),
                           ("/search?q=subject:first is:unread", "/#q=subject%3Afirst%20is%3Aunread"),
                           ("/search?q=", "/")]:
        response = api.get(path)
        assert (response.status_code, response.headers["location"]) == (302, location), path
    assert api.get("/view/latest", params={"query": 'subject:"open'}).status_code == 400


def test_following_ui_links_in_a_browser_opens_the_message_or_search(ui: UI) -> None:
    mail(ui.server, subject="older one")
    mail(ui.server, subject="newest one")
    older, newest = (m["ID"] for m in reversed(ui.api.get("/api/v1/messages").json()["messages"]))
    page = ui.page
    for path, opened in [(f"/view/{older}", older), ("/view/latest", newest)]:
        page.goto(ui.url + path)
        page.wait_for_selector(f'#message[data-ready="{opened}"]')
        assert page.locator("#msg-subject").inner_text() == ("older one" if opened == older else "newest one")
        assert page.locator(f'.row.open[data-id="{opened}"]').count() == 1
    page.goto(ui.url + "/search?q=subject:older")
    page.wait_for_function("() => document.querySelectorAll('.row[data-id]').length === 1")
    assert ui.subjects() == ["older one"]
    assert page.locator("#search").input_value() == "subject:older"
