"""The Python client against a real mailnest (ServerThread), over real SMTP and HTTP."""

from __future__ import annotations

import asyncio
import secrets
import smtplib
import socket
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailnest.client import (
    AsyncClient,
    Client,
    Folder,
    MailnestError,
    NotFoundError,
    QueryError,
    ServerUnavailableError,
    WaitTimeoutError,
)
from mailnest.config import Config
from mailnest.runtime import ServerThread


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread() as thread:
        yield thread


@pytest.fixture
def client(server: ServerThread) -> Iterator[Client]:
    with Client(server.http_url) as c:
        yield c


@pytest.fixture
def rcpt() -> str:
    """A recipient no other test in this module uses, so each test reads only its own mail."""
    return f"r{secrets.token_hex(4)}@client.test"


def send(server: ServerThread, to: str, subject: str = "Hello", body: str = "Hi there",
         *, html: str | None = None, attach: bytes | None = None) -> None:
    message = EmailMessage()
    message["From"] = "App <app@example.com>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    if attach is not None:
        message.add_attachment(attach, maintype="application", subtype="pdf", filename="invoice.pdf")
    with smtplib.SMTP(server.smtp_host, server.smtp_port) as smtp:
        smtp.send_message(message, to_addrs=[to])


def test_messages_search_get_and_raw(server: ServerThread, client: Client, rcpt: str) -> None:
    send(server, rcpt, "First", "one")
    send(server, rcpt, "Second", "two https://app.example/verify?token=abc&x=1",
         html='<a href="https://app.example/verify?token=abc&amp;x=1">Verify</a>', attach=b"%PDF-1.4 fake")
    page = client.messages(mailbox=rcpt)
    assert [s.subject for s in page] == ["Second", "First"]
    assert page.messages_count == 2 and page.total == 2
    assert [s.subject for s in client.search("Second", mailbox=rcpt)] == ["Second"]

    mail = client.get(page[0].id)
    assert mail.subject == "Second"
    assert str(mail.from_) == "App <app@example.com>"
    assert [a.address for a in mail.to] == [rcpt]
    assert mail.envelope is not None and mail.envelope.mail_from == "app@example.com"
    assert mail.envelope.rcpt_tos == (rcpt,)
    assert mail.links == ("https://app.example/verify?token=abc&x=1",)
    assert mail.email["Subject"] == "Second" and mail.headers["To"] == [rcpt]
    [attachment] = mail.attachments
    assert (attachment.filename, attachment.content_type) == ("invoice.pdf", "application/pdf")
    assert attachment.content() == b"%PDF-1.4 fake"
    assert client.part(mail.id, attachment.part_id) == b"%PDF-1.4 fake"  # the server numbers parts alike
    assert client.raw(mail.id) == mail.raw and b"Subject: Second" in mail.raw
    assert client.get("latest").id in {s.id for s in client.messages()}


def test_mark_read_and_delete(server: ServerThread, client: Client, rcpt: str) -> None:
    for n in range(3):
        send(server, rcpt, f"m{n}")
    ids = [s.id for s in client.messages(mailbox=rcpt)]
    client.mark_read(ids[0])
    assert [s.read for s in client.messages(mailbox=rcpt)] == [True, False, False]
    client.mark_read(ids, read=False)
    assert not any(s.read for s in client.messages(mailbox=rcpt))
    client.delete(ids[:2])
    assert [s.id for s in client.messages(mailbox=rcpt)] == ids[2:]
    with pytest.raises(ValueError, match="no message IDs"):
        client.delete([])  # an empty list must not reach the API, where it means "everything"
    with pytest.raises(NotFoundError, match=ids[0]):
        client.get(ids[0])


def test_wait_for_returns_when_mail_arrives(server: ServerThread, client: Client, rcpt: str) -> None:
    sender = threading.Timer(0.2, send, (server, rcpt, "Late"))
    started = time.monotonic()
    sender.start()
    try:
        [mail] = client.wait_for(mailbox=rcpt, timeout=5)
    finally:
        sender.join()
    assert mail.subject == "Late"
    assert time.monotonic() - started < 2  # woken by the arrival, not by the 5 s timeout


def test_wait_for_counts_matches(server: ServerThread, client: Client, rcpt: str) -> None:
    send(server, rcpt, "Invoice 1")
    send(server, rcpt, "Newsletter")
    send(server, rcpt, "Invoice 2")
    mails = client.wait_for("Invoice", count=2, mailbox=rcpt, timeout=5)
    assert sorted(m.subject for m in mails) == ["Invoice 1", "Invoice 2"]


def test_wait_for_returns_exactly_count_the_newest(server: ServerThread, client: Client, rcpt: str) -> None:
    """Issue 16 item 9: `[mail] = client.wait_for(...)` raised "too many values to unpack" once a second match was
    there, as count=1 returned every match."""
    for number in range(3):
        send(server, rcpt, f"Welcome {number}")
    [mail] = client.wait_for("Welcome", mailbox=rcpt, timeout=5)
    assert mail.subject == "Welcome 2"
    assert [m.subject for m in client.wait_for("Welcome", count=2, mailbox=rcpt)] == ["Welcome 2", "Welcome 1"]

    async def newest() -> list[str]:
        async with AsyncClient(server.http_url) as async_client:
            return [m.subject for m in await async_client.wait_for("Welcome", mailbox=rcpt)]

    assert asyncio.run(newest()) == ["Welcome 2"]


