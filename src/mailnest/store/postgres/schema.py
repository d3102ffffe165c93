"""The PostgreSQL layout and its migrations, versioned in a `schema_version` table of the store's schema.

One schema per tenant (`mailnest` without one): every table below lives in it, so tenants never see each other.
Summary columns live in `messages`, raw bytes and bodies in `bodies`, the normalized search texts (search.py's
`index_values`, c0..c9 in FTS_COLUMNS order) in `search_index` with a pg_trgm GIN index per column: every text
term is `LIKE '%needle%'` there, which a trigram index answers for needles of three characters or more (since
version 2 one index over `words`, each distinct token of c0..c9, instead of one per column).
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
    (
        # Version 2, for ingest speed (measured with benchmarks/team_bench.py, pg_stat_statements and EXPLAIN
        # (ANALYZE, WAL)): the ten trigram indexes cost PostgreSQL 70% of its work per message, most of it
        # pg_trgm taking the trigrams of the whole body apart. One index now covers `words`: every distinct
        # space-separated token of c0..c9, once (ingest.search_words). A text term keeps its exact test on its
        # columns and adds `words LIKE '%token%'` for each token of its needle, which any match implies (a
        # token of the needle lies inside one token of the column), so the answers are the same.
        "ALTER TABLE search_index ADD COLUMN words text",
        """UPDATE search_index SET words = array_to_string(ARRAY(SELECT DISTINCT t FROM unnest(string_to_array(
            concat_ws(' ', c0, c1, c2, c3, c4, c5, c6, c7, c8, c9), ' ')) AS t WHERE t != ''), ' ')""",
        "ALTER TABLE search_index ALTER COLUMN words SET NOT NULL",
        *(f"DROP INDEX search_index_c{i}" for i in range(10)),
        "CREATE INDEX search_index_words ON search_index USING gin (words gin_trgm_ops)",
        # lz4 for the long texts, where the server has it (Debian's and most builds do): pglz compressing each
        # body was a twentieth of the insert's CPU (perf). A server built without it keeps pglz.
        """DO $$ BEGIN
            ALTER TABLE bodies ALTER COLUMN raw SET COMPRESSION lz4, ALTER COLUMN text SET COMPRESSION lz4,
                ALTER COLUMN html SET COMPRESSION lz4;
            ALTER TABLE search_index ALTER COLUMN c6 SET COMPRESSION lz4, ALTER COLUMN words SET COMPRESSION lz4;
        EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL;
        END $$""",
        # Totals by statement (transition tables) rather than by row: a batch of messages is one INSERT, and a
        # row trigger updating the one totals row per message was a fifth of that INSERT's time.
        "DROP TRIGGER totals_insert_delete ON messages",
        "DROP TRIGGER totals_update ON messages",
        "DROP FUNCTION totals_change()",
        # One UPDATE each, written out: a helper SQL function cost more than the update itself (it is planned
        # again on every call), and the row changes only when the delivered mail's counts move.
        """CREATE FUNCTION totals_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE totals SET total = total + d.n, unread = unread + d.n_unread, size = size + d.n_size
            FROM (SELECT count(*) AS n, count(*) FILTER (WHERE read = 0) AS n_unread,
                    coalesce(sum(size), 0) AS n_size FROM new_rows WHERE folder = '' AND owner = '') AS d
            WHERE d.n != 0;
            RETURN NULL;
        END $$""",
        """CREATE FUNCTION totals_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE totals SET total = total - d.n, unread = unread - d.n_unread, size = size - d.n_size
            FROM (SELECT count(*) AS n, count(*) FILTER (WHERE read = 0) AS n_unread,
                    coalesce(sum(size), 0) AS n_size FROM old_rows WHERE folder = '' AND owner = '') AS d
            WHERE d.n != 0;
            RETURN NULL;
        END $$""",
        """CREATE FUNCTION totals_update() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE totals SET total = total + d.n, unread = unread + d.n_unread, size = size + d.n_size
            FROM (SELECT sum(sign) AS n, coalesce(sum(sign) FILTER (WHERE read = 0), 0) AS n_unread,
                    coalesce(sum(sign * size), 0) AS n_size
                  FROM (SELECT -1 AS sign, read, size FROM old_rows WHERE folder = '' AND owner = ''
                        UNION ALL SELECT 1, read, size FROM new_rows WHERE folder = '' AND owner = '') AS r) AS d
            WHERE d.n != 0 OR d.n_unread != 0 OR d.n_size != 0;
            RETURN NULL;
        END $$""",
        # A message's other rows go with it by one statement-level DELETE per table, not by foreign keys: the
        # keys' checks cost a query per row and table at every insert (three per message), and their cascade
        # a query per row at every delete. Only the store writes these tables, always with the message.
        "ALTER TABLE bodies DROP CONSTRAINT bodies_uid_fkey",
        "ALTER TABLE search_index DROP CONSTRAINT search_index_uid_fkey",
        "ALTER TABLE recipients DROP CONSTRAINT recipients_uid_fkey",
        """CREATE FUNCTION messages_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM bodies WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM search_index WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM recipients WHERE uid IN (SELECT uid FROM old_rows);
            RETURN NULL;
        END $$""",
        """CREATE TRIGGER messages_cascade AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION messages_cascade()""",
        """CREATE TRIGGER totals_insert AFTER INSERT ON messages REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION totals_insert()""",
        """CREATE TRIGGER totals_delete AFTER DELETE ON messages REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION totals_delete()""",
        # Transition tables allow no column list: this runs for every UPDATE of messages, and changes the row
        # only when the delivered mail's counts moved.
        """CREATE TRIGGER totals_update AFTER UPDATE ON messages REFERENCING OLD TABLE AS old_rows
            NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION totals_update()""",
    ),
    (
        # Version 3: once-only work (webhooks, relay, file outputs) still to do, one row per message and kind,
        # claimed with a lease (store/base.py WorkItem, postgres/work.py). Leases are seconds since the epoch by
        # the server's clock, so nodes whose clocks disagree still agree on when a lease ends.
        """CREATE TABLE work (uid bigint NOT NULL, kind text NOT NULL, holder text NOT NULL,
            lease_until double precision NOT NULL, attempts integer NOT NULL DEFAULT 0, PRIMARY KEY (uid, kind))""",
        "CREATE INDEX work_lease ON work (lease_until)",
        # A message's work goes with it, by the same statement-level cascade as its other rows.
        """CREATE OR REPLACE FUNCTION messages_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM bodies WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM search_index WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM recipients WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM work WHERE uid IN (SELECT uid FROM old_rows);
            RETURN NULL;
        END $$""",
    ),
    (
        # Version 4: the Message-IDs of delivered mail, claimed at ingest (INSERT ... ON CONFLICT DO NOTHING, so
        # two nodes given one Message-ID at once keep exactly one) with --ignore-duplicate-ids only: without it
        # the table stays empty and ingest never touches it.
        "CREATE TABLE message_ids (message_id text PRIMARY KEY, uid bigint NOT NULL)",
        "CREATE INDEX message_ids_uid ON message_ids (uid)",
        """CREATE OR REPLACE FUNCTION messages_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM bodies WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM search_index WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM recipients WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM work WHERE uid IN (SELECT uid FROM old_rows);
            DELETE FROM message_ids WHERE uid IN (SELECT uid FROM old_rows);
            RETURN NULL;
        END $$""",
    ),
    (
        # Version 5: how each row's raw bytes are stored (store/codec.py): 0 as received, 1 one zstd frame
        # (--compress). A constant default: no table rewrite, old rows read as stored as received.
        "ALTER TABLE bodies ADD COLUMN raw_codec integer NOT NULL DEFAULT 0",
    ),
    (
        # Version 6: spaces, the throwaway address spaces of POST /api/v1/mailboxes (store/base.py Space), shared
        # by every node of the database; their retention runs under the advisory lock `spaces` (spaces.py).
        """CREATE TABLE spaces (domain text PRIMARY KEY, created double precision NOT NULL,
            max_messages integer NOT NULL DEFAULT 0, max_age double precision, webhook text)""",
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
