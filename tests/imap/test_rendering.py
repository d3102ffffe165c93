"""Pure rendering: IMAP strings, addresses, ENVELOPE, BODYSTRUCTURE, header fields, LIST patterns, flags.

Expected ENVELOPE values below are what Dovecot 2.3 answered for the same headers."""

from __future__ import annotations

import random

from mailnest.imap import headers
from mailnest.imap.addresses import Address, address_text, parse_addresses, slow_parse_addresses
from mailnest.imap.bodystructure import body_structure
from mailnest.imap.envelope import envelope
from mailnest.imap.fetch import header_fields
from mailnest.imap.listing import matching
from mailnest.imap.quoting import astring, literal, nstring, nstring_nolf, string_for_humans
from mailnest.imap.responses import flag_list, internal_date
from mailnest.mime import structure


def test_nstring_chooses_quoted_or_literal() -> None:
    assert nstring(None) == b"NIL"
    assert nstring(b"plain") == b'"plain"'
    assert nstring(b'say "hi"') == b'"say \\"hi\\""'
    assert nstring(b'"""""') == b'{5}\r\n"""""'  # past four escapes a literal is shorter
    assert nstring(b"caf\xc3\xa9") == b"{5}\r\ncaf\xc3\xa9"
    assert nstring(b"two\r\nlines") == b"{10}\r\ntwo\r\nlines"
    assert nstring_nolf(b"folded\r\n value") == b'"folded value"'
    assert astring(b"INBOX") == b"INBOX" and astring(b"NIL") == b'"NIL"' and astring(b"a b") == b'"a b"'
    assert literal(b"a\x00b") == b"{3}\r\na\x80b"  # literals cannot carry NUL


def test_string_for_humans() -> None:
    assert string_for_humans(b"Quarterly report") == b'"Quarterly report"'
    assert string_for_humans(b"") == b'""'
    assert string_for_humans(b"   ") == b'""'
    assert string_for_humans(b"  padded  out ") == b"{10}\r\npadded out"
    assert string_for_humans(b"folded\r\n\tline") == b"{11}\r\nfolded line"
    assert string_for_humans(b'Giant; "Big" Box') == b'{16}\r\nGiant; "Big" Box'
    assert string_for_humans(b"Gr\xc3\xbc\xc3\x9fe") == b"{7}\r\nGr\xc3\xbc\xc3\x9fe"


def test_addresses_like_dovecot() -> None:
    value = (b'a@b, (comment) c@d (Real Name), "Quoted" <@route1,@route2:e@f>, g@[1.2.3.4], broken, <>, '
             b"Team: x@y, John <j@k>;, John Smith")
    assert parse_addresses(value) == [
        Address(None, None, b"a", b"b"),
        Address(b"Real Name", None, b"c", b"d"),
        Address(b"Quoted", b"@route1,@route2", b"e", b"f"),
        Address(None, None, b"g", b"[1.2.3.4]"),
        Address(None, None, b"broken", b"MISSING_DOMAIN", invalid=True),
        Address(None, None, b"MISSING_MAILBOX", b"MISSING_DOMAIN", invalid=True),
        Address(None, None, b"Team", None),
        Address(None, None, b"x", b"y"),
        Address(b"John", None, b"j", b"k"),
        Address(None, None, None, None),
        Address(b"John Smith", None, b"MISSING_MAILBOX", b"MISSING_DOMAIN", invalid=True),
    ]
    assert address_text(parse_addresses(b'"Joe Q. Public" <joe@x>, Team: a@b;, <c@d>')) == (
        b'"Joe Q. Public" <joe@x>, Team: <a@b>;, <c@d>')


