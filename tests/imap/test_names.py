"""Mailbox names over real sockets, in the style of Dovecot's imaptest: atoms with `[` and `]`, modified UTF-7
in LIST/LSUB patterns, and LSUB's \\Noselect parents. Each script runs against mailnest and, when installed,
against Dovecot (the reference); the answers must be the same, and must be what the RFC says."""

from __future__ import annotations

import imaplib
import re
import time
from collections.abc import Callable, Iterator

import pytest
from imapclient import IMAPClient

from mailnest.imap import listing
from mailnest.runtime import ServerThread

from ..conftest import IN_CI
from .dovecot import Dovecot, dovecot_available
from .helpers import login
from .wire import append, raw

Answer = tuple[str, list[bytes]]
# Untagged answers that both servers give the same way (SELECT's UIDVALIDITY, for one, cannot match).
_COMPARED = re.compile(rb"\* (LIST|LSUB|STATUS) ")


def _answers(client: imaplib.IMAP4, script: list[str]) -> list[Answer]:
    """For each command: its tagged status word and its comparable untagged lines, sorted (order is free)."""
    out = []
    for command in script:
        untagged, done = raw(client, command)
        out.append((done.split(b" ")[1].decode(), sorted(u for u in untagged if _COMPARED.match(u))))
    return out


@pytest.fixture
def reference() -> Iterator[Callable[[list[str]], list[Answer]] | None]:
    """Runs a script on a fresh Dovecot; None when Dovecot is not installed (outside CI)."""
    if not dovecot_available():
        if IN_CI:
            pytest.fail("Dovecot (/usr/lib/dovecot/imap) is required in CI", pytrace=False)
        yield None
        return
    dovecot = Dovecot()

    def run(script: list[str]) -> list[Answer]:
        with dovecot.session() as client:
            return _answers(client, script)

    try:
        yield run
    finally:
        dovecot.close()


def _run_both(server: ServerThread, reference: Callable[[list[str]], list[Answer]] | None,
              script: list[str]) -> list[Answer]:
    client = login(server, "names@example.com")
    try:
        ours = _answers(client, script)
    finally:
        client.logout()
    if reference is not None:
        theirs = reference(script)
        differences = [f"{cmd}\n  mailnest: {o}\n  dovecot:  {t}"
                       for cmd, o, t in zip(script, ours, theirs, strict=True) if o != t]
        assert not differences, "answers differ from Dovecot's:\n" + "\n".join(differences)
    return ours


# -- atoms: `[` and `]` are ordinary characters of an unquoted mailbox name ------------------------------------

ATOM_SCRIPT = [
    "CREATE [Gmail]",
    "CREATE [Gmail]/Sent",
    "SELECT [Gmail]/Sent",
    "EXAMINE [Gmail]",
    "STATUS [Gmail]/Sent (MESSAGES)",
    'LIST "" [Gmail]/%',
    'LIST "" [Gmail]*',
    "CREATE a]b",
    "CREATE x[y",
    "CREATE []",
    "STATUS a]b (MESSAGES)",
    "STATUS x[y (MESSAGES)",
    'LIST "" a]b',
    "RENAME [Gmail]/Sent [Gmail]/Sent2",
    'LIST "" [Gmail]/*',
    "SUBSCRIBE [Gmail]/Sent2",
    'LSUB "" [Gmail]/*',
    "DELETE [Gmail]/Sent2",
    # still not atoms: these are refused as bad syntax
    "CREATE a{b",
    "CREATE a(b",
    'CREATE a"b',
]


def test_unquoted_names_with_brackets_are_mailbox_names(server: ServerThread, reference: Callable[..., list[Answer]]
                                                         | None) -> None:
    answers = dict(zip(ATOM_SCRIPT, _run_both(server, reference, ATOM_SCRIPT), strict=True))
    for command in ATOM_SCRIPT[:-3]:
        assert answers[command][0] == "OK", (command, answers[command])
    assert answers["STATUS [Gmail]/Sent (MESSAGES)"][1] == [b"* STATUS [Gmail]/Sent (MESSAGES 0)\r\n"]
    assert answers['LIST "" [Gmail]*'][1] == [b'* LIST (\\HasChildren) "/" [Gmail]\r\n',
                                              b'* LIST (\\HasNoChildren) "/" [Gmail]/Sent\r\n']
    assert answers['LIST "" a]b'][1] == [b'* LIST (\\HasNoChildren) "/" a]b\r\n']
    assert answers['LIST "" [Gmail]/*'][1] == [b'* LIST (\\HasNoChildren) "/" [Gmail]/Sent2\r\n']
    assert answers['LSUB "" [Gmail]/*'][1] == [b'* LSUB () "/" [Gmail]/Sent2\r\n']
    for command in ATOM_SCRIPT[-3:]:
        assert answers[command][0] == "BAD", (command, answers[command])


