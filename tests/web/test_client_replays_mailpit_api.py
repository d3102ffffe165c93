"""Mailpit's own API tests (github.com/axllent/mailpit v1.30.5: server/server_test.go, server/cors_test.go,
server/apiv1/thumbnail_test.go), replayed as the HTTP calls they make against a real mailnest, asserting what they
assert.

The Go tests store their 100 messages with storage.Store; here they arrive over SMTP, built as enmime's builder
builds them (same From, To, Subject and text), and are tagged through the API. The Go client sends its JSON bodies
without a Content-Type and encodes queries with url.QueryEscape (spaces as "+"); so does the replay. Where a case
depends on something mailnest deliberately does differently, a comment says why and the test asserts mailnest's
documented behaviour instead.
"""

from __future__ import annotations

import base64
import json
import smtplib
import struct
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.cli import build_parser, config_from_args
from tests.conftest import send

# The PNG of TestAPIv1Send's inline attachment, as the Go test has it.
LOGO_PNG = (
    "iVBORw0KGgoAAAANSUhEUgAAAEEAAAA8CAMAAAAOlSdoAAAACXBIWXMAAAHrAAAB6wGM2bZBAAAAS1BMVEVHcEwRfnUkZ2gAt4UsSF8At4UtSV4A"
    "t4YsSV4At4YsSV8At4YsSV4At4YsSV4sSV4At4YsSV4At4YtSV4At4YsSV4At4YtSV8At4YsUWYNAAAAGHRSTlMAAwoXGiktRE5dbnd7kpOlr7zJ"
    "0d3h8PD8PCSRAAACWUlEQVR42pXT4ZaqIBSG4W9rhqQYocG+/ys9Y0Z0Br+x3j8zaxUPewFh65K+7yrIMeIY4MT3wPfEJCidKXEMnLaVkxDiELiM"
    "z4WEOAZSFghxBIypCOlKiAMgXfIqTnBgSm8CIQ6BImxEUxEckClVQiHGj4Ba4AQHikAIClwTE9KtIghAhUJwoLkmLnCiAHJLRKgIMsEtVUKbBUIw"
    "oAg2C4QgQBE6l4VCnApBgSKYLLApCnCa0+96AEMW2BQcmC+Pr3nfp7o5Exy49gIADcIqUELGfeA+bp93LmAJp8QJoEcN3C7NY3sbVANixMyI0nku"
    "20/n5/ZRf3KI2k6JEDWQtxcbdGuAqu3TAXG+/799Oyyas1B1MnMiA+XyxHp9q0PUKGPiRAau1fZbLRZV09wZcT8/gHk8QQAxXn8VgaDqcUmU6O/r"
    "28nbVwXAqca2mRNtPAF5+zoP2MeN9Fy4NgC6RfcbgE7XITBRYTtOE3U3C2DVff7pk+PkUxgAbvtnPXJaD6DxulMLwOhPS/M3MQkgg1ZFrIXnmfaZ"
    "oOfpKiFgzeZD/WuKqQEGrfJYkyWf6vlG3xUgTuscnkNkQsb599q124kdpMUjCa/XARHs1gZymVtGt3wLkiFv8rUgTxitYCex5EVGec0Y9VmoDTFB"
    "SQte2TfXGXlf7hbdaUM9Sk7fisEN9qfBBTK+FZcvM9fQSdkl2vj4W2oX/bRogO3XasiNH7R0eW7fgRM834ImTg+Lg6BEnx4vz81rhr+MYPBBQg1v"
    "8GndEOrthxaCTxNAOut8WKLGZQl+MPz88Q9tAO/hVuSeqQAAAABJRU5ErkJggg=="
)

# testSendMessage, the shared message of the Go tests
TEST_SEND_MESSAGE = {"From": {"Email": "test@example.com"}, "To": [{"Email": "recipient@example.com"}],
                     "Subject": "Test", "Text": "Test message"}


def go_request(method: str, url: str, body: str | None = None,
               auth: tuple[str, str] | None = None) -> httpx.Response:
    """Go's http.Client as the tests use it: a string body, no Content-Type and no Accept, optional basic auth."""
    with httpx.Client(timeout=60, headers={"User-Agent": "Go-http-client/1.1"}) as client:
        request = client.build_request(method, url, content=None if body is None else body.encode())
        del request.headers["Accept"]
        if auth is not None:  # req.SetBasicAuth
            request.headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
        return client.send(request)


def client_ok(method: str, url: str, body: str | None = None, auth: tuple[str, str] | None = None) -> bytes:
    """clientGet/clientPut/clientPost/clientDelete: anything but 200 is the test's error."""
    response = go_request(method, url, body, auth)
    assert response.status_code == 200, f"{method} {url} returned status {response.status_code}: {response.text}"
    return response.content