def test_simple_address_path_agrees_with_the_full_parser() -> None:
    pieces = [b"a@b.example", b"Name <n@x.y>", b'"Quoted, Name" <q@x>', b'"" <e@x>', b"<bare@x>",
              b"J\xc3\xbcrgen <j@x.de>", b"x@y (Comment)", b"Group: g@x, h@y;", b"Empty:;", b"broken",
              b"Two  Words\r\n <t@w>", b"a.b.c@d.e", b"<@r:x@y>", b'"esc\\"aped" <e@s>', b"trail@x,",
              b"  spaced@x  ", b"o'neil@x", b"Dot. Name <d@n>", b"=?utf-8?q?x?= <w@x>", b"a@[1.2.3.4]"]
    rng = random.Random(7)
    for _ in range(3000):
        value = b", ".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))
        if rng.random() < 0.2:
            value = value.replace(b", ", b",")
        assert parse_addresses(value) == slow_parse_addresses(value), value


def test_envelope() -> None:
    raw = (b'From: "Joe Q. Public" <john.q.public@example.com>\r\n'
           b"To: Mary Smith <mary@x.test>, jdoe@example.org, Who? <one@y.test>\r\n"
           b'Cc: <boss@nil.test>, "Giant; \\"Big\\" Box" <sysservices@example.net>\r\n'
           b"Subject: =?utf-8?q?caf=C3=A9?= test\r\n"
           b"Date: Tue, 1 Jul 2003 10:52:37 +0200\r\n"
           b"Message-ID: <5678.21-Nov-1997@example.com>\r\n"
           b"Bcc: A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;, Undisclosed recipients:;\r\n"
           b"\r\nHi.\r\n")
    assert envelope(raw) == (
        b'("Tue, 1 Jul 2003 10:52:37 +0200" "=?utf-8?q?caf=C3=A9?= test" '
        b'(("Joe Q. Public" NIL "john.q.public" "example.com")) (("Joe Q. Public" NIL "john.q.public" "example.com")) '
        b'(("Joe Q. Public" NIL "john.q.public" "example.com")) '
        b'(("Mary Smith" NIL "mary" "x.test")(NIL NIL "jdoe" "example.org")("Who?" NIL "one" "y.test")) '
        b'((NIL NIL "boss" "nil.test")({16}\r\nGiant; "Big" Box NIL "sysservices" "example.net")) '
        b'((NIL NIL "A Group" NIL)("Ed Jones" NIL "c" "a.test")(NIL NIL "joe" "where.test")("John" NIL "jdoe" '
        b'"one.test")(NIL NIL NIL NIL)(NIL NIL "Undisclosed recipients" NIL)(NIL NIL NIL NIL)) NIL '
        b'"<5678.21-Nov-1997@example.com>")')
    dup = (b"From: a@b\r\nTo: x@y\r\nTo: z@w\r\nSubject: one\r\nSubject: two\r\nSender: s@t\r\n"
           b"Date: Mon, 1 Jan 2024\r\n 10:00:00 +0000\r\n\r\n")
    assert envelope(dup) == (b'("Mon, 1 Jan 2024 10:00:00 +0000" "two" ((NIL NIL "a" "b")) ((NIL NIL "s" "t")) '
                             b'((NIL NIL "a" "b")) ((NIL NIL "x" "y")(NIL NIL "z" "w")) NIL NIL NIL NIL)')
    assert envelope(b"\r\nno header\r\n") == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


def test_bodystructure_from_the_mime_tree() -> None:
    raw = (b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\npreamble\r\n--b\r\n"
           b"Content-Type: text/plain; charset=utf-8\r\nContent-Language: en, de\r\n\r\nhello\r\n"
           b"--b\r\nContent-Type: application/pdf; name=x.pdf\r\nContent-Disposition: attachment\r\n"
           b"Content-Transfer-Encoding: base64\r\nContent-ID: <id@x>\r\n\r\nAAAA\r\n--b--\r\n")
    root = structure(raw)
    assert body_structure(raw, root, extended=False) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 0)'
        b'("application" "pdf" ("name" "x.pdf") "<id@x>" NIL "base64" 4) "mixed")')
    assert body_structure(raw, root, extended=True) == (
        b'(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 5 0 NIL NIL ("en" "de") NIL)'
        b'("application" "pdf" ("name" "x.pdf") "<id@x>" NIL "base64" 4 NIL ("attachment" NIL) NIL NIL) '
        b'"mixed" ("boundary" "b") NIL NIL NIL)')
    plain = b"Subject: none\n\nline one\nline two\n"
    assert body_structure(plain, structure(plain), extended=True) == (
        b'("text" "plain" ("charset" "us-ascii") NIL NIL "7bit" 18 2 NIL NIL NIL NIL)')


