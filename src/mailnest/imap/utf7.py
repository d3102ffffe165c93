"""Modified UTF-7 mailbox names (RFC 3501 section 5.1.3). Pure.

Folder names are kept in the store as Unicode text; they travel over IMAP in modified UTF-7.
"""

from __future__ import annotations

import base64


def encode_mailbox(name: str) -> bytes:
    out = bytearray()
    pending: list[str] = []

    def flush() -> None:
        if pending:
            encoded = base64.b64encode("".join(pending).encode("utf-16-be")).rstrip(b"=").replace(b"/", b",")
            out.extend(b"&" + encoded + b"-")
            pending.clear()

    for char in name:
        if 0x20 <= ord(char) <= 0x7E:
            flush()
            out.extend(b"&-" if char == "&" else char.encode("ascii"))
        else:
            pending.append(char)
    flush()
    return bytes(out)


def decode_mailbox(raw: bytes) -> str:
    """Modified UTF-7 -> text; raw 8-bit UTF-8 is accepted as it is (many clients send it)."""
    if any(b > 0x7F for b in raw):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("mailbox name is neither modified UTF-7 nor UTF-8") from None
    text = raw.decode("ascii")
    out = []
    pos = 0
    while pos < len(text):
        amp = text.find("&", pos)
        if amp < 0:
            out.append(text[pos:])
            break
        out.append(text[pos:amp])
        end = text.find("-", amp)
        if end < 0:
            raise ValueError("unterminated '&' in mailbox name")
        chunk = text[amp + 1:end]
        if not chunk:
            out.append("&")
        else:
            data = chunk.replace(",", "/")
            try:
                decoded = base64.b64decode(data + "=" * (-len(data) % 4), validate=True).decode("utf-16-be")
            except (ValueError, UnicodeDecodeError):
                raise ValueError("invalid modified UTF-7 in mailbox name") from None
            out.append(decoded)
        pos = end + 1
    return "".join(out)
