"""Address headers (From, To, Cc, Reply-To) -> Address objects, leniently.

Handles display names (quoted or not, RFC 2047 encoded, even inside quotes as some mailers write them), group
syntax ("Team: a@x, b@y;" gives the members; "undisclosed-recipients:;" gives nothing), comments used as
names ("a@x (Alice)"), route addresses and unquoted garbage. Faster than email.utils.getaddresses, which
matters because this runs for every captured message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..models import Address
from .header import decode_words

_OTHER_TOKENS = (
    r"|\((?:[^()\\]|\\.|\((?:[^()\\]|\\.)*\))*\)?"  # comment, one level of nesting
    r"|<[^>]*>?"  # angle address
    r"|[,;:]"
    r"|[^\s\",;:<>()]+"  # atoms, dots, "@", anything else
    r"|\s+"
)
# A quoted string; a lone unmatched quote is a token of its own, and ignored.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|"' + _OTHER_TOKENS)
# Once one quote finds no closing quote, no later one can (its scan would run in step with the failed one to
# the end), so the rest is tokenized without trying: trying would rescan the rest of the value for each quote.
_TOKEN_AFTER_UNCLOSED_QUOTE = re.compile(r'"' + _OTHER_TOKENS)
_QUOTED_PAIR = re.compile(r"\\(.)", re.S)
_NEEDS_TOKENIZER = re.compile(r'["():;\\]')



def _unquote(token: str) -> str:
    return _QUOTED_PAIR.sub(r"\1", token[1:-1])


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    return decode_words(name).strip() if "=?" in name else name


class _Builder:
    __slots__ = ("angle", "comment", "out", "words")

    def __init__(self) -> None:
        self.out: list[Address] = []
        self.words: list[tuple[str, bool]] = []  # (text, was quoted)
        self.angle: str | None = None
        self.comment = ""

    def emit(self) -> None:
        words, angle, comment = self.words, self.angle, self.comment
        self.words, self.angle, self.comment = [], None, ""
        if angle is not None:
            address = angle.strip()
            if ":" in address and address.startswith("@"):  # obsolete route: <@relay:user@host>
                address = address.split(":", 1)[1]
            name = " ".join(w for w, _ in words) or comment
            if address or name:
                self.out.append(Address(_clean_name(name), address.strip()))
            return
        if not words:
            return
        # No angle brackets: the addr-spec is the run of atoms holding "@" ("user @ host" allowed); anything
        # before it is a malformed display name.
        plain = [w for w, quoted in words]
        at = next((i for i in range(len(plain) - 1, -1, -1) if "@" in plain[i]), -1)
        if at < 0:
            self.out.append(Address(_clean_name(comment), "".join(plain)))
            return
        first = at
        while first > 0 and (plain[first - 1].endswith(("@", ".")) or plain[first].startswith(("@", "."))):
            first -= 1
        last = at
        while last + 1 < len(plain) and (plain[last].endswith(("@", ".")) or plain[last + 1].startswith(("@", "."))):
            last += 1
        address = "".join(plain[first:last + 1])
        name = " ".join(plain[:first] + plain[last + 1:]) or comment
        self.out.append(Address(_clean_name(name), address))


def _simple(value: str) -> list[Address] | None:
    # The shapes nearly every sender uses ("a@x", "Name <a@x>", lists of them), without the tokenizer.
    out: list[Address] = []
    for item in value.split(","):
        lt = item.find("<")
        if lt < 0:
            address = item.strip()
            if " " in address or "\t" in address or ">" in address:
                return None
            if address:
                out.append(Address("", address))
            continue
        gt = item.find(">", lt)
        if gt < 0 or item[gt + 1:].strip() or "<" in item[lt + 1:]:
            return None
        out.append(Address(_clean_name(item[:lt]), item[lt + 1:gt].strip()))
    return out


def _tokens(value: str) -> Iterator[str]:
    for m in _TOKEN.finditer(value):
        tok = m.group()
        yield tok
        if tok == '"':
            for rest in _TOKEN_AFTER_UNCLOSED_QUOTE.finditer(value, m.end()):
                yield rest.group()
            return


def parse_addresses(value: str) -> list[Address]:
    """Every mailbox in an address-list header value (already unfolded and 8-bit decoded)."""
    if not _NEEDS_TOKENIZER.search(value):
        simple = _simple(value)
        if simple is not None:
            return simple
    b = _Builder()
    for tok in _tokens(value):
        c = tok[0]
        if c.isspace():
            continue
        if c == ",":
            b.emit()
        elif c == ":":
            if b.angle is None:  # "Group:" starts a group; its name is not a mailbox
                b.words, b.comment = [], ""
            else:
                b.words.append((tok, False))
        elif c == ";":
            b.emit()
        elif c == "<":
            if b.angle is not None:  # a second <...>: the first was part of the name
                b.words.append((b.angle, False))
            b.angle = tok[1:-1] if tok.endswith(">") else tok[1:]
        elif c == "(":
            inner = tok[1:-1] if tok.endswith(")") else tok[1:]
            if not b.comment:
                b.comment = _QUOTED_PAIR.sub(r"\1", inner).strip()
        elif c == '"':
            if len(tok) > 1:
                b.words.append((_unquote(tok), True))
        else:
            b.words.append((tok, False))
    b.emit()
    return b.out
