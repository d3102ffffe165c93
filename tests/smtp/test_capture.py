"""End to end: send with real SMTP clients, read back through the HTTP API."""

from __future__ import annotations

import smtplib
import subprocess
from email.message import EmailMessage

import httpx

from mailnest import ServerThread
from tests.conftest import require_tool, send


def only_message(api: httpx.Client) -> dict:
    listing = api.get("/api/v1/messages").json()
    assert listing["total"] == 1, listing
    return api.get(f"/api/v1/message/{listing['messages'][0]['ID']}").json()


def test_raw_source_is_byte_exact(server: ServerThread, api: httpx.Client) -> None:
    raw = (b"From: Ann <ann@example.com>\r\nTo: bob@example.com\r\nSubject: exact\r\n"
           b"X-Odd:   spaced   header  \r\n\r\n.leading dot\r\n..two dots\r\ntrailing spaces   \r\n"
           b"bare\nlf\r\n\r\n")
    send(server, raw=raw, sender="ann@example.com", to=["bob@example.com"])
    message = only_message(api)
    assert api.get(f"/api/v1/message/{message['ID']}/raw").content == raw
    assert api.get(f"/api/v1/message/{message['ID']}/raw").headers["content-type"] == "text/plain; charset=utf-8"  # as Mailpit serves it


def test_envelope_and_bcc(server: ServerThread, api: httpx.Client) -> None:
    send(server, sender="bounce@example.com", to=["to@example.com", "cc@example.com", "secret@example.com"],
         raw=b"From: a@example.com\r\nTo: to@example.com\r\nCc: cc@example.com\r\nSubject: envelope\r\n\r\nx\r\n")
    message = only_message(api)
    envelope = message["Envelope"]
    assert envelope["MailFrom"] == "bounce@example.com"
    assert envelope["RcptTo"] == ["to@example.com", "cc@example.com", "secret@example.com"]
    assert envelope["Helo"] == "client.test"
    assert envelope["Peer"].startswith("127.0.0.1:")
    assert envelope["Received"].endswith("Z")
    assert [a["Address"] for a in message["Bcc"]] == ["secret@example.com"]
    assert [a["Address"] for a in message["Cc"]] == ["cc@example.com"]
    summary = api.get("/api/v1/messages").json()["messages"][0]
    assert [a["Address"] for a in summary["Bcc"]] == ["secret@example.com"]


def test_utf8_subject_and_addresses_with_smtputf8(server: ServerThread, api: httpx.Client) -> None:
    msg = EmailMessage()
    msg["From"] = "Zoë <zoë@exämple.com>"
    msg["To"] = "用户@例子.广告"
    msg["Subject"] = "Grüße aus Köln ✉"
    msg.set_content("Unicode body: naïve café ✓\n")
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.send_message(msg, mail_options=["SMTPUTF8"])
    message = only_message(api)
    assert message["Subject"] == "Grüße aus Köln ✉"
    assert message["From"] == {"Name": "Zoë", "Address": "zoë@exämple.com"}
    assert message["To"][0]["Address"] == "用户@例子.广告"
    assert message["Envelope"]["MailFrom"] == "zoë@exämple.com"
    assert message["Envelope"]["SMTPUTF8"] is True
    assert "naïve café ✓" in message["Text"]
    raw = api.get(f"/api/v1/message/{message['ID']}/raw").content
    assert "Grüße".encode() in raw  # stored as sent: raw UTF-8 headers, not re-encoded


def test_rfc2047_subject_is_decoded(server: ServerThread, api: httpx.Client) -> None:
    send(server, raw=b"From: a@example.com\r\nTo: b@example.com\r\nSubject: =?utf-8?b?wqFIb2xhLCBzZcOxb3Ih?=\r\n"
                     b"\r\nbody\r\n")
    assert only_message(api)["Subject"] == "¡Hola, señor!"


def test_multipart_with_attachments(server: ServerThread, api: httpx.Client) -> None:
    msg = EmailMessage()
    msg["From"] = "a@example.com"
    msg["To"] = "b@example.com"
    msg["Subject"] = "files"
    msg.set_content("plain body")
    msg.add_alternative("<p>html <b>body</b></p>", subtype="html")
    payload = bytes(range(256)) * 40
    msg.add_attachment(payload, maintype="application", subtype="octet-stream", filename="data.bin")
    msg.add_attachment("résumé text", filename="résumé.txt")
    send(server, raw=bytes(msg), to=["b@example.com"])
    message = only_message(api)
    assert message["Text"].strip() == "plain body"
    assert "<b>body</b>" in message["HTML"]
    files = {a["FileName"]: a for a in message["Attachments"]}
    assert set(files) == {"data.bin", "résumé.txt"}
    assert files["data.bin"]["ContentType"] == "application/octet-stream"
    part = api.get(f"/api/v1/message/{message['ID']}/part/{files['data.bin']['PartID']}")
    assert part.status_code == 200
    assert part.content == payload
    assert part.headers["content-type"] == "application/octet-stream"
    summary = api.get("/api/v1/messages").json()["messages"][0]
    assert summary["Attachments"] == 2


def test_swaks(server: ServerThread, api: httpx.Client) -> None:
    swaks = require_tool("swaks")
    result = subprocess.run(
        [swaks, "--server", f"127.0.0.1:{server.smtp_port}", "--from", "swaks@example.com", "--to",
         "one@example.com,two@example.com", "--header", "Subject: from swaks", "--body", "hello from swaks",
         "--helo", "swaks.test"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    message = only_message(api)
    assert message["Subject"] == "from swaks"
    assert message["Envelope"]["RcptTo"] == ["one@example.com", "two@example.com"]
    assert message["Envelope"]["Helo"] == "swaks.test"
    assert "hello from swaks" in message["Text"]


def test_pipelined_commands_are_answered_in_order(server: ServerThread, api: httpx.Client) -> None:
    import socket

    with socket.create_connection(("127.0.0.1", server.smtp_port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220")
        sock.sendall(b"EHLO pipe.test\r\n")
        ehlo = []
        while not (line := reader.readline()).startswith(b"250 "):
            ehlo.append(line)
        assert b"250-PIPELINING\r\n" in ehlo
        sock.sendall(b"MAIL FROM:<p@example.com>\r\nRCPT TO:<q@example.com>\r\nRCPT TO:<r@example.com>\r\nDATA\r\n")
        replies = [reader.readline()[:3] for _ in range(4)]
        assert replies == [b"250", b"250", b"250", b"354"]
        sock.sendall(b"Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        assert reader.readline().startswith(b"250")
        assert reader.readline().startswith(b"221")
    message = only_message(api)
    assert message["Subject"] == "pipelined"
    assert message["Envelope"]["RcptTo"] == ["q@example.com", "r@example.com"]


def test_many_messages_on_one_connection_and_concurrently(server: ServerThread, api: httpx.Client) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def burst(n: int) -> None:
        with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
            for i in range(10):
                client.sendmail("a@example.com", [f"user{n}@example.com"],
                                f"Subject: burst {n}-{i}\r\n\r\nbody\r\n".encode())

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(burst, range(8)))
    listing = api.get("/api/v1/messages", params={"limit": 100}).json()
    assert listing["total"] == 80
    assert len({m["Subject"] for m in listing["messages"]}) == 80
