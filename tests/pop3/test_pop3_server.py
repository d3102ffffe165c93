"""POP3 end to end: poplib (and a raw socket for bad input) against a running mailnest."""

from __future__ import annotations

import asyncio
import poplib
import re
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mailnest.config import Config, Listen
from mailnest.events import Hub
from mailnest.pop3.server import start_pop3
from mailnest.store.sqlite import SQLiteStore
from tests.conftest import require_tool

from .helpers import Mailnest, RawPOP3

CORPUS_DIR = Path(__file__).resolve().parents[1] / "corpus"
CORPUS = sorted(p for p in CORPUS_DIR.rglob("*.eml") if p.is_file())
assert len(CORPUS) >= 16, CORPUS_DIR  # an empty list would skip the corpus test silently, in CI too

PLAIN = (b"From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: plain\r\n"
         b"Message-ID: <plain@example.com>\r\n\r\nHello Bob.\r\nSecond line.\r\n")
# Stored as an import would store it: bare LFs, dot lines, no final line end.
BARE_LF_DOTS = (b"From: carol@example.com\nTo: dave@example.com\nSubject: dots\n\n"
                b".starts with a dot\n..two dots\n.\nlast line without end")
MIXED = (b"From: eve@example.com\r\nTo: frank@example.com\nSubject: mixed\r\n\r\n"
         b"crlf line\r\nlf line\n\r\nafter an empty line\r\n")
HEADERS_ONLY = b"From: g@example.com\r\nSubject: no body\r\n"
OWN_MESSAGES = {"plain": PLAIN, "bare_lf_dots": BARE_LF_DOTS, "mixed": MIXED, "headers_only": HEADERS_ONLY}


def expected_lines(raw: bytes) -> list[bytes]:
    """What a POP3 client should read back: the message's lines, whatever their stored line ends."""
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def octets(lines: list[bytes]) -> int:
    return sum(len(line) + 2 for line in lines)


def test_greeting_capa_and_login(mailnest: Mailnest) -> None:
    client = poplib.POP3("127.0.0.1", mailnest.pop3_port, timeout=10)
    welcome = client.getwelcome()
    assert welcome.startswith(b"+OK")
    assert re.search(rb"<[^<>@]+@mailnest>$", welcome), welcome
    capa = client.capa()
    for name in ("TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING"):
        assert name in capa
    assert client.user("anyone@example.com").startswith(b"+OK")
    assert client.pass_("any password at all").startswith(b"+OK")
    assert client.stat() == (0, 0)
    assert "TOP" in client.capa()  # CAPA is allowed in TRANSACTION too
    assert client.noop().startswith(b"+OK")
    assert client.quit().startswith(b"+OK")


def test_mailbox_login_sees_its_recipients_mail_and_catch_all_sees_everything(mailnest: Mailnest) -> None:
    mailnest.send(PLAIN, ["bob@example.com"])
    mailnest.send(MIXED, ["frank@example.com", "Bob@Example.com"])
    mailnest.send(HEADERS_ONLY, ["someone@else.example"])

    bob = mailnest.pop("BOB@example.com")
    assert bob.stat()[0] == 2
    bob.quit()
    frank = mailnest.pop("frank@example.com")
    assert frank.stat()[0] == 1
    assert frank.retr(1)[1] == expected_lines(MIXED)
    frank.quit()
    nobody = mailnest.pop("nobody@example.com")
    assert nobody.stat() == (0, 0)
    assert nobody.list()[1] == []
    nobody.quit()
    everything = mailnest.pop("*")
    assert everything.stat()[0] == 3
    everything.quit()


@pytest.mark.parametrize("name", sorted(OWN_MESSAGES))
def test_retr_is_byte_exact_and_sizes_match_what_retr_sends(mailnest: Mailnest, name: str) -> None:
    raw = OWN_MESSAGES[name]
    mailnest.add(raw)
    client = mailnest.pop()
    want = expected_lines(raw)
    response, lines, size = client.retr(1)
    assert lines == want
    assert size == octets(want)
    assert client.list(1) == f"+OK 1 {octets(want)}".encode()
    assert client.list()[1] == [f"1 {octets(want)}".encode()]
    assert client.stat() == (1, octets(want))
    assert response.startswith(b"+OK")
    client.quit()


