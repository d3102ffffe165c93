"""The npm package `cypress-mailpit` (2.0.0), replayed: each of its Cypress commands as the HTTP request it makes
(read from the package's dist/src/MailpitCommands.js), sent with httpx to a real mailnest, and each test of the
package's own Cypress suite (cypress/e2e/mailpit.cy.ts) asserting what that suite asserts.

What `cy.request` does is reproduced: the URL exactly as the package builds it (`${MAILPIT_URL}/${isApi ? "api" :
""}${path}`, so the body routes are `//view/{ID}.txt` and `//view/{ID}.html`), Basic auth from the suite's
cypress.config.ts (admin/admin, which a server without accounts ignores), redirects followed, any status outside
2xx/3xx a failure whose message names the status and its reason ("400: Bad Request"), and a JSON body parsed as
JSON, any other body yielded as text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from mailnest import Config, ServerThread

AUTH = ("admin", "admin")  # MAILPIT_USERNAME / MAILPIT_PASSWORD in the package's cypress.config.ts


class CypressFailure(AssertionError):
    """What cy.request raises for a status outside 2xx/3xx (failOnStatusCode)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        super().__init__(f"{response.status_code}: {response.reason_phrase}\n{response.text}")


class CypressMailpit:
    """MailpitCommands of cypress-mailpit 2.0.0, one method per command, each the request the package sends."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url  # Cypress.expose("MAILPIT_URL"), without a trailing slash as documented
        self.http = httpx.Client(auth=AUTH, follow_redirects=True, timeout=30, headers={"Accept": "*/*"})

    def close(self) -> None:
        self.http.close()

    def mailpit_url(self, path: str, is_api: bool = True) -> str:
        return f"{self.base_url}/{'api' if is_api else ''}{path}"

    def request(self, method: str, url: str, *, body: Any = None, qs: dict[str, Any] | None = None) -> Any:
        """cy.request: fail on 4xx/5xx, yield the parsed JSON body or the text."""
        response = self.http.request(method, url, json=body, params=qs)
        if response.status_code >= 400:
            raise CypressFailure(response)
        if "json" in response.headers.get("content-type", ""):
            return response.json()
        return response.text

    # parent commands
    def get_all_mails(self, start: int = 0, limit: int = 50) -> Any:
        return self.request("GET", self.mailpit_url(f"/v1/messages?start={start}&limit={limit}"))

    def get_mail(self, message_id: str = "latest") -> Any:
        return self.request("GET", self.mailpit_url(f"/v1/message/{message_id}"))

    def send_mail(self, **options: Any) -> Any:
        body = {
            "Attachments": options.get("attachments", []),
            "Bcc": options.get("bcc", ["bcc@example.com"]),
            "Cc": options.get("cc", [{"Email": "cc@example.com", "Name": "CC"}]),
            "From": options.get("from_", {"Email": "from@example.com", "Name": "From"}),
            "HTML": options.get("htmlBody", "<p>hello from mailpit</p>"),
            "Headers": options.get("headers", {}),
            "ReplyTo": options.get("replyTo", [{"Email": "replyto@example.com", "Name": "ReplyTo"}]),
            "Subject": options.get("subject", "Hello Mailpit"),
            "Tags": options.get("tags", []),
            "Text": options.get("textBody", "hello from mailpit"),
            "To": options.get("to", [{"Email": "jane@example.com", "Name": "Jane"}]),
        }
        return self.request("POST", self.mailpit_url("/v1/send"), body=body)

    def search_emails(self, query: str, start: int = 0, limit: int = 50) -> Any:
        return self.request("GET", self.mailpit_url("/v1/search"),
                            qs={"query": query, "start": start, "limit": limit})

    def get_emails_by_subject(self, subject: str, start: int = 0, limit: int = 50) -> Any:
        return self.search_emails(f"subject:{subject}", start, limit)

    def get_emails_by_to(self, email: str, start: int = 0, limit: int = 50) -> Any:
        return self.search_emails(f"to:{email}", start, limit)

    def has_emails_by_search(self, query: str, timeout: float = 4.0, interval: float = 0.5) -> Any:
        return self.wait_for_condition(lambda: self.search_emails(query), lambda r: r["messages_count"] > 0,
                                       timeout, interval)

    def not_has_emails_by_search(self, query: str, timeout: float = 4.0, interval: float = 0.5) -> Any:
        return self.wait_for_condition(lambda: self.search_emails(query), lambda r: r["messages_count"] == 0,
                                       timeout, interval)

    def has_emails_by_subject(self, subject: str, timeout: float = 4.0, interval: float = 0.5) -> Any:
        return self.wait_for_condition(lambda: self.get_emails_by_subject(subject),
                                       lambda r: r["messages_count"] > 0, timeout, interval)

    def not_has_emails_by_subject(self, subject: str, timeout: float = 4.0, interval: float = 0.5) -> Any:
        return self.wait_for_condition(lambda: self.get_emails_by_subject(subject),
                                       lambda r: r["messages_count"] == 0, timeout, interval)

    def has_emails_by_to(self, email: str, timeout: float = 4.0, interval: float = 0.5) -> Any:
        return self.wait_for_condition(lambda: self.get_emails_by_to(email), lambda r: r["messages_count"] > 0,
                                       timeout, interval)

    def not_has_emails_by_to(self, email: str, timeout: float = 4.0, interval: float = 0.5) -> Any:
        return self.wait_for_condition(lambda: self.get_emails_by_to(email), lambda r: r["messages_count"] == 0,
                                       timeout, interval)

    def delete_all_emails(self) -> Any:
        return self.request("DELETE", self.mailpit_url("/v1/messages"))

    def delete_emails_by_search(self, query: str) -> Any:
        return self.request("DELETE", self.mailpit_url("/v1/search"), qs={"query": query})

    def set_all_email_status_as_read(self) -> Any:
        return self.set_read_status(None, True)

    def set_all_email_status_as_unread(self) -> Any:
        return self.set_read_status(None, False)

    # child commands (the subject is a message, or for the read status a list of them)
    def get_mail_html_body(self, message: dict[str, Any]) -> Any:
        return self.request("GET", self.mailpit_url(f"/view/{message['ID']}.html", False))

    def get_mail_text_body(self, message: dict[str, Any]) -> Any:
        return self.request("GET", self.mailpit_url(f"/view/{message['ID']}.txt", False))

    def get_mail_spam_assassin_summary(self, message: dict[str, Any]) -> Any:
        return self.request("GET", self.mailpit_url(f"/v1/message/{message['ID']}/sa-check"))

    def set_status_as_read(self, messages: dict[str, Any] | list[dict[str, Any]]) -> Any:
        return self.set_read_status(messages, True)

    def set_status_as_unread(self, messages: dict[str, Any] | list[dict[str, Any]]) -> Any:
        return self.set_read_status(messages, False)

    def set_read_status(self, messages: dict[str, Any] | list[dict[str, Any]] | None, is_read: bool) -> Any:
        ids: list[str] = []
        if isinstance(messages, list):
            ids = [m["ID"] for m in messages]
        elif messages is not None:
            ids = [messages["ID"]]
        return self.request("PUT", self.mailpit_url("/v1/messages"), body={"IDs": ids, "Read": is_read})

    @staticmethod
    def wait_for_condition(fetch: Callable[[], Any], condition: Callable[[Any], bool], timeout: float,
                           interval: float) -> Any:
        """waitForCondition: poll until the condition holds; past the timeout, fail as the package does."""
        started = time.monotonic()
        while True:
            result = fetch()
            if condition(result):
                return result
            if time.monotonic() - started >= timeout:
                raise TimeoutError(f"Timed out after {round(timeout * 1000)}ms waiting for condition")
            time.sleep(interval)


@pytest.fixture(scope="module")
def mailpit_server() -> Iterator[ServerThread]:
    """One mailnest for the whole suite, as the package's CI runs one Mailpit service for all its tests."""
    with ServerThread(Config()) as server:
        yield server