def assert_stats_equal(base: str, unread: int, total: int) -> None:
    summary = json.loads(client_ok("GET", f"{base}/api/v1/messages"))
    assert (summary["unread"], summary["total"]) == (unread, total), "wrong unread/total count"


def assert_search_equal(base: str, query: str, count: int) -> None:
    """assertSearchEqual: the limit is the count expected, so the cases that expect none ask for limit=0."""
    data = client_ok("GET", f"{base}/api/v1/search?query={quote_plus(query)}&limit={count}")
    assert json.loads(data)["messages_count"] == count, f"wrong search results count for {query!r}"


def insert_email_data(server: ServerThread) -> None:
    """insertEmailData: 100 messages, each tagged "Test tag NNN"."""
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        for i in range(100):
            msg = EmailMessage()
            msg["From"] = f"From {i} <from-{i}@example.com>"
            msg["Subject"] = f"Subject line {i} end"
            msg["To"] = f"To {i} <to-{i}@example.com>"
            msg.set_content(f"This is the email body {i} <jdsauk;dwqmdqw;>.")
            client.sendmail(f"from-{i}@example.com", [f"to-{i}@example.com"], bytes(msg))
    listing = httpx.get(f"{server.http_url}/api/v1/messages", params={"limit": 200}).json()
    assert listing["total"] == 100
    for message in listing["messages"]:
        number = int(message["Subject"].split()[2])
        tags = json.dumps({"IDs": [message["ID"]], "Tags": [f"Test tag {number:03d}"]})
        client_ok("PUT", f"{server.http_url}/api/v1/tags", tags)


@pytest.fixture
def mailpit() -> Iterator[ServerThread]:
    """setup(): an empty database with no message limit."""
    with ServerThread(Config(max_messages=0)) as server:
        yield server


def message_ids(base: str) -> list[str]:
    return [m["ID"] for m in json.loads(client_ok("GET", f"{base}/api/v1/messages"))["messages"]]


# -- server_test.go ----------------------------------------------------------------------------------------------

def test_api_v1_messages(mailpit: ServerThread) -> None:
    base = mailpit.http_url
    assert_stats_equal(base, 0, 0)
    insert_email_data(mailpit)
    assert_stats_equal(base, 100, 100)
    for message_id in message_ids(base)[:10]:  # read the first 10 including raw & headers
        client_ok("GET", f"{base}/api/v1/message/{message_id}")
        client_ok("GET", f"{base}/api/v1/message/{message_id}/raw")
        client_ok("GET", f"{base}/api/v1/message/{message_id}/headers")
    assert_stats_equal(base, 90, 100)  # 10 should be marked as read
    client_ok("DELETE", f"{base}/api/v1/messages", "{}")
    assert_stats_equal(base, 0, 0)


def test_api_v1_toggle_read_status(mailpit: ServerThread) -> None:
    base = mailpit.http_url
    assert_stats_equal(base, 0, 0)
    insert_email_data(mailpit)
    assert_stats_equal(base, 100, 100)
    put_ids = message_ids(base)[:10]
    assert_stats_equal(base, 100, 100)
    client_ok("PUT", f"{base}/api/v1/messages", json.dumps({"Read": True, "IDs": put_ids}))
    assert_stats_equal(base, 90, 100)
    client_ok("PUT", f"{base}/api/v1/messages", json.dumps({"Read": False, "IDs": put_ids}))
    assert_stats_equal(base, 100, 100)
    client_ok("PUT", f"{base}/api/v1/messages", json.dumps({"Read": True, "IDs": []}))  # mark all read
    assert_stats_equal(base, 0, 100)


SEARCHES = [
    ("from-1@example.com", 1), ("from:from-1@example.com", 1), ("-from:from-1@example.com", 99),
    ("-FROM:FROM-1@EXAMPLE.COM", 99), ("to:from-1@example.com", 0), ("from:@example.com", 100),
    ('subject:"Subject line"', 100), ('subject:"SUBJECT LINE 17 END"', 1), ("!thisdoesnotexist", 100),
    ("-ThisDoesNotExist", 100), ("thisdoesnotexist", 0), ('tag:"Test tag 065"', 1), ('tag:"TEST TAG 065"', 1),
    ('!tag:"Test tag 023"', 99),
]


