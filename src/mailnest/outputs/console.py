"""Console output (``serve --print``): each message as it arrives, envelope then message, on stdout.

The block looks like aiosmtpd's `Debugging` handler (``python -m aiosmtpd -n``) and smtpd's
DebuggingServer: a ``MESSAGE FOLLOWS`` rule, the headers, an ``X-Peer`` line where the headers end, the
body, an ``END MESSAGE`` rule. Before the headers come the envelope lines those tools leave out. Control
characters are shown in caret notation (``^[``) so a message cannot drive the terminal.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

from .delivery import Delivery
from .latest import peer_repr

BEGIN = "---------- MESSAGE FOLLOWS ----------"
END = "------------ END MESSAGE ------------"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _visible(text: str) -> str:
    return _CONTROL.sub(lambda m: "^" + chr(ord(m.group()) ^ 0x40), text)


def render(delivery: Delivery) -> str:
    envelope = delivery.envelope
    lines = [BEGIN, f"mail from: {envelope.mail_from or '<>'}", f"rcpt to: {', '.join(envelope.rcpt_tos)}"]
    if envelope.helo:
        lines.append(f"helo: {envelope.helo}")
    if envelope.peer:
        lines.append(f"peer: {envelope.peer}")
    if envelope.auth_user:
        lines.append(f"auth: {envelope.auth_user}")
    if envelope.tls:
        lines.append(f"tls: {envelope.tls.version} {envelope.tls.cipher}")
    lines.append("")
    in_headers = True
    for raw_line in delivery.raw.splitlines():
        line = raw_line.decode("utf-8", "replace")
        if in_headers and not line:
            lines.append(f"X-Peer: {peer_repr(envelope.peer)}")
            in_headers = False
        lines.append(line)
    if in_headers:
        lines.append(f"X-Peer: {peer_repr(envelope.peer)}")
    lines.append(END)
    return "\n".join(_visible(line) for line in lines) + "\n"


class ConsoleOutput:
    name = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, delivery: Delivery) -> None:
        # sys.stdout looked up per message, so a replaced stdout (pytest's capsys, a redirect) is honoured.
        stream = self._stream or sys.stdout
        stream.write(render(delivery))
        stream.flush()
