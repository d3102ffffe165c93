"""MailHog's API shapes over HTTP (the npm client is driven in test_npm_clients.py): v2 lists and searches, the v1
message routes, Jim's shape, outgoing-smtp, and the v2 websocket feed."""

from __future__ import annotations

import json
import smtplib
from email.message import EmailMessage
from email.policy import SMTP

import httpx
import pytest
from websockets.sync.client import connect

from mailnest import Config, ServerThread
from mailnest.web.compat_mailhog import header_fields, path, search_queries
from tests.conftest import send


def test_pure_helpers() -> None:
    assert path("alice@example.com") == {"Relays": None, "Mailbox": "alice", "Domain": "example.com", "Params": ""}
    assert path("") == {"Relays": None, "Mailbox": "", "Domain": "", "Params": ""}
    assert path("@relay.example:bob@example.com")["Relays"] == ["@relay.example"]
    block = b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nmessage-id: <1@x>\r\nX-Long: one\r\n two\r\nTo: a\r\nTo: b\r\n\r\n"
    assert header_fields(block) == {"Subject": ["=?utf-8?q?Gr=C3=BC=C3=9Fe?="], "Message-Id": ["<1@x>"],
                                    "X-Long": ["one two"], "To": ["a", "b"]}
    assert search_queries("from", 'x"y') == ['from:"x y"', 'envelope-from:"x y"']
    assert search_queries("containing", "hello world") == ['"hello world"']


def multipart(server: ServerThread) -> None:
    msg = EmailMessage()
    msg["From"] = "Dave <dave@example.com>"
    msg["To"] = "carol@example.com"
    msg["Subject"] = "Report"
    msg.set_content("See attached.\n")
    msg.add_attachment(b"\x00\x01binary", maintype="application", subtype="octet-stream", filename="data.bin")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="helo.test") as client:
        client.sendmail("dave@example.com", ["carol@example.com", "bcc@example.com"], msg.as_bytes(policy=SMTP))


def test_v2_messages_shape(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="plain one", sender="alice@example.com", to=["bob@example.com"])
    multipart(server)
    listing = api.get("/api/v2/messages").json()
    assert listing["total"] == 2 and listing["count"] == 2 and listing["start"] == 0
    report, plain = listing["items"]
    assert report["From"] == {"Relays": None, "Mailbox": "dave", "Domain": "example.com", "Params": ""}
    assert [p["Mailbox"] for p in report["To"]] == ["carol", "bcc"]
    assert report["Raw"]["From"] == "dave@example.com" and report["Raw"]["Helo"] == "helo.test"
    assert report["Raw"]["To"] == ["carol@example.com", "bcc@example.com"]
    assert report["Raw"]["Data"].startswith("From: Dave <dave@example.com>")
    headers = report["Content"]["Headers"]
    assert headers["Subject"] == ["Report"] and headers["Return-Path"] == ["<dave@example.com>"]
    assert headers["Content-Type"][0].startswith("multipart/mixed")
    assert report["Content"]["MIME"] is None and report["Content"]["Size"] == len(report["Content"]["Body"])
    text_part, attachment = report["MIME"]["Parts"]
    assert text_part["Headers"]["Content-Type"] == ['text/plain; charset="utf-8"']
    assert text_part["Body"] == "See attached.\r\n"
    assert attachment["Headers"]["Content-Disposition"] == ['attachment; filename="data.bin"']
    assert plain["MIME"] is None and plain["Content"]["Headers"]["Subject"] == ["plain one"]
    assert plain["Created"].endswith("Z")
    assert api.get("/api/v2/messages", params={"start": 1, "limit": 1}).json()["items"][0]["ID"] == plain["ID"]
    assert api.get("/api/v2/messages", params={"limit": 5000}).json()["count"] == 2  # capped at 250, as MailHog


def test_v2_search_kinds(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="from header only", sender="envelope@example.com",
         raw=b"From: header@example.com\r\nTo: x@example.com\r\nSubject: one\r\n\r\nNeedle in body\r\n")
    send(server, subject="two", to=["carol@example.com"])

    def found(kind: str, query: str) -> list[str]:
        response = api.get("/api/v2/search", params={"kind": kind, "query": query})
        assert response.status_code == 200, response.text
        return [m["Content"]["Headers"]["Subject"][0] for m in response.json()["items"]]

    assert found("from", "header@example.com") == ["one"]
    assert found("from", "envelope@example.com") == ["one"]
    assert found("to", "carol@example.com") == ["two"]
    assert found("containing", "needle") == ["one"]
    assert found("containing", "nothing here") == []
    for params in ({"kind": "subject", "query": "x"}, {"kind": "from"}, {"kind": "to", "query": " "},
                   {"kind": "from", "query": "x", "start": "-1"}):
        assert api.get("/api/v2/search", params=params).status_code == 400


