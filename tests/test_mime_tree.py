"""mailnest.mime.structure: the offset tree IMAP serves, checked against Dovecot and fuzzed."""

from __future__ import annotations

import contextlib
import imaplib
import os
import pwd
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailnest import mime
from mailnest.mime import MimePart, PartKind, find_part, params, structure
from tests.corpus import build, load, names

# --- the tree on known messages ------------------------------------------------------------------------------


def test_offsets_of_a_forwarded_message() -> None:
    raw = load("forward-rfc822.eml")
    root = structure(raw)
    assert root.kind is PartKind.MULTIPART and root.part_id == "" and root.header_start == 0
    assert raw[root.header_end - 4:root.header_end] == b"\r\n\r\n"
    text, forwarded = root.children
    assert (text.part_id, text.content_type) == ("1", "text/plain")
    assert raw[text.body_start:text.body_end] == b"See the message below."
    assert raw[text.header_start:text.header_end] == b"Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    assert forwarded.kind is PartKind.MESSAGE and forwarded.part_id == "2"
    assert forwarded.disposition == "attachment"
    assert forwarded.disposition_params == (("filename", "Lunch on Friday.eml"),)
    (inner,) = forwarded.children
    assert inner.part_id == "2" and inner.content_type == "multipart/alternative"
    assert (inner.header_start, inner.body_end) == (forwarded.body_start, forwarded.body_end)
    assert raw[inner.header_start:].startswith(b"From: Carol <carol@example.net>\r\n")
    assert [(p.part_id, p.content_type) for p in inner.children] == [("2.1", "text/plain"), ("2.2", "text/html")]
    assert raw[inner.children[1].body_start:inner.children[1].body_end] == b"<p>Shall we try the <b>new place</b>?</p>"
    # the line break before a boundary belongs to the boundary; the forwarded body keeps its own last one
    assert raw[forwarded.body_end - 11:forwarded.body_end] == b"--inner--\r\n"
    assert find_part(root, "2") is forwarded
    assert find_part(root, "2.1") is inner.children[0]
    assert find_part(root, "3") is None and find_part(root, "0") is None and find_part(root, "2.x") is None


def test_fields_for_bodystructure() -> None:
    raw = (b"Content-Type: TEXT/Plain; CHARSET=\"UTF-8\"; name*0*=utf-8''%E2%82%AC; name*1=\"50%.txt\"\r\n"
           b"Content-ID:   <id@x>\r\nContent-Description: folded\r\n\tdescription\r\n"
           b"Content-Transfer-Encoding: QUOTED-printable\r\nContent-Disposition: inline\r\n"
           b"Content-Disposition: attachment; filename=x.txt\r\nContent-Language: en, de-DE\r\n"
           b"Content-Location: http://x/y\r\nContent-MD5: Q2hl\r\n\r\nline\nline\r\n")
    p = structure(raw)
    assert (p.kind, p.content_type, p.media_type, p.media_subtype) == (PartKind.TEXT, "text/plain", "TEXT", "Plain")
    # continuations merged; a plain section's "%" is escaped so that the whole value stays percent-encoded
    assert p.params == (("CHARSET", "UTF-8"), ("name*", "utf-8''%E2%82%AC50%25.txt"))
    assert p.param("name") == "\u20ac50%.txt"
    assert p.charset == "UTF-8"
    assert p.encoding == "QUOTED-printable"
    assert p.content_id == "<id@x>"
    assert p.description == "folded\tdescription"
    assert p.disposition == "attachment" and p.disposition_params == (("filename", "x.txt"),)
    assert p.filename == "x.txt"
    assert p.language == ("en", "de-DE")
    assert (p.location, p.md5) == ("http://x/y", "Q2hl")
    assert (p.body_size, p.body_lines, p.body_octets) == (11, 2, 12)


