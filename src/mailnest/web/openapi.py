"""The OpenAPI 3.0 document of every HTTP route, served at `/api/v1/openapi.json` and at Mailpit's
`/api/v1/swagger.json`. tests/web/test_openapi.py checks that it lists exactly the routes the application has
and runs schemathesis against a live server with it."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..chaos import MAX_LINK_SPEED
from . import spaces
from .api import DEFAULT_LIMIT, MAX_START, PAGE_CAP
from .compat_mailhog import MAX_RENDER_DEPTH
from .send import ADDRESS_PATTERN

JSON = "application/json"
TEXT = "text/plain"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def array(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


STR = {"type": "string"}
INT = {"type": "integer"}
NUM = {"type": "number"}
BOOL = {"type": "boolean"}
NULLABLE_STR = {"type": "string", "nullable": True}
TAG_NAMES = array(STR)
FOLDER = {"type": "string", "description": '"INBOX" for delivered mail, else the IMAP folder a client filed it in'}

_ADDRESS_LIST = array(ref("Address"))
# The address forms mailnest accepts (no spaces, quotes, brackets or line breaks; one @).
EMAIL = {"type": "string", "pattern": ADDRESS_PATTERN, "example": "jane@example.com"}
ONE_LINE = {"type": "string", "pattern": r"^[^\r\n\x00]*$"}
TAG_NAME = {"type": "string", "pattern": "[A-Za-z0-9._-]", "description": "letters, digits, - . _ and spaces"}
_SEND_ADDRESS = obj({"Email": EMAIL, "Name": ONE_LINE}, ("Email",), additionalProperties=False)

SCHEMAS: dict[str, Any] = {
    "Error": obj({"Error": STR}, ("Error",)),
    "Address": obj({"Name": STR, "Address": STR}, ("Name", "Address")),
    "MessageSummary": obj({
        "ID": STR, "MessageID": STR, "Read": BOOL, "From": ref("Address"), "To": _ADDRESS_LIST, "Cc": _ADDRESS_LIST,
        "Bcc": _ADDRESS_LIST, "ReplyTo": _ADDRESS_LIST, "Subject": STR, "Created": {"type": "string", "format": "date-time"},
        "Tags": TAG_NAMES, "Size": INT, "Attachments": INT, "Snippet": STR, "Folder": FOLDER,
        "Username": {"type": "string", "description": "the SMTP AUTH user it was sent with ('' when none)"},
    }, ("ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Created", "Tags", "Size",
        "Attachments", "Snippet", "Folder", "Username")),
    "MessagesSummary": obj({
        "total": INT, "unread": INT, "count": INT, "messages_count": INT, "messages_unread": INT, "start": INT,
        "tags": TAG_NAMES, "messages": array(ref("MessageSummary")),
    }, ("total", "unread", "count", "messages_count", "start", "tags", "messages")),
    "Attachment": obj({
        "PartID": STR, "FileName": STR, "ContentType": STR, "ContentID": STR, "Size": INT,
        "Checksums": obj({"MD5": STR, "SHA1": STR, "SHA256": STR}),
    }, ("PartID", "FileName", "ContentType", "ContentID", "Size")),
    "Envelope": obj({
        "MailFrom": {"type": "string", "description": 'MAIL FROM; "<>" for the null sender (bounces, reports)'},
        "RcptTo": array(STR), "Helo": STR, "Peer": STR,
        "Received": {"type": "string", "format": "date-time", "nullable": True}, "AuthUser": NULLABLE_STR,
        "TLS": obj({"Version": STR, "Cipher": STR}, nullable=True), "SMTPUTF8": BOOL, "Source": STR,
    }, ("MailFrom", "RcptTo", "Helo", "Peer")),
    "Message": obj({
        "ID": STR, "MessageID": STR, "From": ref("Address"), "To": _ADDRESS_LIST, "Cc": _ADDRESS_LIST,
        "Bcc": _ADDRESS_LIST, "ReplyTo": _ADDRESS_LIST, "ReturnPath": STR, "Subject": STR,
        "ListUnsubscribe": obj({"Header": STR, "Links": array(STR), "Errors": STR, "HeaderPost": STR}),
        "Date": {"type": "string", "format": "date-time"}, "Created": {"type": "string", "format": "date-time"},
        "Tags": TAG_NAMES, "Username": STR, "Read": BOOL, "Text": STR, "HTML": STR, "Size": INT,
        "Inline": array(ref("Attachment")), "Attachments": array(ref("Attachment")), "Envelope": ref("Envelope"),
        "Folder": FOLDER,
        "ProtocolWarnings": {**array(ref("ProtocolWarning")),
                             "description": "How the stored bytes break the line rules of RFC 5321/5322 (mailnest)"},
    }, ("ID", "MessageID", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Date", "Tags", "Text", "HTML", "Size",
        "Inline", "Attachments", "Folder", "ProtocolWarnings")),
    "ProtocolWarning": obj({"Code": {"type": "string", "enum": ["bare-lf", "bare-cr", "nul", "long-line",
                                                                "no-final-crlf"]},
                            "Text": STR}, ("Code", "Text")),
    "Folder": obj({"Name": STR, "Owner": {"type": "string", "description": "the IMAP login that made it ('*': the "
                                                                          "catch-all login; '' for INBOX)"},
                   "Total": INT, "Unread": INT}, ("Name", "Owner", "Total", "Unread")),
    "Folders": obj({"Folders": array(ref("Folder"))}, ("Folders",)),
    "MessageHeaders": {"type": "object", "additionalProperties": array(STR)},
    "Mailbox": obj({"Address": STR, "Total": INT, "Unread": INT,
                    "Latest": {"type": "string", "format": "date-time", "nullable": True,
                               "description": "when its newest message arrived"}},
                   ("Address", "Total", "Unread", "Latest")),
    "NewMailboxOnDemand": obj({
        "Label": {"type": "string", "pattern": spaces.LABEL_PATTERN, "nullable": True,
                  "description": "put in front of the random part of the domain (a DNS label; null: none)"},
        "MaxMessages": {"type": "integer", "minimum": 0, "maximum": spaces.MAX_MAX_MESSAGES, "nullable": True,
                        "description": "keep the newest this many (0, the default, or null: any number)"},
        "MaxAge": {"type": "number", "minimum": 0, "maximum": spaces.MAX_MAX_AGE, "nullable": True,
                   "description": f"seconds mail is kept (default {spaces.DEFAULT_MAX_AGE:g}; 0 or null: until "
                                  "deleted); a space past its age with no mail left goes too"},
        "Webhook": {"type": "string", "pattern": spaces.WEBHOOK_PATTERN, "nullable": True,
                    "description": "each message for the domain is POSTed here, as --webhook posts"},
    }, additionalProperties=False),
    "MailboxOnDemand": obj({
        "Domain": STR, "Address": {"type": "string", "description": "an example address (any local part works)"},
        "Mailbox": {"type": "string", "description": "the mailbox parameter of the lists and /api/v1/wait"},
        "Query": {"type": "string", "description": "the search term selecting its mail"},
        "MaxMessages": INT, "MaxAge": NUM, "Webhook": NULLABLE_STR,
        "Created": {"type": "string", "format": "date-time"}, "Total": INT, "Unread": INT,
    }, ("Domain", "Address", "Mailbox", "Query", "MaxMessages", "MaxAge", "Webhook", "Created", "Total", "Unread")),
    "MailboxOnDemandDeleted": obj({"Domain": STR, "Deleted": INT}, ("Domain", "Deleted")),
    "AppInformation": obj({
        "Version": STR, "LatestVersion": STR, "Database": STR, "DatabaseSize": INT, "Messages": INT, "Unread": INT,
        "Tags": {"type": "object", "additionalProperties": INT},
        "RuntimeStats": obj({"Uptime": INT, "Memory": INT, "MessagesDeleted": INT, "SMTPAccepted": INT,
                             "SMTPAcceptedSize": INT, "SMTPRejected": INT, "SMTPIgnored": INT}),
    }, ("Version", "Database", "Messages", "Unread", "Tags", "RuntimeStats")),
    "WebUIConfiguration": obj({
        "Label": STR,
        "MessageRelay": obj({"Enabled": BOOL, "SMTPServer": STR, "ReturnPath": STR, "AllowedRecipients": STR,
                             "BlockedRecipients": STR, "OverrideFrom": STR, "PreserveMessageIDs": BOOL,
                             "RecipientAllowlist": STR}, ("Enabled",)),
        "SpamAssassin": BOOL, "ChaosEnabled": BOOL, "DuplicatesIgnored": BOOL, "HideDeleteAllButton": BOOL,
    }, ("MessageRelay", "SpamAssassin", "ChaosEnabled")),
    "ChaosTrigger": obj({"ErrorCode": {"type": "integer", "minimum": 400, "maximum": 599,
                                       "description": "default 451 (Sender, Recipient) or 535 (Authentication)"},
                         "Probability": {"type": "number", "minimum": 0, "maximum": 100, "description": "percent",
                                         "default": 0}},
                        description="Unknown fields are ignored, as Mailpit ignores them"),
    "ChaosTriggers": obj({"Sender": ref("ChaosTrigger"), "Recipient": ref("ChaosTrigger"),
                          "Authentication": ref("ChaosTrigger")},
                         description="Unknown fields are ignored, as Mailpit ignores them"),
    "SendRequest": obj({
        "From": _SEND_ADDRESS, "To": array(_SEND_ADDRESS), "Cc": array(_SEND_ADDRESS), "Bcc": array(EMAIL),
        "ReplyTo": array(_SEND_ADDRESS), "Subject": ONE_LINE, "Text": STR, "HTML": STR,
        "Attachments": array(obj({
            "Content": {"type": "string", "format": "byte"},
            "Filename": {"type": "string", "pattern": r"^[^\r\n\x00]*\S[^\r\n\x00]*$"},
            "ContentType": {"type": "string", "pattern": r"^(|[a-z]+/[a-z0-9.+-]+)$"},
            "ContentID": ONE_LINE}, ("Content", "Filename"), additionalProperties=False)),
        "Tags": TAG_NAMES,
        "Headers": {"type": "object", "additionalProperties": ONE_LINE,
                    "propertyNames": {"pattern": "^X-[A-Za-z0-9-]+$"},
                    "description": "Extra header fields (not those the other fields set)"},
    }, ("From",), description="Unknown top-level fields are ignored, as Mailpit ignores them"),
    "SendMessageConfirmation": obj({"ID": STR}, ("ID",)),
    "LinkCheckResponse": obj({"Errors": INT, "Links": array(obj({"URL": STR, "StatusCode": INT, "Status": STR},
                                                                ("URL", "StatusCode", "Status")))},
                             ("Errors", "Links")),
    "HTMLCheckResponse": obj({"Platforms": {"type": "object", "additionalProperties": array(STR)},
                              "Total": obj({"Nodes": INT, "Partial": NUM, "Supported": NUM, "Tests": INT,
                                            "Unsupported": NUM}),
                              "Warnings": array({"type": "object"}), "Error": STR},
                             ("Platforms", "Total", "Warnings")),
    "SpamAssassinResponse": obj({"Error": STR, "IsSpam": BOOL, "Score": NUM,
                                 "Rules": array(obj({"Name": STR, "Description": STR, "Score": NUM}))},
                                ("Error", "IsSpam", "Score")),
    "MailHogPath": obj({"Relays": {"type": "array", "items": STR, "nullable": True}, "Mailbox": STR, "Domain": STR,
                        "Params": STR}, ("Mailbox", "Domain")),
    "MailHogContent": obj({"Headers": {"type": "object", "additionalProperties": array(STR)}, "Body": STR,
                           "Size": INT, "MIME": {"allOf": [ref("MailHogMIME")], "nullable": True}},
                          ("Headers", "Body", "Size"),
                          description=f"A part. A multipart part whose parts are in MIME has an empty Body (unlike "
                                      f"MailHog, which repeats them); below {MAX_RENDER_DEPTH} levels of multipart "
                                      "a part is a leaf with its raw Body"),
    "MailHogMIME": obj({"Parts": array(ref("MailHogContent"))}, ("Parts",)),
    "MailHogMessage": obj({
        "ID": STR, "From": ref("MailHogPath"), "To": array(ref("MailHogPath")), "Content": ref("MailHogContent"),
        "Created": {"type": "string", "format": "date-time"},
        "MIME": {"allOf": [ref("MailHogMIME")], "nullable": True},
        "Raw": obj({"From": STR, "To": array(STR), "Data": STR, "Helo": STR}),
    }, ("ID", "From", "To", "Content", "Created", "Raw")),
    "MailHogMessages": obj({"total": INT, "count": INT, "start": INT, "items": array(ref("MailHogMessage"))},
                           ("total", "count", "start", "items")),
    "JimConfig": obj({
        **{name: {"type": "number", "minimum": 0, "maximum": 1} for name in (
            "DisconnectChance", "AcceptChance", "LinkSpeedAffect", "RejectSenderChance", "RejectRecipientChance",
            "RejectAuthChance")},
        "LinkSpeedMin": {"type": "integer", "minimum": 1, "maximum": MAX_LINK_SPEED},
        "LinkSpeedMax": {"type": "integer", "minimum": 1, "maximum": MAX_LINK_SPEED},
    }, description="Unknown fields are ignored, as MailHog ignores them"),
}


def json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def text_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {TEXT: {"schema": STR}}}


def errors(*codes: int) -> dict[str, Any]:
    reasons = {400: "Bad request (the reason is in Error)", 403: "Refused", 404: "Not found", 408: "Timed out",
               409: "Conflict with the current state", 413: "Request body too large",
               502: "The upstream server refused",
               503: "Too many clients are waiting; try again after Retry-After seconds",
               507: "The disk is full: nothing was changed; try again once there is room"}
    return {str(code): json_response(reasons[code], ref("Error")) for code in codes}


def op(summary: str, ok: dict[str, Any], *, tags: str, params: list[dict[str, Any]] | None = None,
       body: dict[str, Any] | None = None, fail: tuple[int, ...] = (400,), ok_code: str = "200",
       responses: dict[str, Any] | None = None, body_required: bool = False, stream: bool = False) -> dict[str, Any]:
    """One operation; `responses` replaces the usual (ok_code: ok, plus JSON errors for `fail`). A `stream` never
    ends by itself (long poll, SSE, websocket): tests that call every operation skip those."""
    answers = responses if responses is not None else {ok_code: ok, **errors(*fail)}
    out: dict[str, Any] = {"summary": summary, "tags": [tags], "responses": answers}
    if stream:
        out["x-mailnest-stream"] = True
    if params:
        out["parameters"] = params
    if body is not None:
        out["requestBody"] = {"required": body_required, "content": {JSON: {"schema": body}}}
    return out


def query(name: str, schema: dict[str, Any], description: str = "", required: bool = False) -> dict[str, Any]:
    out = {"name": name, "in": "query", "required": required, "schema": schema, "description": description}
    if not required:
        out["allowEmptyValue"] = True  # an empty value means the default, as in Mailpit
    return out


def in_path(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": STR, "description": description}


TAG = {"name": "Tag", "in": "path", "required": True, "schema": TAG_NAME, "description": "The tag's name"}
DOMAIN = in_path("Domain", "The Domain that POST /api/v1/mailboxes gave")
ID = in_path("ID", 'Message database ID, or "latest" (with optional query, tz and mailbox parameters)')
PART = in_path("PartID", "Attachment part ID (as in the message's Attachments and Inline)")
# Mailpit's lists read start and limit leniently: anything but a whole number of 0 or more means the default.
START = query("start", {"description": "any value; not a whole number of 0 or more: 0"},
              "Pagination offset (default 0)")
LIMIT = query("limit", {"description": f"any value; not a whole number of 0 or more: {DEFAULT_LIMIT}"},
              f"Page size (default {DEFAULT_LIMIT}; 0 or more than {PAGE_CAP}: {PAGE_CAP})")
TZ = query("tz", {"type": "string", "enum": ["UTC", "Europe/Paris", "America/Chicago", "Pacific/Auckland"]},
           "IANA time zone of before:/after: dates written without one")
SEARCH = query("query", {"type": "string", "pattern": r"^[^\x00]*\S[^\x00]*$"},
               "Search query (mailnest's search language)", True)
MAILBOX = query("mailbox", STR, "Only mail for this envelope recipient (empty: all)")
LATEST = [query("query", STR, 'For ID "latest": the newest message matching this search'), TZ]
OK = text_response('Plain text "ok"')
IDS_BODY = obj({"IDs": array(STR)})
BINARY = {"description": "The part, with its own content type",
          "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
MH_START = query("start", {"type": "integer", "minimum": 0, "maximum": MAX_START, "default": 0}, "Pagination offset")
MH_LIMIT = query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_START, "default": 50},
                 "Page size (at most 250 are returned)")
EMPTY = {"description": "Empty body"}
HTML = {"description": "HTML", "content": {"text/html": {"schema": STR}}}
REMOTE = query("remote", {"type": "string", "enum": ["1"]}, "1: allow remote images, styles and fonts")
UI_REDIRECT = {"description": "A redirect to the web UI, that message or search open (Location: webroot#...)",
               "headers": {"Location": {"schema": STR}}}


def paths() -> dict[str, Any]:
    return {
        "/api/v1/messages": {
            "get": op("List messages, newest first", json_response("A page of summaries", ref("MessagesSummary")),
                      tags="messages", params=[START, LIMIT, MAILBOX]),
            "put": op("Set read status (by IDs, by search, or all)", OK, tags="messages", params=[TZ, MAILBOX],
                      body=obj({"IDs": array(STR), "Read": BOOL, "Search": STR}),
                      body_required=True, fail=(400, 507)),
            "delete": op("Delete messages by IDs, or all (no body, or no IDs; a body of unknown fields only is a 400)",
                         OK, tags="messages", params=[MAILBOX],
                         body=obj({"IDs": array(STR)}), fail=(400, 507)),
        },
        "/api/v1/search": {
            "get": op("Search messages", json_response("A page of matching summaries", ref("MessagesSummary")),
                      tags="messages", params=[SEARCH, START, LIMIT, TZ, MAILBOX]),
            "delete": op("Delete messages matching a search", OK, tags="messages", params=[SEARCH, TZ, MAILBOX],
                         fail=(400, 507)),
        },
        "/api/v1/message/{ID}": {
            "get": op("Get a message (marks it read, except for a request from a web page of another site)",
                      json_response("The message", ref("Message")), tags="message",
                      params=[ID, *LATEST], fail=(400, 404)),
        },
        "/api/v1/message/{ID}/headers": {
            "get": op("Get a message's headers", json_response("Header names and values", ref("MessageHeaders")),
                      tags="message", params=[ID, *LATEST], fail=(400, 404)),
        },
        "/api/v1/message/{ID}/raw": {
            "get": op("Get a message's source, exactly as received", {"description": "The message source",
                      "content": {"text/plain": {"schema": STR}}},
                      tags="message", params=[ID, *LATEST, query("dl", {"type": "string", "enum": ["0", "1"]},
                                                                  "1: as a download")], fail=(400, 404)),
        },
        "/api/v1/message/{ID}/part/{PartID}": {
            "get": op("Get an attachment or inline part", BINARY, tags="message",
                      params=[ID, PART, query("dl", {"type": "string", "enum": ["0", "1"]})], fail=(400, 404)),
        },
        "/api/v1/message/{ID}/part/{PartID}/thumb": {
            "get": op("Get a 180x120 JPEG thumbnail of an image part",
                      {"description": "JPEG", "content": {"image/jpeg": {"schema": {"type": "string",
                                                                                    "format": "binary"}}}},
                      tags="message", params=[ID, PART], fail=(400, 404)),
        },
        "/api/v1/message/{ID}/release": {
            "post": op("Release a message through the configured relay", OK, tags="message", params=[ID],
                       body=obj({"To": {**array(EMAIL), "minItems": 1}}, ("To",)),
                       body_required=True,
                       fail=(400, 403, 404, 502)),
        },
        "/api/v1/message/{ID}/html-check": {
            "get": op("Check the HTML against the email clients of the caniemail data set",
                      json_response("Mailpit's HTMLCheckResponse", ref("HTMLCheckResponse")), tags="other",
                      params=[ID, *LATEST], fail=(400, 404)),
        },
        "/api/v1/message/{ID}/link-check": {
            "get": op("Check every link of a message (403 for a request from a web page of another site)",
                      json_response("Each link with its HTTP status", ref("LinkCheckResponse")), tags="other",
                      params=[ID, *LATEST, query("follow", {"type": "string", "enum": ["true", "false"]},
                                                 "Follow redirects")], fail=(400, 403, 404)),
        },
        "/api/v1/message/{ID}/sa-check": {
            "get": op("SpamAssassin check through spamd (--spamassassin HOST:PORT; without it Error says how to enable it)",
                      json_response("Mailpit's SpamAssassin result", ref("SpamAssassinResponse")), tags="other",
                      params=[ID, *LATEST], fail=(400, 404)),
        },
        "/api/v1/send": {
            "post": op("Send a message (stored as received)", json_response("The new message's ID",
                                                                             ref("SendMessageConfirmation")),
                       tags="message", body=ref("SendRequest"), fail=(400, 413, 507), body_required=True),
        },
        "/api/v1/tags": {
            "get": op("List tags", json_response("Tag names", TAG_NAMES), tags="tags"),
            "put": op("Set the tags of messages (replacing theirs)", OK, tags="tags",
                      body=obj({"IDs": array(STR), "Tags": TAG_NAMES}),
                      body_required=True),
        },
        "/api/v1/tags/{Tag}": {
            "put": op("Rename a tag", OK, tags="tags", params=[TAG],
                      body=obj({"Name": TAG_NAME}, ("Name",)), body_required=True),
            "delete": op("Remove a tag from every message (400 for a tag no message carries)", OK, tags="tags",
                         params=[TAG]),
        },
        "/api/v1/info": {"get": op("Application information", json_response("Figures", ref("AppInformation")),
                                   tags="application")},
        "/api/v1/webui": {"get": op("Web UI configuration", json_response("Settings", ref("WebUIConfiguration")),
                                    tags="application")},
        "/api/v1/chaos": {
            "get": op("Get the chaos triggers (400 unless started with --chaos)",
                      json_response("Triggers", ref("ChaosTriggers")), tags="testing"),
            "put": op("Set the chaos triggers (omitted ones reset to 0%)",
                      json_response("Triggers", ref("ChaosTriggers")), tags="testing", body=ref("ChaosTriggers")),
        },
        "/api/v1/wait": {
            "get": op("Wait until messages matching a search have arrived (mailnest; at most 80% of "
                      "--max-connections wait at once, more get 503 with Retry-After)",
                      json_response("The matching messages", ref("MessagesSummary")), tags="mailnest",
                      params=[query("query", STR), MAILBOX, query("count", {"type": "integer", "minimum": 1,
                                                                             "maximum": 1000}),
                              query("timeout", {"type": "number", "minimum": 0, "maximum": 300})],
                      fail=(400, 408, 503), stream=True),
        },
        "/api/v1/mailboxes": {
            "get": op("Mailboxes (envelope recipients) with counts (mailnest)",
                      json_response("Mailboxes", array(ref("Mailbox"))), tags="mailnest"),
            "post": op("Make a mailbox on demand: a throwaway random domain with its own retention and webhook, "
                       "for test runs sharing a server (mailnest)",
                       json_response("The new mailbox", ref("MailboxOnDemand")), ok_code="201", tags="mailnest",
                       body=ref("NewMailboxOnDemand"), fail=(400, 409, 413)),
        },
        "/api/v1/mailboxes/{Domain}": {
            "get": op("A mailbox on demand, with its counts (mailnest)",
                      json_response("The mailbox", ref("MailboxOnDemand")), tags="mailnest", params=[DOMAIN],
                      fail=(404,)),
            "delete": op("Remove a mailbox on demand and its mail (mailnest)",
                         json_response("What went", ref("MailboxOnDemandDeleted")), tags="mailnest",
                         params=[DOMAIN], fail=(404,)),
        },
        "/api/v1/folders": {"get": op("INBOX (delivered mail), then every folder IMAP clients made, with counts; "
                                      "list a folder's messages with ?query=folder:NAME (mailnest)",
                                      json_response("Folders", ref("Folders")), tags="mailnest")},
        "/api/v1/events": {"get": op("Live events as Server-Sent Events (mailnest)",
                                     {"description": "text/event-stream of {Type, Data}",
                                      "content": {"text/event-stream": {"schema": STR}}},
                                     tags="events", fail=(403,), stream=True)},
        "/api/events": {"get": op("Live events over a websocket (Mailpit)",
                                  {"description": "Upgraded to a websocket"}, ok_code="101", tags="events",
                                  fail=(403,), stream=True)},
        "/api/v1/openapi.json": {"get": op("This document", json_response("OpenAPI 3.0", {"type": "object"}),
                                           tags="application")},
        "/api/v1/swagger.json": {"get": op("This document, where Mailpit serves its own",
                                           json_response("OpenAPI 3.0", {"type": "object"}), tags="application")},
        "/view/{ID}.html": {"get": op("The message's own HTML, cid: references pointing at its parts (Mailpit's "
                                      "testing route; served under a CSP sandbox without scripts, nothing remote "
                                      "unless remote=1)", HTML, tags="testing",
                                      params=[ID, *LATEST, query("embed", {"type": "string", "enum": ["1"]},
                                                                 '1: every link gets target="_blank" '
                                                                 'rel="noreferrer noopener"'), REMOTE],
                                      responses={"200": HTML, "400": text_response("Bad query"),
                                                 "404": text_response("Not found")})},
        "/view/{ID}.preview.html": {"get": op("The message's HTML, sanitized (the web UI's preview)", HTML,
                                              tags="web UI", params=[ID, REMOTE],
                                              responses={"200": HTML, "404": HTML})},
        "/view/{ID}": {"get": op("Open the web UI at this message (latest: the newest, or the newest matching "
                                 "query)", UI_REDIRECT, tags="web UI", params=[ID, *LATEST],
                                 responses={"302": UI_REDIRECT, "400": text_response("Bad query")})},
        "/search": {"get": op("Open the web UI at this search", UI_REDIRECT, tags="web UI",
                              params=[query("q", STR, "The search (mailnest's search language)")],
                              responses={"302": UI_REDIRECT})},
        "/metrics": {"get": op("Prometheus metrics (text exposition format)", text_response("Metrics"),
                               tags="application", fail=())},
        "/view/{ID}.txt": {"get": op("The message's text (web UI)", text_response("Text"), tags="testing",
                                     params=[ID], responses={"200": text_response("Text"),
                                                              "404": text_response("Not found")})},
        "/view/{ID}.json": {"get": op("What the preview blocked and the links it holds (web UI)",
                                      json_response("Preview facts", obj({"ID": STR, "RemoteImages": INT,
                                                                          "Links": array(STR)})),
                                      tags="web UI", params=[ID], fail=(404,))},
        "/": {"get": op("The web UI", HTML, tags="web UI", fail=())},
        "/static/{path}": {"get": op("The web UI's files", {"description": "A file", "content": {
            "*/*": {"schema": {"type": "string", "format": "binary"}}}}, tags="web UI", params=[
            in_path("path", "File path")], responses={
                "200": {"description": "A file", "content": {"*/*": {"schema": {"type": "string",
                                                                                 "format": "binary"}}}},
                "304": {"description": "Not modified"}, "404": text_response("Not found")})},
        "/livez": {"get": op("Liveness", OK, tags="health", fail=())},
        "/readyz": {"get": op("Readiness", OK, tags="health", fail=())},
        # MailHog
        "/api/v2/messages": {"get": op("List messages (MailHog)", json_response("MailHog page", ref("MailHogMessages")),
                                       tags="mailhog", params=[MH_START, MH_LIMIT])},
        "/api/v2/search": {"get": op("Search messages (MailHog)", json_response("MailHog page",
                                                                               ref("MailHogMessages")),
                                     tags="mailhog", params=[
                                         query("kind", {"type": "string", "enum": ["from", "to", "containing"]},
                                               required=True),
                                         query("query", {"type": "string", "pattern": r"^[^\x00]*\S[^\x00]*$"},
                                               required=True),
                                         MH_START, MH_LIMIT])},
        "/api/v2/jim": {
            "get": op("Jim's settings (404 when Jim is not invited)", json_response("Jim", ref("JimConfig")),
                      tags="mailhog", fail=(404,)),
            "post": op("Invite Jim (MailHog's chaos monkey; 409 when he is already there)", EMPTY, ok_code="201",
                       tags="mailhog", body=ref("JimConfig"), fail=(400, 409)),
            "put": op("Change Jim's settings", EMPTY, tags="mailhog", body=ref("JimConfig"), fail=(400, 404)),
            "delete": op("Send Jim away", EMPTY, tags="mailhog", fail=(404,)),
        },
        "/api/v2/outgoing-smtp": {"get": op("Outgoing servers (the configured relay)",
                                            json_response("By name", {"type": "object"}), tags="mailhog")},
        "/api/v2/websocket": {"get": op("New messages over a websocket, in MailHog's shape",
                                        {"description": "Upgraded to a websocket"}, ok_code="101", tags="mailhog",
                                        fail=(403,), stream=True)},
        "/api/v1/messages/{ID}": {
            "get": op("Get a message (MailHog)", json_response("MailHog message", ref("MailHogMessage")),
                      tags="mailhog", params=[in_path("ID", "Message ID")], fail=(404,)),
            "delete": op("Delete a message (MailHog)", EMPTY, tags="mailhog", params=[in_path("ID", "Message ID")],
                         fail=(404, 507)),
        },
        "/api/v1/messages/{ID}/download": {
            "get": op("Download a message (MailHog)", {"description": "message/rfc822", "content": {
                "message/rfc822": {"schema": {"type": "string", "format": "binary"}}}}, tags="mailhog",
                      params=[in_path("ID", "Message ID")], fail=(404,)),
        },
        "/api/v1/messages/{ID}/mime/part/{Part}/download": {
            "get": op("Download a top-level MIME part (MailHog; always as an attachment, the body as in the message, "
                      "none of the part's own header fields)", BINARY, tags="mailhog",
                      params=[in_path("ID", "Message ID"), in_path("Part", "0-based index")], fail=(404,)),
        },
        "/api/v1/messages/{ID}/release": {
            "post": op("Release a message (MailHog; through the configured relay)", EMPTY, tags="mailhog",
                       params=[in_path("ID", "Message ID")],
                       body=obj({"Email": EMAIL, "Host": STR, "Port": STR, "Username": STR, "Password": STR,
                                 "Mechanism": STR}, ("Email",)),
                       fail=(400, 403, 404, 502), body_required=True),
        },
    }


def document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {"title": "mailnest API", "version": __version__,
                 "description": "Mailpit's API v1 (same paths, fields and status codes), MailHog's API, and "
                                "mailnest's additions. Errors are JSON {\"Error\": \"reason\"}."},
        "paths": paths(),
        "components": {"schemas": SCHEMAS},
    }


class OpenApi:
    def __init__(self) -> None:
        self._document = document()

    def routes(self) -> list[Route]:
        return [
            Route("/api/v1/openapi.json", self.serve, methods=["GET"]),
            Route("/api/v1/swagger.json", self.serve, methods=["GET"]),
        ]

    async def serve(self, request: Request) -> Response:
        return JSONResponse(self._document)
