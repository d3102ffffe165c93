"""Turn an envelope address into file and folder names that cannot escape the output folder.

The rule (one rule for every output that names a path after an address):

1. The address is lower-cased and split at its **last** ``@`` into a user and a domain; an address without
   ``@`` is all user and its domain is empty.
2. Each of the two names is written byte by byte from its UTF-8 encoding: ASCII letters, digits and
   ``. _ + - =`` are kept; every other byte (``/``, ``\\``, ``%``, ``@``, spaces, NUL and other control
   characters, non-ASCII letters, ...) is written as ``%`` and two upper-case hex digits, as in a URL.
3. A leading or trailing ``.`` is written ``%2E``, so ``.``, ``..`` and hidden or Maildir-folder names
   (``.Sent``) cannot appear, and Windows cannot silently strip a trailing dot.
4. A name that Windows reserves for a device (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM0``-``COM9``,
   ``LPT0``-``LPT9``, with or without an extension such as ``nul.txt``) has its first letter written as
   ``%XX`` (``con`` -> ``%63on``).
5. An empty name is written ``(none)``: parentheses are never produced by steps 2-4.
6. A name longer than 100 bytes after steps 2-5 keeps its first 80 bytes, followed by ``~`` and the first
   16 hex digits of the SHA-256 of the original name: ``~`` is never produced by steps 2-5.

So every name is a single path component made of ``[A-Za-z0-9._+=%()~-]``, at most 100 bytes, never ``.``
or ``..``, and (short of truncation) reading it back with percent-decoding gives the address again, so two
different addresses never share a folder. As a second line of defence, `inside` refuses any path that
does not resolve to a place under the output folder.

Examples (domain folder / user folder): ``bart@example.com`` -> ``example.com/bart``;
``../../etc/passwd@x`` -> ``x/%2E.%2F..%2Fetc%2Fpasswd``; ``a/b@c`` -> ``c/a%2Fb``; ``bob@..`` -> ``%2E%2E/bob``;
``/etc/passwd`` -> ``(none)/%2Fetc%2Fpasswd``; ``con@nul`` -> ``%6Eul/%63on``; ``a@b@c`` -> ``c/a%40b``.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

MAX_NAME = 100
_KEEP = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-=")
_DEVICE = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)
EMPTY = "(none)"


class UnsafePath(ValueError):
    """A path that would land outside the output folder (a bug: `name` should have prevented it)."""


def name(text: str) -> str:
    """One safe path component for `text` (a user or a domain), by the rule in the module docstring."""
    if not text:
        return EMPTY
    data = text.encode("utf-8", "surrogateescape")
    out = "".join(chr(b) if b in _KEEP else f"%{b:02X}" for b in data)
    if out.startswith("."):
        out = "%2E" + out[1:]
    if out.endswith("."):
        out = out[:-1] + "%2E"
    if _DEVICE.fullmatch(out):
        out = f"%{ord(out[0]):02X}{out[1:]}"
    if len(out) > MAX_NAME:
        digest = hashlib.sha256(data).hexdigest()[:16]
        cut = 80
        if out[cut - 1] == "%":  # never split a %XX escape
            cut -= 1
        elif out[cut - 2] == "%":
            cut -= 2
        out = f"{out[:cut]}~{digest}"
    return out


def split(address: str) -> tuple[str, str]:
    """(user, domain) of an address, lower-cased, split at the last ``@``."""
    user, at, domain = address.lower().rpartition("@")
    if not at:
        return domain, ""
    return user, domain


def mailbox_parts(address: str) -> tuple[str, str]:
    """(domain folder, user folder) for an address: ``bart@example.com`` -> ``("example.com", "bart")``."""
    user, domain = split(address)
    return name(domain), name(user)


def mailbox_dir(root: Path, address: str) -> Path:
    """The per-recipient folder ``root/domain/user``, checked to be inside `root`."""
    domain, user = mailbox_parts(address)
    return inside(root, root / domain / user)


def inside(root: Path, path: Path) -> Path:
    """`path` if it resolves to somewhere under `root` (symlinks followed), else `UnsafePath`."""
    base = root.resolve()
    target = path.resolve()
    if target != base and base not in target.parents:
        raise UnsafePath(f"{path} is outside {root}")
    return path
