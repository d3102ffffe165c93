"""Content-* header values: media type, parameters (RFC 2045, RFC 2231), disposition, language, encoding.

The tokenizer reproduces Dovecot's RFC 822 parser, quirks included, because IMAP BODYSTRUCTURE shows these
values as parsed and mailnest's answers are compared with Dovecot's byte for byte. Examples of what that means:
parameter names keep their case, RFC 2231 continuations are merged but extended values stay percent-encoded
(`name*` -> "utf-8''%E2%82%AC.txt"), and a broken parameter is skipped up to the next ";".
"""

from __future__ import annotations

import re
import urllib.parse

from .header import decode_bytes, decode_words, text

_TOKEN = re.compile(rb"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~\x80-\xff]*")
_ATOM = re.compile(rb"[!#$%&'*+\-/0-9=?A-Z^_`a-z{|}~\x80-\xff]+")
_LWSP = re.compile(rb"[ \t\r\n]*")
_REPLACEMENT = "\ufffd".encode()
_QUOTED_STOP = re.compile(rb'["\n\\]')
_BROKEN_VALUE_END = re.compile(rb"[; \t\r\n]")
_DIGITS = re.compile(r"[0-9]*")

_T = rb"[!#$%&'+\-.0-9A-Z^_`a-z{|}~\x80-\xff]"  # a token character, "*" excepted
_SIMPLE_PARAM = re.compile(
    rb';[ \t\r\n]*(' + _T + rb'+)[ \t\r\n]*=[ \t\r\n]*(?:"([^"\\\r\n\0]*)"|(' + _T + rb'*))[ \t\r\n]*')
_SIMPLE_CONTENT_TYPE = re.compile(
    rb"[ \t\r\n]*(" + _T + rb"+)[ \t\r\n]*/[ \t\r\n]*(" + _T + rb"+)[ \t\r\n]*"
    rb'((?:;[ \t\r\n]*' + _T + rb'+[ \t\r\n]*=[ \t\r\n]*(?:"[^"\\\r\n\0]*"|' + _T + rb'*)[ \t\r\n]*)*)\Z')

Params = tuple[tuple[str, str], ...]


def _str(data: bytes | bytearray) -> str:
    # Dovecot keeps these values as C strings: anything after a NUL is lost.
    nul = data.find(b"\0")
    if nul >= 0:
        data = data[:nul]
    return bytes(data).decode("utf-8", "surrogateescape")


