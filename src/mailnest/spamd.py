"""A client of SpamAssassin's `spamd` (the SPAMC/SPAMD 1.x protocol, as `spamc` speaks it), answering in
Mailpit's `SpamAssassinResponse` shape for `GET /api/v1/message/{ID}/sa-check`.

One `REPORT` request per check: `REPORT SPAMC/1.5`, a `Content-length` header, the raw message, then the write
side is closed. spamd answers `SPAMD/1.1 0 EX_OK`, a `Spam: True ; 1002.7 / 5.0` header and the report text, whose
table after the `---- ----` line gives each rule's points, name and description (a long description continues on
indented lines). Protocol: https://svn.apache.org/repos/asf/spamassassin/trunk/spamd/PROTOCOL

Nothing here raises on a failed check: an unreachable, slow or confused spamd, or a message over the size cap,
gives a result with `Error` set (as Mailpit does), so the route always answers in Mailpit's shape.
As in Mailpit, scores are rounded down to one decimal. Unlike Mailpit (which says spam at 5.0 whatever spamd is
configured with), `IsSpam` is spamd's own verdict, so a server's `required_score` is respected.
"""

from __future__ import annotations

import asyncio
import math
import re
from dataclasses import dataclass
from typing import Any

PROTOCOL = "SPAMC/1.5"
DEFAULT_TIMEOUT = 10.0
# spamc's own default cap (`spamc -s`): larger messages are not worth scanning and slow spamd badly.
DEFAULT_MAX_SIZE = 512_000
MAX_RESPONSE = 4 * 1024 * 1024  # the report of a message is a few KB; a larger answer is not spamd's

_STATUS = re.compile(rb"^SPAMD/(\d+\.\d+) +(\d+) +(.*)$")
_SPAM_HEADER = re.compile(r"^\s*(true|false|yes|no)\s*;\s*(-?[0-9.]+)\s*/\s*(-?[0-9.]+)\s*$", re.I)
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Za-z0-9_]+)\s*(.*)$")


class SpamdAddressError(ValueError):
    """A `--spamassassin` value that is not HOST:PORT or unix:/path."""


