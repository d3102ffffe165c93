"""The web UI, more of issue 16 (items 17, 19, 21, 24): links with their text and a link check, calendar invites
shown as the event, a mailbox list that sorts, filters and explains its counts, and the small things Mailpit
users look for (an unread badge on the favicon, tag editing, a printable view)."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from mailnest import Config
from mailnest.models import Envelope
from tests.conftest import http_site
from tests.web.conftest import UI, mail


def add(ui: UI, subject: str, to: str) -> None:
    """Store one message straight into the store (40 mailboxes need no 40 SMTP sessions)."""
    raw = (f"From: sender@example.com\r\nTo: {to}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\nhello\r\n").encode()
    ui.server.call(ui.server.store.add(raw, Envelope("sender@example.com", (to,))))


@pytest.fixture
def server_config() -> Config:
    """The link check may request 127.0.0.1, where the test's own site runs."""
    return Config(allow_private_link_check=True)


class _Site(BaseHTTPRequestHandler):
    """/ok answers 200, anything else 404."""

    def do_HEAD(self) -> None:
        self.send_response(200 if self.path == "/ok" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    with http_site(_Site) as url:
        yield url


# -- item 17: links with their text, and a link check ----------------------------------------------------------

def test_the_links_tab_shows_each_links_text_and_the_status_the_link_check_got(ui: UI, site: str) -> None:
    html = (f'<p>Please <a href="{site}/ok">confirm your <b>address</b></a> or '
            f'<a href="{site}/gone">read the old terms</a>, or <a href="mailto:help@example.com">write</a>.</p>')
    mail(ui.server, subject="links", html=html, text=f"Confirm: {site}/ok\n")
    ui.open()
    ui.open_message("links")
    panel = ui.tab("links")
    ok = panel.locator(f'li[data-url="{site}/ok"]')
    gone = panel.locator(f'li[data-url="{site}/gone"]')
    ok.wait_for()
    assert ok.locator(".link-text").inner_text() == "confirm your address"
    assert gone.locator(".link-text").inner_text() == "read the old terms"
    assert panel.locator('li[data-url="mailto:help@example.com"] .link-text').inner_text() == "write"
    assert ok.locator("a").get_attribute("href") == f"{site}/ok"
    assert ok.locator(".link-status").inner_text() == ""  # nothing is requested until asked
    panel.get_by_role("button", name="Check links").click()
    ui.page.wait_for_function("() => document.querySelector('#link-check-summary').textContent.includes('failed')")
    assert ok.locator(".link-status").inner_text() == "OK"
    assert gone.locator(".link-status").inner_text() == "404 Not Found"
    assert "bad" in (gone.locator(".link-status").get_attribute("class") or "")
    assert ui.page.inner_text("#link-check-summary") == "1 of 2 failed"
    assert panel.locator('li[data-url="mailto:help@example.com"] .link-status').inner_text() == "not checked"


# -- item 19: a calendar invite is shown as its event -----------------------------------------------------------

INVITE = (
    "BEGIN:VCALENDAR\r\nPRODID:-//Example Corp//Outlook 16.0//EN\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\n"
    "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:16010101T030000\r\nTZOFFSETFROM:+0200\r\n"
    "TZOFFSETTO:+0100\r\nSUMMARY:not the event\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    "BEGIN:VEVENT\r\nUID:1234@example.com\r\nDTSTAMP:20261201T120000Z\r\n"
    'ORGANIZER;CN="Boss, The":mailto:boss@example.com\r\n'
    "ATTENDEE;RSVP=TRUE;CN=Alice:mailto:alice@example.com\r\n"
    "SUMMARY:Quarterly planning with a title long enough that Outlook folds it\r\n  onto a second line\r\n"
    "DTSTART;TZID=Europe/Berlin:20261210T093000\r\nDTEND:20261210T093000Z\r\n"
    "LOCATION:Room 4\\, second floor\r\n"
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Reminder\r\nSUMMARY:alarm summary\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\n"
    "END:VEVENT\r\nEND:VCALENDAR\r\n"
)

ALL_DAY = (
    "BEGIN:VCALENDAR\nVERSION:2.0\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:5678@example.com\n"
    "SUMMARY:Offsite\nDTSTART;VALUE=DATE:20261214\nDTEND;VALUE=DATE:20261216\nEND:VEVENT\nEND:VCALENDAR\n"
)


def send_invite(ui: UI, subject: str, ics: str) -> None:
    """An invite as Outlook sends one: text, and the event as an unnamed text/calendar alternative."""
    msg = EmailMessage()
    msg["From"] = "The Boss <boss@example.com>"
    msg["To"] = "alice@example.com"
    msg["Subject"] = subject
    msg.set_content("You are invited.\n")
    msg.add_alternative(ics, subtype="calendar", params={"method": "REQUEST"})
    with smtplib.SMTP("127.0.0.1", ui.server.smtp_port) as client:
        client.sendmail("boss@example.com", ["alice@example.com"], bytes(msg))


def test_a_calendar_invite_shows_its_event_with_times_organizer_and_location(ui: UI) -> None:
    send_invite(ui, "Invitation: planning", INVITE)
    send_invite(ui, "Invitation: offsite", ALL_DAY)
    ui.open()
    ui.open_message("Invitation: planning")
    card = ui.page.locator("#msg-events .event-card")
    card.wait_for()
    assert card.locator(".event-kind").inner_text().lower() == "invitation"
    assert card.locator(".event-title").inner_text() == (
        "Quarterly planning with a title long enough that Outlook folds it onto a second line")
    field = lambda name: card.locator(f'dd[data-field="{name}"]').inner_text()  # noqa: E731
    # 09:30 in Berlin in December is 08:30 UTC (the browser runs in UTC); the zone is named.
    assert "Dec 10, 2026" in field("starts") and "08:30" in field("starts") and "Europe/Berlin" in field("starts")
    assert "09:30" in field("ends") and "Europe" not in field("ends")
    assert field("organizer") == "Boss, The <boss@example.com>"
    assert field("location") == "Room 4, second floor"
    download = card.get_by_role("link", name="Download .ics")
    with ui.page.expect_download() as info:
        download.click()
    assert info.value.suggested_filename == "invite.ics"
    assert "BEGIN:VEVENT" in Path(info.value.path()).read_text(encoding="utf-8")
    attachments = ui.tab("attachments")
    assert "(unnamed)" not in attachments.inner_text() and "Calendar invite" in attachments.inner_text()
    # An all-day event (DTEND is the day after), without organizer or location.
    ui.open_message("Invitation: offsite")
    ui.page.wait_for_function("() => document.querySelector('#msg-events .event-title')?.textContent === 'Offsite'")
    assert "Dec 14, 2026" in field("starts") and "all day" in field("starts")
    assert "Dec 15, 2026" in field("ends")
    assert field("organizer") == "—" and field("location") == "—"
    # A message without an invite has no card.
    mail(ui.server, subject="plain")
    ui.page.reload()
    ui.page.wait_for_selector("#list-count:not(:empty)")
    ui.open_message("plain")
    assert ui.page.locator("#msg-events").is_hidden()


# -- item 21: a mailbox list that scales ----------------------------------------------------------------------

def mailbox_options(ui: UI) -> list[str]:
    return ui.page.locator("#mailbox-group option").all_inner_texts()


def test_forty_mailboxes_sort_naturally_filter_and_say_what_their_counts_are(ui: UI) -> None:
    for n in range(40, 0, -1):
        add(ui, f"run {n}", f"test-{n}@example.com")
    add(ui, "second for 7", "test-7@example.com")
    add(ui, "for Zed", "Zed@example.com")
    add(ui, "for alice", "alice@example.com")
    first = ui.api.get("/api/v1/search", params={"query": "subject:\"second for 7\""}).json()["messages"][0]["ID"]
    assert ui.api.put("/api/v1/messages", json={"IDs": [first], "Read": True}).status_code == 200
    ui.open()
    ui.page.wait_for_function("() => document.querySelectorAll('#mailbox-group option').length === 42")
    addresses = [text.split(" (")[0] for text in mailbox_options(ui)]
    # Natural order: test-2 before test-10 (the server sorts them as strings: test-10 first).
    assert addresses == ["alice@example.com", *(f"test-{n}@example.com" for n in range(1, 41)), "zed@example.com"]
    # The counts are explained: the group says unread/total, each mailbox says it in words.
    assert ui.page.get_attribute("#mailbox-group", "label") == "Mailboxes (unread/total)"
    seven = ui.page.locator('#mailbox option[value="test-7@example.com"]')
    assert seven.inner_text() == "test-7@example.com (1/2)"
    assert seven.get_attribute("title") == "1 unread of 2 messages"
    assert "unread/total" in (ui.page.get_attribute("#mailbox", "title") or "")
    # Many mailboxes: a filter box narrows them; Enter opens the first match.
    box = ui.page.locator("#mailbox-filter")
    assert box.is_visible() and box.get_attribute("placeholder") == "Filter 42 mailboxes"
    box.fill("test-3")
    assert [t.split(" (")[0] for t in mailbox_options(ui)] == [
        "test-3@example.com", *(f"test-{n}@example.com" for n in range(30, 40))]
    assert "11 of 42" in (ui.page.get_attribute("#mailbox-group", "label") or "")
    box.press("Enter")
    ui.page.wait_for_function("() => document.querySelector('#list-count').textContent.startsWith('1 message')")
    assert ui.subjects() == ["run 3"]
    assert ui.page.input_value("#mailbox") == "test-3@example.com"
    box.fill("nobody-here")
    assert ui.page.locator("#mailbox option[disabled]").inner_text() == "No mailbox matches “nobody-here”"
    assert ui.page.input_value("#mailbox") == "test-3@example.com"  # the open mailbox stays in the list
    box.press("Escape")
    assert len(mailbox_options(ui)) == 42


def test_a_few_mailboxes_need_no_filter_box(ui: UI) -> None:
    for n in (10, 9, 1):
        add(ui, f"run {n}", f"box{n}@example.com")
    ui.open()
    ui.page.wait_for_function("() => document.querySelectorAll('#mailbox-group option').length === 3")
    assert [t.split(" (")[0] for t in mailbox_options(ui)] == ["box1@example.com", "box9@example.com", "box10@example.com"]
    assert ui.page.locator("#mailbox-filter").is_hidden()


# -- item 24: an unread badge on the favicon ---------------------------------------------------------------------

BADGE_PIXEL = """async () => {
  const link = document.querySelector('link[rel="icon"]');
  const img = new Image();
  img.src = link.href;
  await img.decode();
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = 64;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, 64, 64);
  const [r, g, b] = ctx.getImageData(60, 19, 1, 1).data;  // the badge's right edge, clear of its digits
  return { href: link.href.slice(0, 22), r, g, b, type: link.type, unread: link.dataset.unread ?? null };
}"""


def test_the_favicon_carries_the_unread_count_as_a_badge(ui: UI) -> None:
    mail(ui.server, subject="one")
    mail(ui.server, subject="two")
    ui.open()
    ui.page.wait_for_function("() => document.querySelector('link[rel=icon]').dataset.unread === '2'")
    badge = ui.page.evaluate(BADGE_PIXEL)
    assert badge["href"] == "data:image/png;base64,"
    assert badge["type"] == "image/png"
    assert badge["r"] > 180 and badge["g"] < 80 and badge["b"] < 80, badge  # red
    ui.open_message("one")
    ui.page.wait_for_function("() => document.querySelector('link[rel=icon]').dataset.unread === '1'")
    ui.open_message("two")
    ui.page.wait_for_function("() => document.querySelector('link[rel=icon]').dataset.unread === undefined")
    link = ui.page.locator('link[rel="icon"]')
    assert "static/icons/mailnest.svg" in (link.get_attribute("href") or "")
    assert link.get_attribute("type") == "image/svg+xml"
    mail(ui.server, subject="three")  # arrives live
    ui.page.wait_for_function("() => document.querySelector('link[rel=icon]').dataset.unread === '1'")
    assert not [c for c in ui.watch.console if c[0] == "error"], ui.watch.console  # the CSP let the data: icon in


# -- item 24: tag editing on the open message ----------------------------------------------------------------------

def tags_on_server(ui: UI, subject: str) -> list[str]:
    found = ui.api.get("/api/v1/search", params={"query": f'subject:"{subject}"'}).json()["messages"]
    return list(found[0]["Tags"])


def test_tags_are_added_and_removed_on_the_open_message(ui: UI) -> None:
    mail(ui.server, subject="billing mail", headers={"X-Tags": "Billing"})
    mail(ui.server, subject="other")
    ui.open()
    ui.open_message("other")
    ui.page.click("#add-tag-btn")
    ui.page.fill("#tag-input", "  billing  ")  # the server's name, in its case, is what it keeps
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_selector('#msg-tags .tag[data-tag="Billing"]')
    assert tags_on_server(ui, "other") == ["Billing"]
    ui.page.click("#add-tag-btn")
    ui.page.fill("#tag-input", "needs review")
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_selector('#msg-tags .tag[data-tag="needs review"]')
    assert sorted(tags_on_server(ui, "other")) == ["Billing", "needs review"]
    # The list row shows them too.
    row = ui.page.locator(".row[data-id]", has_text="other")
    ui.page.wait_for_function("() => [...document.querySelectorAll('.row[data-id] .tag')].some((t) => t.textContent === 'needs review')")
    assert "needs review" in row.locator(".tag").all_inner_texts()
    ui.page.get_by_role("button", name="Remove tag Billing").click()
    ui.page.wait_for_selector('#msg-tags .tag[data-tag="Billing"]', state="detached")
    assert tags_on_server(ui, "other") == ["needs review"]
    assert tags_on_server(ui, "billing mail") == ["Billing"]  # the other message keeps its tag
    # Escape leaves the box without saving and without closing the message.
    ui.page.click("#add-tag-btn")
    ui.page.fill("#tag-input", "not saved")
    ui.page.keyboard.press("Escape")
    assert ui.page.locator("#tag-input").is_hidden() and ui.page.locator("#message").is_visible()
    assert tags_on_server(ui, "other") == ["needs review"]


# -- item 24: a printable view -----------------------------------------------------------------------------------

def test_printing_shows_the_open_message_only(ui: UI) -> None:
    mail(ui.server, subject="receipt", text="Total: 42 EUR\n")
    mail(ui.server, subject="unrelated")
    ui.open()
    ui.open_message("receipt")
    ui.tab("text")
    visible = lambda selector: ui.page.locator(selector).first.is_visible()  # noqa: E731
    assert visible(".list-pane") and visible(".topbar") and visible("#print-btn")
    ui.page.emulate_media(media="print")
    try:
        for hidden in (".topbar", ".list-pane", ".toolbar", ".tabs", "#add-tag-btn"):
            assert not visible(hidden), hidden
        for shown in ("#msg-subject", "#msg-meta", "#text-body"):
            assert visible(shown), shown
        assert "Total: 42 EUR" in ui.page.inner_text("#text-body")
        assert not visible('[data-panel="headers"]')  # only the tab being read
        # The message takes the page's width, not the list's column beside it.
        width = ui.page.evaluate("() => document.querySelector('.message-pane').getBoundingClientRect().width")
        assert width > 0.9 * ui.page.viewport_size["width"], width
    finally:
        ui.page.emulate_media(media="screen")
    # The Print button asks the browser to print (window.print, here replaced to count the calls).
    ui.page.evaluate("() => { window.printed = 0; window.print = () => { window.printed += 1; }; }")
    ui.page.click("#print-btn")
    assert ui.page.evaluate("() => window.printed") == 1


def test_view_json_gives_each_links_text_as_the_reader_sees_it(ui: UI) -> None:
    html = ('<a href="https://example.com/a">Fish &amp;\n  <i>chips</i></a> <a href=" https://example.com/b ">'
            '<img src="cid:x" alt="Logo"></a> <a href="https://example.com/a">again</a>'
            '<a href="javascript:alert(1)">evil</a> <a href="https://example.com/empty"> </a>')
    mail(ui.server, subject="texts", html=html, text="See https://example.com/t\n")
    message_id = ui.api.get("/api/v1/messages").json()["messages"][0]["ID"]
    info = ui.api.get(f"/view/{message_id}.json").json()
    assert info["LinkText"] == {"https://example.com/a": "Fish & chips", "https://example.com/b": "[Logo]"}
    assert set(info["LinkText"]) <= set(info["Links"])  # only links the tab lists, keyed as it lists them
