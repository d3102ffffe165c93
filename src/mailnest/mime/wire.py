"""What a message's stored bytes say about the client that sent it: protocol warnings. Pure, linear time.

mailnest stores a message exactly as received. A client that ends lines with a bare LF or a bare CR breaks
RFC 5321 (section 2.3.8: lines end with CRLF) and strict servers refuse it (Postfix 3.9's
`smtpd_forbid_bare_newline`), so the API and UI show these warnings beside the message: the developer learns that
their code would fail against such a server, and still sees the message they meant.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_LINE = 998  # RFC 5322 2.1.1: at most 998 characters a line, without the CRLF


@dataclass(frozen=True, slots=True)
class ProtocolWarning:
    code: str  # stable identifier: bare-lf, bare-cr, nul, long-line, no-final-crlf
    text: str  # one sentence for a person


def _bare_lf(raw: bytes) -> int:
    return raw.count(b"\n") - raw.count(b"\r\n")


def _bare_cr(raw: bytes) -> int:
    return raw.count(b"\r") - raw.count(b"\r\n")


def _longest_line(raw: bytes) -> int:
    longest = start = 0
    while True:
        end = raw.find(b"\n", start)
        stop = len(raw) if end < 0 else end
        length = stop - start - (1 if stop > start and raw[stop - 1] == 0x0D else 0)
        longest = max(longest, length)
        if end < 0:
            return longest
        start = end + 1


def protocol_warnings(raw: bytes) -> tuple[ProtocolWarning, ...]:
    """The ways these bytes break the line rules of RFC 5321/5322, in a fixed order; () when none."""
    found: list[ProtocolWarning] = []
    if lf := _bare_lf(raw):
        found.append(ProtocolWarning("bare-lf", f"{lf} line(s) end with a bare LF instead of CRLF (RFC 5321 2.3.8); "
                                        "strict servers such as Postfix 3.9 refuse such mail"))
    if cr := _bare_cr(raw):
        found.append(ProtocolWarning("bare-cr", f"{cr} bare CR byte(s) not followed by LF (RFC 5321 2.3.8); "
                                        "strict servers refuse such mail"))
    if b"\0" in raw:
        found.append(ProtocolWarning("nul", "the message contains NUL bytes, which RFC 5322 does not allow"))
    if (longest := _longest_line(raw)) > MAX_LINE:
        found.append(ProtocolWarning("long-line", f"a line is {longest} bytes long; RFC 5322 2.1.1 allows at most "
                                          f"{MAX_LINE} before the CRLF"))
    if raw and not raw.endswith(b"\n"):
        found.append(ProtocolWarning("no-final-crlf", "the message does not end with a line ending; the server added "
                                              "one before the final dot on the wire"))
    return tuple(found)