def test_defaults_without_content_type() -> None:
    plain = structure(b"Subject: x\r\n\r\nbody")
    assert (plain.kind, plain.content_type, plain.media_type, plain.params) == (PartKind.TEXT, "text/plain", None, ())
    digest = structure(load("digest.eml"))
    assert [(c.kind, c.content_type, c.media_type) for c in digest.children] == [
        (PartKind.MESSAGE, "message/rfc822", None), (PartKind.MESSAGE, "message/rfc822", None)]
    # Content-* headers count only in MIME parts: without MIME-Version or Content-Type they are ignored
    no_mime = structure(b"Content-Transfer-Encoding: base64\r\nContent-ID: <x>\r\n\r\naGk=\r\n")
    assert (no_mime.encoding, no_mime.content_id) == (None, None)
    mime_version = structure(b"MIME-Version: 1.0\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n")
    assert mime_version.encoding == "base64"


def test_boundary_rules() -> None:
    # only the line's beginning must match, and the longest open boundary wins
    raw = (b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=ab\r\n"
           b"\r\n--ab\r\n\r\none\r\n--abX\r\n\r\ntwo\r\n--a junk\r\n\r\nthree\r\n--a--\r\n")
    root = structure(raw)
    assert [c.part_id for c in root.walk()] == ["", "1", "1.1", "1.2", "2"]
    assert [raw[p.body_start:p.body_end] for p in root.walk()[2:]] == [b"one", b"two", b"three"]
    # a missing end boundary: the last part runs to the end of the message
    unclosed = structure(load("broken-missing-end-boundary.eml"))
    assert unclosed.children[-1].body_end == len(load("broken-missing-end-boundary.eml"))
    # an enclosing boundary right after a header's empty line takes that line's break as its own
    cut = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nX: y\r\n\r\n--b--\r\n"
    (part,) = structure(cut).children
    assert cut[part.header_start:part.header_end] == b"X: y\r\n"
    assert part.body_start == part.body_end


def test_nesting_limit() -> None:
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(120))
    deep += b"\r\nleaf\r\n"
    node = structure(deep)
    depth = 0
    while node.children:
        node, depth = node.children[0], depth + 1
    assert depth == 99 and node.kind is PartKind.OTHER and node.content_type == "multipart/mixed"


# --- Dovecot, the reference ----------------------------------------------------------------------------------

DOVECOT_IMAP = "/usr/lib/dovecot/imap"

# Tricky cases beyond the corpus, each a rule of the Dovecot parser mailnest must follow.
TRICKY = [
    b"Content-Type: multipart/mixed; boundary=\"\"\r\n\r\n--\r\n\r\nempty boundary\r\n----\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nA: b\r\n--x\r\n\r\ncut header\r\n--x--",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\n--x\r\n\r\nempty first part\r\n--x--\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: message/rfc822\r\n\r\n--x--\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
    b"--x\r\n\r\nsame boundary nested\r\n--x--\r\n--x--\r\n",
    b"Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\nSubject: deep\r\n\r\nbody\r\n",
    b"Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\n\r\n--d\r\nContent-Type: text/plain\r\n\r\nt\r\n--d--",
    b"Content-Type: text; x=1\r\nContent-Type: text/html\r\n\r\nfirst Content-Type wins, broken or not\r\n",
    b"Content-Type: multipart\r\n\r\n--x\r\n",
    b"Content-Type: multipart/mixed; boundary=x\r\n\r\n--x",
    b"Content-Type: text/plain; a=1; x*=2; b*0=3; B*1=4; c*1=5\r\nContent-Description: a\x00b\rc\r\n\r\n",
    b"MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=lf\n\npreamble\n--lf  \n\na\n--lf\n\nb\n",
    b'Content-Type: multipart/mixed; boundary="q\x00"; charset=a\x00b\r\n\r\n--q\xef\xbf\xbd\r\n\r\nNUL\r\n',
    b"no header at all, and no line break",
    b"",
    # Hostile shapes of the linear-time scan: prefixes of open boundaries, parts whose header never ends before
    # the next boundary, multiparts whose boundary never occurs, the empty line looked for only up to a boundary.
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nContent-Type: multipart/mixed; boundary=ab\r\n\r\n"
    b"--ab\r\n\r\nx\r\n--abc\r\n\r\ny\r\n--a\r\n\r\nz\r\n--ab--\r\n--a--\r\n",
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nX: y\r\n--a\r\nX: z\r\n--a\r\nX: w\r\n\r\n--a--",
    b"Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=never\n\nx\n"
    b"--a\nContent-Type: multipart/mixed; boundary=nev\n\n--never\n\ny\n--a--\n",
    b"Content-Type: multipart/mixed; boundary=a\r\n\r\n--a\r\nX: y\r\n--ax\r\n\r\nbody\r\n--a--\r\n",
    b"".join(b"Content-Type: multipart/mixed; boundary=%s\r\n\r\n--%s\r\n" % (b"b" * i, b"b" * i) for i in range(1, 8))
    + b"\r\nx\r\n--bbbbbbb\r\n\r\ny\r\n--bbbb\r\n\r\nz\r\n--bb--\r\n",
]