def test_fetch_sections_still_parse(server: ServerThread) -> None:
    """Brackets stay FETCH's section syntax: `BODY[HEADER.FIELDS (Subject)]` is one item, not a name."""
    client = login(server)
    try:
        raw(client, "CREATE [Gmail]")
        assert b" OK " in append(client, "[Gmail]", b"Subject: hi\r\n\r\nbody\r\n")
        raw(client, "SELECT [Gmail]")
        untagged, done = raw(client, "FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)] BODY.PEEK[TEXT]<0.2>)")
        assert b" OK " in done
        assert untagged == [b"* 1 FETCH (BODY[HEADER.FIELDS (SUBJECT)] {15}\r\nSubject: hi\r\n\r\n"
                            b" BODY[TEXT]<0> {2}\r\nbo)\r\n"]
    finally:
        client.logout()


# -- modified UTF-7 in LIST and LSUB patterns --------------------------------------------------------------------

MUTF7_SCRIPT = [
    "CREATE Entw&APw-rfe",
    "CREATE Entw&APw-rfe/K&APY-ln",
    "CREATE &-amp",
    'LIST "" Entw&APw-rfe',
    'LIST "" "Entw&APw-rfe"',
    'LIST "" Entw%',
    'LIST "" Entw&APw-*',
    'LIST "" %&APw-%',
    'LIST "" Entw&APw-rfe/%',
    'LIST "" Entw&APw-rfe/K&APY-*',
    "LIST Entw&APw-rfe/ %",
    'LIST "" &-*',
    'LIST "" "Entw&APw"',  # not modified UTF-7: matches nothing, no error
    'LIST "" &',
    "SUBSCRIBE Entw&APw-rfe/K&APY-ln",
    'LSUB "" Entw&APw-rfe/K&APY-ln',
    'LSUB "" Entw&APw-rfe/%',
    'LSUB "" %',
    "STATUS Entw&APw-rfe/K&APY-ln (MESSAGES)",
]


def test_modified_utf7_names_match_list_and_lsub_patterns(server: ServerThread,
                                                          reference: Callable[..., list[Answer]] | None) -> None:
    answers = dict(zip(MUTF7_SCRIPT, _run_both(server, reference, MUTF7_SCRIPT), strict=True))
    entw = b'* LIST (\\HasChildren) "/" Entw&APw-rfe\r\n'
    koeln = b'* LIST (\\HasNoChildren) "/" Entw&APw-rfe/K&APY-ln\r\n'
    assert all(status == "OK" for status, _ in answers.values()), answers
    assert answers['LIST "" Entw&APw-rfe'][1] == [entw]
    assert answers['LIST "" "Entw&APw-rfe"'][1] == [entw]
    assert answers['LIST "" Entw%'][1] == [entw]
    assert answers['LIST "" Entw&APw-*'][1] == [entw, koeln]
    assert answers['LIST "" %&APw-%'][1] == [entw]
    assert answers['LIST "" Entw&APw-rfe/%'][1] == [koeln]
    assert answers['LIST "" Entw&APw-rfe/K&APY-*'][1] == [koeln]
    assert answers["LIST Entw&APw-rfe/ %"][1] == [koeln]
    assert answers['LIST "" &-*'][1] == [b'* LIST (\\HasNoChildren) "/" &-amp\r\n']
    assert answers['LIST "" "Entw&APw"'][1] == [] and answers['LIST "" &'][1] == []
    assert answers['LSUB "" Entw&APw-rfe/K&APY-ln'][1] == [b'* LSUB () "/" Entw&APw-rfe/K&APY-ln\r\n']
    assert answers['LSUB "" Entw&APw-rfe/%'][1] == [b'* LSUB () "/" Entw&APw-rfe/K&APY-ln\r\n']
    assert answers['LSUB "" %'][1] == [b'* LSUB (\\Noselect) "/" Entw&APw-rfe\r\n']


def test_imapclient_finds_a_folder_with_a_non_ascii_name(server: ServerThread) -> None:
    """What imap_tools' `folder.exists("Entwürfe")` does: LIST "" with the modified UTF-7 name."""
    with IMAPClient("127.0.0.1", port=server.imap_port, ssl=False, timeout=10) as client:
        client.login("names@example.com", "secret")
        client.create_folder("Entwürfe")
        assert client.folder_exists("Entwürfe")
        assert not client.folder_exists("Entwurf")
        assert [name for _, _, name in client.list_folders("", "Entw%")] == ["Entwürfe"]
        client.subscribe_folder("Entwürfe/Köln")
        assert [name for _, _, name in client.list_sub_folders("", "Entwürfe/%")] == ["Entwürfe/Köln"]


