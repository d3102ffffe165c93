"""RFC 5322 address lists as IMAP servers read them (ENVELOPE, SEARCH FROM/TO/CC/BCC). Pure.

The rules are Dovecot's, our reference server, so answers match it for broken input as well: comments are
skipped (the last one names an address that has no display name), a missing local part or domain becomes
MISSING_MAILBOX / MISSING_DOMAIN, groups become start and end markers. Most real headers are plain lists of
`Name <local@domain>`; a regular expression recognizes those and builds the same result without the lexer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .rfc822 import ATEXT, Lexer


@dataclass(slots=True)
class Address:
    """One entry of an address list. A group start has only `mailbox` (the group name); a group end has
    nothing at all."""

    name: bytes | None = None
    route: bytes | None = None
    mailbox: bytes | None = None
    domain: bytes | None = None
    invalid: bool = False


class _AddressParser:
    def __init__(self, data: bytes) -> None:
        self.lx = Lexer(data, keep_comments=True)
        self.out: list[Address] = []
        self.addr = Address()
        self._text = bytearray()  # the local part just read; a lone word may turn out to start a name

    def add(self) -> None:
        self.out.append(self.addr)
        self.addr = Address()

    def local_part(self) -> int:
        text = self._text = bytearray()
        lx = self.lx
        ret = lx.quoted_string(text) if lx.cur() == 0x22 else lx.dot_atom(text)
        if ret < 0:
            return -1
        self.addr.mailbox = bytes(text)
        return ret

    def domain(self) -> int:
        text = bytearray()
        ret = self.lx.domain(text)
        if ret < 0:
            return -1
        self.addr.domain = bytes(text)
        return ret

    def domain_list(self) -> int:
        lx = self.lx
        text = bytearray()
        while True:
            if lx.pos >= lx.end:
                return 0
            if lx.cur() != 0x40:
                break
            if text:
                text.append(0x2C)
            text.append(0x40)
            ret = lx.domain(text)
            if ret <= 0:
                return ret
            while lx.skip_lwsp() > 0 and lx.cur() == 0x2C:
                lx.pos += 1
        self.addr.route = bytes(text)
        return 1

    def angle_addr(self) -> int:
        lx = self.lx
        lx.pos += 1  # '<'
        if lx.skip_lwsp() <= 0:
            return -1
        if lx.cur() == 0x40:
            if self.domain_list() > 0 and lx.cur() == 0x3A:
                lx.pos += 1
            else:
                self.addr.route = b"INVALID_ROUTE"
                if lx.pos >= lx.end:
                    return -1
            if lx.skip_lwsp() <= 0:
                return -1
        if lx.cur() != 0x3E:  # "<>" is no address, but no syntax error either
            if self.local_part() <= 0:
                return -1
            if lx.cur() == 0x40 and self.domain() <= 0:
                return -1
        if lx.cur() != 0x3E:
            return -1
        lx.pos += 1
        return lx.skip_lwsp()

    def name_addr(self) -> int:
        lx = self.lx
        text = bytearray()
        if lx.phrase(text) <= 0 or lx.cur() != 0x3C:
            return -1
        self.addr.name = bytes(text) or None
        if self.angle_addr() < 0:
            self.addr.domain = b"SYNTAX_ERROR"
            self.addr.invalid = True
        return 1 if lx.pos < lx.end else 0

    def addr_spec(self) -> int:
        lx = self.lx
        assert lx.last_comment is not None
        del lx.last_comment[:]
        quoted = lx.cur() == 0x22
        ret = self.local_part()
        ret2 = -2
        if ret <= 0:
            self.addr.invalid = True
        if ret != 0 and lx.pos < lx.end and lx.cur() == 0x40:
            ret2 = self.domain()
            if ret2 <= 0:
                ret = ret2
        if lx.last_comment:
            self.addr.name = bytes(lx.last_comment)
        elif ret2 == -2:
            # A lone word is a mailbox without domain; more words after it make it a display name.
            text = self._text
            text.append(0x20)
            before = len(text)
            lx.phrase(text)
            if len(text) != before:
                self.addr.mailbox = None
                self.addr.name = bytes(text)
            elif not quoted:
                self.addr.domain = b""
            self.addr.invalid = True
            ret = -1
        return ret

    def fixed(self) -> None:
        if self.addr.mailbox is None:
            self.addr.mailbox = b"MISSING_MAILBOX"
            self.addr.invalid = True
        if not self.addr.domain:
            self.addr.domain = b"MISSING_DOMAIN"
            self.addr.invalid = True
        self.add()

    def mailbox(self) -> int:
        lx = self.lx
        start = lx.pos
        ret = self.name_addr()
        if ret < 0:
            lx.pos = start
            self.addr = Address()
            ret = self.addr_spec()
            a = self.addr
            if a.invalid and a.name is None and a.mailbox is not None and a.domain is None:
                a.name, a.mailbox = a.mailbox, None
        if ret < 0:
            self.addr.invalid = True
        self.fixed()
        return ret

    def group(self) -> int:
        lx = self.lx
        text = bytearray()
        if lx.phrase(text) <= 0 or lx.cur() != 0x3A:
            return -1
        lx.pos += 1
        ret = lx.skip_lwsp()
        self.addr = Address(mailbox=bytes(text), invalid=ret <= 0)
        self.add()
        if ret > 0 and lx.cur() != 0x3B:
            while True:
                self.mailbox()
                if lx.pos >= lx.end or lx.cur() != 0x2C:
                    break
                lx.pos += 1
                if lx.skip_lwsp() <= 0:
                    ret = -1
                    break
        if ret >= 0:
            if lx.pos >= lx.end or lx.cur() != 0x3B:
                ret = -1
            else:
                lx.pos += 1
                ret = lx.skip_lwsp()
        self.addr = Address(invalid=ret < 0)
        self.add()
        return 0 if ret == 0 else 1

    def address(self) -> int:
        start = self.lx.pos
        ret = self.group()
        if ret < 0:
            self.lx.pos = start
            self.addr = Address()
            ret = self.mailbox()
        return ret

    def address_list(self) -> None:
        lx = self.lx
        if lx.skip_lwsp() <= 0:
            return
        while True:
            if self.address() == 0:
                break
            if lx.pos >= lx.end or lx.cur() != 0x2C:
                break
            lx.pos += 1
            ret = lx.skip_lwsp()
            if ret <= 0:
                if ret < 0:
                    self.addr = Address()
                    self.fixed()
                break


_ATOM = rb"[!#$%&'*+\-/=?^_`{|}~0-9A-Za-z\x80-\xff]+"
_DOT_ATOM = _ATOM + rb"(?:\." + _ATOM + rb")*"
_WS = rb"(?:[ \t]|\r?\n[ \t])*"
def _item(named: bool) -> bytes:
    def group(name: str) -> bytes:
        return f"(?P<{name}>".encode() if named else b"(?:"

    return (b"(?:" + group("local") + _DOT_ATOM + b")@" + group("domain") + _DOT_ATOM + b")"
            b"|(?:" + group("phrase") + _ATOM + rb"(?:(?:[ \t]|\r?\n[ \t])+" + _ATOM + b")*)"
            b'|"' + group("quoted") + rb'[^"\\\r\n]*)")?' + _WS
            + b"<" + group("alocal") + _DOT_ATOM + b")@" + group("adomain") + _DOT_ATOM + b")>)")


_SIMPLE_ITEM = re.compile(_WS + _item(True) + _WS + rb"(?:,|$)")
_SIMPLE_LIST = re.compile(_WS + _item(False) + _WS + rb"(?:," + _WS + _item(False) + _WS + rb")*")
_BLANKS = re.compile(rb"(?:[ \t]|\r?\n[ \t])+")


def _simple(value: bytes) -> list[Address] | None:
    """The addresses of a plain list (no comments, groups, routes, escapes or literals); None otherwise."""
    if not _SIMPLE_LIST.fullmatch(value):
        return None
    out = []
    for match in _SIMPLE_ITEM.finditer(value):
        if match.group("local") is not None:
            out.append(Address(None, None, match.group("local"), match.group("domain")))
            continue
        phrase, quoted = match.group("phrase"), match.group("quoted")
        name = _BLANKS.sub(b" ", phrase) if phrase is not None else quoted or None
        out.append(Address(name, None, match.group("alocal"), match.group("adomain")))
    return out


def parse_addresses(value: bytes) -> list[Address]:
    """An address header's value -> its addresses, with groups as start/end markers."""
    simple = _simple(value)
    return simple if simple is not None else slow_parse_addresses(value)


