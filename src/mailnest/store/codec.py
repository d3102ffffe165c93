"""How a message's raw bytes sit in `bodies.raw`: as received, or (with --compress) as one zstd frame.

Each row says which in its own column, `bodies.raw_codec` (PLAIN 0, ZSTD 1), rather than by a magic prefix: a
message stored as received may begin with any bytes at all (SMTP DATA is 8-bit, and a row written before this
column existed was never looked at), so only a marker outside the bytes can never be mistaken. A row is read by
its own marker whatever the flag says now, so a database may mix both kinds: turning --compress on or off never
rewrites or misreads an old row. A message that zstd does not make smaller (already compressed attachments) is
kept as received.

Every read of raw bytes goes through `decode` (or `decode_prefix` for a header read); sizes (`messages.size`,
the totals) are always the message's own length, never the stored one. Pure: no I/O; the contexts are one per
thread (a zstd context is not safe to share), so the parse and reader threads each have their own.
"""

from __future__ import annotations

import threading

import zstandard

PLAIN = 0  # bodies.raw holds the bytes as received
ZSTD = 1  # bodies.raw holds one zstd frame (with its content size) of the bytes as received
LEVEL = 3  # zstd's default: level 1 saved 2-4 points less, 6 and more cost several times the time (benchmarks)
# Compressed bytes from which a backend whose reads run on the loop (PostgreSQL) decodes in a thread instead.
DECODE_ON_LOOP_UP_TO = 64 * 1024

_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    found: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if found is None:
        found = _local.compressor = zstandard.ZstdCompressor(level=LEVEL, write_content_size=True)
    return found


def _decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_local, "decompressor", None)
    if found is None:
        found = _local.decompressor = zstandard.ZstdDecompressor()
    return found


def encode(raw: bytes, compress: bool) -> tuple[bytes, int]:
    """(what bodies.raw stores, its raw_codec): compressed when asked and when that makes it smaller."""
    if compress and raw:
        packed = _compressor().compress(raw)
        if len(packed) < len(raw):
            return packed, ZSTD
    return raw, PLAIN


def decode(stored: bytes | bytearray | memoryview, codec: int) -> bytes:
    """The exact bytes received, from a bodies.raw value and its raw_codec."""
    if codec == PLAIN:
        return bytes(stored)
    if codec == ZSTD:
        return _decompressor().decompress(bytes(stored))
    raise ValueError(f"bodies.raw_codec {codec} is not one this mailnest knows (a newer one wrote it)")


def decode_prefix(stored: bytes | bytearray | memoryview, codec: int, length: int) -> bytes:
    """The first `length` bytes of the message (all of it when shorter), without decoding the rest."""
    if codec == PLAIN:
        return bytes(stored[:length])
    if codec == ZSTD:
        with _decompressor().stream_reader(bytes(stored)) as reader:
            parts = []
            while length > 0:
                part = reader.read(length)
                if not part:
                    break
                parts.append(part)
                length -= len(part)
            return b"".join(parts)
    raise ValueError(f"bodies.raw_codec {codec} is not one this mailnest knows (a newer one wrote it)")


def decode_all(rows: list[tuple[object, bytes | bytearray | memoryview, int]],
               prefix: int | None = None) -> dict[object, bytes]:
    """decode() (or with `prefix`, decode_prefix()) of many (key, stored, codec) rows: one call, to hand to a
    thread at once."""
    if prefix is None:
        return {key: decode(stored, codec) for key, stored, codec in rows}
    return {key: decode_prefix(stored, codec, prefix) for key, stored, codec in rows}


def costly(rows: list[tuple[object, bytes | bytearray | memoryview, int]]) -> bool:
    """Whether decoding these rows is worth a thread rather than the loop (compressed bytes past the bound)."""
    return sum(len(stored) for _, stored, codec in rows if codec != PLAIN) > DECODE_ON_LOOP_UP_TO
