"""Linear time on hostile input: a size ramp for every parser that captured mail reaches.

Each ramp times one parser on an input of size n and of size 4n (the median of three runs, at sizes where n takes
at least 6 ms of CPU time: this process's, so that the other work of a shared machine does not count) and asserts the larger one took under 6 times as long: under about 2.45x per doubling, where linear
code gives 2x and quadratic code 4x. Two doublings rather than one because at these sizes a quadratic term is
not yet dominant (the old RFC 2047 decoder grew 2.8x per doubling at 30 ms, 3.3x at 150 ms, and took 34 s for a
10 MB Subject). A ramp that fails is measured again, up to three times, so a burst of load on a shared machine
does not fail it; quadratic code fails every time.

Work that cannot be linear (nesting, thousands of parts) is capped instead; the caps are tested at the end.
"""

from __future__ import annotations

import base64
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest

from mailnest import mime
from mailnest.mime import content, header, params
from mailnest.mime.address import parse_addresses
from mailnest.mime.tree import MAX_NESTING, MAX_PARTS
from mailnest.models import Address
from mailnest.received import Mail

TARGET = 0.006  # seconds for size n: long enough to time, short enough to keep the file fast
GROWTH = 4
MAX_RATIO = 6.0
MAX_INPUT = 1 << 20


def _seconds(parse: Callable[[Any], object], data: object) -> float:
    times = []
    for _ in range(3):
        start = time.process_time()
        parse(data)
        times.append(time.process_time() - start)
    return statistics.median(times)


def _size_for(parse: Callable[[Any], object], make: Callable[[int], object], n: int) -> int:
    """The smallest n (doubling from the one given) whose input takes TARGET seconds, or reaches MAX_INPUT: past
    that, timings of fast code measure the memory system (page faults of fresh allocations), not the parser."""
    while True:
        data = make(n)
        if len(data) >= MAX_INPUT or _seconds(parse, data) >= TARGET:  # type: ignore[arg-type]
            return n
        n *= 2


def assert_linear(parse: Callable[[Any], object], make: Callable[[int], object], n: int) -> None:
    n = _size_for(parse, make, n)
    small, large = make(n), make(GROWTH * n)
    ratios = []
    for _ in range(3):
        ratio = _seconds(parse, large) / max(_seconds(parse, small), 1e-6)
        ratios.append(ratio)
        if ratio < MAX_RATIO:
            return
    pytest.fail(f"{GROWTH}x the input took {min(ratios):.1f}x the time (n={n}; ratios {ratios}): not linear")


# --- header decoding ------------------------------------------------------------------------------------------

WORD = "=?utf-8?b?" + base64.b64encode("héllo wörld ".encode()).decode() + "?="


def test_adjacent_encoded_words_in_one_charset() -> None:
    # The 10 MB Subject of issue 12: each word's bytes were appended to all the ones before.
    assert_linear(header.decode_words, lambda n: " ".join([WORD] * n), 500)


def test_folded_subject_of_encoded_words_through_parse() -> None:
    def message(n: int) -> bytes:
        return b"Subject: " + "\r\n ".join([WORD] * n).encode() + b"\r\nFrom: a@example.com\r\n\r\nbody\r\n"

    assert mime.parse(message(3)).subject == ("héllo wörld " * 3).strip()
    assert_linear(lambda raw: mime.parse(raw).subject, message, 12000)


def test_encoded_words_in_alternating_charsets_and_broken_ones() -> None:
    words = ["=?utf-8?q?caf=C3=A9?=", "=?iso-8859-1?q?caf=E9?=", "=?utf-8?b?!!?=", "plain", "=?x?q?y"]
    assert_linear(header.value_text, lambda n: " ".join(words[i % 5] for i in range(n)).encode(), 500)


def test_header_field_splitting() -> None:
    assert_linear(lambda raw: header.fields(raw, 0, len(raw)), lambda n: b"X-Long: y\r\n folded\r\nno colon\r\n" * n,
                  1000)
    assert_linear(mime.headers, lambda n: b"Received: from a by b; Tue, 5 Mar 2024 10:00:00 +0000\r\n" * n + b"\r\n",
                  1000)


def test_many_received_headers_through_parse() -> None:
    assert_linear(mime.parse, lambda n: b"Received: from a (b [192.0.2.1]) by c; Tue, 5 Mar 2024\r\n" * n
                  + b"Subject: s\r\n\r\nbody\r\n", 1000)


# --- addresses ------------------------------------------------------------------------------------------------


def test_address_list_with_an_unclosed_quote_and_escaped_quotes() -> None:
    # Each quote used to start a scan to the end for its closing quote.
    # A quote nothing closes is ignored, and the rest is read as before.
    assert parse_addresses('"unclosed <a@example.com>, b@example.com') == [
        Address("unclosed", "a@example.com"), Address("", "b@example.com")]
    assert parse_addresses('"\\"\\" <a@example.com>') == [Address("\\ \\", "a@example.com")]
    assert_linear(parse_addresses, lambda n: '"' + '\\"' * n, 1000)