def test_wait_timeout_says_what_was_awaited_and_what_arrived(server: ServerThread, client: Client,
                                                            rcpt: str) -> None:
    send(server, rcpt, "Welcome aboard")
    with pytest.raises(WaitTimeoutError) as caught:
        client.wait_for("Invoice", count=2, timeout=0.3, mailbox=rcpt)
    error = caught.value
    assert isinstance(error, TimeoutError)
    text = str(error)
    assert f"waited 0.3s for 2 messages matching 'Invoice' in mailbox '{rcpt}'" in text
    assert "0 matched, 1 arrived there in all" in text
    assert f"'Welcome aboard' from App <app@example.com> to {rcpt} (did not match)" in text
    assert [s.subject for s in error.arrived] == ["Welcome aboard"]


def test_malformed_query_is_a_query_error_naming_the_reason(client: Client) -> None:
    with pytest.raises(QueryError) as caught:
        client.wait_for('subject:"unterminated', timeout=1)
    assert caught.value.status == 400
    assert caught.value.query == 'subject:"unterminated'
    assert "mailnest rejected the query 'subject:\"unterminated':" in str(caught.value)
    assert caught.value.reason  # the server's explanation, passed on


def test_other_refusals_name_the_server_reason(tmp_path: Path) -> None:
    users = tmp_path / "ui-auth"
    users.write_text("admin:s3cret\n")
    with ServerThread(Config(http_auth_file=users)) as server, \
            Client(server.http_url, auth=("admin", "wrong")) as wrong:
        with pytest.raises(MailnestError, match=r"GET /api/v1/messages failed with HTTP 401: \S") as caught:
            wrong.messages()
        assert caught.value.status == 401


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with Client(f"http://127.0.0.1:{port}") as client, pytest.raises(ServerUnavailableError) as caught:
        client.messages()
    assert isinstance(caught.value, ConnectionError)
    assert f"mailnest at http://127.0.0.1:{port} did not answer" in str(caught.value)


def test_base_url_must_name_a_host() -> None:
    with pytest.raises(ValueError, match="needs a scheme and a host"):
        Client("127.0.0.1:8025")


def test_async_client(server: ServerThread, rcpt: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(server.http_url) as client:
            waiter = asyncio.create_task(client.wait_for(count=2, mailbox=rcpt, timeout=5))
            await asyncio.sleep(0.05)
            assert not waiter.done()
            await asyncio.to_thread(send, server, rcpt, "Alpha", "code 555123")
            await asyncio.to_thread(send, server, rcpt, "Bravo")
            mails = await waiter
            assert sorted(m.subject for m in mails) == ["Alpha", "Bravo"]
            page = await client.messages(mailbox=rcpt)
            assert len(page) == 2
            latest = await client.get("latest")
            assert latest.id in {s.id for s in page}
            by_subject = {m.subject: m for m in mails}
            assert by_subject["Alpha"].codes() == ["555123"]
            await client.mark_read(by_subject["Alpha"].id)
            assert [s.read for s in await client.search("Alpha", mailbox=rcpt)] == [True]
            await client.delete(by_subject["Alpha"].id)
            assert [s.subject for s in await client.messages(mailbox=rcpt)] == ["Bravo"]
            with pytest.raises(WaitTimeoutError, match="1 arrived there in all"):
                await client.wait_for(count=2, mailbox=rcpt, timeout=0.2)

    asyncio.run(scenario())


def test_folders_and_the_null_sender(server: ServerThread, client: Client, rcpt: str) -> None:
    with smtplib.SMTP(server.smtp_host, server.smtp_port) as smtp:
        smtp.sendmail("", [rcpt], b"From: MAILER-DAEMON@example.com\r\nSubject: bounce\r\n\r\nreturned\r\n")
    mail = client.wait_for("subject:bounce", mailbox=rcpt)[0]
    assert mail.envelope is not None and mail.envelope.mail_from == "<>"
    folders = client.folders()
    assert folders[0].name == "INBOX" and folders[0].owner == "" and folders[0].total >= 1


def test_protocol_warnings_and_folder_reach_the_client(server: ServerThread, client: Client, rcpt: str) -> None:
    with smtplib.SMTP(server.smtp_host, server.smtp_port) as smtp:
        smtp.sendmail("app@example.com", [rcpt], b"Subject: bare\n\n.dotted line\nend\n")
    mail = client.wait_for("subject:bare", mailbox=rcpt)[0]
    assert mail.folder == "INBOX"
    whole = client.get(mail.id)
    assert whole.folder == "INBOX" and whole.protocol_warnings[0][0] == "bare-lf"
    assert ".dotted line" in whole.text and "..dotted" not in whole.text


def test_async_folders(server: ServerThread) -> None:
    async def run() -> list[Folder]:
        async with AsyncClient(server.http_url) as client:
            return await client.folders()

    assert asyncio.run(run())[0].name == "INBOX"


def test_wait_for_tries_again_when_the_server_has_too_many_waiters(rcpt: str) -> None:
    with ServerThread(Config(max_connections=5)) as busy, Client(busy.http_url) as client:  # 4 waiters at most
        socks = []
        for _ in range(4):
            sock = socket.create_connection(("127.0.0.1", busy.http_port))
            sock.sendall(b"GET /api/v1/wait?timeout=30&query=subject:never HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            socks.append(sock)
        deadline = time.monotonic() + 10
        while client._http.get("api/v1/wait", params={"timeout": "0"}).status_code != 503:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        result: list[object] = []
        waiting = threading.Thread(target=lambda: result.append(client.wait_for("subject:wanted", timeout=10)))
        waiting.start()
        time.sleep(0.3)  # its first ask got 503; it tries again after Retry-After (2 s)
        for sock in socks:
            sock.close()
        send(busy, rcpt, subject="wanted")
        waiting.join(15)
        assert result and result[0][0].subject == "wanted"  # type: ignore[index]