def test_api_v1_search(mailpit: ServerThread) -> None:
    insert_email_data(mailpit)
    assert_stats_equal(mailpit.http_url, 100, 100)
    failures = []
    for query, count in SEARCHES:
        try:
            assert_search_equal(mailpit.http_url, query, count)
        except AssertionError as error:
            failures.append(f"{query} (limit={count}): {error}")
    assert not failures, "\n".join(failures)


SEND_JSON = """{
    "From": {"Email": "john@example.com", "Name": "John Doe"},
    "To": [{"Email": "jane@example.com", "Name": "Jane Doe"}],
    "Cc": [{"Email": "manager1@example.com", "Name": "Manager 1"}, {"Email": "manager2@example.com",
            "Name": "Manager 2"}],
    "Bcc": ["jack@example.com"],
    "Headers": {"X-IP": "1.2.3.4"},
    "Subject": "Mailpit message via the HTTP API",
    "Text": "This is the text body",
    "HTML": "<p style=\\"font-family: arial\\">Mailpit is <b>awesome</b>!</p>",
    "Attachments": [
      {"Content": "VGhpcyBpcyBhIHBsYWluIHRleHQgYXR0YWNobWVudA==", "Filename": "Attached File.txt"},
      {"Content": "LOGO_PNG", "Filename": "logo.png", "ContentID": "inline-cid", "ContentType": "overridden/type"}
    ],
    "ReplyTo": [{"Email": "secretary@example.com", "Name": "Secretary"}],
    "Tags": ["Tag 1", "Tag 2"]
}""".replace("LOGO_PNG", LOGO_PNG)


def address(entry: dict[str, str]) -> str:
    """mail.Address.String() as the Go test compares it."""
    return f'"{entry["Name"]}" <{entry["Address"]}>' if entry["Name"] else f'<{entry["Address"]}>'


def test_api_v1_send(mailpit: ServerThread) -> None:
    base = mailpit.http_url
    sent = json.loads(client_ok("POST", f"{base}/api/v1/send", SEND_JSON))
    msg = json.loads(client_ok("GET", f"{base}/api/v1/message/{sent['ID']}"))
    checks = {
        "wrong subject": ("Mailpit message via the HTTP API", msg["Subject"]),
        "wrong text": ("This is the text body", msg["Text"]),
        "wrong HTML": ('<p style="font-family: arial">Mailpit is <b>awesome</b>!</p>', msg["HTML"]),
        "wrong From": ('"John Doe" <john@example.com>', address(msg["From"])),
        "wrong To": (['"Jane Doe" <jane@example.com>'], [address(a) for a in msg["To"]]),
        "wrong Cc": (['"Manager 1" <manager1@example.com>', '"Manager 2" <manager2@example.com>'],
                     [address(a) for a in msg["Cc"]]),
        "wrong Bcc": (["<jack@example.com>"], [address(a) for a in msg["Bcc"]]),
        "wrong Reply-To": (['"Secretary" <secretary@example.com>'], [address(a) for a in msg["ReplyTo"]]),
        "wrong Tags": ("Tag 1,Tag 2", ",".join(msg["Tags"])),
        "wrong Attachments": ([("Attached File.txt", "text/plain")],
                              [(a["FileName"], a["ContentType"]) for a in msg["Attachments"]]),
        "wrong Inline": ([("logo.png", "overridden/type")], [(a["FileName"], a["ContentType"]) for a in msg["Inline"]]),
    }
    wrong = {name: pair for name, pair in checks.items() if pair[0] != pair[1]}
    assert wrong == {}, "expected, received: " + repr(wrong)
    part = client_ok("GET", f"{base}/api/v1/message/{sent['ID']}/part/{msg['Attachments'][0]['PartID']}")
    assert part == b"This is a plain text attachment"


def test_api_v1_send_max_message_size() -> None:
    oversized = json.dumps({"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}],
                            "Subject": "oversize", "Text": "X" * (2 * 1024 * 1024)})
    with ServerThread(Config(max_message_size=1024 * 1024)) as server:  # config.MaxMessageSize = 1 (MiB)
        response = go_request("POST", f"{server.http_url}/api/v1/send", oversized)
        assert response.status_code == 413, "expected 413 for oversize body"
        client_ok("POST", f"{server.http_url}/api/v1/send", json.dumps(TEST_SEND_MESSAGE))
    with ServerThread(Config(max_message_size=0)) as server:  # 0: unlimited, the oversize one now succeeds
        client_ok("POST", f"{server.http_url}/api/v1/send", oversized)


@pytest.fixture
def accounts(tmp_path: Path) -> tuple[Path, Path]:
    """The UI's and the send API's accounts (auth.SetUIAuth / auth.SetSendAPIAuth), plain passwords."""
    ui = tmp_path / "ui.auth"
    ui.write_text("uiuser:uipass\n")
    sender = tmp_path / "send.auth"
    sender.write_text("senduser:sendpass\n")
    return ui, sender


