"""The MCP tools: list and search mail, read one message, wait for one, delete, send.

`build_server(connect)` gives an `MCPServer` (the official SDK's) whose tools reach mailnest through
`connect(ctx)`, a `MailApi` for the request at hand: the stdio server connects to one URL, the Streamable HTTP
endpoint to the API of the server it is mounted in, with the caller's own credentials. Whatever goes wrong
reaches the agent as a tool error (`is_error`) whose text says what to change, never as a traceback.
"""

from __future__ import annotations

import email.utils
import logging
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from mailnest import __version__
from mailnest.client import MailnestError, NotFoundError, QueryError, ServerUnavailableError

from . import shapes
from .backend import MAX_WAIT_COUNT, MailApi, WaitTimeout

Connect = Callable[[Context], MailApi]

INSTRUCTIONS = """\
mailnest captures the mail an application under test sends (nothing is delivered anywhere). Use these tools to \
read it: search_messages to list or find mail, get_message for one message's text, links and one-time codes, \
wait_for_message to block until an expected message arrives (start it before triggering the mail, or keep \
only_new false), delete_messages to clean up, send_message to put a message in. Queries use mailnest's search \
language (Mailpit's): words match anywhere; to:, from:, subject:, cc:, mailbox:, tag:, is:read/is:unread, \
has:attachment, before:/after: a date, larger:/smaller: a size; quote phrases; a leading - negates a term."""

_QUERY_HELP = ("Examples: 'subject:\"Reset your password\"', 'to:alice@example.com is:unread', 'from:noreply "
               "-tag:old'. See the server's README for every term.")

Query = Annotated[str, Field(description="A search in mailnest's language, e.g. 'to:alice@example.com "
                                         "subject:welcome'; empty for every message", max_length=4000)]
Mailbox = Annotated[str, Field(description="Only mail for this envelope recipient address; empty for all mail",
                               max_length=998)]
MaxChars = Annotated[int, Field(description="Cut each body to this many characters (truncated says when)",
                                ge=100, le=1_000_000)]
CodePattern = Annotated[str, Field(description="A regular expression for one-time codes; with a group, the "
                                               "group is the code (e.g. 'code: (\\w+)'); empty for 4 to 8 digits",
                                   max_length=500)]


def _code_pattern(pattern: str) -> str | None:
    if not pattern:
        return None
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ToolError(f"code_pattern {pattern!r} is not a regular expression: {exc}") from None
    return pattern


def _address(text: str, what: str) -> dict[str, str]:
    """'Jane <jane@example.com>' or 'jane@example.com' -> the send API's {Email, Name}."""
    name, address = email.utils.parseaddr(text)
    if "@" not in address:
        raise ToolError(f"{what}: {text!r} is not an e-mail address such as 'jane@example.com' or "
                        "'Jane Doe <jane@example.com>'")
    return {"Email": address, "Name": name}


@asynccontextmanager
async def _calling(connect: Connect, ctx: Context) -> AsyncIterator[MailApi]:
    """The API for one tool call; mailnest's errors become tool errors that say what to do."""
    api = connect(ctx)
    try:
        async with api:
            yield api
    except ToolError:
        raise
    except QueryError as exc:
        raise ToolError(f"{exc}. {_QUERY_HELP}") from None
    except NotFoundError as exc:
        if "/api/v1/message/" in str(exc):
            raise ToolError(f"{exc.reason or exc}: no such message (it may have been deleted); search_messages "
                            "lists the IDs there are") from None
        raise ToolError(f"{api.base_url} has no mailnest API ({exc}); check the URL the MCP server was given "
                        "(the base URL of the web UI, e.g. http://127.0.0.1:8025/)") from None
    except ServerUnavailableError as exc:
        raise ToolError(str(exc)) from None
    except (ValueError, KeyError, TypeError) as exc:  # JSON that is not the API's: another server at that URL
        raise ToolError(f"{api.base_url} did not answer as mailnest's API does ({type(exc).__name__}: {exc}); "
                        "check the URL the MCP server was given") from None
    except MailnestError as exc:
        if exc.status == 401:
            raise ToolError("mailnest asks for a login (it runs with --http-auth-file): give the MCP server "
                            "credentials, e.g. --url http://USER:PASSWORD@HOST:PORT or MAILNEST_MCP_USER and "
                            "MAILNEST_MCP_PASSWORD") from None
        raise ToolError(str(exc)) from None


