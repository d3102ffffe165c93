"""Raw message bytes -> the fields mailnest shows and searches, and the MIME tree IMAP serves. Pure, no I/O.

- `parse(raw)`: the fields stored at ingest (addresses, subject, date, bodies, attachments, snippet, ...).
- `headers(raw)`: every top-level header, decoded; `part(raw, part_id)`: one part's decoded content.
- `structure(raw)`: the MIME tree as byte offsets (`MimePart`), split exactly as Dovecot splits it;
  `find_part(root, section)` resolves IMAP section numbers; `header_fields(raw, start, end)` splits a header
  block into raw (name, value) pairs the way Dovecot does.

Nothing here raises on bad input: any byte string is a message, however broken. And nothing here is slower
than linear in it, however hostile it is (tests/test_mime_linear.py ramps each parser); the one walk that
cannot be is capped: nesting past `tree.MAX_NESTING` (100) levels and parts past `tree.MAX_PARTS` (10,000) are
not split further, as Dovecot does; what lies past a cap stays in the last part.
"""

from .header import decode_words
from .header import fields as header_fields
from .message import Parsed, PartContent, headers, parse, part
from .tree import MimePart, PartKind, find_part, structure

__all__ = [
    "MimePart",
    "Parsed",
    "PartContent",
    "PartKind",
    "decode_words",
    "find_part",
    "header_fields",
    "headers",
    "parse",
    "part",
    "structure",
]
