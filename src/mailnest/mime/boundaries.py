"""Where the boundaries of the open multiparts occur next: the bookkeeping of `tree.py`'s scan. Pure.

Kept apart from the tree builder because it is the part that has to stay linear on hostile input (thousands of
nested or sibling multiparts, boundaries that never occur, boundaries that are prefixes of others).
"""

from __future__ import annotations


class Match:
    __slots__ = ("close", "cut", "level", "line")

    def __init__(self, line: int, cut: int, level: int, close: bool) -> None:
        self.line = line  # where the boundary line starts
        self.cut = cut  # where the parts it ends stop: before the line break it owns, if any
        self.level = level  # index of the matched boundary in the open-boundary stack
        self.close = close


class OpenBoundaries:
    """The boundaries of the multiparts open at the scan position (outermost first) and where each occurs next.

    Linear in the message however hostile it is: per open boundary, `hits` keeps (since, upto, hit): `hit` is
    the first "\\n--boundary" at or after `since`, or -1 when none starts in [since, upto]. Searches only move
    forward, and a new one goes to the next line of an enclosing boundary (which ends the part anyway) or to
    twice the distance already searched, whichever is further: a boundary that never occurs costs only about
    the bytes of its own part, and one searched to the end of the message is no longer looked at ("live").
    Nor is one that starts with an enclosing boundary: every line of it is a line of that one too.
    """

    __slots__ = ("covered", "hits", "last_pos", "lengths", "levels_of", "live", "raw", "size", "stack")

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.size = len(raw)
        self.stack: list[bytes] = []
        self.hits: list[tuple[int, int, int]] = []
        self.covered: list[bool] = []  # per level: an enclosing boundary is a prefix of it (or equal to it)
        self.live: list[int] = []  # levels to search: not covered, and may occur at or after `last_pos`; ascending
        self.levels_of: dict[bytes, list[int]] = {}  # boundary -> its levels, innermost last
        self.lengths: list[int] | None = []  # distinct boundary lengths, longest first; None: to recompute
        self.last_pos = 0

    def __len__(self) -> int:
        return len(self.stack)

    def push(self, boundary: bytes) -> None:
        level = len(self.stack)
        if self.lengths is None:
            self.lengths = sorted({len(b) for b in self.stack}, reverse=True)
        covered = any(boundary[:n] in self.levels_of for n in self.lengths if n <= len(boundary))
        self.stack.append(boundary)
        self.hits.append((self.size + 1, -1, -1))
        self.covered.append(covered)
        if not covered:
            self.live.append(level)
        self.levels_of.setdefault(boundary, []).append(level)
        self.lengths = None

    def pop_to(self, level: int) -> None:
        """Close the boundaries at `level` and deeper."""
        for boundary in self.stack[level:]:
            levels = self.levels_of[boundary]
            levels.pop()
            if not levels:
                del self.levels_of[boundary]
        del self.stack[level:], self.hits[level:], self.covered[level:]
        while self.live and self.live[-1] >= level:
            self.live.pop()
        self.lengths = None

    def line_match(self, line: int) -> tuple[int, bool] | None:
        """(level, closes) for a line starting with "--" and an open boundary; the longest one wins, then the
        innermost of equal ones. None when the line is no boundary line."""
        raw, start = self.raw, line + 2
        if raw[line:start] != b"--":
            return None
        if self.lengths is None:
            self.lengths = sorted({len(b) for b in self.stack}, reverse=True)
        for length in self.lengths:
            if start + length <= self.size:
                levels = self.levels_of.get(raw[start:start + length])
                if levels:
                    return levels[-1], raw[start + length:start + length + 2] == b"--"
        return None

    def next_line(self, pos: int) -> int:
        """Where the first "\\n--" of any open boundary at or after `pos` is (its line starts one later); -1."""
        if pos < self.last_pos:  # never happens in a forward scan; start the bookkeeping afresh if it does
            self.hits = [(self.size + 1, -1, -1)] * len(self.stack)
            self.live = [level for level, covered in enumerate(self.covered) if not covered]
        self.last_pos = pos
        hits, size = self.hits, self.size
        lf = -1
        limit = size
        exhausted = False
        for level in self.live:  # outermost first: each hit bounds the search of the inner boundaries
            since, upto, hit = hits[level]
            if since <= pos:
                if hit >= pos:
                    if hit <= limit:
                        lf = limit = hit
                    continue
                if hit < 0 and upto >= limit:
                    continue
            if since <= pos and hit < 0:  # carry on from where the last search of this boundary stopped
                begin = max(pos, upto + 1)
                stop = min(size, max(limit, begin + upto - since))
            else:
                since = begin = pos
                stop = limit
            pattern = b"\n--" + self.stack[level]
            hit = self.raw.find(pattern, begin, stop + len(pattern))
            hits[level] = (since, stop, hit)
            if 0 <= hit <= limit:
                lf = limit = hit
            elif hit < 0 and stop >= size:
                exhausted = True
        if exhausted:
            self.live = [level for level in self.live if not (hits[level][2] < 0 and hits[level][1] >= size)]
        return lf
