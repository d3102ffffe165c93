"""Client bytes -> IMAP commands. Pure: no I/O.

The server hands over one whole command: the line, and for every literal the `{n}` announcement, CRLF and
the n bytes, followed by the rest of the line, exactly as received. `parse_command` turns that into a
`Command` whose arguments are already checked against the command's grammar; anything wrong raises
`ParseError` with the reason the client is told (and the tag, when one could be read).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TypeVar

from .fetch_items import FetchItem, parse_fetch_items
from .search_keys import SearchKey, parse_search
from .sequence import SequenceSet, parse_sequence_set
from .tokens import Atom, ListToken, ParseError, Str, Token, tokenize
from .utf7 import decode_mailbox

__all__ = [
    "Command",
    "ParseError",
    "SequenceSet",
    "literal_announcement",
    "parse_command",
    "parse_sequence_set",
]

_T = TypeVar("_T")
_TAG = re.compile(rb"[\x21-\x7e]+")
_TAG_FORBIDDEN = set(b'(){%*"\\+')
_LITERAL_AT_END = re.compile(rb"\{(\d{1,20})(\+?)\}\r?\n?$")
_DATE_TIME = re.compile(r"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def literal_announcement(line: bytes) -> tuple[int, bool] | None:
    """For a line just read: `(size, synchronizing)` when it ends by announcing a literal, else None."""
    match = _LITERAL_AT_END.search(line)
    if not match:
        return None
    return int(match.group(1)), match.group(2) != b"+"


@dataclass(frozen=True, slots=True)
class Command:
    tag: str
    name: str  # upper case; UID commands are "UID FETCH" etc.
    args: dict[str, object] = field(default_factory=dict)

    @property
    def uid(self) -> bool:
        return self.name.startswith("UID ")

    def arg(self, key: str, kind: type[_T]) -> _T:
        """The argument `key` as the parser stored it for this command; any other type is a parser bug."""
        value = self.args[key]
        if not isinstance(value, kind):
            raise TypeError(f"{self.name}: argument {key} is {type(value).__name__}, not {kind.__name__}")
        return value

    @property
    def sequence_set(self) -> SequenceSet:
        return self.arg("set", SequenceSet)


class _Args:
    """A cursor over a command's tokens with typed getters."""

    def __init__(self, tokens: list[Token], command: str) -> None:
        self.tokens = tokens
        self.pos = 0
        self.command = command

    def more(self) -> bool:
        return self.pos < len(self.tokens)

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.more() else None

    def take(self, what: str) -> Token:
        if not self.more():
            raise ParseError(f"{self.command}: missing {what}")
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def end(self) -> None:
        if self.more():
            raise ParseError(f"{self.command}: unexpected extra arguments")

    def atom(self, what: str) -> str:
        token = self.take(what)
        if not isinstance(token, Atom) or token.section is not None:
            raise ParseError(f"{self.command}: {what} must be an atom")
        return token.text

    def astring(self, what: str) -> bytes:
        token = self.take(what)
        if isinstance(token, Str):
            return token.value
        if isinstance(token, Atom) and token.section is None:
            return token.value
        raise ParseError(f"{self.command}: {what} must be a string")

    def mailbox(self, what: str = "mailbox name") -> str:
        raw = self.astring(what)
        try:
            name = decode_mailbox(raw)
        except ValueError as exc:
            raise ParseError(f"{self.command}: {exc}") from None
        return "INBOX" if name.upper() == "INBOX" else name

    def list_(self, what: str) -> list[Token]:
        token = self.take(what)
        if not isinstance(token, ListToken):
            raise ParseError(f"{self.command}: {what} must be a parenthesized list")
        return token.items

    def sequence_set(self) -> SequenceSet:
        return parse_sequence_set(self.atom("sequence set"))


def _flag_list(tokens: list[Token], command: str) -> tuple[str, ...]:
    flags = []
    for token in tokens:
        if not isinstance(token, Atom) or token.section is not None or not token.text:
            raise ParseError(f"{command}: invalid flag")
        flag = token.text
        if flag.startswith("\\"):
            canonical = {f.lower(): f for f in SYSTEM_FLAGS}.get(flag.lower())
            if canonical is None:
                raise ParseError(f"{command}: unknown system flag {flag}")
            flag = canonical
        elif any(c in flag for c in '(){%*"]') or not flag.isprintable():
            raise ParseError(f"{command}: invalid keyword {flag!r}")
        flags.append(flag)
    return tuple(dict.fromkeys(flags))


