"""The inbox in a real browser: live arrival, search, mailboxes, keyboard, read state, delete, paging."""

from __future__ import annotations

import re

from mailnest.models import Envelope
from tests.web.conftest import UI, mail


def read_state(ui: UI, message_id: str) -> bool:
    """From the list: fetching the message itself would mark it read, as Mailpit's API does."""
    return next(m["Read"] for m in ui.api.get("/api/v1/messages").json()["messages"] if m["ID"] == message_id)


def test_new_mail_appears_live_without_reload(ui: UI) -> None:
    mail(ui.server, subject="already here")
    ui.open()
    assert ui.subjects() == ["already here"]
    ui.page.evaluate("window.__sameDocument = true")
    mail(ui.server, subject="arrived while watching", sender="Live Sender <live@example.com>")
    row = ui.page.locator(".row[data-id]", has_text="arrived while watching")
    row.wait_for(timeout=8000)
    assert ui.page.evaluate("window.__sameDocument") is True  # no reload happened
    assert ui.subjects() == ["arrived while watching", "already here"]  # newest first
    assert "Live Sender" in row.inner_text()
    assert "alice@example.com" in row.inner_text()  # recipients
    assert "unread" in (row.get_attribute("class") or "")
    ui.page.wait_for_function("() => document.title === '(2) mailnest'")


def test_a_burst_of_mail_arrives_live_in_full(ui: UI) -> None:
    """Events that pile up within milliseconds reach the page as one batched websocket message."""
    import asyncio

    ui.open()
    envelope = Envelope("burst@example.com", ("alice@example.com",))

    async def burst() -> None:
        await asyncio.gather(*(ui.server.store.add(f"Subject: burst {i}\r\n\r\nx\r\n".encode(), envelope)
                               for i in range(12)))

    ui.server.call(burst())
    ui.page.wait_for_function("() => document.querySelectorAll('.row[data-id]').length === 12", timeout=8000)
    assert sorted(ui.subjects()) == sorted(f"burst {i}" for i in range(12))


def test_row_shows_sender_recipients_subject_snippet_time_and_marks(ui: UI) -> None:
    mail(ui.server, subject="With a file", sender="Ann Example <ann@example.com>", to=("bob@example.com",),
         text="The snippet of the body.\n", attachments=(("a.txt", b"hello", "text/plain"),))
    mail(ui.server, subject="Without a file")
    ui.open()
    with_file = ui.page.locator(".row[data-id]", has_text="With a file")
    text = with_file.inner_text()
    assert "Ann Example" in text and "bob@example.com" in text and "The snippet of the body." in text
    assert re.search(r"\d\d:\d\d", text)  # received today: the time of day
    assert with_file.locator(".clip").count() == 1
    assert ui.page.locator(".row[data-id]", has_text="Without a file").locator(".clip").count() == 0


def test_search_narrows_the_list(ui: UI) -> None:
    mail(ui.server, subject="Invoice 1042 for March")
    mail(ui.server, subject="Welcome aboard")
    mail(ui.server, subject="Your invoice is overdue")
    ui.open()
    assert len(ui.subjects()) == 3
    ui.page.keyboard.press("/")
    assert ui.page.evaluate("document.activeElement.id") == "search"
    ui.page.keyboard.type("invoice")
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 2")
    assert sorted(ui.subjects()) == ["Invoice 1042 for March", "Your invoice is overdue"]
    assert "2 matching" in ui.page.inner_text("#list-count")
    assert "q=invoice" in ui.page.url  # the view survives a reload
    ui.page.fill("#search", "welcome")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 1")
    assert ui.subjects() == ["Welcome aboard"]
    ui.page.fill("#search", "")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 3")


def test_search_help_lists_the_language(ui: UI) -> None:
    ui.open()
    assert ui.page.locator("#search-help").is_hidden()
    ui.page.click("#search-help-btn")
    help_text = ui.page.inner_text("#search-help")
    for term in ("to:", "from:", "cc:", "bcc:", "subject:", "tag:", "is:read", "is:unread", "has:attachment",
                 "larger:", "smaller:", "before:", "after:", "mailbox:", "envelope-from:", '"exact phrase"', "-word"):
        assert term in help_text, term


def test_mailbox_switcher_shows_one_recipient(ui: UI) -> None:
    mail(ui.server, subject="for alice", to=("alice@example.com",))
    mail(ui.server, subject="for bob", to=("bob@example.com",))
    mail(ui.server, subject="secretly for bob too", to=("carol@example.com",),
         rcpt=("carol@example.com", "bob@example.com"))
    ui.open()
    # The switcher loads on its own request, independent of the list: wait for it, not for the list.
    bob = ui.page.locator('#mailbox option[value="bob@example.com"]')
    bob.wait_for(state="attached")
    assert bob.inner_text().startswith("bob@example.com (2/2)"), ui.page.locator("#mailbox option").all_inner_texts()
    ui.page.select_option("#mailbox", "bob@example.com")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 2")
    assert sorted(ui.subjects()) == ["for bob", "secretly for bob too"]
    assert "mailbox=bob%40example.com" in ui.page.url
    ui.page.select_option("#mailbox", "")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 3")