# TestSendAPIAuthMiddleware/SendAPIAuthAcceptAny (--send-api-auth-accept-any: the send API takes any request,
# with UI auth on) is not replayed: mailnest has no such option (reported to issue 14's Mailpit-flag list).

def test_send_api_with_dedicated_credentials(accounts: tuple[Path, Path]) -> None:
    ui, sender = accounts
    body = json.dumps(TEST_SEND_MESSAGE)
    with ServerThread(Config(http_auth_file=ui, send_auth_file=sender)) as server:
        url = f"{server.http_url}/api/v1/send"
        assert go_request("POST", url, body, ("senduser", "sendpass")).status_code == 200
        assert go_request("POST", url, body, ("senduser", "wrongpass")).status_code != 200
        assert go_request("POST", url, body, ("uiuser", "uipass")).status_code != 200


def test_send_api_fallback_to_ui_auth(accounts: tuple[Path, Path]) -> None:
    ui, _ = accounts
    body = json.dumps(TEST_SEND_MESSAGE)
    with ServerThread(Config(http_auth_file=ui)) as server:
        url = f"{server.http_url}/api/v1/send"
        assert go_request("POST", url, body, ("uiuser", "uipass")).status_code == 200
        assert go_request("POST", url, body).status_code != 200


def test_regular_api_not_affected_by_send_api_auth(accounts: tuple[Path, Path]) -> None:
    ui, sender = accounts
    with ServerThread(Config(http_auth_file=ui, send_auth_file=sender)) as server:
        url = f"{server.http_url}/api/v1/messages"
        assert go_request("GET", url, auth=("uiuser", "uipass")).status_code == 200
        assert go_request("GET", url, auth=("senduser", "sendpass")).status_code != 200


# -- cors_test.go ------------------------------------------------------------------------------------------------
#
# Mailpit answers any /api/ request from an origin it does not allow with 403 "Blocked due to CORS violation".
# mailnest deliberately refuses only changes (POST, PUT, PATCH, DELETE) from such an origin (403) and answers a
# GET without Access-Control-Allow-Origin, so the browser keeps the answer from the page (README, "The web UI and
# the API"). The replays ask with a change (marking every message read, which changes nothing here) and, where
# the origin is allowed, check the GET's Access-Control-Allow-Origin too.

def cors_config(value: str) -> Config:
    """`--cors VALUE` as a user passes Mailpit's --api-cors value; any Host (the cases set their own)."""
    arguments = ["serve", "--cors", value] if value else ["serve"]
    parsed = config_from_args(build_parser().parse_args(arguments))
    return Config(cors_origins=parsed.cors_origins, allowed_hosts=("*",))


def origin_allowed(server: ServerThread, origin: str, host: str) -> bool:
    headers: dict[str, Any] = {"Host": host}
    if origin:
        headers["Origin"] = origin.encode()  # the non-ASCII cases are sent as the UTF-8 bytes a browser would
    change = httpx.put(f"{server.http_url}/api/v1/messages", content=b'{"Read": true}', headers=headers)
    assert change.status_code in (200, 403), f"{origin} on {host}: {change.status_code} {change.text}"
    if change.status_code == 200 and origin:
        read = httpx.get(f"{server.http_url}/api/v1/messages", headers=headers)
        assert read.status_code == 200
        if origin.lower().removeprefix("http://") != host.lower():  # cross-origin: the header says who may read
            # Mailpit echoes the Origin; mailnest answers "*" when any origin is allowed (the same to a browser
            # for a request without credentials, which is all a page can send to an open API)
            assert read.headers.get("access-control-allow-origin", "").lower() in ("*", origin.lower())
    return change.status_code == 200


EXTRACT_ORIGINS = [
    ("empty string", "", []),
    ("single hostname", "example.com", ["example.com"]),
    ("multiple hostnames comma separated", "example.com,foo.com", ["example.com", "foo.com"]),
    ("multiple hostnames space separated", "example.com foo.com", ["example.com", "foo.com"]),
    ("wildcard", "*", ["*"]),
    ("mixed protocols", "http://example.com,https://foo.com:8080", ["example.com", "foo.com:8080"]),
    ("embedded wildcard", "http://example.com,*,https://test", ["*"]),
]


@pytest.mark.parametrize(("value", "expected"), [case[1:] for case in EXTRACT_ORIGINS],
                         ids=[case[0] for case in EXTRACT_ORIGINS])
