"""POP3 command lines -> commands (RFC 1939, RFC 2449). Pure: bytes in, a Command or a CommandError out.

Keywords are case-insensitive and arguments are separated by single spaces. PASS is the exception: its one
argument is the rest of the line, because RFC 1939 lets a password contain spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# RFC 2449 section 4 caps a command line at 255 octets including CRLF. Clients that send SASL or long
# passwords go a bit further, so accept up to 1 KiB and refuse anything longer with a clear error.
MAX_LINE = 1024
# RFC 1939 section 3: arguments are at most 40 characters; we tolerate longer user names (addresses) but
# keep a bound so that a garbage line cannot be echoed back in full.
_MAX_ARGUMENT = 255

# Commands we know, with the number of arguments each takes: (minimum, maximum).
ARITY: dict[str, tuple[int, int]] = {
    "USER": (1, 1),
    "PASS": (1, 1),
    "APOP": (2, 2),
    "CAPA": (0, 0),
    "STLS": (0, 0),
    "STAT": (0, 0),
    "LIST": (0, 1),
    "UIDL": (0, 1),
    "RETR": (1, 1),
    "TOP": (2, 2),
    "DELE": (1, 1),
    "RSET": (0, 0),
    "NOOP": (0, 0),
    "QUIT": (0, 0),
}

_KEYWORD = re.compile(r"[A-Za-z]{3,4}")


class CommandError(ValueError):
    """A line that is not a usable command; str() is the reason sent after `-ERR`."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str  # upper-case keyword
    args: tuple[str, ...] = ()


def strip_line_end(line: bytes) -> bytes:
    """Drop CRLF (or a bare LF, which lenient clients send)."""
    if line.endswith(b"\r\n"):
        return line[:-2]
    if line.endswith(b"\n"):
        return line[:-1]
    return line


def parse_command(line: bytes) -> Command:
    """Parse one command line (with or without its line end)."""
    body = strip_line_end(line)
    if len(body) + 2 > MAX_LINE:
        raise CommandError("line too long")
    # Latin-1 never fails, so any byte sequence becomes some string; UTF-8 user names are tried first.
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    if not text.strip():
        raise CommandError("empty command")
    keyword, _, rest = text.partition(" ")
    if not _KEYWORD.fullmatch(keyword):
        raise CommandError("unknown command")
    name = keyword.upper()
    if name not in ARITY:
        raise CommandError(f"unknown command {name}")
    if name == "PASS":
        # A password may contain spaces, and even leading ones: keep the rest of the line verbatim.
        if not rest:
            raise CommandError("PASS needs a password")
        return Command(name, (rest,))
    args = tuple(rest.split(" ")) if rest else ()
    if any(arg == "" for arg in args):
        # RFC 1939 says exactly one space between arguments; trailing spaces are common enough to forgive.
        args = tuple(arg for arg in rest.strip(" ").split(" ") if arg)
    low, high = ARITY[name]
    if not low <= len(args) <= high:
        if high == 0:
            raise CommandError(f"{name} takes no argument")
        if low == high:
            raise CommandError(f"{name} needs {low} argument{'s' if low > 1 else ''}")
        raise CommandError(f"{name} takes at most {high} argument{'s' if high > 1 else ''}")
    if any(len(arg) > _MAX_ARGUMENT for arg in args):
        raise CommandError("argument too long")
    return Command(name, args)


def parse_number(text: str) -> int | None:
    """A message number or line count: plain decimal digits, nothing else (no sign, no spaces)."""
    if not text.isascii() or not text.isdigit() or len(text) > 9:
        return None
    return int(text)