def test_keyboard_moves_opens_and_deletes(ui: UI) -> None:
    for subject in ("third", "second", "first"):
        mail(ui.server, subject=subject)
    ui.open()
    assert ui.subjects() == ["first", "second", "third"]
    ui.page.keyboard.press("j")
    ui.page.keyboard.press("j")
    ui.page.keyboard.press("k")
    assert ui.page.locator(".row.selected .subj").inner_text() == "first"
    ui.page.keyboard.press("j")
    ui.page.keyboard.press("Enter")
    ui.page.wait_for_function("() => document.querySelector('#msg-subject').textContent === 'second'")
    ui.page.locator("#message[data-ready]").wait_for()
    ui.page.locator("#list").focus()
    ui.page.keyboard.press("Delete")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 2")
    assert ui.subjects() == ["first", "third"]
    assert [m["Subject"] for m in ui.api.get("/api/v1/messages").json()["messages"]] == ["first", "third"]
    assert ui.page.locator("#message").is_hidden()


def test_read_state_and_delete_change_the_list(ui: UI) -> None:
    mail(ui.server, subject="keep me")
    mail(ui.server, subject="read me")
    ui.open()
    ui.page.wait_for_function("() => document.title === '(2) mailnest'")
    row = ui.page.locator(".row[data-id]", has_text="read me")
    assert "unread" in (row.get_attribute("class") or "")
    ui.open_message("read me")
    ui.page.wait_for_function("() => document.title === '(1) mailnest'")
    assert "unread" not in (row.get_attribute("class") or "")
    message_id = row.get_attribute("data-id")
    assert read_state(ui, message_id) is True

    ui.page.click("#toggle-read-btn")  # back to unread
    ui.page.wait_for_function("() => document.title === '(2) mailnest'")
    assert "unread" in (row.get_attribute("class") or "")
    assert ui.page.inner_text("#toggle-read-btn") == "Mark read"
    assert read_state(ui, message_id) is False

    ui.page.click("#delete-btn")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 1")
    assert ui.subjects() == ["keep me"]
    assert ui.api.get(f"/api/v1/message/{message_id}").status_code == 404


def test_delete_all_asks_first(ui: UI) -> None:
    for i in range(3):
        mail(ui.server, subject=f"doomed {i}")
    ui.open()
    ui.page.click("#delete-all-btn")
    dialog = ui.page.locator("#confirm-dialog")
    assert dialog.is_visible()
    assert "(3)" in dialog.inner_text()
    dialog.get_by_role("button", name="Cancel").click()
    assert dialog.is_hidden()
    assert len(ui.subjects()) == 3
    assert ui.api.get("/api/v1/messages").json()["total"] == 3
    ui.page.click("#delete-all-btn")
    ui.page.click("#confirm-ok")
    ui.page.wait_for_function("() => document.querySelectorAll(\'.row[data-id]\').length === 0")
    assert ui.page.locator("#list-empty").is_visible()
    assert ui.api.get("/api/v1/messages").json()["total"] == 0
    assert ui.watch.dialogs == []  # our own dialog element, not window.confirm


def test_mark_all_read(ui: UI) -> None:
    for i in range(3):
        mail(ui.server, subject=f"unread {i}")
    ui.open()
    ui.page.click("#mark-all-read")
    ui.page.wait_for_function("() => document.title === 'mailnest'")
    assert ui.page.locator(".row.unread").count() == 0


def test_long_lists_are_virtualised(ui: UI) -> None:
    raw = b"From: bulk@example.com\r\nTo: alice@example.com\r\nSubject: bulk %d\r\n\r\nbody\r\n"
    envelope = Envelope(mail_from="bulk@example.com", rcpt_tos=("alice@example.com",))

    async def fill() -> None:
        for i in range(600):
            await ui.server.store.add(raw % i, envelope)

    ui.server.call(fill(), timeout=120)
    ui.open()
    assert "600 messages" in ui.page.inner_text("#list-count")
    assert ui.page.locator(".row").count() < 40  # only what is in view, not 600 rows
    ui.page.locator("#list").evaluate("el => el.scrollTop = el.scrollHeight")
    ui.page.locator(".row[data-id]", has_text="bulk 0").first.wait_for()
    assert ui.page.locator(".row").count() < 40
    ui.page.locator("#list").evaluate("el => el.scrollTop = el.scrollHeight / 2")
    ui.page.locator(".row[data-id]", has_text="bulk 300").first.wait_for()
