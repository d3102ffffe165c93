"""The aiosmtpd handler: accept any sender and recipient, store the message with its envelope, then say 250.

The reply to DATA is sent only after the store has committed the message, so a 250 always means stored. A store
that cannot take the message gets the client to try again later: `452 4.3.1` when the disk is full
(`StoreFullError`), `451 4.3.0` for any other failure; neither stores anything. A message that can never be
stored as it is (`MessageRejectedError`: a value beyond a database limit) gets `554 5.3.4`, so the client stops
retrying it.

With `ignore_duplicate_ids` a message whose Message-ID delivered mail already has is answered `250` and not
stored (`DuplicateMessageError`; the store logs it and counts it), as Mailpit's `--ignore-duplicate-ids` does.

The null reverse-path `MAIL FROM:<>` (bounces, delivery reports) is kept as an empty sender, `""`.

With `smtp_allowed_recipients` (a regular expression, Mailpit's `--smtp-allowed-recipients`) a recipient it does
not find a match in gets `550 5.1.0`; with `smtp_ignore_rejected_recipients` as well, it gets `250` and is dropped,
and a message left with no recipient is answered `250` and not stored, as Mailpit does.
"""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SMTPEnvelope

from ..config import UNLIMITED_SIZE, Config, compile_recipients
from ..models import Envelope, TLSInfo
from ..store.base import (
    DuplicateMessageError,
    MessageRejectedError,
    Store,
    StoreFullError,
    StoreUnavailableError,
)

log = logging.getLogger("mailnest.smtp")


def _peer(session: Session) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peer or "")


def _tls(session: Session) -> TLSInfo | None:
    ssl_object = (session.ssl or {}).get("ssl_object") if isinstance(session.ssl, dict) else None
    if ssl_object is None:
        return None
    cipher = ssl_object.cipher()
    return TLSInfo(version=ssl_object.version() or "", cipher=cipher[0] if cipher else "")


def _auth_user(session: Session) -> str | None:
    # aiosmtpd keeps what the authenticator returned; a LoginPassword-like object has `.login`.
    data = session.auth_data
    if data is None or not session.authenticated:
        return None
    user = getattr(data, "login", data)
    if isinstance(user, bytes):
        return user.decode("utf-8", "replace")
    return str(user)


def _plausible(address: str, *, allow_empty: bool = False) -> bool:
    """Any address is welcome, but not one that could smuggle spaces or control characters into headers."""
    if not address:
        return allow_empty
    return not any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in address)


class CaptureEnvelope(SMTPEnvelope):
    """aiosmtpd's envelope, and the recipients answered 250 but dropped (--smtp-ignore-rejected-recipients)."""

    def __init__(self) -> None:
        super().__init__()
        self.dropped_rcpts: list[str] = []


class CaptureHandler:
    """Stores every message. Hooks follow aiosmtpd's handler API."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store
        self.allowed_recipients = compile_recipients(config.smtp_allowed_recipients)

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: SMTPEnvelope, hostname: str,
                          responses: list[str]) -> list[str]:
        session.host_name = hostname
        # aiosmtpd handles pipelined commands in order; say so, before the final line.
        return [*responses[:-1], "250-PIPELINING", responses[-1]]

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SMTPEnvelope, address: str,
                          mail_options: list[str]) -> str:
        if address == "<>":
            address = ""  # the null reverse-path of bounces: kept as an empty sender
        if not _plausible(address, allow_empty=True):
            log.info("%s: refused MAIL FROM %r: malformed address", _peer(session), address)
            return "553 5.1.7 Malformed sender address (no spaces or control characters allowed)"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SMTPEnvelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address in ("", "<>"):
            return "501 5.1.3 The null path <> is a sender only, not a recipient"
        if not _plausible(address):
            log.info("%s: refused RCPT TO %r: malformed address", _peer(session), address)
            return "553 5.1.3 Malformed recipient address (no spaces or control characters allowed)"
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            log.warning("%s: refused recipient %s: more than %d recipients", _peer(session), address,
                        self.config.max_recipients)
            return f"452 4.5.3 Too many recipients (at most {self.config.max_recipients})"
        if self.allowed_recipients is not None and not self.allowed_recipients.search(address):
            if self.config.smtp_ignore_rejected_recipients and isinstance(envelope, CaptureEnvelope):
                log.info("%s: dropped recipient %s: not an allowed recipient (answered 250, as "
                         "--smtp-ignore-rejected-recipients asks)", _peer(session), address)
                envelope.dropped_rcpts.append(address)
                return "250 OK"
            log.info("%s: refused recipient %s: not an allowed recipient", _peer(session), address)
            return "550 5.1.0 Requested action not taken: mailbox unavailable (not an allowed recipient here)"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SMTPEnvelope) -> str:
        raw = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
        if not envelope.rcpt_tos:  # every recipient was dropped (--smtp-ignore-rejected-recipients)
            dropped = envelope.dropped_rcpts if isinstance(envelope, CaptureEnvelope) else []
            log.info("%s -> %s, %d bytes: not stored, no allowed recipient", mail_from or "<>", ", ".join(dropped),
                     len(raw))
            return "250 2.0.0 Ok: queued"
        record = Envelope(
            mail_from=mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            helo=session.host_name or "",
            peer=_peer(session),
            auth_user=_auth_user(session),
            tls=_tls(session),
            smtputf8=envelope.smtp_utf8,
        )
        try:
            summary = await self.store.add(raw, record)
        except DuplicateMessageError as exc:  # --ignore-duplicate-ids: accepted, not stored (the store logs it)
            first = f" (kept: {exc.first_id})" if exc.first_id else ""
            return f"250 2.0.0 Ok: duplicate Message-ID, not stored again{first}"
        except StoreFullError:
            log.warning("disk full: refused a message from %s with 452 (nothing stored; the client will retry)",
                        _peer(session))
            return "452 4.3.1 Insufficient system storage, try again later"
        except StoreUnavailableError as exc:
            log.warning("database unavailable: refused a message from %s with 451 (nothing stored; the client "
                        "will retry): %s", _peer(session), exc)
            return "451 4.3.0 The mail store is unavailable, try again later"
        except MessageRejectedError as exc:
            log.warning("refused a message from %s for good with 554 (it can never be stored as it is): %s",
                        _peer(session), exc)
            return "554 5.3.4 Message cannot be stored: " + " ".join(str(exc).split())[:200]
        except Exception:
            log.exception("could not store a message from %s", _peer(session))
            return "451 4.3.0 Could not store the message; try again later"
        log.info("%s -> %s, %d bytes, id %s", mail_from or "<>", ", ".join(envelope.rcpt_tos), len(raw), summary.id)
        return f"250 2.0.0 Ok: queued as {summary.id}"


def ident(config: Config) -> str:
    """What the 220 greeting says after the host name: `mailnest ESMTP`, or `mailnest (LABEL) ESMTP` as Mailpit
    puts its --label there (in ASCII: the greeting is read before SMTPUTF8 is agreed)."""
    if not config.label:
        return "mailnest ESMTP"
    label = config.label.encode("ascii", "replace").decode("ascii")
    return f"mailnest ({label}) ESMTP"


def handler_kwargs(config: Config) -> dict[str, Any]:
    """aiosmtpd SMTP keyword arguments that follow from the config."""
    unlimited = config.max_message_size >= UNLIMITED_SIZE
    return {
        "hostname": config.hostname,
        "data_size_limit": None if unlimited else config.max_message_size,  # None: no SIZE limit advertised
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "timeout": config.smtp_timeout,
        "ident": ident(config),
    }