def test_extract_origins(value: str, expected: list[str]) -> None:
    """TestExtractOrigins: which origins a --api-cors value lets in (probed from another host than theirs)."""
    probes = ["example.com", "foo.com", "foo.com:8080", "test", "any.com"]
    with ServerThread(cors_config(value)) as server:
        allowed = [host for host in probes if origin_allowed(server, f"http://{host}", "mailpit.local")]
    if expected == ["*"]:
        expected = probes
    assert allowed == [host for host in probes if host in expected]


CORS_ACCESS = [
    ("no origin header", "", "example.com", True),
    ("allowed origin, other port", "http://example.com:1234", "mailpit.local", False),
    ("allowed origin, other port on its host", "http://example.com:1234", "example.com", False),
    ("allowed origin, same origin", "http://example.com:1234", "example.com:1234", True),
    ("not allowed origin", "http://notallowed.com", "mailpit.local", False),
    ("allowed by hostname", "http://foo.com", "mailpit.local", True),
    ("ascii fold: allowed origin uppercase", "HTTP://EXAMPLE.COM", "mailpit.local", True),
    ("ascii fold: allowed by hostname uppercase", "HTTP://FOO.COM", "mailpit.local", True),
    ("ascii fold: host uppercase", "http://example.com", "MAILPIT.LOCAL", True),
    ("ascii fold: not allowed origin uppercase", "HTTP://NOTALLOWED.COM", "mailpit.local", False),
    ("ascii fold: mixed case", "HtTp://ExAmPlE.CoM", "mailpit.local", True),
    ("non-ascii: allowed origin (unicode hostname)", "http://exámple.com", "mailpit.local", False),
    ("non-ascii: allowed by hostname (unicode)", "http://föö.com", "mailpit.local", False),
    ("non-ascii: host uppercase (unicode)", "http://exámple.com", "MAILPIT.LOCAL", False),
    ("non-ascii: mixed case (unicode)", "HtTp://ExÁmPlE.CoM", "mailpit.local", False),
]


def test_cors_origin_access_control() -> None:
    with ServerThread(cors_config("*")) as server:
        assert origin_allowed(server, "http://any.com", "mailpit.local"), "Wildcard origin should be allowed"
    with ServerThread(cors_config("example.com,foo.com,bar.com")) as server:
        wrong = [f"{name}: expected allowed={allow}" for name, origin, host, allow in CORS_ACCESS
                 if origin_allowed(server, origin, host) != allow]
    assert not wrong, "\n".join(wrong)


# -- apiv1/thumbnail_test.go -------------------------------------------------------------------------------------

def solid_rgba_png(width: int, height: int) -> bytes:
    """solidRGBApng: an all-zero RGBA image, so a huge one is still a small file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    compressor = zlib.compressobj()
    row = bytes(1 + width * 4)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def store_email_with_png(server: ServerThread, subject: str, png: bytes) -> tuple[str, str]:
    encoded = base64.b64encode(png).decode()
    wrapped = "\r\n".join(encoded[i:i + 76] for i in range(0, len(encoded), 76))
    raw = (f"From: a@example.test\r\nTo: b@example.test\r\nSubject: {subject}\r\n"
           'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
           "--b\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
           '--b\r\nContent-Type: image/png; name="t.png"\r\n'
           'Content-Disposition: attachment; filename="t.png"\r\n'
           f"Content-Transfer-Encoding: base64\r\n\r\n{wrapped}\r\n--b--\r\n").encode()
    send(server, sender="a@example.test", to=["b@example.test"], raw=raw)
    found = httpx.get(f"{server.http_url}/api/v1/search", params={"query": f'subject:"{subject}"'}).json()
    message = httpx.get(f"{server.http_url}/api/v1/message/{found['messages'][0]['ID']}").json()
    assert len(message["Attachments"]) == 1, "attachments != 1"
    return message["ID"], message["Attachments"][0]["PartID"]


@pytest.mark.parametrize(("subject", "side"), [("small", 16), ("oversized", 4500), ("boundary-accept", 4472),
                                               ("boundary-reject", 4473)])
def test_thumbnail(mailpit: ServerThread, subject: str, side: int) -> None:
    """TestThumbnailSmallImage, TestThumbnailOversizedImageRejected, TestThumbnailBoundaryDimensions: always 200
    and a JPEG; over 20,000,000 pixels a blank one (the image is never decoded)."""
    message_id, part_id = store_email_with_png(mailpit, subject, solid_rgba_png(side, side))
    response = httpx.get(f"{mailpit.http_url}/api/v1/message/{message_id}/part/{part_id}/thumb", timeout=120)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content.startswith(b"\xff\xd8\xff")
