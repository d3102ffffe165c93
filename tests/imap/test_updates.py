"""Changes made elsewhere reach every selected session: new mail, flag changes, expunges from other sessions
and deletions through the store, immediately while a session IDLEs."""

from __future__ import annotations

import imaplib
import threading
import time
from collections.abc import Callable

from mailnest.runtime import ServerThread

from .helpers import deliver, login


def _idle(client: imaplib.IMAP4, tag: bytes = b"I1") -> None:
    client.send(tag + b" IDLE\r\n")
    assert client.readline().startswith(b"+ ")


def _done(client: imaplib.IMAP4, tag: bytes = b"I1") -> list[bytes]:
    client.send(b"DONE\r\n")
    lines = []
    while True:
        line = client.readline()
        if line.startswith(tag + b" "):
            assert b" OK " in line
            return lines
        lines.append(line)


def test_idle_across_two_sessions(server: ServerThread) -> None:
    deliver(server)
    deliver(server)
    watcher = login(server)
    watcher.select("INBOX")
    actor = login(server)
    actor.select("INBOX")
    _idle(watcher)
    actor.store("1", "+FLAGS", "(\\Flagged)")
    # the watcher selected first, so the two messages are \Recent in its session only
    assert watcher.readline() == b"* 1 FETCH (FLAGS (\\Flagged \\Recent))\r\n"
    actor.store("2", "+FLAGS", "(\\Deleted)")
    assert watcher.readline() == b"* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
    actor.expunge()
    assert watcher.readline() == b"* 2 EXPUNGE\r\n"
    actor.append("INBOX", None, None, b"Subject: appended\r\n\r\nhi\r\n")
    assert watcher.readline() == b"* 2 EXISTS\r\n"
    # \Recent goes to whichever session hears of the new message first: the appender or the watcher
    assert watcher.readline() in (b"* 1 RECENT\r\n", b"* 2 RECENT\r\n")
    assert _done(watcher) == []


def test_new_mail_and_store_deletions_reach_selected_sessions(server: ServerThread) -> None:
    deliver(server, subject="one")
    deliver(server, subject="two")
    client = login(server)
    client.select("INBOX")
    client.untagged_responses.clear()
    deliver(server, subject="three")
    client.noop()
    assert client.untagged_responses.pop("EXISTS") == [b"3"]
    ids = [s.id for s in server.call(server.store.list()).messages]  # newest first
    server.call(server.store.set_read(ids[:1], True))
    server.call(server.store.delete(ids[2:]))
    _typ, _ = client.noop()
    # the EXPUNGE of message 1 comes first, so the newest message is number 2 by the time its FETCH is sent
    assert client.untagged_responses.pop("EXPUNGE") == [b"1"]
    assert client.untagged_responses.pop("FETCH") == [b"2 (FLAGS (\\Seen \\Recent))"]
    server.call(server.store.delete_all())
    client.noop()
    assert client.untagged_responses.pop("EXPUNGE") == [b"2", b"1"]


def test_no_expunge_during_fetch_store_search(server: ServerThread) -> None:
    """Sequence numbers may not shift under FETCH, STORE or SEARCH; the EXPUNGE waits for the next command."""
    deliver(server)
    deliver(server)
    watcher = login(server)
    watcher.select("INBOX")
    watcher.untagged_responses.clear()
    actor = login(server)
    actor.select("INBOX")
    actor.store("1", "+FLAGS", "(\\Deleted)")
    actor.expunge()
    _typ, data = watcher.fetch("2", "(UID)")
    assert data == [b"2 (UID 2)"]
    assert "EXPUNGE" not in watcher.untagged_responses
    watcher.search(None, "ALL")
    assert "EXPUNGE" not in watcher.untagged_responses
    watcher.noop()
    assert watcher.untagged_responses.pop("EXPUNGE") == [b"1"]


def test_concurrent_smtp_delivery_during_fetch(server: ServerThread) -> None:
    for n in range(40):
        deliver(server, subject=f"before {n}", body="y" * 5000)
    client = login(server)
    client.select("INBOX")
    stop = threading.Event()
    sent: list[int] = []

    def sender() -> None:
        while not stop.is_set():
            deliver(server, subject=f"during {len(sent)}")
            sent.append(1)

    thread = threading.Thread(target=sender)
    thread.start()
    try:
        for _ in range(5):
            typ, data = client.fetch("1:40", "(UID ENVELOPE BODY[])")
            assert typ == "OK"
            assert len([d for d in data if isinstance(d, tuple)]) == 40
    finally:
        stop.set()
        thread.join()
    assert sent
    deadline = time.monotonic() + 10
    while True:
        client.noop()
        exists = client.untagged_responses.get("EXISTS")
        if exists and int(exists[-1]) == 40 + len(sent):
            break
        assert time.monotonic() < deadline, exists
    typ, data = client.search(None, "SUBJECT", "during")
    assert len(data[0].split()) == len(sent)


def test_retention_pruning_reaches_selected_sessions(make_server: Callable[..., ServerThread]) -> None:
    server = make_server(max_messages=2)
    deliver(server, subject="oldest")
    deliver(server, subject="middle")
    client = login(server)
    client.select("INBOX")
    client.untagged_responses.clear()
    deliver(server, subject="newest")  # over the limit: the oldest message is pruned
    client.noop()
    assert client.untagged_responses.pop("EXPUNGE") == [b"1"]
    assert client.untagged_responses.pop("EXISTS") == [b"2"]
    assert client.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1][0][1] == b"Subject: middle\n\n"
