"""The aiosmtpd handler: accept any sender and recipient, store the message with its envelope, then say 250.

The reply to DATA is sent only after the store has committed the message, so a 250 always means stored. A store
that cannot take the message gets the client to try again later: `452 4.3.1` when the disk is full
(`StoreFullError`), `451 4.3.0` for any other failure; neither stores anything.

The null reverse-path `MAIL FROM:<>` (bounces, delivery reports) is kept as an empty sender, `""`.
"""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SMTPEnvelope

from ..config import Config
from ..models import Envelope, TLSInfo
from ..store.base import Store, StoreFullError, StoreUnavailableError

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


class CaptureHandler:
    """Stores every message. Hooks follow aiosmtpd's handler API."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.store = store

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
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SMTPEnvelope) -> str:
        raw = envelope.original_content or b""
        mail_from = envelope.mail_from or ""
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
        except StoreFullError:
            log.warning("disk full: refused a message from %s with 452 (nothing stored; the client will retry)",
                        _peer(session))
            return "452 4.3.1 Insufficient system storage, try again later"
        except StoreUnavailableError as exc:
            log.warning("database unavailable: refused a message from %s with 451 (nothing stored; the client "
                        "will retry): %s", _peer(session), exc)
            return "451 4.3.0 The mail store is unavailable, try again later"
        except Exception:
            log.exception("could not store a message from %s", _peer(session))
            return "451 4.3.0 Could not store the message; try again later"
        log.info("%s -> %s, %d bytes, id %s", mail_from or "<>", ", ".join(envelope.rcpt_tos), len(raw), summary.id)
        return f"250 2.0.0 Ok: queued as {summary.id}"


def handler_kwargs(config: Config) -> dict[str, Any]:
    """aiosmtpd SMTP keyword arguments that follow from the config."""
    return {
        "hostname": config.hostname,
        "data_size_limit": config.max_message_size,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "timeout": config.smtp_timeout,
        "ident": "mailnest ESMTP",
    }
