"""Where SQLiteStore's IMAP SQL used to live; it is `mailnest.store.sqlite.imap` now. Kept so that the names
other code imported from here (the PostgreSQL backend shares the flag helpers) still import."""

from .base import INBOX, FolderError, FolderStatus, View
from .sqlite.imap import (
    _CHUNK,
    _HEADER_PREFIX,
    _NEW_COLUMNS,
    _RECENT,
    _SEEN,
    ImapMethods,
    _chunks,
    _flag_text,
    _flags,
    _folder_exists,
    _uidnext,
    _view_where,
)
from .sqlite.imap import ImapMethods as ImapStoreMixin

__all__ = ["INBOX", "_CHUNK", "_HEADER_PREFIX", "_NEW_COLUMNS", "_RECENT", "_SEEN", "FolderError", "FolderStatus",
           "ImapMethods", "ImapStoreMixin", "View", "_chunks", "_flag_text", "_flags", "_folder_exists",
           "_uidnext", "_view_where"]
