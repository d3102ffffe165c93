"""mailnest.mime: the fields parsed from every corpus message, headers(), part(), and decoding edge cases."""

from __future__ import annotations

import base64
import binascii
import random
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mailnest import mime
from mailnest.mime import address, content, header, params
from mailnest.mime.address import parse_addresses
from mailnest.models import Address, Attachment
from tests.corpus import build, load, names


def test_corpus_is_small_hand_written_mail() -> None:
    assert len(names()) >= 16
    for name in names():
        assert len(load(name)) < 4096, name


def test_multipart_alternative_with_attachments() -> None:
    p = mime.parse(load("alternative-attachments.eml"))
    assert p.from_ == Address("Alice Example", "alice@example.com")
    assert p.to == (Address("Bob Builder", "bob@example.org"), Address("", "carol@example.net"))
    assert p.cc == (Address("Dave, the Reviewer", "dave@example.net"),)
    assert p.reply_to == (Address("Support Team", "support@example.com"),)
    assert p.subject == "Quarterly report and figures"
    assert p.date == datetime(2024, 3, 5, 10, 11, 12, tzinfo=timezone(timedelta(hours=1)))
    assert p.message_id == "report-2024-q1@example.com"
    assert p.return_path == "bounce+123@mailer.example.com"
    assert p.list_unsubscribe == ("<mailto:unsubscribe@example.com?subject=stop>, "
                                  "<https://example.com/unsubscribe/42>")
    assert p.x_tags == ("reports", "Finance")
    assert p.text == ("Hi Bob,\r\n\r\nthe quarterly report is attached. Revenue grew by 12 % \u2013 see page 3 for "
                      "the details.\r\n\r\nRegards,\r\nAlice")
    assert p.html.startswith("<html><body><p>Hi Bob,</p><p>the quarterly report is attached. Revenue grew by")
    assert p.html.endswith("<br>Alice</p></body></html>")
    assert p.snippet == ("Hi Bob, the quarterly report is attached. Revenue grew by 12 % \u2013 see page 3 for the "
                         "details. Regards, Alice")
    assert p.attachments == (
        Attachment("2", "report-q1.pdf", "application/pdf", "", 110, False),
        Attachment("3", "notes.txt", "text/plain", "", 20, False),
    )
    assert p.inline == ()


def test_forwarded_message_is_one_attachment() -> None:
    raw = load("forward-rfc822.eml")
    p = mime.parse(raw)
    assert p.subject == "Fwd: Lunch on Friday?"
    assert p.date == datetime(2024, 3, 6, 13, 0, tzinfo=UTC)
    assert p.text == "See the message below."
    assert p.html == ""  # the forwarded message's HTML is not this message's body
    assert p.attachments == (Attachment("2", "Lunch on Friday.eml", "message/rfc822", "", 435, False),)
    forwarded = mime.part(raw, "2")
    assert forwarded is not None
    assert forwarded.content_type == "message/rfc822"
    assert forwarded.filename == "Lunch on Friday.eml"
    assert len(forwarded.data) == 435
    inner = mime.parse(forwarded.data)
    assert inner.from_ == Address("Carol", "carol@example.net")
    assert inner.subject == "Lunch on Friday?"
    assert inner.text == "Shall we try the new place?"
    assert inner.html == "<p>Shall we try the <b>new place</b>?</p>"
    assert inner.snippet == "Shall we try the new place?"


def test_encoded_words_and_rfc2231_parameters() -> None:
    raw = load("encoded-words-and-params.eml")
    p = mime.parse(raw)
    assert p.from_ == Address("J\u00fcrgen M\u00fcller", "juergen@example.de")
    assert p.to == (Address("Fran\u00e7ois", "francois@example.fr"), Address("\u5c71\u7530", "yamada@example.jp"))
    assert p.subject == "Gr\u00fc\u00dfe aus M\u00fcnchen und K\u00f6ln"
    assert p.text == "Gr\u00fc\u00dfe aus M\u00fcnchen."
    assert p.attachments == (
        # continuations with charset, percent-encoding, and a plain quoted last section
        Attachment("2", "\u00dcbersicht der Kosten\u20ac.xlsx", "application/octet-stream", "", 10, False),
        # charset'language'value, in the Content-Type name
        Attachment("3", "r\u00e9sum\u00e9.txt", "text/plain", "", 10, False),
        # RFC 2047 inside a quoted parameter, as Outlook and Gmail write it
        Attachment("4", "Rechnung M\u00e4rz.pdf", "application/pdf", "", 5, False),
        # a quoted ";" does not end the parameter
        Attachment("5", "report;v2.csv", "text/csv", "", 8, False),
    )
    assert mime.part(raw, "2") == mime.PartContent("application/octet-stream",
                                                   "\u00dcbersicht der Kosten\u20ac.xlsx", bytes(range(10)))
    assert mime.part(raw, "4") == mime.PartContent("application/pdf", "Rechnung M\u00e4rz.pdf", b"%PDF-")
    assert mime.part(raw, "5") == mime.PartContent("text/csv", "report;v2.csv", b"a;b\r\n1;2")


