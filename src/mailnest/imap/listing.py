"""LIST and LSUB: reference + pattern matching with `*` and `%`, and the attributes of each name. Pure.

Patterns come from the client, so matching is linear in the name for any pattern: the pattern is run as a set of
states (one bit per pattern position) over the name's characters, never by backtracking (a regular expression
for `*a*a*a*a*b` takes exponential time on a long name and would stall every session on the loop).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable

from .quoting import astring
from .utf7 import encode_mailbox


def _full_pattern(reference: str, pattern: str, delimiter: str) -> str:
    # RFC 3501 section 6.3.8: the reference is prepended to the pattern, unless the pattern is absolute
    return pattern if pattern.startswith(delimiter) else reference + pattern


def _simplify(pattern: str) -> str:
    """Runs of wildcards as one: `%*` and `**` match what `*` does, `%%` what `%` does."""
    out: list[str] = []
    for char in pattern:
        if char in "*%" and out and out[-1] in "*%":
            out[-1] = "*" if "*" in (char, out[-1]) else "%"
        else:
            out.append(char)
    return "".join(out)


class Pattern:
    """A LIST/LSUB reference and pattern, compiled once and run on many names."""

    def __init__(self, reference: str, pattern: str, delimiter: str) -> None:
        full = _simplify(_full_pattern(reference, pattern, delimiter))
        self.delimiter = delimiter
        self.ends_with_percent = full.endswith("%")
        # INBOX is case-insensitive, including as the first level of a hierarchy
        fold = 5 if full[:5].upper() == "INBOX" else 0
        self._literal: dict[str, int] = {}  # character -> the positions where the pattern has it
        self._star = self._percent = 0
        for position, char in enumerate(full):
            bit = 1 << position
            if char == "*":
                self._star |= bit
            elif char == "%":
                self._percent |= bit
            else:
                for variant in {char, char.upper(), char.lower()} if position < fold else {char}:
                    self._literal[variant] = self._literal.get(variant, 0) | bit
        self._wildcards = self._star | self._percent
        self._accept = 1 << len(full)

    def _run(self, name: str, at_delimiter: Callable[[int, int], None] | None = None) -> int:
        """The pattern positions reached after the whole name (0 once it can no longer match)."""
        wildcards, star, literal, delimiter = self._wildcards, self._star, self._literal, self.delimiter
        states = 1 | (1 & wildcards) << 1  # a wildcard may match nothing (runs are one wildcard long)
        for index, char in enumerate(name):
            if char == delimiter and at_delimiter is not None:
                at_delimiter(index, states)
            states = ((states & literal.get(char, 0)) << 1) | (states & (star if char == delimiter else wildcards))
            if not states:
                return 0
            states |= (states & wildcards) << 1
        return states

    def matches(self, name: str) -> bool:
        return bool(self._run(name) & self._accept)

    def longest_matching_parent(self, name: str) -> str | None:
        """The longest superior name of `name` (cut at a delimiter) that matches, in one pass over the name."""
        found: list[int] = []

        def check(index: int, states: int) -> None:
            if index and states & self._accept:
                found.append(index)

        self._run(name, check)
        return name[:found[-1]] if found else None


def _with_children(names: list[str], delimiter: str) -> set[str]:
    """The names that have an inferior name in `names` (a sorted search, not a pass over every pair)."""
    ordered = sorted(names)
    found = set()
    for name in names:
        prefix = name + delimiter
        at = bisect.bisect_left(ordered, prefix)
        if at < len(ordered) and ordered[at].startswith(prefix):
            found.add(name)
    return found


def matching(names: Iterable[str], reference: str, pattern: str, delimiter: str) -> list[tuple[str, str]]:
    """LIST: (name, attributes) for every name matching, in listing order."""
    compiled = Pattern(reference, pattern, delimiter)
    all_names = list(names)
    parents = _with_children(all_names, delimiter)
    return [(name, "\\HasChildren" if name in parents else "\\HasNoChildren")
            for name in all_names if compiled.matches(name)]


def subscribed_matching(subscribed: Iterable[str], reference: str, pattern: str,
                        delimiter: str) -> list[tuple[str, str]]:
    """LSUB: (name, attributes) for every subscribed name matching, in listing order.

    RFC 3501 section 6.3.9: when "foo/bar" is subscribed and "foo" is not, a `%` that stops at "foo" must return
    "foo" flagged \\Noselect. As on Dovecot, that happens only for a pattern ending in `%`: `*` already reaches
    the subscribed names themselves, and a pattern without a trailing `%` asks for names, not their parents.
    """
    compiled = Pattern(reference, pattern, delimiter)
    names = list(subscribed)
    chosen = set(names)
    out: dict[str, str] = {}
    for name in names:
        if compiled.matches(name):
            out[name] = ""
        elif compiled.ends_with_percent:
            parent = compiled.longest_matching_parent(name)
            if parent is not None and parent not in chosen:
                out.setdefault(parent, "\\Noselect")
    return list(out.items())


def mailbox_name(name: str) -> bytes:
    return astring(encode_mailbox(name))
