"""Mail that IMAP clients file in folders stays visible outside IMAP: Store.folders() and the `folder:` term."""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
from collections.abc import Iterator

import pytest

from mailnest.config import Config, Listen
from mailnest.events import Hub
from mailnest.models import Envelope
from mailnest.runtime import ServerThread
from mailnest.store.base import FolderInfo
from mailnest.store.sqlite import SQLiteStore


@pytest.fixture
def server() -> Iterator[ServerThread]:
    thread = ServerThread(Config(http=None, imap=Listen("127.0.0.1", 0))).start()
    yield thread
    thread.stop()


def _send(server: ServerThread, subject: str, to: str = "alice@example.com") -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.sendmail("sender@example.com", [to],
                      f"From: sender@example.com\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n")


def test_a_message_moved_by_imap_is_listed_by_folder(server: ServerThread) -> None:
    _send(server, "keep me")
    _send(server, "move me")
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=10)
    try:
        client.login("alice@example.com", "any")
        assert client.create("Archive")[0] == "OK"
        assert client.create('"Sent Items"')[0] == "OK"
        client.select("INBOX")
        status, found = client.uid("SEARCH", "SUBJECT", '"move me"')
        assert status == "OK" and len(found[0].split()) == 1
        status, _ = client.uid("MOVE", found[0].decode(), "Archive")
        assert status == "OK"
    finally:
        client.logout()

    store = server.store
    inbox = server.call(store.list())
    assert [m.subject for m in inbox.messages] == ["keep me"]
    assert inbox.messages[0].folder == ""

    archived = server.call(store.list(query="folder:Archive"))
    assert [(m.subject, m.folder) for m in archived.messages] == [("move me", "Archive")]
    assert archived.messages_count == 1
    assert server.call(store.count(query="folder:archive")) == 0  # IMAP names are case-sensitive...
    assert server.call(store.count(query="folder:inbox")) == 1  # ...but INBOX is INBOX in any case
    assert server.call(store.count(query="folder:Archive subject:move")) == 1
    assert server.call(store.count(query="folder:Archive subject:keep")) == 0
    assert server.call(store.count(query='folder:"Sent Items"')) == 0
    # The login's own view includes its folders; another mailbox's does not.
    assert server.call(store.count(query="folder:Archive", mailbox="alice@example.com")) == 1
    assert server.call(store.count(query="folder:Archive", mailbox="@example.com")) == 1
    assert server.call(store.count(query="folder:Archive", mailbox="bob@example.com")) == 0
    # Either of several queries, one naming a folder.
    assert server.call(store.count(query=["folder:Archive", "subject:keep"])) == 2

    assert server.call(store.folders()) == [
        FolderInfo(name="Archive", owner="alice@example.com", total=1, unread=1),
        FolderInfo(name="Sent Items", owner="alice@example.com", total=0, unread=0),
    ]

    moved_id = archived.messages[0].id
    assert server.call(store.set_read_matching(True, query="folder:Archive")) == [moved_id]
    assert server.call(store.folders())[0].unread == 0
    assert server.call(store.delete_matching(query="folder:Archive")) == [moved_id]
    assert server.call(store.count(query="folder:Archive")) == 0
    assert server.call(store.count()) == 1  # the delivered one is untouched


def test_folders_of_the_catch_all_login_and_summaries_everywhere() -> None:
    async def main() -> None:
        store = SQLiteStore(None, Hub())
        await store.start()
        try:
            summary = await store.add(b"Subject: one\r\n\r\nx\r\n", Envelope("a@x", ("b@x",)))
            assert summary.folder == ""
            await store.imap_create_folder(None, "Jobs")
            [(_, copy_uid)] = await store.imap_copy([summary.uid], None, "Jobs")
            [copied] = await store.summaries_by_uid([copy_uid])
            assert copied.folder == "Jobs"
            appended = await store.imap_append("b@x", INBOX_NAME, b"Subject: two\r\n\r\ny\r\n", [], None)
            assert (await store.summaries_by_uid([appended]))[0].folder == ""
            message = await store.get(copied.id)
            assert message is not None and message.summary.folder == "Jobs"
            assert await store.folders() == [FolderInfo("Jobs", "*", 1, 1)]
            # Outside a folder: term, list and count keep to delivered mail.
            assert await store.count() == 2
            assert await store.count(query="-folder:INBOX") == 1
            assert (await store.list(query="folder:Jobs")).messages[0].id == copied.id
        finally:
            await store.close()

    asyncio.run(main())


INBOX_NAME = "INBOX"
