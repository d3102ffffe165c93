"""The pure command parser: tokens, commands, sequence sets, FETCH items, SEARCH keys."""

from __future__ import annotations

from datetime import date

import pytest

from mailnest.imap.fetch_items import FetchItem, Section
from mailnest.imap.parser import literal_announcement, parse_command, parse_date_time
from mailnest.imap.search_keys import BadCharset, SearchKey
from mailnest.imap.sequence import parse_sequence_set
from mailnest.imap.tokens import Atom, ListToken, ParseError, Str, tokenize
from mailnest.imap.utf7 import decode_mailbox, encode_mailbox


def test_tokens() -> None:
    assert tokenize(b'a "b \\"c\\" \\\\" {3}\r\nxyz (d (e)) NIL\r\n') == [
        Atom(b"a"), Str(b'b "c" \\'), Str(b"xyz", literal=True),
        ListToken([Atom(b"d"), ListToken([Atom(b"e")])]), Atom(b"NIL")]
    token = tokenize(b"BODY.PEEK[1.HEADER.FIELDS (From \"To\")]<0.10>\r\n", sections=True)[0]
    assert isinstance(token, Atom) and token.value == b"BODY.PEEK" and token.suffix == b"<0.10>"
    assert token.section == [Atom(b"1.HEADER.FIELDS"), ListToken([Atom(b"From"), Str(b"To")])]
    assert tokenize(b"{0}\r\n\r\n") == [Str(b"", literal=True)]
    assert tokenize(b"{2+}\r\nab\r\n") == [Str(b"ab", literal=True)]


