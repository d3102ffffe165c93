"""Header blocks: finding where they end, splitting them into fields, decoding their text.

Field splitting follows Dovecot's header parser, because IMAP answers are compared with Dovecot's byte for
byte: a field runs from a line start to the next line that does not begin with a space or tab; its name is
everything before the first colon of its first line (trailing blanks dropped); its value starts after the
colon and the blanks that follow it. Lines without a colon are not fields.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re

# One field: a line not starting with a blank, with a colon, and the continuation lines that follow it.
_FIELD = re.compile(rb"^(?![ \t])([^:\n]*):([ \t]*)([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_FOLD = re.compile(rb"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\r\n]*)\?=")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]*=*")

# Text codecs that turn arbitrary input into something other than text, or that only exist on some platforms.
_REFUSED_CODECS = frozenset({"unicode_escape", "raw_unicode_escape", "idna", "punycode", "undefined", "mbcs",
                             "oem", "utf_16", "utf_32", "utf_16_le", "utf_16_be", "utf_32_le", "utf_32_be"})
# Labels mail software writes that Python names differently, or whose superset is what senders really mean
# (the WHATWG encoding standard maps them the same way).
_CHARSET_ALIASES = {
    "us-ascii": "utf-8", "ascii": "utf-8", "ansi_x3.4-1968": "utf-8", "unicode-1-1-utf-8": "utf-8", "utf8": "utf-8",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "iso8859-1": "cp1252", "l1": "cp1252",
    "x-user-defined": "cp1252",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949",
    "shift_jis": "cp932", "x-sjis": "cp932", "sjis": "cp932", "windows-31j": "cp932",
    "iso-2022-jp": "iso2022_jp_ext", "tis-620": "cp874", "iso-8859-11": "cp874",
}


def block_end(raw: bytes, start: int, stop: int | None = None) -> tuple[int, int]:
    """(end of the last header line, end of the block) for the header block starting at `start`.

    The block ends just after the first empty line ("\\n" or "\\r\\n" at a line start); without one it runs to
    the end of `raw`. With `stop` (a line start after `start`), only an empty line before it counts, the
    search goes no further, and without one the block runs to `stop`: (stop, stop).
    """
    limit = len(raw) if stop is None else stop
    if raw.startswith(b"\n", start):
        return start, start + 1
    if raw.startswith(b"\r\n", start):
        return start, start + 2
    first_lf = raw.find(b"\n", start, limit)
    if first_lf < 0:
        return limit, limit
    # Search the likely line ending first, then the other one only up to that hit: each search is then bounded
    # by the header size instead of scanning a whole multi-megabyte body for a pattern that never occurs.
    likely, other = (b"\n\r\n", b"\n\n") if raw[first_lf - 1:first_lf] == b"\r" else (b"\n\n", b"\n\r\n")
    hit = raw.find(likely, first_lf, limit)
    hit2 = raw.find(other, first_lf, hit + len(likely) if hit >= 0 else limit)
    if hit2 >= 0 and (hit < 0 or hit2 < hit):
        hit, likely = hit2, other
    if hit < 0:
        return limit, limit
    return hit + 1, hit + len(likely)


def fields(raw: bytes, start: int, end: int) -> list[tuple[bytes, bytes]]:
    """(name, value) for every field of raw[start:end]; values keep their folding line breaks."""
    out: list[tuple[bytes, bytes]] = []
    for m in _FIELD.finditer(raw, start, end):
        name, blanks, value = m.groups()
        if value.endswith(b"\r"):
            value = value[:-1]
        if len(blanks) > 1 and (not value or value[:1] in b"\r\n"):
            # A first line of nothing but blanks loses only the first one.
            value = blanks[1:] + value
        out.append((name.rstrip(b" \t"), value))
    return out


def unfold(value: bytes) -> bytes:
    """RFC 5322 unfolding: the line breaks of folded lines go, the blanks after them stay."""
    return _FOLD.sub(b"", value) if b"\n" in value else value


def text(value: bytes) -> str:
    """Header bytes as text: UTF-8 when valid (RFC 6532), else Windows-1252, the usual legacy 8-bit charset."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("cp1252", "replace")


def value_text(value: bytes) -> str:
    """A field value for display: unfolded, 8-bit decoded, RFC 2047 words decoded, outer blanks trimmed."""
    s = text(unfold(value))
    if "=?" in s:
        s = decode_words(s)
    return s.strip()


@functools.lru_cache(maxsize=256)
def codec_name(charset: str) -> str:
    """A Python codec able to decode `charset`; UTF-8 when the label is unknown or unsafe."""
    label = charset.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return "utf-8"
    if not getattr(info, "_is_text_encoding", True) or info.name.replace("-", "_") in _REFUSED_CODECS:
        return "utf-8"
    return info.name


def decode_bytes(data: bytes, charset: str) -> str:
    """Bytes in a declared charset as text; undecodable bytes become U+FFFD, never an error."""
    name = codec_name(charset) if charset else "utf-8"
    try:
        return data.decode(name, "replace")
    except Exception:  # some codecs raise other errors on malformed input even with "replace"
        return data.decode("utf-8", "replace")


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    try:
        data = payload.encode("ascii")
    except UnicodeEncodeError:
        return None
    try:
        if encoding in "bB":
            if not _BASE64_TEXT.fullmatch(data):
                return None
            data = data.rstrip(b"=")
            return binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        return binascii.a2b_qp(data, header=True)
    except (binascii.Error, ValueError):
        return None


def decode_words(value: str) -> str:
    """Decode RFC 2047 encoded words in a header value, leniently.

    Blanks between adjacent encoded words are dropped, and adjacent words in one charset are joined as bytes
    before decoding (senders split multi-byte characters across words). Malformed words stay as written.
    Linear in the value: each run of words in one charset is collected in a list and joined once.
    """
    if "=?" not in value:
        return value
    out: list[str] = []
    run_charset = ""
    run: list[bytes] = []  # the decoded bytes of adjacent words in `run_charset`, not yet turned into text
    pos = 0
    labels: dict[str, str] = {}  # charset label as written -> as compared (senders repeat one label)
    for m in _ENCODED_WORD.finditer(value):
        label, encoding, payload = m.group(1, 2, 3)
        data = _word_bytes(encoding, payload)
        if data is None:
            continue
        start = m.start()
        charset = labels.get(label)
        if charset is None:
            charset = labels[label] = label.split("*", 1)[0].lower()
        if not run or (start > pos and value[pos:start].strip(" \t\r\n")):  # not only blanks since the last
            if run:
                out.append(decode_bytes(b"".join(run), run_charset))
                run = []
            out.append(value[pos:start])
        elif charset != run_charset:
            out.append(decode_bytes(b"".join(run), run_charset))
            run = []
        run_charset = charset
        run.append(data)
        pos = m.end()
    if run:
        out.append(decode_bytes(b"".join(run), run_charset))
    out.append(value[pos:])
    return "".join(out)

