"""Importing .eml files, mbox files, Maildirs and MH folders, into a store and over SMTP."""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailnest.config import Config
from mailnest.events import Hub
from mailnest.importer import (
    add_ingest_arguments,
    detect,
    envelope_from_headers,
    import_into_store,
    import_over_smtp,
    ingest_main,
    iter_messages,
)
from mailnest.runtime import ServerThread
from mailnest.store.sqlite import SQLiteStore


def message(n: int, to: str = "bob@example.com", extra: bytes = b"") -> bytes:
    return (f"From: Alice <alice@example.com>\nTo: {to}\nSubject: message {n}\n"
            f"Message-ID: <m{n}@example.com>\n").encode() + extra + f"\nbody {n}\n".encode()


@pytest.fixture
def server() -> Iterator[ServerThread]:
    with ServerThread(Config(http=None)) as thread:
        yield thread


def make_mbox(path: Path, raws: list[bytes]) -> None:
    box = mailbox.mbox(path)
    for raw in raws:
        box.add(raw)
    box.close()


def make_maildir(path: Path, raws: list[bytes], folder: tuple[bytes, ...] = ()) -> None:
    box = mailbox.Maildir(path)
    for raw in raws:
        box.add(raw)
    if folder:
        sub = box.add_folder("Archive")
        for raw in folder:
            sub.add(raw)


def make_mh(path: Path, raws: list[bytes]) -> None:
    box = mailbox.MH(path)
    for raw in raws:
        box.add(raw)


def test_detect_and_iterate_every_kind(tmp_path: Path) -> None:
    (tmp_path / "one.eml").write_bytes(message(1))
    make_mbox(tmp_path / "inbox.mbox", [message(2), message(3)])
    make_maildir(tmp_path / "md", [message(4)], folder=(message(5),))
    make_mh(tmp_path / "mh", [message(6), message(7)])
    (tmp_path / "notes.txt").write_text("not mail")

    assert detect(tmp_path / "one.eml") == "eml"
    assert detect(tmp_path / "inbox.mbox") == "mbox"
    assert detect(tmp_path / "md") == "maildir"
    assert detect(tmp_path / "mh") == "mh"
    assert detect(tmp_path) == "directory"

    assert [raw for raw, _ in iter_messages(tmp_path / "one.eml")] == [message(1)]
    assert [raw for raw, _ in iter_messages(tmp_path / "inbox.mbox")] == [message(2), message(3)]
    assert sorted(raw for raw, _ in iter_messages(tmp_path / "md")) == [message(4), message(5)]
    assert [raw for raw, _ in iter_messages(tmp_path / "mh")] == [message(6), message(7)]
    walked = list(iter_messages(tmp_path))
    assert sorted(raw for raw, _ in walked) == [message(n) for n in range(1, 8)]
    sources = [source for _, source in walked]
    assert any(s.endswith("inbox.mbox #2") for s in sources)
    assert not any("notes.txt" in s for s in sources)


def test_a_file_named_anything_is_one_message_when_given_explicitly(tmp_path: Path) -> None:
    path = tmp_path / "message"
    path.write_bytes(message(1))
    assert list(iter_messages(path)) == [(message(1), str(path))]


def test_envelope_from_headers() -> None:
    raw = (b"Return-Path: <bounce@example.com>\nFrom: a@example.com\nTo: B <b@example.com>, c@example.com\n"
           b"Cc: C@example.com, d@example.com\nBcc: e@example.com\n\nx\n")
    assert envelope_from_headers(raw) == ("bounce@example.com",
                                          ["b@example.com", "C@example.com", "d@example.com", "e@example.com"])
    assert envelope_from_headers(b"From: a@example.com\nTo: undisclosed-recipients:;\n\nx") == ("a@example.com", [])
    assert envelope_from_headers(b"Sender: s@example.com\nFrom: a@example.com\nDelivered-To: z@example.com\n\n") \
        == ("s@example.com", ["z@example.com"])


