"""Mailpit's API v1 beyond the core: what reading does, header names, parts and thumbnails, latest?query=, tz,
info and webui, the checks, and bad input."""

from __future__ import annotations

import hashlib
import imaplib
import io
import smtplib
import struct
import zlib
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import Listen
from mailnest.web import thumbnail
from tests.conftest import send


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def rich(server: ServerThread, subject: str = "rich") -> None:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.com>"
    msg["To"] = "rcpt@example.com"
    msg["Subject"] = subject
    msg["X-Twice"] = "first"
    msg["X-Twice"] = "second"
    msg["message-id"] = "<lower@example.com>"
    msg["List-Unsubscribe"] = "<mailto:unsub@example.com>, <https://example.com/unsub>"
    msg.set_content("Text body\n")
    msg.add_alternative("<p>HTML body</p>\n", subtype="html")
    msg.add_attachment(png(400, 300, (200, 30, 30)), maintype="image", subtype="png", filename="red.png")
    msg.add_attachment(b"plain words\n", maintype="text", subtype="plain", filename="notes.txt")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        client.sendmail("sender@example.com", ["rcpt@example.com"], msg.as_bytes(policy=SMTP))


def test_reading_a_message_marks_it_read(server: ServerThread, api: httpx.Client) -> None:
    send(server)
    listing = api.get("/api/v1/messages").json()
    assert listing["unread"] == 1 and listing["messages_unread"] == 1
    message = api.get(f"/api/v1/message/{listing['messages'][0]['ID']}").json()
    assert message["Read"] is True
    assert api.get("/api/v1/messages").json()["unread"] == 0


def test_message_fields_parts_and_thumbnails(server: ServerThread, api: httpx.Client) -> None:
    rich(server)
    message = api.get("/api/v1/message/latest").json()
    assert message["ListUnsubscribe"] == {"Header": "<mailto:unsub@example.com>, <https://example.com/unsub>",
                                          "Links": ["mailto:unsub@example.com", "https://example.com/unsub"],
                                          "Errors": "", "HeaderPost": ""}
    by_name = {a["FileName"]: a for a in message["Attachments"]}
    assert set(by_name) == {"red.png", "notes.txt"}
    notes = by_name["notes.txt"]
    part = api.get(f"/api/v1/message/{message['ID']}/part/{notes['PartID']}")
    assert part.status_code == 200 and part.content == b"plain words\n"
    assert notes["Checksums"]["SHA256"] == hashlib.sha256(part.content).hexdigest()
    assert api.get(f"/api/v1/message/{message['ID']}/part/{notes['PartID']}?dl=1").headers[
        "content-disposition"].startswith("attachment;")

    image = by_name["red.png"]
    thumb = api.get(f"/api/v1/message/{message['ID']}/part/{image['PartID']}/thumb")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    from PIL import Image  # Pillow draws thumbnails (the "thumbnails" extra, part of the test extras)

    drawn = Image.open(io.BytesIO(thumb.content))
    assert drawn.size == (180, 120)
    red, green, blue = drawn.convert("RGB").getpixel((90, 60))
    assert red > 150 and green < 80 and blue < 80
    not_image = api.get(f"/api/v1/message/{message['ID']}/part/{notes['PartID']}/thumb")
    assert not_image.status_code == 200 and not_image.content == thumbnail.blank()
    assert api.get(f"/api/v1/message/{message['ID']}/part/9/thumb").status_code == 404


def test_headers_use_mailpit_names_in_message_order(server: ServerThread, api: httpx.Client) -> None:
    rich(server)
    headers = api.get("/api/v1/message/latest/headers").json()
    assert headers["X-Twice"] == ["first", "second"]
    assert headers["Message-Id"] == ["<lower@example.com>"] and "message-id" not in headers
    assert list(headers)[:3] == ["From", "To", "Subject"]


def test_raw_is_text_and_downloadable(server: ServerThread, api: httpx.Client) -> None:
    sent = send(server, subject="raw")
    raw = api.get("/api/v1/message/latest/raw")
    assert raw.headers["content-type"] == "text/plain; charset=utf-8"  # as Mailpit: a browser shows it
    assert raw.content == sent + b"\r\n"  # exactly as received: smtplib ends the data with CRLF
    assert "content-disposition" not in raw.headers
    download = api.get("/api/v1/message/latest/raw", params={"dl": "1"})
    assert download.headers["content-disposition"].startswith('attachment; filename="')


