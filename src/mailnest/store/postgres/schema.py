"""The PostgreSQL layout and its migrations, versioned in a `schema_version` table of the store's schema.

One schema per tenant (`mailnest` without one): every table below lives in it, so tenants never see each other.
Summary columns live in `messages`, raw bytes and bodies in `bodies`, the normalized search texts (search.py's
`index_values`, c0..c9 in FTS_COLUMNS order) in `search_index` with a pg_trgm GIN index per column: every text
term is `LIKE '%needle%'` there, which a trigram index answers for needles of three characters or more.
uids come from the sequence `uid_seq`, so a uid is never reused; `totals` holds the delivered mail's counts
(kept by triggers, so stats never count rows) and `changes`, bumped by every committed change, which a node
that lost its LISTEN connection compares to learn whether it missed anything.

Each version is written out literally, once, and never edited after it ships; a change is a new version at the
end. Each is applied in its own transaction, and all of migrating runs under an advisory lock, so several nodes
starting at once on a new database do not race: the first migrates, the others find it done.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

_ASCII_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        # Database-wide; in public unless it is there already (migrate() puts its schema on the search path).
        "CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public",
        "CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL)",
        "CREATE SEQUENCE uid_seq AS bigint",
        """CREATE TABLE messages (
            uid bigint PRIMARY KEY DEFAULT nextval('uid_seq'),
            id text NOT NULL UNIQUE,
            folder text NOT NULL DEFAULT '',
            owner text NOT NULL DEFAULT '',
            message_id text NOT NULL DEFAULT '',
            subject text NOT NULL DEFAULT '',
            from_json text,
            to_json text NOT NULL DEFAULT '[]',
            cc_json text NOT NULL DEFAULT '[]',
            bcc_json text NOT NULL DEFAULT '[]',
            reply_to_json text NOT NULL DEFAULT '[]',
            created double precision NOT NULL,
            sent double precision,
            size bigint NOT NULL,
            attachments integer NOT NULL DEFAULT 0,
            inline integer NOT NULL DEFAULT 0,
            snippet text NOT NULL DEFAULT '',
            read integer NOT NULL DEFAULT 0,
            flags text NOT NULL DEFAULT '',
            tags text NOT NULL DEFAULT '[]',
            mail_from text NOT NULL DEFAULT '',
            auth_user text,
            envelope_json text NOT NULL
        )""",
        "ALTER SEQUENCE uid_seq OWNED BY messages.uid",
        "CREATE INDEX messages_folder_uid ON messages (folder, owner, uid)",
        "CREATE INDEX messages_folder_read ON messages (folder, owner, read)",
        "CREATE INDEX messages_created ON messages (created)",
        """CREATE TABLE bodies (
            uid bigint PRIMARY KEY REFERENCES messages (uid) ON DELETE CASCADE,
            raw bytea NOT NULL,
            text text NOT NULL DEFAULT '',
            html text NOT NULL DEFAULT '',
            extra_json text NOT NULL DEFAULT '{}'
        )""",
        """CREATE TABLE recipients (
            mailbox text NOT NULL,
            uid bigint NOT NULL REFERENCES messages (uid) ON DELETE CASCADE,
            PRIMARY KEY (mailbox, uid)
        )""",
        "CREATE INDEX recipients_uid ON recipients (uid)",
        """CREATE TABLE search_index (
            uid bigint PRIMARY KEY REFERENCES messages (uid) ON DELETE CASCADE,
            c0 text NOT NULL, c1 text NOT NULL, c2 text NOT NULL, c3 text NOT NULL, c4 text NOT NULL,
            c5 text NOT NULL, c6 text NOT NULL, c7 text NOT NULL, c8 text NOT NULL, c9 text NOT NULL
        )""",
        *(f"CREATE INDEX search_index_c{i} ON search_index USING gin (c{i} gin_trgm_ops)" for i in range(10)),
        """CREATE TABLE imap_folders (owner text NOT NULL, name text NOT NULL, PRIMARY KEY (owner, name))""",
        """CREATE TABLE imap_subscriptions (owner text NOT NULL, name text NOT NULL, PRIMARY KEY (owner, name))""",
        """CREATE TABLE imap_recent (owner text NOT NULL, folder text NOT NULL, last_uid bigint NOT NULL,
            PRIMARY KEY (owner, folder))""",
        """CREATE TABLE totals (id integer PRIMARY KEY CHECK (id = 1), total bigint NOT NULL,
            unread bigint NOT NULL, size bigint NOT NULL, changes bigint NOT NULL)""",
        "INSERT INTO totals VALUES (1, 0, 0, 0, 0)",
        # SQLite's lower() and NOCASE fold ASCII only; the same answers need the same folding.
        f"""CREATE FUNCTION ascii_lower(value text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
            AS $$ SELECT translate(value, '{_ASCII_UPPER}', '{_ASCII_UPPER.lower()}') $$""",
        """CREATE FUNCTION totals_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP IN ('DELETE', 'UPDATE') AND OLD.folder = '' AND OLD.owner = '' THEN
                UPDATE totals SET total = total - 1, unread = unread - (OLD.read = 0)::int,
                    size = size - OLD.size;
            END IF;
            IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.folder = '' AND NEW.owner = '' THEN
                UPDATE totals SET total = total + 1, unread = unread + (NEW.read = 0)::int,
                    size = size + NEW.size;
            END IF;
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER totals_insert_delete AFTER INSERT OR DELETE ON messages
            FOR EACH ROW EXECUTE FUNCTION totals_change()""",
        """CREATE TRIGGER totals_update AFTER UPDATE OF read, size, folder, owner ON messages
            FOR EACH ROW WHEN (OLD.read IS DISTINCT FROM NEW.read OR OLD.size IS DISTINCT FROM NEW.size
                OR OLD.folder IS DISTINCT FROM NEW.folder OR OLD.owner IS DISTINCT FROM NEW.owner)
            EXECUTE FUNCTION totals_change()""",
        # A TRUNCATE-like delete of every delivered message would run the row trigger per row; that is fine.
    ),
)


DATABASE_MIGRATE_LOCK = "mailnest:migrate"  # shared by every tenant of a database


def lock_key(schema: str, job: str) -> str:
    """The text whose hashtext() is the advisory lock of one job (migrate, retention) in one schema."""
    return f"mailnest:{schema}:{job}"


async def search_path(conn: psycopg.AsyncConnection[object], schema: str) -> str:
    """The search_path of the store's connections: its schema, then the schema holding pg_trgm (public when
    the extension is not there yet: the first migration creates it there)."""
    cur = await conn.execute("SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
                             "WHERE e.extname = 'pg_trgm'")
    row = await cur.fetchone()
    extension_schema = str(row[0]) if row else "public"  # type: ignore[index]
    names = [schema] if extension_schema == schema else [schema, extension_schema]
    return ",".join(sql.Identifier(n).as_string(conn) for n in names)  # no space: it travels in `options`


async def migrate(conn: psycopg.AsyncConnection[object], schema: str,
                  migrations: Sequence[Sequence[str]] = MIGRATIONS) -> int:
    """Bring `schema` to the newest layout on an autocommit connection, one version per transaction, under an
    advisory lock. Returns the version reached. `migrations` is for tests (a prefix: an earlier version)."""
    key = lock_key(schema, "migrate")
    await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
    # And one lock for the whole database, always taken second: the extension pg_trgm is the database's, not the
    # schema's, so the first nodes of two tenants migrating at once both tried to create it (UniqueViolation).
    await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (DATABASE_MIGRATE_LOCK,))
    try:
        async with conn.transaction():
            await conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
            await conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.schema_version (version integer NOT NULL, "
                                       "applied timestamptz NOT NULL DEFAULT now())").format(sql.Identifier(schema)))
            cur = await conn.execute(sql.SQL("SELECT coalesce(max(version), 0) FROM {}.schema_version").format(
                sql.Identifier(schema)))
            row = await cur.fetchone()
            await conn.execute(sql.SQL("SET search_path TO " + await search_path(conn, schema)))
        version = int(row[0]) if row else 0  # type: ignore[index]
        if version > len(migrations):
            raise RuntimeError(f"this database was written by a newer mailnest (schema {version} in "
                               f"{schema!r}, this one knows {len(migrations)})")
        for number, statements in enumerate(migrations[version:], start=version + 1):
            try:
                async with conn.transaction():
                    for statement in statements:
                        await conn.execute(statement)
                    await conn.execute(sql.SQL("INSERT INTO {}.schema_version (version) VALUES (%s)").format(
                        sql.Identifier(schema)), (number,))
            except BaseException:
                log.error("migrating schema %r to version %d failed; it stays at version %d", schema, number,
                          number - 1)
                raise
            version = number
        return version
    finally:
        await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (DATABASE_MIGRATE_LOCK,))
        await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
