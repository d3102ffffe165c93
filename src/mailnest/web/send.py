"""Mailpit's send API, `POST /api/v1/send`: a JSON description of a message becomes a real RFC 5322 message,
stored as if it had arrived (Envelope source "api"), and the answer is `{"ID": "..."}`.

Request fields are Mailpit's (matched without regard to case): From {Email, Name} (required), To, Cc and
ReplyTo ([{Email, Name}]), Bcc (["address"]), Subject, Text, HTML, Attachments ([{Content (base64), Filename,
ContentType, ContentID}]; a ContentID makes the part inline, for `cid:` images in the HTML), Tags (written as
X-Tags and applied), Headers ({"Name": "value"}). Bcc recipients are envelope recipients only: no Bcc header is
written. Errors are `{"Error": "..."}` with status 400 (413 for a message over the size limit), as in Mailpit.

`build` is pure; the route adds the envelope and stores.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.errors
import email.policy
import email.utils
import mimetypes
import re
import time
from dataclasses import dataclass
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import tags as tags_module
from ..models import Envelope
from .api import ApiError, Context, fields, guarded_routes, json_body

# Headers the request's own fields set; "Headers" may not override them (Mailpit's list).
RESTRICTED = frozenset(h.lower() for h in ("To", "From", "Cc", "Bcc", "Reply-To", "Date", "Subject", "Content-Type",
                                           "Mime-Version", "Content-Transfer-Encoding", "Message-Id", "X-Tags"))
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF87a", "image/gif"),
               (b"GIF89a", "image/gif"), (b"%PDF-", "application/pdf"), (b"PK\x03\x04", "application/zip"))


class SendError(ValueError):
    """A send request that cannot become a message; the text is the reason returned."""


@dataclass(frozen=True, slots=True)
class Built:
    raw: bytes
    mail_from: str
    recipients: tuple[str, ...]
    tags: tuple[str, ...]


def _address(value: Any, what: str) -> tuple[str, str]:
    """(name, addr-spec) of an {Email, Name} object."""
    if not isinstance(value, dict):
        raise SendError(f"{what} must be an object such as {{\"Email\": \"jane@example.com\", \"Name\": \"Jane\"}}")
    by_lower = {k.lower(): v for k, v in value.items()}
    unknown = set(by_lower) - {"email", "name"}
    if unknown:
        raise SendError(f"{what}: unknown field {sorted(unknown)[0]!r}; expected Email and Name")
    email_value, name = by_lower.get("email"), by_lower.get("name", "")
    if not isinstance(email_value, str) or not isinstance(name, str):
        raise SendError(f"{what}: Email and Name must be strings")
    return _header_value(name, f"{what} Name"), _addr_spec(email_value, what)


# One @, and none of: blanks, control characters, or the characters that would need quoting in a header.
_ADDRESS_CHAR = r'[^\s@<>(),;"\\\x00-\x1f\x7f\x85\ufeff]'
ADDRESS_PATTERN = f"^{_ADDRESS_CHAR}+@{_ADDRESS_CHAR}+$"
_ADDRESS = re.compile(ADDRESS_PATTERN)


def _addr_spec(text: str, what: str) -> str:
    address = text.strip()
    if not _ADDRESS.fullmatch(address):
        raise SendError(f"invalid {what} address: {text!r}")
    return address


def _header_value(text: str, what: str) -> str:
    if "\r" in text or "\n" in text or "\x00" in text:
        raise SendError(f"{what}: line breaks are not allowed in a header value")
    return text


def _format(name: str, address: str) -> HeaderAddress | str:
    local, _, domain = address.rpartition("@")
    try:
        return HeaderAddress(display_name=name, username=local, domain=domain)
    except (ValueError, IndexError):
        return email.utils.formataddr((name, address))


def _content_type(filename: str, data: bytes, given: str) -> tuple[str, str]:
    ctype = given.strip().lower() if given.strip() else ""
    if not ctype:
        for signature, kind in _SIGNATURES:
            if data.startswith(signature):
                ctype = kind
                break
    if not ctype:
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    maintype, _, subtype = ctype.partition("/")
    if not maintype or not subtype or any(c.isspace() for c in ctype):
        raise SendError(f"attachment {filename!r}: {given!r} is not a content type such as image/png")
    return maintype, subtype.split(";")[0]


def _list(value: Any, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SendError(f"{what} must be a list")
    return value


def build(request: dict[str, Any], *, hostname: str = "mailnest", now: float | None = None) -> Built:
    """The message a send request describes. Raises SendError with the reason."""
    try:
        return _build(request, hostname=hostname, now=now)
    except SendError:
        raise
    except (ValueError, TypeError, AttributeError, IndexError, UnicodeError, email.errors.MessageError) as exc:
        # The stdlib's header parser fails in odd ways on odd addresses (a domain like "[x"); say which input.
        raise SendError(f"these addresses or headers cannot be written into a message: {exc}") from None


def _build(request: dict[str, Any], *, hostname: str, now: float | None) -> Built:
    for key, value in request.items():
        if value is None:
            raise SendError(f"{key} must not be null (leave it out instead)")
    if "From" not in request:
        raise SendError('From is required, e.g. "From": {"Email": "jane@example.com"}')
    from_name, from_addr = _address(request["From"], "From")
    to = [_address(v, "To") for v in _list(request.get("To"), "To")]
    cc = [_address(v, "Cc") for v in _list(request.get("Cc"), "Cc")]
    reply_to = [_address(v, "ReplyTo") for v in _list(request.get("ReplyTo"), "ReplyTo")]
    bcc = [_addr_spec(v, "Bcc") if isinstance(v, str) else _address(v, "Bcc")[1]
           for v in _list(request.get("Bcc"), "Bcc")]
    strings = {}
    for key in ("Subject", "Text", "HTML"):
        value = request.get(key, "")
        if not isinstance(value, str):
            raise SendError(f"{key} must be a string")
        strings[key] = value
    tag_names = _list(request.get("Tags"), "Tags")
    if not all(isinstance(t, str) for t in tag_names):
        raise SendError("Tags must be a list of strings")
    extra_headers = request.get("Headers", {})
    if not isinstance(extra_headers, dict) or not all(isinstance(v, str) for v in extra_headers.values()):
        raise SendError('Headers must be an object of strings, e.g. {"X-Campaign": "spring"}')

    utf8 = not all(a.isascii() for a in (from_addr, *(a for _, a in (*to, *cc, *reply_to)), *bcc))
    msg = EmailMessage(policy=email.policy.SMTPUTF8 if utf8 else email.policy.SMTP)
    msg["From"] = _format(from_name, from_addr)
    if to:
        msg["To"] = [_format(n, a) for n, a in to]
    if cc:
        msg["Cc"] = [_format(n, a) for n, a in cc]
    if reply_to:
        msg["Reply-To"] = [_format(n, a) for n, a in reply_to]
    msg["Subject"] = _header_value(strings["Subject"], "Subject")
    msg["Date"] = email.utils.formatdate(now if now is not None else time.time(), localtime=True)
    msg["Message-ID"] = email.utils.make_msgid(domain=hostname)
    cleaned_tags = tags_module.unique(tag_names)
    if cleaned_tags:
        msg["X-Tags"] = ", ".join(cleaned_tags)
    for name, value in extra_headers.items():
        if not name or any(c.isspace() or c == ":" or ord(c) < 33 or ord(c) > 126 for c in name):
            raise SendError(f"Headers: {name!r} is not a header name")
        if name.lower() in RESTRICTED:
            raise SendError(f'cannot overwrite header: "{name}"')
        msg[name] = _header_value(value, f"header {name}")

    msg.set_content(strings["Text"])
    _exactly(msg, strings["Text"])
    if strings["HTML"]:
        msg.add_alternative(strings["HTML"], subtype="html")
        parts = msg.get_payload()
        assert isinstance(parts, list)
        _exactly(parts[-1], strings["HTML"])
    attachments = list(enumerate(_list(request.get("Attachments"), "Attachments")))
    # Inline parts first: they go inside the HTML alternative, which must still be the last part then.
    attachments.sort(key=lambda pair: not (isinstance(pair[1], dict) and any(
        k.lower() == "contentid" and v for k, v in pair[1].items())))
    for index, item in attachments:
        _attach(msg, item, index, has_html=bool(strings["HTML"]))
    raw = msg.as_bytes()
    recipients = tuple(dict.fromkeys([a for _, a in to] + [a for _, a in cc] + bcc))
    return Built(raw, from_addr, recipients, cleaned_tags)


def _exactly(part: Any, text: str) -> None:
    """The body reads back as `text`, byte for byte: `set_content` ends every text with a line break (`"x"` came
    back as `"x\r\n"`; Mailpit gives `"x"`), so a text without one is sent in base64, which keeps its end."""
    if text and not text.endswith("\n"):
        del part["Content-Transfer-Encoding"]
        part["Content-Transfer-Encoding"] = "base64"
        part.set_payload(base64.encodebytes(text.encode("utf-8")).decode("ascii"))


def _attach(msg: EmailMessage, item: Any, index: int, *, has_html: bool) -> None:
    what = f"Attachments[{index}]"
    if not isinstance(item, dict):
        raise SendError(f"{what} must be an object with Content and Filename")
    values = {k.lower(): v for k, v in item.items()}
    unknown = set(values) - {"content", "filename", "contenttype", "contentid"}
    if unknown:
        raise SendError(f"{what}: unknown field {sorted(unknown)[0]!r}")
    content, filename = values.get("content"), values.get("filename", "")
    content_type, content_id = values.get("contenttype", ""), values.get("contentid", "")
    if not all(isinstance(v, str) for v in (content, filename, content_type, content_id)):
        raise SendError(f"{what}: Content, Filename, ContentType and ContentID must be strings")
    assert isinstance(content, str) and isinstance(filename, str)
    if not filename.strip():
        raise SendError(f"{what}: Filename is required")
    _header_value(filename, f"{what}.Filename")
    _header_value(content_id, f"{what}.ContentID")
    # A data URL (what a browser's readAsDataURL gives) carries the base64 after the comma, as Mailpit allows.
    encoded = content.rsplit(",", 1)[-1]
    try:
        data = base64.b64decode("".join(encoded.split()), validate=True)
    except (binascii.Error, ValueError):
        raise SendError(f'error decoding base64 attachment "{filename}"') from None
    maintype, subtype = _content_type(filename, data, content_type)
    if content_id and has_html:
        parts = msg.get_payload()
        assert isinstance(parts, list)
        html = parts[-1]  # the text/html alternative
        assert isinstance(html, EmailMessage)
        html.add_related(data, maintype=maintype, subtype=subtype, cid=f"<{content_id.strip('<>')}>",
                         filename=filename, disposition="inline")
    elif content_id:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename, disposition="inline",
                           cid=f"<{content_id.strip('<>')}>")
    else:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)


FIELDS = ("From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Text", "HTML", "Attachments", "Tags", "Headers")


class SendApi:
    def __init__(self, context: Context) -> None:
        self.context = context

    def routes(self) -> list[Route]:
        return guarded_routes([Route("/api/v1/send", self.send, methods=["POST"])])

    async def send(self, request: Request) -> Response:
        limit = self.context.config.max_message_size
        body = await json_body(request, limit=limit * 4 // 3 + 1024 * 1024)
        if body is None:
            raise ApiError(400, 'expected a JSON object such as {"From": {"Email": "jane@example.com"}, '
                                '"To": [{"Email": "joe@example.com"}], "Subject": "Hello"}')
        values = fields(body, FIELDS, example='{"From": {"Email": "jane@example.com"}}')
        try:
            # Encoding up to --max-message-size of attachments is CPU work: off the loop every listener shares.
            built = await asyncio.to_thread(build, values, hostname=self.context.config.hostname)
        except SendError as exc:
            raise ApiError(400, str(exc)) from None
        if len(built.raw) > limit:
            raise ApiError(413, f"the message would be {len(built.raw)} bytes, over the limit of {limit}")
        client = request.client
        envelope = Envelope(mail_from=built.mail_from, rcpt_tos=built.recipients, helo="",
                            peer=f"{client.host}:{client.port}" if client else "", source="api",
                            smtputf8=not built.raw.isascii())
        summary = await self.context.store.add(built.raw, envelope, tags=built.tags)
        return JSONResponse({"ID": summary.id})