def test_import_into_store_keeps_bytes_order_and_mailboxes(tmp_path: Path) -> None:
    raws = [message(n, to=f"user{n % 2}@example.com") for n in range(150)]
    make_mbox(tmp_path / "big.mbox", raws)
    no_recipients = b"From: a@example.com\nSubject: nobody\n\nx\n"
    (tmp_path / "lonely.eml").write_bytes(no_recipients)

    async def scenario() -> None:
        store = SQLiteStore(tmp_path / "mail.db", Hub())
        await store.start()
        try:
            result = await import_into_store(store, [tmp_path / "big.mbox", tmp_path / "lonely.eml"])
            assert (result.imported, result.failed) == (151, [])
            uids = await store.uids()
            summaries = await store.summaries_by_uid(uids)
            assert [s.subject for s in summaries] == [f"message {n}" for n in range(150)] + ["nobody"]
            assert await store.raw(summaries[7].id) == raws[7]  # bare LFs kept: the file's bytes
            assert await store.count(mailbox="user1@example.com") == 75
            first = await store.get(summaries[0].id)
            assert first is not None
            assert first.envelope.source == "import"
            assert first.envelope.mail_from == "alice@example.com"
            assert first.envelope.rcpt_tos == ("user0@example.com",)
            # Given an envelope, every message uses it.
            again = await import_into_store(store, [tmp_path / "lonely.eml"], mail_from="x@example.com",
                                            rcpt_tos=["only@example.com"])
            assert again.imported == 1
            assert await store.count(mailbox="only@example.com") == 1
        finally:
            await store.close()

    asyncio.run(scenario())


def test_import_over_smtp(tmp_path: Path, server: ServerThread) -> None:
    make_maildir(tmp_path / "md", [message(1), message(2, to="carol@example.com", extra=b"Cc: dan@example.com\n")])
    (tmp_path / "nobody.eml").write_bytes(b"From: a@example.com\nSubject: nobody\n\nx\n")
    assert server.smtp_port is not None
    result = import_over_smtp("127.0.0.1", server.smtp_port, [tmp_path / "md", tmp_path / "nobody.eml"])
    assert result.imported == 2
    assert [(s.rsplit("/", 1)[-1], r) for s, r in result.failed] == [
        ("nobody.eml", "no recipients in To, Cc or Bcc (give some with --to)")]
    assert server.call(server.store.count(mailbox="dan@example.com")) == 1
    page = server.call(server.store.list(mailbox="bob@example.com"))
    raw = server.call(server.store.raw(page.messages[0].id))
    assert raw == message(1).replace(b"\n", b"\r\n")  # SMTP carries CRLF lines

    forced = import_over_smtp("127.0.0.1", server.smtp_port, [tmp_path / "nobody.eml"],
                              mail_from="me@example.com", rcpt_tos=["forced@example.com"])
    assert (forced.imported, forced.failed) == (1, [])
    summary = server.call(server.store.latest(mailbox="forced@example.com"))
    msg = server.call(server.store.get(summary.id))
    assert msg.envelope.mail_from == "me@example.com"


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="mailnest ingest")
    add_ingest_arguments(parser)
    return parser.parse_args(argv)


def test_ingest_main_into_a_db_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_mh(tmp_path / "mh", [message(1), message(2)])
    db = tmp_path / "mail.db"
    assert ingest_main(parse([str(tmp_path / "mh"), "--db", str(db)])) == 0
    assert "imported 2 message(s)" in capsys.readouterr().out

    with ServerThread(Config(http=None, db=db)) as thread:
        assert thread.call(thread.store.count()) == 2


