"""Header-value lexing as IMAP servers see it: RFC 5322 atoms, quoted strings, comments, phrases, domains.

Pure. The rules follow Dovecot's (our reference server) so that ENVELOPE and SEARCH match it for broken input
as well. Functions return Dovecot's tri-state: 1 = more input follows, 0 = at the end, -1 = broken.
"""

from __future__ import annotations

# 0: not atext; 1: atext; 2: letters, digits and 8-bit; 4: atext that MIME calls a tspecial ('/', '=', '?')
_CLASS = bytearray(256)
for _c in b"!#$%&'*+-^_`{|}~":
    _CLASS[_c] = 1
for _c in b"/=?":
    _CLASS[_c] = 4
for _c in range(256):
    if (chr(_c).isascii() and chr(_c).isalnum()) or _c >= 0x80:
        _CLASS[_c] = 2
ATEXT = frozenset(c for c in range(256) if _CLASS[c])
_LWSP = frozenset(b" \t\r\n")


class Lexer:
    def __init__(self, data: bytes, *, keep_comments: bool = False) -> None:
        self.data = data
        self.pos = 0
        self.end = len(data)
        self.last_comment: bytearray | None = bytearray() if keep_comments else None

    def more(self) -> int:
        return 1 if self.pos < self.end else 0

    def cur(self) -> int:
        return self.data[self.pos] if self.pos < self.end else -1

    def skip_comment(self) -> int:
        level = 1
        if self.last_comment is not None:
            del self.last_comment[:]
        self.pos += 1
        start = self.pos
        data = self.data
        while self.pos < self.end:
            byte = data[self.pos]
            if byte == 0x28:
                level += 1
            elif byte == 0x29:
                level -= 1
                if level == 0:
                    if self.last_comment is not None:
                        self.last_comment += data[start:self.pos]
                    self.pos += 1
                    return self.more()
            elif byte == 0x5C:
                if self.last_comment is not None:
                    self.last_comment += data[start:self.pos]
                start = self.pos + 1
                self.pos += 1
                if self.pos >= self.end:
                    return -1
            self.pos += 1
        return -1

    def skip_lwsp(self) -> int:
        data = self.data
        while self.pos < self.end:
            byte = data[self.pos]
            if byte in _LWSP:
                self.pos += 1
                continue
            if byte != 0x28:
                break
            if self.skip_comment() < 0:
                return -1
        return self.more()

    def _run(self, allowed: frozenset[int], out: bytearray) -> int:
        start = self.pos
        data = self.data
        while self.pos < self.end and data[self.pos] in allowed:
            self.pos += 1
        out += data[start:self.pos]
        return self.skip_lwsp() if self.pos < self.end else 0

    def dot_atom(self, out: bytearray) -> int:
        """dot-atom, allowing white space and comments around the dots as RFC 822 did."""
        if self.pos >= self.end or self.data[self.pos] not in ATEXT:
            return -1
        while True:
            ret = self._run(ATEXT, out)
            if ret <= 0:
                return ret
            if self.data[self.pos] != 0x2E:
                return 1
            self.pos += 1
            out.append(0x2E)
            ret = self.skip_lwsp()
            if ret <= 0:
                return ret

    def quoted_string(self, out: bytearray) -> int:
        self.pos += 1
        start = self.pos
        data = self.data
        while self.pos < self.end:
            byte = data[self.pos]
            if byte == 0x22:
                out += data[start:self.pos]
                self.pos += 1
                return self.skip_lwsp()
            if byte == 0x0A:  # folding inside the quotes: drop the line break, keep the white space
                stop = self.pos - 1 if self.pos > start and data[self.pos - 1] == 0x0D else self.pos
                out += data[start:stop]
                start = self.pos + 1
            elif byte == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    return -1
                out += data[start:self.pos - 1]
                start = self.pos
            self.pos += 1
        return -1

    def phrase(self, out: bytearray) -> int:
        if self.pos >= self.end:
            return 0
        if self.data[self.pos] == 0x2E:
            return -1
        while True:
            ret = self.quoted_string(out) if self.data[self.pos] == 34 else self._run(ATEXT | {46}, out)
            if ret <= 0:
                return ret
            byte = self.data[self.pos]
            if byte not in ATEXT and byte not in (0x22, 0x2E):
                break
            out.append(0x20)
        return self.skip_lwsp()

    def domain_literal(self, out: bytearray) -> int:
        start = self.pos
        data = self.data
        while self.pos < self.end:
            byte = data[self.pos]
            if byte == 0x5C:
                self.pos += 1
                if self.pos >= self.end:
                    break
            elif byte == 0x5D:
                self.pos += 1
                out += data[start:self.pos]
                return self.skip_lwsp()
            self.pos += 1
        return -1

    def domain(self, out: bytearray) -> int:
        self.pos += 1  # the '@'
        if self.skip_lwsp() <= 0:
            return -1
        if self.data[self.pos] == 0x5B:
            return self.domain_literal(out)
        return self.dot_atom(out)
