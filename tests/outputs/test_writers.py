"""Each file writer on its own: what it puts on disk, read back with Python's `mailbox` module and mutt."""

from __future__ import annotations

import email
import io
import mailbox
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailnest.models import Envelope
from mailnest.outputs import Delivery
from mailnest.outputs.console import ConsoleOutput, render
from mailnest.outputs.latest import LatestOutput, peer_repr, with_envelope_headers
from mailnest.outputs.maildir import MaildirOutput
from mailnest.outputs.mbox import MboxOutput, entry, from_line
from mailnest.outputs.mh import MHOutput
from tests.outputs.helpers import delivery, files_under, hostile_addresses, message, mutt_messages


def mh_folder(root: Path, domain: str, user: str) -> mailbox.MH:
    return mailbox.MH(root, create=False).get_folder(domain).get_folder(user)


# --- MH ------------------------------------------------------------------------------------------------


def test_mh_one_numbered_file_per_recipient(tmp_path: Path) -> None:
    root = tmp_path / "mail-boxes"
    out = MHOutput(root)
    out.write(delivery(message("first"), ["bart@example.com", "Lisa@Example.com"]))
    out.write(delivery(message("second"), ["bart@example.com", "BART@example.com"]))  # one copy per mailbox
    assert sorted(p.name for p in (root / "example.com" / "bart").iterdir()) == [".mh_sequences", "1", "2"]
    assert (root / "example.com" / "bart" / "1").read_bytes() == message("first").replace(b"\r\n", b"\n")
    bart = mh_folder(root, "example.com", "bart")
    assert [bart[k]["Subject"] for k in sorted(bart.keys())] == ["first", "second"]
    lisa = mh_folder(root, "example.com", "lisa")
    assert [m["Subject"] for m in lisa] == ["first"]
    assert mailbox.MH(root).list_folders() == ["example.com"]
    assert not list(root.rglob("*.tmp"))


def test_mh_numbering_continues_after_restart_and_skips_taken_numbers(tmp_path: Path) -> None:
    root = tmp_path / "mh"
    MHOutput(root).write(delivery(message("a"), ["bart@example.com"]))
    folder = root / "example.com" / "bart"
    (folder / "7").write_bytes(b"Subject: put there by another program\n\nx\n")
    (folder / "notes").write_text("not a message")
    restarted = MHOutput(root)
    restarted.write(delivery(message("b"), ["bart@example.com"]))
    assert (folder / "8").read_bytes().startswith(b"From: sender")
    # another writer (another process) takes the next number under our feet: we skip it, never overwrite
    (folder / "9").write_bytes(b"Subject: theirs\n\n")
    restarted.write(delivery(message("c"), ["bart@example.com"]))
    assert (folder / "9").read_bytes() == b"Subject: theirs\n\n"
    assert b"Subject: c" in (folder / "10").read_bytes()


def test_mh_folder_removed_while_running_numbers_afresh(tmp_path: Path) -> None:
    root = tmp_path / "mh"
    out = MHOutput(root)
    out.write(delivery(message("a"), ["bart@example.com"]))
    out.write(delivery(message("b"), ["bart@example.com"]))
    for path in sorted((root / "example.com" / "bart").iterdir()):
        path.unlink()
    (root / "example.com" / "bart").rmdir()
    out.write(delivery(message("c"), ["bart@example.com"]))
    assert [p.name for p in (root / "example.com" / "bart").iterdir() if p.name.isdigit()] == ["1"]