def test_header_fields() -> None:
    raw = b"From: a@b\r\nX-Long: one\r\n\ttwo\r\nsubject : Hi\r\nNo colon here\r\n\r\nbody"
    end = headers.header_end(raw)
    assert raw[end:] == b"body"
    fields = list(headers.fields(raw, 0, end))
    assert [(f.name, f.value) for f in fields] == [
        (b"From", b"a@b"), (b"X-Long", b"one\r\n\ttwo"), (b"subject", b"Hi"), (b"No colon here", b"")]
    assert raw[fields[1].start:fields[1].end] == b"X-Long: one\r\n\ttwo\r\n"
    assert header_fields(raw, 0, end, ("SUBJECT", "x-long"), exclude=False) == (
        b"X-Long: one\r\n\ttwo\r\nsubject : Hi\r\n\r\n")
    assert header_fields(raw, 0, end, ("From", "X-Long", "Subject"), exclude=True) == b"No colon here\r\n\r\n"
    lf = b"A: 1\nB: 2\n\nbody"
    assert header_fields(lf, 0, headers.header_end(lf), ("b",), exclude=False) == b"B: 2\n\n"
    assert headers.header_end(b"No: body at all") == len(b"No: body at all")


def test_list_patterns() -> None:
    names = ["INBOX", "Archive", "Archive/2023", "Archive/2024", "Archive/2024/Q1", "Drafts"]
    assert matching(names, "", "*", "/") == [
        ("INBOX", "\\HasNoChildren"), ("Archive", "\\HasChildren"), ("Archive/2023", "\\HasNoChildren"),
        ("Archive/2024", "\\HasChildren"), ("Archive/2024/Q1", "\\HasNoChildren"), ("Drafts", "\\HasNoChildren")]
    assert [n for n, _ in matching(names, "", "%", "/")] == ["INBOX", "Archive", "Drafts"]
    assert [n for n, _ in matching(names, "Archive/", "%", "/")] == ["Archive/2023", "Archive/2024"]
    assert [n for n, _ in matching(names, "Archive", "%", "/")] == ["Archive"]
    assert [n for n, _ in matching(names, "", "inbox", "/")] == ["INBOX"]
    assert [n for n, _ in matching(names, "", "Arch*4", "/")] == ["Archive/2024"]
    assert matching(names, "", "Nope", "/") == []


def test_flags_and_dates() -> None:
    assert flag_list({"$Label", "\\Seen", "\\Answered", "\\Draft"}, recent=True) == (
        "(\\Answered \\Seen \\Draft \\Recent $Label)")
    assert flag_list(()) == "()"
    assert internal_date(1709633472.0) == '"05-Mar-2024 10:11:12 +0000"'


def test_lsub_parents_flagged_noselect_only_for_a_trailing_percent() -> None:
    from mailnest.imap.listing import subscribed_matching

    subscribed = ["a/b/c", "a/d", "e"]
    assert subscribed_matching(subscribed, "", "a/%", "/") == [("a/b", "\\Noselect"), ("a/d", "")]
    assert subscribed_matching(subscribed, "", "%", "/") == [("a", "\\Noselect"), ("e", "")]
    assert subscribed_matching(subscribed, "", "*", "/") == [("a/b/c", ""), ("a/d", ""), ("e", "")]
    assert subscribed_matching(subscribed, "", "a/%/c", "/") == [("a/b/c", "")]
    assert subscribed_matching(subscribed, "", "*b", "/") == []
    assert subscribed_matching(["a", "a/b"], "", "%", "/") == [("a", "")]  # subscribed itself: no \Noselect
