"""The message view in a real browser: every tab, attachments, inline and remote images, width switch."""

from __future__ import annotations

import base64
import email
import email.policy
from pathlib import Path

from tests.web.conftest import UI, mail, screenshot, send_raw

# A 2x2 PNG, so "the image rendered" can be told from "a broken image icon" by its natural width.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg=="
)
BINARY = bytes(range(256)) * 40 + b"\r\n.\r\n..\x00end"

HTML = """<html><head><style>h1 { color: #b3261e }</style></head><body>
<h1>Quarterly report</h1>
<p>Hello <b>Ann</b>, the <a href="https://example.com/report?id=7">report</a> is ready.</p>
<p><img src="cid:chart@mailnest.test" alt="chart" id="chart" width="160" height="80" style="image-rendering:pixelated"></p>
<p><img src="https://images.example.com/pixel.png" alt="remote" id="remote"></p>
</body></html>"""
TEXT = "Hello Ann,\n\nthe report is ready: https://example.com/report?id=7\n"


def send_report(ui: UI) -> bytes:
    return mail(
        ui.server, subject="Quarterly report", sender="Reports Bot <reports@example.com>",
        to=("Ann Example <ann@example.com>",), cc=("carol@example.com",),
        rcpt=("ann@example.com", "carol@example.com", "hidden@example.com"),
        text=TEXT, html=HTML, inline=(("chart@mailnest.test", PNG, "image/png"),),
        attachments=(("data é.bin", BINARY, "application/octet-stream"), ("notes.txt", b"plain notes\n", "text/plain")),
        headers={"X-Mailnest-Test": "first value", "X-Priority": "1"}, helo="reports.client.test",
    )


