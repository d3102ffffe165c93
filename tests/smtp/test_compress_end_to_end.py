"""--compress end to end, on both backends: a message sent with smtplib is stored as one zstd frame and read back
exactly through every front door a user has: the HTTP API (/raw, the message JSON, MailHog's API), IMAP
(imaplib: the whole message and its partial fetches, RFC822.SIZE) and POP3 (poplib: LIST, RETR, TOP), and
`mailnest dump --db`. A database written without the flag is read the same with it on, and the reverse."""

from __future__ import annotations

import contextlib
import imaplib
import poplib
import re
import smtplib
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import Listen
from tests.pgcluster import postgres_server  # noqa: F401  (the throwaway PostgreSQL server)
from tests.test_cli import MAILNEST

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
READER = "reader@example.com"
HTML = ("<html><body><p>The <b>html</b> part, line %d: caf\u00e9 and cr\u00e8me.</p></body></html>\r\n" * 400
        ).encode()[:-2]
TEXT = b"".join(b"The plain part, line %d: the quick brown fox jumps over the lazy dog.\r\n" % n
                for n in range(1500))
HEADER = (b"From: Sender <sender@example.com>\r\nTo: " + READER.encode() + b"\r\nSubject: compressed at rest\r\n"
          b"Message-ID: <compressed@example.com>\r\nMIME-Version: 1.0\r\n"
          b"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n")
BODY = (b"preamble\r\n--outer\r\nContent-Type: multipart/alternative; boundary=\"inner\"\r\n\r\n"
        b"--inner\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + TEXT + b"\r\n"
        b"--inner\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + HTML +
        b"\r\n--inner--\r\n--outer\r\nContent-Type: text/csv; name=\"data.csv\"\r\n"
        b"Content-Disposition: attachment; filename=\"data.csv\"\r\n\r\n" +
        b"".join(b"%d,%d,zeppelin\r\n" % (n, n * n) for n in range(2000)) + b"--outer--\r\n")
MESSAGE = HEADER + BODY

Start = Callable[..., ServerThread]


@pytest.fixture(params=["sqlite", "postgres"])
def start(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Start]:
    """`start(compress=...)` a server with SMTP, HTTP, IMAP and POP3 on the test's database (the same one on every
    call, so a later call reopens what an earlier one wrote); `start.db` is that database."""
    started: list[ServerThread] = []
    db: Path | str = (tmp_path / "mail.db" if request.param == "sqlite"
                      else request.getfixturevalue("postgres_server").create_database())

    def run(**options: Any) -> ServerThread:
        for server in started:  # one server on the database at a time
            server.__exit__(None, None, None)
        started.clear()
        server = ServerThread(Config(db=db, imap=Listen("127.0.0.1", 0), pop3=Listen("127.0.0.1", 0), **options))
        server.__enter__()
        started.append(server)
        return server

    run.db = db  # type: ignore[attr-defined]
    yield run
    for server in started:
        server.__exit__(None, None, None)


def send(server: ServerThread, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.smtp_port) as client:
        client.sendmail("sender@example.com", [READER], raw)


def stored_rows(db: Path | str) -> list[tuple[bytes, int]]:
    """(bodies.raw, bodies.raw_codec) of every row, oldest first, read from the database itself."""
    if isinstance(db, Path):
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return [(bytes(r), int(c)) for r, c in conn.execute("SELECT raw, raw_codec FROM bodies ORDER BY uid")]
    import psycopg

    with psycopg.connect(db) as conn:
        return [(bytes(r), int(c)) for r, c in conn.execute("SELECT raw, raw_codec FROM mailnest.bodies ORDER BY uid")]


def literal(data: list[Any]) -> bytes:
    assert isinstance(data[0], tuple), data
    return bytes(data[0][1])