class _Reader:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)

    def skip_lwsp(self) -> int:
        """Skip blanks and comments: -1 on an unterminated comment, 0 at the end, 1 when more follows."""
        data = self.data
        while True:
            self.pos = _LWSP.match(data, self.pos).end()  # type: ignore[union-attr]
            if self.pos >= self.end:
                return 0
            if data[self.pos] != 0x28:  # "("
                return 1
            if not self._skip_comment():
                return -1

    def _skip_comment(self) -> bool:
        data, i, level = self.data, self.pos + 1, 1
        while i < self.end:
            c = data[i]
            if c == 0x28:
                level += 1
            elif c == 0x29:
                level -= 1
                if level == 0:
                    self.pos = i + 1
                    return True
            elif c == 0x5C:
                i += 1
            i += 1
        self.pos = self.end
        return False

    def token(self) -> tuple[bytes, int]:
        m = _TOKEN.match(self.data, self.pos)
        assert m is not None
        self.pos = m.end()
        if self.pos >= self.end:
            return m.group(), 0
        return m.group(), self.skip_lwsp()

    def quoted(self) -> tuple[bytes, int]:
        data, out = self.data, bytearray()
        start = i = self.pos + 1
        while True:
            m = _QUOTED_STOP.search(data, i)
            if m is None:
                self.pos = self.end
                return bytes(out), -1
            j = m.start()
            c = data[j]
            if c == 0x22:  # closing quote
                out += data[start:j]
                self.pos = j + 1
                # Dovecot turns NUL inside quotes into U+FFFD (outside them, NUL simply ends a token).
                return bytes(out).replace(b"\0", _REPLACEMENT), self.skip_lwsp()
            if c == 0x0A:  # folding inside the quotes: the line break goes
                out += data[start:j - 1] if j > start and data[j - 1] == 0x0D else data[start:j]
                start = i = j + 1
            else:  # backslash: keep the next character, whatever it is
                if j + 1 >= self.end:
                    self.pos = self.end
                    return bytes(out), -1
                out += data[start:j]
                start = j + 1
                i = j + 2

    def atom(self) -> tuple[bytes, int]:
        m = _ATOM.match(self.data, self.pos)
        if m is None:
            return b"", -1
        self.pos = m.end()
        if self.pos >= self.end:
            return m.group(), 0
        return m.group(), self.skip_lwsp()

    def param(self) -> tuple[int, bytes, bytes]:
        """One `; key=value`: (1 ok, 0 at the end, -1 broken), key, value."""
        if self.pos >= self.end:
            return 0, b"", b""
        if self.data[self.pos] != 0x3B:  # ";"
            return -1, b"", b""
        self.pos += 1
        if self.skip_lwsp() <= 0:
            return -1, b"", b""
        key, ret = self.token()
        if ret <= 0 or self.data[self.pos] != 0x3D:  # "="
            return -1, b"", b""
        self.pos += 1
        ret = self.skip_lwsp()
        value = b""
        if ret > 0:
            c = self.data[self.pos]
            if c == 0x22:
                value, ret = self.quoted()
            elif c == 0x3D:  # name==?utf-8?b?...?= written without quotes
                m = _BROKEN_VALUE_END.search(self.data, self.pos)
                stop = m.start() if m else self.end
                value, self.pos = self.data[self.pos:stop], stop
            else:
                value, ret = self.token()
        return (-1 if ret < 0 else 1), key, value

    def params(self) -> Params:
        plain: list[tuple[str, str]] = []
        sections: list[tuple[str, str, int, bool]] = []
        idx = 0  # deliberately carried over from one parameter to the next, as Dovecot does
        while True:
            ret, raw_key, raw_value = self.param()
            if ret == 0:
                break
            if ret < 0:
                if self.pos >= self.end:
                    break
                self.pos += 1
                continue
            key, value = _str(raw_key), _str(raw_value)
            star = key.find("*")
            if star >= 0:
                p = star
                if p + 1 < len(key):
                    p += 1
                    digits = _DIGITS.match(key, p).group()  # type: ignore[union-attr]
                    idx = 0
                    for d in digits:
                        idx = (idx * 10 + ord(d) - 48) & 0xFFFFFFFF
                    p += len(digits)
                extended = key[p:p + 1] == "*"
                if extended:
                    p += 1
                if p == len(key):
                    sections.append((key[:star], value, idx, extended))
                    continue
            plain.append((key, value))
        if sections:
            plain.extend(_merge_sections(sections))
        return tuple(plain)


def _ascii_lower(s: str) -> bytes:
    return s.encode("utf-8", "surrogateescape").lower()


def _merge_sections(sections: list[tuple[str, str, int, bool]]) -> list[tuple[str, str]]:
    # Ordered by name (case-sensitive, byte order) then section number; runs of names equal ignoring case merge.
    ordered = sorted(sections, key=lambda s: (s[0].encode("utf-8", "surrogateescape"), s[2]))
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(ordered):
        name = _ascii_lower(ordered[i][0])
        j = i
        while j < len(ordered) and _ascii_lower(ordered[j][0]) == name:
            j += 1
        run = ordered[i:j]
        any_extended = any(s[3] for s in run)
        if any(s[2] != n for n, s in enumerate(run)):
            out.extend((f"{k}*{n}*" if ext else f"{k}*{n}", v) for k, v, n, ext in run)
        else:
            prefix = "''" if any_extended and not run[0][3] else ""
            value = "".join(v.replace("%", "%25") if any_extended and not ext else v for _, v, _, ext in run)
            out.append((run[0][0] + ("*" if any_extended else ""), prefix + value))
        i = j
    return out