SYSTEM_FLAGS = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent")


def parse_date_time(text: str) -> tuple[int, int, int, int, int, int, int]:
    """APPEND's date-time `"17-Jul-1996 02:44:25 -0700"` -> (year, month, day, h, m, s, offset minutes)."""
    match = _DATE_TIME.match(text)
    if not match:
        raise ParseError(f"Invalid date-time {text!r}")
    day, mon, year, hh, mm, ss, sign, oh, om = match.groups()
    if mon.title() not in MONTHS:
        raise ParseError(f"Invalid month in {text!r}")
    offset = (int(oh) * 60 + int(om)) * (-1 if sign == "-" else 1)
    values = (int(year), MONTHS.index(mon.title()) + 1, int(day), int(hh), int(mm), int(ss), offset)
    if not (1 <= values[2] <= 31 and values[3] < 24 and values[4] < 60 and values[5] < 61):
        raise ParseError(f"Invalid date-time {text!r}")
    return values


def _list_name(raw: bytes) -> str | None:
    """A LIST/LSUB reference or pattern as text (wildcards survive: they are never inside `&...-`)."""
    try:
        return decode_mailbox(raw)
    except ValueError:
        return None


def _parse_args(name: str, args: _Args) -> dict[str, object]:
    out: dict[str, object] = {}
    if name in ("CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE", "EXPUNGE", "UNSELECT",
                "IDLE", "NAMESPACE"):
        args.end()
    elif name == "LOGIN":
        out["user"] = args.astring("user name").decode("utf-8", "replace")
        out["password"] = args.astring("password").decode("utf-8", "replace")
        args.end()
    elif name == "AUTHENTICATE":
        out["mechanism"] = args.atom("mechanism").upper()
        if args.more():
            out["initial"] = args.atom("initial response")
        args.end()
    elif name in ("SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"):
        out["mailbox"] = args.mailbox()
        if name in ("SELECT", "EXAMINE") and args.more():
            args.list_("select parameters")  # CONDSTORE and friends are not offered; ignore politely
        args.end()
    elif name == "RENAME":
        out["mailbox"] = args.mailbox("existing mailbox name")
        out["new"] = args.mailbox("new mailbox name")
        args.end()
    elif name in ("LIST", "LSUB"):
        # Folder names are kept as text, so the reference and pattern are decoded the same way as every other
        # mailbox name; one that is not valid modified UTF-7 matches nothing (as on Dovecot), rather than BAD.
        out["reference"] = _list_name(args.astring("reference"))
        token: Token | None = args.take("mailbox pattern")
        if isinstance(token, Str | Atom) and not (isinstance(token, Atom) and token.section is not None):
            out["pattern"] = _list_name(token.value)
        else:
            raise ParseError(f"{name}: mailbox pattern must be a string")
        args.end()
    elif name == "STATUS":
        out["mailbox"] = args.mailbox()
        items = []
        for token in args.list_("status items"):
            if not isinstance(token, Atom) or token.text.upper() not in STATUS_ITEMS:
                raise ParseError("STATUS: unknown status item")
            items.append(token.text.upper())
        if not items:
            raise ParseError("STATUS: no status items")
        out["items"] = tuple(items)
        args.end()
    elif name == "APPEND":
        out["mailbox"] = args.mailbox()
        flags: tuple[str, ...] = ()
        date = None
        if isinstance(args.peek(), ListToken):
            flags = _flag_list(args.list_("flags"), name)
        token = args.peek()
        if isinstance(token, Str) and not token.literal:
            date = parse_date_time(token.value.decode("ascii", "replace"))
            args.pos += 1
        message = args.take("message literal")
        if not isinstance(message, Str) or not message.literal:
            raise ParseError("APPEND: the message must be sent as a literal")
        out.update(flags=flags, date=date, message=message.value)
        args.end()
    elif name in ("SEARCH", "UID SEARCH"):
        charset = None
        token = args.peek()
        if isinstance(token, Atom) and token.text.upper() == "CHARSET":
            args.pos += 1
            charset = args.astring("charset").decode("ascii", "replace")
        out["charset"] = charset
        out["key"] = parse_search(args.tokens[args.pos:], charset)
        args.pos = len(args.tokens)
    elif name in ("FETCH", "UID FETCH"):
        out["set"] = args.sequence_set()
        out["items"] = parse_fetch_items(args.take("fetch items"))
        if args.more():
            args.list_("fetch modifiers")
        args.end()
    elif name in ("STORE", "UID STORE"):
        out["set"] = args.sequence_set()
        action = args.atom("store action").upper()
        match = re.fullmatch(r"([+-]?)FLAGS(\.SILENT)?", action)
        if not match:
            raise ParseError(f"STORE: unknown action {action}")
        out["mode"] = match.group(1) or "="
        out["silent"] = bool(match.group(2))
        token = args.take("flags")
        out["flags"] = _flag_list(token.items if isinstance(token, ListToken) else [token, *args.tokens[args.pos:]],
                                  name)
        args.pos = len(args.tokens)
    elif name in ("COPY", "UID COPY", "MOVE", "UID MOVE"):
        out["set"] = args.sequence_set()
        out["mailbox"] = args.mailbox()
        args.end()
    elif name == "UID EXPUNGE":
        out["set"] = args.sequence_set()
        args.end()
    elif name == "ENABLE":
        out["capabilities"] = tuple(args.atom("capability").upper() for _ in range(len(args.tokens)))
        if not out["capabilities"]:
            raise ParseError("ENABLE: no capabilities named")
    elif name == "ID":
        token = args.take("ID parameters")
        params: dict[str, str | None] = {}
        if isinstance(token, ListToken):
            pairs = token.items
            if len(pairs) % 2:
                raise ParseError("ID: parameters come in name/value pairs")
            for key, value in zip(pairs[::2], pairs[1::2], strict=True):
                if not isinstance(key, Str):
                    raise ParseError("ID: field names must be strings")
                params[key.value.decode("utf-8", "replace")] = (
                    None if isinstance(value, Atom) and value.text.upper() == "NIL"
                    else value.value.decode("utf-8", "replace") if isinstance(value, Str) else None)
        elif not (isinstance(token, Atom) and token.text.upper() == "NIL"):
            raise ParseError("ID: expected a parameter list or NIL")
        out["params"] = params
        args.end()
    else:  # pragma: no cover - COMMANDS and this function list the same names
        raise ParseError(f"Unknown command {name}")
    return out


STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN")
COMMANDS = frozenset({
    "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "AUTHENTICATE", "LOGIN", "SELECT", "EXAMINE", "CREATE",
    "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE", "LIST", "LSUB", "STATUS", "APPEND", "CHECK", "CLOSE",
    "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE", "IDLE", "NAMESPACE", "ENABLE", "ID",
})
UID_COMMANDS = frozenset({"FETCH", "SEARCH", "STORE", "COPY", "MOVE", "EXPUNGE"})


def split_tag(data: bytes) -> tuple[str | None, bytes]:
    """The tag (None when it is not a valid tag) and the rest of the command after one space."""
    first, _, rest = data.partition(b" ")
    first = first.rstrip(b"\r\n")
    if not first or not _TAG.fullmatch(first) or any(c in _TAG_FORBIDDEN for c in first):
        return None, rest
    return first.decode("ascii"), rest


def parse_command(data: bytes) -> Command:
    """One whole command (line plus any literals, as received) -> Command, or ParseError."""
    tag, rest = split_tag(data)
    if tag is None:
        raise ParseError("Invalid tag")
    name_bytes, _, rest = rest.partition(b" ")
    name = name_bytes.rstrip(b"\r\n").decode("ascii", "replace").upper()
    if not name:
        raise ParseError("Missing command", tag)
    if name == "UID":
        sub, _, rest = rest.partition(b" ")
        sub_name = sub.rstrip(b"\r\n").decode("ascii", "replace").upper()
        if sub_name not in UID_COMMANDS:
            raise ParseError(f"Unknown UID command {sub_name or '(none)'}", tag)
        name = f"UID {sub_name}"
    elif name not in COMMANDS:
        raise ParseError(f"Unknown command {name[:40]}", tag)
    try:
        tokens = tokenize(rest, sections=name in ("FETCH", "UID FETCH"))
        args = _parse_args(name, _Args(tokens, name))
    except ParseError as exc:
        raise type(exc)(exc.reason, tag) from None
    return Command(tag, name, args)


__all__ += ["FetchItem", "SearchKey", "parse_date_time"]