@pytest.mark.parametrize("shape", ["a <b@example.com>, (c) d@example.com, ", '"q, r" <s@example.com>;  g: ',
                                   "(( a ", ". a@ "])
def test_address_lists(shape: str) -> None:
    assert_linear(parse_addresses, lambda n: shape * n, 500)


# --- parameters -----------------------------------------------------------------------------------------------


def test_rfc2231_continuations() -> None:
    def content_type(n: int) -> bytes:
        return b"application/octet-stream" + b"".join(b"; name*%d*=%%41" % i for i in range(n, 0, -1)) + b"; name*0*=utf-8''%41"

    assert params.decoded(params.content_type(content_type(2))[2], "name") == "AAA"  # out of order, merged
    assert_linear(lambda v: params.decoded(params.content_type(v)[2], "name"), content_type, 500)
    assert_linear(lambda v: params.disposition(v), lambda n: b"attachment (c)" + b"; filename*0=a (x)" * n, 500)


@pytest.mark.parametrize("value", [b"text/plain (; x", b"text/plain; a=b (" + b"(", b'text/plain; a="\\x'])
def test_broken_parameters(value: bytes) -> None:
    head, tail = value[:-1], value[-1:]
    assert_linear(params.content_type, lambda n: head + tail * n + b" x", 1000)


# --- the MIME tree --------------------------------------------------------------------------------------------

MIXED = b"Content-Type: multipart/mixed; boundary=a\r\n\r\n"


def test_parts_without_an_empty_line() -> None:
    # Each header block looked for its empty line to the end of the message.
    raw = MIXED + b"--a\r\nX: y\r\n--a\r\nX: z\r\n"
    assert [raw[p.header_start:p.header_end] for p in mime.structure(raw).children] == [b"X: y", b"X: z\r\n"]
    assert_linear(mime.structure, lambda n: MIXED + b"--a\r\nX: y\r\n" * n, 200)
    assert_linear(mime.parse, lambda n: MIXED + b"--a\r\nX: y\r\n" * n, 200)


def test_sibling_multiparts_whose_boundary_never_occurs() -> None:
    # Each one searched for its boundary to the end of the message.
    part = b"--a\r\nContent-Type: multipart/mixed; boundary=never\r\n\r\n" + b"x" * 200 + b"\r\n"
    root = mime.structure(MIXED + part * 3)
    assert [c.kind for c in root.children] == [mime.PartKind.MULTIPART] * 3
    assert_linear(mime.structure, lambda n: MIXED + part * n, 100)


@pytest.mark.parametrize("body", [
    b"--a\r\nContent-Type: text/plain\r\n\r\nhi\r\n",  # many parts
    b"--a\r\nContent-Type: multipart/mixed; boundary=ab\r\n\r\n--ab\r\n\r\nx\r\n--abc\r\n\r\n",  # prefixes
    b"--a\r\nContent-Type: message/rfc822\r\n\r\nSubject: s\r\n\r\nx\r\n",
    b"--a\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=a\r\n\r\nQUJD\r\n",
])
def test_many_parts(body: bytes) -> None:
    assert_linear(mime.parse if b"base64" in body else mime.structure, lambda n: MIXED + body * n, 100)


def test_deep_nesting_with_a_large_body() -> None:
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(120))
    assert_linear(mime.structure, lambda n: deep + b"x\r\n" * n, 1000)
    assert_linear(mime.structure, lambda n: b"Content-Type: message/rfc822\r\n\r\n" * n, 1000)


# --- bodies ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "junk"), [("base64", b"QUJD!\r\n"), ("base64", b"QQ=\r\n"),
                                                ("quoted-printable", b"=4=\r\n=ZZ")])
def test_transfer_decoding_with_junk(encoding: str, junk: bytes) -> None:
    assert_linear(lambda data: content.decode_transfer(data, encoding), lambda n: junk * n, 10000)


@pytest.mark.parametrize("shape", ["<a", "<script>", "<p ", "&amp;<b>x</b><style>a</style >"])
def test_visible_text_of_hostile_html(shape: str) -> None:
    assert_linear(content.visible_text, lambda n: shape * n, 1000)


def test_snippet_of_hostile_html() -> None:
    assert_linear(lambda h: content.html_text(h, 250), lambda n: "<body>" + "<b><!--" * n, 1000)


# --- what the Python client reads from a message (mailnest.received) ------------------------------------------


def _mail(**fields: str) -> Mail:
    return Mail.from_json({"ID": "1", **fields}, b"")