def test_v1_message_routes(server: ServerThread, api: httpx.Client) -> None:
    multipart(server)
    message_id = api.get("/api/v2/messages").json()["items"][0]["ID"]
    one = api.get(f"/api/v1/messages/{message_id}").json()
    assert one["ID"] == message_id and one["Content"]["Headers"]["Subject"] == ["Report"]
    download = api.get(f"/api/v1/messages/{message_id}/download")
    assert download.headers["content-type"] == "message/rfc822"
    assert download.headers["content-disposition"] == f'attachment; filename="{message_id}.eml"'
    assert download.content == api.get(f"/api/v1/message/{message_id}/raw").content
    part = api.get(f"/api/v1/messages/{message_id}/mime/part/1/download")
    assert part.headers["content-type"] == "application/octet-stream"
    assert part.content.strip() == b"AAFiaW5hcnk="  # MailHog hands the part body over as it is in the message
    assert api.get(f"/api/v1/messages/{message_id}/mime/part/7/download").status_code == 404
    assert api.get(f"/api/v1/messages/{message_id}/mime/part/x/download").status_code == 404
    assert api.get("/api/v1/messages/unknown").status_code == 404
    deleted = api.delete(f"/api/v1/messages/{message_id}")
    assert deleted.status_code == 200 and deleted.content == b""
    assert api.delete(f"/api/v1/messages/{message_id}").status_code == 404
    assert api.get(f"/api/v1/messages/{message_id}/download").status_code == 404


def test_delete_all_answers_mailhog_clients_with_an_empty_body(server: ServerThread, api: httpx.Client) -> None:
    send(server)
    with httpx.Client(base_url=server.http_url) as bare:
        request = bare.build_request("DELETE", "/api/v1/messages")
        del request.headers["accept"]
        response = bare.send(request)
    assert response.status_code == 200 and response.content == b""
    assert api.get("/api/v2/messages").json()["total"] == 0
    send(server)
    assert api.delete("/api/v1/messages").text == "ok"  # Mailpit clients send Accept


@pytest.mark.parametrize("server_config", [Config(relay="127.0.0.1:2525", relay_allow=("*@example.com",))])
def test_outgoing_smtp_is_the_relay(server: ServerThread, api: httpx.Client) -> None:
    servers = api.get("/api/v2/outgoing-smtp").json()
    assert servers["relay"]["Host"] == "127.0.0.1" and servers["relay"]["Port"] == "2525"


def test_outgoing_smtp_without_relay(server: ServerThread, api: httpx.Client) -> None:
    assert api.get("/api/v2/outgoing-smtp").json() == {}


def test_v2_websocket_feed(server: ServerThread) -> None:
    with connect(server.http_url.replace("http://", "ws://") + "/api/v2/websocket", open_timeout=10) as ws:
        send(server, subject="pushed")
        message = json.loads(ws.recv(timeout=10))
    assert message["Content"]["Headers"]["Subject"] == ["pushed"] and message["Raw"]["From"]


HOSTILE_PART = (
    b"From: evil@example.com\r\nTo: dev@example.com\r\nSubject: hostile part\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    b'--b\r\nContent-Type: text/html; charset="utf-8"; x="<script>"\r\n'
    b'Content-Disposition: inline; filename="../../evil\\"name.html"\r\n'
    b"Set-Cookie: session=stolen; Path=/\r\n"
    b"Access-Control-Allow-Origin: *\r\n"
    b"Access-Control-Allow-Credentials: true\r\n"
    b"Content-Security-Policy: script-src *\r\n"
    b"Link: <https://evil.example/x.css>; rel=stylesheet\r\n"
    b"Refresh: 0; url=https://evil.example/\r\n"
    b"Location: https://evil.example/\r\n"
    b"X-Frame-Options: ALLOWALL\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n<script>alert(1)</script>\r\n"
    b"--b\r\nContent-Type: text/html\r\nnot/a type\r\n\r\n<b>x</b>\r\n"
    b"--b\r\nContent-Type: evil\"/\"type\r\n\r\n<b>x</b>\r\n"
    b"--b--\r\n"
)


def test_part_download_copies_no_header_from_the_message(server: ServerThread, api: httpx.Client) -> None:
    send(server, raw=HOSTILE_PART)
    message_id = api.get("/api/v2/messages").json()["items"][0]["ID"]
    part = api.get(f"/api/v1/messages/{message_id}/mime/part/1/download")
    assert part.status_code == 200
    for name in ("set-cookie", "access-control-allow-origin", "access-control-allow-credentials", "link", "refresh",
                 "location", "x-frame-options"):
        assert name not in part.headers, name
    assert part.headers["content-type"] == "text/html; charset=utf-8"  # written anew, the x= parameter gone
    assert part.headers["content-disposition"] == 'attachment; filename="evil_name.html"'
    assert part.headers["x-content-type-options"] == "nosniff"
    assert part.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert part.headers["content-transfer-encoding"] == "quoted-printable"
    assert part.content == b"<script>alert(1)</script>"  # the body as it is in the message, as MailHog serves it
    assert "session" not in api.cookies
    unnamed = api.get(f"/api/v1/messages/{message_id}/mime/part/3/download")
    assert unnamed.headers["content-type"].startswith("text/plain")  # RFC 2045 5.2: a broken type is text/plain
    assert unnamed.headers["content-disposition"] == f'attachment; filename="{message_id}-part-3"'