@pytest.mark.parametrize(("data", "reason"), [
    (b"(a", "Missing ')'"), (b'"abc', "Unterminated quoted string"), (b'"a\\b"', "Invalid escape in quoted string"),
    (b"{5}\r\nab", "Literal shorter than announced"), (b"{x}\r\n", "Invalid literal size"),
    (b"a  b", "Unexpected character ' '"), (b"(a )", "Unexpected space before closing bracket"),
    (b"a\x01", "Invalid character in atom"), (b"((((((" * 20, "Lists nested too deeply"),
])
def test_token_errors(data: bytes, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        tokenize(data)
    assert caught.value.reason == reason


def test_literal_announcement() -> None:
    assert literal_announcement(b"a APPEND INBOX {12}\r\n") == (12, True)
    assert literal_announcement(b"a APPEND INBOX {12+}\r\n") == (12, False)
    assert literal_announcement(b"a LOGIN x y\r\n") is None
    assert literal_announcement(b"a LOGIN {x}\r\n") is None


def test_commands_and_arguments() -> None:
    login = parse_command(b'a1 login "user@example.com" {3}\r\npwd\r\n')
    assert (login.tag, login.name, login.args) == ("a1", "LOGIN", {"user": "user@example.com", "password": "pwd"})
    assert parse_command(b"t SELECT inbox\r\n").args == {"mailbox": "INBOX"}
    assert parse_command(b"t SELECT Caf&AOk-/Bar\r\n").args == {"mailbox": "Caf\u00e9/Bar"}
    assert parse_command(b"t RENAME a b\r\n").args == {"mailbox": "a", "new": "b"}
    assert parse_command(b'T LIST "" "*"\r\n').args == {"reference": "", "pattern": "*"}
    assert parse_command(b"T STATUS INBOX (messages UNSEEN)\r\n").args["items"] == ("MESSAGES", "UNSEEN")
    store = parse_command(b"T UID STORE 1:* -FLAGS.SILENT (\\seen $Work)\r\n")
    assert store.uid and store.name == "UID STORE"
    assert store.args["mode"] == "-" and store.args["silent"] and store.args["flags"] == ("\\Seen", "$Work")
    assert parse_command(b"T STORE 1 FLAGS \\Deleted\r\n").args["flags"] == ("\\Deleted",)
    assert parse_command(b"T COPY 2 Trash\r\n").args["mailbox"] == "Trash"
    assert parse_command(b"T UID EXPUNGE 3,5\r\n").args["set"].ranges == ((3, 3), (5, 5))
    assert parse_command(b"T AUTHENTICATE plain AGFAYg==\r\n").args == {"mechanism": "PLAIN", "initial": "AGFAYg=="}
    assert parse_command(b"T ENABLE condstore UTF8=ACCEPT\r\n").args["capabilities"] == ("CONDSTORE", "UTF8=ACCEPT")
    assert parse_command(b'T ID ("name" "x" "os" NIL)\r\n').args["params"] == {"name": "x", "os": None}
    assert parse_command(b"T ID NIL\r\n").args["params"] == {}


def test_append() -> None:
    cmd = parse_command(b'A APPEND Drafts (\\Draft) " 5-Mar-2024 10:11:12 +0100" {4}\r\nabcd\r\n')
    assert cmd.args == {"mailbox": "Drafts", "flags": ("\\Draft",), "date": (2024, 3, 5, 10, 11, 12, 60),
                        "message": b"abcd"}
    with pytest.raises(ParseError, match="must be sent as a literal"):
        parse_command(b"A APPEND INBOX not-a-literal\r\n")
    with pytest.raises(ParseError, match="Invalid date-time"):
        parse_command(b'A APPEND INBOX "yesterday" {1}\r\nx\r\n')


def test_date_time() -> None:
    assert parse_date_time("17-Jul-1996 02:44:25 -0700") == (1996, 7, 17, 2, 44, 25, -420)
    for bad in ("17-Foo-1996 02:44:25 -0700", "17-Jul-1996 25:44:25 -0700", "17-Jul-96 02:44:25 -0700"):
        with pytest.raises(ParseError):
            parse_date_time(bad)


@pytest.mark.parametrize(("data", "tag", "reason"), [
    (b"+ NOOP\r\n", None, "Invalid tag"), (b"a*b NOOP\r\n", None, "Invalid tag"),
    (b"a1 FOO\r\n", "a1", "Unknown command FOO"), (b"a1 UID NOOP\r\n", "a1", "Unknown UID command NOOP"),
    (b"a1\r\n", "a1", "Missing command"), (b"a1 NOOP x\r\n", "a1", "NOOP: unexpected extra arguments"),
    (b"a1 STATUS INBOX (FOO)\r\n", "a1", "STATUS: unknown status item"),
    (b"a1 STORE 1 FLAGZ (x)\r\n", "a1", "STORE: unknown action FLAGZ"),
    (b"a1 STORE 1 FLAGS (\\Bogus)\r\n", "a1", "STORE: unknown system flag \\Bogus"),
    (b"a1 SELECT &Jjo\r\n", "a1", "SELECT: unterminated '&' in mailbox name"),
])
def test_command_errors(data: bytes, tag: str | None, reason: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_command(data)
    assert (caught.value.tag, caught.value.reason, caught.value.status) == (tag, reason, "BAD")


def test_sequence_sets() -> None:
    numbers = parse_sequence_set("1:3,7,9:*,*")
    assert numbers.ranges == ((1, 3), (7, 7), (9, None), (None, None))
    assert numbers.resolve(12) == [(1, 3), (7, 7), (9, 12), (12, 12)]
    assert parse_sequence_set("5:2").resolve(10) == [(2, 5)]
    assert parse_sequence_set("4:*").resolve(2) == [(2, 4)]  # n:* includes the largest even when n is larger
    assert parse_sequence_set("3").contains(3, 5) and not parse_sequence_set("3").contains(4, 5)
    for bad in ("", "0", "1,,2", "a", "1:2:3", "4294967296", "01"):
        with pytest.raises(ParseError):
            parse_sequence_set(bad)


def test_fetch_items() -> None:
    items = parse_command(b"f FETCH 1 (uid Body.Peek[1.2.MIME] BODY[HEADER.FIELDS.NOT (X-A \"x-b\")]<5.10> "
                          b"BODY[] RFC822 BODY[0])\r\n").args["items"]
    assert items == (
        FetchItem("UID"),
        FetchItem("BODY[]", Section((1, 2), "MIME"), None, True),
        FetchItem("BODY[]", Section((), "HEADER.FIELDS.NOT", ("X-A", "x-b"), 'X-A "X-B"'), (5, 10)),
        FetchItem("BODY[]", Section()),
        FetchItem("RFC822"),
        FetchItem("BODY[]", Section((0,), "")),
    )
    assert items[2].section is not None and items[2].section.spec() == 'HEADER.FIELDS.NOT (X-A "X-B")'
    assert [i.sets_seen for i in items] == [False, False, True, True, True, True]
    assert [i.name for i in parse_command(b"f FETCH 1 FULL\r\n").args["items"]] == [
        "FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"]
    for bad in (b"(FOO)", b"BODY[MIME]", b"BODY[TEXTX]", b"BODY[]<1>", b"BODY[]<0.0>", b"X-GM-MSGID[1]", b"()",
                b"BODY[HEADER.FIELDS]", b"BODY[HEADER.FIELDS ()]"):
        with pytest.raises(ParseError):
            parse_command(b"f FETCH 1 " + bad + b"\r\n")


def test_search_keys() -> None:
    key = parse_command(b'S UID SEARCH CHARSET utf-8 OR FROM {5}\r\nJ\xc3\xbcrg (SEEN 2:4) NOT HEADER X-A ""'
                        b" SENTBEFORE 1-Feb-2024 LARGER 100 UID 5:* KEYWORD $a\r\n").args["key"]
    assert key == SearchKey("AND", (
        SearchKey("OR", (SearchKey("ADDRESS", ("From", "J\u00fcrg")),
                         SearchKey("AND", (SearchKey("FLAG", ("\\Seen", True)),
                                           SearchKey("SEQ", (parse_sequence_set("2:4"),)))))),
        SearchKey("NOT", (SearchKey("HEADER", ("X-A", "")),)),
        SearchKey("DATE", ("sent", "<", date(2024, 2, 1))),
        SearchKey("SIZE", (">", 100)),
        SearchKey("UID", (parse_sequence_set("5:*"),)),
        SearchKey("KEYWORD", ("$a", True)),
    ))
    assert parse_command(b"S SEARCH new\r\n").args["key"] == SearchKey("NEW")
    with pytest.raises(BadCharset) as caught:
        parse_command(b"S SEARCH CHARSET X-NOPE ALL\r\n")
    assert caught.value.status == "NO" and caught.value.reason.startswith("[BADCHARSET (US-ASCII UTF-8)]")
    for bad in (b"FOO", b"", b"FROM", b"OR SEEN", b"SINCE 32-Jan-2024", b"LARGER x", b"()", b"BODY[1]"):
        with pytest.raises(ParseError):
            parse_command(b"S SEARCH " + bad + b"\r\n")
    with pytest.raises(ParseError, match="not valid US-ASCII"):
        parse_command(b'S SEARCH SUBJECT "caf\xc3\xa9"\r\n')


def test_modified_utf7() -> None:
    for name in ("INBOX", "Entw\u00fcrfe", "~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e", "a&b", "\U0001f4ec box"):
        assert decode_mailbox(encode_mailbox(name)) == name
    assert encode_mailbox("~peter/mail/\u53f0\u5317/\u65e5\u672c\u8a9e") == b"~peter/mail/&U,BTFw-/&ZeVnLIqe-"
    assert encode_mailbox("a&b") == b"a&-b"
    assert decode_mailbox("Caf\u00e9".encode()) == "Caf\u00e9"  # raw UTF-8 from lenient clients
    for bad in (b"&Jjo", b"&!!!-", b"\xff"):
        with pytest.raises(ValueError):
            decode_mailbox(bad)


@pytest.mark.parametrize(("line", "mailbox"), [
    (b"t SELECT [Gmail]/Sent\r\n", "[Gmail]/Sent"), (b"t CREATE [Gmail]\r\n", "[Gmail]"),
    (b"t CREATE a]b\r\n", "a]b"), (b"t CREATE x[y\r\n", "x[y"), (b"t DELETE []\r\n", "[]"),
    (b"t COPY 1 [Gmail]/All&AOk-\r\n", "[Gmail]/All\u00e9"),
])
def test_brackets_are_ordinary_astring_characters(line: bytes, mailbox: str) -> None:
    """RFC 3501: `[` is no atom-special and `]` is an ASTRING-CHAR; only FETCH has bracketed sections."""
    assert parse_command(line).args["mailbox"] == mailbox


def test_brackets_outside_fetch_are_not_sections() -> None:
    assert tokenize(b"[Gmail]/Sent a]b\r\n") == [Atom(b"[Gmail]/Sent"), Atom(b"a]b")]
    assert parse_command(b't LIST "" [Gmail]/%\r\n').args == {"reference": "", "pattern": "[Gmail]/%"}
    with pytest.raises(ParseError, match="Invalid character in atom"):
        parse_command(b"t CREATE a{b\r\n")


def test_list_patterns_are_decoded_from_modified_utf7() -> None:
    assert parse_command(b'T LIST "" Entw&APw-%\r\n').args == {"reference": "", "pattern": "Entw\u00fc%"}
    assert parse_command(b"T LSUB Entw&APw-rfe/ *\r\n").args == {"reference": "Entw\u00fcrfe/", "pattern": "*"}
    assert parse_command(b'T LIST "" "Entw&APw"\r\n').args["pattern"] is None  # not mUTF-7: matches nothing
