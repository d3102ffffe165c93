"""IMAP-specific SQL for SQLiteStore (flags, folders, APPEND/COPY/MOVE, EXPUNGE). Owned by the IMAP work."""

from __future__ import annotations


class ImapStoreMixin:
    """Mixed into SQLiteStore; uses its `_read`/`_write` helpers and `hub`."""
