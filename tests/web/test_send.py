"""The send API (POST /api/v1/send): the pure builder, then end to end over HTTP."""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.web.send import SendError, build

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 24


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_build_makes_a_real_message() -> None:
    built = build({
        "From": {"Email": "jane@example.com", "Name": "Jane Doe"},
        "To": [{"Email": "joe@example.com", "Name": "Joe"}, {"Email": "ann@example.com"}],
        "Cc": [{"Email": "cc@example.com"}], "Bcc": ["secret@example.com"],
        "ReplyTo": [{"Email": "reply@example.com"}], "Subject": "Grüße", "Text": "Hello\n", "HTML": "<p>Hello</p>",
        "Attachments": [{"Content": b64(b"a,b\n"), "Filename": "data.csv"},
                        {"Content": "data:image/png;base64," + b64(PNG), "Filename": "logo.png", "ContentID": "logo"}],
        "Tags": ["Invoice", "x!y"], "Headers": {"X-Campaign": "spring"},
    }, hostname="test.example", now=0)
    assert built.mail_from == "jane@example.com"
    assert built.recipients == ("joe@example.com", "ann@example.com", "cc@example.com", "secret@example.com")
    assert built.tags == ("Invoice", "xy")
    assert b"\r\n" in built.raw and b"\n" not in built.raw.replace(b"\r\n", b"")
    msg = email.message_from_bytes(built.raw, policy=email.policy.default)
    assert msg["From"] == "Jane Doe <jane@example.com>"
    assert msg["Subject"] == "Grüße" and msg["Bcc"] is None and msg["X-Tags"] == "Invoice, xy"
    assert msg["X-Campaign"] == "spring" and msg["Message-ID"].endswith("@test.example>")
    assert email.utils.parsedate_to_datetime(msg["Date"]).timestamp() == 0
    assert msg.get_body(("plain",)).get_content() == "Hello\r\n"  # the parser keeps the wire's line ends
    assert msg.get_body(("html",)).get_content().strip() == "<p>Hello</p>"
    parts = {p.get_filename(): p for p in msg.walk() if p.get_filename()}
    assert parts["data.csv"].get_content_type() == "text/csv" and parts["data.csv"].get_content() == "a,b\n"
    assert parts["logo.png"].get_content_type() == "image/png" and parts["logo.png"]["Content-ID"] == "<logo>"
    assert parts["logo.png"].get_content() == PNG
    related = [p for p in msg.walk() if p.get_content_type() == "multipart/related"]
    assert related and parts["logo.png"] in list(related[0].iter_parts())


@pytest.mark.parametrize(("request_body", "fragment"), [
    ({}, "From is required"),
    ({"From": "jane@example.com"}, "must be an object"),
    ({"From": {"Email": "not an address"}}, "invalid From address"),
    ({"From": {"Email": "a@example.com"}, "To": [{"Email": "x@"}]}, "invalid To address"),
    ({"From": {"Email": "a@example.com"}, "To": {"Email": "x@example.com"}}, "must be a list"),
    ({"From": {"Email": "a@example.com", "Nick": "x"}}, "unknown field"),
    ({"From": {"Email": "a@example.com"}, "Bcc": ["b@example.com\r\nX-Evil: 1"]}, "invalid Bcc address"),
    ({"From": {"Email": "a@example.com"}, "Subject": "hi\r\nBcc: evil@example.com"}, "line breaks"),
    ({"From": {"Email": "a@example.com"}, "Subject": 5}, "must be a string"),
    ({"From": {"Email": "a@example.com"}, "Headers": {"Subject": "x"}}, "cannot overwrite header"),
    ({"From": {"Email": "a@example.com"}, "Headers": {"X-A": "b\nc"}}, "line breaks"),
    ({"From": {"Email": "a@example.com"}, "Headers": {"Bad Name": "b"}}, "not a header name"),
    ({"From": {"Email": "a@example.com"}, "Attachments": [{"Content": "!!!", "Filename": "f"}]}, "base64"),
    ({"From": {"Email": "a@example.com"}, "Attachments": [{"Content": "", "Filename": ""}]}, "Filename is required"),
    ({"From": {"Email": "a@example.com"}, "Attachments": [{"Content": "", "Filename": "x", "Size": 1}]},
     "unknown field"),
    ({"From": {"Email": "a@example.com"}, "Tags": "one"}, "must be a list"),
])
def test_build_refuses_bad_requests(request_body: dict, fragment: str) -> None:
    with pytest.raises(SendError) as caught:
        build(request_body)
    assert fragment in str(caught.value)


def test_send_stores_with_an_api_envelope(server: ServerThread, api: httpx.Client) -> None:
    response = api.post("/api/v1/send", json={
        "from": {"email": "jane@example.com"}, "to": [{"email": "joe@example.com"}], "bcc": ["boss@example.com"],
        "subject": "Field names ignore case, as in Mailpit", "text": "Body", "tags": ["Sent"]})
    assert response.status_code == 200, response.text
    message_id = response.json()["ID"]
    message = api.get(f"/api/v1/message/{message_id}").json()
    assert message["Subject"] == "Field names ignore case, as in Mailpit"
    assert message["Tags"] == ["Sent"]
    assert [a["Address"] for a in message["Bcc"]] == ["boss@example.com"]
    envelope = message["Envelope"]
    assert envelope["Source"] == "api" and envelope["MailFrom"] == "jane@example.com"
    assert envelope["RcptTo"] == ["joe@example.com", "boss@example.com"]
    assert envelope["Peer"].startswith("127.0.0.1:")
    mailbox = api.get("/api/v1/messages", params={"mailbox": "boss@example.com"}).json()
    assert [m["ID"] for m in mailbox["messages"]] == [message_id]


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400), (b"[]", 400), (b"", 400),
    (b'{"From": {"Email": "bad"}}', 400),
])
def test_send_errors_are_json_with_a_reason(server: ServerThread, api: httpx.Client, body: bytes,
                                            status: int) -> None:
    response = api.post("/api/v1/send", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status
    assert response.json()["Error"]
    assert api.get("/api/v1/messages").json()["total"] == 0


@pytest.mark.parametrize("server_config", [Config(max_message_size=2000)])
def test_send_over_the_size_limit(server: ServerThread, api: httpx.Client) -> None:
    big = {"From": {"Email": "a@example.com"}, "Text": "x" * 5000}
    response = api.post("/api/v1/send", json=big)
    assert response.status_code == 413 and "over the limit" in response.json()["Error"]
    huge = {"From": {"Email": "a@example.com"}, "Text": "x" * 2_000_000}
    assert api.post("/api/v1/send", json=huge).status_code == 413
    assert api.get("/api/v1/messages").json()["total"] == 0
