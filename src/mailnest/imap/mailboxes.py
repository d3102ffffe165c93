"""Mailbox management commands: CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB, STATUS.

Functions of the session (they are its cmd_* methods); folders are stored per login in the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..store.base import INBOX
from . import listing
from .parser import Command
from .responses import untagged

if TYPE_CHECKING:
    from .session import Session

DELIMITER = "/"


async def create(session: Session, cmd: Command) -> tuple[str, str]:
    name = str(cmd.args["mailbox"]).rstrip(DELIMITER)
    if name == INBOX or not name:
        return "NO", "Mailbox already exists" if name else "Invalid mailbox name"
    if DELIMITER * 2 in name or name.startswith(DELIMITER):
        return "NO", "Invalid mailbox name"
    pieces = name.split(DELIMITER)
    for depth in range(1, len(pieces)):  # superior names are created too (RFC 3501 section 6.3.3)
        parent = DELIMITER.join(pieces[:depth])
        if parent != INBOX and not await session.store.imap_folder_exists(session.login, parent):
            await session.store.imap_create_folder(session.login, parent)
    await session.store.imap_create_folder(session.login, name)
    return "OK", "Create completed"


async def delete(session: Session, cmd: Command) -> tuple[str, str]:
    name = str(cmd.args["mailbox"])
    if session.selected is not None and session.selected.name == name:
        await session.unselect()
    await session.store.imap_delete_folder(session.login, name, DELIMITER)
    return "OK", "Delete completed"


async def rename(session: Session, cmd: Command) -> tuple[str, str]:
    await session.store.imap_rename_folder(session.login, str(cmd.args["mailbox"]), str(cmd.args["new"]), DELIMITER)
    return "OK", "Rename completed"


async def subscribe(session: Session, cmd: Command) -> tuple[str, str]:
    await session.store.imap_subscribe(session.login, str(cmd.args["mailbox"]), True)
    return "OK", "Subscribe completed"


async def unsubscribe(session: Session, cmd: Command) -> tuple[str, str]:
    await session.store.imap_subscribe(session.login, str(cmd.args["mailbox"]), False)
    return "OK", "Unsubscribe completed"


async def list_(session: Session, cmd: Command) -> tuple[str, str]:
    reference, pattern = cmd.args["reference"], cmd.args["pattern"]
    if pattern == "":
        await session.send(untagged(f'LIST (\\Noselect) "{DELIMITER}" ""'))
        return "OK", "List completed"
    if not isinstance(reference, str) or not isinstance(pattern, str):  # not modified UTF-7: matches nothing
        return "OK", "List completed"
    folders = await session.store.imap_folders(session.login)
    lines = [untagged(b"LIST (" + attrs.encode() + f') "{DELIMITER}" '.encode() + listing.mailbox_name(name))
             for name, attrs in listing.matching(folders, reference, pattern, DELIMITER)]
    await session.send(b"".join(lines))
    return "OK", "List completed"


async def lsub(session: Session, cmd: Command) -> tuple[str, str]:
    reference, pattern = cmd.args["reference"], cmd.args["pattern"]
    if not isinstance(reference, str) or not isinstance(pattern, str):  # not modified UTF-7: matches nothing
        return "OK", "Lsub completed"
    subscribed = await session.store.imap_subscriptions(session.login)
    found = listing.subscribed_matching(subscribed, reference, pattern, DELIMITER)
    await session.send(b"".join(untagged(f'LSUB ({attributes}) "{DELIMITER}" '.encode() + listing.mailbox_name(name))
                                for name, attributes in found))
    return "OK", "Lsub completed"


async def status(session: Session, cmd: Command) -> tuple[str, str]:
    name = str(cmd.args["mailbox"])
    status = await session.store.imap_status(session.login, name)
    values = {"MESSAGES": status.messages, "RECENT": status.recent, "UIDNEXT": status.uidnext,
              "UIDVALIDITY": session.store.uidvalidity, "UNSEEN": status.unseen}
    items = " ".join(f"{item} {values[item]}" for item in cmd.arg("items", tuple))
    await session.send(untagged(b"STATUS " + listing.mailbox_name(name) + f" ({items})".encode()))
    return "OK", "Status completed"
