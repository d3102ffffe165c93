"""End to end: mail in over SMTP with smtplib, then the output files read back with `mailbox` and mutt."""

from __future__ import annotations

import email
import logging
import mailbox
import os
import smtplib
import threading
from pathlib import Path

import pytest

from mailnest import Config, ServerThread
from tests.conftest import send
from tests.outputs.helpers import files_under, flush, hostile_addresses, mutt_messages, running


def all_outputs(tmp_path: Path, **changes: object) -> Config:
    return Config(mh=tmp_path / "mail-boxes", maildir=tmp_path / "maildir", mbox=tmp_path / "mail.mbox",
                  latest=tmp_path / "latest.eml").replace(**changes)


def subjects(box: mailbox.Mailbox) -> list[str]:  # type: ignore[type-arg]
    return sorted(str(m["Subject"]) for m in box)


def test_every_output_gets_every_message(tmp_path: Path) -> None:
    with running(all_outputs(tmp_path)) as (server, dispatcher):
        send(server, to=["bart@example.com", "lisa@example.com"], subject="first")
        send(server, to=["Bart@Example.com"], sender="ann@example.com", subject="second")
        flush(server, dispatcher)
        mh = mailbox.MH(tmp_path / "mail-boxes").get_folder("example.com")
        assert subjects(mh.get_folder("bart")) == ["first", "second"]
        assert subjects(mh.get_folder("lisa")) == ["first"]
        assert (tmp_path / "mail-boxes" / "example.com" / "bart" / "2").is_file()
        assert subjects(mailbox.Maildir(tmp_path / "maildir" / "example.com" / "bart", create=False)) == [
            "first", "second"]
        assert subjects(mailbox.mbox(tmp_path / "mail.mbox", create=False)) == ["first", "second"]
        latest = email.message_from_bytes((tmp_path / "latest.eml").read_bytes())
        assert latest["Subject"] == "second"
        assert latest["X-MailFrom"] == "ann@example.com"
        assert latest["X-RcptTo"] == "Bart@Example.com"
        assert latest["X-Peer"].startswith("('127.0.0.1', ")
        froms = [m.get_from() for m in mailbox.mbox(tmp_path / "mail.mbox", create=False)]
        assert froms[0].startswith("sender@example.com ") and froms[1].startswith("ann@example.com ")
        read = mutt_messages(tmp_path / "mail.mbox", tmp_path / "home")
        assert [email.message_from_bytes(m.split(b"\n", 1)[1])["Subject"] for m in read] == ["first", "second"]


def test_bytes_are_kept_except_line_ends(tmp_path: Path) -> None:
    raw = (b"From: a@example.com\r\nTo: bart@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
           b"caf\xc3\xa9 \xe2\x9c\x93\r\n.leading dot\r\nFrom the body\r\n")
    with running(all_outputs(tmp_path)) as (server, dispatcher):
        send(server, raw=raw, to=["bart@example.com"])
        flush(server, dispatcher)
    unix = raw.replace(b"\r\n", b"\n")
    assert (tmp_path / "mail-boxes" / "example.com" / "bart" / "1").read_bytes() == unix
    [maildir_file] = (tmp_path / "maildir" / "example.com" / "bart" / "new").iterdir()
    assert maildir_file.read_bytes() == unix
    assert unix.replace(b"\nFrom the body", b"\n>From the body") in (tmp_path / "mail.mbox").read_bytes()


def test_concurrent_deliveries_to_one_mailbox(tmp_path: Path) -> None:
    senders, each = 6, 10
    with running(all_outputs(tmp_path)) as (server, dispatcher):
        errors: list[BaseException] = []

        def client(n: int) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="c.test") as smtp:
                    for i in range(each):
                        smtp.sendmail("s@example.com", ["bart@example.com"],
                                      f"Subject: c{n}-{i}\r\n\r\nbody\r\n".encode())
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        flush(server, dispatcher)
        expected = sorted(f"c{n}-{i}" for n in range(senders) for i in range(each))
        bart = mailbox.MH(tmp_path / "mail-boxes").get_folder("example.com").get_folder("bart")
        assert sorted(bart.keys()) == list(range(1, senders * each + 1))
        assert subjects(bart) == expected
        # numbers follow the order the store committed the messages
        stored = server.call(server.store.list(limit=1000)).messages
        by_number = [str(bart[k]["Subject"]) for k in sorted(bart.keys())]
        assert by_number == [s.subject for s in reversed(stored)]
        assert subjects(mailbox.Maildir(tmp_path / "maildir" / "example.com" / "bart", create=False)) == expected
        assert subjects(mailbox.mbox(tmp_path / "mail.mbox", create=False)) == expected
        read = mutt_messages(tmp_path / "mail.mbox", tmp_path / "home")
        assert len(read) == senders * each


