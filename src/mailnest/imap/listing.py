"""LIST and LSUB: reference + pattern matching with `*` and `%`, and the attributes of each name. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .quoting import astring
from .utf7 import encode_mailbox


def _pattern(reference: str, pattern: str, delimiter: str) -> re.Pattern[str]:
    # RFC 3501 section 6.3.8: the reference is prepended to the pattern, unless the pattern is absolute
    full = pattern if pattern.startswith(delimiter) else reference + pattern
    out = []
    for char in full:
        if char == "*":
            out.append(".*")
        elif char == "%":
            out.append(f"[^{re.escape(delimiter)}]*")
        else:
            out.append(re.escape(char))
    regex = "".join(out)
    # INBOX is case-insensitive, including as the first level of a hierarchy
    if full[:5].upper() == "INBOX":
        regex = "(?i:INBOX)" + "".join(out[5:]) if all(c not in "*%" for c in full[:5]) else regex
    return re.compile(regex, re.DOTALL)


def matching(names: Iterable[str], reference: str, pattern: str, delimiter: str,
             *, children: bool = True) -> list[tuple[str, str]]:
    """(name, attributes) for every name matching, in listing order."""
    regex = _pattern(reference, pattern, delimiter)
    all_names = list(names)
    out = []
    for name in all_names:
        if not regex.fullmatch(name):
            continue
        attributes = ""
        if children:
            has_children = any(other.startswith(name + delimiter) for other in all_names)
            attributes = "\\HasChildren" if has_children else "\\HasNoChildren"
        out.append((name, attributes))
    return out


def mailbox_name(name: str) -> bytes:
    return astring(encode_mailbox(name))