@dataclass(frozen=True)
class SpamdAddress:
    """Where spamd listens: a TCP host and port, or a Unix socket path (`unix:/run/spamd.sock`)."""

    host: str = ""
    port: int = 0
    path: str = ""

    @classmethod
    def parse(cls, text: str, what: str = "--spamassassin") -> SpamdAddress:
        """HOST:PORT, [IPv6]:PORT or unix:/path; `what` names the setting in the error (the flag or variable)."""
        value = text.strip()
        if value.startswith("unix:"):
            path = value[len("unix:"):]
            if not path:
                raise SpamdAddressError(f"{what}: {text!r}: give a socket path, e.g. unix:/run/spamd.sock")
            return cls(path=path)
        host, sep, port_text = value.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise SpamdAddressError(f"{what}: {text!r}: expected HOST:PORT (spamd's default port is 783), "
                                    "e.g. 127.0.0.1:783, or unix:/path/to/spamd.sock")
        return cls(host=host, port=int(port_text))

    def __str__(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class SpamdError(Exception):
    """A check that did not give a result; its message is what `Error` says."""


def result(*, error: str = "", is_spam: bool = False, score: float = 0.0,
           rules: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Mailpit's `SpamAssassinResponse`."""
    return {"Error": error, "IsSpam": is_spam, "Rules": rules or [], "Score": score}


def _round_down(value: float) -> float:
    """Down to one decimal, as Mailpit does, without float error taking 2.3 down to 2.2 (2.3 * 10 is
    22.999999999999996); + 0.0 turns -0.0 into 0.0."""
    return round(math.floor(value * 10 + 1e-6) / 10, 1) + 0.0


def parse_response(data: bytes) -> dict[str, Any]:
    """A spamd answer to REPORT -> `SpamAssassinResponse`; raises SpamdError if it is not a good answer."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        head, body = data, b""
    lines = head.split(b"\r\n")
    status = _STATUS.match(lines[0].strip())
    if status is None:
        raise SpamdError(f"not a spamd answer: {lines[0][:80]!r}")
    if status.group(2) != b"0":
        message = status.group(3).decode("utf-8", "replace")
        raise SpamdError(f"spamd refused the check: {status.group(2).decode()} {message}")
    verdict = None
    for line in lines[1:]:
        name, _, value = line.decode("utf-8", "replace").partition(":")
        if name.strip().lower() == "spam":
            verdict = _SPAM_HEADER.match(value)
    if verdict is None:
        raise SpamdError("spamd's answer has no Spam header")
    return result(is_spam=verdict.group(1).lower() in ("true", "yes"),
                  score=_round_down(float(verdict.group(2))),
                  rules=parse_report(body.decode("utf-8", "replace")))


def parse_report(report: str) -> list[dict[str, Any]]:
    """The rule table of a REPORT body: rows after the `---- ----` line, continuation lines joined."""
    rules: list[dict[str, Any]] = []
    in_table = False
    for line in report.splitlines():
        if not in_table:
            in_table = line.startswith("----")
            continue
        if not line.strip():
            break
        match = _RULE.match(line)
        if match is not None and not line.startswith("      "):
            rules.append({"Name": match.group(2), "Score": _round_down(float(match.group(1))),
                          "Description": match.group(3).strip()})
        elif rules:
            rules[-1]["Description"] = f"{rules[-1]['Description']} {line.strip()}".strip()
    return rules


class SpamdClient:
    """Checks messages with one spamd. Each check is one connection; the whole exchange has one deadline."""

    def __init__(self, address: str | SpamdAddress, *, timeout: float = DEFAULT_TIMEOUT,
                 max_size: int = DEFAULT_MAX_SIZE) -> None:
        self.address = address if isinstance(address, SpamdAddress) else SpamdAddress.parse(address)
        self.timeout = timeout
        self.max_size = max_size

    async def check(self, raw: bytes) -> dict[str, Any]:
        """Score `raw` (the message exactly as received); never raises, `Error` says what went wrong."""
        if len(raw) > self.max_size:
            return result(error=f"message of {len(raw)} bytes is over the SpamAssassin check's limit of "
                                f"{self.max_size} bytes; it was not checked")
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._exchange(b"REPORT", raw)
            return parse_response(answer)
        except TimeoutError:
            return result(error=f"SpamAssassin (spamd) at {self.address} did not answer within "
                                f"{self.timeout:g} s")
        except OSError as exc:
            return result(error=f"SpamAssassin (spamd) is not reachable at {self.address}: "
                                f"{exc.strerror or exc}")
        except SpamdError as exc:
            return result(error=f"SpamAssassin (spamd) at {self.address}: {exc}")

    async def ping(self) -> bool:
        """Whether spamd answers PING with PONG within the timeout."""
        try:
            async with asyncio.timeout(self.timeout):
                answer = await self._exchange(b"PING", None)
        except (TimeoutError, OSError):
            return False
        return b"PONG" in answer.split(b"\r\n", 1)[0]

    async def _exchange(self, command: bytes, message: bytes | None) -> bytes:
        if self.address.path:
            reader, writer = await asyncio.open_unix_connection(self.address.path)
        else:
            reader, writer = await asyncio.open_connection(self.address.host, self.address.port)
        try:
            request = command + b" " + PROTOCOL.encode() + b"\r\n"
            if message is not None:
                request += b"Content-length: " + str(len(message)).encode() + b"\r\n\r\n" + message
            else:
                request += b"\r\n"
            writer.write(request)
            await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()  # spamd reads to the end of the request
            answer = await reader.read(MAX_RESPONSE + 1)
            while answer and len(answer) <= MAX_RESPONSE:
                more = await reader.read(MAX_RESPONSE + 1 - len(answer))
                if not more:
                    break
                answer += more
            if len(answer) > MAX_RESPONSE:
                raise SpamdError(f"answer larger than {MAX_RESPONSE} bytes")
            if not answer:
                raise SpamdError("spamd closed the connection without an answer")
            return answer
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