def test_mh_numbering_continues_after_a_restart(tmp_path: Path) -> None:
    config = Config(mh=tmp_path / "mh")
    for round_ in range(2):
        with running(config) as (server, dispatcher):
            for i in range(3):
                send(server, to=["bart@example.com"], subject=f"round {round_} #{i}")
            flush(server, dispatcher)
    bart = mailbox.MH(tmp_path / "mh").get_folder("example.com").get_folder("bart")
    assert [str(bart[k]["Subject"]) for k in sorted(bart.keys())] == [
        "round 0 #0", "round 0 #1", "round 0 #2", "round 1 #0", "round 1 #1", "round 1 #2"]
    assert sorted(bart.keys()) == [1, 2, 3, 4, 5, 6]


def test_console_prints_each_message(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    with running(Config(print_messages=True)) as (server, dispatcher):
        send(server, to=["bart@example.com"], sender="ann@example.com", subject="to the console")
        flush(server, dispatcher)
    out = capfd.readouterr().out
    assert out.count("---------- MESSAGE FOLLOWS ----------") == 1
    block = out[out.index("---------- MESSAGE FOLLOWS"):]
    assert "mail from: ann@example.com\nrcpt to: bart@example.com\nhelo: client.test\n" in block
    assert "Subject: to the console\n" in block
    assert block.index("Subject: to the console") < block.index("X-Peer: ('127.0.0.1', ")
    assert block.rstrip().endswith("------------ END MESSAGE ------------")


def test_a_failing_output_is_logged_and_the_others_carry_on(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    if os.geteuid() == 0:
        blocked = tmp_path / "not-a-dir"  # root ignores permissions: a file where a folder must go
        blocked.write_text("in the way")
        mh_root = blocked / "mh"
    else:
        blocked = tmp_path / "read-only"
        blocked.mkdir(mode=0o500)
        mh_root = blocked / "mh"
    config = Config(mh=mh_root, mbox=tmp_path / "mail.mbox")
    with caplog.at_level(logging.ERROR, logger="mailnest.outputs"), running(config) as (server, dispatcher):
        send(server, to=["bart@example.com"], subject="one")
        send(server, to=["bart@example.com"], subject="two")
        flush(server, dispatcher)
        assert subjects(mailbox.mbox(tmp_path / "mail.mbox", create=False)) == ["one", "two"]
        assert server.call(server.store.count()) == 2
        assert dispatcher.failures()["mh"] == 2
    failures = [r for r in caplog.records if "mh output could not write" in r.getMessage()]
    assert len(failures) == 2


def test_hostile_recipients_over_smtp_stay_inside_every_output(tmp_path: Path) -> None:
    root = tmp_path / "d1" / "d2" / "d3" / "out"
    root.mkdir(parents=True)
    config = Config(mh=root / "mh", maildir=root / "maildir", mbox=root / "mail.mbox", latest=root / "latest.eml")
    accepted: list[str] = []
    with running(config) as (server, dispatcher):
        with smtplib.SMTP("127.0.0.1", server.smtp_port, local_hostname="c.test") as smtp:
            smtp.ehlo()
            for address in hostile_addresses(tmp_path):
                if "\r" in address or "\n" in address:
                    continue  # cannot be said in SMTP at all (the unit tests cover it)
                smtp.rset()
                smtp.command_encoding = "utf-8"  # rset() puts it back to ascii
                code, _ = smtp.docmd("MAIL", "FROM:<s@example.com> SMTPUTF8")
                assert code == 250
                code, _ = smtp.docmd("RCPT", f"TO:<{address}>")
                if code != 250:
                    continue
                code, _ = smtp.docmd("DATA")
                assert code == 354
                smtp.send(f"Subject: hostile {len(accepted)}\r\n\r\nx\r\n.\r\n".encode())
                code, _ = smtp.getreply()
                assert code == 250
                accepted.append(address)
        flush(server, dispatcher)
    assert len(accepted) >= 15, accepted  # most of them are syntactically fine SMTP
    assert any("../" in a for a in accepted) and any(a.startswith("/") for a in accepted)
    assert {p for p in files_under(tmp_path) if root not in p.parents} == set()
    assert len(mailbox.mbox(root / "mail.mbox", create=False)) == len(accepted)
    assert len([p for p in files_under(root / "mh") if p.name.isdigit()]) == len(accepted)
    assert len([p for p in files_under(root / "maildir") if p.parent.name == "new"]) == len(accepted)


def test_outputs_off_means_no_files_and_no_dispatcher_work(tmp_path: Path) -> None:
    with ServerThread(Config()) as server:
        send(server)
        dispatcher = getattr(server.server, "outputs", None)
        assert dispatcher is None or not dispatcher.enabled
    assert list(tmp_path.iterdir()) == []
