"""The MIME tree of a raw message as byte offsets: what IMAP BODYSTRUCTURE and BODY[section] are made from.

Part boundaries follow Dovecot's message parser (Dovecot is mailnest's IMAP reference), so that
raw[body_start:body_end] is exactly what Dovecot returns for BODY[part_id] (before Dovecot turns bare LF into
CRLF on output). In short:

- A header block ends after its first empty line, or at the end of the message.
- A boundary line starts with "--" followed by one of the boundaries currently open (this multipart's or any
  enclosing one's); only the beginning of the line has to match (trailing blanks or garbage are fine), the
  longest matching boundary wins, and "--" right after the boundary closes that multipart. Such a line also
  ends a header block early.
- The line break before a boundary line belongs to the boundary, so a part's body excludes it; a boundary line
  directly at the start of a body (or of a header) takes no line break. An enclosing multipart's boundary
  right after a header's empty line takes that empty line as its line break (the header then ends before it).
- A boundary of an enclosing multipart ends every part nested inside it (a missing end boundary is harmless);
  without any boundary, parts run to the end of the message.
- Children of multipart/digest default to message/rfc822; everything else defaults to text/plain. Content-*
  headers count only in MIME parts (a MIME-Version or Content-Type header, or any part of a multipart).
- Nesting deeper than 100 levels, or more than 10000 parts, stops the splitting (Dovecot's limits).

Never raises on any input: offsets are all that is computed here; decoding happens elsewhere.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from . import header
from . import params as _params
from .boundaries import Match as _Match
from .boundaries import OpenBoundaries as _OpenBoundaries
from .params import Params

MAX_NESTING = 100
MAX_PARTS = 10000
_STRAY_BREAK = re.compile(rb"[\r\n](?![ \t]|\Z)")
_BOUNDARY_MAX = 80  # longer boundaries are cut to this length (RFC 2046 allows 70)


class PartKind(enum.Enum):
    """How a part's body is split: what Dovecot calls the part's flags."""

    MULTIPART = "multipart"  # children are the parts between its boundaries
    MESSAGE = "message"  # message/rfc822: one child, the encapsulated message
    TEXT = "text"  # text/* (BODYSTRUCTURE adds a line count)
    OTHER = "other"  # any other leaf


@dataclass(frozen=True, slots=True)
class MimePart:
    """One node of the MIME tree. Offsets index the raw message bytes; ranges are [start, end).

    The top node is the message itself (part_id ""). Below a multipart, parts are numbered "1", "2", ... and
    "1.1", ... as in IMAP. A message/rfc822 part has a single child, the encapsulated message, whose id is the
    section of the message/rfc822 body (the part's own id; "1" or "<id>.1" when the message/rfc822 is the body
    of a message itself): its header is BODY[<id>.HEADER], its body BODY[<id>.TEXT], its parts "<id>.1", ...
    A non-multipart message's body is section "1" (or "<id>.1"). `find_part` resolves sections as Dovecot does.

    Fields named after Content-* headers are what Dovecot parses from them, for BODYSTRUCTURE: None (NIL) when
    the header is absent or unusable, text decoded from UTF-8 with surrogateescape (encode the same way for
    the exact bytes), line breaks removed. They are all None / empty in a part that is not MIME.
    """

    part_id: str
    header_start: int
    header_end: int  # just after the empty line that ends the header (BODY[n.MIME] / BODY[HEADER] is [start, end))
    body_start: int  # == header_end
    body_end: int
    kind: PartKind
    content_type: str  # lower-case "type/subtype" with RFC defaults: what the part is, for display and decoding
    media_type: str | None  # the Content-Type's type as written ("TEXT"); None without a Content-Type
    media_subtype: str | None  # as written; None when the Content-Type has no "/"; "" when nothing follows it
    params: Params  # Content-Type parameters as Dovecot reports them; `param()` decodes them
    encoding: str | None  # Content-Transfer-Encoding as written
    content_id: str | None
    description: str | None
    md5: str | None
    disposition: str | None  # Content-Disposition type as written ("" when only parameters were given)
    disposition_params: Params
    language: tuple[str, ...]  # Content-Language tags; empty when absent
    location: str | None
    body_lines: int  # LF count in the body (BODYSTRUCTURE lines for text/* and message/rfc822)
    body_octets: int  # body size with every bare LF counted as CRLF (BODYSTRUCTURE size, as Dovecot sends CRLF)
    children: tuple[MimePart, ...] = ()

    @property
    def body_size(self) -> int:
        return self.body_end - self.body_start

    @property
    def is_multipart(self) -> bool:
        return self.kind is PartKind.MULTIPART

    @property
    def is_message(self) -> bool:
        return self.kind is PartKind.MESSAGE

    def param(self, name: str) -> str | None:
        """A Content-Type parameter, decoded (RFC 2231 and RFC 2047); None when absent."""
        return _params.decoded(self.params, name)

    def disposition_param(self, name: str) -> str | None:
        return _params.decoded(self.disposition_params, name)

    @property
    def filename(self) -> str:
        """Content-Disposition filename, else Content-Type name; decoded; "" when neither is given."""
        return self.disposition_param("filename") or self.param("name") or ""

    @property
    def charset(self) -> str:
        return (self.param("charset") or "").strip()

    def walk(self) -> list[MimePart]:
        """This part and every part below it, depth first, in message order."""
        out: list[MimePart] = []
        stack = [self]
        while stack:
            node = stack.pop()
            out.append(node)
            stack.extend(reversed(node.children))
        return out


@dataclass(frozen=True, slots=True)
class _Content:
    kind: PartKind
    content_type: str
    boundary: bytes | None
    digest: bool
    media_type: str | None = None
    media_subtype: str | None = None
    params: Params = ()
    encoding: str | None = None
    content_id: str | None = None
    description: str | None = None
    md5: str | None = None
    disposition: str | None = None
    disposition_params: Params = ()
    language: tuple[str, ...] = ()
    location: str | None = None


def _one_line(value: bytes) -> str:
    # As Dovecot keeps a raw header value: NUL becomes U+FFFD; and as it puts the value on one line: a line
    # break goes, and so does a stray CR or LF, except that one not followed by a blank becomes a space.
    if b"\0" in value:
        value = value.replace(b"\0", "\ufffd".encode())
    if b"\r" in value or b"\n" in value:
        value = _STRAY_BREAK.sub(b" ", value.replace(b"\r\n", b"\n")).replace(b"\r", b"").replace(b"\n", b"")
    return value.decode("utf-8", "surrogateescape")


def _content(fields: list[tuple[bytes, bytes]], mime_part: bool, in_digest: bool) -> _Content:
    """What the Content-* headers of a header block say, with Dovecot's precedence rules."""
    is_mime = mime_part
    media: str | None = None
    media_ok = False
    ctype_params: Params = ()
    values: dict[str, str | None] = {"id": None, "description": None, "md5": None, "location": None}
    encoding: str | None = None
    disp: tuple[str, Params] | None = None
    language: tuple[str, ...] = ()
    for name, value in fields:
        nul = name.find(b"\0")
        lname = (name if nul < 0 else name[:nul]).lower()
        if lname == b"mime-version":
            is_mime = True
            continue
        if not lname.startswith(b"content-"):
            continue
        sub = lname[8:]
        if sub == b"type":
            is_mime = True
            if media is None:
                media, media_ok, ctype_params = _params.content_type(value)
        elif sub == b"transfer-encoding":
            if encoding is None:
                encoding = _params.transfer_encoding(value)
        elif sub == b"disposition":
            if disp is None or not disp[1]:  # a later header replaces one without parameters
                disp = _params.disposition(value) or disp
        elif sub == b"language":
            if not language:
                language = _params.languages(value)
        elif sub in (b"id", b"description", b"md5", b"location"):
            key = sub.decode()
            if values[key] is None:
                values[key] = _one_line(value)
    if not is_mime:
        media = None
    lower = (media or "").lower()
    boundary: bytes | None = None
    digest = False
    if media is None:
        kind = PartKind.MESSAGE if in_digest else PartKind.TEXT
    elif lower == "message/rfc822":
        kind = PartKind.MESSAGE
    elif lower[:4] == "text" and lower[4:5] in ("", "/"):
        kind = PartKind.TEXT
    elif lower.startswith("multipart/"):
        kind = PartKind.MULTIPART
        digest = lower == "multipart/digest"
        if media_ok:
            for key, val in ctype_params:
                if key.lower() == "boundary":
                    boundary = val.encode("utf-8", "surrogateescape")[:_BOUNDARY_MAX]
                    break
    else:
        kind = PartKind.OTHER
    if media is None:
        content_type = "message/rfc822" if in_digest else "text/plain"
    else:
        main, _, subtype = lower.partition("/")
        if main and subtype:
            content_type = lower
        elif kind is PartKind.MULTIPART:
            content_type = "multipart/mixed"
        else:
            content_type = "text/plain"  # RFC 2045 5.2: a syntactically invalid Content-Type means text/plain
    if not is_mime:
        return _Content(kind, content_type, None, False)
    media_type = media_subtype = None
    if media is not None:
        media_type, slash, rest = media.partition("/")
        media_subtype = rest if slash else None
    return _Content(
        kind, content_type, boundary, digest, media_type, media_subtype, ctype_params, encoding,
        values["id"], values["description"], values["md5"], disp[0] if disp else None,
        disp[1] if disp else (), language, values["location"],
    )