# -- LSUB: subscribed children under unsubscribed parents (imaptest's "subscribe") ------------------------------

SUBSCRIBE_SCRIPT = [
    "CREATE box/",
    "CREATE box/test",
    "CREATE box/test2/",
    "CREATE box/test3/",
    "CREATE box/test2/test",
    "CREATE box/test3/test3",
    "SUBSCRIBE box/test",
    "SUBSCRIBE box/test2/test",
    "SUBSCRIBE box/test3/test3",
    'LSUB "" box/%',
    'LSUB "" *test',
    'LSUB "" %',
    'LSUB "" %/%',
    'LSUB "" %/test2',
    "LSUB box/ %",
    'LSUB "" box/*',
    'LSUB "" box',
    "UNSUBSCRIBE box/test",
    'LSUB "" box/%',
    "UNSUBSCRIBE box/test2/test",
    'LSUB "" box/*',
    "UNSUBSCRIBE box/test3/test3",
    'LSUB "" box/%',
]


def test_lsub_returns_unsubscribed_parents_as_noselect(server: ServerThread,
                                                        reference: Callable[..., list[Answer]] | None) -> None:
    answers = _run_both(server, reference, SUBSCRIBE_SCRIPT)
    assert all(status == "OK" for status, _ in answers), answers
    lsub = [lines for command, (_, lines) in zip(SUBSCRIBE_SCRIPT, answers, strict=True)
            if command.startswith("LSUB")]

    def lines(*entries: str) -> list[bytes]:
        return sorted(f'* LSUB {attributes} "/" {name}\r\n'.encode()
                      for attributes, name in (e.split(" ") for e in entries))

    assert lsub == [
        lines("() box/test", "(\\Noselect) box/test2", "(\\Noselect) box/test3"),  # box/%
        lines("() box/test", "() box/test2/test"),  # *test
        lines("(\\Noselect) box"),  # %
        lines("() box/test", "(\\Noselect) box/test2", "(\\Noselect) box/test3"),  # %/%
        [],  # %/test2: only a pattern ending in % returns parents
        lines("() box/test", "(\\Noselect) box/test2", "(\\Noselect) box/test3"),  # box/ + %
        lines("() box/test", "() box/test2/test", "() box/test3/test3"),  # box/*
        [],  # box
        lines("(\\Noselect) box/test2", "(\\Noselect) box/test3"),
        lines("() box/test3/test3"),
        [],
    ]


def test_a_subscribed_parent_is_listed_once_and_selectable(server: ServerThread,
                                                           reference: Callable[..., list[Answer]] | None) -> None:
    script = ["CREATE p", "CREATE p/q", "SUBSCRIBE p", "SUBSCRIBE p/q", 'LSUB "" %', 'LSUB "" p/%', 'LSUB "" *']
    answers = _run_both(server, reference, script)
    assert [lines for _, lines in answers[4:]] == [
        [b'* LSUB () "/" p\r\n'], [b'* LSUB () "/" p/q\r\n'], [b'* LSUB () "/" p\r\n', b'* LSUB () "/" p/q\r\n']]


def test_a_hostile_list_pattern_takes_linear_time(server: ServerThread) -> None:
    """`*a*a*...*b` against a long name: a backtracking matcher needs exponential time and stalls every session
    on the loop; the pattern runs as a set of states, linear in the name."""
    client = login(server, "names@example.com")
    try:
        raw(client, "CREATE " + "a" * 5000)
        raw(client, "SUBSCRIBE " + "/".join(["a"] * 2000))
        for command in ('LIST "" ' + "*a" * 40 + "*b", 'LIST "" ' + "%a" * 40 + "%b",
                        'LSUB "" ' + "%a" * 40 + "%", 'LSUB "" %'):
            started = time.monotonic()
            untagged, done = raw(client, command)
            assert b" OK " in done and time.monotonic() - started < 1.0, command[:40]
        assert untagged == [b'* LSUB (\\Noselect) "/" a\r\n']
    finally:
        client.logout()


def test_list_matching_time_grows_linearly_with_the_name() -> None:
    pattern = "*a" * 200 + "*b"

    def seconds(length: int) -> float:
        started = time.perf_counter()
        assert listing.matching(["a" * length], "", pattern, "/") == []
        return time.perf_counter() - started

    seconds(1000)  # warm up
    small, large = min(seconds(20_000) for _ in range(3)), min(seconds(40_000) for _ in range(3))
    assert large < 3 * small + 0.01, (small, large)
