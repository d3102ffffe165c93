"""Every IMAP command end to end with imaplib against a real mailnest."""

from __future__ import annotations

import base64
import imaplib
import re
from collections.abc import Callable

import pytest

from mailnest.runtime import ServerThread

from .helpers import deliver, login, multipart
from .wire import append, raw


def test_greeting_capability_noop_logout(server: ServerThread) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.imap_port)
    assert client.welcome.startswith(b"* OK [CAPABILITY IMAP4rev1")
    typ, data = client.capability()
    caps = data[0].split()
    for cap in (b"IMAP4rev1", b"IDLE", b"MOVE", b"UIDPLUS", b"NAMESPACE", b"ENABLE", b"LITERAL+", b"ID",
                b"AUTH=PLAIN"):
        assert cap in caps
    assert client.noop()[0] == "OK"
    typ, data = client.logout()
    assert typ == "BYE"


def test_login_sees_own_mail_and_catch_all_sees_everything(server: ServerThread) -> None:
    deliver(server, to=("alice@example.com",), subject="for alice")
    deliver(server, to=("bob@example.com",), subject="for bob")
    deliver(server, to=("Alice@Example.com", "bob@example.com"), subject="for both")
    alice = login(server, "alice@example.com")
    assert alice.select("INBOX") == ("OK", [b"2"])
    subjects = alice.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (Subject)])")[1]
    assert [d[1].strip() for d in subjects if isinstance(d, tuple)] == [b"Subject: for alice", b"Subject: for both"]
    everyone = login(server, "*")
    assert everyone.select("INBOX") == ("OK", [b"3"])
    nobody = login(server, "carol@example.com")
    assert nobody.select("INBOX") == ("OK", [b"0"])


def test_authenticate_plain_with_and_without_initial_response(server: ServerThread) -> None:
    deliver(server, to=("alice@example.com",))
    client = imaplib.IMAP4("127.0.0.1", server.imap_port)
    typ, _ = client.authenticate("PLAIN", lambda _challenge: b"\0alice@example.com\0pw")
    assert typ == "OK"
    assert client.select("INBOX") == ("OK", [b"1"])
    client.logout()
    second = imaplib.IMAP4("127.0.0.1", server.imap_port)
    token = base64.b64encode(b"\0alice@example.com\0pw").decode()
    _untagged, done = raw(second, f"AUTHENTICATE PLAIN {token}")
    assert b"OK" in done
    _untagged, done = raw(second, "AUTHENTICATE PLAIN")
    assert b"BAD" in done  # only allowed before login


def test_commands_need_the_right_state(server: ServerThread) -> None:
    client = imaplib.IMAP4("127.0.0.1", server.imap_port)
    _, done = raw(client, "SELECT INBOX")
    assert re.match(rb"W\d+ BAD SELECT is not allowed in the not authenticated state", done)
    client.login("*", "x")
    _, done = raw(client, "FETCH 1 FLAGS")
    assert b"BAD FETCH is not allowed in the authenticated state" in done
    _, done = raw(client, "LOGIN a b")
    assert b"BAD" in done


def test_select_examine_status(server: ServerThread) -> None:
    for n in range(3):
        deliver(server, subject=f"m{n}")
    client = login(server)
    untagged, done = raw(client, "SELECT INBOX")
    text = b"".join(untagged)
    assert b"* 3 EXISTS" in text and b"* 3 RECENT" in text and b"[UNSEEN 1]" in text
    assert re.search(rb"UIDVALIDITY \d+", text) and b"[UIDNEXT 4]" in text
    assert b"[READ-WRITE]" in done
    client.state = "SELECTED"  # imaplib does not see a selection made through raw()
    client.store("1", "+FLAGS", "\\Seen")
    other = login(server)
    untagged, done = raw(other, "EXAMINE INBOX")
    assert b"* 0 RECENT" in b"".join(untagged) and b"[READ-ONLY]" in done
    assert b"NO" in raw(other, "STORE 1 +FLAGS (\\Deleted)")[1]
    status = other.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")[1][0]
    assert re.fullmatch(rb"INBOX \(MESSAGES 3 RECENT 0 UIDNEXT 4 UIDVALIDITY \d+ UNSEEN 2\)", status)
    assert other.status("Nope", "(MESSAGES)")[0] == "NO"


