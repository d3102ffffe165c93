"""The IMAPClient library against mailnest: its parser accepts every answer, for every command it offers."""

from __future__ import annotations

import threading
from datetime import datetime

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from mailnest.runtime import ServerThread

from .helpers import deliver, multipart


@pytest.fixture
def client(server: ServerThread) -> IMAPClient:
    imap = IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    imap.login("*", "secret")
    return imap


def test_plain_login(server: ServerThread) -> None:
    deliver(server, to=("alice@example.com",))
    imap = IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=30)
    imap.plain_login("alice@example.com", "secret")
    assert imap.select_folder("INBOX")[b"EXISTS"] == 1
    imap.logout()


def test_capabilities_namespace_id(client: IMAPClient) -> None:
    caps = client.capabilities()
    assert {b"IMAP4REV1", b"IDLE", b"MOVE", b"UIDPLUS", b"NAMESPACE", b"ENABLE", b"ID"} <= set(caps)
    assert client.namespace().personal == (("", "/"),)
    assert client.id_({"name": "pytest"}) == ((b"name", b"mailnest"),)
    assert client.enable("CONDSTORE") == []
    assert client.noop()[0] == b"NOOP completed"


def test_folders(client: IMAPClient) -> None:
    client.create_folder("Projects/Alpha")
    client.create_folder("Entw\u00fcrfe")  # IMAPClient encodes folder names in modified UTF-7
    names = [name for _flags, _delim, name in client.list_folders()]
    assert names == ["INBOX", "Entw\u00fcrfe", "Projects", "Projects/Alpha"]
    assert client.folder_exists("Projects/Alpha")
    client.rename_folder("Projects", "Archive")
    assert client.folder_exists("Archive/Alpha") and not client.folder_exists("Projects")
    client.subscribe_folder("Archive/Alpha")
    assert [name for _f, _d, name in client.list_sub_folders()] == ["Archive/Alpha"]
    client.unsubscribe_folder("Archive/Alpha")
    assert client.list_sub_folders() == []
    client.delete_folder("Archive/Alpha")
    assert client.folder_status("INBOX", ["MESSAGES", "UNSEEN"]) == {b"MESSAGES": 0, b"UNSEEN": 0}
    with pytest.raises(IMAPClientError):
        client.delete_folder("INBOX")


def test_append_fetch_search_store(client: IMAPClient, server: ServerThread) -> None:
    deliver(server, subject="first")
    message = multipart("second")
    client.append("INBOX", message, flags=[b"$Important"], msg_time=datetime(2024, 3, 5, 10, 0, 0))
    info = client.select_folder("INBOX")
    assert info[b"EXISTS"] == 2 and info[b"UIDNEXT"] == 3
    data = client.fetch([1, 2], ["FLAGS", "ENVELOPE", "BODYSTRUCTURE", "RFC822.SIZE", "INTERNALDATE",
                                 "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    assert data[2][b"ENVELOPE"].subject == b"second"
    assert data[2][b"ENVELOPE"].from_[0].mailbox == b"reporter"
    assert data[2][b"RFC822.SIZE"] == len(message)
    assert data[2][b"FLAGS"] == (b"\\Recent", b"$Important")
    assert data[2][b"BODYSTRUCTURE"].is_multipart
    assert data[1][b"BODY[HEADER.FIELDS (SUBJECT)]"] == b"Subject: first\n\n"  # sent with bare LF
    assert client.search(["SUBJECT", "second"]) == [2]
    assert client.search(["UNSEEN"]) == [1, 2]
    assert client.search(["KEYWORD", "$Important"]) == [2]
    assert client.add_flags([1], [b"\\Seen"]) == {1: (b"\\Seen", b"\\Recent")}
    assert client.get_flags([1]) == {1: (b"\\Seen", b"\\Recent")}
    client.set_flags([2], [b"\\Answered"])
    client.remove_flags([1], [b"\\Seen"])
    assert client.get_flags([1, 2]) == {1: (b"\\Recent",), 2: (b"\\Answered", b"\\Recent")}
    full = client.fetch([2], ["BODY[]"])[2]
    assert full[b"BODY[]"] == message
    assert b"\\Seen" in client.get_flags([2])[2]


def test_copy_move_expunge_uid_variants(client: IMAPClient, server: ServerThread) -> None:
    for n in range(3):
        deliver(server, subject=f"m{n}")
    client.create_folder("Keep")
    client.select_folder("INBOX")
    client.copy([1], "Keep")
    client.move([2], "Keep")
    client.delete_messages([1])
    assert client.uid_expunge([1]) is not None
    client.add_flags([3], [b"\\Deleted"])
    client.remove_flags([3], [b"\\Deleted"])
    assert client.expunge()[1] == []
    assert client.search() == [3]  # IMAPClient speaks UIDs
    assert client.fetch([3], ["UID"]) == {3: {b"SEQ": 1}}  # IMAPClient keys by the UID it strips
    client.unselect_folder()
    client.select_folder("Keep", readonly=True)
    assert client.search() == [4, 5]
    client.close_folder()


def test_idle_with_imapclient(client: IMAPClient, server: ServerThread) -> None:
    client.select_folder("INBOX")
    client.idle()
    timer = threading.Timer(0.2, lambda: deliver(server))
    timer.start()
    responses = client.idle_check(timeout=10)
    client.idle_done()
    timer.join()
    assert (1, b"EXISTS") in responses
    client.logout()