def test_group_syntax_and_duplicate_headers() -> None:
    raw = load("groups-and-duplicates.eml")
    p = mime.parse(raw)
    assert p.to == (
        Address("", "anna@example.com"), Address("Berg, Ben", "ben@example.com"), Address("", "chris@example.com"),
        Address("Dana Diaz", "dana@example.com"),
    )
    assert p.cc == ()
    assert p.subject == "First subject wins"
    assert p.message_id == "dup-headers@example.com"
    assert p.x_tags == ("alpha", "beta")
    assert p.text == "Group syntax and duplicate headers.\r\n"
    assert mime.headers(raw) == [
        ("From", "Mailing Robot <robot@example.com>"),
        ("To", 'Project Team: anna@example.com, "Berg, Ben" <ben@example.com>;, chris@example.com'),
        ("To", "dana@example.com (Dana Diaz)"),
        ("Cc", "undisclosed-recipients:;"),
        ("Subject", "First subject wins"),
        ("Subject", "Second subject is ignored"),
        ("Date", "Fri, 08 Mar 2024 17:45:00 +0000"),
        ("Message-ID", "<dup-headers@example.com>"),
        ("X-Tags", "alpha"),
        ("X-Tags", "beta, alpha"),
    ]


def test_raw_8bit_headers() -> None:
    raw = load("raw-utf8-headers.eml")
    p = mime.parse(raw)
    assert p.from_ == Address("J\u00fcrgen M\u00fcller", "juergen@example.de")
    assert p.to == (Address("Zo\u00eb \u00c5ngstr\u00f6m", "zoe@example.se"),)
    assert p.subject == "Gr\u00fc\u00dfe \u2013 caf\u00e9 \u2615"
    assert p.text == "Stra\u00dfe und Caf\u00e9.\r\n"
    # Not UTF-8: read as Windows-1252 rather than dropped or mangled.
    assert ("X-Legacy", "caf\u00e9 cr\u00e8me") in mime.headers(raw)


def test_message_without_mime_headers() -> None:
    p = mime.parse(load("no-mime-headers.eml"))
    assert p.from_ == Address("", "root@localhost")
    assert p.subject == "cron output"
    assert p.text == "/etc/cron.daily/backup:\nbackup finished, 3 files copied\n"
    assert p.html == ""
    assert p.attachments == p.inline == ()
    assert p.snippet == "/etc/cron.daily/backup: backup finished, 3 files copied"


@pytest.mark.parametrize("name", ["bare-lf-multipart.eml", "mixed-line-endings.eml"])
def test_bare_lf_and_mixed_line_endings(name: str) -> None:
    raw = load(name)
    p = mime.parse(raw)
    if name == "bare-lf-multipart.eml":
        assert p.text == "Plain line one\nPlain line two"
        assert p.html == "<p>Plain line one<br>Plain line two</p>"
    else:
        assert p.subject == "Mixed line endings"
        assert p.text == "line a\nline b"
        assert p.attachments == (Attachment("2", "data.bin", "application/octet-stream", "", 6, False),)
        assert mime.part(raw, "2") == mime.PartContent("application/octet-stream", "data.bin", bytes(range(6)))


def test_related_alternative_with_inline_image() -> None:
    raw = load("related-inline-image.eml")
    p = mime.parse(raw)
    assert p.text == "Spring is here. See the logo."
    assert 'src="cid:logo@example.com"' in p.html
    assert p.inline == (Attachment("1.2", "logo.png", "image/png", "logo@example.com", 70, True),)
    assert p.attachments == (Attachment("2", "spring.ics", "text/calendar", "", 30, False),)
    logo = mime.part(raw, "1.2")
    assert logo is not None
    assert logo.data.startswith(b"\x89PNG\r\n\x1a\n") and len(logo.data) == 70


