"""The message's HTML check and Spam tabs (issue 15, items 2 and 3) in a real browser against the real server: the
HTML check from the caniemail data set, the spam score from a real SpamAssassin spamd (and, without one, a tab that
says so and how to enable it). Both ask the server only when their tab is opened."""

from __future__ import annotations

import time
from typing import Any

import pytest

from mailnest import Config
from tests.test_spamd import GTUBE, spamd  # noqa: F401  (a fixture: importing it registers it here)
from tests.web.conftest import UI, mail, send_raw

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])

FEATURES_HTML = """<html><head><style>.row { display: flex; }</style></head>
<body><div class="row"><p>Watch this</p><video src="https://video.example/clip.mp4" controls></video></div></body></html>"""


@pytest.fixture
def server_config(request: pytest.FixtureRequest) -> Config:
    """A test that asks for `spamd` gets a server that uses it; the others have none."""
    if "spamd" in request.fixturenames:
        return Config(spamassassin=request.getfixturevalue("spamd"))
    return Config()


def requested(ui: UI, fragment: str) -> list[str]:
    return [url for url in ui.watch.requests if fragment in url]


def message_id(ui: UI, subject: str) -> str:
    messages = ui.api.get("/api/v1/search", params={"query": f'subject:"{subject}"'}).json()["messages"]
    return str(messages[0]["ID"])


def fits(ui: UI, width: int) -> None:
    assert ui.page.evaluate("document.documentElement.scrollWidth") <= width


@SIZES
def test_the_html_check_tab_loads_when_opened_and_shows_the_score_the_features_and_each_client(
        ui: UI, size: dict[str, int]) -> None:
    ui.page.set_viewport_size(size)
    mail(ui.server, subject="flex and video", html=FEATURES_HTML)
    expected: dict[str, Any] = ui.api.get(f"/api/v1/message/{message_id(ui, 'flex and video')}/html-check").json()
    ui.open()
    ui.open_message("flex and video")
    ui.page.wait_for_timeout(300)
    assert requested(ui, "/html-check") == []  # not before its tab is opened
    panel = ui.tab("html-check")
    body = ui.page.locator("#html-check-body[data-loaded]")
    body.wait_for()
    assert len(requested(ui, "/html-check")) == 1
    # The total first: the server's figure, rounded.
    assert ui.page.inner_text("#html-check-score") == f"{round(expected['Total']['Supported'])}%"
    summary = ui.page.inner_text(".check-summary")
    assert f"{round(expected['Total']['Unsupported'])}% not supported" in summary
    assert f"{len(expected['Warnings'])} features in {expected['Total']['Nodes']} HTML elements" in summary
    # Every feature found, grouped by kind: <video> under HTML, display:flex under CSS.
    slugs = panel.locator("details.feature").evaluate_all("els => els.map((el) => el.dataset.slug)")
    assert sorted(slugs) == sorted(w["Slug"] for w in expected["Warnings"])
    assert panel.locator('[data-category="html"] [data-slug="html-video"]').count() == 1
    assert panel.locator('[data-category="css"] [data-slug="css-display-flex"]').count() == 1
    video = panel.locator('[data-slug="html-video"]')
    warning = next(w for w in expected["Warnings"] if w["Slug"] == "html-video")
    assert f"{round(warning['Score']['Supported'])}% supported" in video.locator("summary").inner_text()
    # Opened: each client family with its platforms' support, and the notes as text (the data's markup rebuilt).
    video.locator("summary").click()
    gmail = video.locator(".support-table tr", has=ui.page.locator("th", has_text="Gmail"))
    assert gmail.count() == 1
    latest = {}
    for r in warning["Results"]:
        if r["Family"] == "gmail" and r["Platform"] == "desktop-webmail":
            latest = r  # the data lists each platform's tests oldest first
    cell = gmail.locator('[data-platform="desktop-webmail"]')
    assert cell.count() == 1
    verdict = {"yes": "Supported", "partial": "Partial", "no": "Not supported"}[latest["Support"]]
    assert cell.locator(".verdict").inner_text() == verdict
    assert cell.locator(".version").inner_text().strip() == latest["Version"]
    if latest["NoteNumber"]:
        assert cell.locator(".note-ref").inner_text() == latest["NoteNumber"]
    notes = video.locator(".feature-notes li")
    assert notes.count() == len(warning["NotesByNumber"])
    first_note = notes.first.inner_text()
    assert "<video>" in first_note and "&lt;" not in first_note and "<code>" not in first_note
    assert video.locator(".feature-notes code").count() > 0
    assert ui.page.locator(".feature-notes a[href]").evaluate_all(
        "els => els.every((a) => /^https?:/.test(a.href) && a.target === '_blank')")
    fits(ui, size["width"])
    # Back and forth between tabs: asked once.
    ui.tab("text")
    ui.tab("html-check")
    assert len(requested(ui, "/html-check")) == 1


