"""Which backend a `--db` value names: a file path is SQLite (the default, nothing to set up); a
`postgresql://` URL is PostgreSQL, the team store that several nodes share.

Front doors never import a backend; the runtime asks this module for a `Store`."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ..config import Config, ConfigError
from ..events import Hub
from .base import Store

_URL = re.compile(r"^postgres(?:ql)?://", re.I)
TENANT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # a PostgreSQL schema name that needs no quoting


def is_database_url(db: object) -> bool:
    """A PostgreSQL URL (`postgresql://` or `postgres://`), as opposed to a SQLite file path."""
    return isinstance(db, str) and bool(_URL.match(db))


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


def check_tenant(tenant: str | None, db: Path | str | None) -> None:
    """Refuse a tenant name that is not a plain schema name, or a tenant without PostgreSQL."""
    if tenant is None:
        return
    if not is_database_url(db):
        raise ConfigError("--tenant needs a PostgreSQL --db (postgresql://...); a SQLite file holds one tenant: "
                          "use one --db file per team instead")
    if not TENANT.match(tenant):
        raise ConfigError(f"--tenant {tenant!r}: use 1-63 lower-case letters, digits and _, starting with a "
                          "letter or _ (it names a PostgreSQL schema)")


def open_store(config: Config, hub: Hub) -> Store:
    """The store `config.db` names, not yet started."""
    if is_database_url(config.db):
        try:
            from .postgres import PostgresStore
        except ImportError as exc:  # psycopg is an optional dependency
            raise ConfigError(f"--db {shown(config.db)} needs PostgreSQL support: pip install 'mailnest[postgres]' "
                              f"({exc})") from exc
        return PostgresStore(str(config.db), hub, max_messages=config.max_messages, max_age=config.max_age,
                             tenant=config.tenant)
    from .sqlite import SQLiteStore

    return SQLiteStore(config.db, hub, max_messages=config.max_messages, max_age=config.max_age)
