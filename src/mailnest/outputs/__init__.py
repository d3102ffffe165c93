"""Where mail goes after it is stored: MH folders, Maildir, mbox, a latest-message file, the console, a
relay upstream; and the custom handlers that see each SMTP step. Runtime wiring: `OutputDispatcher`
(outputs and relay) and `CustomHandlers` (called by the SMTP handler)."""

from .custom import CustomHandlers, HandlerLoadError, HookedHandler, load_handler
from .delivery import Delivery, FileOutput
from .dispatcher import OutputDispatcher, build_outputs
from .relay import (
    AllowList,
    RecipientStatus,
    Relay,
    RelayError,
    RelayFailed,
    RelayNotConfigured,
    RelayRefused,
)

__all__ = [
    "AllowList",
    "CustomHandlers",
    "Delivery",
    "FileOutput",
    "HandlerLoadError",
    "HookedHandler",
    "OutputDispatcher",
    "RecipientStatus",
    "Relay",
    "RelayError",
    "RelayFailed",
    "RelayNotConfigured",
    "RelayRefused",
    "build_outputs",
    "load_handler",
]
