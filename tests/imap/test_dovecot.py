"""mailnest's IMAP answers against Dovecot's for the whole test corpus: FETCH (every item, every part),
SEARCH and STATUS. See compare.py for how bare-LF messages are compared."""

from __future__ import annotations

import imaplib
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mailnest.config import Config, Listen
from mailnest.runtime import ServerThread

from ..conftest import IN_CI
from . import compare
from .conftest import start_server
from .corpus_loader import corpus_messages
from .dovecot import Dovecot, dovecot_available
from .wire import raw

if not dovecot_available():
    if IN_CI:
        pytest.fail("Dovecot (/usr/lib/dovecot/imap) is required in CI", pytrace=False)
    pytest.skip("Dovecot is not installed", allow_module_level=True)


@dataclass
class Pair:
    messages: list[bytes]
    mailnest: imaplib.IMAP4
    dovecot: imaplib.IMAP4_stream


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    messages = corpus_messages()
    server: ServerThread = start_server(Config(http=None, imap=Listen("127.0.0.1", 0)))
    dovecot = Dovecot()
    try:
        with dovecot.session() as loader:
            compare.load(loader, "INBOX", messages)
        loader = imaplib.IMAP4("127.0.0.1", server.imap_port)
        loader.login("*", "x")
        raw(loader, "CREATE CRLF")
        compare.load(loader, "INBOX", messages)
        compare.load(loader, "CRLF", [compare.crlf(m) for m in messages])
        loader.logout()
        ours = imaplib.IMAP4("127.0.0.1", server.imap_port)
        ours.login("*", "x")
        theirs = dovecot.client()
        yield Pair(messages, ours, theirs)
        ours.logout()
        theirs.logout()
    finally:
        server.stop()
        dovecot.close()


def _report(mismatches: list[compare.Mismatch]) -> str:
    return f"{len(mismatches)} answer(s) differ from Dovecot's:\n" + "\n".join(str(m) for m in mismatches[:15])


def _questions(message: bytes) -> list[str]:
    return [*compare.MESSAGE_ITEMS, *compare.section_items(compare.crlf(message))]


def test_fetch_crlf_folder_matches_dovecot_byte_for_byte(pair: Pair) -> None:
    raw(pair.mailnest, "EXAMINE CRLF")
    raw(pair.dovecot, "EXAMINE INBOX")
    mismatches = []
    for n, message in enumerate(pair.messages, start=1):
        for item in _questions(message):
            if "UID" in item:
                continue  # the CRLF copies have other UIDs; UIDs are compared on INBOX
            question = f"FETCH {n} {item if item.startswith('(') or item in ('ALL', 'FAST', 'FULL') else f'({item})'}"
            ours, theirs = compare.fetch_lines(pair.mailnest, question), compare.fetch_lines(pair.dovecot, question)
            if ours != theirs:
                mismatches.append(compare.Mismatch(n, question, ours, theirs))
    assert not mismatches, _report(mismatches)


def test_fetch_inbox_matches_dovecot_apart_from_bare_lf(pair: Pair) -> None:
    """As received: identical for CRLF messages; for bare-LF ones the literals hold the stored bytes."""
    raw(pair.mailnest, "EXAMINE INBOX")
    raw(pair.dovecot, "EXAMINE INBOX")
    mismatches = []
    for n, message in enumerate(pair.messages, start=1):
        bare_lf = compare.crlf(message) != message
        for item in _questions(message):
            if bare_lf and (item in compare.SIZE_ITEMS or item.startswith("(ENVELOPE") or "<" in item):
                continue  # sizes and byte ranges of bare-LF messages count stored bytes (documented difference)
            question = f"UID FETCH {n} {item if item.startswith('(') or item in ('ALL', 'FAST', 'FULL') else f'({item})'}"
            ours, theirs = compare.fetch_lines(pair.mailnest, question), compare.fetch_lines(pair.dovecot, question)
            if bare_lf:
                ours = compare.crlf_literals(ours)
            if ours != theirs:
                mismatches.append(compare.Mismatch(n, question, ours, theirs))
        whole = compare.fetch_lines(pair.mailnest, f"FETCH {n} (BODY.PEEK[])")
        served = message.replace(b"\0", b"\x80")  # literals cannot carry NUL (documented, as Dovecot)
        assert whole.endswith(b"{%d}\r\n" % len(message) + served + b")\r\n"), f"message {n} not served as stored"
    assert not mismatches, _report(mismatches)


def test_fetch_that_sets_seen_matches_dovecot(pair: Pair) -> None:
    raw(pair.mailnest, "SELECT CRLF")
    raw(pair.dovecot, "SELECT INBOX")
    mismatches = []
    for n, _message in enumerate(pair.messages, start=1):
        for item in compare.SEEN_ITEMS:
            question = f"FETCH {n} ({item} FLAGS)" if item == "BODY[]" else f"FETCH {n} ({item})"
            ours, theirs = compare.fetch_lines(pair.mailnest, question), compare.fetch_lines(pair.dovecot, question)
            if ours != theirs:
                mismatches.append(compare.Mismatch(n, question, ours, theirs))
    for question in ("FETCH 1:* (FLAGS)", "STORE 1:2 -FLAGS (\\Seen)", "STORE 2 +FLAGS (\\Flagged $Work)",
                     "FETCH 1:* (FLAGS)", "STORE 1:* -FLAGS.SILENT (\\Seen \\Flagged $Work)"):
        ours, theirs = compare.fetch_lines(pair.mailnest, question), compare.fetch_lines(pair.dovecot, question)
        if ours != theirs:
            mismatches.append(compare.Mismatch(0, question, ours, theirs))
    assert not mismatches, _report(mismatches)


