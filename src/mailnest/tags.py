"""Tags: labels on messages, as Mailpit has them. Pure: no I/O.

A message gets tags at ingest from three places, as in Mailpit:
- its `X-Tags` header (comma-separated);
- plus-addressing: `alice+billing@example.com` among the recipients gives the tag `billing`;
- rules (`--tag "subject:invoice=billing"`): a search query and the tag every message matching it gets.
  The query side uses mailnest's search language (`mailnest.search`); Mailpit's order (`billing=subject:invoice`)
  is accepted too. Rules are evaluated by the store in SQL, in the transaction that stores the message.

Tag names are cleaned as Mailpit cleans them: only letters, digits, `-`, `.`, `_` and spaces are kept (anything
else is dropped), runs of spaces become one, and a name must keep at least one character. Tags are unique
without regard to case; the first spelling seen wins.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import search
from .config import ConfigError
from .models import Address, Envelope

_DISALLOWED = re.compile(r"[^A-Za-z0-9\-._ ]+")
MAX_TAG_LENGTH = 100


def clean(name: str) -> str:
    """A tag name as stored: disallowed characters dropped, spaces collapsed; "" when nothing is left."""
    return " ".join(_DISALLOWED.sub("", name).split())[:MAX_TAG_LENGTH].strip()


def unique(names: Iterable[str], existing: Iterable[str] = ()) -> tuple[str, ...]:
    """Cleaned, without empties and case-insensitive duplicates, sorted as Mailpit sorts them (by name, case
    ignored). A name that matches an `existing` tag but for case takes the existing spelling (as in Mailpit, so
    one tag is never split by case); otherwise the first spelling seen wins."""
    spelling = {t.lower(): t for t in existing}
    seen: dict[str, str] = {}
    for raw in names:
        name = clean(raw)
        if name and name.lower() not in seen:
            seen[name.lower()] = spelling.get(name.lower(), name)
    return tuple(sorted(seen.values(), key=lambda t: (t.lower(), t)))


def from_header(value: str) -> list[str]:
    """The tags of an X-Tags header value."""
    return [part for part in value.split(",") if part.strip()]


def plus_tag(address: str) -> str:
    """The tag of a plus-address (`user+tag@host` -> "tag"), or ""."""
    local, at, _ = address.rpartition("@")
    if not at:
        return ""
    _, plus, tag = local.partition("+")
    return clean(tag) if plus else ""


def ingest_tags(*, x_tags: Iterable[str], to: Iterable[Address], cc: Iterable[Address],
                envelope: Envelope | None = None, explicit: Iterable[str] = ()) -> tuple[str, ...]:
    """The tags a message gets at ingest, rules aside: X-Tags, plus-addresses (To, Cc and every envelope
    recipient, so Bcc counts too) and tags given explicitly (the send API's Tags, store.add(tags=...))."""
    addresses = [a.address for a in (*to, *cc)]
    if envelope is not None:
        addresses.extend(envelope.rcpt_tos)
    names: list[str] = []
    for value in x_tags:
        names.extend(from_header(value))
    names.extend(plus_tag(a) for a in addresses)
    names.extend(explicit)
    return unique(names)


@dataclass(frozen=True, slots=True)
class TagRule:
    """Messages matching `query` (mailnest's search language) get `tag`."""

    query: str
    tag: str

    def __str__(self) -> str:
        return f"{self.query}={self.tag}"


def _valid_tag(text: str) -> bool:
    return bool(text.strip()) and clean(text) == " ".join(text.split())


def parse_rule(text: str) -> TagRule:
    """`QUERY=TAG` (`subject:invoice=billing`), or Mailpit's `TAG=QUERY` when only that reading makes sense.

    The query is compiled once here, so a malformed rule stops start-up with the search error, not later."""
    query, eq, tag = text.rpartition("=")
    if not eq:
        raise ConfigError(f"--tag {text!r}: expected QUERY=TAG, e.g. subject:invoice=billing")
    if not _valid_tag(tag):
        first, _, rest = text.partition("=")
        if not _valid_tag(first):
            raise ConfigError(f"--tag {text!r}: {tag.strip()!r} is not a tag name (letters, digits, - . _ "
                              "and spaces); write QUERY=TAG, e.g. subject:invoice=billing")
        query, tag = rest, first
    query = query.strip()
    if not query:
        raise ConfigError(f"--tag {text!r}: the search query is empty")
    try:
        search.compile(query)
    except search.QueryError as exc:
        raise ConfigError(f"--tag {text!r}: bad search query: {exc}") from None
    return TagRule(query, clean(tag))


def parse_rules(texts: Iterable[str]) -> tuple[TagRule, ...]:
    return tuple(parse_rule(t) for t in texts)


def renaming(old: str, new: str) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """A message's tags with `old` (any case) renamed to `new`, merged where the message already has `new`."""
    lowered = old.lower()
    return lambda tags: unique(new if t.lower() == lowered else t for t in tags)


def removing(name: str) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    """A message's tags without `name` (any case)."""
    lowered = name.lower()
    return lambda tags: tuple(t for t in tags if t.lower() != lowered)