def _dovecot_available() -> bool:
    return os.access(DOVECOT_IMAP, os.X_OK) and (os.geteuid() != 0 or shutil.which("setpriv") is not None)


@contextlib.contextmanager
def _dovecot(messages: list[bytes]) -> Iterator[imaplib.IMAP4_stream]:
    """Dovecot's imap binary, preauthenticated on a pipe, over a throwaway Maildir holding `messages`."""
    # Not under tmp_path: that tree is private to root, and as root Dovecot must run as nobody.
    home = Path(tempfile.mkdtemp(prefix="mailnest-mime-dovecot-"))
    try:
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True)
        for i, raw in enumerate(messages):
            (home / "Maildir" / "cur" / f"{1000 + i}.m{i}:2,").write_bytes(raw)
        (home / "dovecot.conf").write_text("mail_location = maildir:~/Maildir\nssl = no\nlog_path = /dev/null\n"
                                           "info_log_path = /dev/null\nmail_fsync = never\n")
        prefix = ""
        if os.geteuid() == 0:
            nobody = pwd.getpwnam("nobody")
            for path in [home, *home.rglob("*")]:
                os.chown(path, nobody.pw_uid, nobody.pw_gid)
            prefix = f"setpriv --reuid={nobody.pw_uid} --regid={nobody.pw_gid} --clear-groups "
        q = shlex.quote(str(home))
        client = imaplib.IMAP4_stream(f"{prefix}env -i HOME={q} USER=mailnest {DOVECOT_IMAP} -c {q}/dovecot.conf "
                                      "2>/dev/null")
        try:
            client.select("INBOX")
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()
    finally:
        shutil.rmtree(home, ignore_errors=True)


_ATOM = re.compile(rb'[^ ()\r\n"{\[\]]+')
Value = bytes | int | None | list["Value"]


def _value(s: bytes, i: int) -> tuple[Value, int]:
    c = s[i:i + 1]
    if c == b"(":
        items: list[Value] = []
        i += 1
        while True:
            while s[i:i + 1] == b" ":
                i += 1
            if s[i:i + 1] == b")":
                return items, i + 1
            item, i = _value(s, i)
            items.append(item)
    if c == b'"':
        out, j = bytearray(), i + 1
        while s[j:j + 1] != b'"':
            j += s[j:j + 1] == b"\\"
            out += s[j:j + 1]
            j += 1
        return bytes(out), j + 1
    if c == b"{":
        close = s.index(b"}", i)
        start = close + 3
        return s[start:start + int(s[i + 1:close])], start + int(s[i + 1:close])
    m = _ATOM.match(s, i)
    assert m is not None, s[i:i + 40]
    token, i = m.group(), m.end()
    if s[i:i + 1] == b"[":
        close = s.index(b"]", i)
        token, i = token + s[i:close + 1], close + 1
    return (None if token == b"NIL" else int(token) if token.isdigit() else token), i


def _fetch(client: imaplib.IMAP4_stream, number: int, items: list[str]) -> dict[str, Value]:
    _, data = client.fetch(str(number), "(" + " ".join(items) + ")")
    stream = b""
    for item in data:  # imaplib splits literals out as (line with {n}, literal) pairs
        stream += item[0] + b"\r\n" + item[1] if isinstance(item, tuple) else bytes(item or b"")
    parsed, _ = _value(stream, stream.index(b"("))
    assert isinstance(parsed, list)
    out: dict[str, Value] = {}
    for key, value in zip(parsed[::2], parsed[1::2], strict=True):
        assert isinstance(key, bytes)
        out[key.decode()] = value
    return out


