"""mailnest: a local mail server for development and testing."""

__version__ = "0.1.0"

from .config import Config, ConfigError, Listen
from .models import Address, Attachment, Envelope, Message, Page, Stats, Summary
from .runtime import BindError, MailServer, ServerThread

__all__ = [
    "Address",
    "Attachment",
    "BindError",
    "Config",
    "ConfigError",
    "Envelope",
    "Listen",
    "MailServer",
    "Message",
    "Page",
    "ServerThread",
    "Stats",
    "Summary",
    "__version__",
]
