"""UI pieces that stand on endpoints beyond the core API: live events, compose and send.

Each test first checks that its endpoint is served; where it is not, the test skips locally and fails in CI.
"""

from __future__ import annotations

import base64

import httpx

from tests.web.conftest import UI, mail, missing, require_endpoint


def events_served(base_url: str) -> bool:
    from websockets.sync.client import connect

    try:
        with connect(base_url.replace("http://", "ws://") + "/api/events", open_timeout=3):
            return True
    except Exception:
        pass
    try:
        with httpx.stream("GET", base_url + "/api/v1/events", timeout=3) as response:
            return response.status_code == 200
    except httpx.HTTPError:
        return False


def test_live_channel_connects_and_delivers(ui: UI) -> None:
    if not events_served(ui.url):
        missing("neither the websocket /api/events nor the SSE stream /api/v1/events is served yet")
    ui.open()
    ui.page.locator('#live[data-state="live"]').wait_for(timeout=5000)
    mail(ui.server, subject="pushed, not polled")
    # Polling would take up to 3 s; a pushed event lands well within 2.
    ui.page.locator(".row[data-id]", has_text="pushed, not polled").wait_for(timeout=2000)
    ui.page.wait_for_function("() => document.title === '(1) mailnest'")


def test_compose_sends_a_message_that_then_appears(ui: UI) -> None:
    require_endpoint(ui.api, "POST", "/api/v1/send", {})
    ui.open()
    page = ui.page
    page.click("#compose-btn")
    form = page.locator("#compose-form")
    form.locator('[name="from"]').fill("composer@example.com")
    form.locator('[name="fromName"]').fill("Composer")
    form.locator('[name="to"]').fill('"Doe, Jane" <jane@example.com>, bob@example.com')
    form.locator('[name="cc"]').fill("carol@example.com")
    form.locator('[name="subject"]').fill("Composed in the browser")
    form.locator('[name="text"]').fill("Plain words.\n")
    form.locator('[name="html"]').fill("<p>Rich <b>words</b></p>")
    attachment = bytes(range(256))
    form.locator('[name="attachments"]').set_input_files(
        files=[{"name": "bytes.bin", "mimeType": "application/octet-stream", "buffer": attachment}])
    page.click("#compose-send")
    page.locator(".row[data-id]", has_text="Composed in the browser").wait_for(timeout=8000)
    assert page.locator("#compose-dialog").is_hidden()

    listing = ui.api.get("/api/v1/messages").json()["messages"]
    sent = ui.api.get(f"/api/v1/message/{listing[0]['ID']}").json()
    assert sent["Subject"] == "Composed in the browser"
    assert sent["From"] == {"Name": "Composer", "Address": "composer@example.com"}
    assert [a["Address"] for a in sent["To"]] == ["jane@example.com", "bob@example.com"]
    assert sent["To"][0]["Name"] == "Doe, Jane"
    assert [a["Address"] for a in sent["Cc"]] == ["carol@example.com"]
    assert "Plain words." in sent["Text"]
    assert "<b>words</b>" in sent["HTML"]
    (part,) = sent["Attachments"]
    assert part["FileName"] == "bytes.bin"
    content = ui.api.get(f"/api/v1/message/{sent['ID']}/part/{part['PartID']}").content
    assert content == attachment


def test_compose_reports_a_refused_send(ui: UI) -> None:
    require_endpoint(ui.api, "POST", "/api/v1/send", {})
    ui.open()
    ui.page.click("#compose-btn")
    form = ui.page.locator("#compose-form")
    form.locator('[name="from"]').fill("not an address")
    form.locator('[name="to"]').fill("also not an address")
    ui.page.click("#compose-send")
    error = ui.page.locator("#compose-error")
    error.wait_for()
    assert error.inner_text().startswith("Send failed:")
    assert ui.page.locator("#compose-dialog").is_visible()


def test_attachment_payload_is_base64(ui: UI) -> None:
    """What the compose form posts is Mailpit's send JSON; check the encoding the browser produced."""
    require_endpoint(ui.api, "POST", "/api/v1/send", {})
    ui.open()
    captured: list[dict] = []
    ui.page.on("request", lambda r: captured.append(r.post_data_json) if r.url.endswith("/api/v1/send") else None)
    ui.page.click("#compose-btn")
    form = ui.page.locator("#compose-form")
    form.locator('[name="to"]').fill("x@example.com")
    form.locator('[name="tags"]').fill("one, two")
    form.locator('[name="attachments"]').set_input_files(
        files=[{"name": "a.txt", "mimeType": "text/plain", "buffer": b"\xff\x00abc"}])
    ui.page.click("#compose-send")
    ui.page.locator("#compose-dialog").wait_for(state="hidden")
    (payload,) = captured
    assert base64.b64decode(payload["Attachments"][0]["Content"]) == b"\xff\x00abc"
    assert payload["Attachments"][0]["ContentType"] == "text/plain"
    assert payload["Tags"] == ["one", "two"]
    assert payload["To"] == [{"Email": "x@example.com", "Name": ""}]
