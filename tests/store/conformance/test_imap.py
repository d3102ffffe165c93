"""The IMAP part of the Store protocol on every backend: views per login, \\Recent marks, folders and their
FolderError rules, subscriptions, flags, APPEND, COPY, MOVE, EXPUNGE, and the events each publishes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailnest.models import Envelope
from mailnest.store.base import INBOX, FolderError, FolderInfo, Store

from .conftest import Events

pytestmark = pytest.mark.anyio

MESSAGE = b"From: a@example.com\r\nSubject: hello\r\n\r\nbody\r\n"
ALICE, BOB = "alice@example.com", "bob@example.com"


async def deliver(store: Store, *rcpts: str, raw: bytes = MESSAGE) -> int:
    return (await store.add(raw, Envelope("a@example.com", rcpts))).uid


async def test_views_per_login_and_the_catch_all(store: Store) -> None:
    one = await deliver(store, ALICE)
    two = await deliver(store, BOB, ALICE)
    three = await deliver(store, BOB, raw=MESSAGE + b"more\r\n")
    assert (await store.imap_view(ALICE, INBOX)).uids == [one, two]
    assert (await store.imap_view(BOB, INBOX)).uids == [two, three]
    everything = await store.imap_view(None, INBOX)
    assert everything.uids == [one, two, three]
    assert everything.sizes == [len(MESSAGE), len(MESSAGE), len(MESSAGE) + 6]
    assert everything.flags == [frozenset()] * 3 and everything.first_unseen == 0
    assert everything.recent_mark == 0 and everything.uidnext == three + 1
    assert all(isinstance(c, float) and c > 0 for c in everything.created)
    assert (await store.imap_view("carol@example.com", INBOX)).uids == []
    for login in (ALICE, None):
        with pytest.raises(FolderError):
            await store.imap_view(login, "Nope")
        with pytest.raises(FolderError):
            await store.imap_status(login, "Nope")
    status = await store.imap_status(ALICE, INBOX)
    assert (status.messages, status.unseen, status.recent, status.uidnext) == (2, 2, 2, three + 1)
    await store.imap_store_flags([one], "+", ["\\Seen"])
    assert (await store.imap_view(ALICE, INBOX)).first_unseen == 1
    await store.imap_store_flags([two], "+", ["\\Seen"])
    assert (await store.imap_view(ALICE, INBOX)).first_unseen == -1
    assert (await store.imap_status(ALICE, INBOX)).unseen == 0


async def test_uidnext_only_grows(store: Store) -> None:
    first = await store.imap_uidnext()
    uid = await deliver(store, ALICE)
    assert uid >= first and await store.imap_uidnext() == uid + 1
    await store.imap_expunge([uid])
    assert await store.imap_uidnext() == uid + 1  # an expunged uid is never given again
    assert await deliver(store, ALICE) == uid + 1


async def test_recent_marks(store: Store) -> None:
    one = await deliver(store, ALICE)
    two = await deliver(store, ALICE)
    assert await store.imap_claim_recent(ALICE, INBOX, one) == 0
    assert (await store.imap_status(ALICE, INBOX)).recent == 1
    assert await store.imap_claim_recent(ALICE, INBOX, two) == one
    assert await store.imap_claim_recent(ALICE, INBOX, one) == two  # a lower claim never lowers the mark
    view = await store.imap_view(ALICE, INBOX)
    assert view.recent_mark == two and all("\\Recent" not in f for f in view.flags)
    assert (await store.imap_status(ALICE, INBOX)).recent == 0
    # Marks are per login and per folder.
    assert (await store.imap_view(None, INBOX)).recent_mark == 0
    assert (await store.imap_status(None, INBOX)).recent == 2
    await store.imap_create_folder(ALICE, "Keep")
    await store.imap_copy([one], ALICE, "Keep")
    assert (await store.imap_status(ALICE, "Keep")).recent == 1
    three = await deliver(store, ALICE)
    assert (await store.imap_status(ALICE, INBOX)).recent == 1
    assert await store.imap_claim_recent(ALICE, INBOX, three) == two
    # A folder's mark goes with it when it is renamed, and away when it is deleted.
    copy = (await store.imap_view(ALICE, "Keep")).uids[-1]
    assert await store.imap_claim_recent(ALICE, "Keep", copy) == 0
    await store.imap_rename_folder(ALICE, "Keep", "Kept", "/")
    assert (await store.imap_view(ALICE, "Kept")).recent_mark == copy
    assert (await store.imap_status(ALICE, "Kept")).recent == 0
    await store.imap_delete_folder(ALICE, "Kept", "/")
    await store.imap_create_folder(ALICE, "Kept")
    assert (await store.imap_view(ALICE, "Kept")).recent_mark == 0


async def test_headers_and_raw_by_uid(store: Store) -> None:
    uid = await deliver(store, ALICE)
    big_header = b"X-Big: " + b"y" * 70_000 + b"\r\nSubject: big\r\n\r\nbody"
    big = await deliver(store, ALICE, raw=big_header)
    no_body = await deliver(store, ALICE, raw=b"Subject: only a header\r\n")
    bare = await deliver(store, ALICE, raw=b"Subject: bare\nX-A: b\n\nbody\n")
    heads = await store.imap_headers([uid, big, no_body, bare, 12345])
    assert heads == {uid: MESSAGE[:MESSAGE.index(b"\r\n\r\n") + 4], big: big_header[:-4],
                     no_body: b"Subject: only a header\r\n", bare: b"Subject: bare\nX-A: b\n\n"}
    assert await store.imap_raw([big, uid, 12345]) == {uid: MESSAGE, big: big_header}


async def test_folder_rules(store: Store, published: Events) -> None:
    await store.imap_create_folder(ALICE, "Work")
    await store.imap_create_folder(ALICE, "Work/2024")
    await store.imap_create_folder(ALICE, "Zeta")
    await store.imap_create_folder(None, "Shared")
    for name in ("Work", INBOX):
        with pytest.raises(FolderError, match="already exists"):
            await store.imap_create_folder(ALICE, name)
    assert await store.imap_folders(ALICE) == [INBOX, "Work", "Work/2024", "Zeta"]
    assert await store.imap_folders(BOB) == [INBOX]  # folders belong to a login
    assert await store.imap_folders(None) == [INBOX, "Shared"]
    await store.imap_create_folder(BOB, "Work")  # the same name for another login
    assert await store.imap_folder_exists(ALICE, "Work/2024") and await store.imap_folder_exists(BOB, INBOX)
    assert not await store.imap_folder_exists(BOB, "Work/2024") and not await store.imap_folder_exists(None, "Work")

    with pytest.raises(FolderError, match="INBOX"):
        await store.imap_delete_folder(ALICE, INBOX, "/")
    with pytest.raises(FolderError, match="doesn't exist"):
        await store.imap_delete_folder(ALICE, "Nope", "/")
    with pytest.raises(FolderError, match="has children"):
        await store.imap_delete_folder(ALICE, "Work", "/")
    with pytest.raises(FolderError):
        await store.imap_rename_folder(ALICE, INBOX, "Old", "/")
    with pytest.raises(FolderError, match="already exists"):
        await store.imap_rename_folder(ALICE, "Zeta", INBOX, "/")
    with pytest.raises(FolderError, match="already exists"):
        await store.imap_rename_folder(ALICE, "Zeta", "Work", "/")
    with pytest.raises(FolderError, match="doesn't exist"):
        await store.imap_rename_folder(ALICE, "Nope", "Other", "/")
    assert await store.imap_folders(ALICE) == [INBOX, "Work", "Work/2024", "Zeta"]  # refused: nothing changed
    assert await published.take() == []

    filed = await store.imap_append(ALICE, "Work/2024", MESSAGE, ["\\Seen"], None)
    await published.take(1)
    await store.imap_rename_folder(ALICE, "Work", "Jobs", "/")  # subfolders go with it
    (kind, fields), = await published.take(1)
    assert kind == "FolderRenamed" and fields["uids"] == {filed}
    assert await store.imap_folders(ALICE) == [INBOX, "Jobs", "Jobs/2024", "Zeta"]
    assert await store.imap_folders(BOB) == [INBOX, "Work"]  # another login's folder of that name stays
    assert (await store.imap_view(ALICE, "Jobs/2024")).uids == [filed]
    assert await store.imap_folder_exists(ALICE, "Jobs/2024") and not await store.imap_folder_exists(ALICE, "Work")
    await store.imap_rename_folder(ALICE, "Zeta", "Jobs/Zeta", "/")
    assert {kind for kind, _ in await published.take()} <= {"FolderRenamed"}  # an empty folder: no uid moved
    with pytest.raises(FolderError, match="has children"):
        await store.imap_delete_folder(ALICE, "Jobs", "/")

    filed_id = await store.id_for_uid(filed)
    await store.imap_delete_folder(ALICE, "Jobs/2024", "/")
    assert await published.take(1) == [("MessagesDeleted", {"ids": {filed_id}, "uids": {filed}})]
    assert await store.imap_raw([filed]) == {}  # the folder's messages went with it
    assert await store.imap_folders(ALICE) == [INBOX, "Jobs", "Jobs/Zeta"]
    await store.imap_delete_folder(ALICE, "Jobs/Zeta", "/")
    await store.imap_delete_folder(ALICE, "Jobs", "/")  # no children left
    assert await store.imap_folders(ALICE) == [INBOX]
    assert {(f.name, f.owner) for f in await store.folders()} == {("Shared", "*"), ("Work", BOB)}



async def test_folders_lists_every_folder_with_its_counts(store: Store) -> None:
    uid = await deliver(store, ALICE)
    await store.imap_create_folder(ALICE, "Archive")
    await store.imap_create_folder(ALICE, "Empty")
    await store.imap_create_folder(None, "Archive")
    await store.imap_copy([uid], ALICE, "Archive")
    await store.imap_append(ALICE, "Archive", MESSAGE, ["\\Seen"], None)
    await store.imap_append(None, "Archive", MESSAGE, [], None)
    assert await store.folders() == [FolderInfo("Archive", "*", 1, 1), FolderInfo("Archive", ALICE, 2, 1),
                                     FolderInfo("Empty", ALICE, 0, 0)]
    assert await store.count(query="folder:Archive") == 3
    assert await store.count(query="folder:Archive", mailbox=ALICE) == 2  # that login's folders only
    assert await store.count(query="folder:INBOX") == 1
    assert await store.count() == 1  # folders are not deliveries
    assert (await store.list(query="folder:Archive")).total == 1  # total is the delivered view


async def test_subscriptions(store: Store) -> None:
    await store.imap_subscribe(ALICE, "Later", True)  # a name that does not exist (RFC 3501 allows it)
    await store.imap_subscribe(ALICE, INBOX, True)
    await store.imap_subscribe(ALICE, "Later", True)  # twice: once
    await store.imap_subscribe(None, "Shared", True)
    assert await store.imap_subscriptions(ALICE) == [INBOX, "Later"]
    assert await store.imap_subscriptions(BOB) == []
    assert await store.imap_subscriptions(None) == ["Shared"]
    await store.imap_subscribe(ALICE, "Later", False)
    await store.imap_subscribe(ALICE, "Never", False)
    assert await store.imap_subscriptions(ALICE) == [INBOX]


async def test_store_flags_modes(store: Store, published: Events) -> None:
    uid = await deliver(store, ALICE, BOB)
    other = await deliver(store, ALICE)
    await published.take(2)
    id_ = await store.id_for_uid(uid)
    result = await store.imap_store_flags([uid], "+", ["\\Seen", "\\Flagged", "$Work", "\\Recent"])
    assert result == {uid: frozenset({"\\Seen", "\\Flagged", "$Work"})}  # \\Recent is never stored
    changed = await published.take(2)
    assert ("ReadChanged", {"ids": {id_}, "uids": {uid}, "read": True}) in changed
    assert ("FlagsChanged", {"ids": {id_}, "uids": {uid}, "flags": {uid: result[uid]}}) in changed
    assert len(changed) == 2
    assert (await store.imap_view(BOB, INBOX)).flags == [result[uid]]  # flags belong to the message
    got = await store.get(id_ or "")
    assert got is not None and got.summary.read and set(got.flags) == set(result[uid])
    assert await store.imap_store_flags([uid], "+", ["\\Flagged"]) == {uid: result[uid]}
    assert await published.take() == []  # nothing changed, nothing published

    assert await store.set_read([id_ or ""], False) == [id_]  # the API's read state is \\Seen
    assert (await store.imap_view(None, INBOX)).flags[0] == frozenset({"\\Flagged", "$Work"})
    await published.take(1)
    assert (await store.imap_store_flags([uid], "=", ["\\Draft"]))[uid] == frozenset({"\\Draft"})
    changed = await published.take(1)
    assert [kind for kind, _ in changed] == ["FlagsChanged"]
    assert (await store.imap_store_flags([uid], "-", ["\\Draft", "\\Deleted"]))[uid] == frozenset()
    assert await store.imap_store_flags([uid + 100], "+", ["\\Seen"]) == {}
    both = await store.imap_store_flags([uid, other], "+", ["\\Seen"])
    assert both == {uid: frozenset({"\\Seen"}), other: frozenset({"\\Seen"})}
    assert await store.count(query="is:unread") == 0
    await store.imap_store_flags([uid, other], "-", ["\\Seen"])
    assert (await store.stats()).unread == 2


async def test_append(store: Store, published: Events) -> None:
    await store.imap_create_folder(ALICE, "Drafts")
    when = datetime(2024, 3, 5, 9, 0, tzinfo=UTC)
    delivered = await store.imap_append(ALICE, INBOX, MESSAGE, ["\\Flagged"], when)
    [(kind, fields)] = await published.take(1)
    assert kind == "MessageAdded" and fields["uid"] == delivered and fields["folder"] == ""
    view = await store.imap_view(ALICE, INBOX)
    assert view.uids == [delivered] and view.created == [when.timestamp()]
    assert view.flags == [frozenset({"\\Flagged"})]
    assert [s.uid for s in (await store.list(mailbox=ALICE)).messages] == [delivered]  # a delivery to the login
    [summary] = await store.summaries_by_uid([delivered])
    assert summary.created == when and not summary.read and summary.folder == ""
    got = await store.get(summary.id)
    assert got is not None and got.envelope.rcpt_tos == (ALICE,) and got.envelope.source == "imap"

    draft = await store.imap_append(ALICE, "Drafts", MESSAGE, ["\\Seen", "\\Draft"], None)
    draft_id = await store.id_for_uid(draft)
    assert await published.take(1) == [("MessagesFiled", {"ids": {draft_id}, "uids": {draft}, "folder": "Drafts"})]
    assert draft > delivered
    assert (await store.imap_view(ALICE, "Drafts")).flags == [frozenset({"\\Seen", "\\Draft"})]
    assert await store.count() == 1 and (await store.stats()).total == 1  # a folder is not a delivery
    [filed] = await store.summaries_by_uid([draft])
    assert filed.folder == "Drafts" and filed.read
    assert await store.raw(filed.id) == MESSAGE

    everyone = await store.imap_append(None, INBOX, MESSAGE, [], None)
    assert (await store.imap_view(None, INBOX)).uids == [delivered, everyone]
    assert (await store.imap_view(ALICE, INBOX)).uids == [delivered]
    for folder in ("Missing", "drafts"):
        with pytest.raises(FolderError, match="TRYCREATE"):
            await store.imap_append(ALICE, folder, MESSAGE, [], None)
    with pytest.raises(FolderError, match="TRYCREATE"):
        await store.imap_append(BOB, "Drafts", MESSAGE, [], None)  # another login's folder


async def test_copy_and_move_make_new_uids(store: Store, published: Events) -> None:
    first = await deliver(store, ALICE)
    await store.imap_create_folder(ALICE, "Keep")
    appended = await store.imap_append(ALICE, INBOX, MESSAGE, ["\\Flagged"], None)
    await published.take(2)
    sources = {s.id for s in (await store.list()).messages}

    pairs = await store.imap_copy([first, appended, 10**9], ALICE, "Keep")
    assert [old for old, _ in pairs] == [first, appended]  # missing uids are left out
    assert all(new > appended for _, new in pairs) and pairs[0][1] < pairs[1][1]
    [(kind, fields)] = await published.take(1)
    assert kind == "MessagesFiled" and fields["uids"] == {new for _, new in pairs} and fields["folder"] == "Keep"
    assert len(fields["ids"]) == 2 and not fields["ids"] & sources  # the copies' own ids
    keep = await store.imap_view(ALICE, "Keep")
    assert keep.uids == [new for _, new in pairs] and keep.flags[1] == frozenset({"\\Flagged"})
    assert await store.imap_raw([pairs[0][1]]) == {pairs[0][1]: MESSAGE}
    assert await store.count() == 2  # copies in a folder are not deliveries
    assert await store.count(query="folder:Keep hello") == 2  # and the copies are searchable

    await store.imap_store_flags([pairs[0][1]], "+", ["\\Seen"])  # a copy's flags are its own
    assert (await store.imap_view(ALICE, INBOX)).flags[0] == frozenset()
    await published.take(1)

    first_id = await store.id_for_uid(first)
    moved = await store.imap_copy([first], ALICE, "Keep", move=True)
    assert (await store.imap_view(ALICE, INBOX)).uids == [appended]
    changed = await published.take(2)
    assert changed[0] == ("MessagesDeleted", {"ids": {first_id}, "uids": {first}})
    assert changed[1][0] == "MessagesFiled" and changed[1][1]["uids"] == {moved[0][1]}
    assert await store.id_for_uid(first) is None

    back = await store.imap_copy([moved[0][1]], ALICE, INBOX)
    assert (await store.imap_view(ALICE, INBOX)).uids == [appended, back[0][1]]
    [(kind, fields)] = await published.take(1)
    assert kind == "MessageAdded" and fields["uid"] == back[0][1] and fields["folder"] == ""
    assert await store.count(mailbox=ALICE) == 2  # into INBOX is a delivery to the login
    with pytest.raises(FolderError, match="TRYCREATE"):
        await store.imap_copy([back[0][1]], ALICE, "Missing")
    with pytest.raises(FolderError, match="TRYCREATE"):
        await store.imap_copy([back[0][1]], BOB, "Keep", move=True)
    assert (await store.imap_view(ALICE, INBOX)).uids == [appended, back[0][1]]  # a refused move moves nothing


async def test_expunge(store: Store, published: Events) -> None:
    one = await deliver(store, ALICE)
    two = await deliver(store, ALICE)
    await published.take(2)
    two_id = await store.id_for_uid(two)
    assert await store.imap_expunge([two, 999]) == [two]
    assert await published.take(1) == [("MessagesDeleted", {"ids": {two_id}, "uids": {two}})]
    assert await store.imap_expunge([two]) == []
    assert await published.take() == []
    assert (await store.imap_view(ALICE, INBOX)).uids == [one]
    assert await store.count() == 1


async def test_copies_follow_the_order_asked(store: Store) -> None:
    first = await deliver(store, ALICE)
    second = await deliver(store, ALICE)
    await store.imap_create_folder(ALICE, "Keep")
    pairs = await store.imap_copy([second, first], ALICE, "Keep")
    assert [old for old, _ in pairs] == [second, first] and pairs[0][1] < pairs[1][1]
    assert (await store.imap_view(ALICE, "Keep")).uids == [pairs[0][1], pairs[1][1]]


async def test_folder_terms_look_in_folders(store: Store) -> None:
    """`folder:` chooses folders itself; with a mailbox, that mailbox's delivered mail and its login's folders."""
    for_alice = await deliver(store, ALICE)
    for_bob = await deliver(store, BOB)
    for login, folder in ((ALICE, "Archive"), (None, "Archive"), (BOB, "Sent"), ("carol@other.test", "Archive")):
        await store.imap_create_folder(login, folder)
    alice_archive = (await store.imap_copy([for_alice], ALICE, "Archive"))[0][1]
    shared_archive = (await store.imap_copy([for_bob], None, "Archive"))[0][1]
    bob_sent = await store.imap_append(BOB, "Sent", MESSAGE, ["\\Seen"], None)
    carol_archive = await store.imap_append("carol@other.test", "Archive", MESSAGE, [], None)
    cases: list[tuple[str, str | None, set[int]]] = [
        ("folder:Archive", None, {alice_archive, shared_archive, carol_archive}),
        ("folder:Archive", ALICE, {alice_archive}),
        ("folder:Archive", "@other.test", {carol_archive}),
        ("folder:INBOX", None, {for_alice, for_bob}),
        ("folder:inbox", ALICE, {for_alice}),
        ("folder:Sent", BOB, {bob_sent}),
        ("folder:Sent", ALICE, set()),
        ("folder:Sent is:read", None, {bob_sent}),
        ("folder:Sent is:unread", None, set()),
        ("folder:Nope", None, set()),
        ("-folder:Archive", None, {for_alice, for_bob, bob_sent}),
        ("-folder:Archive", BOB, {for_bob, bob_sent}),
        ("hello folder:Archive", None, {alice_archive, shared_archive, carol_archive}),
        ('folder:"Archive"', None, {alice_archive, shared_archive, carol_archive}),
        ("hello", None, {for_alice, for_bob}),  # without a folder term: delivered mail only
    ]
    for query, mailbox, expected in cases:
        assert set(await store.uids(query=query, mailbox=mailbox)) == expected, (query, mailbox)
        assert await store.count(query=query, mailbox=mailbox) == len(expected), (query, mailbox)
        listed = await store.list(query=query, mailbox=mailbox)
        assert {s.uid for s in listed.messages} == expected, (query, mailbox)
    folders = {s.uid: s.folder for s in await store.summaries_by_uid([alice_archive, bob_sent, for_alice])}
    assert folders == {alice_archive: "Archive", bob_sent: "Sent", for_alice: ""}