def slow_parse_addresses(value: bytes) -> list[Address]:
    """The full parser alone (tests compare it with the fast path)."""
    parser = _AddressParser(value)
    parser.address_list()
    return parser.out


def _maybe_quoted(value: bytes, escape_dot: bool) -> bytes:
    if all(c in ATEXT or (c == 0x2E and not escape_dot) for c in value):
        return value
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def address_text(addresses: list[Address]) -> bytes:
    """Addresses written back as `Name <local@domain>, ...`: the form Dovecot matches SEARCH FROM/TO/... in."""
    out = bytearray()
    first = True
    in_group = False
    for a in addresses:
        if not first:
            out += b", "
        first = False
        if a.domain is None:
            if not in_group:
                name = a.mailbox or b""
                out += (name if b"=?" in name else _maybe_quoted(name, True)) if name else b'""'
                out += b": "
                first = True
            else:
                if out.endswith(b", "):
                    del out[-2:]
                elif out.endswith(b": "):
                    del out[-1:]
                out += b";"
            in_group = not in_group
            continue
        mailbox = a.mailbox or b""
        if a.name is not None:
            out += a.name if b"=?" in a.name else _maybe_quoted(a.name, True)
        if a.route is not None or mailbox or a.domain:
            if a.name:
                out += b" "
            out += b"<"
            if a.route is not None:
                out += a.route + b":"
            out += _maybe_quoted(mailbox, False) if mailbox else b'""'
            if a.domain:
                out += b"@" + a.domain
            out += b">"
    return bytes(out)