def _sections(raw: bytes, root: MimePart) -> dict[str, bytes]:
    """Every section IMAP can address in the message, and the bytes Dovecot must return for it."""
    out: dict[str, bytes] = {}

    def message(node: MimePart, section: str) -> None:
        dot = section + "." if section else ""
        out[dot + "HEADER"] = raw[node.header_start:node.header_end]
        out[dot + "TEXT"] = raw[node.body_start:node.body_end]
        if node.kind is PartKind.MULTIPART:
            for child in node.children:
                mime_part(child)
        else:
            body(node, dot + "1")

    def body(node: MimePart, section: str) -> None:
        out[section] = raw[node.body_start:node.body_end]
        if node.kind is PartKind.MESSAGE and node.children:
            message(node.children[0], section)

    def mime_part(node: MimePart) -> None:
        out[node.part_id + ".MIME"] = raw[node.header_start:node.header_end]
        out[node.part_id] = raw[node.body_start:node.body_end]
        if node.kind is PartKind.MULTIPART:
            for child in node.children:
                mime_part(child)
        elif node.kind is PartKind.MESSAGE and node.children:
            message(node.children[0], node.part_id)

    message(root, "")
    return out


def _on_the_wire(data: bytes) -> bytes:
    # Dovecot sends CRLF line ends and NUL as 0x80.
    return re.sub(rb"(?<!\r)\n", b"\r\n", data).replace(b"\0", b"\x80")


