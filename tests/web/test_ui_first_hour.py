"""The web UI as a new user meets it in the first hour (issue 16, items 13 to 23): counts that say what the list
shows, text-only mail opened on its text, a bad query kept on screen as an error, Delete on the open message with
undo, a shortcuts sheet, an empty inbox that says how to send the first mail, and the small things."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailnest import Config, ServerThread
from mailnest.config import Listen
from mailnest.models import Envelope
from mailnest.web.ui import smtp_address
from tests.web.conftest import UI, Browser, mail


def add(ui: UI, subject: str, *, html: bool = False, to: str = "alice@example.com", text: str = "hello") -> None:
    """Store one message straight into the store (fast: 25 of them need no 25 SMTP sessions)."""
    body = (b"Content-Type: text/html; charset=utf-8\r\n\r\n<p>hi</p>\r\n" if html
            else b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + text.encode() + b"\r\n")
    raw = f"From: sender@example.com\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n".encode() + body
    ui.server.call(ui.server.store.add(raw, Envelope("sender@example.com", (to,))))


def ids(ui: UI, query: str) -> list[str]:
    return [m["ID"] for m in ui.api.get("/api/v1/search", params={"query": query}).json()["messages"]]


# -- item 14: a search counts its own unread ------------------------------------------------------------------

def test_a_search_shows_the_unread_count_of_what_it_matches(ui: UI) -> None:
    for i in range(8):
        add(ui, f"invoice {i}")
    for i in range(17):
        add(ui, f"newsletter {i}")
    first = ids(ui, "invoice")[0]
    assert ui.api.put("/api/v1/messages", json={"IDs": [first], "Read": True}).status_code == 200
    ui.open()
    ui.page.wait_for_function("() => document.querySelector('#list-count').textContent.includes('24 unread')")
    assert ui.page.inner_text("#list-count") == "25 messages · 24 unread"
    ui.page.fill("#search", "invoice")
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_function("() => document.querySelector('#list-count').textContent.startsWith('8 matching')")
    assert ui.page.inner_text("#list-count") == "8 matching · 7 unread"
    ui.page.fill("#search", "is:read")
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_function("() => document.querySelector('#list-count').textContent.startsWith('1 matching')")
    assert ui.page.inner_text("#list-count") == "1 matching · 0 unread"


# -- item 18: text-only mail opens on its text ----------------------------------------------------------------

def test_a_text_only_message_opens_on_the_text_tab_without_asking_for_html(ui: UI) -> None:
    add(ui, "with html", html=True)
    add(ui, "plain words")
    ui.open()
    ui.open_message("plain words")
    html_tab = ui.page.locator('[role="tab"][data-tab="html"]')
    text_tab = ui.page.locator('[role="tab"][data-tab="text"]')
    assert html_tab.is_hidden()
    assert text_tab.get_attribute("aria-selected") == "true"
    assert ui.page.locator('[data-panel="text"]').is_visible()
    assert ui.page.inner_text("#text-body").strip() == "hello"
    assert not [u for u in ui.watch.requests if ".preview.html" in u], ui.watch.requests
    # An HTML message after it gets its HTML tab back, and opens on it.
    ui.open_message("with html")
    assert html_tab.is_visible()
    assert html_tab.get_attribute("aria-selected") == "true"
    assert ui.page.frame_locator("#html-frame").locator("p").inner_text() == "hi"
    assert len([u for u in ui.watch.requests if ".preview.html" in u]) == 1


# -- item 22: a bad query is an error on screen, not an empty result -----------------------------------------

def test_a_bad_query_keeps_the_servers_error_on_screen_until_it_is_fixed(ui: UI) -> None:
    add(ui, "a big one")
    ui.open()
    error = ui.page.locator("#search-error")
    assert error.is_hidden()
    reason = ui.api.get("/api/v1/search", params={"query": "larger:abc"}).json()["Error"]
    ui.page.fill("#search", "larger:abc")
    ui.page.keyboard.press("Enter")
    error.wait_for(state="visible")
    assert reason in error.inner_text() and "error" in error.inner_text().lower()
    assert ui.page.get_attribute("#search", "aria-invalid") == "true"
    assert ui.page.locator("#list-empty").is_hidden()  # not "No messages": nothing was searched
    assert "matching" not in ui.page.inner_text("#list-count")
    # It stays: no passing toast (live refreshes included).
    ui.page.wait_for_timeout(3500)
    add(ui, "arrives meanwhile")
    ui.page.wait_for_timeout(1000)
    assert error.is_visible() and reason in error.inner_text()
    # Still bad, differently: the new reason replaces the old one.
    ui.page.fill("#search", "after:notadate")
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_function("() => document.querySelector('#search-error').textContent.includes('notadate')")
    # Fixed: the error goes and the search runs.
    ui.page.fill("#search", "larger:1")
    ui.page.keyboard.press("Enter")
    error.wait_for(state="hidden")
    ui.page.wait_for_function("() => document.querySelector('#list-count').textContent.startsWith('2 matching')")
    assert ui.page.get_attribute("#search", "aria-invalid") is None


# -- item 13: Delete acts on the open message, with undo -------------------------------------------------------

def subjects_on_server(ui: UI) -> list[str]:
    return [m["Subject"] for m in ui.api.get("/api/v1/messages").json()["messages"]]


def test_delete_key_deletes_the_open_message_not_the_highlighted_row_and_can_be_undone(ui: UI) -> None:
    for subject in ("third", "second", "first"):
        add(ui, subject)
    ui.open()
    watcher = ui.page.context.new_page()  # a second tab on the same server watches the list live
    watcher.goto(ui.url + "/")
    watcher.wait_for_selector(".row[data-id]")
    ui.page.bring_to_front()
    ui.open_message("second")
    ui.page.locator("#list").focus()
    ui.page.keyboard.press("j")  # the highlight moves to "third"; "second" is still the one being read
    assert ui.page.locator(".row.selected .subj").inner_text() == "third"
    ui.page.keyboard.press("Delete")
    assert ui.page.locator("#message").is_hidden()
    deleting = ui.page.locator(".row.deleting .subj")
    assert deleting.all_inner_texts() == ["second"]
    undo = ui.page.locator("#toasts button", has_text="Undo")
    assert undo.is_visible()
    # Undo is true: nothing was deleted yet, anywhere.
    assert subjects_on_server(ui) == ["first", "second", "third"]
    undo.click()
    assert ui.page.locator(".row.deleting").count() == 0
    ui.page.wait_for_timeout(6500)  # past the undo window: still nothing deleted
    assert subjects_on_server(ui) == ["first", "second", "third"]
    assert watcher.locator(".row[data-id] .subj").all_inner_texts() == ["first", "second", "third"]

    # Without undo the delete happens once the window has passed, and every tab follows.
    ui.open_message("second")
    ui.page.locator("#list").focus()
    ui.page.keyboard.press("Delete")
    ui.page.wait_for_function("() => document.querySelectorAll('.row[data-id]').length === 2", timeout=15000)
    assert ui.subjects() == ["first", "third"]
    assert subjects_on_server(ui) == ["first", "third"]
    watcher.wait_for_function("() => document.querySelectorAll('.row[data-id]').length === 2", timeout=15000)
    assert ui.page.locator("#toasts button", has_text="Undo").count() == 0


def test_the_delete_button_also_offers_undo_and_closing_the_page_keeps_the_delete(ui: UI) -> None:
    add(ui, "keep")
    add(ui, "doomed")
    ui.open()
    ui.open_message("doomed")
    ui.page.click("#delete-btn")
    assert ui.page.locator("#toasts button", has_text="Undo").is_visible()
    assert subjects_on_server(ui) == ["doomed", "keep"]
    ui.page.close()  # within the undo window: the delete asked for still reaches the server
    deadline = time.monotonic() + 15
    while subjects_on_server(ui) != ["keep"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert subjects_on_server(ui) == ["keep"]


# -- item 15: the shortcuts sheet, and tooltips that name the keys ---------------------------------------------

def test_question_mark_opens_a_sheet_of_every_key_and_buttons_name_their_keys(ui: UI) -> None:
    add(ui, "one")
    ui.open()
    sheet = ui.page.locator("#shortcuts-dialog")
    assert sheet.is_hidden()
    ui.page.keyboard.press("?")
    sheet.wait_for(state="visible")
    rows = ui.page.locator("#shortcuts-table tr")
    keys = {k for row in rows.all() for k in row.locator("kbd").all_inner_texts()}
    for key in ("j", "k", "↓", "↑", "Enter", "Delete", "/", "Esc", "?", "u", "c"):
        assert key in keys, (key, keys)
    ui.page.keyboard.press("Escape")
    sheet.wait_for(state="hidden")
    # The keys the sheet lists are the keys that work: "c" opens compose, as the sheet says.
    ui.page.keyboard.press("c")
    ui.page.locator("#compose-dialog").wait_for(state="visible")
    ui.page.keyboard.press("Escape")
    # A button with a key names it in its tooltip.
    assert ui.page.get_attribute("#compose-btn", "title").endswith("(c)")
    assert ui.page.get_attribute("#delete-btn", "title").endswith("(Delete)")
    assert ui.page.get_attribute("#toggle-read-btn", "title").endswith("(u)")
    # The way to the sheet does not go away once a message is open.
    ui.open_message("one")
    assert ui.page.locator("#message-empty").is_hidden()
    assert ui.page.locator("#shortcuts-btn").is_visible()
    ui.page.click("#shortcuts-btn")
    sheet.wait_for(state="visible")
    ui.page.keyboard.press("Escape")
    # "u" does what the sheet says: the open message goes back to unread.
    ui.page.locator("#list").focus()
    ui.page.keyboard.press("u")
    ui.page.wait_for_function("() => document.querySelector('#toggle-read-btn').textContent === 'Mark read'")


def test_shortcuts_sheet_at_phone_size(ui: UI) -> None:
    ui.page.set_viewport_size({"width": 390, "height": 844})
    add(ui, "one")
    ui.open()
    assert ui.page.locator("#shortcuts-btn").is_visible()
    ui.page.click("#shortcuts-btn")
    box = ui.page.locator("#shortcuts-dialog").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390


# -- item 16: the empty inbox says how to send the first mail ---------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server_config() -> Config:
    """A fixed SMTP port, which the page can name (with port 0 only the bound port would tell; see ui.py)."""
    return Config(smtp=Listen("127.0.0.1", free_port()))


@pytest.mark.parametrize("size", [{"width": 1280, "height": 800}, {"width": 390, "height": 844}], ids=["desktop", "phone"])
def test_the_empty_inbox_is_centred_names_the_smtp_address_and_a_send_line(ui: UI, size: dict[str, int]) -> None:
    ui.page.set_viewport_size(size)
    ui.page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=ui.url)
    ui.open()
    empty = ui.page.locator("#list-empty")
    empty.wait_for(state="visible")
    address = f"127.0.0.1:{ui.server.smtp_port}"
    assert ui.page.inner_text("#smtp-address") == address
    command = f"mailnest send --to dev@example.com --smtp {address}"
    assert ui.page.inner_text("#send-command") == command
    assert ui.page.locator("#message-empty").is_hidden()  # no "Select a message" with nothing to select
    assert "Select a message" not in ui.page.inner_text("body")
    # Centred on the page, not at the bottom of the list pane.
    box = empty.bounding_box()
    title = ui.page.locator("#empty-title").bounding_box()
    assert box is not None and title is not None
    assert abs((title["x"] + title["width"] / 2) - size["width"] / 2) < size["width"] * 0.05
    assert size["height"] * 0.2 < title["y"] < size["height"] * 0.6
    width = ui.page.evaluate("document.documentElement.scrollWidth")
    assert width <= size["width"]
    ui.page.click("#copy-send-command")
    assert ui.page.evaluate("navigator.clipboard.readText()") == command
    # The command works as printed: the first mail arrives and the empty state goes.
    cli = Path(sys.executable).parent / "mailnest"
    subprocess.run([str(cli), *command.split()[1:]], check=True, capture_output=True, timeout=60)
    ui.page.locator(".row[data-id]").first.wait_for(timeout=8000)
    assert empty.is_hidden()
    if size["width"] > 800:
        assert ui.page.locator("#message-empty").is_visible()  # now there is something to select


def test_a_search_without_matches_is_not_an_empty_inbox(ui: UI) -> None:
    add(ui, "present")
    ui.open()
    ui.page.fill("#search", "nothingmatchesthis")
    ui.page.keyboard.press("Enter")
    ui.page.locator("#list-empty").wait_for(state="visible")
    assert ui.page.inner_text("#empty-title") == "No messages match this search"
    assert ui.page.locator("#send-command").is_hidden()


# -- item 23: plurals, compose's From, the source's wrap toggle -------------------------------------------------

def test_one_message_is_one_message_not_one_messages(ui: UI) -> None:
    mail(ui.server, subject="only one", attachments=(("a.txt", b"x", "text/plain"),))
    ui.open()
    assert ui.page.inner_text("#list-count") == "1 message · 1 unread"
    assert ui.page.get_attribute(".row[data-id] .clip", "title") == "1 attachment"


def test_compose_sends_from_what_its_placeholder_says(ui: UI) -> None:
    ui.open()
    ui.page.click("#compose-btn")
    placeholder = ui.page.get_attribute('#compose-form input[name="from"]', "placeholder")
    ui.page.fill('#compose-form input[name="to"]', "bob@example.com")
    ui.page.fill('#compose-form input[name="subject"]', "from the placeholder")
    ui.page.click("#compose-send")
    ui.page.locator(".row[data-id]", has_text="from the placeholder").wait_for(timeout=8000)
    sent = ui.api.get("/api/v1/messages").json()["messages"][0]
    assert sent["From"]["Address"] == placeholder


def test_the_source_view_wraps_long_lines_or_not(ui: UI) -> None:
    add(ui, "long lines", text="word " * 400)  # one line of 2,000 characters, as stored
    ui.open()
    ui.open_message("long lines")
    panel = ui.tab("source")
    source = ui.page.locator("#source-body")
    source.wait_for()
    ui.page.wait_for_function("() => document.querySelector('#source-body').textContent.includes('word word')")
    overflows = "el => el.scrollWidth > el.clientWidth + 1"
    button = ui.page.locator("#wrap-source-btn")
    assert button.get_attribute("aria-pressed") == "true"
    assert not source.evaluate(overflows)
    button.click()
    assert button.get_attribute("aria-pressed") == "false"
    assert source.evaluate(overflows)  # one long line, scrolling sideways
    # The choice is kept for the next message and the next visit.
    ui.page.reload()
    ui.page.wait_for_selector(".row[data-id]")
    ui.open_message("long lines")
    ui.tab("source")
    ui.page.wait_for_function("() => document.querySelector('#source-body').textContent.includes('word word')")
    assert ui.page.get_attribute("#wrap-source-btn", "aria-pressed") == "false"
    assert source.evaluate(overflows)
    ui.page.click("#wrap-source-btn")
    assert not source.evaluate(overflows)
    assert panel.is_visible()


def test_a_tab_picked_while_the_message_loads_is_the_one_shown(ui: UI) -> None:
    """Opening a message (again) withdraws its "ready" mark until it has loaded, and a tab chosen meanwhile is kept
    rather than replaced by the default one when the message arrives (a reload that reopened the message from the
    address raced a click on Source this way)."""
    add(ui, "slow one", html=True)
    ui.open()
    ui.open_message("slow one")
    held: list = []
    ui.page.route("**/api/v1/message/*", lambda route: held.append(route))
    ui.page.locator(".row[data-id]", has_text="slow one").click()
    ui.page.wait_for_function("() => !document.querySelector('#message').dataset.ready")
    ui.tab("source")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        ui.page.wait_for_timeout(20)
    assert held, "the message was not asked for again"
    held[0].continue_()
    ui.page.unroute("**/api/v1/message/*")
    ui.page.wait_for_selector("#message[data-ready]")
    ui.page.wait_for_function("() => document.querySelector('#source-body').textContent.includes('<p>hi</p>')")
    assert ui.page.locator('[data-panel="source"]').is_visible()
    assert not ui.page.locator('[data-panel="html"]').is_visible()
    assert ui.page.get_attribute('[role="tab"][data-tab="source"]', "aria-selected") == "true"


# -- item 20: a phone (390 x 844) ------------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}


def test_phone_top_bar_is_one_row_and_the_search_help_fits(ui: UI) -> None:
    add(ui, "on a phone", html=True)
    ui.page.set_viewport_size(PHONE)
    ui.open()
    tops = ui.page.evaluate("""() => [...document.querySelectorAll('.topbar > *, .topbar-actions > *')]
        .filter((el) => el.offsetParent !== null && !el.classList.contains('topbar-actions'))
        .map((el) => { const r = el.getBoundingClientRect(); return [el.id || el.className, r.top, r.bottom]; })""")
    assert len(tops) >= 5, tops
    middles = [(top + bottom) / 2 for _, top, bottom in tops]
    assert max(middles) - min(middles) < 12, tops  # one row
    assert ui.page.locator(".topbar").bounding_box()["height"] < 64
    # The buttons keep their names for screen readers and tests, shown as icons.
    assert ui.page.get_by_role("button", name="Compose").is_visible()
    assert ui.page.get_by_role("button", name="Delete all").is_visible()
    ui.page.click("#search-help-btn")
    help_box = ui.page.locator("#search-help").bounding_box()
    assert help_box is not None and help_box["x"] >= 0 and help_box["x"] + help_box["width"] <= PHONE["width"]
    assert ui.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert ui.page.evaluate("document.body.scrollWidth") <= PHONE["width"]


def test_phone_tab_strip_scrolls_with_a_cue(ui: UI) -> None:
    add(ui, "many tabs", html=True)
    ui.page.set_viewport_size(PHONE)
    ui.open()
    ui.open_message("many tabs")
    strip = ui.page.locator(".tabs")
    assert strip.evaluate("el => el.scrollWidth > el.clientWidth")  # more tabs than fit
    ui.page.wait_for_function("() => document.querySelector('.tabs').dataset.more === 'right'")
    cue = strip.evaluate("el => getComputedStyle(el, '::after').content")
    assert cue not in ("none", "normal", ""), cue
    strip.evaluate("el => el.scrollLeft = el.scrollWidth")
    ui.page.wait_for_function("() => document.querySelector('.tabs').dataset.more === 'left'")
    ui.tab("links")  # the last tab, reached by scrolling, works
    assert ui.page.locator('[data-panel="links"]').is_visible()
    assert ui.page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_phone_compose_send_is_on_screen(ui: UI) -> None:
    ui.page.set_viewport_size(PHONE)
    ui.open()
    ui.page.click("#compose-btn")
    send = ui.page.locator("#compose-send")
    box = send.bounding_box()
    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= PHONE["height"], box
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    ui.page.fill('#compose-form input[name="to"]', "bob@example.com")
    ui.page.fill('#compose-form input[name="subject"]', "sent from a phone")
    # Still on screen with the form scrolled to its top and a long text typed in.
    ui.page.fill('#compose-form textarea[name="text"]', "line\n" * 80)
    ui.page.locator("#compose-dialog").evaluate("el => el.scrollTop = 0")
    box = send.bounding_box()
    assert box is not None and box["y"] + box["height"] <= PHONE["height"], box
    send.click()
    ui.page.locator(".row[data-id]", has_text="sent from a phone").wait_for(timeout=8000)


def test_a_port_picked_at_start_is_the_one_the_page_names(browser: Browser) -> None:
    """With `--smtp :0` the configuration says 0: the page names the port really bound, never send's default."""
    with ServerThread(Config()) as server:
        browser.watch.reset(server.http_url)
        page = browser.context.new_page()
        try:
            page.goto(server.http_url + "/")
            page.locator("#list-empty").wait_for(state="visible")
            assert page.inner_text("#send-command") == (
                f"mailnest send --to dev@example.com --smtp 127.0.0.1:{server.smtp_port}")
            assert page.locator("#empty-smtp-unknown").is_hidden()
        finally:
            page.close()
    assert browser.watch.page_errors == []


def test_the_page_names_the_configured_smtp_address(ui: UI) -> None:
    """ui.py writes the address into the page: a wildcard host becomes the host the page was reached by."""
    assert smtp_address(Config(smtp=Listen("127.0.0.1", 1025))) == "127.0.0.1:1025"
    assert smtp_address(Config(smtp=Listen("0.0.0.0", 2525))) == "*:2525"
    assert smtp_address(Config(smtp=Listen("::1", 2525))) == "[::1]:2525"
    assert smtp_address(Config(smtp=Listen("127.0.0.1", 0))) == ""
    assert smtp_address(Config(smtp=Listen("127.0.0.1", 0)), 40000) == "127.0.0.1:40000"
    assert smtp_address(Config(smtp=None)) == ""
    page = ui.api.get("/").text
    assert f'<meta name="mailnest-smtp" content="127.0.0.1:{ui.server.smtp_port}">' in page