@pytest.fixture
def cy(mailpit_server: ServerThread) -> Iterator[CypressMailpit]:
    """The suite's beforeEach and afterEach: cy.mailpitDeleteAllEmails()."""
    commands = CypressMailpit(mailpit_server.http_url)
    commands.delete_all_emails()
    try:
        yield commands
        commands.delete_all_emails()
    finally:
        commands.close()


# -- describe("mailpit sending test") ------------------------------------------------------------------------

def test_can_send_one_email(cy: CypressMailpit) -> None:
    result = cy.send_mail()
    assert isinstance(result["ID"], str) and result["ID"]
    assert cy.get_all_mails()["messages_count"] == 1


def test_can_assert_invalid_to_address_while_sending_email(cy: CypressMailpit) -> None:
    with pytest.raises(CypressFailure) as failure:
        cy.send_mail(to=[{"Email": "", "Name": "To"}])
    assert "400: Bad Request" in str(failure.value)
    assert "invalid To address" in str(failure.value)


def test_can_send_email_with_cc_bcc_reply_to_and_tags(cy: CypressMailpit) -> None:
    cy.send_mail(cc=[{"Email": "custom-cc@example.com", "Name": "Custom CC"}], bcc=["custom-bcc@example.com"],
                 replyTo=[{"Email": "custom-reply@example.com", "Name": "Custom Reply"}], tags=["tag1", "tag2"])
    mail = cy.get_mail()
    assert [a["Address"] for a in mail["Cc"]] == ["custom-cc@example.com"]
    assert [a["Address"] for a in mail["Bcc"]] == ["custom-bcc@example.com"]
    assert [a["Address"] for a in mail["ReplyTo"]] == ["custom-reply@example.com"]
    assert "tag1" in mail["Tags"] and "tag2" in mail["Tags"]


