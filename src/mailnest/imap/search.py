"""SEARCH for a session, with the matching rules of Dovecot (our reference server).

Text is compared after RFC 2047 decoding, Unicode decomposition and case folding, as a substring. Address
keys (FROM, TO, CC, BCC) match the normalized `Name <local@domain>` form of each address; SUBJECT matches
with white space runs collapsed; HEADER matches the unfolded value. BODY searches the decoded text of text/*
and message/* parts; TEXT adds every header of every part. Dates: BEFORE/ON/SINCE use the INTERNALDATE's UTC
day; SENT* use the Date header's own wall-clock day (a missing or unparseable Date counts as 1970-01-01).

Evaluation is three-valued so that flags, sizes, dates and numbers decide first; headers, then whole messages,
are read only for the messages still undecided. What a key needs from a message (its "haystack") is computed
once per message and kept in the listener's MessageCache, so repeated searches read nothing from the store.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import quopri
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from ..mime import MimePart, PartKind, structure
from ..mime.header import decode_bytes, decode_words, text
from . import headers
from .addresses import address_text, parse_addresses
from .cache import MessageCache
from .fetch import BATCH_BYTES
from .parser import Command
from .responses import untagged
from .search_keys import SearchKey
from .sequence import SequenceSet

if TYPE_CHECKING:
    from .session import Session

_BATCH = 200
# Cache kinds for SEARCH start with "?" so they never meet FETCH's (ENVELOPE, BODY, BODYSTRUCTURE).
_BODY = "?BODY"
_TEXT_HEADERS = "?TEXT-HEADERS"
_EPOCH = date(1970, 1, 1)


def normalize(value: str) -> str:
    if value.isascii():
        return value.lower()
    return unicodedata.normalize("NFKD", value).casefold()


def _header_text(value: bytes) -> str:
    """A header value as Dovecot searches it: one line (folds become their white space), words decoded."""
    one_line = value.replace(b"\r\n\t", b" ").replace(b"\n\t", b" ").replace(b"\r", b"").replace(b"\n", b"")
    return normalize(decode_words(text(one_line)))


def _collapse(value: bytes) -> bytes:
    return b" ".join(value.replace(b"\r", b" ").replace(b"\n", b" ").replace(b"\t", b" ").split())


def _decode_body(raw: bytes, part: MimePart) -> str:
    data = raw[part.body_start:part.body_end]
    encoding = (part.encoding or "").lower()
    try:
        if encoding == "base64":
            data = base64.b64decode(b"".join(data.split()) + b"==", validate=False)
        elif encoding == "quoted-printable":
            data = quopri.decodestring(data)
    except (binascii.Error, ValueError):
        pass
    return decode_bytes(data, part.charset or "us-ascii")


def _sent_day(value: bytes | None) -> int:
    """The Date header's own calendar day, as an ordinal."""
    if value is None:
        return _EPOCH.toordinal()
    parsed = email.utils.parsedate_tz(text(headers.unfold(value)))
    if parsed is None:
        return _EPOCH.toordinal()
    try:
        return date(*parsed[:3]).toordinal()
    except ValueError:
        return _EPOCH.toordinal()


def _header_haystack(op: str, name: str, header: bytes) -> tuple[str, ...] | int:
    """What one kind of header key searches in: one normalized string per field occurrence (SENT: a day)."""
    wanted = name.encode("utf-8", "replace")
    found = [f.value for f in headers.fields(header, 0, len(header)) if f.name.lower() == wanted]
    if op == "SENT":
        return _sent_day(found[-1] if found else None)
    if op == "ADDRESS":
        return tuple(normalize(decode_words(text(address_text(parse_addresses(v))))) for v in found)
    if op == "SUBJECT":
        return tuple(normalize(decode_words(text(_collapse(v)))) for v in found)
    return tuple(_header_text(v) for v in found)


