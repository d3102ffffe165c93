"""IMAP sequence sets (`1:3,7,9:*`), for message sequence numbers and UIDs alike. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from .tokens import ParseError


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """`1:3,7,9:*`. Ranges are (low, high) with None standing for `*` (the largest number in use)."""

    ranges: tuple[tuple[int | None, int | None], ...]
    text: str

    def resolve(self, largest: int) -> list[tuple[int, int]]:
        """Concrete inclusive ranges, `*` replaced by `largest` and each range put low to high."""
        out = []
        for low, high in self.ranges:
            a = largest if low is None else low
            b = largest if high is None else high
            out.append((min(a, b), max(a, b)))
        return out

    def contains(self, number: int, largest: int) -> bool:
        return any(a <= number <= b for a, b in self.resolve(largest))


def parse_sequence_set(text: str) -> SequenceSet:
    if not text:
        raise ParseError("Empty sequence set")
    ranges: list[tuple[int | None, int | None]] = []
    for item in text.split(","):
        ends = item.split(":")
        if len(ends) > 2 or not item:
            raise ParseError(f"Invalid sequence set {text!r}")
        values: list[int | None] = []
        for end in ends:
            if end == "*":
                values.append(None)
            elif end.isdigit() and end[0] != "0" and len(end) <= 10 and int(end) <= 0xFFFFFFFF:
                values.append(int(end))
            else:
                raise ParseError(f"Invalid sequence set {text!r}: {end!r} is not a number above 0 or *")
        ranges.append((values[0], values[-1]))
    return SequenceSet(tuple(ranges), text)
