"""What the UI says about how mail arrived and where it is, in a real browser: protocol warnings (as text), the
null sender, and the IMAP folders mail was filed in (issue 11)."""

from __future__ import annotations

import imaplib
import smtplib
import time

import pytest

from mailnest import Config
from mailnest.config import Listen
from tests.web.conftest import UI, mail, require_endpoint, send_raw


def test_protocol_warnings_and_the_null_sender_are_shown(ui: UI) -> None:
    # A bounce (MAIL FROM:<>) whose lines end in bare LF, as smtplib sends bytes it was given.
    raw = (b"From: Mail Delivery System <MAILER-DAEMON@example.com>\nTo: alice@example.com\n"
           b"Subject: Undelivered Mail Returned to Sender\n\nThis is the mail system.\n")
    with smtplib.SMTP("127.0.0.1", ui.server.smtp_port, local_hostname="client.test") as client:
        client.sendmail("", ["alice@example.com"], raw)
    send_raw(ui.server, b"From: a@example.com\r\nTo: alice@example.com\r\nSubject: Clean mail\r\n\r\nCRLF only\r\n",
             sender="a@example.com")
    ui.open()
    ui.open_message("Undelivered Mail")
    page = ui.page
    message_id = page.get_attribute("#message", "data-ready")
    expected = ui.api.get(f"/api/v1/message/{message_id}").json()
    assert expected["Envelope"]["MailFrom"] == "<>" and expected["ProtocolWarnings"]

    box = page.locator("#msg-warnings")
    assert box.is_visible()
    items = box.locator("li")
    assert items.count() == len(expected["ProtocolWarnings"])
    for index, warning in enumerate(expected["ProtocolWarnings"]):
        assert items.nth(index).get_attribute("data-code") == warning["Code"]
        assert items.nth(index).text_content() == f"{warning['Code']} {warning['Text']}"
    meta = page.inner_text("#msg-meta")
    assert "Envelope from" in meta and "<>" in meta and "null sender" in meta
    envelope = ui.tab("envelope").inner_text()
    assert "MAIL FROM" in envelope and "<>" in envelope

    ui.open_message("Clean mail")  # a message without warnings hides the box again, and has a real sender
    assert not box.is_visible()
    assert "Envelope from" not in page.inner_text("#msg-meta")


def test_protocol_warning_text_is_text_never_markup(ui: UI) -> None:
    """The page renders warnings through text nodes only: markup in a warning's text (were the server ever to
    pass some through) stays visible characters. Checked on the real renderer with a forged API answer."""
    hostile = '<img src=x onerror="alert(1)"><b>bold</b>'
    mail(ui.server, subject="Forged warnings")

    def forge(route: object) -> None:
        response = route.fetch()  # type: ignore[attr-defined]
        body = response.json()
        body["ProtocolWarnings"] = [{"Code": "bare-lf", "Text": hostile}]
        route.fulfill(response=response, json=body)  # type: ignore[attr-defined]

    ui.page.route("**/api/v1/message/*", forge)
    ui.open()
    ui.open_message("Forged warnings")
    item = ui.page.locator("#msg-warnings li")
    assert item.text_content() == f"bare-lf {hostile}"
    assert ui.page.locator("#msg-warnings img, #msg-warnings b").count() == 0
    assert ui.watch.dialogs == []


def wait_for_subjects(ui: UI, subjects: list[str]) -> None:
    ui.page.wait_for_function(
        "expected => JSON.stringify(Array.from(document.querySelectorAll('.row[data-id] .subj'),"
        " e => e.innerText)) === JSON.stringify(expected)", arg=subjects)