def test_folders_create_list_rename_delete_subscribe(server: ServerThread) -> None:
    client = login(server)
    assert client.create("Work/Projects")[0] == "OK"
    assert client.create("Work")[0] == "NO"  # made with its child
    assert client.create("Caf\u00e9".encode("utf-7").decode().replace("+", "&"))[0] == "OK"
    listed = client.list()[1]
    assert b'(\\HasChildren) "/" Work' in listed
    assert b'(\\HasNoChildren) "/" Work/Projects' in listed
    assert b'(\\HasNoChildren) "/" INBOX' in listed
    assert b'(\\HasNoChildren) "/" Caf&AOk-' in listed
    assert client.list('""', "%")[1] == [b'(\\HasNoChildren) "/" INBOX', b'(\\HasNoChildren) "/" Caf&AOk-',
                                       b'(\\HasChildren) "/" Work']
    assert client.list("Work/", "%")[1] == [b'(\\HasNoChildren) "/" Work/Projects']
    assert raw(client, 'LIST "" ""')[0] == [b'* LIST (\\Noselect) "/" ""\r\n']
    assert client.rename("Work", "Jobs")[0] == "OK"
    assert b'(\\HasNoChildren) "/" Jobs/Projects' in client.list()[1]
    assert client.rename("INBOX", "Old")[0] == "NO"
    assert client.delete("Jobs")[0] == "NO"  # has children
    assert client.delete("Jobs/Projects")[0] == "OK"
    assert client.delete("Jobs")[0] == "OK"
    assert client.delete("INBOX")[0] == "NO"
    assert client.subscribe("INBOX")[0] == "OK"
    assert client.subscribe("Later")[0] == "OK"
    assert client.lsub()[1] == [b'() "/" INBOX', b'() "/" Later']
    assert client.unsubscribe("Later")[0] == "OK"
    assert client.lsub()[1] == [b'() "/" INBOX']