def test_a_text_only_message_has_no_html_check_tab_and_asks_for_none(ui: UI) -> None:
    mail(ui.server, subject="just words")
    ui.open()
    ui.open_message("just words")
    assert ui.page.locator('[role="tab"][data-tab="html-check"]').is_hidden()
    assert ui.page.locator('[role="tab"][data-tab="spam"]').is_visible()  # spam is for every message
    ui.page.wait_for_timeout(300)
    assert requested(ui, "/html-check") == []


@SIZES
def test_the_spam_tab_shows_a_real_spamds_score_verdict_and_rules(ui: UI, spamd: str, size: dict[str, int]) -> None:  # noqa: F811
    ui.page.set_viewport_size(size)
    send_raw(ui.server, GTUBE, sender="sender@example.com", rcpt=("rcpt@example.org",))
    mail(ui.server, subject="an ordinary note", text="See you at lunch tomorrow.\n")
    # spamd's first checks can pass mailnest's 10 s limit on a loaded machine (it is still loading its rules):
    # asked through the API until it answers, so the page meets a warm spamd.
    deadline = time.monotonic() + 180
    while True:
        expected = ui.api.get(f"/api/v1/message/{message_id(ui, 'GTUBE')}/sa-check").json()
        if not expected["Error"] or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert expected["Error"] == "" and expected["IsSpam"] is True, expected
    ui.open()
    ui.open_message("GTUBE")
    ui.page.wait_for_timeout(300)
    assert requested(ui, "/sa-check") == []  # not before its tab is opened
    ui.tab("spam")
    ui.page.locator("#spam-body[data-loaded]").wait_for(timeout=60_000)
    assert ui.page.inner_text("#spam-score") == f"{expected['Score']:.1f}"
    assert ui.page.inner_text("#spam-verdict") == "Spam"
    rows = ui.page.locator(".spam-rules tbody tr")
    assert rows.count() == len(expected["Rules"])
    gtube = ui.page.locator('.spam-rules tr[data-rule="GTUBE"]')
    rule = next(r for r in expected["Rules"] if r["Name"] == "GTUBE")
    assert gtube.locator("td").all_inner_texts() == [f"{rule['Score']:.1f}", "GTUBE", rule["Description"]]
    fits(ui, size["width"])
    # Another message: its own check, and this one is not spam.
    if size["width"] <= 800:
        ui.page.click("#back-btn")
    ui.open_message("an ordinary note")
    ui.tab("spam")
    ui.page.wait_for_function("() => document.querySelector('#spam-verdict')?.textContent === 'Not spam'", timeout=60_000)
    assert len(requested(ui, "/sa-check")) == 2


@SIZES
def test_without_spamd_the_spam_tab_says_it_is_unavailable_and_how_to_enable_it(ui: UI, size: dict[str, int]) -> None:
    ui.page.set_viewport_size(size)
    mail(ui.server, subject="no spamd here")
    ui.open()
    ui.open_message("no spamd here")
    ui.page.wait_for_function("() => window.performance.getEntriesByType('resource').some((e) => e.name.includes('api/v1/webui'))")
    panel = ui.tab("spam")
    ui.page.locator("#spam-body[data-loaded]").wait_for()
    text = panel.inner_text()
    reason = ui.api.get(f"/api/v1/message/{message_id(ui, 'no spamd here')}/sa-check").json()["Error"]
    assert "Spam check unavailable" in text and reason in text
    assert "--spamassassin HOST:PORT" in text and "MAILNEST_SPAMASSASSIN" in text
    assert ui.page.locator("#spam-score").count() == 0  # no made-up score of 0
    fits(ui, size["width"])
