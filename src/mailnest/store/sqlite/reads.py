"""Reads of the Store protocol: lists and searches (summary columns only), one message, raw bytes, counts,
mailboxes and folders; each on a reader thread's connection, off the loop."""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from datetime import tzinfo

from ...models import Attachment, Message, Page, Stats, Summary
from .. import codec
from ..base import FolderInfo, Mailbox, Mailboxes, MailboxInfo, Query
from ..shared import among_where, newest_first
from .connections import Connections
from .prepare import _parse_or_empty
from .rows import _MESSAGE_EXTRA, _SUMMARY_COLUMNS, _SUMMARY_WIDTH, _utc, envelope_from_json, summary_from_row
from .tags import TagCache
from .views import view


class ReadMethods:
    """Composed into SQLiteStore, which provides these collaborators."""

    connections: Connections
    tag_cache: TagCache
    newest_by_date = False  # use_message_dates: lists are newest first by `created` (the Date), not by arrival

    async def list(self, *, query: Query = "", mailbox: Mailbox = None, start: int = 0, limit: int = 50,
                   tz: tzinfo | None = None) -> Page:
        base_where, base_params = view(mailbox, "")
        where, params = view(mailbox, query, tz)

        def run(conn: sqlite3.Connection) -> Page:
            total, unread = conn.execute(
                f"SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m WHERE {base_where}", base_params
            ).fetchone()
            matching, matching_unread = (total, unread) if where == base_where else conn.execute(
                f"SELECT count(*), coalesce(sum(m.read = 0), 0) FROM messages m WHERE {where}", params).fetchone()
            rows = conn.execute(
                f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE {where} ORDER BY {newest_first(self.newest_by_date)} "
                "LIMIT ? OFFSET ?",
                [*params, limit, start],
            ).fetchall()
            return Page(total=total, unread=unread, messages_count=matching, start=start,
                        messages=tuple(summary_from_row(r) for r in rows), tags=self.tag_cache.all(conn),
                        messages_unread=matching_unread)

        return await self.connections.read(run)

    async def get(self, id: str) -> Message | None:
        def run(conn: sqlite3.Connection) -> Message | None:
            found = conn.execute(f"SELECT {_SUMMARY_COLUMNS}, {', '.join(c for c, _ in _MESSAGE_EXTRA)} "
                                 "FROM messages m JOIN bodies b ON b.uid = m.uid WHERE m.id = ?", (id,)).fetchone()
            if found is None:
                return None
            summary = summary_from_row(found)
            row = dict(zip((name for _, name in _MESSAGE_EXTRA), found[_SUMMARY_WIDTH:], strict=True))
            sent, flags, text, html = row["sent"], row["flags"], row["text"], row["html"]
            extra = json.loads(row["extra_json"])
            if extra.get("bodies_in_raw"):
                stored, raw_codec = conn.execute("SELECT raw, raw_codec FROM bodies WHERE uid = ?",
                                                 (summary.uid,)).fetchone()
                parsed = _parse_or_empty(codec.decode(stored, raw_codec))
                text, html = parsed.text, parsed.html
            return Message(
                summary=summary, date=_utc(sent) if sent is not None else None, text=text, html=html,
                attachments=tuple(Attachment(**a) for a in extra.get("attachments", [])),
                inline=tuple(Attachment(**a) for a in extra.get("inline", [])),
                envelope=envelope_from_json(row["envelope_json"]), return_path=extra.get("return_path", ""),
                list_unsubscribe=extra.get("list_unsubscribe", ""),
                flags=(("\\Seen",) if summary.read else ()) + tuple(flags.split()),
            )

        return await self.connections.read(run)

    async def raw(self, id: str) -> bytes | None:
        def run(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT b.raw, b.raw_codec FROM messages m JOIN bodies b ON b.uid = m.uid "
                               "WHERE m.id = ?", (id,)).fetchone()
            return codec.decode(*row) if row else None

        return await self.connections.read(run)

    async def latest(self, *, query: Query = "", mailbox: Mailbox = None,
                     tz: tzinfo | None = None) -> Summary | None:
        page = await self.list(query=query, mailbox=mailbox, limit=1, tz=tz)
        return page.messages[0] if page.messages else None

    async def count(self, *, query: Query = "", mailbox: Mailbox = None, tz: tzinfo | None = None) -> int:
        where, params = view(mailbox, query, tz)
        return await self.connections.read(
            lambda conn: conn.execute(f"SELECT count(*) FROM messages m WHERE {where}", params).fetchone()[0])

    async def stats(self, *, mailbox: Mailbox = None) -> Stats:
        where, params = view(mailbox, "")

        def run(conn: sqlite3.Connection) -> Stats:
            if mailbox:
                total, unread, size = conn.execute(
                    f"SELECT count(*), coalesce(sum(m.read = 0), 0), coalesce(sum(m.size), 0) FROM messages m "
                    f"WHERE {where}", params).fetchone()
            else:  # kept by triggers (schema.py)
                total, unread, size = conn.execute("SELECT total, unread, size FROM totals").fetchone()
            return Stats(total=total, unread=unread, size=size, tags=self.tag_cache.all(conn))

        return await self.connections.read(run)

    async def mailboxes(self) -> builtins.list[MailboxInfo]:
        def run(conn: sqlite3.Connection) -> list[MailboxInfo]:
            rows = conn.execute(
                "SELECT r.mailbox, count(*), coalesce(sum(m.read = 0), 0), max(m.created) FROM recipients r "
                "JOIN messages m ON m.uid = r.uid WHERE m.folder = '' GROUP BY r.mailbox ORDER BY r.mailbox"
            ).fetchall()
            return [MailboxInfo(a, t, u, _utc(latest) if latest is not None else None) for a, t, u, latest in rows]

        return await self.connections.read(run)

    async def folders(self) -> builtins.list[FolderInfo]:
        """Every IMAP folder but INBOX that exists or holds messages, with its owner's login ('*': catch-all)."""
        def run(conn: sqlite3.Connection) -> list[FolderInfo]:
            rows = conn.execute(
                "SELECT name, owner, sum(total), sum(unread) FROM ("
                " SELECT folder AS name, owner, count(*) AS total, coalesce(sum(read = 0), 0) AS unread"
                " FROM messages WHERE folder != '' GROUP BY folder, owner"
                " UNION ALL SELECT name, owner, 0, 0 FROM imap_folders"
                ") GROUP BY name, owner ORDER BY name, owner").fetchall()
            return [FolderInfo(*r) for r in rows]

        return await self.connections.read(run)

    async def summaries_by_uid(self, uids: Sequence[int]) -> builtins.list[Summary]:
        wanted = list(uids)

        def run(conn: sqlite3.Connection) -> list[Summary]:
            found: dict[int, Summary] = {}
            for chunk in range(0, len(wanted), 500):
                part = wanted[chunk:chunk + 500]
                rows = conn.execute(f"SELECT {_SUMMARY_COLUMNS} FROM messages m WHERE m.uid IN "
                                    f"({','.join('?' * len(part))})", part).fetchall()
                found.update((r[0], summary_from_row(r)) for r in rows)
            return [found[u] for u in wanted if u in found]

        return await self.connections.read(run)

    async def uids(self, *, mailbox: Mailbox = None, query: Query = "") -> builtins.list[int]:
        where, params = view(mailbox, query)
        return await self.connections.read(lambda conn: [r[0] for r in conn.execute(
            f"SELECT m.uid FROM messages m WHERE {where} ORDER BY m.uid", params)])

    async def id_for_uid(self, uid: int) -> str | None:
        def run(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT id FROM messages WHERE uid = ?", (uid,)).fetchone()
            return row[0] if row else None

        return await self.connections.read(run)

    async def among(self, ids: Sequence[str], mailbox: Mailboxes) -> builtins.list[str]:
        wanted = builtins.list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> set[str]:
            held: set[str] = set()
            for at in range(0, len(wanted), 500):  # within SQLite's limit of bound values
                where, params = among_where(wanted[at:at + 500], mailbox, "?", "lower")
                held.update(r[0] for r in conn.execute(f"SELECT m.id FROM messages m WHERE {where}", params))
            return held

        held = await self.connections.read(run) if wanted else set()
        return [i for i in wanted if i in held]
