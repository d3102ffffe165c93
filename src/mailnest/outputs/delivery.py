"""What an output is given for each committed message, and the protocol a file output follows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ..models import Envelope


@dataclass(frozen=True, slots=True)
class Delivery:
    """One committed message: its public id, the bytes exactly as received and the SMTP envelope."""

    id: str
    raw: bytes
    envelope: Envelope

    @property
    def recipients(self) -> tuple[str, ...]:
        """Envelope recipients, lower-cased (a mailbox is a lower-cased address), each once, in order."""
        seen: dict[str, None] = {}
        for rcpt in self.envelope.rcpt_tos:
            seen.setdefault(rcpt.lower(), None)
        return tuple(seen)


class FileOutput(Protocol):
    """A writer that puts messages on disk. `write` blocks (it runs on a worker thread, one call at a
    time per output) and raises OSError when the disk says no."""

    name: str

    def write(self, delivery: Delivery) -> None: ...


def unix_lines(raw: bytes) -> bytes:
    """CRLF -> LF: mail files on disk (MH, Maildir, mbox) use the local line end, which mutt, MH tools and
    IMAP servers reading them expect. Lone CR or LF bytes are left alone."""
    return raw.replace(b"\r\n", b"\n")