class _Scanner:
    def __init__(self, raw: bytes, count: bool) -> None:
        self.raw = raw
        self.size = len(raw)
        self.count = count
        self.parts = 0
        self.top_fields: list[tuple[bytes, bytes]] = []
        self.boundaries = _OpenBoundaries(raw)

    def _line_match(self, line: int) -> tuple[int, bool] | None:
        if self.parts >= MAX_PARTS:
            return None
        return self.boundaries.line_match(line)

    def find_boundary(self, start: int) -> _Match | None:
        """The first boundary line at or after `start`, which is the beginning of a line."""
        if not self.boundaries:
            return None
        found = self._line_match(start)
        if found is not None:
            return _Match(start, start, found[0], found[1])
        pos = start
        while self.parts < MAX_PARTS:
            lf = self.boundaries.next_line(pos)
            if lf < 0:
                return None
            line = lf + 1
            found = self._line_match(line)
            if found is not None:
                cut = lf - 1 if lf - 1 >= start and self.raw[lf - 1] == 0x0D else lf
                return _Match(line, cut, found[0], found[1])
            pos = line
        return None

    def _header(self, start: int) -> tuple[int, int, _Match | None]:
        """(end of the last header line, end of the block, boundary line that cut it short) for a header."""
        if not self.boundaries:
            return (*header.block_end(self.raw, start), None)
        found = self._line_match(start)
        if found is not None:
            return start, start, _Match(start, start, found[0], found[1])
        # A boundary line before the empty line cuts the header short; the empty line is only looked for up to
        # the first boundary line, so many short parts without one do not each scan the rest of the message.
        boundary = self.find_boundary(start)
        if boundary is None:
            return (*header.block_end(self.raw, start), None)
        last_line_end, end = header.block_end(self.raw, start, boundary.line)
        if last_line_end < boundary.line:
            return last_line_end, end, None
        return boundary.cut, boundary.cut, _Match(boundary.line, boundary.line, boundary.level, boundary.close)

    def _count(self, start: int, end: int, children: tuple[MimePart, ...]) -> tuple[int, int]:
        """(LF count, CRLF count) in raw[start:end], reusing the children's counts: each byte is counted once
        however deep the nesting. No range edge falls between a CR and its LF, so the sums are exact."""
        raw, lines, crlfs, pos = self.raw, 0, 0, start
        for child in children:
            lines += raw.count(b"\n", pos, child.body_start) + child.body_lines
            crlfs += raw.count(b"\r\n", pos, child.body_start)
            crlfs += child.body_end - child.body_start + child.body_lines - child.body_octets
            pos = child.body_end
        return lines + raw.count(b"\n", pos, end), crlfs + raw.count(b"\r\n", pos, end)

    def _node(self, part_id: str, start: int, header_end: int, body_end: int, content: _Content,
              children: tuple[MimePart, ...], kind: PartKind) -> MimePart:
        lines = octets = 0
        if self.count:
            lines, crlfs = self._count(header_end, body_end, children)
            octets = body_end - header_end + lines - crlfs
        c = content
        return MimePart(
            part_id, start, header_end, header_end, body_end, kind, c.content_type, c.media_type, c.media_subtype,
            c.params, c.encoding, c.content_id, c.description, c.md5, c.disposition, c.disposition_params,
            c.language, c.location, lines, octets, children,
        )

    def part(self, start: int, part_id: str, depth: int, mime_part: bool, in_digest: bool
             ) -> tuple[MimePart, _Match | None]:
        """Parse the part whose header starts at `start`; returns it and the boundary line that ended it.

        `mime_part` is true for a part of a multipart, false for a message (the top one or an encapsulated one),
        whose body, when not multipart, is addressed as section "<id>.1".
        """
        self.parts += 1
        body_section = part_id if mime_part else (f"{part_id}.1" if part_id else "1")
        last_line_end, header_end, cut_by = self._header(start)
        fields = header.fields(self.raw, start, header_end)
        if start == 0:
            self.top_fields = fields
        content = _content(fields, mime_part, in_digest)
        kind = content.kind
        if kind in (PartKind.MULTIPART, PartKind.MESSAGE) and (
                depth + 1 >= MAX_NESTING or self.parts >= MAX_PARTS):
            kind = PartKind.OTHER
        if cut_by is None and last_line_end < header_end and self.boundaries:
            # An enclosing boundary right after the empty line ends the part there, and takes the empty line as
            # the line break it owns; a multipart's own first boundary does not.
            own = kind is PartKind.MULTIPART and content.boundary is not None
            level = len(self.boundaries)
            if own:
                self.boundaries.push(content.boundary)  # type: ignore[arg-type]
            found = self._line_match(header_end)
            if own:
                self.boundaries.pop_to(level)
            if found is not None and not (own and found[0] == level):
                cut_by = _Match(header_end, header_end, found[0], found[1])
                header_end = last_line_end
        if cut_by is not None:
            # The header was cut short by a boundary: the body is empty (and so is an encapsulated message).
            children: tuple[MimePart, ...] = ()
            if kind is PartKind.MESSAGE:
                self.parts += 1
                inner = _content([], False, False)
                children = (self._node(body_section, header_end, header_end, header_end, inner, (), inner.kind),)
            return self._node(part_id, start, header_end, header_end, content, children, kind), cut_by
        if kind is PartKind.MULTIPART and content.boundary is not None:
            return self._multipart(start, header_end, part_id, depth, content)
        if kind is PartKind.MESSAGE:
            child, match = self.part(header_end, body_section, depth + 1, False, False)
            end = match.cut if match else self.size
            return self._node(part_id, start, header_end, end, content, (child,), kind), match
        match = self.find_boundary(header_end)
        end = match.cut if match else self.size
        return self._node(part_id, start, header_end, end, content, (), kind), match

    def _multipart(self, start: int, header_end: int, part_id: str, depth: int, content: _Content
                   ) -> tuple[MimePart, _Match | None]:
        assert content.boundary is not None
        level = len(self.boundaries)
        self.boundaries.push(content.boundary)
        prefix = part_id + "." if part_id else ""
        children: list[MimePart] = []
        match = self.find_boundary(header_end)
        end = self.size
        while match is not None:
            if match.level != level:
                end = match.cut
                break
            lf = self.raw.find(b"\n", match.line)
            if match.close:
                self.boundaries.pop_to(level)
                match = self.find_boundary(lf + 1) if lf >= 0 else None
                if match is not None:
                    end = match.cut
                break
            if lf < 0:
                match = None
                break
            child, match = self.part(lf + 1, f"{prefix}{len(children) + 1}", depth + 1, True, content.digest)
            children.append(child)
        self.boundaries.pop_to(level)
        return self._node(part_id, start, header_end, end, content, tuple(children), PartKind.MULTIPART), match