def content_type(value: bytes) -> tuple[str, bool, Params]:
    """(media type, whether it parsed, parameters) of a Content-Type value.

    As Dovecot does: "type/subtype" must be followed by ";" or nothing, else the whole type is dropped ("");
    a lone type with nothing after it is kept as written, without a subtype.
    """
    m = _SIMPLE_CONTENT_TYPE.match(value)
    if m is not None:
        # No comments, escapes, folding or RFC 2231 sections: the full tokenizer would find exactly this.
        main, sub, rest = m.groups()
        found = tuple((_str(k), _str(q or t)) for k, q, t in _SIMPLE_PARAM.findall(rest))
        return _str(main) + "/" + _str(sub), True, found
    return _content_type_tokenized(value)


def _content_type_tokenized(value: bytes) -> tuple[str, bool, Params]:
    r = _Reader(value)
    if r.skip_lwsp() <= 0:
        return "", False, ()
    main, ret = r.token()
    if ret <= 0 or not main:
        return _str(main), False, ()
    if r.data[r.pos] != 0x2F:  # "/"
        return "", False, ()
    r.pos += 1
    if r.skip_lwsp() <= 0:
        return "", False, ()
    sub, ret = r.token()
    if ret < 0 or not sub or (r.pos < r.end and r.data[r.pos] != 0x3B):
        return "", False, ()
    return _str(main) + "/" + _str(sub), True, r.params()


def disposition(value: bytes) -> tuple[str, Params] | None:
    r = _Reader(value)
    r.skip_lwsp()
    kind, ret = r.token()
    if ret < 0:
        return None
    return _str(kind), r.params()


def transfer_encoding(value: bytes) -> str | None:
    r = _Reader(value)
    r.skip_lwsp()
    name, ret = r.token()
    if ret < 0 or r.skip_lwsp() != 0 or not name:
        return None
    return _str(name)


def languages(value: bytes) -> tuple[str, ...]:
    r = _Reader(value)
    r.skip_lwsp()
    out: list[str] = []
    while True:
        atom, ret = r.atom()
        if ret < 0:
            break
        out.append(_str(atom))
        if r.pos >= r.end or r.data[r.pos] != 0x2C:  # ","
            break
        r.pos += 1
        r.skip_lwsp()
    return tuple(out)


def _param_text(value: str) -> str:
    raw = value.encode("utf-8", "surrogateescape")
    return decode_words(text(raw)) if b"=?" in raw else text(raw)


def _extended_text(value: str) -> str:
    charset, sep, rest = value.partition("'")
    if not sep:
        return _param_text(value)
    _lang, sep, encoded = rest.partition("'")
    if not sep:
        encoded = rest
    data = urllib.parse.unquote_to_bytes(encoded.encode("utf-8", "surrogateescape"))
    return decode_bytes(data, charset or "utf-8")


def decoded(params: Params, name: str) -> str | None:
    """A parameter's value as text: RFC 2231 (extended values, continuations) and RFC 2047 decoded.

    Accepts what Dovecot's merge leaves behind, including sections it refused to merge (`name*0`, `name*1*`).
    """
    lname = name.lower()
    plain: str | None = None
    sections: list[tuple[int, bool, str]] = []
    for key, value in params:
        k = key.lower()
        if k == lname + "*":
            return _extended_text(value)
        if k == lname and plain is None:
            plain = value
        elif k.startswith(lname + "*"):
            rest = k[len(lname) + 1:]
            extended = rest.endswith("*")
            number = rest.rstrip("*")
            if number.isdigit():
                sections.append((int(number), extended, value))
    if sections:
        sections.sort()
        if sections[0][1]:
            head = sections[0][2]
            joined = head + "".join(v if ext else urllib.parse.quote(v) for _, ext, v in sections[1:])
            return _extended_text(joined)
        if not any(ext for _, ext, _ in sections):
            return _param_text("".join(v for _, _, v in sections))
        return _extended_text("''" + "".join(v if ext else urllib.parse.quote(v) for _, ext, v in sections))
    return None if plain is None else _param_text(plain)