def test_append_with_flags_and_date_then_fetch(server: ServerThread) -> None:
    client = login(server, "alice@example.com")
    message = multipart()
    typ, data = client.append("INBOX", "(\\Flagged $Label)", '"17-Jul-1996 02:44:25 -0700"', message)
    assert typ == "OK" and re.match(rb"\[APPENDUID \d+ 1\]", data[0])
    client.select("INBOX")
    typ, data = client.fetch("1", "(FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
    head, body = data[0]
    assert b"FLAGS (\\Flagged \\Recent $Label)" in head
    assert b'INTERNALDATE "17-Jul-1996 09:44:25 +0000"' in head
    assert f"RFC822.SIZE {len(message)}".encode() in head
    assert body == message
    assert client.append("Missing", None, None, message)[1][0].startswith(b"[TRYCREATE]")


def test_append_with_literal_plus(server: ServerThread) -> None:
    client = login(server)
    message = b"Subject: plus\r\n\r\nbody\r\n"
    client.send(b"A1 APPEND INBOX {%d+}\r\n" % len(message) + message + b"\r\n")
    assert client.readline().startswith(b"A1 OK [APPENDUID")


def test_fetch_items_and_sections(server: ServerThread) -> None:
    message = multipart()
    deliver(server, raw=message)
    client = login(server)
    client.select("INBOX")
    data = client.fetch("1", "(UID FLAGS ENVELOPE BODYSTRUCTURE BODY RFC822.SIZE INTERNALDATE)")[1][0]
    assert b"UID 1 FLAGS (\\Recent)" in data
    assert b'"Report" (("Reporter" NIL "reporter" "example.com"))' in data
    assert b'"alternative"' in data and b'("attachment" ("filename" "data.bin"))' in data
    _typ, data = client.fetch("1", "(BODY.PEEK[1.1] BODY.PEEK[1.2.MIME] BODY.PEEK[2]<0.4> BODY.PEEK[TEXT])")
    items = [d for d in data if isinstance(d, tuple)]
    assert items[0][0].endswith(b"BODY[1.1] {13}") and items[0][1] == b"Plain body.\r\n"
    assert b"Content-Type: text/html" in items[1][1]
    assert items[2][0].endswith(b"BODY[2]<0> {4}")
    assert client.fetch("1", "(FLAGS)")[1] == [b"1 (FLAGS (\\Recent))"]  # PEEK left \Seen alone
    data = client.fetch("1", "(RFC822.HEADER)")[1][0]
    assert data[1] == message[:message.index(b"\r\n\r\n") + 4]
    data = client.fetch("1", "(BODY[HEADER.FIELDS (SUBJECT)])")[1]
    assert data[0][0] == b"1 (FLAGS (\\Seen \\Recent) BODY[HEADER.FIELDS (SUBJECT)] {19}"
    assert data[0][1] == b"Subject: Report\r\n\r\n"
    assert b"BAD" in raw(client, "FETCH 2 FLAGS")[1]  # no message 2
    assert b"BAD" in raw(client, "FETCH 1 (BODY[MIME])")[1]


def test_store_flags_and_keywords(server: ServerThread) -> None:
    deliver(server)
    deliver(server)
    client = login(server)
    client.select("INBOX")
    assert client.store("1:2", "+FLAGS", "(\\Flagged $Work)")[1] == [
        b"1 (FLAGS (\\Flagged \\Recent $Work))", b"2 (FLAGS (\\Flagged \\Recent $Work))"]
    assert client.store("1", "-FLAGS", "($Work)")[1] == [b"1 (FLAGS (\\Flagged \\Recent))"]
    assert client.store("2", "FLAGS", "(\\Answered)")[1] == [b"2 (FLAGS (\\Answered \\Recent))"]
    assert client.store("1", "+FLAGS.SILENT", "(\\Draft)")[1] == [None]
    assert client.uid("STORE", "2", "+FLAGS", "(\\Seen)")[1] == [b"2 (UID 2 FLAGS (\\Answered \\Seen \\Recent))"]
    assert client.fetch("1:2", "(FLAGS)")[1] == [b"1 (FLAGS (\\Flagged \\Draft \\Recent))",
                                                   b"2 (FLAGS (\\Answered \\Seen \\Recent))"]


def test_search_keys(server: ServerThread) -> None:
    deliver(server, subject="Invoice 42", sender="billing@shop.example", body="Total due: 10 EUR\n")
    deliver(server, subject="Caf\u00e9 menu", to=("team@example.com",), body="Soup of the day\n")
    deliver(server, raw=multipart("Weekly report"))
    client = login(server)
    client.select("INBOX")
    client.store("2", "+FLAGS", "\\Seen")
    assert client.search(None, "ALL")[1] == [b"1 2 3"]
    assert client.search(None, "FROM", '"billing"')[1] == [b"1"]
    assert client.search(None, "OR", "SUBJECT", "invoice", "SUBJECT", "weekly")[1] == [b"1 3"]
    assert client.search(None, "NOT", "SEEN")[1] == [b"1 3"]
    assert client.search(None, "BODY", "soup")[1] == [b"2"]
    assert client.search(None, "TEXT", '"html body"')[1] == [b"3"]
    assert client.search(None, "HEADER", "To", "team")[1] == [b"2 3"]
    assert client.search(None, "LARGER", "400")[1] == [b"3"]
    assert client.search(None, "SINCE", "1-Jan-2020", "UNSEEN", "2:*")[1] == [b"3"]
    assert client.uid("SEARCH", "UID", "2:*")[1] == [b"2 3"]
    client.literal = "Café".encode()
    assert client.search("UTF-8", "SUBJECT")[1] == [b"2"]
    assert client.search(None, "CHARSET", "NO-SUCH-CHARSET", "ALL")[0] == "NO"
    assert b"BAD" in raw(client, "SEARCH FOO")[1]


def test_copy_move_expunge_uidplus(server: ServerThread) -> None:
    for n in range(4):
        deliver(server, subject=f"m{n}")
    client = login(server)
    client.create("Archive")
    client.select("INBOX")
    typ, data = client.copy("1:2", "Archive")
    assert typ == "OK" and re.match(rb"\[COPYUID \d+ 1:2 5:6\] Copy completed", data[0])
    untagged, done = raw(client, "UID MOVE 3 Archive")
    assert re.match(rb"\* OK \[COPYUID \d+ 3 7\]", untagged[0]) and untagged[1] == b"* 3 EXPUNGE\r\n"
    assert b"OK" in done
    client.store("1", "+FLAGS", "\\Deleted")
    client.store("2", "+FLAGS", "\\Deleted")
    untagged, done = raw(client, "UID EXPUNGE 2")
    assert untagged == [b"* 2 EXPUNGE\r\n"]
    assert client.expunge()[1] == [b"1"]
    assert client.select("INBOX")[1] == [b"1"]
    assert client.select("Archive")[1] == [b"3"]
    assert client.fetch("1:*", "(UID)")[1] == [b"1 (UID 5)", b"2 (UID 6)", b"3 (UID 7)"]
    assert client.copy("1", "Nowhere")[1][0].startswith(b"[TRYCREATE]")


def test_close_expunges_unselect_does_not(server: ServerThread) -> None:
    deliver(server)
    deliver(server)
    client = login(server)
    client.select("INBOX")
    client.store("1", "+FLAGS", "\\Deleted")
    assert raw(client, "UNSELECT")[1].split()[1] == b"OK"
    client.select("INBOX")
    assert client.close()[0] == "OK"
    assert client.select("INBOX")[1] == [b"1"]
    assert client.check()[0] == "OK"


def test_namespace_enable_id(server: ServerThread) -> None:
    client = login(server)
    assert raw(client, "NAMESPACE")[0] == [b'* NAMESPACE (("" "/")) NIL NIL\r\n']
    untagged, done = raw(client, "ENABLE CONDSTORE")
    assert untagged == [b"* ENABLED\r\n"] and b"OK" in done
    untagged, done = raw(client, 'ID ("name" "test" "version" NIL)')
    assert untagged == [b'* ID ("name" "mailnest")\r\n']


def test_idle_receives_new_mail(server: ServerThread) -> None:
    client = login(server)
    client.select("INBOX")
    client.send(b"I1 IDLE\r\n")
    assert client.readline().startswith(b"+ ")
    deliver(server)
    assert client.readline() == b"* 1 EXISTS\r\n"
    assert client.readline() == b"* 1 RECENT\r\n"
    client.send(b"DONE\r\n")
    assert client.readline().startswith(b"I1 OK")


def test_seen_is_the_api_read_state(make_server: Callable[..., ServerThread]) -> None:
    import httpx

    from mailnest.config import Listen

    server = make_server(http=Listen("127.0.0.1", 0))
    deliver(server)
    client = login(server)
    client.select("INBOX")
    with httpx.Client(base_url=server.http_url) as api:
        message_id = api.get("/api/v1/messages").json()["messages"][0]["ID"]
        client.store("1", "+FLAGS", "\\Seen")
        assert api.get("/api/v1/messages").json()["messages"][0]["Read"] is True
        assert api.put("/api/v1/messages", json={"IDs": [message_id], "Read": False}).status_code == 200
        assert client.noop()[1] and client.untagged_responses.get("FETCH") == [b"1 (FLAGS (\\Recent))"]
        api.request("DELETE", "/api/v1/messages", json={"IDs": [message_id]})
    _typ, _ = client.noop()
    assert client.untagged_responses.get("EXPUNGE") == [b"1"]


@pytest.mark.parametrize("user", ["*", "alice@example.com"])
def test_append_to_inbox_is_visible_to_the_login(server: ServerThread, user: str) -> None:
    client = login(server, user)
    assert append(client, "INBOX", b"Subject: x\r\n\r\ny\r\n").split()[1] == b"OK"
    assert client.select("INBOX")[1] == [b"1"]


def test_the_authenticate_hook_decides_logins(server: ServerThread) -> None:
    from mailnest.config import Listen
    from mailnest.imap.server import start_imap

    async def only_secret(user: str, password: str) -> bool:
        return password == "right"

    listener = server.call(start_imap(server.config, server.store, server.hub, Listen("127.0.0.1", 0),
                                      authenticate=only_secret))
    try:
        port = listener.sockets[0].getsockname()[1]
        client = imaplib.IMAP4("127.0.0.1", port)
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            client.login("alice@example.com", "wrong")
        assert client.login("alice@example.com", "right")[0] == "OK"
        token = base64.b64encode(b"\0bob@example.com\0wrong").decode()
        other = imaplib.IMAP4("127.0.0.1", port)
        assert b"NO [AUTHENTICATIONFAILED]" in raw(other, f"AUTHENTICATE PLAIN {token}")[1]
    finally:
        listener.close()