@pytest.mark.parametrize("server_config", [Config(imap=Listen("127.0.0.1", 0))])
def test_folders_filed_by_imap_are_listed_and_shown(ui: UI) -> None:
    mail(ui.server, subject="Stays in the inbox", to=("alice@example.com",))
    mail(ui.server, subject="Filed away", to=("alice@example.com",))
    client = imaplib.IMAP4("127.0.0.1", ui.server.imap_port, timeout=10)
    try:
        client.login("alice@example.com", "any")
        assert client.create('"Sent Items"')[0] == "OK"
        client.select("INBOX")
        _, found = client.uid("SEARCH", "SUBJECT", '"Filed away"')
        assert client.uid("MOVE", found[0].decode(), '"Sent Items"')[0] == "OK"
    finally:
        client.logout()
    require_endpoint(ui.api, "GET", "/api/v1/folders")
    folders = ui.api.get("/api/v1/folders").json()["Folders"]
    assert any(f["Name"] == "Sent Items" for f in folders), folders

    ui.open()
    page = ui.page
    option = page.locator('#mailbox optgroup[label="Folders"] option[data-folder="Sent Items"]')
    option.wait_for(state="attached")
    assert "Sent Items" in (option.text_content() or "") and "(1/1)" in (option.text_content() or "")
    page.select_option("#mailbox", value=option.get_attribute("value"))
    wait_for_subjects(ui, ["Filed away"])
    assert page.input_value("#search") == 'folder:"Sent Items"'
    assert "folder" in page.evaluate("location.hash")
    # Back to every mailbox: the folder's search goes with it.
    page.select_option("#mailbox", value="")
    wait_for_subjects(ui, ["Stays in the inbox"])
    assert page.input_value("#search") == ""
    # A reload keeps the folder from the address, and the switcher shows it.
    page.goto(ui.url + "/#q=" + 'folder%3A%22Sent%20Items%22')
    page.reload()  # a new hash alone does not load the page again
    page.wait_for_selector("#list-count:not(:empty)")
    option.wait_for(state="attached")
    wait_for_subjects(ui, ["Filed away"])
    page.wait_for_function("document.querySelector('#mailbox').selectedOptions[0]?.dataset.folder === 'Sent Items'")


def test_a_page_the_server_dropped_catches_up_when_it_reconnects(ui: UI) -> None:
    """The server closes a page's websocket when it falls too far behind (1013). Events sent meanwhile are lost
    to it; the polling it starts meanwhile stops when it is back (1 s later, before its first 3 s round), and the
    first frame after reconnecting is only the stats, which say nothing of a change that left the unread count
    as it was. So the page re-reads its list on reconnecting; before, such a message never showed up."""
    connects: list[float] = []
    sockets: list[object] = []

    def relay(ws: object) -> None:  # the page's websocket, passed through to the real server
        connects.append(time.monotonic())
        ws.connect_to_server()  # type: ignore[attr-defined]
        sockets.append(ws)

    ui.page.route_web_socket("**/api/events", relay)
    ui.open()
    ui.page.locator('#live[data-state="live"]').wait_for(timeout=5000)
    # A message that arrives read: the unread count stays 0, so fresh stats alone would not show it.
    send_raw(ui.server, b"From: a@example.com\r\nTo: b@example.com\r\nSubject: missed while dropped\r\n\r\nx\r\n")
    message_id = ui.api.get("/api/v1/messages").json()["messages"][0]["ID"]
    ui.api.put("/api/v1/messages", json={"IDs": [message_id], "Read": True})
    ui.watch.requests.clear()
    sockets[0].close(code=1013, reason="too slow: more than 1000 events were waiting")  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while len(connects) < 2:
        assert time.monotonic() < deadline, "the page did not reconnect"
        ui.page.wait_for_timeout(50)
    ui.page.locator(".row[data-id]", has_text="missed while dropped").wait_for(timeout=5000)
    listed = [url for url in ui.watch.requests if "/api/v1/messages" in url]
    assert listed, ui.watch.requests
    # It came with the reconnection, not with a poll (the first would have been 3 s after the close).
    assert time.monotonic() - connects[1] < 1.5