def structure(raw: bytes) -> MimePart:
    """The MIME tree of a raw message, with line counts and CRLF sizes filled in (for IMAP)."""
    return _Scanner(raw, count=True).part(0, "", 0, False, False)[0]


def scan(raw: bytes) -> tuple[MimePart, list[tuple[bytes, bytes]]]:
    """Like `structure`, without the counting pass over every body (body_lines and body_octets stay 0);
    also returns the top header's fields, which the scan had to split anyway."""
    scanner = _Scanner(raw, count=False)
    root = scanner.part(0, "", 0, False, False)[0]
    return root, scanner.top_fields


def find_part(root: MimePart, section: str) -> MimePart | None:
    """The part an IMAP section number ("", "1", "2.1.3") selects, as Dovecot resolves it.

    In a multipart, n is its n-th child; in anything else only 1 is valid and means the part itself; inside a
    message/rfc822 part numbering continues in the encapsulated message. For "n.HEADER"/"n.TEXT" use the
    encapsulated message: `part.children[0]` when `part.is_message`.
    """
    if not section:
        return root
    numbers = section.split(".")
    part: MimePart | None = root
    for i, item in enumerate(numbers):
        if part is None or not item.isdigit() or item.startswith("0"):
            return None
        n = int(item)
        more = i + 1 < len(numbers)
        if part.kind is PartKind.MULTIPART:
            part = part.children[n - 1] if n <= len(part.children) else None
        elif n != 1 or (more and part.kind is not PartKind.MESSAGE):
            return None
        if part is not None and more and part.kind is PartKind.MESSAGE and part.children:
            part = part.children[0]
    return part
