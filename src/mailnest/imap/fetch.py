"""FETCH and STORE for a session: which data each item needs, loading it in batches, writing the responses.

Item order follows Dovecot: UID, FLAGS, INTERNALDATE and RFC822.SIZE first in the order asked (UID first for
UID FETCH), then a FLAGS the fetch itself changed (\\Seen), then everything else in the order asked.
Body sections are byte ranges of the stored message, served exactly as received.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from ..mime import MimePart, PartKind, find_part, structure
from . import headers
from .bodystructure import body_structure
from .cache import MessageCache
from .envelope import envelope
from .fetch_items import FetchItem, Section
from .parser import Command
from .quoting import literal
from .responses import internal_date, untagged

if TYPE_CHECKING:
    from .session import Session

_BUFFERED = frozenset({"UID", "FLAGS", "INTERNALDATE", "RFC822.SIZE"})
_HEADER_ONLY = frozenset({"ENVELOPE", "RFC822.HEADER"})
_CACHED = frozenset({"ENVELOPE", "BODY", "BODYSTRUCTURE"})  # answers kept in the MessageCache
_SMALL_BATCH = 50  # messages per round trip to the store when whole messages are read
_LARGE_BATCH = 1000  # ... when only flags, sizes, dates or headers are needed
BATCH_BYTES = 16 * 1024 * 1024  # stored bytes read per round trip, at most (one larger message is read alone)
_SEEN = "\\Seen"


def _from_header(item: FetchItem) -> bool:
    """Answered from the header block alone: what mail clients list a folder with (ENVELOPE,
    BODY.PEEK[HEADER.FIELDS (...)]) never reads whole messages."""
    return item.name in _HEADER_ONLY or (item.section is not None and not item.section.part
                                         and item.section.text.startswith("HEADER"))


def _section_bytes(raw: bytes, root: MimePart, section: Section) -> bytes:
    target: MimePart | None = root
    if section.part:
        target = find_part(root, ".".join(str(n) for n in section.part))
        if target is None:
            return b""
        if section.text == "MIME":
            return raw[target.header_start:target.header_end]
        if not section.text:
            return raw[target.body_start:target.body_end]
        if target.kind is not PartKind.MESSAGE or not target.children:
            return b""  # HEADER and TEXT only exist for an encapsulated message
        target = target.children[0]
    assert target is not None
    if section.text == "TEXT":
        return raw[target.body_start:target.body_end]
    if not section.text:
        return raw
    if section.text == "HEADER":
        return raw[target.header_start:target.header_end]
    return header_fields(raw, target.header_start, target.header_end, section.fields,
                         exclude=section.text.endswith(".NOT"))


def header_fields(raw: bytes, start: int, end: int, names: tuple[str, ...], *, exclude: bool) -> bytes:
    """The header fields named (or all but those), as stored, then the blank line."""
    wanted = {n.lower().encode("ascii") for n in names}
    out = bytearray()
    last = start
    for field in headers.fields(raw, start, end):
        last = field.end
        if (field.name.lower() in wanted) != exclude:
            out += raw[field.start:field.end]
    blank = raw[last:end]
    out += blank if blank in (b"\r\n", b"\n") else b"\r\n"
    return bytes(out)


class Fetcher:
    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def store(self) -> Any:
        return self.session.store

    async def fetch(self, cmd: Command) -> tuple[str, str]:
        session = self.session
        selected = session.require_selected()
        pairs = selected.resolve(cmd.sequence_set, cmd.uid)
        requested: list[FetchItem] = list(cmd.arg("items", tuple))
        if cmd.uid:
            requested.insert(0, FetchItem("UID"))
        items = list(dict.fromkeys(requested))
        buffered = [i for i in items if i.name in _BUFFERED]
        rest = [i for i in items if i.name not in _BUFFERED]
        names = {i.name for i in items}
        mark_seen = not selected.readonly and any(i.sets_seen for i in items)
        wants_raw = any(i.name not in _BUFFERED and not _from_header(i) for i in items)
        seqs = dict((uid, seq) for seq, uid in pairs)
        if wants_raw:
            chunks = selected.batches([uid for _, uid in pairs], _SMALL_BATCH, BATCH_BYTES)
        else:
            chunks = [[uid for _, uid in pairs[i:i + _LARGE_BATCH]] for i in range(0, len(pairs), _LARGE_BATCH)]
        for uids in chunks:
            chunk = [(seqs[uid], uid) for uid in uids]
            # Looked up once: what is taken from the cache here is what is rendered, even if another session's
            # FETCH evicts it meanwhile; a message whose cached answers cover every item is not read at all.
            cached = self._cached(uids, names)
            if await self._wait_for_others(uids, names, cached):
                cached = self._cached(uids, names)
            need_raw, need_headers = self._reads(uids, rest, cached)
            done, claimed = self._claim(need_raw + need_headers, names, cached)
            try:
                out = await self._answer(chunk, uids, buffered, rest, names, cached, need_raw, need_headers,
                                         mark_seen)
            finally:
                self._unclaim(done, claimed)
            if out:
                await session.send(out)
        return "OK", "Fetch completed"

    async def _wait_for_others(self, uids: list[int], names: set[str], cached: dict[tuple[int, str], bytes]
                               ) -> bool:
        """Wait for the answers of these messages that another session is computing right now (fifty sessions
        fetching the newest mail compute each ENVELOPE once); True when there were any."""
        inflight = self.session.cache.inflight
        waits = {inflight[key] for key in ((uid, name) for uid in uids for name in _CACHED & names)
                 if key not in cached and key in inflight}
        if waits:
            await asyncio.wait([asyncio.shield(f) for f in waits])
        return bool(waits)

    def _claim(self, uids: list[int], names: set[str], cached: dict[tuple[int, str], bytes]
               ) -> tuple[asyncio.Future[None] | None, list[tuple[int, str]]]:
        """Say that this session computes the cacheable answers of `uids` that nobody else is computing."""
        inflight = self.session.cache.inflight
        keys = [key for key in ((uid, name) for uid in uids for name in _CACHED & names)
                if key not in cached and key not in inflight]
        if not keys:
            return None, []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in keys:
            inflight[key] = done
        return done, keys

    def _unclaim(self, done: asyncio.Future[None] | None, keys: list[tuple[int, str]]) -> None:
        inflight = self.session.cache.inflight
        for key in keys:
            if inflight.get(key) is done:
                del inflight[key]
        if done is not None:
            done.set_result(None)

    async def _answer(self, chunk: list[tuple[int, int]], uids: list[int], buffered: list[FetchItem],
                      rest: list[FetchItem], names: set[str], cached: dict[tuple[int, str], bytes],
                      need_raw: list[int], need_headers: list[int], mark_seen: bool) -> bytes:
        """The FETCH responses of one chunk: what must be read is read, \\Seen set, and the answers rendered."""
        selected = self.session.require_selected()
        loop = asyncio.get_running_loop()
        blobs: dict[int, bytes] = {}
        if need_raw:
            blobs.update(await self.store.imap_raw(need_raw))
        if need_headers:
            blobs.update(await self.store.imap_headers(need_headers))
        absent = (set(need_raw) | set(need_headers)) - blobs.keys()  # expunged by someone else: skipped,
        # the EXPUNGE is announced later
        seen_now: set[int] = set()
        if mark_seen:
            unseen = [u for u in uids if u not in absent and _SEEN not in selected.flags.get(u, ())]
            if unseen:
                result = await self.store.imap_store_flags(unseen, "+", [_SEEN])
                for uid, flags in result.items():
                    selected.told(uid, flags)
                seen_now = set(result)
        # Rendering parses messages (BODYSTRUCTURE of a large one takes a while): off the event loop. When
        # every answer came from the cache or the view, it is only joining bytes: a thread hop costs more.
        if need_raw or need_headers:
            out = await loop.run_in_executor(None, self._render, chunk, buffered, rest, names, blobs, absent,
                                             seen_now, cached)
        else:
            out = self._render(chunk, buffered, rest, names, blobs, absent, seen_now, cached)
        return out

    def _cached(self, uids: list[int], names: set[str]) -> dict[tuple[int, str], bytes]:
        cache: MessageCache = self.session.cache
        found = {}
        for name in _CACHED & names:
            for uid, value in cache.get_many(uids, name).items():
                found[(uid, name)] = value
        return found

    @staticmethod
    def _reads(uids: list[int], rest: list[FetchItem], cached: dict[tuple[int, str], bytes]
               ) -> tuple[list[int], list[int]]:
        """The messages to read whole, and those whose header block is enough, for the items not cached."""
        need_raw: list[int] = []
        need_headers: list[int] = []
        for uid in uids:
            missing = [i for i in rest if (uid, i.name) not in cached]
            if any(not _from_header(i) for i in missing):
                need_raw.append(uid)
            elif missing:
                need_headers.append(uid)
        return need_raw, need_headers

    def _render(self, chunk: list[tuple[int, int]], buffered: list[FetchItem], rest: list[FetchItem],
                names: set[str], blobs: dict[int, bytes], absent: set[int], seen_now: set[int],
                cached: dict[tuple[int, str], bytes]) -> bytes:
        selected = self.session.selected
        assert selected is not None
        cache: MessageCache = self.session.cache
        out = bytearray()
        for seq, uid in chunk:
            if uid in absent:
                continue
            parts = [self._simple(item, uid) for item in buffered]
            if uid in seen_now and "FLAGS" not in names:
                parts.append(b"FLAGS " + selected.flags_of(uid).encode())
            raw = blobs.get(uid, b"")
            root: list[MimePart] = []
            for item in rest:
                parts.append(self._item(item, uid, raw, root, cache, cached.get((uid, item.name))))
            out += b"* %d FETCH (" % seq + b" ".join(parts) + b")\r\n"
        return bytes(out)

    def _simple(self, item: FetchItem, uid: int) -> bytes:
        selected = self.session.selected
        assert selected is not None
        if item.name == "UID":
            return b"UID %d" % uid
        if item.name == "FLAGS":
            return b"FLAGS " + selected.flags_of(uid).encode()
        created, size = selected.meta[uid]
        if item.name == "INTERNALDATE":
            return b"INTERNALDATE " + internal_date(created).encode()
        return b"RFC822.SIZE %d" % size

    def _item(self, item: FetchItem, uid: int, raw: bytes, root: list[MimePart], cache: MessageCache,
              cached: bytes | None) -> bytes:
        """One non-buffered item. `root` holds the message's MIME tree once some item needed it; `cached` is the
        answer the cache had when the fetch began (ENVELOPE, BODY, BODYSTRUCTURE), None to compute it."""

        def tree() -> MimePart:
            if not root:
                root.append(structure(raw))
            return root[0]

        name = item.name
        if name == "ENVELOPE":
            value = cached
            if value is None:
                value = envelope(raw, 0, headers.header_end(raw))
                cache.put(uid, name, value)
            return b"ENVELOPE " + value
        if name in ("BODY", "BODYSTRUCTURE"):
            value = cached
            if value is None:
                value = body_structure(raw, tree(), extended=name == "BODYSTRUCTURE")
                cache.put(uid, name, value)
            return name.encode() + b" " + value
        if name == "RFC822":
            return b"RFC822 " + literal(raw)
        if name == "RFC822.HEADER":
            return b"RFC822.HEADER " + literal(raw[:headers.header_end(raw)])
        if name == "RFC822.TEXT":
            return b"RFC822.TEXT " + literal(raw[headers.header_end(raw):])
        assert item.section is not None
        section = item.section
        if not section.part and section.text in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT"):
            end = headers.header_end(raw)
            data = raw[:end] if section.text == "HEADER" else header_fields(
                raw, 0, end, section.fields, exclude=section.text.endswith(".NOT"))
        elif not section.part and not section.text:
            data = raw
        else:
            data = _section_bytes(raw, tree(), section)
        label = b"BODY[" + section.spec().encode() + b"]"
        if item.partial is not None:
            origin, length = item.partial
            data = data[origin:origin + length]
            label += b"<%d>" % origin
        return label + b" " + literal(data)

    async def store_flags(self, cmd: Command) -> tuple[str, str]:
        session = self.session
        selected = session.require_selected()
        if selected.readonly:
            return "NO", "Mailbox is read-only"
        pairs = selected.resolve(cmd.sequence_set, cmd.uid)
        flags = [f for f in cmd.arg("flags", tuple) if f != "\\Recent"]
        if not pairs:
            return "OK", "Store completed"
        result = await self.store.imap_store_flags([uid for _, uid in pairs], cmd.args["mode"], flags)
        lines = []
        for seq, uid in pairs:
            if uid not in result:
                continue
            selected.told(uid, result[uid])
            if not cmd.args["silent"]:
                uid_part = f"UID {uid} " if cmd.uid else ""
                lines.append(untagged(f"{seq} FETCH ({uid_part}FLAGS {selected.flags_of(uid)})"))
        if lines:
            await session.send(b"".join(lines))
        return "OK", "Store completed"