def test_digest_parts_are_messages() -> None:
    raw = load("digest.eml")
    p = mime.parse(raw)
    assert p.text == p.html == ""
    assert [(a.part_id, a.content_type) for a in p.attachments] == [("1", "message/rfc822"), ("2", "message/rfc822")]
    first = mime.part(raw, "1")
    assert first is not None
    assert mime.parse(first.data).subject == "First post"
    assert mime.parse(first.data).text == "First body.\r\n"


def test_missing_end_boundary() -> None:
    raw = load("broken-missing-end-boundary.eml")
    p = mime.parse(raw)
    assert p.text == "first part"
    assert p.attachments == (Attachment("2", "tail.txt", "text/plain", "", 29, False),)
    tail = mime.part(raw, "2")
    assert tail is not None and tail.data == b"second part runs to the end\r\n"


def test_bad_base64_decodes_as_far_as_it_goes() -> None:
    raw = load("broken-bad-base64.eml")
    p = mime.parse(raw)
    assert p.text == "Hello world"
    assert p.attachments == (Attachment("2", "junk.bin", "application/octet-stream", "", 10, False),)
    junk = mime.part(raw, "2")
    assert junk is not None and len(junk.data) == 10


def test_nul_bytes_and_unknown_charset() -> None:
    p = mime.parse(load("broken-nul-unknown-charset.eml"))
    assert p.text == "caf\u00e9 before\ufffdafter"
    assert p.html == "<p>ok\ufffd</p>"


def test_html_only_message() -> None:
    p = mime.parse(load("html-only.eml"))
    assert p.text == ""
    assert p.html.startswith("<!DOCTYPE html>")
    assert 'var tracking = "secret";' in p.html
    assert p.snippet == "Good news! Your order #77 has shipped & will arrive on Monday. Caf\u00e9 voucher enclosed."


def test_calendar_invite() -> None:
    raw = load("calendar-invite.eml")
    p = mime.parse(raw)
    assert p.text == "You have been invited to Planning meeting."
    assert p.html == ""
    assert p.attachments == (
        Attachment("1.2", "", "text/calendar", "", 124, False),
        Attachment("2", "invite.ics", "application/ics", "", 30, False),
    )
    ics = mime.part(raw, "2")
    assert ics == mime.PartContent("application/ics", "invite.ics", b"BEGIN:VCALENDAR\nEND:VCALENDAR\n")
    request = mime.part(raw, "1.2")
    assert request is not None and request.data.startswith(b"BEGIN:VCALENDAR\r\nMETHOD:REQUEST\r\n")


def test_boundary_with_trailing_whitespace_preamble_and_epilogue() -> None:
    raw = load("boundary-whitespace.eml")
    p = mime.parse(raw)
    assert p.text == "first"
    assert p.attachments == (Attachment("2", "second.txt", "text/plain", "", 6, False),)


def test_part_lookup_misses() -> None:
    raw = load("alternative-attachments.eml")
    assert mime.part(raw, "9") is None
    assert mime.part(raw, "1") is None  # a multipart has no content of its own
    assert mime.part(raw, "x") is None
    # As in IMAP (and Dovecot): ".1" after a non-multipart part is that part again, anything deeper is nothing.
    assert mime.part(raw, "2.1") == mime.part(raw, "2")
    assert mime.part(raw, "3.1.1") is None
    assert mime.part(raw, "1.1") == mime.PartContent(
        "text/plain", "", "Hi Bob,\r\n\r\nthe quarterly report is attached. Revenue grew by 12 % \u2013 see page 3 "
        "for the details.\r\n\r\nRegards,\r\nAlice".encode())
    single = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n"
    assert mime.part(single, "1") == mime.PartContent("application/pdf", "", b"%PDF-")


def test_generated_large_attachment() -> None:
    raw, payload = build.attachment_message(300_000, seed=3)
    p = mime.parse(raw)
    assert p.text == "The export is attached."
    assert p.attachments == (Attachment("2", "export.bin", "application/octet-stream", "", len(payload), False),)
    got = mime.part(raw, "2")
    assert got is not None and got.data == payload