def test_ingest_main_over_smtp_and_errors(tmp_path: Path, server: ServerThread,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.eml").write_bytes(message(1))
    monkeypatch.setenv("MAILNEST_SMTP", f"127.0.0.1:{server.smtp_port}")
    assert ingest_main(parse([str(tmp_path / "a.eml")])) == 0
    assert server.call(server.store.count()) == 1

    assert ingest_main(parse([str(tmp_path / "missing.eml")])) == 2
    assert "no such file" in capsys.readouterr().err

    (tmp_path / "nobody.eml").write_bytes(b"From: a@example.com\n\nx\n")
    assert ingest_main(parse([str(tmp_path / "nobody.eml"), "--smtp", f"127.0.0.1:{server.smtp_port}"])) == 1
    assert "no recipients" in capsys.readouterr().err

    with ServerThread(Config(http=None)) as gone:
        closed_port = gone.smtp_port
    assert ingest_main(parse([str(tmp_path / "a.eml"), "--smtp", f"127.0.0.1:{closed_port}"])) == 1
    assert "Is `mailnest serve` running?" in capsys.readouterr().err
    assert ingest_main(parse([str(tmp_path / "a.eml"), "--smtp", "nonsense"])) == 2


@pytest.mark.parametrize("text", [b"not mail\n", b"hello: world\nsecond: line\n\nbody\n", b"", b"\x00\x01binary"])
def test_what_is_not_mail_is_named_and_left_out(tmp_path: Path, text: bytes,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16 item 12: a one-line text file went in as a message. It is now skipped, named, and the exit is 1."""
    (tmp_path / "notes.txt").write_bytes(text)
    (tmp_path / "real.eml").write_bytes(message(1))
    db = tmp_path / "mail.db"
    assert ingest_main(parse([str(tmp_path / "notes.txt"), str(tmp_path / "real.eml"), "--db", str(db)])) == 1
    captured = capsys.readouterr()
    assert f"{tmp_path / 'notes.txt'}: not a mail message" in captured.err
    assert "imported 1 message(s), 1 failed" in captured.out
    with ServerThread(Config(http=None, db=db)) as thread:
        assert thread.call(thread.store.count()) == 1


def test_progress_is_shown_on_a_terminal_only(tmp_path: Path) -> None:
    """Issue 16 item 12: 5,000 messages ran 15 s with no output. On a terminal a running count is redrawn (and
    cleared before the summary); into a pipe nothing but the summary is written."""
    make_mh(tmp_path / "mh", [message(n) for n in range(400)])
    command = [sys.executable, "-m", "mailnest.cli", "ingest", str(tmp_path / "mh"), "--db"]
    piped = subprocess.run([*command, str(tmp_path / "piped.db")], capture_output=True, timeout=60)
    assert piped.returncode == 0 and b"\r" not in piped.stderr + piped.stdout, piped
    leader, follower = pty.openpty()
    try:
        proc = subprocess.Popen([*command, str(tmp_path / "tty.db")], stdin=follower, stdout=follower,
                                stderr=follower)
        os.close(follower)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
        assert proc.wait(60) == 0, seen
    finally:
        os.close(leader)
    assert re.search(rb"\rmailnest ingest: \d+ imported\.\.\.", seen), seen
    assert b"\r\x1b[K" in seen and seen.rstrip().endswith(b"imported 400 message(s) into " + str(
        tmp_path / "tty.db").encode()), seen


def test_ingest_into_a_db_by_the_messages_own_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 16 item 12: the import time was every message's received time; --use-message-dates keeps its Date."""
    (tmp_path / "old.eml").write_bytes(b"From: a@example.com\nTo: b@example.com\nSubject: old\n"
                                       b"Date: Tue, 03 Mar 2020 10:00:00 +0000\n\nx\n")
    db = tmp_path / "mail.db"
    assert ingest_main(parse([str(tmp_path / "old.eml"), "--db", str(db), "--use-message-dates"])) == 0
    with ServerThread(Config(db=db)) as thread:
        [summary] = thread.call(thread.store.list()).messages
        assert summary.created.isoformat() == "2020-03-03T10:00:00+00:00"
    assert ingest_main(parse([str(tmp_path / "old.eml"), "--use-message-dates"])) == 2
    assert "--use-message-dates needs --db" in capsys.readouterr().err
