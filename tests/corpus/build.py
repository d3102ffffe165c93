"""Messages generated at test time: big ones, so that no multi-megabyte file is ever committed.

Deterministic: the same arguments always give the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import random

_WORDS = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit", "sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et", "dolore", "magna", "aliqua", "mailnest", "captures", "every", "message"]


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words)).capitalize() + "."


def typical_text_message(seed: int = 0) -> bytes:
    """About 2 KB: the headers a real mailer writes and a plain text body."""
    rng = random.Random(seed)
    body = "\r\n".join(_sentence(rng, 12) for _ in range(18))
    return (
        "Return-Path: <app@example.com>\r\n"
        "Received: from app.example.com (app.example.com [192.0.2.1])\r\n"
        "\tby mailnest with ESMTP id 1A2B3C; Tue, 05 Mar 2024 10:11:13 +0100\r\n"
        'From: "Example App" <app@example.com>\r\n'
        "To: Alice Example <alice@example.org>, bob@example.org\r\n"
        "Subject: Your weekly summary\r\n"
        "Date: Tue, 05 Mar 2024 10:11:12 +0100\r\n"
        f"Message-ID: <summary-{seed}@example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n" + body + "\r\n"
    ).encode()


def attachment_message(size: int = 5_000_000, seed: int = 0, line_ending: bytes = b"\r\n") -> tuple[bytes, bytes]:
    """(message, attachment bytes): multipart/mixed with a short text part and a base64 attachment of `size`
    random bytes, encoded in 76-character lines as mailers do."""
    payload = random.Random(seed).randbytes(size)
    encoded = base64.encodebytes(payload).replace(b"\n", line_ending)
    nl = line_ending
    message = nl.join([
        b'From: "Example App" <app@example.com>',
        b"To: alice@example.org",
        b"Subject: The export you asked for",
        b"Date: Tue, 05 Mar 2024 10:11:12 +0100",
        b"MIME-Version: 1.0",
        b'Content-Type: multipart/mixed; boundary="=_export_boundary_1234"',
        b"",
        b"--=_export_boundary_1234",
        b"Content-Type: text/plain; charset=utf-8",
        b"",
        b"The export is attached.",
        b"--=_export_boundary_1234",
        b'Content-Type: application/octet-stream; name="export.bin"',
        b'Content-Disposition: attachment; filename="export.bin"',
        b"Content-Transfer-Encoding: base64",
        b"",
        encoded + b"--=_export_boundary_1234--",
        b"",
    ])
    return message, payload


def html_message(size: int = 100_000, seed: int = 0) -> bytes:
    """An HTML-only newsletter of about `size` bytes, quoted-printable, with a large style block up front."""
    rng = random.Random(seed)
    style = "".join(f".c{i} {{ color: #{rng.randrange(0xFFFFFF):06x}; margin: {i}px; }}\n" for i in range(60))
    rows: list[str] = []
    total = len(style)
    i = 0
    while total < size:
        row = f'<tr><td class="c{i % 60}"><p>{_sentence(rng, 20)} &amp; caf\u00e9 {i}</p></td></tr>\n'
        rows.append(row)
        total += len(row)
        i += 1
    html = (f"<!DOCTYPE html><html><head><title>Newsletter</title><style>{style}</style></head>"
            f"<body><table>{''.join(rows)}</table></body></html>")
    qp = _quoted_printable(html.encode())
    return (
        b"From: News <news@example.com>\r\nTo: reader@example.org\r\nSubject: This week in examples\r\n"
        b"Date: Tue, 05 Mar 2024 10:11:12 +0100\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp
    )


def _quoted_printable(data: bytes) -> bytes:
    return binascii.b2a_qp(data).replace(b"\n", b"\r\n")


# --- random MIME, for fuzzing and for comparing with Dovecot ---------------------------------------------------

_BOUNDARIES = [b"b", b"bb", b"b1", b"abc", b"=_Part_1", b"=_Part_12", b"x--", b"", b"----=_NextPart_000", b"q" * 90]
_TYPES = [b"text/plain", b"text/html", b"TEXT/Plain", b"application/octet-stream", b"image/png", b"text",
          b"message/rfc822", b"multipart/alternative", b"garbage", b"multipart/", b"text/plain (comment)",
          b"message/RFC822", b"multipart", b"text/pl ain"]
_PARAMS = [b'; charset="utf-8"', b"; charset=iso-8859-1", b'; name="a;b.txt"', b"; format=flowed",
           b"; name*=utf-8''%E2%82%AC.txt", b'; name*0="long"; name*1="name.txt"', b"; name*0*=utf-8''a%20; name*1=b",
           b'; x="unterminated', b"; broken", b" ; a = b", b"; name==?utf-8?b?YQ==?=", b"; k=v (c)", b"; K=1; k*1=2",
           b'; q="a\\"b"', b"; e=", b'; f="fold\r\n ed"', b"; x*=a; y*0=b"]
_FIELDS = [b"Content-ID: <cid@x>", b"Content-Description: some desc", b"Content-Description:\r\n folded",
           b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: QUOTED-PRINTABLE",
           b"Content-Transfer-Encoding: 8bit junk", b"Content-Disposition: attachment; filename=\"f.txt\"",
           b"Content-Disposition: inline", b"Content-Language: en, de", b"Content-Language: en (x)",
           b"Content-Location: http://x/y", b"Content-MD5: Q2hl", b"MIME-Version: 1.0", b"Subject: hi",
           b"From: a@b.c", b"X-Weird : v", b"Content-ID:   <sp>", b"Content-Id: <dup>", b"content-type: text/x-lower",
           b"NoColonLine", b" continuation", b"Content-Description: a\x00b", b"Content-Description: c\rr"]
_LINES = [b"hello", b"", b"line1\nline2", b"--not-a-boundary", b"-- sig", b"x" * 50, b"aGVsbG8gd29ybGQ=", b"\x00nul",
          b"caf\xc3\xa9", b"=E9t=E9"]


class _Mime:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.style = self.rng.choice(["crlf", "crlf", "lf", "mixed"])

    def nl(self) -> bytes:
        if self.style == "mixed":
            return self.rng.choice([b"\r\n", b"\n"])
        return b"\r\n" if self.style == "crlf" else b"\n"

    def header(self, ctype: bytes | None, boundary: bytes | None) -> bytes:
        rng = self.rng
        lines = [rng.choice(_FIELDS) for _ in range(rng.randint(0, 3))]
        if ctype is not None:
            ct = b"Content-Type: " + ctype
            if boundary is not None:
                quote = rng.choice([b'"', b""])
                ct += rng.choice([b"; ", b";\r\n\t", b"; charset=x; "]) + b"boundary=" + quote + boundary + quote
            for _ in range(rng.randint(0, 2)):
                ct += rng.choice(_PARAMS)
            lines.insert(rng.randint(0, len(lines)), ct)
        return b"".join(line.replace(b"\r\n", self.nl()) + self.nl() for line in lines)

    def text(self) -> bytes:
        return self.nl().join(self.rng.choice(_LINES).replace(b"\n", self.nl())
                              for _ in range(self.rng.randint(0, 4)))

    def entity(self, depth: int, open_boundaries: list[bytes], in_digest: bool = False) -> bytes:
        rng, nl = self.rng, self.nl
        kind = "leaf" if depth > 3 else rng.choice(["leaf", "leaf", "multi", "multi", "rfc822"])
        if kind == "multi":
            boundary = rng.choice(_BOUNDARIES + open_boundaries) if rng.random() < 0.3 else rng.choice(_BOUNDARIES)
            subtype = rng.choice([b"multipart/mixed", b"multipart/alternative", b"multipart/digest",
                                  b"Multipart/Related"])
            out = self.header(subtype, boundary) + nl()
            if rng.random() < 0.5:
                out += self.text() + nl()  # preamble
            count = rng.randint(0, 3)
            for _ in range(count):
                out += b"--" + boundary + rng.choice([b"", b"", b" ", b"\t", b"junk"]) + nl()
                out += self.entity(depth + 1, [*open_boundaries, boundary], subtype == b"multipart/digest") + nl()
            end = rng.random()
            if end < 0.6:
                out += b"--" + boundary + b"--" + rng.choice([b"", b" ", b"--"]) + nl()
                if rng.random() < 0.4:
                    out += self.text() + nl()  # epilogue
            elif end < 0.7:
                out += b"--" + boundary + b"--"
            elif end < 0.8 and count == 0:
                out += b"--" + boundary
            return out
        if kind == "rfc822":
            return self.header(b"message/rfc822", None) + nl() + self.entity(depth + 1, open_boundaries)
        ctype = None if (in_digest and rng.random() < 0.5) or rng.random() < 0.2 else rng.choice(_TYPES)
        head = self.header(ctype, None)
        return head if rng.random() < 0.05 else head + nl() + self.text()


def random_mime(seed: int) -> bytes:
    """A random, often broken, MIME message: nested multiparts reusing and prefixing boundaries, missing and
    garbled boundaries, message/rfc822, digests, odd Content-* values, NULs, mixed line endings, truncation."""
    m = _Mime(seed)
    raw = m.entity(0, [])
    if m.rng.random() < 0.1:
        raw = raw[:m.rng.randint(0, len(raw))]
    if m.rng.random() < 0.1 and raw:
        mutated = bytearray(raw)
        for _ in range(m.rng.randint(1, 3)):
            mutated[m.rng.randrange(len(mutated))] = m.rng.choice(b"-\r\n:;\"\\( x")
        raw = bytes(mutated)
    return raw or b"\r\n"
