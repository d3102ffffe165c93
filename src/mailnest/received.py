"""Messages as an API client receives them: typed views of mailnest's JSON, and what tests look for in them.

Pure: built from JSON and raw bytes already fetched, so the same objects serve the sync and the async client.
Links and one-time codes are pulled out of bodies here because every test of a sign-up flow needs them.
"""

from __future__ import annotations

import email
import email.message
import email.policy
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from html.parser import HTMLParser
from typing import Any, overload

from .mime.content import unclosed_tail_as_text
from .models import Address, Envelope, TLSInfo

# A URL in running text ends at whitespace, quotes or angle brackets; trailing punctuation belongs to the sentence.
_URL_IN_TEXT = re.compile(r"""\b(?:https?|ftp)://[^\s<>"'`]+""", re.IGNORECASE)
_TRAILING_PUNCTUATION = ".,;:!?'\""
_EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# The marked sections HTMLParser knows ("<![CDATA[", MS Office's "<![if"); it raises on any other "<![".
_MARKED_SECTION = re.compile(r"<!\[(?!(?:temp|cdata|ignore|include|rcdata|if|else|endif)(?![-_.a-z0-9]))", re.I)
_EMAIL_ADDRESS_AT_RUN_START = re.compile(r"(?<![\w.+-])" + _EMAIL_ADDRESS.pattern)
DEFAULT_CODE = re.compile(r"(?<![\w-])\d{4,8}(?![\w-])")
_LINK_ATTRIBUTES = {"a": "href", "area": "href"}
# Absolute targets only: a relative href means nothing outside the sender's site, and script is not a link.
_ABSOLUTE = re.compile(r"(?!javascript:)[a-z][a-z0-9+.-]*:", re.IGNORECASE)