def test_latest_with_a_query(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="alpha invoice")
    send(server, subject="beta")
    assert api.get("/api/v1/message/latest").json()["Subject"] == "beta"
    assert api.get("/api/v1/message/latest", params={"query": "invoice"}).json()["Subject"] == "alpha invoice"
    assert api.get("/api/v1/message/latest/headers", params={"query": "invoice"}).json()["Subject"] == [
        "alpha invoice"]
    missing = api.get("/api/v1/message/latest", params={"query": "subject:nothing"})
    assert missing.status_code == 404 and "matching" in missing.json()["Error"]
    assert api.get("/api/v1/message/latest", params={"query": "x", "tz": "Mars/Olympus"}).status_code == 400


def test_search_with_tz_mailbox_and_unread_counts(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="one", to=["a@example.com"])
    send(server, subject="two", to=["b@example.com"])
    send(server, subject="three", to=["a@example.com"])
    api.put("/api/v1/messages", json={"Search": "subject:three", "Read": True})
    found = api.get("/api/v1/search", params={"query": "after:2000-01-01", "tz": "Pacific/Auckland"}).json()
    assert found["messages_count"] == 3 and found["messages_unread"] == 2 and found["unread"] == 2
    box = api.get("/api/v1/search", params={"query": "is:unread", "mailbox": "a@example.com"}).json()
    assert [m["Subject"] for m in box["messages"]] == ["one"] and box["total"] == 2
    assert api.get("/api/v1/search", params={"query": "before:2000-01-01", "tz": "UTC"}).json()["messages"] == []
    assert api.get("/api/v1/search", params={"query": "x", "tz": "Nowhere/Land"}).status_code == 400
    assert api.request("DELETE", "/api/v1/search", params={"query": "after:2000-01-01", "tz": "UTC",
                                                           "mailbox": "b@example.com"}).status_code == 200
    assert [m["Subject"] for m in api.get("/api/v1/messages").json()["messages"]] == ["three", "one"]


def test_info_counts_and_webui(server: ServerThread, api: httpx.Client) -> None:
    send(server, X_Tags="Alpha")
    send(server)
    api.request("DELETE", "/api/v1/messages", json={"IDs": [api.get("/api/v1/messages").json()["messages"][0]["ID"]]})
    info = api.get("/api/v1/info").json()
    assert info["Messages"] == 1 and info["Tags"] == {"Alpha": 1}
    stats = info["RuntimeStats"]
    assert stats["SMTPAccepted"] == 2 and stats["MessagesDeleted"] == 1 and stats["SMTPAcceptedSize"] > 0
    assert stats["Memory"] > 0 and info["DatabaseSize"] > 0
    webui = api.get("/api/v1/webui").json()
    assert webui["SpamAssassin"] is False and webui["MessageRelay"]["Enabled"] is False


def test_html_check_and_spamassassin_without_spamd(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="text only")
    assert api.get("/api/v1/message/latest/html-check").status_code == 400  # no HTML, as Mailpit answers
    rich(server)
    html = api.get("/api/v1/message/latest/html-check")
    assert html.status_code == 200 and html.json()["Total"]["Tests"] > 0 and "Error" not in html.json()
    spam = api.get("/api/v1/message/latest/sa-check")
    assert spam.headers["x-mailnest-unavailable"] == "sa-check"
    assert spam.json()["IsSpam"] is False and "--spamassassin" in spam.json()["Error"]


@pytest.mark.parametrize("path", ["", "/headers", "/raw", "/part/1", "/part/1/thumb", "/html-check", "/link-check",
                                  "/sa-check"])
def test_unknown_ids_get_404(server: ServerThread, api: httpx.Client, path: str) -> None:
    response = api.get(f"/api/v1/message/NoSuchId{path}")
    assert response.status_code == 404 and "not found" in response.json()["Error"]


