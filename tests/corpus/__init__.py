"""Hand-written test messages shared by every test that needs real mail (MIME, IMAP, POP3, API, UI).

Files are stored byte for byte (`.gitattributes` marks them binary): each keeps the line endings its case
needs. Large and random messages are generated at test time by `tests.corpus.build`, never committed.

    alternative-attachments   mixed > alternative (QP text + HTML), PDF and text attachments; Return-Path,
                              List-Unsubscribe, X-Tags, folded Subject, Reply-To, quoted "," in a name
    forward-rfc822            a forward: text + message/rfc822 holding its own multipart/alternative
    encoded-words-and-params  RFC 2047 names and subject (split across words, two charsets); RFC 2231
                              filename continuations, charset'lang'value, RFC 2047 in quotes, quoted ";"
    groups-and-duplicates     group syntax in To, "undisclosed-recipients:;", duplicate To/Subject/X-Tags,
                              comment as display name, folded Message-ID; no MIME headers
    raw-utf8-headers          8-bit UTF-8 headers (RFC 6532) and one Windows-1252 header
    no-mime-headers           plain RFC 822, bare LF
    bare-lf-multipart         multipart/alternative, bare LF throughout
    mixed-line-endings        CRLF and bare LF mixed in one message, base64 attachment
    related-inline-image      mixed > related > alternative, inline image by Content-ID, calendar attachment
    digest                    multipart/digest: parts default to message/rfc822; preamble
    calendar-invite           alternative with text/calendar (method=REQUEST) and an .ics attachment
    html-only                 text/html only (QP): head, style, script, comment, entities
    boundary-whitespace       boundaries with trailing blanks, preamble and epilogue
    broken-missing-end-boundary, broken-bad-base64, broken-nul-unknown-charset   what real mail gets wrong
"""

from __future__ import annotations

from pathlib import Path

CORPUS_DIR = Path(__file__).resolve().parent


def names() -> list[str]:
    """Every corpus message file name, sorted."""
    return sorted(p.name for p in CORPUS_DIR.glob("*.eml"))


def load(name: str) -> bytes:
    """The raw bytes of one corpus message, e.g. load("forward-rfc822.eml")."""
    return (CORPUS_DIR / name).read_bytes()


def all_messages() -> dict[str, bytes]:
    return {name: load(name) for name in names()}