def build_server(connect: Connect, *, target: str = "") -> MCPServer:
    """The MCP server with mailnest's tools; `target` names the mailnest in the server's description."""
    # The SDK's constructor calls logging.basicConfig (an INFO handler on the root logger when it has none): in
    # a process that embeds mailnest that is the application's to decide, so the root logger is put back.
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server: MCPServer = MCPServer(
        "mailnest", title="mailnest test mail", version=__version__, instructions=INSTRUCTIONS,
        description=f"Test mail captured by mailnest{' at ' + target if target else ''}", log_level="WARNING",
    )
    root.handlers[:] = handlers
    root.setLevel(level)
    read_only = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    @server.tool(title="Search or list messages", annotations=read_only)
    async def search_messages(
        ctx: Context,
        query: Query = "",
        mailbox: Mailbox = "",
        start: Annotated[int, Field(description="Skip this many newer matches (paging)", ge=0)] = 0,
        limit: Annotated[int, Field(description="At most this many messages", ge=1, le=1000)] = 20,
    ) -> shapes.MessageList:
        """List captured messages, newest first, optionally only those matching a search query. Answers
        summaries (ID, subject, sender, recipients, time, snippet); read one with get_message."""
        async with _calling(connect, ctx) as api:
            page = await (api.search(query, mailbox=mailbox or None, start=start, limit=limit) if query.strip()
                          else api.messages(mailbox=mailbox or None, start=start, limit=limit))
        return shapes.page(page)

    @server.tool(title="Read one message", annotations=read_only)
    async def get_message(
        ctx: Context,
        id: Annotated[str, Field(description="The message ID from search_messages, or 'latest' for the newest "
                                             "message", pattern=r"^[A-Za-z0-9_.-]+$", max_length=200)] = "latest",
        include_html: Annotated[bool, Field(description="Also return the HTML source")] = False,
        max_chars: MaxChars = 20_000,
        code_pattern: CodePattern = "",
    ) -> shapes.MessageDetail:
        """Read one message in full: the text body, the HTML body as text, every header, the links in it
        (sign-up and reset links) and the one-time codes in it (4 to 8 digits, or code_pattern)."""
        pattern = _code_pattern(code_pattern)
        async with _calling(connect, ctx) as api:
            mail = await api.get(id)
        return shapes.detail(mail, max_chars=max_chars, include_html=include_html, code_pattern=pattern)

    @server.tool(title="Wait for a message", annotations=read_only)
    async def wait_for_message(
        ctx: Context,
        query: Query = "",
        mailbox: Mailbox = "",
        timeout: Annotated[float, Field(description="Give up after this many seconds", ge=0, le=300)] = 30,
        count: Annotated[int, Field(description="How many messages to wait for", ge=1, le=100)] = 1,
        only_new: Annotated[bool, Field(description="True: wait for messages that arrive after this call "
                                                    "starts; false: messages already there count too")] = True,
        max_chars: MaxChars = 20_000,
        code_pattern: CodePattern = "",
    ) -> shapes.WaitResult:
        """Block until a message matching the query arrives (the server wakes the wait as soon as it is stored,
        no polling), then return it in full as get_message does. Call it before the action that sends the mail,
        or with only_new false once the action is done."""
        pattern = _code_pattern(code_pattern)
        mailbox_or_none = mailbox or None
        async with _calling(connect, ctx) as api:
            already = await api.matching(query.strip(), mailbox=mailbox_or_none) if only_new else 0
            wanted = already + count
            if wanted > MAX_WAIT_COUNT:
                raise ToolError(f"{already} messages already match; a wait for new ones needs fewer than "
                                f"{MAX_WAIT_COUNT - count + 1}: narrow the query, or delete old mail first")
            try:
                found = await api.wait_page(query.strip(), count=wanted, timeout=timeout, mailbox=mailbox_or_none)
            except WaitTimeout:
                raise ToolError(await _timed_out(api, query, mailbox, timeout, count, only_new)) from None
            mails = [await api.get(s.id) for s in found.messages[:count]]
        return shapes.WaitResult(messages=[shapes.detail(m, max_chars=max_chars, include_html=False,
                                                         code_pattern=pattern) for m in mails])

    @server.tool(title="Delete messages", annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True,
                                                                     open_world_hint=False))
    async def delete_messages(
        ctx: Context,
        ids: Annotated[list[str], Field(description="Delete these message IDs",
                                        max_length=1000)] = [],  # noqa: B006
        query: Annotated[str, Field(description="Delete every message matching this search",
                                    max_length=4000)] = "",
        all: Annotated[bool, Field(description="Delete every message")] = False,
    ) -> shapes.DeleteResult:
        """Delete messages: the given IDs, or every message matching a query, or every message (all true).
        Give exactly one of the three."""
        chosen = [name for name, given in (("ids", bool(ids)), ("query", bool(query.strip())), ("all", all))
                  if given]
        if len(chosen) != 1:
            raise ToolError("give exactly one of ids (a list of message IDs), query (a search) or all=true; "
                            f"got {' and '.join(chosen) or 'none'}")
        async with _calling(connect, ctx) as api:
            if ids:
                await api.delete(ids)
                return shapes.DeleteResult(deleted=len(set(ids)), scope=f"{len(set(ids))} message ID(s)")
            if all:
                matched = await api.matching("", mailbox=None)
                await api.delete_all()
                return shapes.DeleteResult(deleted=matched, scope="every message")
            matched = await api.matching(query.strip(), mailbox=None)
            await api.delete(query=query.strip())
            return shapes.DeleteResult(deleted=matched, scope=f"messages matching {query.strip()!r}")

    @server.tool(title="Send a message", annotations=ToolAnnotations(destructive_hint=False,
                                                                    open_world_hint=False))
    async def send_message(
        ctx: Context,
        sender: Annotated[str, Field(description="From: 'jane@example.com' or 'Jane <jane@example.com>'",
                                     min_length=3, max_length=998)],
        to: Annotated[list[str], Field(description="Recipient addresses", min_length=1, max_length=1000)],
        subject: Annotated[str, Field(description="The subject line", max_length=998)] = "",
        text: Annotated[str, Field(description="The plain-text body")] = "",
        html: Annotated[str, Field(description="An HTML body")] = "",
        cc: Annotated[list[str], Field(description="Cc addresses", max_length=1000)] = [],  # noqa: B006
        bcc: Annotated[list[str], Field(description="Bcc addresses (envelope only)",
                                        max_length=1000)] = [],  # noqa: B006
        headers: Annotated[dict[str, str], Field(description="Extra headers, e.g. {'X-Campaign': 'spring'}"
                                                 )] = {},  # noqa: B006
        tags: Annotated[list[str], Field(description="Tags to file it under", max_length=100)] = [],  # noqa: B006
    ) -> shapes.SendResult:
        """Store a new message in mailnest as if it had been sent to it (mailnest's send API; nothing is
        delivered anywhere). Answers the new message's ID."""
        body = {
            "From": _address(sender, "sender"),
            "To": [_address(a, "to") for a in to],
            "Cc": [_address(a, "cc") for a in cc],
            "Bcc": [_address(a, "bcc")["Email"] for a in bcc],
            "Subject": subject, "Text": text, "HTML": html, "Headers": headers, "Tags": tags,
        }
        async with _calling(connect, ctx) as api:
            return shapes.SendResult(id=await api.send_message(body))

    return server


async def _timed_out(api: MailApi, query: str, mailbox: str, timeout: float, count: int, only_new: bool) -> str:
    """What a wait that ended without its messages tells the agent: what it waited for and what is there."""
    what = f"{count} {'new ' if only_new else ''}message{'s' if count != 1 else ''}"
    what += f" matching {query.strip()!r}" if query.strip() else ""
    where = f"mailbox {mailbox!r}" if mailbox else "all mail"
    newest = await api.messages(mailbox=mailbox or None, limit=5)
    lines = [f"no {what} arrived in {where} within {timeout:g}s."]
    if newest.messages:
        lines.append("The newest messages there are:")
        lines.extend(f"  - {s.id}: {s}" for s in newest.messages)
        lines.append("If one of them is the one expected, the query does not match it: check it with "
                     "search_messages, or wait with only_new false.")
    else:
        lines.append("There is no mail there at all: check that the application sends to this mailnest's SMTP "
                     "port, and the mailbox address.")
    return "\n".join(lines)