def _datetime(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _address(value: object) -> Address | None:
    if not isinstance(value, Mapping) or not (value.get("Name") or value.get("Address")):
        return None  # Mailpit renders a missing From as an empty object
    return Address(str(value.get("Name") or ""), str(value.get("Address") or ""))


def _addresses(value: object) -> tuple[Address, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return ()
    return tuple(a for a in map(_address, value) if a is not None)


def _envelope(value: object) -> Envelope | None:
    if not isinstance(value, Mapping):
        return None
    tls = value.get("TLS")
    tls_info = None
    if isinstance(tls, Mapping):
        tls_info = TLSInfo(str(tls.get("Version") or ""), str(tls.get("Cipher") or ""))
    elif tls is True:
        tls_info = TLSInfo("", "")
    return Envelope(
        mail_from=str(value.get("MailFrom") or ""),
        rcpt_tos=tuple(str(r) for r in value.get("RcptTo") or ()),
        helo=str(value.get("Helo") or ""),
        peer=str(value.get("Peer") or ""),
        received=_datetime(value.get("Received")),
        auth_user=value.get("AuthUser") or None,
        tls=tls_info,
    )


@dataclass(frozen=True, slots=True)
class MailSummary:
    """One row of a listing, search or wait: no bodies."""

    id: str
    message_id: str
    read: bool
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    created: datetime | None
    size: int
    attachments: int
    snippet: str
    tags: tuple[str, ...]
    folder: str = "INBOX"  # the IMAP folder an IMAP client filed it in; INBOX for delivered mail

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MailSummary:
        return cls(
            id=str(data["ID"]), message_id=str(data.get("MessageID") or ""), read=bool(data.get("Read")),
            from_=_address(data.get("From")), to=_addresses(data.get("To")), cc=_addresses(data.get("Cc")),
            bcc=_addresses(data.get("Bcc")), reply_to=_addresses(data.get("ReplyTo")),
            subject=str(data.get("Subject") or ""), created=_datetime(data.get("Created")),
            size=int(data.get("Size") or 0), attachments=int(data.get("Attachments") or 0),
            snippet=str(data.get("Snippet") or ""), tags=tuple(data.get("Tags") or ()),
            folder=str(data.get("Folder") or "INBOX"),
        )

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every address the message went to (To, Cc and envelope-only Bcc), lower-cased."""
        return tuple(a.address.lower() for a in (*self.to, *self.cc, *self.bcc))

    def __str__(self) -> str:
        return _one_line(self.subject, self.from_, self.recipients)


@dataclass(frozen=True, slots=True)
class MailPage(Sequence[MailSummary]):
    """One page of a listing or search; iterates over its summaries."""

    total: int
    unread: int
    messages_count: int
    start: int
    messages: tuple[MailSummary, ...]
    tags: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MailPage:
        messages = tuple(MailSummary.from_json(m) for m in data.get("messages") or ())
        return cls(
            total=int(data.get("total") or 0), unread=int(data.get("unread") or 0),
            messages_count=int(data.get("messages_count") or len(messages)), start=int(data.get("start") or 0),
            messages=messages, tags=tuple(data.get("tags") or ()),
        )

    @overload
    def __getitem__(self, index: int) -> MailSummary: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[MailSummary]: ...
    def __getitem__(self, index: int | slice) -> MailSummary | Sequence[MailSummary]:
        return self.messages[index]

    def __len__(self) -> int:
        return len(self.messages)

    def __iter__(self) -> Iterator[MailSummary]:
        return iter(self.messages)


@dataclass(frozen=True)
class MailAttachment:
    """An attachment or inline part as the API lists it; `content()` decodes it from the raw message."""

    part_id: str
    filename: str
    content_type: str
    content_id: str
    size: int
    inline: bool
    _raw: bytes = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any], raw: bytes, *, inline: bool) -> MailAttachment:
        return cls(str(data.get("PartID") or ""), str(data.get("FileName") or ""),
                   str(data.get("ContentType") or ""), str(data.get("ContentID") or ""),
                   int(data.get("Size") or 0), inline, raw)

    def content(self) -> bytes:
        """The decoded bytes of this part, taken from the raw message the client already holds."""
        message = email.message_from_bytes(self._raw, policy=email.policy.default)
        part = _section(message, self.part_id)
        if part is None or not self._describes(part):
            # Servers number parts their own way; fall back to the first leaf this listing describes.
            part = next((p for p in message.walk() if not p.is_multipart() and self._describes(p)), None)
        if part is None:
            raise LookupError(f"attachment {self.filename or self.part_id!r} is not in the raw message")
        payload = part.get_payload(decode=True)
        return payload if isinstance(payload, bytes) else b""

    def _describes(self, part: email.message.Message) -> bool:
        if self.filename and (part.get_filename() or "") != self.filename:
            return False
        if self.content_type and part.get_content_type() != self.content_type.split(";")[0].strip().lower():
            return False
        return not self.content_id or (part.get("Content-ID") or "").strip().strip("<>") == self.content_id


def _section(message: email.message.Message, part_id: str) -> email.message.Message | None:
    """IMAP section numbering (RFC 3501 6.4.5): "1", "2.1", ... ; a single-part body is section 1."""
    node = message
    for step in part_id.split("."):
        if not step.isdigit() or int(step) < 1:
            return None
        index = int(step) - 1
        if node.get_content_type() == "message/rfc822" and node.is_multipart():
            inner = node.get_payload(0)
            if not isinstance(inner, email.message.Message):
                return None
            node = inner
        if node.is_multipart():
            children = node.get_payload()
            if not isinstance(children, list) or index >= len(children):
                return None
            child = children[index]
            if not isinstance(child, email.message.Message):
                return None
            node = child
        elif index != 0:
            return None
    return node


@dataclass(frozen=True)
class Mail:
    """A whole message: the parsed fields the server sends, the raw bytes, and helpers for tests."""

    id: str
    message_id: str
    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    return_path: str
    subject: str
    list_unsubscribe: str
    date: datetime | None
    tags: tuple[str, ...]
    text: str
    html: str
    size: int
    attachments: tuple[MailAttachment, ...]
    inline: tuple[MailAttachment, ...]
    envelope: Envelope | None  # None when the server (e.g. Mailpit) does not report the SMTP envelope
    raw: bytes = field(repr=False)
    folder: str = "INBOX"  # the IMAP folder an IMAP client filed it in; INBOX for delivered mail
    # (code, text) for each way the bytes break RFC 5321/5322 line rules: bare-lf, bare-cr, nul, long-line, ...
    protocol_warnings: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any], raw: bytes) -> Mail:
        unsubscribe = data.get("ListUnsubscribe") or ""
        if isinstance(unsubscribe, Mapping):  # Mailpit sends {"Header": ..., "Links": [...], ...}
            unsubscribe = unsubscribe.get("Header") or ""
        return cls(
            id=str(data["ID"]), message_id=str(data.get("MessageID") or ""), from_=_address(data.get("From")),
            to=_addresses(data.get("To")), cc=_addresses(data.get("Cc")), bcc=_addresses(data.get("Bcc")),
            reply_to=_addresses(data.get("ReplyTo")), return_path=str(data.get("ReturnPath") or ""),
            subject=str(data.get("Subject") or ""), list_unsubscribe=str(unsubscribe),
            date=_datetime(data.get("Date")), tags=tuple(data.get("Tags") or ()),
            text=str(data.get("Text") or ""), html=str(data.get("HTML") or ""), size=int(data.get("Size") or 0),
            attachments=tuple(MailAttachment.from_json(a, raw, inline=False) for a in data.get("Attachments") or ()),
            inline=tuple(MailAttachment.from_json(a, raw, inline=True) for a in data.get("Inline") or ()),
            envelope=_envelope(data.get("Envelope")), raw=raw, folder=str(data.get("Folder") or "INBOX"),
            protocol_warnings=tuple((str(w.get("Code") or ""), str(w.get("Text") or ""))
                                    for w in data.get("ProtocolWarnings") or () if isinstance(w, Mapping)),
        )

    @cached_property
    def email(self) -> email.message.EmailMessage:
        """The raw message parsed by the standard library, for anything the fields above leave out."""
        message = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        return message

    @cached_property
    def headers(self) -> dict[str, list[str]]:
        """Every header, decoded, in order of appearance; repeated headers keep every value."""
        result: dict[str, list[str]] = {}
        message = self.email
        # One header object at a time: `items()` would build them all first, and keeping thousands of them alive
        # (a message with many Received headers) makes the garbage collector's passes grow with each one.
        for name, value in message.raw_items():
            result.setdefault(name, []).append(str(message.policy.header_fetch_parse(name, value)))
        return result

    @property
    def recipients(self) -> tuple[str, ...]:
        """Every address the message went to: the envelope when known, otherwise To, Cc and Bcc."""
        if self.envelope is not None and self.envelope.rcpt_tos:
            return tuple(r.lower() for r in self.envelope.rcpt_tos)
        return tuple(a.address.lower() for a in (*self.to, *self.cc, *self.bcc))

    @cached_property
    def links(self) -> tuple[str, ...]:
        """Every URL in the text body, then in the HTML body (hrefs and visible text), entities decoded,
        each once, in order of first appearance."""
        found = _urls_in_text(self.text)
        if self.html:
            found.extend(_HTMLText.of(self.html).links)
        return tuple(dict.fromkeys(found))

    def first_link(self, matching: str | re.Pattern[str] | None = None) -> str:
        """The first link containing `matching` (a substring) or matching it (a compiled regex).

        Raises LookupError naming the links that were there, so a failing test says what the mail held.
        """
        for link in self.links:
            if matching is None or (matching.search(link) if isinstance(matching, re.Pattern) else matching in link):
                return link
        wanted = "any link" if matching is None else f"a link matching {_describe(matching)}"
        raise LookupError(f"{wanted} in message {self.subject!r}; its links: {list(self.links) or 'none'}")

    def codes(self, pattern: str | re.Pattern[str] = DEFAULT_CODE) -> list[str]:
        """One-time codes in the subject and the body (4 to 8 digits unless told otherwise), each once, in order:
        the subject's, the text part's, then those only the HTML part holds (a code may be in the HTML alone).

        URLs and e-mail addresses are skipped so digits inside them are not taken for codes. A pattern with a
        group yields the group: codes(r"code: (\\w+)").
        """
        regex = re.compile(pattern) if isinstance(pattern, str) else pattern
        html_text = _HTMLText.of(self.html).text if self.html else ""
        haystack = "\n".join(_without_addresses(_URL_IN_TEXT.sub(" ", part))
                             for part in (self.subject, self.text, html_text) if part)
        found = [m.group(1) if m.groups() else m.group(0) for m in regex.finditer(haystack)]
        return list(dict.fromkeys(found))

    def __str__(self) -> str:
        return _one_line(self.subject, self.from_, self.recipients)


def _one_line(subject: str, from_: Address | None, recipients: tuple[str, ...]) -> str:
    return f"{subject!r} from {from_ or '(no From)'} to {', '.join(recipients) or '(nobody)'}"


def _describe(matching: str | re.Pattern[str]) -> str:
    return f"/{matching.pattern}/" if isinstance(matching, re.Pattern) else repr(matching)


def _trim(url: str) -> str:
    end = _without_punctuation(url, len(url))
    # A closing bracket is part of the URL only when the URL opened one (Wikipedia-style paths). Counted once
    # and cut by index: a URL ending in thousands of ")" costs one pass, not one pass per ")".
    for opening, closing in ("()", "[]", "{}"):
        unopened = url.count(closing, 0, end) - url.count(opening, 0, end)
        while unopened > 0 and end > 0 and url[end - 1] == closing:
            end = _without_punctuation(url, end - 1)
            unopened -= 1
    return url[:end]


def _without_punctuation(url: str, end: int) -> int:
    while end > 0 and url[end - 1] in _TRAILING_PUNCTUATION:
        end -= 1
    return end


def _without_addresses(text: str) -> str:
    """`text` with every e-mail address replaced by a space (as `_EMAIL_ADDRESS.sub(" ", text)`), in linear time.

    A plain search retries the pattern at every character of a long run of word characters that no "@" follows.
    A match can only start where such a run starts, or right where the previous match ended (inside a run).
    """
    out: list[str] = []
    pos = 0
    while True:
        m = _EMAIL_ADDRESS.match(text, pos) or _EMAIL_ADDRESS_AT_RUN_START.search(text, pos)
        if m is None:
            break
        out.append(text[pos:m.start()])
        out.append(" ")
        pos = m.end()
    out.append(text[pos:])
    return "".join(out)


def _urls_in_text(text: str) -> list[str]:
    return [_trim(m.group(0)) for m in _URL_IN_TEXT.finditer(text)]


class _HTMLText(HTMLParser):
    """Collects link targets and visible text in document order (entities decoded by the parser)."""

    _INVISIBLE = frozenset({"script", "style", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self._text: list[str] = []
        self._hidden = 0

    @classmethod
    def of(cls, html: str) -> _HTMLText:
        html = unclosed_tail_as_text(html)  # else HTMLParser takes quadratic time on "<a<a<a..."
        try:
            return cls._parsed(html)
        except AssertionError:  # HTMLParser gives up on "<![" not followed by a keyword it knows
            pass
        try:
            return cls._parsed(_MARKED_SECTION.sub("&lt;![", html))
        except AssertionError:
            return cls._parsed(html.replace("<", "&lt;"))

    @classmethod
    def _parsed(cls, html: str) -> _HTMLText:
        parser = cls()
        parser.feed(html)
        parser.close()
        return parser

    @property
    def text(self) -> str:
        return " ".join(self._text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._INVISIBLE:
            self._hidden += 1
        attribute = _LINK_ATTRIBUTES.get(tag)
        if attribute:
            for name, value in attrs:
                if name == attribute and value and _ABSOLUTE.match(value.strip()):
                    self.links.append(value.strip())

    def handle_endtag(self, tag: str) -> None:
        if tag in self._INVISIBLE and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        self._text.append(data)
        self.links.extend(_urls_in_text(data))
