"""Relay: forward captured mail to a real SMTP server, only to recipients on an allow-list.

smtpd's PureProxy forwarded everything; a development server that does that is an open relay and a way
to mail real customers from a test run. Here nothing leaves unless its recipient matches `relay_allow`:

- ``bob@example.com``: that address exactly (letter case ignored);
- ``*@example.com``, ``qa-*@example.com``, ``*@*.example.com``: ``*`` stands for any run of characters
  except ``@``, so ``*@example.com`` never matches ``x@evil.test@example.com`` nor a subdomain;
- ``/regex/`` or ``re:regex``: a Python regular expression that must match the whole address (case
  ignored), e.g. ``/.+@(staging|qa)\\.example\\.com/``.

With `relay` and `relay_allow` set, every message received over SMTP or the send API goes, in the
background, to its allowed envelope recipients (the others are not sent to, and not mentioned upstream);
the client's ``250`` never waits for it. A temporary failure (connection refused, timeout, a 4xx reply) is
retried with exponential backoff (1s, 2s, 4s ... at most 60s apart) up to 5 attempts, then marked failed;
a 5xx is final at once. Each message's status, per recipient (pending / sent / failed with the reason),
is kept in memory for the most recent 1000 relayed messages. The queue lives in memory too, but a message's
relay is once-only work (outputs/work.py): `submit` reports it done once every recipient is sent or failed for
good, and a relay cut short by a stop or a crash is submitted again by the next node to sweep (recipients already
sent to by the node that died may then get it twice: at least once, never lost).

The other lists (same pattern forms):
- `release_allow` widens `release` only (a stored message sent on demand: the UI's Release, the Mailpit and
  MailHog release APIs): release goes to addresses on `relay_allow` or `release_allow`, automatic relaying to
  `relay_allow` only;
- `relay_deny` narrows both: an address on it is never relayed nor released, whatever the allow-lists say
  (release answers which addresses were refused, and why);
- `forward_to`: fixed addresses every new message (SMTP and the send API, as for relaying) is also sent to
  (`forward`), whatever its own recipients; the envelope recipients upstream are exactly those addresses, less
  any the message is relayed to already (one copy each, not two). They are the operator's explicit choice, so
  no allow-list is asked of them, but `relay_deny` is absolute: a `forward_to` address on it is a start-up
  error (ConfigError), not a silent drop. Forwarding is once-only work of its own kind, ``forward``, done as
  the relay is (retries, statuses, takeover by another node).
- `relay_override_from`: the sender of everything this relay sends (relayed, released, forwarded), as Mailpit's
  override-from: MAIL FROM becomes the address, and the From header's address becomes it (its display name
  kept; a From header with several addresses, or none that parses, becomes the address alone; a message
  without From gets one), with the old address in a new ``X-Original-From`` header. Only the copy sent is
  rewritten: the stored message is never altered.

Tunables for tests and embedding, in ``Config.extra``: ``relay_attempts`` (5), ``relay_backoff`` (1.0 s),
``relay_max_backoff`` (60.0 s), ``relay_timeout`` (30.0 s), ``relay_tls_verify`` (True).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import smtplib
import ssl
from collections import Counter as CounterOf
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.header import decode_header, make_header
from email.utils import formataddr, getaddresses
from typing import Any

from ..config import Config, ConfigError, parse_listen
from .delivery import Delivery

log = logging.getLogger(__name__)

PENDING, SENT, FAILED = "pending", "sent", "failed"
RELAYED_SOURCES = ("smtp", "api")  # imported or IMAP-appended mail is not somebody sending mail now
_TEMPORARY, _PERMANENT = "temporary", "permanent"


class RelayError(Exception):
    """Base of the errors `release` raises."""


class RelayNotConfigured(RelayError):
    """No `relay` upstream is configured (HTTP 400)."""


class RelayRefused(RelayError):
    """Some addresses are not on an allow-list, or are on the deny-list (HTTP 400); nothing was sent.
    `addresses` is every refused address, `denied` those of them refused by `relay_deny`."""

    def __init__(self, addresses: Sequence[str], denied: Sequence[str] = ()) -> None:
        self.addresses = tuple(addresses)
        self.denied = tuple(denied)
        off = [a for a in self.addresses if a not in self.denied]
        parts = []
        if off or not self.addresses:
            parts.append(f"not on the relay allow-list: {', '.join(off) or '(no recipients)'}")
        if self.denied:
            parts.append(f"on the relay deny-list: {', '.join(self.denied)}")
        super().__init__("; ".join(parts))


class RelayFailed(RelayError):
    """The upstream server did not take the message for any recipient (HTTP 502); the reason says why."""


# --- the allow-list ----------------------------------------------------------------------------------


def _compile(pattern: str, what: str = "relay_allow") -> re.Pattern[str]:
    text = pattern.strip()
    if text.startswith("re:"):
        source = text[3:]
    elif len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        source = text[1:-1]
    else:
        if not text:
            raise ConfigError(f"{what}: an empty pattern; use *@example.com, an address, or /regex/")
        source = "[^@]*".join(re.escape(piece) for piece in text.split("*"))
    if not source:  # `re:` or `//`: a pattern that matches no address is a mistake, not a choice
        raise ConfigError(f"{what}: an empty pattern; use *@example.com, an address, or /regex/")
    try:
        return re.compile(source, re.IGNORECASE)
    except re.error as exc:
        raise ConfigError(f"{what}: {pattern!r} is not a valid regular expression: {exc}") from None


class AllowList:
    """Which recipients may be relayed to (see the module docstring for the pattern forms). `what` names the
    setting in errors (relay_allow, release_allow, relay_deny)."""

    def __init__(self, patterns: Sequence[str], what: str = "relay_allow") -> None:
        self.patterns = tuple(patterns)
        self._compiled = [_compile(p, what) for p in self.patterns]

    def __bool__(self) -> bool:
        return bool(self._compiled)

    def allows(self, address: str) -> bool:
        if not address or any(c in address for c in "\r\n\x00"):
            return False
        return any(rx.fullmatch(address) for rx in self._compiled)

    def refused(self, addresses: Sequence[str]) -> list[str]:
        return [a for a in addresses if not self.allows(a)]

    def matching(self, address: str) -> str | None:
        """The first pattern `address` matches, or None."""
        if not address or any(c in address for c in "\r\n\x00"):
            return None
        return next((p for p, rx in zip(self.patterns, self._compiled, strict=True) if rx.fullmatch(address)), None)


# --- addresses and the sender override -----------------------------------------------------------------

_ADDRESS = re.compile(r'[^\s@<>()\[\]\\,;:"]+@[^\s@<>()\[\]\\,;:"]+')
_NAMED = re.compile(r"[^<>]*<([^<>]*)>")


def plausible_address(text: str) -> str | None:
    """The bare address of ``qa@example.com`` or ``QA <qa@example.com>``, or None when `text` is not one."""
    text = text.strip()
    named = _NAMED.fullmatch(text)
    address = (named.group(1) if named else text).strip()
    if not _ADDRESS.fullmatch(address) or any(ord(c) < 32 or ord(c) == 127 for c in address):
        return None
    local, domain = address.rsplit("@", 1)
    for part in (local, domain):
        if part.startswith(".") or part.endswith(".") or ".." in part:
            return None
    return address


def _address(text: str, what: str) -> str:
    address = plausible_address(text)
    if address is None:
        raise ConfigError(f"{what}: {text!r} is not an email address; write one such as qa@example.com")
    return address


def _header_line(raw: bytes, name: bytes) -> tuple[int, int] | None:
    """Where the first `name:` header field of `raw` is (start, end, its folded lines included), or None."""
    pos, start, stop = 0, -1, -1
    while pos < len(raw):
        newline = raw.find(b"\n", pos)
        end = len(raw) if newline < 0 else newline + 1
        line = raw[pos:end]
        if not line.strip(b"\r\n"):
            break  # the blank line: end of the header
        if start >= 0:
            if line[:1] not in (b" ", b"\t"):
                break
            stop = end
        elif re.match(re.escape(name) + rb"[ \t]*:", line, re.IGNORECASE):
            start, stop = pos, end
        pos = end
    return (start, stop) if start >= 0 else None


def override_from(raw: bytes, address: str) -> bytes:
    """A copy of `raw` whose From header's address is `address` (Mailpit's OverrideFromHeader): the display name
    is kept, the old address goes into ``X-Original-From``; a message without From gets one."""
    first = raw.find(b"\n")
    newline = b"\r\n" if first > 0 and raw[first - 1:first] == b"\r" else b"\n"
    found = _header_line(raw, b"From")
    if found is None:
        return b"From: " + address.encode() + newline + raw
    start, stop = found
    field = raw[start:stop]
    value = re.sub(r"\r?\n", "", field[field.index(b":") + 1:].decode("utf-8", "replace")).strip()
    parsed = [(name, addr) for name, addr in getaddresses([value]) if addr]
    if len(parsed) == 1:
        name, original = parsed[0]
        # The name decoded, then written again by formataddr, which quotes specials and encodes non-ASCII: a name
        # never becomes syntax (`"=?x?= <ceo@bank.example>, Z" <app@test>` must not add an address).
        sender = formataddr((_decoded_name(name), address))
    else:
        original, sender = value, address
    original = "".join(c for c in original if ord(c) >= 32 and ord(c) != 127)[:_ORIGINAL_MAX]
    ending = raw[stop - 2:stop] if raw[stop - 2:stop] == b"\r\n" else newline
    rest = raw[stop:]
    while (again := _header_line(rest, b"From")) is not None:  # a second From would still name the old sender
        rest = rest[:again[0]] + rest[again[1]:]
    return (b"X-Original-From: " + original.encode() + newline + raw[:start]
            + b"From: " + sender.encode() + ending + rest)


_ORIGINAL_MAX = 900  # X-Original-From is one line: well inside RFC 5322's 998 characters


def _decoded_name(name: str) -> str:
    """A display name as text: encoded words decoded, nothing that could pass for address syntax left raw."""
    try:
        text = str(make_header(decode_header(name)))
    except (ValueError, LookupError):  # a malformed encoded word, an unknown charset: keep it as written
        text = name
    return "".join(c for c in text if ord(c) >= 32 and ord(c) != 127)


# --- status --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class RecipientStatus:
    state: str = PENDING
    reason: str = ""
    attempts: int = 0
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        return {"Status": self.state, "Reason": self.reason, "Attempts": self.attempts,
                "Updated": self.updated.isoformat().replace("+00:00", "Z")}


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int
    tls: str = "none"  # none | starttls | tls
    user: str | None = None
    password: str | None = None
    local_hostname: str = "mailnest"  # our EHLO name: given, so smtplib does not look up our FQDN
    timeout: float = 30.0
    verify: bool = True

    @classmethod
    def from_config(cls, config: Config) -> Upstream | None:
        if not config.relay:
            return None
        listen = parse_listen(config.relay, what="relay")
        if listen.port == 0:
            raise ConfigError(f"relay: {config.relay!r} needs the upstream's port, as in smtp.example.com:587")
        if config.relay_tls not in ("none", "starttls", "tls"):
            raise ConfigError(f"relay_tls: {config.relay_tls!r} must be none, starttls or tls")
        if (config.relay_user is None) != (config.relay_password is None):
            raise ConfigError("relay_user and relay_password go together")
        return cls(listen.host, listen.port, config.relay_tls, config.relay_user, config.relay_password,
                   config.hostname, float(config.extra.get("relay_timeout", 30.0)),  # type: ignore[arg-type]
                   bool(config.extra.get("relay_tls_verify", True)))

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


# --- sending (blocking; runs on a worker thread) -------------------------------------------------------

Outcome = tuple[str, str]  # (sent | temporary | permanent, reason)


def _reason(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    return f"{code} {text}".strip()


def _kind(code: int) -> str:
    return _TEMPORARY if 400 <= code < 500 or code < 0 else _PERMANENT


def send(upstream: Upstream, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> dict[str, Outcome]:
    """One SMTP transaction; what happened to each recipient. Never raises for SMTP or network trouble."""
    try:
        return _transact(upstream, raw, mail_from, rcpts)
    except smtplib.SMTPRecipientsRefused as exc:
        return {r: (_kind(code), _reason(code, msg)) for r, (code, msg) in exc.recipients.items()}
    except smtplib.SMTPResponseException as exc:  # sender refused, data refused, auth failed, ...
        return dict.fromkeys(rcpts, (_kind(exc.smtp_code), _reason(exc.smtp_code, exc.smtp_error)))
    except smtplib.SMTPNotSupportedError as exc:
        return dict.fromkeys(rcpts, (_PERMANENT, f"upstream: {exc}"))
    except ssl.SSLCertVerificationError as exc:
        return dict.fromkeys(rcpts, (_PERMANENT, f"TLS certificate not trusted: {exc.verify_message}"))
    except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timeout, disconnected
        return dict.fromkeys(rcpts, (_TEMPORARY, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__))


def _transact(upstream: Upstream, raw: bytes, mail_from: str, rcpts: Sequence[str]) -> dict[str, Outcome]:
    client: smtplib.SMTP
    if upstream.tls == "tls":
        client = smtplib.SMTP_SSL(upstream.host, upstream.port, local_hostname=upstream.local_hostname,
                                  timeout=upstream.timeout, context=upstream.ssl_context())
    else:
        client = smtplib.SMTP(upstream.host, upstream.port, local_hostname=upstream.local_hostname,
                              timeout=upstream.timeout)
    with client:
        client.ehlo()
        if upstream.tls == "starttls":
            client.starttls(context=upstream.ssl_context())
            client.ehlo()
        if upstream.user is not None:
            client.login(upstream.user, upstream.password or "")
        options = []
        if not mail_from.isascii() or not all(r.isascii() for r in rcpts):
            options.append("SMTPUTF8")
        if not raw.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        refused = client.sendmail(mail_from, list(rcpts), raw, mail_options=options)
    outcome: dict[str, Outcome] = dict.fromkeys(rcpts, ("sent", "250 accepted"))
    for rcpt, (code, msg) in refused.items():
        outcome[rcpt] = (_kind(code), _reason(code, msg))
    return outcome


# --- the relay -----------------------------------------------------------------------------------------


class Relay:
    name = "relay"

    def __init__(self, upstream: Upstream, allow: AllowList, *, release_allow: AllowList | None = None,
                 deny: AllowList | None = None, forward_to: Sequence[str] = (), override_from: str | None = None,
                 attempts: int = 5, backoff: float = 1.0, max_backoff: float = 60.0, history: int = 1000,
                 concurrency: int = 4) -> None:
        self.upstream = upstream
        self.allow = allow  # relayed automatically, and released
        self.release_allow = release_allow or AllowList(())  # released only
        self.deny = deny or AllowList(())  # never, whatever the two above say
        self.forward_to = tuple(dict.fromkeys(forward_to))
        self.override_from = override_from
        # Recipients sent to and given up on (relayed, forwarded, released), for the metrics.
        self.outcomes: CounterOf[str] = CounterOf({"sent": 0, "failed": 0})
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._history_size = history
        self._statuses: OrderedDict[str, dict[str, RecipientStatus]] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(concurrency)
        self._closed = False

    @classmethod
    def from_config(cls, config: Config) -> Relay | None:
        upstream = Upstream.from_config(config)
        if upstream is None:
            for name in ("relay_allow", "release_allow", "relay_deny", "forward_to", "relay_override_from"):
                if getattr(config, name):
                    raise ConfigError(f"{name} is set but relay (the upstream HOST:PORT) is not")
            return None
        deny = AllowList(config.relay_deny, "relay_deny")
        forward_to = [_address(text, "forward_to") for text in config.forward_to]
        for address in forward_to:
            pattern = deny.matching(address)
            if pattern is not None:
                raise ConfigError(f"forward_to: {address!r} matches relay_deny {pattern!r}, and a denied address is "
                                  "never sent to: drop one of the two")
        override = config.relay_override_from
        extra = config.extra
        return cls(upstream, AllowList(config.relay_allow), release_allow=AllowList(config.release_allow,
                   "release_allow"), deny=deny, forward_to=forward_to,
                   override_from=_address(override, "relay_override_from") if override is not None else None,
                   attempts=int(extra.get("relay_attempts", 5)),  # type: ignore[call-overload]
                   backoff=float(extra.get("relay_backoff", 1.0)),  # type: ignore[arg-type]
                   max_backoff=float(extra.get("relay_max_backoff", 60.0)))  # type: ignore[arg-type]

    # Who may get what ----------------------------------------------------------------------------------

    def relays_to(self, address: str) -> bool:
        """Whether a new message is relayed automatically to its recipient `address`."""
        return self.allow.allows(address) and not self.deny.allows(address)

    def releasable(self, address: str) -> bool:
        """Whether a stored message may be released to `address` on demand."""
        return (self.allow.allows(address) or self.release_allow.allows(address)) and not self.deny.allows(address)

    def outgoing(self, raw: bytes, mail_from: str) -> tuple[bytes, str]:
        """What is sent upstream for `raw` from `mail_from`: a rewritten copy with `override_from`, else as is."""
        if self.override_from is None:
            return raw, mail_from
        return override_from(raw, self.override_from), self.override_from

    # Status, for the API -------------------------------------------------------------------------------

    def status(self, message_id: str) -> dict[str, RecipientStatus] | None:
        """Per-recipient relay status of a message, or None if it was never relayed (or is forgotten)."""
        return self._statuses.get(message_id)

    def status_json(self, message_id: str) -> dict[str, Any] | None:
        statuses = self.status(message_id)
        if statuses is None:
            return None
        return {rcpt: s.to_json() for rcpt, s in statuses.items()}

    def _track(self, message_id: str, rcpts: Sequence[str]) -> dict[str, RecipientStatus]:
        statuses = self._statuses.get(message_id)
        if statuses is None:
            statuses = self._statuses[message_id] = {}
        else:
            self._statuses.move_to_end(message_id)
        for rcpt in rcpts:
            statuses[rcpt] = RecipientStatus()
        while len(self._statuses) > self._history_size:
            self._statuses.popitem(last=False)
        return statuses

    # Automatic relaying ----------------------------------------------------------------------------------

    def submit(self, delivery: Delivery, *, done: Callable[[], None] | None = None) -> None:
        """Queue a committed message for its allowed recipients; returns at once. `done()` is called once its
        relay is finished (every recipient sent or failed for good, or nothing to relay), never when it was cut
        short by close()."""
        if self._closed:
            return
        self._start(delivery, self._relayed(delivery), "relay", done)

    def forward(self, delivery: Delivery, *, done: Callable[[], None] | None = None) -> None:
        """Queue a committed message for the `forward_to` addresses (less those it is relayed to already);
        returns at once; `done()` as for `submit`."""
        if self._closed:
            return
        relayed = {r.lower() for r in self._relayed(delivery)}
        self._start(delivery, [a for a in self.forward_to if a.lower() not in relayed], "forward", done)

    def _relayed(self, delivery: Delivery) -> list[str]:
        if delivery.envelope.source not in RELAYED_SOURCES:
            return []
        return [r for r in dict.fromkeys(delivery.envelope.rcpt_tos) if self.relays_to(r)]

    def _start(self, delivery: Delivery, rcpts: list[str], what: str, done: Callable[[], None] | None) -> None:
        if delivery.envelope.source not in RELAYED_SOURCES or not rcpts:
            if done is not None:
                done()
            return
        statuses = self._track(delivery.id, rcpts)
        raw, mail_from = self.outgoing(delivery.raw, delivery.envelope.mail_from)
        task = asyncio.get_running_loop().create_task(
            self._deliver(delivery.id, raw, mail_from, rcpts, statuses, done),
            name=f"mailnest-{what}-{delivery.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))

    async def _deliver(self, message_id: str, raw: bytes, mail_from: str, rcpts: list[str],
                       statuses: dict[str, RecipientStatus], done: Callable[[], None] | None = None) -> None:
        pending = list(rcpts)
        await self._attempts(message_id, raw, mail_from, pending, statuses)
        if done is not None:  # not reached when cancelled (close): the work stays for the next node to sweep
            done()

    async def _attempts(self, message_id: str, raw: bytes, mail_from: str, pending: list[str],
                        statuses: dict[str, RecipientStatus]) -> None:
        try:
            for attempt in range(1, self.attempts + 1):
                async with self._slots:
                    outcome = await asyncio.to_thread(send, self.upstream, raw, mail_from, pending)
                still: list[str] = []
                for rcpt in pending:
                    kind, reason = outcome.get(rcpt, (_TEMPORARY, "no answer for this recipient"))
                    status = statuses[rcpt]
                    status.attempts, status.reason, status.updated = attempt, reason, datetime.now(UTC)
                    if kind == "sent":
                        status.state = SENT
                        self.outcomes["sent"] += 1
                    elif kind == _PERMANENT or attempt == self.attempts:
                        status.state = FAILED
                        self.outcomes["failed"] += 1
                        if kind == _TEMPORARY:
                            status.reason = f"{reason} (gave up after {attempt} attempts)"
                        log.warning("relay of %s to %s failed: %s", message_id, rcpt, status.reason)
                    else:
                        still.append(rcpt)
                pending = still
                if not pending:
                    return
                log.info("relay of %s to %s: %s; retrying in %.1fs", message_id, ", ".join(pending),
                         statuses[pending[0]].reason, self._delay(attempt))
                await asyncio.sleep(self._delay(attempt))
        except asyncio.CancelledError:
            self._fail(statuses, pending, "mailnest stopped before the relay finished")
            raise
        except Exception as exc:  # a bug, not an SMTP problem (send() catches those): never lose it silently
            log.exception("relay of %s crashed", message_id)
            self._fail(statuses, pending, f"internal error: {type(exc).__name__}: {exc}")

    def _fail(self, statuses: dict[str, RecipientStatus], rcpts: Sequence[str], reason: str) -> None:
        for rcpt in rcpts:
            status = statuses[rcpt]
            if status.state == PENDING:
                status.state, status.reason, status.updated = FAILED, reason, datetime.now(UTC)
                self.outcomes["failed"] += 1

    # Release on demand -----------------------------------------------------------------------------------

    async def release(self, raw: bytes, to: Sequence[str], mail_from: str, *,
                      message_id: str | None = None) -> dict[str, RecipientStatus]:
        """Send `raw` now to `to` (POST /api/v1/message/{ID}/release). One attempt, no queue.

        Raises RelayRefused (HTTP 400) before sending anything if any address is off both allow-lists
        (`relay_allow`, `release_allow`) or on `relay_deny`, or `to` is empty, and RelayFailed (502) if the
        upstream took it for no recipient. Returns per-recipient status, also recorded under `message_id` when
        given. With `override_from`, the copy sent has that sender (`raw` itself is not changed).
        """
        rcpts = list(dict.fromkeys(a.strip() for a in to))
        refused = [a for a in rcpts if not self.releasable(a)]
        if not rcpts or refused:
            raise RelayRefused(refused, [a for a in refused if self.deny.allows(a)])
        raw, mail_from = self.outgoing(raw, mail_from)
        async with self._slots:
            outcome = await asyncio.to_thread(send, self.upstream, raw, mail_from, rcpts)
        statuses = self._track(message_id, rcpts) if message_id else {r: RecipientStatus() for r in rcpts}
        for rcpt in rcpts:
            kind, reason = outcome.get(rcpt, (_TEMPORARY, "no answer for this recipient"))
            status = statuses[rcpt]
            status.state = SENT if kind == "sent" else FAILED
            self.outcomes["sent" if kind == "sent" else "failed"] += 1
            status.reason, status.attempts, status.updated = reason, 1, datetime.now(UTC)
        if all(statuses[r].state == FAILED for r in rcpts):  # this release's recipients, not earlier relays'
            raise RelayFailed("; ".join(f"{r}: {statuses[r].reason}" for r in rcpts))
        return statuses

    async def close(self) -> None:
        """Stop: messages still waiting for a retry are marked failed (their queue lives in memory)."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

