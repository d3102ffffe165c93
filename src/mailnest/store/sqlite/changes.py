"""Changes the Store protocol makes outside IMAP: read state, tags, deletions; each one transaction in the writer
and one event on the hub."""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from datetime import tzinfo

from ...events import AllDeleted, Hub, ReadChanged, TagsChanged
from ..base import Mailbox, Query
from ..faithful import faithful_text
from .retention import Retention, rows_where_in
from .views import view
from .writes import Writer


class ChangeMethods:
    """Composed into SQLiteStore, which provides these collaborators."""

    writer: Writer
    hub: Hub
    retention: Retention

    async def set_read(self, ids: Sequence[str], read: bool) -> builtins.list[str]:
        wanted = list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            changed = []
            for id_ in wanted:
                row = conn.execute("UPDATE messages SET read = ? WHERE id = ? AND read != ? RETURNING uid, id",
                                   (int(read), id_, int(read))).fetchone()
                if row:
                    changed.append((row[0], row[1]))
            return changed

        changed = await self.writer.write(run)
        if changed:
            self.hub.publish(ReadChanged(tuple(i for _, i in changed), tuple(u for u, _ in changed), read))
        return [i for _, i in changed]

    async def set_read_matching(self, read: bool, *, query: Query = "", mailbox: Mailbox = None,
                                tz: tzinfo | None = None) -> builtins.list[str]:
        where, params = view(mailbox, query, tz)

        def run(conn: sqlite3.Connection) -> list[tuple[int, str]]:
            return conn.execute(f"UPDATE messages AS m SET read = ? WHERE {where} AND m.read != ? RETURNING uid, id",
                                [int(read), *params, int(read)]).fetchall()

        changed = await self.writer.write(run)
        if changed:
            self.hub.publish(ReadChanged(tuple(i for _, i in changed), tuple(u for u, _ in changed), read))
        return [i for _, i in changed]

    async def delete(self, ids: Sequence[str]) -> builtins.list[str]:
        deleted = await self.retention.delete_found(lambda conn: rows_where_in(conn, "id", ids))
        return list(deleted["ids"]) if deleted else []

    async def delete_matching(self, *, query: Query = "", mailbox: Mailbox = None,
                              tz: tzinfo | None = None) -> builtins.list[str]:
        where, params = view(mailbox, query, tz)
        deleted = await self.retention.delete_found(
            lambda conn: conn.execute(f"SELECT m.uid, m.id FROM messages m WHERE {where}", params).fetchall())
        return list(deleted["ids"]) if deleted else []

    async def delete_all(self) -> int:
        def run(conn: sqlite3.Connection) -> int:
            count = conn.execute("SELECT count(*) FROM messages WHERE folder = ''").fetchone()[0]
            conn.execute("DELETE FROM messages WHERE folder = ''")
            self.retention.count = 0
            return int(count)

        count = await self.writer.write(run)
        self.hub.publish(AllDeleted())
        return count

    async def set_tags(self, ids: Sequence[str], tags: Sequence[str]) -> builtins.list[str]:
        tag_json = json.dumps(list(dict.fromkeys(faithful_text(t) for t in tags if t)), ensure_ascii=False)
        wanted = list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> list[str]:
            changed = []
            for id_ in wanted:
                if conn.execute("UPDATE messages SET tags = ? WHERE id = ? AND tags != ?",
                                (tag_json, id_, tag_json)).rowcount:
                    changed.append(id_)
            return changed

        changed = await self.writer.write(run)
        if changed:
            self.hub.publish(TagsChanged(tuple(changed), tuple(json.loads(tag_json))))
        return changed
