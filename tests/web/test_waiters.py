"""`/api/v1/wait` never misses a message that matches its query: the waiters' prefilter only skips a re-count it
can prove useless. Each case starts a real long-poll (httpx) BEFORE its message is sent over SMTP, and expects the
answer within ~2 s of the message, not at the poll's timeout (where the waiter's own last count would find it)."""

from __future__ import annotations

import base64
import imaplib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import Listen
from mailnest.web.waiters import _needles
from tests.conftest import send

WAIT_TIMEOUT = 6.0  # a miss shows as an answer after this long
PROMPT = 2.0  # what a hit may take, counted from the message's 250
REGISTERED = 0.25  # time for the long-poll to register and make its first count before the message is sent


def _b64(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


@dataclass(frozen=True)
class Case:
    name: str
    headers: str  # header lines (CRLF-separated, without the final blank line)
    query: str = ""
    mailbox: str | None = None
    rcpts: tuple[str, ...] = ("rcpt@example.com",)
    body: str = "Hello there."

    def raw(self) -> bytes:
        head = self.headers if "\nFrom:" in "\n" + self.headers else "From: sender@example.com\r\n" + self.headers
        if "\nTo:" not in "\n" + head:
            head += "\r\nTo: " + ", ".join(self.rcpts)
        if "\nSubject:" not in "\n" + head:
            head += "\r\nSubject: no subject given"
        return (head + "\r\nMessage-ID: <" + self.name + "@waiters.test>\r\n\r\n" + self.body + "\r\n").encode()


CASES = [
    Case("case-subject", "Subject: HELLO World", "subject:hello"),
    Case("case-subject-upper-query", "Subject: hello world", "SUBJECT:WORLD"),
    Case("sharp-s-query-folded", "Subject: =?utf-8?q?Stra=C3=9Fe?= 12", "subject:STRASSE"),
    Case("sharp-s-subject-folded", "Subject: STRASSE 12", "subject:straße"),
    Case("encoded-word-b", "Subject: " + _b64("Grüße aus Köln"), 'subject:"GRÜSSE aus köln"'),
    Case("encoded-words-adjacent", "Subject: =?utf-8?q?Caf=C3=A9?= =?utf-8?q?_ouvert?=", 'subject:"café ouvert"'),
    Case("folded-subject", "Subject: quarterly\r\n   report\r\n\tready", 'subject:"quarterly report ready"'),
    Case("whitespace-collapsed", "Subject: two     words", 'subject:"two words"'),
    Case("nfkc-ligature", "Subject: \ufb01le report", 'subject:"file report"'),
    Case("nfkc-fullwidth", "Subject: \uff21\uff22\uff23 order", "subject:abc"),
    Case("short-needle", "Subject: ok go", "subject:ok"),
    Case("quoted-colon", "Subject: Re: status", 'subject:"re: status"'),
    Case("from-display-name", 'From: "Alice Example" <alice@example.com>\r\nSubject: hi', 'from:"alice example"'),
    Case("from-encoded-display-name", "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <j@example.com>\r\nSubject: x",
         "from:MÜLLER from:j@example"),
    Case("to-display-name", 'To: "Bob Builder" <bob@example.com>\r\nSubject: x', 'to:"bob builder" to:bob@example',
         rcpts=("bob@example.com",)),
    Case("cc-case", "Cc: Carol <CAROL@Example.COM>\r\nSubject: x", "cc:carol@example.com",
         rcpts=("rcpt@example.com", "carol@example.com")),
    Case("reply-to", "Reply-To: Replies <Replies@Letters.test>\r\nSubject: x", "reply-to:replies@letters"),
    Case("negations", "Subject: invoice 42", "subject:invoice -subject:draft !from:nobody -to:nobody"),
    Case("or-word", "Subject: this or that", "subject:this or subject:that"),
    Case("not-word", "Subject: do not reply", "subject:do not subject:reply"),
    Case("parentheses", "Subject: (draft) plan", "subject:(draft) subject:plan"),
    Case("bcc-only", "To: list@example.org\r\nSubject: x", "bcc:hidden@example.com",
         rcpts=("list@example.org", "hidden@example.com")),
    Case("bcc-only-mailbox", "To: list@example.org\r\nSubject: secret plan", "subject:secret",
         mailbox="Hidden@Example.com", rcpts=("list@example.org", "hidden@example.com")),
    Case("mailbox-case", "To: Dave <dave@example.com>\r\nSubject: x", mailbox="DAVE@example.COM",
         rcpts=("Dave@Example.COM",)),
    Case("domain-mailbox", "To: x@team.test\r\nSubject: x", mailbox="@team.test", rcpts=("x@team.test",)),
    Case("domain-mailbox-with-query", "To: x@team.test\r\nSubject: deploy done", "subject:deploy",
         mailbox="@Team.test", rcpts=("x@team.test",)),
    Case("domain-mailbox-bcc-only", "To: other@example.org\r\nSubject: x", "to:other",
         mailbox="@hidden.test", rcpts=("other@example.org", "secret@hidden.test")),
    Case("mailbox-field", "To: list@example.org\r\nSubject: x", "mailbox:hidden@example.com subject:x",
         rcpts=("list@example.org", "hidden@example.com")),
    Case("free-text", "Subject: x", "unicorn", body="a unicorn appears"),
    Case("message-id", "Subject: x", "message-id:<message-id@waiters.test>"),
    Case("tag-at-ingest", "X-Tags: urgent\r\nSubject: x", "tag:urgent subject:x"),
    Case("unread", "Subject: x", "is:unread subject:x"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    with ServerThread(Config(imap=Listen("127.0.0.1", 0))) as running:
        yield running


@pytest.fixture
def api(server: ServerThread) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.http_url, timeout=30) as client:
        assert client.delete("/api/v1/messages").status_code == 200  # each case starts from an empty store
        yield client


class Poll:
    """A `/api/v1/wait` long-poll in its own thread, from its own client."""

    def __init__(self, server: ServerThread, params: dict[str, object]) -> None:
        self.response: httpx.Response | None = None
        self.answered = 0.0
        self._thread = threading.Thread(target=self._run, args=(server.http_url, params), daemon=True)
        self._thread.start()
        time.sleep(REGISTERED)
        assert self.response is None, f"answered before anything was sent: {self.response.text}"

    def _run(self, url: str, params: dict[str, object]) -> None:
        with httpx.Client(base_url=url, timeout=WAIT_TIMEOUT + 10) as client:
            self.response = client.get("/api/v1/wait", params={"timeout": WAIT_TIMEOUT, **params})
        self.answered = time.monotonic()

    def result(self, since: float) -> tuple[httpx.Response, float]:
        self._thread.join(WAIT_TIMEOUT + 10)
        assert self.response is not None
        return self.response, self.answered - since


def _params(case: Case) -> dict[str, object]:
    params: dict[str, object] = {"query": case.query}
    if case.mailbox:
        params["mailbox"] = case.mailbox
    return params


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_a_wait_answers_as_soon_as_a_matching_message_arrives(server: ServerThread, api: httpx.Client,
                                                              case: Case) -> None:
    poll = Poll(server, _params(case))
    send(server, raw=case.raw(), to=list(case.rcpts))
    sent = time.monotonic()
    response, took = poll.result(sent)
    assert response.status_code == 200, response.text
    # The store itself finds the message (the wait's page is store.list of the same query and mailbox) ...
    assert [m["MessageID"] for m in response.json()["messages"]] == [f"{case.name}@waiters.test"]
    # ... and the waiter was told at once, not by its own last count at the timeout.
    assert took < PROMPT, f"answered {took:.1f}s after the message (timeout {WAIT_TIMEOUT}s): a missed re-count"


def test_a_wait_skips_nothing_it_should_not_and_still_times_out(server: ServerThread, api: httpx.Client) -> None:
    """The cases' opposite: a message that does not match leaves the wait to time out with 408."""
    poll = Poll(server, {"query": "subject:hello", "mailbox": "@team.test", "timeout": 1})
    send(server, subject="hello", to=["x@elsewhere.test"])
    send(server, subject="goodbye", to=["x@team.test"])
    response, _ = poll.result(time.monotonic())
    assert response.status_code == 408, response.text
    assert response.json()["Arrived"] == 0


def _latest_id(api: httpx.Client) -> str:
    return str(api.get("/api/v1/messages").json()["messages"][0]["ID"])


@pytest.mark.parametrize(("query", "change"), [
    ("is:read subject:later", lambda api, id_: api.put("/api/v1/messages", json={"IDs": [id_], "Read": True})),
    ("-is:unread", lambda api, id_: api.put("/api/v1/messages", json={"IDs": [id_], "Read": True})),
    ("tag:followup", lambda api, id_: api.put("/api/v1/tags", json={"IDs": [id_], "Tags": ["followup"]})),
    ("is:tagged subject:later", lambda api, id_: api.put("/api/v1/tags", json={"IDs": [id_], "Tags": ["x"]})),
])
def test_a_wait_answers_when_a_message_comes_to_match_after_it_arrived(server: ServerThread, api: httpx.Client,
                                                                       query: str, change: object) -> None:
    """Read flags and tags change after ingest: the change itself must wake the waiters that look at them."""
    send(server, subject="later")
    id_ = _latest_id(api)
    poll = Poll(server, {"query": query})
    assert change(api, id_).status_code == 200  # type: ignore[operator]
    changed = time.monotonic()
    response, took = poll.result(changed)
    assert response.status_code == 200, response.text
    assert [m["ID"] for m in response.json()["messages"]] == [id_]
    assert took < PROMPT, f"answered {took:.1f}s after the change (timeout {WAIT_TIMEOUT}s): a missed re-count"


@pytest.mark.parametrize("query", ["subject:a or subject:b", "subject:a OR subject:b", "(subject:a subject:b)",
                                   "subject:a -(subject:b)", "not subject:a", 'subject:"(a)"'])
def test_a_query_that_is_not_a_plain_conjunction_is_never_prefiltered(query: str) -> None:
    """Operators and groups may make a term optional: no text of such a query is taken as required."""
    assert _needles(query) == ()


def test_a_plain_conjunction_is_prefiltered_on_its_required_texts() -> None:
    assert _needles('Subject:"HELLO   World" -subject:draft from:Straße body') == (
        ("subject", "hello world"), ("from", "strasse"))


FILED = b"From: a@example.org\r\nTo: dave@example.com\r\nSubject: filed by hand\r\n\r\nhi\r\n"


@pytest.fixture
def imap(server: ServerThread, api: httpx.Client) -> Iterator[imaplib.IMAP4]:
    client = imaplib.IMAP4("127.0.0.1", server.imap_port, timeout=30)
    client.login("carol@example.com", "any")
    yield client
    client.logout()


@pytest.mark.parametrize(("params", "action"), [
    # Into INBOX: delivered mail in the login's mailbox, though no header names carol.
    ({"mailbox": "carol@example.com"}, "append INBOX"),
    ({"mailbox": "@example.com", "query": "subject:filed"}, "append INBOX"),
    ({"mailbox": "carol@example.com", "query": "subject:filed"}, "copy {folder} INBOX"),
    # Into a folder: no NEW event, an UPDATE one.
    ({"query": "folder:{folder} subject:filed"}, "append {folder}"),
    ({"query": "folder:{folder}", "mailbox": "carol@example.com"}, "append {folder}"),
], ids=["append-inbox", "append-inbox-domain", "copy-to-inbox", "append-folder", "append-folder-mailbox"])
def test_a_wait_answers_for_mail_that_imap_clients_file(server: ServerThread, api: httpx.Client,
                                                        imap: imaplib.IMAP4, params: dict[str, object],
                                                        action: str) -> None:
    folder = f"Filed{uuid.uuid4().hex[:8]}"  # folders and their mail outlive the delivered mail deleted per case
    assert imap.create(folder)[0] == "OK"
    params = {name: str(value).format(folder=folder) for name, value in params.items()}
    verb, *folders = action.format(folder=folder).split()
    if verb == "copy":
        assert imap.append(folders[0], None, None, FILED)[0] == "OK"
        assert imap.select(folders[0])[0] == "OK"
    poll = Poll(server, params)
    if verb == "copy":
        assert imap.copy("1:*", folders[1])[0] == "OK"
    else:
        assert imap.append(folders[0], None, None, FILED)[0] == "OK"
    filed = time.monotonic()
    response, took = poll.result(filed)
    assert response.status_code == 200, response.text
    assert [m["Subject"] for m in response.json()["messages"]] == ["filed by hand"]
    assert took < PROMPT, f"answered {took:.1f}s after IMAP filed the message: a missed re-count"