def test_links_ending_in_many_closing_brackets() -> None:
    assert _mail(Text="see http://x.example/a_(b)).").links == ("http://x.example/a_(b)",)
    assert_linear(lambda text: _mail(Text=text).links, lambda n: "http://x.example/" + ")" * n, 1000)


def test_codes_next_to_long_words() -> None:
    # The address pattern was retried at every character of a word that no "@" follows.
    assert _mail(Text="code 123456 from 999999@d.example.org or a@b.c+777777@e.f").codes() == ["123456"]
    assert_linear(lambda text: _mail(Text=text).codes(), lambda n: "a" * n + " 1234", 1000)


@pytest.mark.parametrize("tail", ["<a", "<!--", "</a"])
def test_html_ending_in_unclosed_tags(tail: str) -> None:
    # Python's HTMLParser (before 3.11.13) rescanned the rest of the document for each one.
    mail = _mail(HTML='<p>code 1234 <a href="http://x.example/">go</a> <b')
    assert mail.links == ("http://x.example/",) and mail.codes() == ["1234"]
    assert_linear(lambda html: _mail(HTML=html).links, lambda n: "<p>x</p>" + tail * n, 4000)


def test_html_marked_sections_python_refuses() -> None:
    # HTMLParser raises AssertionError on "<![" followed by anything but a keyword it knows.
    for html in ("<![<![x", '<![foo ]]><a href="http://x.example/">1234</a>', "<p><![ 1234"):
        mail = _mail(HTML=html)
        assert mail.codes() in (["1234"], [])
        assert isinstance(mail.links, tuple)
    assert _mail(HTML='<![foo ]]><a href="http://x.example/">go</a>').links == ("http://x.example/",)
    assert_linear(lambda html: _mail(HTML=html).links, lambda n: "<![" * n + ">", 1000)


def test_headers_of_a_message_with_many_received_headers() -> None:
    line = b"Received: from a (b [192.0.2.1]) by c with ESMTP id x; Tue, 5 Mar 2024 10:00:00 +0000\r\n"
    mail = Mail.from_json({"ID": "1"}, line * 2 + b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nx")
    assert mail.headers["Subject"] == ["café"] and len(mail.headers["Received"]) == 2
    # Building every header object before reading the first kept them all alive at once: 40 MB for these 174 KB,
    # and garbage collector passes that grew with them. One at a time, only the strings stay.
    raw = line * 2000 + b"\r\nx"
    mail = Mail.from_json({"ID": "1"}, raw)
    mail.email  # noqa: B018 - parsed before measuring: only `headers` is measured
    tracemalloc.start()
    try:
        assert len(mail.headers["Received"]) == 2000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * len(raw), f"{peak:,} bytes at the peak for {len(raw):,} bytes of headers"
    assert_linear(lambda raw: Mail.from_json({"ID": "1"}, raw).headers, lambda n: line * n + b"\r\nx", 500)


# --- caps: what cannot be linear is bounded -------------------------------------------------------------------


def test_nesting_past_the_cap_is_one_opaque_part() -> None:
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(500))
    raw = b"From: a@example.com\r\nSubject: deep\r\n" + deep + b"\r\nleaf\r\n"
    node, depth = mime.structure(raw), 0
    while node.children:
        node, depth = node.children[0], depth + 1
    assert depth == MAX_NESTING - 1 and node.kind is mime.PartKind.OTHER
    parsed = mime.parse(raw)
    assert parsed.subject == "deep" and parsed.from_ == Address("", "a@example.com")


def test_parts_past_the_cap_stay_in_the_last_one() -> None:
    raw = MIXED + b"--a\r\n\r\nx\r\n" * (MAX_PARTS + 500) + b"--a--\r\n"
    root = mime.structure(raw)
    assert len(root.walk()) == MAX_PARTS and root.children[-1].body_end == len(raw)
    assert len(mime.parse(raw).attachments) == MAX_PARTS - 2  # the first part is the text body


def test_the_worst_shape_within_the_caps_is_bounded() -> None:
    # 98 open boundaries, each a prefix of the next, so that every boundary line is a line of each of them:
    # bounded by MAX_NESTING x MAX_PARTS steps (0.46 s of CPU), and only the outermost is searched (0.14 s).
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=%s\r\n\r\n--%s\r\n" % (b"b" * i, b"b" * i)
                    for i in range(1, MAX_NESTING - 1))
    raw = deep + (b"\r\nx\r\n--" + b"b" * (MAX_NESTING - 2) + b"\r\n") * MAX_PARTS
    start = time.process_time()
    parsed = mime.parse(raw)
    elapsed = time.process_time() - start
    assert len(parsed.attachments) == MAX_PARTS - MAX_NESTING + 1
    assert elapsed < 1.5, f"{elapsed:.1f} s of CPU"