def test_mh_two_writers_at_once_never_share_a_number(tmp_path: Path) -> None:
    # Two MHOutput objects stand for two processes: only the file system keeps them apart.
    root = tmp_path / "mh"
    writers = [MHOutput(root), MHOutput(root)]

    def run(writer: MHOutput, tag: str) -> None:
        for i in range(40):
            writer.write(delivery(message(f"{tag}{i}"), ["bart@example.com"]))

    threads = [threading.Thread(target=run, args=(w, t)) for w, t in zip(writers, "xy", strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bart = mh_folder(root, "example.com", "bart")
    assert sorted(bart.keys()) == list(range(1, 81))
    assert sorted(m["Subject"] for m in bart) == sorted([f"x{i}" for i in range(40)] + [f"y{i}" for i in range(40)])


def test_mh_is_read_by_mutt(tmp_path: Path) -> None:
    root = tmp_path / "mh"
    out = MHOutput(root)
    for i in range(3):
        out.write(delivery(message(f"mutt {i}"), ["bart@example.com"]))
    read = mutt_messages(root / "example.com" / "bart", tmp_path / "home")
    assert [email.message_from_bytes(m)["Subject"] for m in read] == ["mutt 0", "mutt 1", "mutt 2"]


# --- Maildir -------------------------------------------------------------------------------------------


def test_maildir_delivers_into_new_per_recipient(tmp_path: Path) -> None:
    root = tmp_path / "maildir"
    out = MaildirOutput(root)
    out.write(delivery(message("one"), ["bart@example.com", "lisa@example.com"]))
    out.write(delivery(message("two"), ["bart@example.com"]))
    bart = root / "example.com" / "bart"
    assert {p.name for p in bart.iterdir()} == {"tmp", "new", "cur"}
    assert list((bart / "tmp").iterdir()) == []
    names = sorted(p.name for p in (bart / "new").iterdir())
    assert len(names) == 2 and len(set(names)) == 2
    size = len(message("one").replace(b"\r\n", b"\n"))
    assert any(n.endswith(f",S={size}") for n in names)
    box = mailbox.Maildir(bart, create=False)
    assert sorted(m["Subject"] for m in box) == ["one", "two"]
    assert [m["Subject"] for m in mailbox.Maildir(root / "example.com" / "lisa", create=False)] == ["one"]


def test_maildir_is_read_by_mutt(tmp_path: Path) -> None:
    root = tmp_path / "maildir"
    out = MaildirOutput(root)
    for i in range(3):
        out.write(delivery(message(f"md {i}"), ["bart@example.com"]))
    read = mutt_messages(root / "example.com" / "bart", tmp_path / "home")
    assert sorted(email.message_from_bytes(m)["Subject"] for m in read) == ["md 0", "md 1", "md 2"]


def test_maildir_is_read_by_dovecot() -> None:
    from tests.conftest import IN_CI
    from tests.imap.dovecot import Dovecot, dovecot_available

    if not dovecot_available():
        if IN_CI:
            pytest.fail("dovecot is required in CI")
        pytest.skip("dovecot is not installed")
    dovecot = Dovecot()
    try:
        out = MaildirOutput(dovecot.home)
        for i in range(3):
            out.add(dovecot.home / "Maildir", message(f"dovecot {i}", f"body {i}\r\n").replace(b"\r\n", b"\n"))
        with dovecot.session() as imap:
            assert imap.select("INBOX") == ("OK", [b"3"])
            typ, data = imap.fetch("1:*", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert typ == "OK"
            headers = [item[1] for item in data if isinstance(item, tuple)]
            assert sorted(headers) == [f"Subject: dovecot {i}\r\n\r\n".encode() for i in range(3)]
    finally:
        dovecot.close()


# --- mbox ----------------------------------------------------------------------------------------------

TRICKY_BODY = "From the start\r\n>From quoted already\r\nnot From here\r\nFrom\r\n\r\nFrom again\r\n"


def test_mbox_from_lines_and_quoting(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "mail.mbox"
    out = MboxOutput(path)
    when = datetime(2024, 3, 5, 7, 8, 9, tzinfo=UTC)
    raw = message("quoted", TRICKY_BODY)
    out.write(Delivery("1", raw, Envelope("ann@example.com", ("bart@example.com",), received=when)))
    out.write(Delivery("2", message("second"), Envelope("", ("bart@example.com",), received=when)))
    data = path.read_bytes()
    assert data.startswith(b"From ann@example.com Tue Mar  5 07:08:09 2024\n")
    assert b"\n\nFrom MAILER-DAEMON Tue Mar  5 07:08:09 2024\n" in data
    assert b"\n>From the start\n>From quoted already\nnot From here\nFrom\n\n>From again\n" in data
    assert data.endswith(b"Hello.\n\n")
    box = mailbox.mbox(path, create=False)
    messages = list(box)
    assert [m["Subject"] for m in messages] == ["quoted", "second"]
    assert messages[0].get_from() == "ann@example.com Tue Mar  5 07:08:09 2024"
    assert messages[0].get_payload().startswith(">From the start\n")
    assert not path.with_name("mail.mbox.lock").exists()


def test_mbox_is_read_by_mutt(tmp_path: Path) -> None:
    path = tmp_path / "mail.mbox"
    out = MboxOutput(path)
    out.write(delivery(message("m1", TRICKY_BODY), ["bart@example.com"]))
    out.write(delivery(message("m2", "no newline at the end"), ["bart@example.com"]))
    out.write(delivery(message("m3", "From the top\r\n"), ["bart@example.com"]))
    read = mutt_messages(path, tmp_path / "home")
    assert [email.message_from_bytes(m.split(b"\n", 1)[1])["Subject"] for m in read] == ["m1", "m2", "m3"]
    assert b"\n>From the start\n" in read[0]


def test_mbox_appends_after_a_file_without_trailing_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "mail.mbox"
    path.write_bytes(b"From x Thu Jan  1 00:00:00 2024\nSubject: old\n\nno final newline")
    MboxOutput(path).write(delivery(message("new"), ["bart@example.com"]))
    assert [m["Subject"] for m in mailbox.mbox(path, create=False)] == ["old", "new"]


def test_mbox_waits_for_mailbox_lock_holders(tmp_path: Path) -> None:
    path = tmp_path / "mail.mbox"
    MboxOutput(path).write(delivery(message("first"), ["bart@example.com"]))
    box = mailbox.mbox(path)
    box.lock()  # fcntl lock and dot-lock, as another mail program would hold them
    writer = threading.Thread(target=MboxOutput(path).write, args=(delivery(message("second"), ["b@x"]),))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive()  # still waiting for the lock
    box.unlock()
    box.close()
    writer.join(5)
    assert not writer.is_alive()
    assert [m["Subject"] for m in mailbox.mbox(path, create=False)] == ["first", "second"]


def test_mbox_sender_cannot_break_the_from_line() -> None:
    line = from_line("evil sender\n\x00@example.com", datetime(2024, 1, 1, tzinfo=UTC))
    assert line == b"From evil_sender__@example.com Mon Jan  1 00:00:00 2024\n"
    assert entry(delivery(b"Subject: x\r\n\r\nbody", ["a@b"])).endswith(b"\nbody\n\n")


# --- latest --------------------------------------------------------------------------------------------


def test_latest_file_is_replaced_with_envelope_headers(tmp_path: Path) -> None:
    path = tmp_path / "latest.eml"
    out = LatestOutput(path)
    out.write(delivery(message("old"), ["bart@example.com"]))
    out.write(delivery(message("new"), ["bart@example.com", "lisa@example.com"], mail_from="ann@example.com",
                       peer="127.0.0.1:5555"))
    msg = email.message_from_bytes(path.read_bytes())
    assert msg["Subject"] == "new"
    assert msg["X-Peer"] == "('127.0.0.1', 5555)"  # str(session.peer), as aiosmtpd's Message handler
    assert msg["X-MailFrom"] == "ann@example.com"
    assert msg["X-RcptTo"] == "bart@example.com, lisa@example.com"
    assert msg.get_payload() == "Hello.\n"
    assert list(tmp_path.iterdir()) == [path]


def test_latest_headers_go_where_the_header_block_ends() -> None:
    env = Envelope("a@b", ("c@d", "e@f"), peer="[::1]:25")
    assert with_envelope_headers(b"Subject: x\r\n\r\nbody\r\n", env) == (
        b"Subject: x\nX-Peer: ('::1', 25)\nX-MailFrom: a@b\nX-RcptTo: c@d, e@f\n\nbody\n")
    assert with_envelope_headers(b"Subject: only headers", env).startswith(b"Subject: only headers\nX-Peer:")
    assert with_envelope_headers(b"\r\nno headers", env).endswith(b"X-RcptTo: c@d, e@f\n\nno headers")
    injected = with_envelope_headers(b"S: x\n\n", Envelope("a@b\r\nBcc: victim@x", ("c@d",)))
    assert b"\nBcc:" not in injected
    assert peer_repr("") == "None"


# --- console -------------------------------------------------------------------------------------------


def test_console_prints_envelope_then_message(capsys: pytest.CaptureFixture[str]) -> None:
    ConsoleOutput().write(delivery(b"Subject: hi\r\nFrom: a@b\r\n\r\nline 1\r\nline 2\r\n",
                                   ["bart@example.com", "lisa@example.com"], mail_from="a@b"))
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "---------- MESSAGE FOLLOWS ----------",
        "mail from: a@b",
        "rcpt to: bart@example.com, lisa@example.com",
        "helo: client.test",
        "peer: 127.0.0.1:4321",
        "",
        "Subject: hi",
        "From: a@b",
        "X-Peer: ('127.0.0.1', 4321)",
        "",
        "line 1",
        "line 2",
        "------------ END MESSAGE ------------",
    ]


def test_console_neutralises_terminal_escapes() -> None:
    text = render(delivery(b"Subject: \x1b]0;pwned\x07\r\n\r\n\x1b[2J\tok\r\n", ["a@b"]))
    assert "\x1b" not in text and "\x07" not in text
    assert "Subject: ^[]0;pwned^G" in text and "^[[2J\tok" in text
    stream = io.StringIO()
    ConsoleOutput(stream).write(delivery(b"Subject: s\r\n\r\nb\r\n", ["a@b"]))
    assert stream.getvalue().endswith("------------ END MESSAGE ------------\n")


# --- hostile addresses against every file output --------------------------------------------------------


@pytest.mark.parametrize("kind", ["mh", "maildir", "mbox", "latest"])
def test_hostile_recipients_stay_inside_the_output_folder(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "d1" / "d2" / "d3" / "out"
    root.mkdir(parents=True)
    target = root / "mail.mbox" if kind == "mbox" else root / "latest.eml" if kind == "latest" else root
    output = {"mh": MHOutput, "maildir": MaildirOutput, "mbox": MboxOutput, "latest": LatestOutput}[kind](target)
    addresses = hostile_addresses(tmp_path)
    for i, address in enumerate(addresses):
        output.write(delivery(message(f"hostile {i}"), [address], mail_from=address))
    assert {p for p in files_under(tmp_path) if root not in p.parents} == set()
    written = files_under(root)
    if kind == "mh":
        numbered = [p for p in written if p.name.isdigit()]
        assert len(numbered) == len(addresses)
        folders = {p.parent.relative_to(root) for p in numbered}
        assert len(folders) == len(addresses) - 1  # "" and "@" are the same (empty) mailbox
        assert all(len(f.parts) == 2 for f in folders)
        assert all(p.name == "1" or p.parent.name == "(none)" for p in numbered)
        total = sum(len(mh_folder(root, f.parts[0], f.parts[1])) for f in folders)
        assert total == len(addresses)
    elif kind == "maildir":
        new = [p for p in written if p.parent.name == "new"]
        assert len(new) == len(addresses)
        assert all(len(p.relative_to(root).parts) == 4 for p in new)
    elif kind == "mbox":
        assert len(mailbox.mbox(target, create=False)) == len(addresses)
    else:
        assert written == {target}
        assert email.message_from_bytes(target.read_bytes())["Subject"] == f"hostile {len(addresses) - 1}"