def test_dot_stuffing_on_the_wire(mailnest: Mailnest) -> None:
    mailnest.add(BARE_LF_DOTS)
    raw = RawPOP3(mailnest.pop3_port)
    assert raw.cmd(b"USER *").startswith(b"+OK")
    assert raw.cmd(b"PASS x").startswith(b"+OK")
    assert raw.cmd(b"RETR 1").startswith(b"+OK")
    body = raw.multiline()
    assert b"...\r\n" not in body
    assert b"..starts with a dot\r\n" in body
    assert b"...two dots\r\n" in body
    assert b"..\r\n" in body
    assert body[-1] == b"last line without end\r\n"
    assert all(line.endswith(b"\r\n") and b"\n" not in line[:-1] for line in body)
    raw.close()


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_retr_corpus_messages(mailnest: Mailnest, path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = path.read_bytes()
    # poplib refuses lines over 2048 octets; some corpus messages have longer (unwrapped) lines on purpose.
    monkeypatch.setattr(poplib, "_MAXLINE", max(2048, len(raw) + 2))
    mailnest.add(raw)
    client = mailnest.pop()
    _, lines, size = client.retr(1)
    want = expected_lines(raw)
    assert lines == want
    assert size == octets(want) == client.stat()[1]
    client.quit()


def test_top(mailnest: Mailnest) -> None:
    mailnest.add(MIXED)
    mailnest.add(HEADERS_ONLY)
    client = mailnest.pop()
    head = [b"From: eve@example.com", b"To: frank@example.com", b"Subject: mixed", b""]
    assert client.top(1, 0)[1] == head
    assert client.top(1, 1)[1] == [*head, b"crlf line"]
    assert client.top(1, 3)[1] == [*head, b"crlf line", b"lf line", b""]
    assert client.top(1, 100)[1] == expected_lines(MIXED)
    assert client.top(2, 5)[1] == expected_lines(HEADERS_ONLY)
    client.quit()


def test_uidl_is_the_store_id_and_stable_across_sessions(mailnest: Mailnest) -> None:
    first = mailnest.add(PLAIN)
    second = mailnest.add(MIXED)
    client = mailnest.pop()
    listing = client.uidl()[1]
    assert listing == [f"1 {first.id}".encode(), f"2 {second.id}".encode()]
    assert client.uidl(2) == f"+OK 2 {second.id}".encode()
    assert all(0x21 <= c <= 0x7E for c in first.id.encode()) and 1 <= len(first.id) <= 70
    client.dele(1)
    assert client.uidl()[1] == [f"2 {second.id}".encode()]
    client.quit()
    again = mailnest.pop()
    assert again.uidl()[1] == [f"1 {second.id}".encode()]
    again.quit()


def test_dele_marks_and_quit_deletes(mailnest: Mailnest) -> None:
    for raw in (PLAIN, MIXED, HEADERS_ONLY):
        mailnest.add(raw)
    client = mailnest.pop()
    size_of_2 = int(client.list(2).split()[2])
    total = client.stat()[1]
    assert client.dele(2).startswith(b"+OK")
    assert client.stat() == (2, total - size_of_2)
    assert [line.split()[0] for line in client.list()[1]] == [b"1", b"3"]
    for attempt in (lambda: client.retr(2), lambda: client.list(2), lambda: client.dele(2),
                    lambda: client.top(2, 0), lambda: client.uidl(2)):
        with pytest.raises(poplib.error_proto, match="deleted"):
            attempt()
    # Not deleted from the store until QUIT
    assert mailnest.thread.call(mailnest.thread.store.count()) == 3
    assert client.quit().startswith(b"+OK")
    remaining = mailnest.thread.call(mailnest.thread.store.list())
    assert [m.subject for m in reversed(remaining.messages)] == ["plain", "no body"]


def test_rset_unmarks_and_a_dropped_connection_deletes_nothing(mailnest: Mailnest) -> None:
    mailnest.add(PLAIN)
    mailnest.add(MIXED)
    client = mailnest.pop()
    client.dele(1)
    client.dele(2)
    assert client.stat()[0] == 0
    assert client.rset().startswith(b"+OK")
    assert client.stat()[0] == 2
    client.dele(1)
    client.close()  # no QUIT: RFC 1939 says no UPDATE state
    time.sleep(0.1)
    assert mailnest.thread.call(mailnest.thread.store.count()) == 2


def test_apop(mailnest: Mailnest) -> None:
    mailnest.add(PLAIN, ("bob@example.com",))
    client = poplib.POP3("127.0.0.1", mailnest.pop3_port, timeout=10)
    timestamp = re.search(rb"<[^>]+>", client.getwelcome())
    assert timestamp is not None
    assert client.apop("bob@example.com", "whatever").startswith(b"+OK")
    assert client.stat()[0] == 1
    client.quit()
    # The timestamp differs per connection, so digests cannot be replayed.
    other = poplib.POP3("127.0.0.1", mailnest.pop3_port, timeout=10)
    again = re.search(rb"<[^>]+>", other.getwelcome())
    assert again is not None and again.group() != timestamp.group()
    with pytest.raises(poplib.error_proto, match="hexadecimal"):
        other._shortcmd("APOP bob@example.com not-a-digest")
    other.quit()


def test_snapshot_while_smtp_delivers(mailnest: Mailnest) -> None:
    mailnest.send(PLAIN, ["bob@example.com"])
    client = mailnest.pop("bob@example.com")
    assert client.stat()[0] == 1
    for _ in range(3):
        mailnest.send(MIXED, ["bob@example.com"])
    # The maildrop is the login-time snapshot: numbers and counts do not move.
    assert client.stat()[0] == 1
    assert len(client.list()[1]) == 1
    with pytest.raises(poplib.error_proto, match="no such message"):
        client.retr(2)
    assert client.retr(1)[1] == expected_lines(PLAIN)
    client.dele(1)
    client.quit()
    fresh = mailnest.pop("bob@example.com")
    assert fresh.stat()[0] == 3
    fresh.quit()


def test_message_deleted_elsewhere_during_session(mailnest: Mailnest) -> None:
    gone = mailnest.add(PLAIN)
    mailnest.add(MIXED)
    client = mailnest.pop()
    mailnest.thread.call(mailnest.thread.store.delete([gone.id]))
    with pytest.raises(poplib.error_proto, match="deleted by another client"):
        client.retr(1)
    assert client.retr(2)[1] == expected_lines(MIXED)
    client.dele(1)
    assert client.quit().startswith(b"+OK")


def test_bad_input_gets_err_and_the_session_continues(mailnest: Mailnest) -> None:
    mailnest.add(PLAIN)
    raw = RawPOP3(mailnest.pop3_port)
    assert raw.greeting.startswith(b"+OK")
    assert raw.cmd(b"FROB").startswith(b"-ERR unknown command")
    assert raw.cmd(b"").startswith(b"-ERR")
    assert raw.cmd(b"\xff\xfe\x00 garbage").startswith(b"-ERR")
    assert raw.cmd(b"STAT").startswith(b"-ERR STAT is not allowed before login")
    assert raw.cmd(b"PASS secret").startswith(b"-ERR send USER first")
    assert raw.cmd(b"USER *").startswith(b"+OK")
    assert raw.cmd(b"USER * extra").startswith(b"-ERR")
    raw.send(b"X" * 100_000 + b"\r\n")
    assert raw.line().startswith(b"-ERR line too long")
    assert raw.cmd(b"user *").startswith(b"+OK")  # keywords are case-insensitive
    assert raw.cmd(b"pass two words").startswith(b"+OK")
    assert raw.cmd(b"USER again").startswith(b"-ERR USER is not allowed after login")
    for bad in (b"RETR 0", b"RETR 2", b"RETR -1", b"RETR abc", b"RETR 1.5", b"LIST 99999999999",
                b"TOP 1", b"TOP 1 x", b"TOP 1 -1", b"DELE", b"STAT 1", b"RETR 1 2"):
        assert raw.cmd(bad).startswith(b"-ERR"), bad
    assert raw.cmd(b"STAT").startswith(b"+OK 1 ")
    assert raw.cmd(b"QUIT").startswith(b"+OK")
    assert raw.line() == b""  # closed after QUIT
    raw.close()


def test_pipelined_commands(mailnest: Mailnest) -> None:
    mailnest.add(PLAIN)
    raw = RawPOP3(mailnest.pop3_port)
    raw.send(b"USER *\r\nPASS x\r\nSTAT\r\nLIST\r\nRETR 1\r\nNOOP\r\nQUIT\r\n")
    assert raw.line().startswith(b"+OK")
    assert raw.line().startswith(b"+OK")
    assert raw.line() == f"+OK 1 {len(PLAIN)}\r\n".encode()
    assert raw.line().startswith(b"+OK")
    assert raw.multiline() == [f"1 {len(PLAIN)}\r\n".encode()]
    assert raw.line().startswith(b"+OK")
    assert b"".join(raw.multiline()) == PLAIN
    assert raw.line() == b"+OK\r\n"
    assert raw.line().startswith(b"+OK")
    raw.close()


def test_lf_only_client_lines_are_accepted(mailnest: Mailnest) -> None:
    raw = RawPOP3(mailnest.pop3_port)
    raw.send(b"USER *\nPASS x\nSTAT\n")
    assert [raw.line()[:3] for _ in range(3)] == [b"+OK"] * 3
    raw.close()


def test_idle_timeout_disconnects_without_update(make_mailnest: Callable[..., Mailnest]) -> None:
    mailnest = make_mailnest(idle_timeout=0.3)
    mailnest.add(PLAIN)
    raw = RawPOP3(mailnest.pop3_port)
    raw.cmd(b"USER *")
    raw.cmd(b"PASS x")
    assert raw.cmd(b"DELE 1").startswith(b"+OK")
    started = time.monotonic()
    assert raw.line().startswith(b"-ERR disconnected for inactivity")
    assert raw.line() == b""
    assert time.monotonic() - started < 5
    raw.close()
    assert mailnest.thread.call(mailnest.thread.store.count()) == 1


def test_stopping_the_server_ends_open_sessions(make_mailnest: Callable[..., Mailnest]) -> None:
    mailnest = make_mailnest()
    client = mailnest.pop()
    started = time.monotonic()
    mailnest.thread.stop()
    assert time.monotonic() - started < 4
    with pytest.raises((poplib.error_proto, OSError)):
        client.stat()


def test_closing_the_listener_ends_open_sessions(tmp_path: Path) -> None:
    async def scenario() -> bytes:
        hub = Hub()
        store = SQLiteStore(tmp_path / "mail.db", hub)
        await store.start()
        listen = Listen("127.0.0.1", 0)
        server = await start_pop3(Config(pop3=listen), store, hub, listen)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
        await reader.readline()
        writer.write(b"USER *\r\nPASS x\r\n")
        await reader.readline()
        await reader.readline()
        server.close()
        await asyncio.wait_for(server.wait_closed(), 2)
        try:
            rest = await asyncio.wait_for(reader.read(), 2)
        finally:
            writer.close()
            await store.close()
        return rest

    assert asyncio.run(scenario()) == b""


def test_curl_as_a_real_client(mailnest: Mailnest) -> None:
    curl = require_tool("curl")
    mailnest.add(PLAIN, ("bob@example.com",))
    mailnest.add(BARE_LF_DOTS, ("bob@example.com",))
    base = f"pop3://127.0.0.1:{mailnest.pop3_port}"

    def run(*args: str) -> bytes:
        done = subprocess.run([curl, "-sS", "--max-time", "10", "-u", "bob@example.com:pw", *args],
                              capture_output=True, timeout=20, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    sizes = [octets(expected_lines(raw)) for raw in (PLAIN, BARE_LF_DOTS)]
    assert run(base + "/") == f"1 {sizes[0]}\r\n2 {sizes[1]}\r\n".encode()
    assert run(base + "/2") == b"\r\n".join(expected_lines(BARE_LF_DOTS)) + b"\r\n"
    uidl = run("-X", "UIDL", base + "/")
    assert uidl.count(b"\r\n") == 2
    assert run("-X", "DELE 1", "-I", base + "/") == b""
    assert mailnest.thread.call(mailnest.thread.store.count(mailbox="bob@example.com")) == 1
