"""Tag and search SQL for SQLiteStore: tag rules at ingest, tag listing/renaming/deleting, and searches that the
plain Store protocol cannot express (several queries ORed, a time zone for before:/after:), for the HTTP API.

Mixed into SQLiteStore; uses its `_read`/`_write`/`_delete_rows` helpers and publishes to its `hub`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .. import events, search
from ..models import Envelope, Summary
from ..tags import TagRule, unique

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..events import Hub

_CHUNK = 500
_HAS_TAG = "EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ? COLLATE NOCASE)"


class TagStoreMixin:
    hub: Hub
    _tag_rules: tuple[tuple[TagRule, search.Filter], ...] = ()

    if TYPE_CHECKING:
        async def _read(self, fn: Callable[..., Any], *args: Any) -> Any: ...
        async def _write(self, fn: Callable[..., Any], *args: Any) -> Any: ...
        def _delete_rows(self, conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> dict[str, list[Any]] | None: ...
        def _all_tags(self, conn: sqlite3.Connection) -> tuple[str, ...]: ...

    # -- rules, at ingest ------------------------------------------------------------------------------------

    def configure_tags(self, rules: Sequence[TagRule]) -> None:
        """Set the tag rules (`--tag`); each query is compiled once, in the server's time zone, shaped to test the
        one message just inserted (a set of every match would cost tens of milliseconds per message)."""
        self._tag_rules = tuple((rule, search.compile(rule.query, one_row=True)) for rule in rules)

    def _tag_after_insert(self, conn: sqlite3.Connection, uid: int, summary: Summary) -> Summary:
        """In the writer thread, inside the transaction that inserted message `uid` (and its search row): add
        the tags of every rule the message matches; returns the summary with its final tags."""
        if not self._tag_rules:
            return summary
        matched = [rule.tag for rule, compiled in self._tag_rules if conn.execute(
            f"SELECT 1 FROM messages m WHERE m.uid = ? AND ({compiled.where})", (uid, *compiled.params)).fetchone()]
        tags = unique((*summary.tags, *matched))
        if tags == summary.tags:
            return summary
        conn.execute("UPDATE messages SET tags = ? WHERE uid = ?", (json.dumps(list(tags), ensure_ascii=False), uid))
        return replace(summary, tags=tags)

    # -- tags ------------------------------------------------------------------------------------------------

    async def tag_counts(self) -> dict[str, int]:
        """Every tag in use on delivered mail, with the number of messages carrying it, sorted by name."""
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT j.value, count(*) FROM messages m, json_each(m.tags) j WHERE m.folder = '' AND "
                "m.tags != '[]' GROUP BY j.value ORDER BY lower(j.value), j.value").fetchall()
            return {name: count for name, count in rows}

        return dict(await self._read(run))

    async def _retag(self, name: str, change: Callable[[tuple[str, ...]], tuple[str, ...]]) -> list[str]:
        def run(conn: sqlite3.Connection) -> list[tuple[int, str, tuple[str, ...]]]:
            rows = conn.execute(f"SELECT m.uid, m.id, m.tags FROM messages m WHERE m.tags != '[]' AND {_HAS_TAG}",
                                (name,)).fetchall()
            changed = []
            for uid, id_, text in rows:
                old = tuple(json.loads(text))
                new = change(old)
                if new != old:
                    conn.execute("UPDATE messages SET tags = ? WHERE uid = ?",
                                 (json.dumps(list(new), ensure_ascii=False), uid))
                    changed.append((uid, id_, new))
            return changed

        changed: list[tuple[int, str, tuple[str, ...]]] = await self._write(run)
        groups: dict[tuple[str, ...], list[tuple[int, str]]] = {}
        for uid, id_, new in changed:
            groups.setdefault(new, []).append((uid, id_))
        for new, members in groups.items():
            self.hub.publish(events.TagsChanged(tuple(i for _, i in members), new, tuple(u for u, _ in members)))
        return [id_ for _, id_, _ in changed]

    async def rename_tag(self, old: str, new: str) -> list[str]:
        """Rename a tag on every message (case-insensitive match); merges into `new` where both are present."""
        lowered = old.lower()
        return await self._retag(old, lambda tags: unique(new if t.lower() == lowered else t for t in tags))

    async def delete_tag(self, name: str) -> list[str]:
        """Remove a tag from every message; the messages stay."""
        lowered = name.lower()
        return await self._retag(name, lambda tags: tuple(t for t in tags if t.lower() != lowered))

    # -- beyond the Store protocol -------------------------------------------------------------------------

    async def raw_with_envelopes(self, ids: Sequence[str]) -> dict[str, tuple[bytes, Envelope]]:
        """Raw bytes and SMTP envelope of many messages in one read (MailHog's shapes need both)."""
        from .sqlite import envelope_from_json

        wanted = list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> dict[str, tuple[bytes, Envelope]]:
            found: dict[str, tuple[bytes, Envelope]] = {}
            for chunk in range(0, len(wanted), _CHUNK):
                part = wanted[chunk:chunk + _CHUNK]
                for id_, raw, envelope_json in conn.execute(
                        f"SELECT m.id, b.raw, m.envelope_json FROM messages m JOIN bodies b ON b.uid = m.uid "
                        f"WHERE m.id IN ({','.join('?' * len(part))})", part):
                    found[id_] = (bytes(raw), envelope_from_json(envelope_json))
            return found

        return dict(await self._read(run))