def test_no_headers_at_all_and_empty_input() -> None:
    assert mime.parse(b"").text == ""
    assert mime.parse(b"just some words, no header") .subject == ""
    body_only = mime.parse(b"\r\nbody only\r\n")
    assert body_only.text == "body only\r\n" and body_only.from_ is None
    assert mime.headers(b"") == []


# --- decoding edge cases -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoded", "decoded"), [
    ("=?utf-8?q?caf=C3=A9?=", "caf\u00e9"),
    ("=?UTF-8?Q?hello_world?=", "hello world"),
    ("=?utf-8?b?Y2Fmw6k=?=", "caf\u00e9"),
    ("=?utf-8?b?Y2Fmw6k?=", "caf\u00e9"),  # missing padding
    ("=?utf-8?q?a?= =?utf-8?q?b?=", "ab"),  # blanks between encoded words go
    ("=?utf-8?q?a?=\r\n =?utf-8?q?b?=", "ab"),
    ("x =?utf-8?q?a?= y", "x a y"),  # blanks next to plain text stay
    ("=?utf-8?B?4oI=?= =?utf-8?B?rA==?=", "\u20ac"),  # one character split across two words
    ("=?utf-8*en?q?hi?=", "hi"),  # RFC 2231 language suffix
    ("=?x-unknown?q?caf=C3=A9?=", "caf\u00e9"),  # unknown charset: UTF-8
    ("=?utf-8?b?!!!?=", "=?utf-8?b?!!!?="),  # undecodable words stay as written
    ("=?utf-8?x?abc?=", "=?utf-8?x?abc?="),
    ("no words here", "no words here"),
    ("=?unicode_escape?q?\\x41?=", "\\x41"),  # codecs that are not charsets are refused
])
def test_decode_words(encoded: str, decoded: str) -> None:
    assert mime.decode_words(encoded) == decoded


@pytest.mark.parametrize(("value", "expected"), [
    ('"Last, First" <a@x.org>', [("Last, First", "a@x.org")]),
    ("a@x.org (Comment Name)", [("Comment Name", "a@x.org")]),
    ("<@relay.example:user@x.org>", [("", "user@x.org")]),
    ("Group:;", []),
    ("Team: a@x.org, b@x.org;", [("", "a@x.org"), ("", "b@x.org")]),
    ('"=?utf-8?q?J=C3=BCrgen?=" <j@x.de>', [("J\u00fcrgen", "j@x.de")]),
    ("=?utf-8?q?A=2C_B?= <ab@x.org>", [("A, B", "ab@x.org")]),
    ("John Smith john@x.org", [("John Smith", "john@x.org")]),
    ('"quoted \\"inner\\"" <q@x.org>', [('quoted "inner"', "q@x.org")]),
    ("user @ example.org", [("", "user@example.org")]),
    ("root", [("", "root")]),
    (",, a@x.org ,", [("", "a@x.org")]),
    ("<unterminated@x.org", [("", "unterminated@x.org")]),
    ('"unterminated <u@x.org>', [("unterminated", "u@x.org")]),
])
def test_address_parsing(value: str, expected: list[tuple[str, str]]) -> None:
    assert [(a.name, a.address) for a in parse_addresses(value)] == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("Tue, 05 Mar 2024 10:11:12 +0100", datetime(2024, 3, 5, 9, 11, 12, tzinfo=UTC)),
    ("5 Mar 2024 10:11 -0000", datetime(2024, 3, 5, 10, 11, tzinfo=UTC)),
    ("Tue, 05 Mar 2024 10:11:12 -0230 (NST)", datetime(2024, 3, 5, 12, 41, 12, tzinfo=UTC)),
    ("Tue, 05 Mar 2024 10:11:12 GMT", datetime(2024, 3, 5, 10, 11, 12, tzinfo=UTC)),
    ("Tue, 31 Feb 2024 10:11:12 +0100", None),
    ("yesterday", None),
])
def test_dates(value: str, expected: datetime | None) -> None:
    got = mime.parse(f"Date: {value}\r\n\r\n".encode()).date
    assert got == expected
    assert got is None or got.tzinfo is not None