def test_can_send_multiple_emails(cy: CypressMailpit) -> None:
    for i in range(1, 11):
        cy.send_mail(to=[{"Email": f"to{i}@example.com", "Name": f"To{i}"}])
    assert cy.get_all_mails()["messages_count"] == 10


# -- describe("mailpit query test") --------------------------------------------------------------------------

def test_can_check_the_multiple_emails(cy: CypressMailpit) -> None:
    for _ in range(10):
        cy.send_mail()
    result = cy.get_all_mails()
    assert isinstance(result["messages"], list) and len(result["messages"]) == 10
    assert "tags" in result and "start" in result and "unread" in result
    assert result["messages_count"] == 10 and result["total"] == 10 and result["count"] == 10


def test_can_get_the_from_address_of_the_latest_email(cy: CypressMailpit) -> None:
    cy.send_mail(from_={"Email": "custom-from@example.com", "Name": "Custom Sender"})
    assert cy.get_mail()["From"]["Address"] == "custom-from@example.com"  # mailpitGetFromAddress


def test_can_get_a_specific_email_by_id(cy: CypressMailpit) -> None:
    cy.send_mail(subject="First Email")
    cy.send_mail(subject="Second Email")
    target = next(m for m in cy.get_all_mails()["messages"] if m["Subject"] == "First Email")
    mail = cy.get_mail(target["ID"])
    assert mail["Subject"] == "First Email" and mail["ID"] == target["ID"]


def test_can_paginate_through_emails(cy: CypressMailpit) -> None:
    for i in range(5):
        cy.send_mail(subject=f"Paginated {i}")
    first = cy.get_all_mails(0, 2)
    assert len(first["messages"]) == 2 and first["total"] == 5 and first["start"] == 0
    second = cy.get_all_mails(2, 2)
    assert len(second["messages"]) == 2 and second["start"] == 2
    last = cy.get_all_mails(4, 2)
    assert len(last["messages"]) == 1 and last["start"] == 4


def test_can_get_the_latest_email(cy: CypressMailpit) -> None:
    cy.send_mail()
    result = cy.get_mail()
    assert {"ID", "MessageID", "From", "To", "Subject"} <= set(result)


def test_can_perform_assertion_on_the_latest_email(cy: CypressMailpit) -> None:
    cy.send_mail(to=[{"Email": "to@example.com", "Name": "To"}, {"Email": "text@example.com", "Name": "To"}],
                 subject="Test", textBody="Test", htmlBody="<p>Test</p>")
    assert cy.get_mail()["Subject"] == "Test"  # mailpitGetSubject
    assert "to@example.com" in [a["Address"] for a in cy.get_mail()["To"]]  # mailpitGetRecipientAddress
    assert "<p>Test</p>" in cy.get_mail_html_body(cy.get_mail())  # GET //view/{ID}.html
    assert cy.get_mail_text_body(cy.get_mail()) == "Test"  # GET //view/{ID}.txt, .should("eq", "Test")


def test_can_get_attachment_on_the_latest_email(cy: CypressMailpit) -> None:
    cy.send_mail(attachments=[{"Content": "SGVsbG8gV29ybGQ=", "FileName": "hello.txt"},
                              {"Content": "SGVsbG8gV29ybGQ=", "FileName": "hello2.txt"}],
                 to=[{"Email": "to@example.com", "Name": "To"}, {"Email": "text@example.com", "Name": "To"}],
                 subject="Test", textBody="Test", htmlBody="<p>Test</p>")
    names = [a["FileName"] for a in cy.get_mail()["Attachments"]]  # mailpitGetAttachments
    assert len(names) == 2 and "hello2.txt" in names and "hello.txt" in names


