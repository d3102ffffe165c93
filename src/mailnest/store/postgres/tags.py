"""Tags for PostgresStore: the `--tag` rules at ingest and the API's tag listing, renaming and deleting, with
SQLiteStore's semantics (tags_sql.py): tags are a JSON array in `messages.tags`, matched without ASCII case."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, TypeVar

from ... import events, search
from ...models import Summary
from ...tags import TagRule, removing, renaming, unique
from . import query as compiler

if TYPE_CHECKING:
    from ...events import Hub
    from .store import Tx

T = TypeVar("T")


class TagMixin:
    hub: Hub
    _tag_rules: tuple[tuple[TagRule, search.Filter], ...] = ()

    if TYPE_CHECKING:
        async def _read(self, fn: Callable[[Tx], Awaitable[T]]) -> T: ...
        async def _write(self, fn: Callable[[Tx], Awaitable[T]], *, announce: bool = True,
                         pipeline: bool = False) -> T: ...

    def configure_tags(self, rules: Sequence[TagRule]) -> None:
        """Set the tag rules; each query is compiled once, shaped to test the one message just inserted."""
        self._tag_rules = tuple((rule, compiler.compile(rule.query, one_row=True)) for rule in rules)

    async def _tag_after_insert(self, tx: Tx, uid: int, summary: Summary) -> Summary:
        """Inside the ingest transaction: add the tags of every rule message `uid` matches."""
        if not self._tag_rules:
            return summary
        matched = []
        for rule, compiled in self._tag_rules:
            where = "TRUE" if compiled is search.MATCH_ALL else compiled.where
            if await tx.one(f"SELECT 1 FROM messages m WHERE m.uid = %s AND ({where})", (uid, *compiled.params)):
                matched.append(rule.tag)
        tags = unique((*summary.tags, *matched))
        if tags == summary.tags:
            return summary
        await tx.run("UPDATE messages SET tags = %s WHERE uid = %s", (json.dumps(list(tags), ensure_ascii=False), uid))
        return replace(summary, tags=tags)

    async def tag_counts(self) -> dict[str, int]:
        """Every tag in use on delivered mail with its number of messages, sorted by name (ASCII case ignored)."""
        async def run(tx: Tx) -> dict[str, int]:
            rows = await tx.all(
                "SELECT j.value, count(*) FROM messages m, jsonb_array_elements_text(m.tags::jsonb) AS j(value) "
                "WHERE m.folder = '' AND m.tags != '[]' GROUP BY j.value "
                "ORDER BY ascii_lower(j.value) COLLATE \"C\", j.value COLLATE \"C\"")
            return {name: int(count) for name, count in rows}

        return await self._read(run)

    async def _retag(self, name: str, change: Callable[[tuple[str, ...]], tuple[str, ...]]) -> list[str]:
        async def run(tx: Tx) -> list[tuple[int, str, tuple[str, ...]]]:
            rows = await tx.all(f"SELECT m.uid, m.id, m.tags FROM messages m WHERE m.tags != '[]' AND "
                                f"{compiler.HAS_TAG} ORDER BY m.uid FOR UPDATE", (name,))
            changed = []
            for uid, id_, text in rows:
                old = tuple(json.loads(text))
                new = change(old)
                if new != old:
                    await tx.run("UPDATE messages SET tags = %s WHERE uid = %s",
                                 (json.dumps(list(new), ensure_ascii=False), uid))
                    changed.append((int(uid), id_, new))
            groups: dict[tuple[str, ...], list[tuple[int, str]]] = {}
            for uid, id_, new in changed:
                groups.setdefault(new, []).append((uid, id_))
            for new, members in groups.items():
                tx.emit(events.TagsChanged(tuple(i for _, i in members), new, tuple(u for u, _ in members)))
            return changed

        changed = await self._write(run)
        return [id_ for _, id_, _ in changed]

    async def rename_tag(self, old: str, new: str) -> list[str]:
        """Rename a tag on every message (case-insensitive match); merges into `new` where both are present."""
        return await self._retag(old, renaming(old, new))

    async def delete_tag(self, name: str) -> list[str]:
        """Remove a tag from every message; the messages stay."""
        return await self._retag(name, removing(name))


__all__ = ["TagMixin"]