def test_each_tab_shows_the_right_content(ui: UI) -> None:
    send_report(ui)
    ui.open()
    ui.open_message("Quarterly report")
    page = ui.page
    message_id = page.get_attribute("#message", "data-ready")
    meta = page.inner_text("#msg-meta")
    assert "Reports Bot <reports@example.com>" in meta and "Ann Example <ann@example.com>" in meta
    assert "carol@example.com" in meta and "hidden@example.com" in meta  # Bcc, from the envelope

    frame = page.frame_locator("#html-frame")
    assert frame.locator("h1").inner_text() == "Quarterly report"
    assert frame.locator("b").inner_text() == "Ann"
    link = frame.locator("a")
    assert link.get_attribute("href") == "https://example.com/report?id=7"
    assert link.get_attribute("target") == "_blank"
    assert set((link.get_attribute("rel") or "").split()) == {"noopener", "noreferrer"}
    sandbox = page.get_attribute("#html-frame", "sandbox") or ""
    assert "allow-scripts" not in sandbox and "allow-same-origin" not in sandbox

    shown_text = ui.tab("text").locator("#text-body").text_content()
    assert shown_text == ui.api.get(f"/api/v1/message/{message_id}").json()["Text"]
    assert shown_text.replace("\r\n", "\n").startswith(TEXT)

    ui.tab("headers").locator("tr").first.wait_for()
    cells = page.locator("#headers-table tr").evaluate_all(
        "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
    stored = ui.api.get(f"/api/v1/message/{message_id}/raw").content
    expected_names = [name for name, _ in email.message_from_bytes(stored, policy=email.policy.compat32).items()]
    first_seen = list(dict.fromkeys(name.lower() for name in expected_names))
    assert list(dict.fromkeys(name.lower() for name, _ in cells)) == first_seen
    assert ["X-Mailnest-Test", "first value"] in cells
    assert len(cells) == len(expected_names)

    ui.tab("source")
    page.wait_for_function("() => document.querySelector('#source-body').textContent.length > 0")
    assert page.locator("#source-body").text_content() == stored.decode("utf-8")

    envelope = ui.tab("envelope").inner_text()
    assert "reports@example.com" in envelope
    assert "reports.client.test" in envelope  # HELO
    assert "127.0.0.1" in envelope  # peer
    hidden = page.locator("#envelope-body li", has_text="hidden@example.com")
    assert hidden.locator(".bcc-note").inner_text() == "Bcc"
    assert page.locator("#envelope-body li", has_text="carol@example.com").locator(".bcc-note").count() == 0

    attachments = ui.tab("attachments")
    text = attachments.inner_text()
    assert "data é.bin" in text and "application/octet-stream" in text and "notes.txt" in text
    assert "10 kB" in text and "12 B" in text  # 10,245 and 12 bytes
    assert page.inner_text("#attachments-count") == "3"

    links = ui.tab("links")
    page.locator("#links-body a").first.wait_for()
    hrefs = page.locator("#links-body a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs == ["https://example.com/report?id=7"]
    assert links.locator("a").get_attribute("rel") == "noopener noreferrer"


def test_attachments_download_byte_exact(ui: UI, tmp_path: Path) -> None:
    send_report(ui)
    ui.open()
    ui.open_message("Quarterly report")
    ui.tab("attachments")
    for name, content in (("data é.bin", BINARY), ("notes.txt", b"plain notes\n")):
        item = ui.page.locator("#attachments-body li", has_text=name)
        with ui.page.expect_download() as info:
            item.get_by_role("link", name="Download").click()
        download = info.value
        assert download.suggested_filename == name
        target = tmp_path / f"{len(content)}.bin"
        download.save_as(target)
        assert target.read_bytes() == content


def test_download_eml_is_the_message_as_received(ui: UI, tmp_path: Path) -> None:
    send_report(ui)
    ui.open()
    ui.open_message("Quarterly report")
    message_id = ui.page.get_attribute("#message", "data-ready")
    with ui.page.expect_download() as info:
        ui.page.click("#download-eml")
    download = info.value
    assert download.suggested_filename == "Quarterly report.eml"
    download.save_as(tmp_path / "m.eml")
    assert (tmp_path / "m.eml").read_bytes() == ui.api.get(f"/api/v1/message/{message_id}/raw").content


def test_inline_images_show_and_remote_images_wait_for_a_click(ui: UI) -> None:
    send_report(ui)
    ui.open()
    ui.open_message("Quarterly report")
    frame = ui.page.frame_locator("#html-frame")
    chart = frame.locator("#chart")
    chart.wait_for()
    ui.page.wait_for_timeout(50)
    assert chart.evaluate("img => img.complete && img.naturalWidth") == 2  # the cid: image, from this server
    assert frame.locator("#remote").get_attribute("src") is None
    assert ui.watch.foreign == []
    assert ui.page.inner_text("#remote-note") == "1 remote image blocked"

    ui.tab("attachments")
    thumb = ui.page.locator("#attachments-body li", has_text="chart").locator("img")
    thumb.wait_for()
    ui.page.wait_for_function("() => [...document.querySelectorAll('#attachments-body img')].every(i => i.complete)")
    assert thumb.evaluate("img => img.naturalWidth") == 2

    ui.tab("html")
    ui.page.click("#load-remote-btn")
    ui.page.frame_locator("#html-frame").locator("#remote[src]").wait_for()
    # The page asked for the remote image (the test harness refuses every request to another host).
    ui.page.wait_for_timeout(200)
    assert any("images.example.com/pixel.png" in url for url in ui.watch.foreign)


def test_width_switch(ui: UI) -> None:
    send_report(ui)
    ui.open()
    ui.open_message("Quarterly report")
    widths = {}
    for name in ("phone", "tablet", "desktop"):
        ui.page.click(f'[data-width="{name}"]')
        widths[name] = ui.page.locator("#html-frame").evaluate("f => f.getBoundingClientRect().width")
    assert widths["phone"] == 375
    assert widths["tablet"] == 768
    assert widths["desktop"] > 768


def test_text_only_message_opens_on_the_text_tab(ui: UI) -> None:
    mail(ui.server, subject="plain", text="Just <b>text</b> & nothing else\n")
    ui.open()
    ui.open_message("plain")
    assert ui.page.get_attribute('[data-tab="text"]', "aria-selected") == "true"
    shown = ui.page.locator("#text-body").text_content()
    message_id = ui.page.get_attribute("#message", "data-ready")
    assert shown == ui.api.get(f"/api/v1/message/{message_id}").json()["Text"]
    assert shown.startswith("Just <b>text</b> & nothing else")


def test_screenshots_for_the_readme(ui: UI, tmp_path: Path) -> None:
    mail(ui.server, subject="Your order #8841 has shipped", sender="Shop <orders@shop.example>",
         text="Your parcel is on its way.\n", html="<h2>On its way</h2><p>Your parcel left our warehouse.</p>")
    mail(ui.server, subject="Password reset", sender="Accounts <no-reply@app.example>", to=("bob@example.com",),
         text="Use the link to reset your password: https://app.example/reset/abc\n")
    mail(ui.server, subject="Welcome to the team!", sender="Dana Lee <dana@example.com>",
         text="Great to have you here. Lunch on Friday?\n", attachments=(("agenda.pdf", b"%PDF-1.4\n", "application/pdf"),))
    send_report(ui)
    ui.open()
    ui.page.locator(".row[data-id]").nth(3).wait_for()
    assert screenshot(ui.page, "inbox", tmp_path).read_bytes().startswith(b"\x89PNG")
    ui.open_message("Quarterly report")
    ui.page.frame_locator("#html-frame").locator("#chart").wait_for()
    ui.page.wait_for_timeout(100)
    assert screenshot(ui.page, "message", tmp_path).read_bytes().startswith(b"\x89PNG")
    ui.page.emulate_media(color_scheme="dark")  # the system's dark theme, which the UI follows
    ui.page.wait_for_timeout(100)
    assert screenshot(ui.page, "message-dark", tmp_path).read_bytes().startswith(b"\x89PNG")
    ui.page.emulate_media(color_scheme="light")
    size = ui.page.viewport_size
    try:
        ui.page.set_viewport_size({"width": 390, "height": 844})  # a phone: one pane at a time
        ui.open()
        ui.page.locator(".row[data-id]").nth(3).wait_for()
        assert screenshot(ui.page, "inbox-phone", tmp_path).read_bytes().startswith(b"\x89PNG")
    finally:
        if size is not None:
            ui.page.set_viewport_size(size)


def test_a_link_to_a_message_opens_it(ui: UI) -> None:
    mail(ui.server, subject="deep link")
    mail(ui.server, subject="other")
    message_id = next(m["ID"] for m in ui.api.get("/api/v1/messages").json()["messages"] if m["Subject"] == "deep link")
    ui.open(f"#id={message_id}")
    ui.page.wait_for_selector(f'#message[data-ready="{message_id}"]')
    assert ui.page.inner_text("#msg-subject") == "deep link"


def test_source_of_8bit_mail_is_shown_byte_for_byte(ui: UI) -> None:
    raw = (b"From: a@example.com\r\nTo: alice@example.com\r\nSubject: latin-1 body\r\n"
           b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           b"caf\xe9 cr\xe8me br\xfbl\xe9e\r\n")
    send_raw(ui.server, raw, sender="a@example.com")
    ui.open()
    ui.open_message("latin-1 body")
    message_id = ui.page.get_attribute("#message", "data-ready")
    ui.tab("source")
    ui.page.wait_for_function("() => document.querySelector('#source-body').textContent.length > 0")
    stored = ui.api.get(f"/api/v1/message/{message_id}/raw").content
    assert ui.page.locator("#source-body").text_content() == stored.decode("latin-1")
    assert "café crème brûlée" in ui.page.locator("#source-body").text_content()
    assert "café crème brûlée" in ui.tab("text").inner_text()
