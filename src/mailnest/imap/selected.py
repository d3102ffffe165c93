"""The selected mailbox of one session: sequence numbers, the flags the client was told, pending changes.

Pure bookkeeping. The session feeds in fresh views of the store and gets back the untagged responses
(EXPUNGE, EXISTS, RECENT, FETCH FLAGS) that bring the client up to date.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable

from ..store.base import View
from .responses import flag_list, untagged
from .sequence import SequenceSet


class SequenceError(ValueError):
    """A message sequence number the mailbox does not have."""


class Selected:
    def __init__(self, name: str, readonly: bool, view: View, recent: Iterable[int] = ()) -> None:
        self.name = name
        self.readonly = readonly
        self.uids = list(view.uids)
        self._view: View | None = view  # the per-uid tables below are built from it when first needed
        self._applied: View | None = view  # the last view taken in (a View is never changed once read)
        self._flags: dict[int, frozenset[str]] = {}
        self._meta: dict[int, tuple[float, int]] = {}
        self.recent = set(recent)
        self.gone: set[int] = set()  # expunged elsewhere; announced at the next point EXPUNGE is allowed
        self.dirty = False

    def _unpack(self) -> None:
        view = self._view
        if view is not None:
            self._view = None
            self._flags = dict(zip(view.uids, view.flags, strict=True))
            self._meta = dict(zip(view.uids, zip(view.created, view.sizes, strict=True), strict=True))

    @property
    def flags(self) -> dict[int, frozenset[str]]:
        """Flags by uid, as the client was last told."""
        self._unpack()
        return self._flags

    @property
    def meta(self) -> dict[int, tuple[float, int]]:
        """(INTERNALDATE, RFC822.SIZE) by uid."""
        self._unpack()
        return self._meta

    def told(self, uid: int, flags: frozenset[str]) -> None:
        """The client was told these flags of `uid` by this session's own STORE or FETCH, not by a view: the next
        view must be compared message by message (the views this session took in no longer say what it knows)."""
        self.flags[uid] = flags
        self._applied = None

    @property
    def exists(self) -> int:
        return len(self.uids)

    @property
    def max_uid(self) -> int:
        return self.uids[-1] if self.uids else 0

    def seq(self, uid: int) -> int:
        index = bisect_left(self.uids, uid)
        return index + 1 if index < len(self.uids) and self.uids[index] == uid else 0

    def first_unseen(self) -> int:
        if self._view is not None:
            return self._view.first_unseen + 1
        for index, uid in enumerate(self.uids):
            if "\\Seen" not in self._flags[uid]:
                return index + 1
        return 0

    def batches(self, uids: list[int], count: int, size: int) -> list[list[int]]:
        """`uids` cut into runs of at most `count` messages and about `size` stored bytes, so that reading whole
        messages never holds many large ones in memory at once."""
        out: list[list[int]] = []
        current: list[int] = []
        total = 0
        meta = self.meta
        for uid in uids:
            length = meta[uid][1] if uid in meta else 0
            if current and (len(current) >= count or total + length > size):
                out.append(current)
                current, total = [], 0
            current.append(uid)
            total += length
        if current:
            out.append(current)
        return out

    def flags_of(self, uid: int) -> str:
        return flag_list(self.flags.get(uid, ()), uid in self.recent)

    def resolve(self, numbers: SequenceSet, uid_mode: bool) -> list[tuple[int, int]]:
        """(sequence number, uid) pairs named by a set, in sequence order, each once."""
        found: set[int] = set()  # indexes into self.uids
        if uid_mode:
            for low, high in numbers.resolve(self.max_uid):
                start = bisect_left(self.uids, low)
                stop = bisect_right(self.uids, high)
                found.update(range(start, stop))
        else:
            for low, high in numbers.resolve(self.exists):
                if high > self.exists or low < 1:
                    raise SequenceError("Invalid messageset: no such message")
                found.update(range(low - 1, high))
        return [(index + 1, self.uids[index]) for index in sorted(found)]

    def update(self, view: View, *, allow_expunge: bool, recent: Iterable[int] = ()) -> list[bytes]:
        """Take a fresh view of the mailbox; return the untagged responses that tell the client."""
        if view is self._applied and not (allow_expunge and self.gone):
            return []  # the very view this session was last brought up to date with (views are shared)
        previous, self._applied = self._applied, view
        lines: list[bytes] = []
        if previous is not None and not self.gone and self._only_added(previous, view):
            return self._take_new(view, set(recent))
        fresh = dict(zip(view.uids, view.flags, strict=True))
        self.gone.update(uid for uid in self.uids if uid not in fresh)
        if allow_expunge and self.gone:
            for uid in sorted(self.gone, reverse=True):
                seq = self.seq(uid)
                if seq:
                    self._drop(seq, uid)
                    lines.append(untagged(f"{seq} EXPUNGE"))
            self.gone.clear()
        for uid in self.uids:
            flags = fresh.get(uid)
            if flags is not None and flags != self.flags[uid]:
                self.flags[uid] = flags
                lines.append(untagged(f"{self.seq(uid)} FETCH (FLAGS {self.flags_of(uid)})"))
        return lines + self._take_new(view, {uid for uid in recent if uid in fresh})

    def _only_added(self, previous: View, view: View) -> bool:
        """True when `view` is `previous` (which this session had taken in) plus messages at the end: every
        comparison here runs in C, where the general path below walks every message in Python."""
        n = len(previous.uids)
        return (self.uids == previous.uids and view.uids[:n] == previous.uids
                and view.flags[:n] == previous.flags)

    def _take_new(self, view: View, recent: set[int]) -> list[bytes]:
        """The view's messages above the highest this session knows: EXISTS and RECENT when there are any."""
        first_new = bisect_right(view.uids, self.max_uid)
        if first_new >= len(view.uids):
            return []
        for index in range(first_new, len(view.uids)):
            uid = view.uids[index]
            self.uids.append(uid)
            self.flags[uid] = view.flags[index]
            self.meta[uid] = (view.created[index], view.sizes[index])
        self.recent.update(recent)
        return [untagged(f"{self.exists} EXISTS"), untagged(f"{len(self.recent)} RECENT")]

    def forget(self, uids: Iterable[int]) -> list[bytes]:
        """Messages this session expunged itself: EXPUNGE responses, highest sequence number first."""
        lines = []
        for uid in sorted(set(uids), reverse=True):
            seq = self.seq(uid)
            if seq:
                self._drop(seq, uid)
                self.gone.discard(uid)
                lines.append(untagged(f"{seq} EXPUNGE"))
        return lines

    def _drop(self, seq: int, uid: int) -> None:
        del self.uids[seq - 1]
        self.flags.pop(uid, None)
        self.meta.pop(uid, None)
        self.recent.discard(uid)