def _s(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8", "surrogateescape")


def _pairs(items: tuple[tuple[str, str], ...]) -> list[Value] | None:
    return [_s(x) for kv in items for x in kv] or None


def _bodystructure(node: MimePart) -> list[Value]:
    """BODYSTRUCTURE as Dovecot renders it from these fields (envelopes left out): the rules the IMAP renderer
    must follow, written down as a test."""
    disposition: Value = None
    if node.disposition is not None:
        disposition = [_s(node.disposition), _pairs(node.disposition_params)]
    extension: list[Value] = [disposition, [_s(x) for x in node.language] or None, _s(node.location)]
    if node.kind is PartKind.MULTIPART:
        empty: list[Value] = [b"text", b"plain", [b"charset", b"us-ascii"], None, None, b"7bit", 0, 0, None, None,
                              None, None]
        children: list[Value] = [_bodystructure(c) for c in node.children] or [empty]
        return [*children, _s(node.media_subtype), _pairs(node.params), *extension]
    media = f"{node.media_type}/{node.media_subtype}".lower()
    if node.kind is PartKind.MESSAGE:
        kind: list[Value] = [b"message", b"rfc822"]
    elif node.media_type is None:
        kind = [b"text", b"plain"]
    elif node.media_type.lower() == "multipart" or media == "message/rfc822":  # not split: nesting limit
        kind = [b"application", b"octet-stream"]
    else:
        kind = [_s(node.media_type), _s(node.media_subtype) or b""]
    pairs = _pairs(node.params) or []
    if node.kind is PartKind.TEXT and not any(k.lower() == "charset" for k, _ in node.params):
        pairs += [b"charset", b"us-ascii"]
    out: list[Value] = [*kind, pairs or None, _s(node.content_id), _s(node.description), _s(node.encoding) or b"7bit",
           node.body_octets]
    if node.kind is PartKind.TEXT:
        out.append(node.body_lines)
    elif node.kind is PartKind.MESSAGE:
        out += [b"ENVELOPE", _bodystructure(node.children[0]), node.body_lines]
    return [*out, _s(node.md5), *extension]


def _without_envelopes(value: Value) -> Value:
    if not isinstance(value, list):
        return value
    out = [_without_envelopes(v) for v in value]
    if (len(value) > 9 and value[:2] == [b"message", b"rfc822"] and isinstance(value[7], list)
            and len(value[7]) == 10):
        out[7] = b"ENVELOPE"
    return out


def test_sections_and_bodystructure_match_dovecot() -> None:
    if not _dovecot_available():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{DOVECOT_IMAP} is required in CI but was not found")
        pytest.skip("dovecot is not installed")
    attachment, _ = build.attachment_message(200_000, seed=1, line_ending=b"\n")
    messages = ([load(name) for name in names()] + TRICKY + [attachment] + [build.random_mime(s) for s in range(120)])
    mismatches: list[str] = []
    with _dovecot(messages) as client:
        for number, raw in enumerate(messages, start=1):
            root = structure(raw)
            expected = _sections(raw, root)
            got = _fetch(client, number, ["BODYSTRUCTURE"] + [f"BODY.PEEK[{s}]" for s in expected])
            for section, data in expected.items():
                if (got.get(f"BODY[{section}]") or b"") != _on_the_wire(data):
                    mismatches.append(f"message {number} BODY[{section}]: {raw[:200]!r}")
            if _without_envelopes(got["BODYSTRUCTURE"]) != _bodystructure(root):
                mismatches.append(f"message {number} BODYSTRUCTURE: {raw[:200]!r}")
    assert mismatches == []


# --- never raises ---------------------------------------------------------------------------------------------


def _check(raw: bytes) -> None:
    """Every public function on `raw`, and the invariants of the tree."""
    root = structure(raw)
    nodes = root.walk()
    for node in nodes:
        assert 0 <= node.header_start <= node.header_end == node.body_start <= node.body_end <= len(raw)
        lines = raw.count(b"\n", node.body_start, node.body_end)
        assert node.body_lines == lines
        assert node.body_octets == node.body_size + lines - raw.count(b"\r\n", node.body_start, node.body_end)
        previous_end = node.body_start
        for child in node.children:
            assert previous_end <= child.header_start and child.body_end <= node.body_end
            previous_end = child.body_end
        if node.kind is PartKind.MULTIPART:
            for child in node.children:
                assert find_part(root, child.part_id) is child
        _ = (node.filename, node.charset, node.param("name"))
    parsed = mime.parse(raw)
    assert len(parsed.snippet) <= 250
    mime.headers(raw)
    for item in (*parsed.attachments, *parsed.inline):
        got = mime.part(raw, item.part_id)
        assert got is not None and got.content_type == item.content_type


# No example database: it would write .hypothesis/ into the working tree.
_SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
_INTERESTING = [b"--", b"\r\n", b"\n", b"\r", b"\0", b":", b";", b'"', b"\\", b"(", b"=?", b"?=", b"*", b"'",
                b"\r\n\r\n", b"Content-Type: multipart/mixed; boundary=b\r\n", b"--b\r\n", b"--b--",
                b"Content-Type: message/rfc822\r\n\r\n", b"\xff", b"\xc3"]


@_SETTINGS
@given(st.binary(max_size=3000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _check(raw)


@_SETTINGS
@given(st.sampled_from(names()), st.lists(st.tuples(st.integers(0, 4000), st.integers(0, 8),
                                                    st.sampled_from(_INTERESTING)), max_size=6))
def test_mutated_corpus_never_raises(name: str, edits: list[tuple[int, int, bytes]]) -> None:
    raw = load(name)
    for position, delete, insert in edits:
        position %= len(raw) + 1
        raw = raw[:position] + insert + raw[position + delete:]
    _check(raw)


@_SETTINGS
@given(st.integers(0, 2**32))
def test_random_mime_never_raises(seed: int) -> None:
    _check(build.random_mime(seed))


@_SETTINGS
@given(st.lists(st.sampled_from([b"text", b"/", b"plain", b";", b" ", b"\r\n\t", b"a", b"=", b'"', b"b c",
                                 b"(c)", b"*", b"0", b"'", b"%", b"\\", b"\0", b"\xc3\xa9", b"charset"]),
                max_size=16))
def test_fast_content_type_path_agrees_with_the_tokenizer(pieces: list[bytes]) -> None:
    value = b"".join(pieces)
    assert params.content_type(value) == params._content_type_tokenized(value)
