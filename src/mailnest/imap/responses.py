"""Server responses: status lines, flag lists, dates, capability lists. Pure."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from .parser import MONTHS

SYSTEM_FLAG_ORDER = ("\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft")
PERMANENT_FLAGS = (*SYSTEM_FLAG_ORDER, "\\*")
CAPABILITIES_COMMON = ("IMAP4rev1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE", "UIDPLUS",
                       "MOVE", "UNSELECT", "CHILDREN")
CAPABILITIES_BEFORE_LOGIN = (*CAPABILITIES_COMMON, "AUTH=PLAIN")
CAPABILITIES_AFTER_LOGIN = CAPABILITIES_COMMON


def untagged(text: bytes | str) -> bytes:
    if isinstance(text, str):
        text = text.encode("utf-8")
    return b"* " + text + b"\r\n"


def tagged(tag: str, status: str, text: str) -> bytes:
    return f"{tag} {status} {text}\r\n".encode()


def continuation(text: str = "") -> bytes:
    return f"+ {text}\r\n".encode() if text else b"+ \r\n"


def flag_list(flags: Iterable[str], recent: bool = False) -> str:
    """System flags in a fixed order, then \\Recent, then keywords sorted (as Dovecot lists them)."""
    present = set(flags)
    ordered = [f for f in SYSTEM_FLAG_ORDER if f in present]
    if recent:
        ordered.append("\\Recent")
    ordered += sorted(f for f in present if not f.startswith("\\"))
    return "(" + " ".join(ordered) + ")"


def internal_date(timestamp: float) -> str:
    """`"01-Jul-2003 08:00:00 +0000"`: mailnest reports INTERNALDATE in UTC."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    return f'"{moment.day:02d}-{MONTHS[moment.month - 1]}-{moment.year:04d} {moment:%H:%M:%S} +0000"'


def capability_line(authenticated: bool, *, starttls: bool = False, login_disabled: bool = False) -> str:
    """RFC 3501 6.1.1 / 6.2.3: STARTTLS while it can be used; LOGINDISABLED (and no AUTH=) while passwords wait
    for TLS."""
    if authenticated:
        return " ".join(CAPABILITIES_AFTER_LOGIN)
    words = [w for w in CAPABILITIES_BEFORE_LOGIN if not (login_disabled and w.startswith("AUTH="))]
    if starttls:
        words.append("STARTTLS")
    if login_disabled:
        words.append("LOGINDISABLED")
    return " ".join(words)
