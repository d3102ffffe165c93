"""The latest-message file: always the newest message, replaced atomically (a reader sees the old message
or the new one, never a mix), with the ``X-Peer``, ``X-MailFrom`` and ``X-RcptTo`` headers that aiosmtpd's
`Message` handler adds, appended to the header block in the same order and format. Line ends are LF.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path

from ..models import Envelope
from .delivery import Delivery, unix_lines

_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def peer_repr(peer: str) -> str:
    """aiosmtpd writes ``str(session.peer)``, a ``(host, port)`` tuple; our envelope keeps ``host:port``."""
    host, sep, port = peer.rpartition(":")
    if not sep or not port.isdigit():
        return peer or "None"
    return str((host.strip("[]"), int(port)))


def _value(text: str) -> str:
    # An address reached us over SMTP, but one from the API or an import could carry CR/LF: never let it
    # start a header of its own.
    return _CONTROL.sub(" ", text)


def envelope_headers(envelope: Envelope) -> bytes:
    lines = (
        f"X-Peer: {_value(peer_repr(envelope.peer))}\n"
        f"X-MailFrom: {_value(envelope.mail_from)}\n"
        f"X-RcptTo: {_value(', '.join(envelope.rcpt_tos))}\n"
    )
    return lines.encode("utf-8", "surrogateescape")


def with_envelope_headers(raw: bytes, envelope: Envelope) -> bytes:
    """`raw` (LF line ends) with the envelope headers appended to its header block."""
    data = unix_lines(raw)
    extra = envelope_headers(envelope)
    if data.startswith(b"\n"):  # no headers at all
        return extra + data
    end = data.find(b"\n\n")
    if end < 0:  # headers only, no body
        return data + (b"" if data.endswith(b"\n") or not data else b"\n") + extra
    return data[: end + 1] + extra + data[end + 1 :]


class LatestOutput:
    name = "latest"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def write(self, delivery: Delivery) -> None:
        data = with_envelope_headers(delivery.raw, delivery.envelope)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.tmp")
        try:
            with open(tmp, "xb") as file:
                file.write(data)
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