def test_rfc2231_decoding() -> None:
    ps = params.content_type(b"application/x; name*0*=utf-8'de'%C3%9C; name*1=ber; name*2*=%20sicht")[2]
    assert ps == (("name*", "utf-8'de'%C3%9Cber%20sicht"),)
    assert params.decoded(ps, "name") == "\u00dcber sicht"
    # sections Dovecot refuses to merge (a gap in the numbering) still decode
    gap = params.content_type(b"application/x; name*0=a; name*2=c")[2]
    assert gap == (("name*0", "a"), ("name*2", "c"))
    assert params.decoded(gap, "name") == "ac"
    assert params.decoded((("title*", "''plain%20text"),), "title") == "plain text"
    assert params.decoded((("name", "caf\udce9"),), "name") == "caf\u00e9"  # raw latin-1 byte in a parameter
    assert params.decoded((), "name") is None


def test_base64_size_without_decoding() -> None:
    rng = random.Random(7)
    for size in (0, 1, 2, 3, 57, 58, 1000, 300_000, 300_001, 300_002):
        payload = rng.randbytes(size)
        for nl in (b"\n", b"\r\n"):
            encoded = b"\r\n" + base64.encodebytes(payload).replace(b"\n", nl) + b"\r\n"
            assert content.decoded_size(encoded, 2, len(encoded) - 2, "base64") == size
    # one line, no line breaks at all
    payload = rng.randbytes(400_000)
    encoded = base64.b64encode(payload)
    assert content.decoded_size(encoded, 0, len(encoded), "BASE64") == len(payload)
    # irregular lines above the exact-count threshold: counted, not guessed
    lines = [base64.b64encode(rng.randbytes(rng.randrange(3, 90, 3))) for _ in range(8000)]
    encoded = b"\r\n".join(lines)
    assert content.decoded_size(encoded, 0, len(encoded), "base64") == len(binascii.a2b_base64(encoded))


def test_quoted_printable_and_identity_sizes() -> None:
    qp = b"caf=C3=A9 soft=\r\nbreak=\nand =3D\r\n"
    assert content.decode_transfer(qp, "quoted-printable") == b"caf\xc3\xa9 softbreakand =\r\n"
    assert content.decoded_size(qp, 0, len(qp), "Quoted-Printable") == 22
    assert content.decoded_size(b"abcdef", 1, 4, None) == 3
    assert content.decoded_size(b"abcdef", 0, 6, "x-uuencode") == 6


def test_charsets() -> None:
    assert content.text("caf\u00e9".encode("latin-1"), "iso-8859-1") == "caf\u00e9"
    assert content.text(b"\x93quoted\x94", "iso-8859-1") == "\u201cquoted\u201d"  # labelled latin-1, really cp1252
    assert content.text("caf\u00e9".encode(), "") == "caf\u00e9"
    assert content.text(b"caf\xe9", "us-ascii") == "caf\u00e9"  # mislabelled 8-bit: cp1252 fallback
    assert content.text(b"\xef\xbb\xbfbom", "utf-8") == "bom"
    assert content.text("\u65e5\u672c".encode("iso-2022-jp"), "ISO-2022-JP") == "\u65e5\u672c"
    assert content.text(b"caf\xc3\xa9", "no-such-charset") == "caf\u00e9"
    html = b'<html><head><meta charset="windows-1251"></head><body>\xcf\xf0\xe8\xe2\xe5\xf2</body></html>'
    assert "\u041f\u0440\u0438\u0432\u0435\u0442" in content.text(html, "", html=True)


def test_html_text_for_snippets() -> None:
    markup = ("<html><head><style>.x{color:red}</style><title>T</title></head><body>"
              "<script>alert(1)</script><div>Hello&nbsp;<b>world</b></div><p>second&amp;third</p>"
              "<!-- hidden --><p>caf&#233;</p></body></html>")
    assert content.html_text(markup, 250) == "Hello world second&third caf\u00e9"
    long = "<body>" + "<p>word</p>" * 50_000 + "</body>"
    assert content.html_text(long, 20) == "word word word word"
    assert content.html_text("<p>unterminated <b", 250) == "unterminated"
    assert content.collapse("  a \r\n\t b  " + "c" * 1000, 10) == "a b cccccc"


