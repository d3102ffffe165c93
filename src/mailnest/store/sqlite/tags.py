"""Tags: the rules that tag a message at ingest, the cache of every tag in use, and tag listing, renaming and
deleting; plus the one read MailHog needs that the plain protocol calls would make many (raw with envelopes).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import replace

from ... import search
from ...events import AllDeleted, Event, Hub, MessageAdded, MessagesDeleted, MessagesPruned, TagsChanged
from ...models import Envelope, Summary
from ...tags import TagRule, removing, renaming, unique
from .. import codec
from .connections import Connections
from .rows import envelope_from_json
from .writes import Writer

_CHUNK = 500
_HAS_TAG = "EXISTS (SELECT 1 FROM json_each(m.tags) WHERE value = ? COLLATE NOCASE)"


class TagRules:
    """The `--tag` rules, applied in the writer thread to each message just inserted."""

    def __init__(self) -> None:
        self._rules: tuple[tuple[TagRule, search.Filter], ...] = ()

    def configure(self, rules: Sequence[TagRule]) -> None:
        """Each query is compiled once, in the server's time zone, shaped to test the one message just inserted
        (a set of every match would cost tens of milliseconds per message)."""
        self._rules = tuple((rule, search.compile(rule.query, one_row=True)) for rule in rules)

    def apply(self, conn: sqlite3.Connection, uid: int, summary: Summary) -> Summary:
        """Inside the transaction that inserted message `uid` (and its search row): add the tags of every rule
        the message matches; returns the summary with its final tags."""
        if not self._rules:
            return summary
        matched = [rule.tag for rule, compiled in self._rules if conn.execute(
            f"SELECT 1 FROM messages m WHERE m.uid = ? AND ({compiled.where})", (uid, *compiled.params)).fetchone()]
        tags = unique((*summary.tags, *matched))
        if tags == summary.tags:
            return summary
        conn.execute("UPDATE messages SET tags = ? WHERE uid = ?", (json.dumps(list(tags), ensure_ascii=False), uid))
        return replace(summary, tags=tags)


class TagCache:
    """Every tag in use, sorted. Scanning every message's tags costs ~100 ms at 100,000 messages, so the answer
    is kept until an event says tags may have changed (`forget_on_change` listens on the hub)."""

    def __init__(self) -> None:
        self._tags: tuple[str, ...] | None = None  # None until read, reset by tag changes
        self._generation = 0  # bumped by every reset, so a read that raced a change is not cached

    def forget_on_change(self, event: Event) -> None:
        if (isinstance(event, MessageAdded) and event.summary.tags) or isinstance(event, (
                MessagesDeleted, MessagesPruned, AllDeleted, TagsChanged)):
            self._generation += 1
            self._tags = None

    def all(self, conn: sqlite3.Connection) -> tuple[str, ...]:
        tags, generation = self._tags, self._generation
        if tags is None:
            rows = conn.execute("SELECT DISTINCT j.value FROM messages m, json_each(m.tags) j "
                                "WHERE m.tags != '[]' ORDER BY 1").fetchall()
            tags = tuple(r[0] for r in rows)
            if generation == self._generation:
                self._tags = tags
        return tags


class TagMethods:
    """The Store protocol's tag methods. Composed into SQLiteStore, which provides these collaborators."""

    connections: Connections
    writer: Writer
    hub: Hub
    tag_rules: TagRules

    def configure_tags(self, rules: Sequence[TagRule]) -> None:
        """Set the tag rules (`--tag`)."""
        self.tag_rules.configure(rules)

    async def tag_counts(self) -> dict[str, int]:
        """Every tag in use on delivered mail, with the number of messages carrying it, sorted by name."""
        def run(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT j.value, count(*) FROM messages m, json_each(m.tags) j WHERE m.folder = '' AND "
                "m.tags != '[]' GROUP BY j.value ORDER BY lower(j.value), j.value").fetchall()
            return {name: count for name, count in rows}

        return dict(await self.connections.read(run))

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

        changed = await self.writer.write(run)
        groups: dict[tuple[str, ...], list[tuple[int, str]]] = {}
        for uid, id_, new in changed:
            groups.setdefault(new, []).append((uid, id_))
        for new, members in groups.items():
            self.hub.publish(TagsChanged(tuple(i for _, i in members), new, tuple(u for u, _ in members)))
        return [id_ for _, id_, _ in changed]

    async def rename_tag(self, old: str, new: str) -> list[str]:
        """Rename a tag on every message (case-insensitive match); merges into `new` where both are present."""
        return await self._retag(old, renaming(old, new))

    async def delete_tag(self, name: str) -> list[str]:
        """Remove a tag from every message; the messages stay."""
        return await self._retag(name, removing(name))

    async def raw_with_envelopes(self, ids: Sequence[str]) -> dict[str, tuple[bytes, Envelope]]:
        """Raw bytes and SMTP envelope of many messages in one read (MailHog's shapes need both)."""
        wanted = list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> dict[str, tuple[bytes, Envelope]]:
            found: dict[str, tuple[bytes, Envelope]] = {}
            for chunk in range(0, len(wanted), _CHUNK):
                part = wanted[chunk:chunk + _CHUNK]
                for id_, raw, raw_codec, envelope_json in conn.execute(
                        f"SELECT m.id, b.raw, b.raw_codec, m.envelope_json FROM messages m JOIN bodies b ON b.uid = m.uid "
                        f"WHERE m.id IN ({','.join('?' * len(part))})", part):
                    found[id_] = (codec.decode(raw, raw_codec), envelope_from_json(envelope_json))
            return found

        return dict(await self.connections.read(run))