def _utf8(key: str, text: str) -> bytes:
    """A search key with a UTF-8 string sent as a LITERAL+ literal."""
    data = text.encode()
    return b"CHARSET UTF-8 " + key.encode() + b" {%d+}\r\n" % len(data) + data


SEARCHES: tuple[str | bytes, ...] = (
    "ALL", "SEEN", "UNSEEN", "NEW", "OLD", "RECENT", "ANSWERED", "UNANSWERED", "DELETED", "UNDELETED", "DRAFT",
    "FLAGGED", "UNFLAGGED", "KEYWORD $Work", "UNKEYWORD $Work", "1:3", "2,4:*", "*", "OR OR 1 2 3", "NOT 1:2",
    'FROM "alice"', 'FROM "Alice Example"', 'FROM "juergen@example.de"', 'FROM "robot"', 'FROM "<news@"',
    _utf8("FROM", "Müller"), _utf8("FROM", "jürgen"), 'TO "bob"', 'TO "yamada"', 'TO "Project Team"',
    'TO "Dana Diaz"', 'TO "ben"', _utf8("TO", "François"), _utf8("TO", "zoë"), 'CC "Reviewer"', 'CC "dave"',
    'CC "undisclosed"', 'BCC "anyone"', 'SUBJECT "report"', 'SUBJECT "fwd:"', 'SUBJECT "second subject"',
    'SUBJECT "first subject"', 'SUBJECT "  lunch"', _utf8("SUBJECT", "grüße"), _utf8("SUBJECT", "CAFÉ ☕"),
    'SUBJECT "cafe"', 'SUBJECT ""', 'HEADER Message-ID ""', 'HEADER Message-ID "dup-headers"',
    'HEADER Content-Type "multipart/mixed"', 'HEADER X-Tags "beta"', 'HEADER X-Nothing ""',
    'HEADER Subject "=?utf-8"', 'HEADER MIME-Version 1.0', 'BODY "lunch"', 'BODY "friday"',
    'BODY "export is attached"', 'BODY "junk"', 'BODY "ok"', 'TEXT "Lunch on Friday"', 'TEXT "export.bin"',
    'TEXT "content-disposition"', 'TEXT "first post"', 'BODY "first post"', _utf8("BODY", "café"),
    "LARGER 1000", "SMALLER 400", "LARGER 5000000", "SENTON 5-Mar-2024", "SENTON 6-Mar-2024",
    "SENTSINCE 10-Mar-2024", "SENTBEFORE 8-Mar-2024", "SINCE 1-Jan-2024", "BEFORE 1-Jan-2024",
    "ON 1-Jan-2024", "SINCE 9-Jan-2024", "BEFORE 5-Feb-2024", "ON 4-Jan-2024", "ON 3-Feb-2024", 'OR FROM "alice" TO "alice"', 'NOT FROM "example.com"',
    'OR (SEEN FLAGGED) NOT SUBJECT "x"', '(SINCE 1-Jan-2020 LARGER 100) NOT BODY "zzz"',
)


def test_search_matches_dovecot(pair: Pair) -> None:
    raw(pair.mailnest, "SELECT CRLF")
    raw(pair.dovecot, "SELECT INBOX")
    for question in ("STORE 2 +FLAGS (\\Flagged $Work)", "STORE 1 +FLAGS (\\Answered \\Seen)",
                     "STORE 3 +FLAGS (\\Draft \\Deleted)"):
        raw(pair.mailnest, question)
        raw(pair.dovecot, question)
    mismatches = []
    for key in SEARCHES:
        question = b"SEARCH " + (key if isinstance(key, bytes) else key.encode())
        ours, theirs = compare.search_line(pair.mailnest, question), compare.search_line(pair.dovecot, question)
        if ours != theirs:
            mismatches.append(compare.Mismatch(0, question, ours, theirs))
    # UIDs: the INBOX copies have the same UIDs in both servers
    raw(pair.mailnest, "EXAMINE INBOX")
    raw(pair.dovecot, "EXAMINE INBOX")
    for key in ("UID 1:2", "UID 3:*", "UID 2,4", "NOT UID 1", 'UID 1:* FROM "joe"'):
        for question in (f"SEARCH {key}", f"UID SEARCH {key}"):
            ours, theirs = compare.search_line(pair.mailnest, question), compare.search_line(pair.dovecot, question)
            if ours != theirs:
                mismatches.append(compare.Mismatch(0, question, ours, theirs))
    assert not mismatches, _report(mismatches)


def test_status_matches_dovecot(pair: Pair) -> None:
    raw(pair.mailnest, "UNSELECT")
    raw(pair.dovecot, "UNSELECT")
    ours, done = raw(pair.mailnest, "STATUS CRLF (MESSAGES RECENT UNSEEN)")
    theirs, _ = raw(pair.dovecot, "STATUS INBOX (MESSAGES RECENT UNSEEN)")
    assert b" OK " in done
    assert [r.replace(b"CRLF", b"INBOX") for r in ours] == theirs