def test_header_field_splitting() -> None:
    raw = (b"Subject:   three blanks\r\nX-Folded: one\r\n two\r\n\tthree\r\nNo colon here\r\n  continued: x\r\n"
           b"X-Empty:\r\nName With Space : v\r\n\r\nBody: not a header\r\n")
    end = header.block_end(raw, 0)[1]
    assert header.fields(raw, 0, end) == [
        (b"Subject", b"three blanks"),
        (b"X-Folded", b"one\r\n two\r\n\tthree"),
        (b"X-Empty", b""),
        (b"Name With Space", b"v"),
    ]
    assert mime.headers(raw)[1] == ("X-Folded", "one two\tthree")


def test_header_block_end() -> None:
    assert header.block_end(b"A: b\r\n\r\nbody", 0) == (6, 8)
    assert header.block_end(b"A: b\n\nbody", 0) == (5, 6)
    assert header.block_end(b"A: b\r\n\nbody", 0) == (6, 7)
    assert header.block_end(b"\r\nbody", 0) == (0, 2)
    assert header.block_end(b"A: b\r\nno blank line", 0) == (19, 19)
    assert header.block_end(b"xx\nA: b\n\r\nbody", 3) == (8, 10)
    # With a stop (the next boundary line), only an empty line before it counts.
    raw = b"A: b\r\nC: d\r\n--x\r\n\r\nbody"
    assert header.block_end(raw, 0, 12) == (12, 12)
    assert header.block_end(raw, 0, len(raw)) == header.block_end(raw, 0) == (17, 19)
    assert header.block_end(b"A: b\n\n--x\n", 0, 6) == (5, 6)


# --- the linear decoders give what the simple (quadratic) ones gave -------------------------------------------


def _decode_words_before(value: str) -> str:
    # The decoder before it was made linear: adjacent words in one charset were joined by concatenation.
    out: list[str] = []
    pending: list[tuple[str, bytes]] = []
    pos = 0
    for m in header._ENCODED_WORD.finditer(value):
        between = value[pos:m.start()]
        data = header._word_bytes(m.group(2), m.group(3))
        if data is None:
            continue
        if not (pending and all(c in " \t\r\n" for c in between)):
            out.extend(header.decode_bytes(d, c) for c, d in pending)
            pending.clear()
            out.append(between)
        charset = m.group(1).split("*", 1)[0].lower()
        if pending and pending[-1][0] == charset:
            pending[-1] = (charset, pending[-1][1] + data)
        else:
            pending.append((charset, data))
        pos = m.end()
    out.extend(header.decode_bytes(d, c) for c, d in pending)
    out.append(value[pos:])
    return "".join(out)


WORD_PIECES = ["=?utf-8?b?w6k=?=", "=?UTF-8?Q?a=C3_b?=", "=?utf-8?q?=A9?=", "=?iso-8859-1?q?caf=E9?=", "=?utf-8?b?4oI=?=",
               "=?utf-8?b?rA==?=", "=?utf-8*en?Q?z?=", "=?gb2312?b?1tA=?=", "=?bogus?q?x?=", "=?utf-8?x?y?=",
               "=?utf-8?b?!!?=", "=?", "?=", " ", "\t", "\r\n ", "\u00a0", "\x0b", "plain", "é"]


def test_decode_words_gives_what_the_concatenating_decoder_gave() -> None:
    rng = random.Random(2047)
    for _ in range(5000):
        value = "".join(rng.choice(WORD_PIECES) for _ in range(rng.randint(0, 25)))
        assert header.decode_words(value) == _decode_words_before(value), value


def test_address_lists_with_unclosed_quotes_read_as_before() -> None:
    # After a quote nothing closes, later quotes are not tried; what they would have found is the same.
    rng = random.Random(5322)
    pieces = ['"', '\\"', "\\", "a", " ", ",", "<b@c>", "(x)", ";", ":", "@", "=?utf-8?q?n?="]
    for _ in range(5000):
        value = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        assert list(address._tokens(value)) == [m.group() for m in address._TOKEN.finditer(value)], value


def test_unclosed_tail_as_text_for_htmlparser() -> None:
    assert content.unclosed_tail_as_text("<p>a</p> <b c") == "<p>a</p> &lt;b c"
    assert content.unclosed_tail_as_text("<a<a<a") == "&lt;a&lt;a&lt;a"
    for markup in ("<p>a</p>", "a < b > c", "", "text only"):
        assert content.unclosed_tail_as_text(markup) == markup