def test_can_search_the_latest_email_by_query(cy: CypressMailpit) -> None:
    cy.send_mail()
    cy.send_mail()
    cy.send_mail(htmlBody="<p>Test</p>", textBody="Test")
    result = cy.search_emails("Test")
    assert isinstance(result["messages"], list) and len(result["messages"]) == 1
    assert "Test" in result["messages"][0]["Snippet"]
    assert result["messages_count"] == 1 and result["total"] == 3 and result["count"] == 1


def test_can_get_all_the_emails_by_subject(cy: CypressMailpit) -> None:
    for _ in range(5):
        cy.send_mail(subject="My Test")
    for _ in range(5):
        cy.send_mail()
    result = cy.get_emails_by_subject("My Test")
    assert len(result["messages"]) == 5
    assert result["messages_count"] == 5 and result["total"] == 10 and result["count"] == 5


def test_can_get_all_the_emails_by_to(cy: CypressMailpit) -> None:
    for _ in range(5):
        cy.send_mail(to=[{"Email": "test@example.com", "Name": "To"}])
    for _ in range(5):
        cy.send_mail()
    result = cy.get_emails_by_to("test@example.com")
    assert result["messages_count"] == 5 and result["total"] == 10 and result["count"] == 5
    assert len(result["messages"]) == 5


def test_can_assert_mailpit_has_emails_by_search_query(cy: CypressMailpit) -> None:
    cy.send_mail(subject="Searchable Subject", textBody="This is a test email for searching.")
    cy.has_emails_by_search("subject:Searchable Subject", timeout=10)
    cy.not_has_emails_by_search("subject:Nonexistent")


@pytest.mark.parametrize("waiting", ["has_emails_by_search", "has_emails_by_subject", "has_emails_by_to"])
def test_can_assert_timeout_on_has_emails(cy: CypressMailpit, waiting: str) -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="Timed out after 1000ms waiting for condition"):
        getattr(cy, waiting)("invalid@example.com", timeout=1.0, interval=0.1)
    assert time.monotonic() - started >= 1.0  # the suite's closeTo(1000, 200) is the client's own clock


@pytest.mark.parametrize(("waiting", "argument"), [("not_has_emails_by_search", "subject:Searchable Subject"),
                                                   ("not_has_emails_by_subject", "Searchable Subject"),
                                                   ("not_has_emails_by_to", "to@example.com")])
def test_can_assert_timeout_on_not_has_emails(cy: CypressMailpit, waiting: str, argument: str) -> None:
    cy.send_mail(subject="Searchable Subject", textBody="This is a test email for searching.",
                 to=[{"Email": "to@example.com", "Name": "To"}])
    with pytest.raises(TimeoutError, match="Timed out after 1000ms waiting for condition"):
        getattr(cy, waiting)(argument, timeout=1.0, interval=0.1)


def test_can_assert_mailpit_has_emails_by_subject_or_not(cy: CypressMailpit) -> None:
    cy.send_mail(subject="My Test")
    cy.has_emails_by_subject("My Test")
    cy.not_has_emails_by_subject("Not")


def test_can_assert_mailpit_has_emails_by_to_or_not(cy: CypressMailpit) -> None:
    cy.send_mail(to=[{"Email": "to@example.com", "Name": "To"}])
    cy.has_emails_by_to("to@example.com")
    cy.not_has_emails_by_to("invalid@example.com")


# -- describe("mailpit read status test") --------------------------------------------------------------------

def test_can_set_email_status_as_read(cy: CypressMailpit) -> None:
    cy.send_mail()
    cy.send_mail(htmlBody="<p>Test</p>", textBody="Test")
    assert cy.search_emails("Test")["messages"][0]["Read"] is False
    assert cy.set_status_as_read(cy.get_mail()) == "ok"
    assert cy.search_emails("Test")["messages"][0]["Read"] is True


def test_can_set_email_status_as_unread(cy: CypressMailpit) -> None:
    cy.send_mail()
    cy.send_mail(htmlBody="<p>Test</p>", textBody="Test")
    cy.set_status_as_read(cy.get_mail())
    assert cy.search_emails("Test")["messages"][0]["Read"] is True
    assert cy.set_status_as_unread(cy.get_mail()) == "ok"
    assert cy.search_emails("Test")["messages"][0]["Read"] is False


