"""Which backend a `--db` value names: a file path is SQLite (the default, nothing to set up); a
`postgresql://` URL is PostgreSQL, the team store that several nodes share.

Front doors never import a backend; the runtime asks this module for a `Store`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..config import Config, ConfigError, is_database_url
from ..events import Hub
from .base import Store


def parse_db(value: str) -> Path | str:
    """A `--db` value: a PostgreSQL URL stays text, anything else is a SQLite file path."""
    return value if is_database_url(value) else Path(value)


def shown(db: Path | str | None) -> str:
    """The database as it may be logged or shown in the API: a URL loses its password."""
    if db is None:
        return ""
    if not is_database_url(db):
        return str(db)
    parts = urlsplit(str(db))
    if parts.password is None:
        return str(db)
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def open_store(config: Config, hub: Hub) -> Store:
    """The store `config.db` names, not yet started."""
    if is_database_url(config.db):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:  # psycopg is an optional dependency
            raise ConfigError(f"--db {shown(config.db)} needs PostgreSQL support: pip install 'mailnest[postgres]' "
                              f"({exc})") from exc
        store: Store = PostgresStore(str(config.db), hub, max_messages=config.max_messages, max_age=config.max_age,
                                     tenant=config.tenant)
    else:
        from .sqlite import SQLiteStore

        store = SQLiteStore(config.db, hub, max_messages=config.max_messages, max_age=config.max_age)
    store.configure_ingest(ignore_duplicate_ids=config.ignore_duplicate_ids,
                           use_message_dates=config.use_message_dates, compress=config.compress)
    return store
