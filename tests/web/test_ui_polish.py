"""The web UI's remaining small things (issue 16, items 21, 23 and 24): a top bar that keeps its layout while its
labels change, live again within seconds of a server restart, three row highlights told apart (open, selected,
hover) in both themes, browser notifications for new mail, and the mailbox list by most recent mail."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from mailnest import Config, ServerThread
from mailnest.config import Listen
from mailnest.models import Envelope
from tests.web.conftest import UI, Browser, mail

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SIZES = pytest.mark.parametrize("size", [DESKTOP, PHONE], ids=["desktop", "phone"])
TOPBAR = ["#brand", "#mailbox", "#search-form", "#live", "#compose-btn", "#delete-all-btn"]


def add(server: ServerThread, subject: str, to: str = "alice@example.com") -> None:
    """Store one message straight into the store (fast: no SMTP session per message)."""
    raw = (f"From: sender@example.com\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n").encode()
    server.call(server.store.add(raw, Envelope("sender@example.com", (to,))))


def layout(page: Any) -> list[list[Any]]:
    """Where each item of the top bar is: [selector, left, width], to the pixel."""
    return page.evaluate("""(selectors) => selectors.map((s) => {
        const r = document.querySelector(s).getBoundingClientRect();
        return [s, Math.round(r.left), Math.round(r.width)];
    })""", TOPBAR)


def wait_live(page: Any, state: str, timeout: float = 10_000) -> None:
    page.locator(f'#live[data-state="{state}"]').wait_for(timeout=timeout)


# -- item 23: the top bar keeps its layout as its labels change -------------------------------------------------

@SIZES
def test_the_top_bar_does_not_move_as_counts_and_labels_change(ui: UI, size: dict[str, int]) -> None:
    ui.page.set_viewport_size(size)
    add(ui.server, "first", to="a@example.com")
    ui.open()
    ui.page.wait_for_function("() => document.querySelectorAll('#mailbox-group option').length === 1")
    wait_live(ui.page, "live")
    before = layout(ui.page)
    # The mailbox's counts grow from (1/1) to (120/120), and a longer address joins the list.
    for i in range(119):
        add(ui.server, f"more {i}", to="a@example.com")
    add(ui.server, "long", to="a-much-longer-mailbox-address-than-before@subdomain.example.com")
    ui.page.wait_for_function("() => [...document.querySelectorAll('#mailbox-group option')].some((o) => o.textContent.includes('(120/120)'))",
                              timeout=15_000)
    assert layout(ui.page) == before
    # A search relabels "Delete all" as "Delete these".
    ui.page.fill("#search", "more")
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_function("() => document.querySelector('#delete-all-btn .label').textContent === 'Delete these'")
    assert layout(ui.page) == before
    # And every label the live indicator can show fits in the same space.
    widths = ui.page.evaluate("""() => {
        const label = document.querySelector('#live .live-label');
        const was = label.textContent;
        const widths = ['connecting', 'live', 'polling'].map((text) => {
            label.textContent = text;
            return Math.round(document.querySelector('#live').getBoundingClientRect().width);
        });
        label.textContent = was;
        return widths;
    }""")
    assert len(set(widths)) == 1, widths
    assert ui.page.evaluate("document.documentElement.scrollWidth") <= size["width"]


# -- item 23: live again within seconds of a restart ------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_after_a_server_restart_the_page_is_live_again_within_seconds(browser: Browser, tmp_path: Path) -> None:
    config = Config(smtp=Listen("127.0.0.1", free_port()), http=Listen("127.0.0.1", free_port()),
                    db=tmp_path / "mail.db")
    first = ServerThread(config).start()
    url = first.http_url
    browser.watch.reset(url)
    page = browser.context.new_page()
    second: ServerThread | None = None
    try:
        add(first, "before the restart")
        page.goto(url + "/")
        page.wait_for_selector(".row[data-id]")
        wait_live(page, "live")
        before = layout(page)
        first.stop()
        wait_live(page, "polling")
        assert layout(page) == before  # "polling" takes the place "live" had
        # The server stays away for a while (the page keeps knocking), then comes back on the same ports.
        time.sleep(5)
        second = ServerThread(config).start()
        back = time.monotonic()
        wait_live(page, "live", timeout=60_000)
        took = time.monotonic() - back
        # It used to give up on the websocket after one failed knock, for the event stream, and then wait 30 s
        # (a browser without request interception showed "polling" all that time): the websocket comes back.
        assert took < 12, f"live again {took:.1f} s after the server was back"
        assert page.get_attribute("#live", "title") == "Live updates (websocket)"
        assert layout(page) == before
        # Really live: mail sent now shows without a reload.
        add(second, "after the restart")
        page.locator(".row[data-id]", has_text="after the restart").wait_for(timeout=10_000)
    finally:
        page.close()
        first.stop()
        if second is not None:
            second.stop()
    assert browser.watch.page_errors == []


def test_the_same_error_again_keeps_one_notice_on_screen(ui: UI) -> None:
    """A server away for a while fails every poll the same way: one notice, not a growing stack of copies."""
    add(ui.server, "one")
    ui.open()
    ui.page.route("**/api/v1/messages*", lambda route: route.abort("connectionrefused"))
    for _ in range(3):
        ui.page.click("#mark-all-read")
        ui.page.locator(".toast.error").first.wait_for()
        ui.page.wait_for_timeout(200)
    assert ui.page.locator(".toast.error").all_inner_texts() == ["Could not mark as read: The server cannot be reached"]
    ui.page.unroute("**/api/v1/messages*")


# -- item 23: open, selected and hovered rows look different -----------------------------------------------------

ROW_LOOK = """(row) => {
    const style = getComputedStyle(row);
    return { background: style.backgroundColor, shadow: style.boxShadow,
             outline: style.outlineStyle === 'none' ? '' : `${style.outlineStyle} ${style.outlineColor}` };
}"""


def luminance(css: str) -> float:
    parts = [float(x) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
    return 0.2126 * parts[0] + 0.7152 * parts[1] + 0.0722 * parts[2]


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_open_selected_and_hovered_rows_are_told_apart(ui: UI, scheme: str) -> None:
    ui.page.emulate_media(color_scheme=scheme)
    for subject in ("fourth", "third", "second", "first"):
        add(ui.server, subject)
    ui.open()
    row = {s: ui.page.locator(".row[data-id]", has_text=s) for s in ("first", "second", "third", "fourth")}
    ui.open_message("first")
    ui.page.locator("#list").focus()
    ui.page.keyboard.press("j")  # the keyboard moves the selection to "second"; "first" stays open
    row["third"].hover()
    assert "open" in (row["first"].get_attribute("class") or "")
    assert "selected" in (row["second"].get_attribute("class") or "")
    looks = {s: row[s].evaluate(ROW_LOOK) for s in row}
    plain, opened, selected, hovered = looks["fourth"], looks["first"], looks["second"], looks["third"]
    page = luminance(ui.page.evaluate("getComputedStyle(document.body).backgroundColor"))
    # Open: a strong fill (and its bar); selected: an outline on the plain background; hover: a faint fill.
    assert opened["background"] != plain["background"], looks
    assert opened["shadow"] not in ("none", ""), looks
    assert selected["background"] == plain["background"], looks
    assert selected["shadow"] not in ("none", ""), looks
    assert hovered["background"] not in (plain["background"], opened["background"]), looks
    assert hovered["shadow"] in ("none", ""), looks
    assert abs(luminance(opened["background"]) - page) > 2 * abs(luminance(hovered["background"]) - page), looks
    assert len({str(look) for look in looks.values()}) == 4, looks
    # Selecting the open row again shows both: the fill and the outline.
    ui.page.keyboard.press("k")
    both = row["first"].evaluate(ROW_LOOK)
    assert both["background"] == opened["background"] and both["shadow"] != opened["shadow"], (both, opened)


# -- item 24: browser notifications for new mail ------------------------------------------------------------------

# The Notification constructor, watched: every call is recorded (and the real one still made), and whether the
# page has the reader's focus is the test's to say.
NOTIFICATION_SPY = """(() => {
  const Real = window.Notification;
  window.__notes = [];
  window.__focused = true;
  Document.prototype.hasFocus = function () { return window.__focused; };
  function Spy(title, options = {}) {
    let note;
    try { note = new Real(title, options); } catch { note = new EventTarget(); note.close = () => {}; }
    window.__notes.push({ title, body: options.body || "", note });
    return note;
  }
  Object.defineProperty(Spy, "permission", { get: () => Real.permission });
  Spy.requestPermission = (...args) => Real.requestPermission(...args);
  window.Notification = Spy;
})();"""


def notes(ui: UI) -> list[dict[str, str]]:
    return list(ui.page.evaluate("() => window.__notes.map(({ title, body }) => ({ title, body }))"))


def wait_notes(ui: UI, count: int) -> None:
    ui.page.wait_for_function(f"() => window.__notes.length >= {count}", timeout=15_000)


@SIZES
def test_new_mail_notifies_in_the_background_once_the_reader_opts_in(ui: UI, size: dict[str, int]) -> None:
    ui.page.set_viewport_size(size)
    ui.page.context.grant_permissions(["notifications"], origin=ui.url)
    ui.page.add_init_script(NOTIFICATION_SPY)
    try:
        mail(ui.server, subject="already here")
        ui.open()
        wait_live(ui.page, "live")
        button = ui.page.locator("#notify-btn")
        assert button.is_visible() and button.inner_text() == "Notify me"
        assert ui.page.evaluate("document.documentElement.scrollWidth") <= size["width"]
        # Not opted in: nothing, even in the background.
        ui.page.evaluate("window.__focused = false")
        mail(ui.server, subject="before opting in")
        ui.page.locator(".row[data-id]", has_text="before opting in").wait_for(timeout=10_000)
        ui.page.wait_for_timeout(800)
        assert notes(ui) == []
        button.click()
        assert button.inner_text() == "Notifications on" and button.get_attribute("aria-pressed") == "true"
        # In the background: a notification with the subject and the sender.
        mail(ui.server, subject="your code is 123456", sender="Shop <shop@example.com>")
        wait_notes(ui, 1)
        assert notes(ui) == [{"title": "your code is 123456", "body": "From Shop"}]
        # Read on screen: the list shows it, no notification.
        ui.page.evaluate("window.__focused = true")
        mail(ui.server, subject="seen in the list")
        ui.page.locator(".row[data-id]", has_text="seen in the list").wait_for(timeout=10_000)
        ui.page.wait_for_timeout(800)
        assert len(notes(ui)) == 1
        # A burst in the background is one notification, not three.
        ui.page.evaluate("window.__focused = false")
        for i in range(3):
            add(ui.server, f"burst {i}")
        wait_notes(ui, 2)
        ui.page.wait_for_timeout(800)
        assert len(notes(ui)) == 2
        assert notes(ui)[1]["title"] == "3 new messages"
        assert notes(ui)[1]["body"].split("\n") == ["burst 0", "burst 1", "burst 2"]
        # Clicking the first one opens that message.
        ui.page.evaluate("window.__notes[0].note.onclick()")
        ui.page.wait_for_function("() => document.querySelector('#msg-subject').textContent === 'your code is 123456'")
        assert ui.page.locator("#message").is_visible()
        # The choice is kept: after a reload it is still on; switched off, nothing more.
        ui.page.reload()
        ui.page.wait_for_selector("#message[data-ready]")  # reopened from the address
        wait_live(ui.page, "live")
        if size["width"] <= 800:
            ui.page.click("#back-btn")
        assert button.inner_text() == "Notifications on"
        button.click()
        assert button.inner_text() == "Notify me"
        ui.page.evaluate("window.__focused = false")
        mail(ui.server, subject="after opting out")
        ui.page.locator(".row[data-id]", has_text="after opting out").wait_for(timeout=10_000)
        ui.page.wait_for_timeout(800)
        assert notes(ui) == []  # (the reload started a fresh record)
    finally:
        ui.page.context.clear_permissions()


# -- item 21: mailboxes by most recent mail ----------------------------------------------------------------------

def mailbox_order(ui: UI) -> list[str]:
    return [text.split(" (")[0] for text in ui.page.locator("#mailbox-group option").all_inner_texts()]


@SIZES
def test_the_mailbox_list_can_be_sorted_by_most_recent_mail_and_keeps_the_choice(ui: UI, size: dict[str, int]) -> None:
    ui.page.set_viewport_size(size)
    for to in ("zed@example.com", "mid@example.com", "alpha@example.com"):
        add(ui.server, f"for {to}", to=to)
        time.sleep(0.01)  # each mailbox's newest mail a little later than the one before
    add(ui.server, "zed again", to="zed@example.com")
    latest = {box["Address"]: box.get("Latest") for box in ui.api.get("/api/v1/mailboxes").json()}
    if not all(latest.values()):
        pytest.fail(f"/api/v1/mailboxes gives no Latest for each mailbox: {latest}")
    ui.open()
    ui.page.wait_for_function("() => document.querySelectorAll('#mailbox-group option').length === 3")
    assert mailbox_order(ui) == ["alpha@example.com", "mid@example.com", "zed@example.com"]  # by address
    ui.page.select_option("#mailbox", label="Sort mailboxes by most recent mail")
    assert mailbox_order(ui) == ["zed@example.com", "alpha@example.com", "mid@example.com"]
    assert ui.page.get_attribute("#mailbox-group", "label") == "Mailboxes, newest mail first (unread/total)"
    # Choosing the order is not choosing a mailbox: the view stays "All mailboxes".
    assert ui.page.input_value("#mailbox") == ""
    assert ui.page.inner_text("#list-count").startswith("4 messages")
    assert ui.page.locator("#mailbox-sort").inner_text() == "Sort mailboxes by address"
    # New mail moves its mailbox to the top, live.
    add(ui.server, "mid now", to="mid@example.com")
    ui.page.wait_for_function("() => document.querySelector('#mailbox-group option').value === 'mid@example.com'",
                              timeout=15_000)
    assert mailbox_order(ui) == ["mid@example.com", "zed@example.com", "alpha@example.com"]
    # Kept in this browser; and a mailbox picked from the sorted list opens as usual.
    ui.page.reload()
    ui.page.wait_for_function("() => document.querySelectorAll('#mailbox-group option').length === 3")
    assert mailbox_order(ui) == ["mid@example.com", "zed@example.com", "alpha@example.com"]
    ui.page.select_option("#mailbox", "zed@example.com")
    ui.page.wait_for_function("() => document.querySelector('#list-count').textContent.startsWith('2 messages')")
    ui.page.select_option("#mailbox", label="Sort mailboxes by address")
    assert mailbox_order(ui) == ["alpha@example.com", "mid@example.com", "zed@example.com"]
    assert ui.page.input_value("#mailbox") == "zed@example.com"
    assert ui.page.evaluate("document.documentElement.scrollWidth") <= size["width"]


# -- item 24: the HTML as a picture (PNG), made in the browser ----------------------------------------------------

RED_PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c4944415408d763f8cfc0000003010100"
    "c9fe92ef0000000049454e44ae426082")
PICTURE_HTML = """<html><head><style>.band { background: #0a7d3e; height: 150px; color: #fff; }</style></head>
<body><div class="band">Green band</div><p>Hello <b>world</b></p><img src="cid:red@example" width="100" height="60" alt="red">
<img src="https://tracker.example/pixel.png" width="20" height="20" alt="">
<div style="height: 1500px; background: #123456">tall</div><p>the end</p></body></html>"""


@SIZES
def test_the_html_is_saved_as_a_png_of_the_preview_at_its_width(ui: UI, size: dict[str, int], tmp_path: Path) -> None:
    from PIL import Image

    ui.page.set_viewport_size(size)
    mail(ui.server, subject="a picture please", html=PICTURE_HTML, inline=(("red@example", RED_PIXEL, "image/png"),))
    ui.open()
    ui.open_message("a picture please")
    if size["width"] > 800:
        ui.page.click('[data-width="phone"]')  # the picture is as wide as the preview is set to
    width = ui.page.evaluate("document.querySelector('#html-frame').clientWidth")
    with ui.page.expect_download() as download:
        ui.page.click("#png-btn")
    assert download.value.suggested_filename == "a picture please.png"
    path = tmp_path / "shot.png"
    download.value.save_as(path)
    with Image.open(path) as image:
        assert image.format == "PNG"
        picture = image.convert("RGB")
    assert picture.width == width
    assert 1500 < picture.height < 2400, picture.size  # as tall as the message, not the screen
    band = [picture.getpixel((x, y)) for x in range(20, picture.width - 20, 7) for y in range(40, 140, 7)]
    assert band.count((10, 125, 62)) > 0.9 * len(band)  # the style sheet's green band (and its white words)
    reds = [(x, y) for x in range(0, 120) for y in range(150, 320) if picture.getpixel((x, y)) == (255, 0, 0)]
    assert len(reds) > 100 * 60 * 0.8  # the inline (cid:) image, drawn
    assert picture.getpixel((picture.width // 2, picture.height - 3)) == (255, 255, 255)  # no end marker left in
    dark = [y for y in range(picture.height) if picture.getpixel((picture.width // 2, y)) == (18, 52, 86)]
    assert dark and dark[-1] - dark[0] > 1400  # the tall block, whole
    assert ui.watch.foreign == []  # the remote image was not fetched to draw it
    assert "Saved as PNG" in ui.page.inner_text("#toasts")