def test_oversize_and_malformed_bodies(server: ServerThread, api: httpx.Client) -> None:
    huge = b'{"IDs": [' + b'"x",' * 400_000 + b'"y"]}'
    response = api.request("DELETE", "/api/v1/messages", content=huge)
    assert response.status_code == 413 and response.json()["Error"]
    # Unknown fields are ignored as Go does, but a DELETE whose every field is unknown is not read as "everything"
    everything = api.request("DELETE", "/api/v1/messages", json={"All": True})
    assert everything.status_code == 400 and "'All'" in everything.json()["Error"]
    assert api.request("DELETE", "/api/v1/messages", json={"Ids": ["x"], "All": True}).status_code == 200
    assert api.put("/api/v1/messages", json={"IDs": ["x"], "Read": True, "Search": 5}).status_code == 400
    assert api.put("/api/v1/messages", json={"IDs": ["does-not-exist"], "Read": True}).status_code == 200
    assert api.get("/api/v1/search", params={"query": "has:wings"}).status_code == 400
    assert api.get("/livez").text == "ok"


# A browser on another site must not change state through a GET (issue 12 item 10): an <img> on any page would
# mark the newest message read. Clients that send no Origin and no Sec-Fetch-Site keep Mailpit's behaviour.
CROSS_SITE = [{"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
              {"Origin": "https://evil.example"}, {"Origin": "null"},
              {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}]


def unread(api: httpx.Client) -> int:
    return int(api.get("/api/v1/messages").json()["unread"])


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_opening_from_another_site_does_not_mark_read(server: ServerThread, api: httpx.Client,
                                                      headers: dict[str, str]) -> None:
    send(server, subject="secret")
    opened = api.get("/api/v1/message/latest", headers=headers)
    assert opened.status_code == 200 and opened.json()["Read"] is False
    assert unread(api) == 1


@pytest.mark.parametrize("headers", [{}, {"Sec-Fetch-Site": "same-origin"}, {"Sec-Fetch-Site": "none"},
                                     {"Origin": "SELF", "Sec-Fetch-Site": "same-origin"}])
def test_opening_from_this_server_or_a_client_marks_read(server: ServerThread, api: httpx.Client,
                                                         headers: dict[str, str]) -> None:
    send(server, subject="mine")
    if headers.get("Origin") == "SELF":
        headers = {**headers, "Origin": server.http_url}
    assert api.get("/api/v1/message/latest", headers=headers).json()["Read"] is True
    assert unread(api) == 0


@pytest.mark.parametrize("server_config", [Config(cors_origins=("http://app.test:3000",))])
def test_an_allowed_cors_origin_marks_read(server: ServerThread, api: httpx.Client) -> None:
    send(server)
    headers = {"Origin": "http://app.test:3000", "Sec-Fetch-Site": "cross-site"}
    assert api.get("/api/v1/message/latest", headers=headers).json()["Read"] is True
    assert unread(api) == 0


@pytest.mark.parametrize("headers", CROSS_SITE)
def test_a_link_check_from_another_site_is_refused(server: ServerThread, api: httpx.Client,
                                                   headers: dict[str, str]) -> None:
    send(server, body="http://unresolvable.invalid/\n")
    refused = api.get("/api/v1/message/latest/link-check", headers=headers)
    assert refused.status_code == 403
    assert "another site" in refused.json()["Error"] and "--cors" in refused.json()["Error"]
    assert api.get("/api/v1/message/latest/link-check").json()["Errors"] == 1  # a client without them: as Mailpit


def test_an_image_on_another_page_does_not_mark_read_in_chromium(server: ServerThread, api: httpx.Client,
                                                                 browser: Any) -> None:
    send(server, subject="seen by an img?")
    page = browser.context.new_page()
    ended: list[str] = []  # the browser blocks the JSON as an image (ORB) once it is answered: requestfailed
    page.on("requestfinished", lambda request: ended.append(request.url))
    page.on("requestfailed", lambda request: ended.append(request.url))

    def load_image(count: int) -> None:
        page.evaluate("url => { const i = new Image(); i.src = url; document.body.append(i); }",
                      server.http_url + "/api/v1/message/latest")
        for _ in range(100):
            if sum("/api/v1/message/latest" in url for url in ended) >= count:
                return
            page.wait_for_timeout(50)
        raise AssertionError(f"the image request did not end: {ended}")

    try:
        browser.watch.reset(server.http_url)
        page.set_content("<p>another site</p>")  # about:blank: an opaque origin, so the image is cross-site
        load_image(1)
        assert unread(api) == 1
        page.goto(server.http_url + "/livez")  # a page of this server: the same image is same-origin
        load_image(2)
        assert unread(api) == 0
    finally:
        page.close()


# -- issue 11: what the message JSON adds ------------------------------------------------------------------------


def deliver_raw(server: ServerThread, raw: bytes, sender: str = "a@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        client.sendmail(sender, ["b@example.com"], raw)


def test_protocol_warnings_in_the_message_json(server: ServerThread, api: httpx.Client) -> None:
    deliver_raw(server, b"From: a@example.com\r\nSubject: clean\r\n\r\nall CRLF\r\n")
    clean = api.get("/api/v1/message/latest").json()
    assert clean["ProtocolWarnings"] == []
    # smtplib sends bytes as they are: bare LF line ends, as EmailMessage.as_bytes() gives them by default.
    deliver_raw(server, b"From: a@example.com\nSubject: bare\n\n" + b"x" * 1200 + b"\nlast line\n")
    warned = api.get("/api/v1/message/latest").json()
    codes = [w["Code"] for w in warned["ProtocolWarnings"]]
    assert codes == ["bare-lf", "long-line"]
    assert all(w["Text"] for w in warned["ProtocolWarnings"])
    assert "bare LF" in warned["ProtocolWarnings"][0]["Text"]


def test_the_null_sender_is_shown_as_angle_brackets(server: ServerThread, api: httpx.Client) -> None:
    deliver_raw(server, b"From: MAILER-DAEMON@example.com\r\nSubject: bounce\r\n\r\nreturned\r\n", sender="")
    message = api.get("/api/v1/message/latest").json()
    assert message["Envelope"]["MailFrom"] == "<>"
    send(server, subject="normal")
    assert api.get("/api/v1/message/latest").json()["Envelope"]["MailFrom"] == "sender@example.com"


def test_delivered_mail_is_in_inbox(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="delivered")
    assert api.get("/api/v1/messages").json()["messages"][0]["Folder"] == "INBOX"
    assert api.get("/api/v1/message/latest").json()["Folder"] == "INBOX"
    folders = api.get("/api/v1/folders").json()["Folders"]
    assert folders[0] == {"Name": "INBOX", "Owner": "", "Total": 1, "Unread": 0}


@pytest.mark.parametrize("server_config", [Config(imap=Listen("127.0.0.1", 0))])
def test_mail_moved_to_an_imap_folder_stays_visible(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="keep me")
    send(server, subject="file me")
    with imaplib.IMAP4("127.0.0.1", server.imap_port) as imap:
        imap.login("*", "any")
        assert imap.create("Archive")[0] == "OK"
        imap.select("INBOX")
        typ, data = imap.search(None, '(SUBJECT "file me")')
        assert typ == "OK" and data[0]
        assert imap._simple_command("MOVE", data[0].decode(), "Archive")[0] == "OK"  # RFC 6851
    folders = api.get("/api/v1/folders").json()["Folders"]
    assert folders[0]["Name"] == "INBOX" and folders[0]["Total"] == 1
    archive = next(f for f in folders if f["Name"] == "Archive")
    assert archive["Total"] == 1 and archive["Owner"] == "*"
    filed = api.get("/api/v1/messages", params={"query": "folder:Archive"}).json()
    assert [m["Subject"] for m in filed["messages"]] == ["file me"]
    assert filed["messages"][0]["Folder"] == "Archive"
    opened = api.get(f"/api/v1/message/{filed['messages'][0]['ID']}").json()
    assert opened["Folder"] == "Archive" and opened["Subject"] == "file me"
    inbox = api.get("/api/v1/messages", params={"query": "folder:INBOX"}).json()
    assert [m["Subject"] for m in inbox["messages"]] == ["keep me"]
