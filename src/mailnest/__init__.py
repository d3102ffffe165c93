"""mailnest: a local mail server for development and testing.

The public names are imported on first use, so that `mailnest sendmail` and the pytest plugin stay quick to
load when the server parts are not needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "config", "ConfigError": "config", "Listen": "config",
    "Address": "models", "Attachment": "models", "Envelope": "models", "Message": "models", "Page": "models",
    "Stats": "models", "Summary": "models",
    "BindError": "runtime", "MailServer": "runtime", "ServerThread": "runtime",
    "Client": "client", "AsyncClient": "client", "MailnestError": "client", "QueryError": "client",
    "NotFoundError": "client", "ServerUnavailableError": "client", "WaitTimeoutError": "client",
    "Mailbox": "client", "NotSupportedError": "client",
    "Mail": "received", "MailSummary": "received", "MailPage": "received", "MailAttachment": "received",
}

__all__ = [
    "Address", "AsyncClient", "Attachment", "BindError", "Client", "Config", "ConfigError", "Envelope", "Listen",
    "Mail", "MailAttachment", "MailPage", "MailServer", "MailSummary", "Mailbox", "MailnestError", "Message",
    "NotFoundError", "NotSupportedError", "Page", "QueryError", "ServerThread", "ServerUnavailableError", "Stats",
    "Summary", "WaitTimeoutError", "__version__",
]

if TYPE_CHECKING:
    from .client import (
        AsyncClient,
        Client,
        Mailbox,
        MailnestError,
        NotFoundError,
        NotSupportedError,
        QueryError,
        ServerUnavailableError,
        WaitTimeoutError,
    )
    from .config import Config, ConfigError, Listen
    from .models import Address, Attachment, Envelope, Message, Page, Stats, Summary
    from .received import Mail, MailAttachment, MailPage, MailSummary
    from .runtime import BindError, MailServer, ServerThread


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mailnest' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
