"""The npm packages `mailpit-api` and `mailhog`, installed from the npm registry (versions pinned in
tests/web/npm/package-lock.json) and run unchanged with the machine's Node against mailnest: every method each
package offers is called by tests/web/npm/*_calls.* and its result checked here.

Release goes through a real relay: a second mailnest is the upstream server, and what it receives is checked.
"""

from __future__ import annotations

import base64
import json
import shutil
import smtplib
import struct
import subprocess
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.conftest import require_tool, send

NPM_DIR = Path(__file__).parent / "npm"
ALLOWED = "qa@allowed.example"
REFUSED = "someone@elsewhere.example"


def png(width: int = 40, height: int = 30) -> bytes:
    """A real PNG (a red and blue gradient) made with zlib, so the test needs no imaging library."""
    rows = b"".join(b"\x00" + b"".join(bytes((x * 6 % 256, 0, y * 8 % 256)) for x in range(width))
                    for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def npm_clients(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two packages installed with `npm ci` from the committed lockfile (node_modules is never committed)."""
    require_tool("node")
    npm = require_tool("npm")
    where = tmp_path_factory.mktemp("npm")
    for name in ("package.json", "package-lock.json", "mailpit_calls.mjs", "mailhog_calls.cjs"):
        shutil.copy(NPM_DIR / name, where / name)
    done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"],
                          cwd=where, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
    return where


def run_node(where: Path, script: str, args: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(["node", script, json.dumps(args)], cwd=where, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{script} failed:\n{done.stderr}"
    return json.loads(done.stdout)


@pytest.fixture
def upstream() -> Iterator[ServerThread]:
    """The relay's upstream server: another mailnest."""
    with ServerThread(Config()) as server:
        yield server


def relaying_config(upstream: ServerThread, **changes: Any) -> Config:
    return Config(relay=f"127.0.0.1:{upstream.smtp_port}", relay_allow=("*@allowed.example",), chaos="on",
                  extra={"relay_timeout": 10.0}, **changes)


def value(results: dict[str, Any], name: str) -> Any:
    result = results[name]
    assert result["ok"], f"{name}: {result['error']}"
    return result["value"]


def error(results: dict[str, Any], name: str) -> str:
    result = results[name]
    assert not result["ok"], f"{name} should have failed, gave {result['value']!r}"
    return str(result["error"])


def test_every_mailpit_api_method(npm_clients: Path, upstream: ServerThread) -> None:
    with ServerThread(relaying_config(upstream)) as server:
        for i in range(2):
            send(server, subject=f"seeded {i}", body=f"Seeded message number {i}.\n")
        send(server, subject="doomed", body="To be deleted by search.\n")
        results = run_node(npm_clients, "mailpit_calls.mjs", {
            "base": server.http_url, "releaseTo": ALLOWED, "refusedTo": REFUSED,
            "pngBase64": base64.b64encode(png()).decode()})
        upstream_inbox = httpx.get(f"{upstream.http_url}/api/v1/messages").json()

    info = value(results, "getInfo")
    assert info["Messages"] == 3 and info["Unread"] == 3 and info["Version"]
    config = value(results, "getConfiguration")
    assert config["MessageRelay"]["Enabled"] is True and config["ChaosEnabled"] is True
    listing = value(results, "listMessages")
    assert [m["Subject"] for m in listing["messages"]] == ["doomed", "seeded 1", "seeded 0"]
    assert value(results, "listMessages(1,2)")["start"] == 1
    assert [m["Subject"] for m in value(results, "listMessages(1,2)")["messages"]] == ["seeded 1", "seeded 0"]

    # sendMessage: a real message with everything the request described
    message_id = value(results, "sendMessage")["ID"]
    message = value(results, "getMessageSummary(id)")
    assert message["ID"] == message_id and value(results, "getMessageSummary()")["ID"] == message_id
    assert message["Subject"] == "Sent by mailpit-api ✓"
    assert message["From"] == {"Name": "Sender Name", "Address": "sender@example.test"}
    assert [a["Address"] for a in message["To"]] == ["rcpt@example.test", "other+npm@example.test"]
    assert [a["Address"] for a in message["Cc"]] == ["cc@example.test"]
    assert [a["Address"] for a in message["Bcc"]] == ["hidden@example.test"]
    assert [a["Address"] for a in message["ReplyTo"]] == ["reply@example.test"]
    assert message["Text"].strip() == "Plain text body, visit https://example.invalid/welcome"
    assert 'src="cid:logo"' in message["HTML"]
    assert message["Tags"] == ["Api", "Npm"]  # X-Tags; other+npm@ adds nothing new (tags ignore case)
    assert [a["FileName"] for a in message["Attachments"]] == ["notes.txt"]
    assert [(a["FileName"], a["ContentID"]) for a in message["Inline"]] == [("logo.png", "logo")]
    assert len(message["Attachments"][0]["Checksums"]["SHA256"]) == 64
    headers = value(results, "getMessageHeaders(id)")
    assert headers["X-Campaign"] == ["spring"] and "Bcc" not in headers
    assert value(results, "getMessageHeaders()") == headers
    attachment = value(results, "getMessageAttachment")
    assert attachment["type"].startswith("text/plain")
    assert base64.b64decode(attachment["base64"]) == b"attached text\n"
    thumb = value(results, "getAttachmentThumbnail")
    assert thumb["type"] == "image/jpeg" and base64.b64decode(thumb["base64"]).startswith(b"\xff\xd8\xff")
    source = value(results, "getMessageSource(id)")
    assert "Subject:" in source and "X-Campaign: spring" in source
    assert value(results, "getMessageSource()") == source

    # release: through the relay to an allowed address; refused otherwise
    assert value(results, "releaseMessage(allowed)") == "ok"
    assert "400" in error(results, "releaseMessage(refused)")
    assert [m["Subject"] for m in upstream_inbox["messages"]] == ["Sent by mailpit-api ✓"]
    assert [a["Address"] for a in upstream_inbox["messages"][0]["Bcc"]] == [ALLOWED]

    # read status
    assert value(results, "setReadStatus(ids)") == "ok"
    assert value(results, "after setReadStatus(ids)")["unread"] >= 1
    assert value(results, "setReadStatus(search)") == "ok"
    unread_now = value(results, "after setReadStatus(search)")
    assert all(not m["Subject"].startswith("seeded") for m in unread_now["messages"])
    assert value(results, "setReadStatus()") == "ok"
    assert value(results, "after setReadStatus()")["unread"] == 4
    assert value(results, "setReadStatus(all read)") == "ok"
    assert value(results, "after setReadStatus(all read)")["unread"] == 0

    # search and waiting
    found = value(results, "searchMessages")
    assert [m["ID"] for m in found["messages"]] == [message_id] and found["messages_count"] == 1
    assert "400" in error(results, "searchMessages(bad)")
    assert value(results, "waitForMessage")["Subject"] == "seeded 1"
    assert value(results, "waitForMessages(options)")["messages_count"] == 4
    assert value(results, "waitForMessages(request)")["messages_count"] == 2
    assert "Timeout" in error(results, "waitForMessages(timeout)")

    # checks: HTML and link checks for real (the example.invalid link cannot resolve); no spamd configured here
    assert value(results, "htmlCheck(id)")["Total"]["Tests"] > 0
    links = value(results, "linkCheck(id)")
    assert [link["URL"] for link in links["Links"]] == ["https://example.invalid/welcome"]
    assert links["Errors"] == 1 and links["Links"][0]["StatusCode"] == 0
    assert value(results, "linkCheck(id, true)")["Errors"] == 1
    assert "not available" in value(results, "spamAssassinCheck(id)")["Error"]

    # tags
    assert {"npm", "api"} <= {t.lower() for t in value(results, "getTags")}
    assert value(results, "setTags") == "ok"
    assert value(results, "after setTags")["Tags"] == ["Tag One", "tagtwo"]
    assert value(results, "renameTag") == "ok"
    assert "Renamed Tag" in value(results, "after renameTag") and "Tag One" not in value(results, "after renameTag")
    assert value(results, "deleteTag") == "ok"
    assert "Renamed Tag" not in value(results, "after deleteTag")
    assert value(results, "setTags(remove)") == "ok"
    assert value(results, "after setTags(remove)")["Tags"] == []

    # chaos
    assert value(results, "getChaosTriggers")["Sender"] == {"ErrorCode": 451, "Probability": 0}
    assert value(results, "setChaosTriggers")["Sender"] == {"ErrorCode": 451, "Probability": 5}
    assert value(results, "setChaosTriggers()")["Sender"]["Probability"] == 0

    # the rendering routes
    assert "HTML body" in value(results, "renderMessageHTML(id)")
    assert "HTML body" in value(results, "renderMessageHTML(id, 1)")
    assert "Plain text body" in value(results, "renderMessageText(id)")
    assert "Plain text body" in value(results, "renderMessageText()")
    value(results, "renderMessageHTML()")

    # deleting
    assert value(results, "deleteMessagesBySearch") == "ok"
    assert value(results, "after deleteMessagesBySearch")["messages_count"] == 0
    assert value(results, "deleteMessages(ids)") == "ok"
    assert "404" in error(results, "getMessageSummary(deleted)")
    assert value(results, "deleteMessages()") == "ok"
    assert value(results, "after deleteMessages()")["total"] == 0


def mailhog_seed(server: ServerThread) -> None:
    plain = EmailMessage()
    plain["From"] = "Alice <alice@example.com>"
    plain["To"] = "Bob <bob@example.com>"
    plain["Subject"] = "=?utf-8?q?Gr=C3=BC=C3=9Fe?= from Alice"
    plain["Date"] = "Tue, 03 Feb 2026 10:20:30 +0100"
    plain.set_content("Viele Grüße aus Köln, quoted-printable.\n", cte="quoted-printable")
    send(server, sender="alice@example.com", to=["bob@example.com"], raw=plain.as_bytes(policy=SMTP))

    rich = EmailMessage()
    rich["From"] = "Dave <dave@example.com>"
    rich["To"] = "carol@example.com"
    rich["Cc"] = "erin@example.com"
    rich["Subject"] = "Report attached"
    rich.set_content("The report is attached.\n")
    rich.add_alternative("<p>The <b>report</b> is attached.</p>\n", subtype="html")
    mixed = EmailMessage()
    for name in ("From", "To", "Cc", "Subject"):
        mixed[name] = rich[name]
    mixed.set_content("The report is attached.\n")
    mixed.add_attachment(b"col1,col2\n1,2\n", maintype="text", subtype="csv", filename="report.csv")
    with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="client.test") as client:
        client.sendmail("dave@example.com", ["carol@example.com", "erin@example.com", "secret@example.com"],
                        rich.as_bytes(policy=SMTP))
        client.sendmail("dave@example.com", ["carol@example.com"], mixed.as_bytes(policy=SMTP))


def test_every_mailhog_method(npm_clients: Path, upstream: ServerThread) -> None:
    with ServerThread(relaying_config(upstream)) as server:
        mailhog_seed(server)
        results = run_node(npm_clients, "mailhog_calls.cjs", {
            "host": "127.0.0.1", "port": server.http_port, "releaseTo": ALLOWED, "refusedTo": REFUSED})
        upstream_inbox = httpx.get(f"{upstream.http_url}/api/v1/messages").json()

    everything = value(results, "messages()")
    assert everything["total"] == 3 and everything["count"] == 3 and everything["start"] == 0
    newest, rich, plain = everything["items"]
    assert plain["subject"] == "Grüße from Alice"
    assert plain["from"] == "Alice <alice@example.com>" and plain["to"] == "Bob <bob@example.com>"
    assert plain["text"] == "Viele Grüße aus Köln, quoted-printable.\r\n"
    assert plain["rawFrom"] == "alice@example.com" and plain["rawTo"] == ["bob@example.com"]
    assert plain["deliveryDate"] and plain["date"] == "2026-02-03T09:20:30.000Z"
    assert rich["text"] == "The report is attached.\r\n"
    assert rich["html"] == "<p>The <b>report</b> is attached.</p>\r\n"
    assert rich["cc"] == "erin@example.com"
    assert rich["rawTo"] == ["carol@example.com", "erin@example.com", "secret@example.com"]
    assert newest["attachments"] == [{"name": "report.csv", "type": "text/csv", "encoding": "base64",
                                      "decoded": "col1,col2\n1,2\n"}]
    paged = value(results, "messages(1, 2)")
    assert paged["start"] == 1 and [m["ID"] for m in paged["items"]] == [rich["ID"], plain["ID"]]

    assert [m["ID"] for m in value(results, "search(containing)")["items"]] == [plain["ID"]]
    assert [m["ID"] for m in value(results, "search(from)")["items"]] == [plain["ID"]]
    to_bob = value(results, "search(to, 0, 1)")
    assert to_bob["count"] == 1 and to_bob["total"] == 1
    assert value(results, "latestFrom")["ID"] == plain["ID"]
    assert value(results, "latestTo")["ID"] == newest["ID"]
    assert value(results, "latestContaining")["ID"] == plain["ID"]
    assert value(results, "latestContaining(none)") == 0

    assert value(results, "releaseMessage(allowed)") == {"statusCode": 200}
    refused = value(results, "releaseMessage(refused)")
    assert "not on the relay allow-list" in refused["json"]["Error"]
    assert [m["Subject"] for m in upstream_inbox["messages"]] == ["Report attached"]

    assert value(results, "deleteMessage") == {"statusCode": 200}
    assert value(results, "after deleteMessage")["total"] == 2
    codec = value(results, "encode/decode")
    assert codec["back"] == "Grüße, ümlaut" and codec["back64"] == "Grüße"
    assert value(results, "deleteAll") == {"statusCode": 200}
    assert value(results, "after deleteAll")["total"] == 0