def test_can_set_read_status_for_an_array_of_messages(cy: CypressMailpit) -> None:
    for i in range(3):
        cy.send_mail(subject=f"Array Status {i}")
    messages = cy.get_all_mails()["messages"]
    assert [m["Read"] for m in messages] == [False] * 3
    assert cy.set_status_as_read(messages) == "ok"
    messages = cy.get_all_mails()["messages"]
    assert [m["Read"] for m in messages] == [True] * 3
    assert cy.set_status_as_unread(messages) == "ok"
    assert [m["Read"] for m in cy.get_all_mails()["messages"]] == [False] * 3


def test_can_set_multiple_email_statuses(cy: CypressMailpit) -> None:
    for i in range(3):
        cy.send_mail(subject=f"Test {i}")
    for i in range(3):
        assert cy.search_emails(f"Test {i}")["messages"][0]["Read"] is False
    assert cy.set_all_email_status_as_read() == "ok"
    for i in range(3):
        assert cy.search_emails(f"Test {i}")["messages"][0]["Read"] is True
    assert cy.set_all_email_status_as_unread() == "ok"
    for i in range(3):
        assert cy.search_emails(f"Test {i}")["messages"][0]["Read"] is False


# -- describe("mailpit delete test") -------------------------------------------------------------------------

def test_should_delete_emails_by_search_query(cy: CypressMailpit) -> None:
    cy.send_mail(subject="Delete Me", textBody="Test")
    cy.send_mail(subject="No Delete", textBody="Test")
    cy.delete_emails_by_search("subject:Delete Me")
    cy.has_emails_by_subject("No Delete")
    cy.not_has_emails_by_subject("Delete Me")


def test_should_throw_error_on_invalid_search_query_while_deleting_emails(cy: CypressMailpit) -> None:
    with pytest.raises(CypressFailure) as failure:
        cy.delete_emails_by_search("")
    assert "400: Bad Request" in str(failure.value)
    assert "no search query" in str(failure.value)


# -- the commands the suite does not reach ---------------------------------------------------------------------

def test_spam_assassin_summary_answers_as_mailpit_without_spamassassin(cy: CypressMailpit) -> None:
    """mailpitGetMailSpamAssassinSummary (and its deprecated spelling): Mailpit without SpamAssassin answers
    200 with an Error and no score; mailnest has no SpamAssassin and says so the same way."""
    cy.send_mail()
    summary = cy.get_mail_spam_assassin_summary(cy.get_mail())
    assert isinstance(summary, dict) and "not available" in summary["Error"]


def test_the_view_routes_with_a_double_slash_reach_the_message(cy: CypressMailpit) -> None:
    """`//view/{ID}.txt` and `//view/{ID}.html` end where `/view/...` does (Mailpit: a redirect to the clean
    path, which cy.request follows)."""
    cy.send_mail(textBody="Body line", htmlBody="<p>Body <b>HTML</b></p>")
    mail = cy.get_mail()
    for suffix in ("txt", "html"):
        doubled = cy.http.get(cy.mailpit_url(f"/view/{mail['ID']}.{suffix}", False))
        clean = cy.http.get(f"{cy.base_url}/view/{mail['ID']}.{suffix}")
        assert doubled.status_code == 200, f"//view/ID.{suffix}: {doubled.status_code} {doubled.text[:200]}"
        assert (doubled.headers["content-type"], doubled.text) == (clean.headers["content-type"], clean.text)


def test_the_html_view_is_the_message_own_html(cy: CypressMailpit) -> None:
    """What a Cypress test looks for in mailpitGetMailHTMlBody, or clicks after cy.visit of the same URL, is the
    email's own HTML: its links, data-* attributes, forms and buttons. mailnest keeps it harmless with headers (a
    CSP sandbox, nosniff) rather than by rewriting it."""
    html = ('<p>Click <a href="https://example.com/confirm?t=1" data-test="confirm">confirm</a></p>'
            '<form action="https://example.com/go"><button type="submit">Go</button></form>')
    cy.send_mail(textBody="Body line", htmlBody=html)
    mail = cy.get_mail()
    assert cy.get_mail_html_body(mail) == html
    response = cy.http.get(f"{cy.base_url}/view/{mail['ID']}.html")
    assert "sandbox" in response.headers.get("content-security-policy", "")
    assert response.headers.get("x-content-type-options") == "nosniff"