def assert_every_door_reads(server: ServerThread, sent: list[bytes]) -> None:
    """Each of `sent` (oldest first) reads back exactly over HTTP, MailHog's API, IMAP and POP3."""
    with httpx.Client(base_url=server.http_url, timeout=30) as api:
        listed = list(reversed(api.get("/api/v1/messages").json()["messages"]))
        assert len(listed) == len(sent)
        for summary, raw in zip(listed, sent, strict=True):
            assert api.get(f"/api/v1/message/{summary['ID']}/raw").content == raw
            message = api.get(f"/api/v1/message/{summary['ID']}").json()
            assert message["Size"] == summary["Size"] == len(raw)
        mailhog = api.get("/api/v2/messages").json()["items"]
        assert sorted(item["Raw"]["Data"].encode() for item in mailhog) == sorted(sent)
        assert api.get("/api/v1/info").json()["Messages"] == len(sent)

    imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    try:
        imap.login(READER, "pw")
        imap.select("INBOX", readonly=True)
        uids = imap.uid("SEARCH", "ALL")[1][0].split()
        assert len(uids) == len(sent)
        for uid, raw in zip(uids, sent, strict=True):
            end = raw.index(b"\r\n\r\n") + 4
            assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[])")[1]) == raw
            assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[HEADER])")[1]) == raw[:end]
            assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[TEXT])")[1]) == raw[end:]
            assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[]<1000.5000>)")[1]) == raw[1000:6000]
            assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")[1]).startswith(b"Subject:")
            size = imap.uid("FETCH", uid, "(RFC822.SIZE)")[1][0]
            assert int(re.search(rb"RFC822\.SIZE (\d+)", size).group(1)) == len(raw)  # type: ignore[union-attr]
            if raw == MESSAGE:
                assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[1.2])")[1]) == HTML
                assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[1.1]<0.100>)")[1]) == TEXT[:100]
    finally:
        imap.logout()

    pop = poplib.POP3("127.0.0.1", server.pop3_port, timeout=30)
    try:
        pop.user(READER)
        pop.pass_("pw")
        sizes = [int(line.split()[1]) for line in pop.list()[1]]
        assert sizes == [len(raw) for raw in sent]
        for number, raw in enumerate(sent, start=1):
            assert b"\r\n".join(pop.retr(number)[1]) + b"\r\n" == raw
            head = raw[:raw.index(b"\r\n\r\n")]
            assert b"\r\n".join(pop.top(number, 2)[1]) == head + b"\r\n\r\n" + b"\r\n".join(raw.split(b"\r\n\r\n", 1)
                                                                                          [1].split(b"\r\n")[:2])
    finally:
        pop.quit()


def test_a_compressed_message_reads_back_exactly_through_every_front_door(start: Start, tmp_path: Path) -> None:
    server = start(compress=True)
    send(server, MESSAGE)
    assert_every_door_reads(server, [MESSAGE])
    (column, codec), = stored_rows(start.db)  # type: ignore[attr-defined]
    assert codec == 1 and column.startswith(ZSTD_MAGIC) and len(column) < len(MESSAGE) / 3
    with httpx.Client(base_url=server.http_url, timeout=30) as api:
        found = api.get("/api/v1/search", params={"query": "crème"}).json()["messages"]
        assert [m["Subject"] for m in found] == ["compressed at rest"]
    if isinstance(start.db, Path):  # type: ignore[attr-defined]
        out = tmp_path / "out"
        result = subprocess.run([*MAILNEST, "dump", str(out), "--db", str(start.db)],  # type: ignore[attr-defined]
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert [path.read_bytes() for path in out.iterdir()] == [MESSAGE]


def test_a_database_written_with_and_without_the_flag_reads_the_same(start: Start) -> None:
    plain = MESSAGE.replace(b"compressed at rest", b"written without the flag")
    send(start(compress=False), plain)
    server = start(compress=True)
    send(server, MESSAGE)
    assert_every_door_reads(server, [plain, MESSAGE])
    assert [codec for _, codec in stored_rows(start.db)] == [0, 1]  # type: ignore[attr-defined]
    assert_every_door_reads(start(compress=False), [plain, MESSAGE])


def test_a_message_sent_starting_with_the_zstd_magic_is_kept_as_sent(start: Start) -> None:
    """Nothing in a message's bytes is taken for a marker: one whose DATA starts with the zstd magic, stored with
    the flag off, reads back as sent once the flag is on."""
    hostile = ZSTD_MAGIC + b" not a frame\r\n" + MESSAGE
    send(start(compress=False), hostile)
    assert stored_rows(start.db) == [(hostile, 0)]  # type: ignore[attr-defined]
    server = start(compress=True)
    with httpx.Client(base_url=server.http_url, timeout=30) as api:
        (summary,) = api.get("/api/v1/messages").json()["messages"]
        assert api.get(f"/api/v1/message/{summary['ID']}/raw").content == hostile
        assert summary["Size"] == len(hostile)
    imap = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    try:
        imap.login(READER, "pw")
        imap.select("INBOX", readonly=True)
        (uid,) = imap.uid("SEARCH", "ALL")[1][0].split()
        assert literal(imap.uid("FETCH", uid, "(BODY.PEEK[])")[1]) == hostile
    finally:
        imap.logout()
    pop = poplib.POP3("127.0.0.1", server.pop3_port, timeout=30)
    try:
        pop.user(READER)
        pop.pass_("pw")
        assert b"\r\n".join(pop.retr(1)[1]) + b"\r\n" == hostile
    finally:
        pop.quit()