def _text_haystacks(raw: bytes) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(decoded text of every text/* and message/* part, every header line of every part), normalized."""
    bodies = []
    header_lines = []
    for part in structure(raw).walk():
        for f in headers.fields(raw, part.header_start, part.header_end):
            header_lines.append(normalize(decode_words(text(f.name))) + ": " + _header_text(f.value))
        if part.kind is PartKind.MULTIPART or part.kind is PartKind.MESSAGE:
            continue
        if part.content_type.startswith(("text/", "message/")):
            bodies.append(normalize(_decode_body(raw, part)))
    return tuple(bodies), tuple(header_lines)


def _cost(key: SearchKey) -> int:
    """0: answered from the session's state; 1: needs headers; 2: needs whole messages."""
    if key.op in ("AND", "OR", "NOT"):
        return max(_cost(sub) for sub in key.args)  # type: ignore[arg-type]
    if key.op in ("HEADER", "ADDRESS", "SUBJECT") or (key.op == "DATE" and key.args[0] == "sent"):
        return 1
    return 2 if key.op in ("BODY", "TEXT") else 0


def _in_ranges(ranges: list[tuple[int, int]]) -> Callable[[int], bool]:
    if len(ranges) == 1:
        low, high = ranges[0]
        return lambda n: low <= n <= high
    return lambda n: any(low <= n <= high for low, high in ranges)


class Searcher:
    """Evaluates a key tree over candidate sets: each node keeps the candidates it matches, AND narrows them
    cheapest key first, so headers and bodies are only looked at for messages that can still match."""

    def __init__(self, session: Session) -> None:
        self.session = session

    async def run(self, cmd: Command) -> tuple[str, str]:
        selected = self.session.require_selected()
        key = cmd.arg("key", SearchKey)
        self.selected = selected
        self.found: dict[str, dict[int, Any]] = {}
        matched = await self._eval(key, list(selected.uids))
        numbers = sorted(matched) if cmd.uid else sorted(selected.seq(uid) for uid in matched)
        await self.session.send(untagged("SEARCH" + "".join(f" {n}" for n in numbers)))
        return "OK", "Search completed"

    async def _eval(self, key: SearchKey, candidates: list[int]) -> list[int]:
        op = key.op
        selected = self.selected
        if not candidates:
            return candidates
        if op == "AND":
            for sub in sorted(key.args, key=_cost):  # type: ignore[arg-type]
                candidates = await self._eval(sub, candidates)  # type: ignore[arg-type]
            return candidates
        if op == "OR":
            first = await self._eval(key.args[0], candidates)  # type: ignore[arg-type]
            taken = set(first)
            rest = await self._eval(key.args[1], [u for u in candidates if u not in taken])  # type: ignore[arg-type]
            taken.update(rest)
            return [u for u in candidates if u in taken]
        if op == "NOT":
            excluded = set(await self._eval(key.args[0], candidates))  # type: ignore[arg-type]
            return [u for u in candidates if u not in excluded]
        if op == "ALL":
            return candidates
        flags = selected.flags
        if op == "NEW":
            return [u for u in candidates if u in selected.recent and "\\Seen" not in flags[u]]
        if op == "FLAG":
            flag, wanted = key.args
            if flag == "\\Recent":
                return [u for u in candidates if (u in selected.recent) == wanted]
            return [u for u in candidates if (flag in flags[u]) == wanted]
        if op == "KEYWORD":
            keyword = str(key.args[0]).lower()
            wanted = key.args[1]
            return [u for u in candidates
                    if any(f.lower() == keyword for f in flags[u] if not f.startswith("\\")) == wanted]
        if op == "UID":
            numbers: SequenceSet = key.args[0]  # type: ignore[assignment]
            inside = _in_ranges(numbers.resolve(selected.max_uid))
            return [u for u in candidates if inside(u)]
        if op == "SEQ":
            numbers = key.args[0]  # type: ignore[assignment]
            inside = _in_ranges(numbers.resolve(selected.exists))
            return [u for u in candidates if inside(selected.seq(u))]
        meta = selected.meta
        if op == "SIZE":
            comparison, size = key.args
            if comparison == ">":
                return [u for u in candidates if meta[u][1] > size]  # type: ignore[operator]
            return [u for u in candidates if meta[u][1] < size]  # type: ignore[operator]
        if op == "DATE" and key.args[0] == "internal":
            day = _day_test(str(key.args[1]), key.args[2])  # type: ignore[arg-type]
            return [u for u in candidates if day(datetime.fromtimestamp(meta[u][0], UTC).date().toordinal())]
        if op == "DATE":
            sent = await self._haystacks("?SENT:date", candidates)
            day = _day_test(str(key.args[1]), key.args[2])  # type: ignore[arg-type]
            return [u for u in candidates if u in sent and day(sent[u])]
        if op in ("HEADER", "ADDRESS", "SUBJECT"):
            found = await self._haystacks(f"?{op}:{str(key.args[0]).lower()}", candidates)
            if not key.args[1]:
                return [u for u in candidates if found.get(u)]
            needle = normalize(str(key.args[1]))
            return [u for u in candidates if any(needle in h for h in found.get(u, ()))]
        needle = normalize(str(key.args[0]))
        bodies = await self._haystacks(_BODY, candidates)
        texts = await self._haystacks(_TEXT_HEADERS, candidates) if op == "TEXT" else {}
        return [u for u in candidates if u in bodies and (not needle or any(needle in b for b in bodies[u])
                                                          or any(needle in h for h in texts.get(u, ())))]

    async def _haystacks(self, kind: str, candidates: list[int]) -> dict[int, Any]:
        """A haystack kind for every candidate still stored: from the cache, else computed and cached.

        What another session is computing right now is waited for, not computed again: under load, fifty
        sessions searching the same new mail read and parse each message once."""
        cache: MessageCache = self.session.cache
        found = self.found.setdefault(kind, {})
        missing: list[int] = []
        waiting: dict[int, asyncio.Future[None]] = {}
        found.update(cache.get_many([uid for uid in candidates if uid not in found], kind))
        for uid in candidates:
            if uid in found:
                continue
            pending = cache.inflight.get((uid, kind))
            if pending is None:
                missing.append(uid)
            else:
                waiting[uid] = pending
        await self._compute(kind, missing, share=True)
        if waiting:
            await asyncio.wait([asyncio.shield(f) for f in set(waiting.values())])
            late = []
            for uid in waiting:
                value = cache.get(uid, kind)
                if value is None:  # the other session gave up, or the cache let it go already
                    late.append(uid)
                else:
                    found[uid] = value
            await self._compute(kind, late, share=False)
        return found

    async def _compute(self, kind: str, uids: list[int], *, share: bool) -> None:
        """Read and reduce `uids` for `kind` in batches; with `share`, other sessions may wait for each batch."""
        cache: MessageCache = self.session.cache
        found = self.found.setdefault(kind, {})
        store: Any = self.session.store
        loop = asyncio.get_running_loop()
        whole = kind in (_BODY, _TEXT_HEADERS)
        kinds = (_BODY, _TEXT_HEADERS) if whole else (kind,)
        for batch in self.selected.batches(uids, _BATCH, BATCH_BYTES if whole else 1 << 62):
            done: asyncio.Future[None] = loop.create_future()
            keys = [(uid, k) for uid in batch for k in kinds] if share else []
            for key in keys:
                cache.inflight[key] = done
            try:
                if whole:
                    blobs = await store.imap_raw(batch)
                    await loop.run_in_executor(None, self._fill_text, blobs, cache)
                else:
                    blobs = await store.imap_headers(batch)
                    await loop.run_in_executor(None, self._fill_header, kind, blobs, found, cache)
            finally:
                for key in keys:
                    if cache.inflight.get(key) is done:
                        del cache.inflight[key]
                done.set_result(None)

    def _fill_header(self, kind: str, blobs: dict[int, bytes], found: dict[int, Any], cache: MessageCache) -> None:
        op, _, name = kind[1:].partition(":")
        for uid, header in blobs.items():
            found[uid] = value = _header_haystack(op, name, header)
            cache.put(uid, kind, value)

    def _fill_text(self, blobs: dict[int, bytes], cache: MessageCache) -> None:
        bodies = self.found.setdefault(_BODY, {})
        texts = self.found.setdefault(_TEXT_HEADERS, {})
        for uid, raw in blobs.items():
            bodies[uid], texts[uid] = _text_haystacks(raw)
            cache.put(uid, _BODY, bodies[uid])
            cache.put(uid, _TEXT_HEADERS, texts[uid])


def _day_test(comparison: str, target: date) -> Callable[[int], bool]:
    wanted = target.toordinal()
    if comparison == "<":
        return lambda day: day < wanted
    if comparison == "=":
        return lambda day: day == wanted
    return lambda day: day >= wanted
