"""The messages of tests/test_search.py as real RFC 5322 bytes and SMTP envelopes, for Store.add.

test_search.py describes each message by the fields its in-memory SQLite row gets (`MESSAGES`); here the same
fields are written as a message a client would send, so that a backend's own parsing at ingest yields exactly
those fields (checked in test_search_language.py, without a store) and the same expected answers hold.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from typing import Any

from mailnest.models import Address, Envelope

CRLF = "\r\n"


@dataclass(frozen=True, slots=True)
class Built:
    key: str
    raw: bytes
    envelope: Envelope
    read: bool
    tags: tuple[str, ...]


def _encoded(text: str) -> str:
    """An unstructured header value as a client writes it: encoded words when it is not ASCII."""
    return text if text.isascii() else Header(text, "utf-8").encode()


def _address(a: Address) -> str:
    if not a.name:
        return a.address
    return f"{_encoded(a.name)} <{a.address}>"


def _addresses(addresses: Sequence[Address]) -> str:
    return ", ".join(_address(a) for a in addresses)


def _text_part(subtype: str, text: str) -> str:
    return (f"Content-Type: text/{subtype}; charset=utf-8{CRLF}Content-Transfer-Encoding: 8bit{CRLF}{CRLF}"
            + text.replace("\n", CRLF))


def _multipart(subtype: str, boundary: str, parts: Sequence[str]) -> str:
    body = "".join(f"--{boundary}{CRLF}{part}{CRLF}" for part in parts)
    return f"Content-Type: multipart/{subtype}; boundary=\"{boundary}\"{CRLF}{CRLF}{body}--{boundary}--{CRLF}"


def _attachment(name: str) -> str:
    data = base64.encodebytes(b"%PDF-1.4\n" + b"\x00\x01binary" * 20).decode().replace("\n", CRLF)
    return (f"Content-Type: application/pdf; name=\"{name}\"{CRLF}"
            f"Content-Disposition: attachment; filename=\"{name}\"{CRLF}"
            f"Content-Transfer-Encoding: base64{CRLF}{CRLF}{data}")


def _inline_image(n: int) -> str:
    data = base64.encodebytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4).decode().replace("\n", CRLF)
    return (f"Content-Type: image/png{CRLF}Content-ID: <image{n}@corpus.test>{CRLF}"
            f"Content-Disposition: inline{CRLF}Content-Transfer-Encoding: base64{CRLF}{CRLF}{data}")


def _padded(headers: list[str], body: str, size: int) -> bytes:
    """The message with an X-Padding header that makes it exactly `size` bytes (only sizes are compared by the
    search tables; no header but the ones parsed is searched)."""
    head = "".join(h + CRLF for h in headers).encode()
    rest = body.encode()
    missing = size - len(head) - len(rest) - len(b"X-Padding:\r\n")
    if missing < 0:
        raise ValueError(f"the message is {len(head) + len(rest)} bytes already, more than {size}")
    full_lines, first = divmod(missing, 79)  # each folded line: a space, 76 characters, CRLF
    padding = b"X-Padding:" + b"p" * first + CRLF.encode() + (b" " + b"p" * 76 + CRLF.encode()) * full_lines
    raw = head + padding + rest
    assert len(raw) == size
    return raw


def build(key: str, fields: dict[str, Any]) -> Built:
    """One message of test_search.MESSAGES as bytes and envelope."""
    text: str = fields.get("text", "")
    html: str = fields.get("html", "")
    names: Sequence[str] = fields.get("attachment_names", ())
    if fields.get("attachments", 0) != len(names):
        raise ValueError(f"{key}: the corpus makes one attachment per name")
    headers = [f"From: {_address(fields['from_'])}"] if fields.get("from_") else []
    for header, name in (("To", "to"), ("Cc", "cc"), ("Reply-To", "reply_to")):
        if fields.get(name):
            headers.append(f"{header}: {_addresses(fields[name])}")
    headers.append(f"Subject: {_encoded(fields['subject'])}")
    if fields.get("message_id"):
        headers.append(f"Message-ID: <{fields['message_id']}>")
    headers.append("MIME-Version: 1.0")
    body = _text_part("plain", text)
    if html:
        body = _multipart("alternative", "alt-" + key, [body, _text_part("html", html)])
    if fields.get("inline"):
        body = _multipart("related", "rel-" + key, [body, *(_inline_image(n) for n in range(fields["inline"]))])
    if names:
        body = _multipart("mixed", "mix-" + key, [body, *(_attachment(n) for n in names)])
    envelope = Envelope(fields.get("mail_from", ""), tuple(fields.get("rcpt", ())), "client.test",
                        "127.0.0.1:2525", received=datetime.fromisoformat(fields["created"]))
    raw = _padded(headers, body, fields.get("size", 1000))
    return Built(key, raw, envelope, bool(fields.get("read")), tuple(fields.get("tags", ())))
