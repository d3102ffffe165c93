"""The PyPI clients of Mailpit, replayed: `mailpit-api-client` 1.0.0 (mailpit/client/api.py) and `pytest-mailpit`
0.4.1 (pytest_mailpit/client.py and _http.py), each call as the request the package sends, against a real mailnest,
asserting what the packages then use and what pytest-mailpit's own integration tests assert.

Neither package is a dependency of mailnest's tests: mailpit-api-client needs dataclasses-json, invoke and
logging518 at run time, and both were read from their wheels (`pip download`), so the requests are sent here with
the HTTP library each package uses: httpx for mailpit-api-client (form-encoded DELETE and PUT bodies), a requests
Session that never follows redirects for pytest-mailpit.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlencode, urljoin

import httpx
import pytest
import requests

from mailnest import Config, ServerThread

PDF = b"%PDF-1.7\n" + b"0123456789" * 200
ORDER_SUBJECT = "Поръчка №1001 е потвърдена"  # noqa: RUF001 (pytest-mailpit's Bulgarian subject, as it is)


@pytest.fixture(scope="module")
def mailpit() -> Iterator[ServerThread]:
    with ServerThread(Config(chaos="on")) as server:
        yield server


def send_email(server: ServerThread, to: str, *, subject: str = "Hello",
               text: str = "Hello from the pytest-mailpit test suite.", html: str | None = None,
               cc: str | None = None, attachment: tuple[str, bytes] | None = None,
               headers: dict[str, str] | None = None) -> None:
    """pytest-mailpit's integration send_email fixture: smtplib's send_message."""
    message = EmailMessage()
    message["From"] = "Test Sender <sender@example.test>"
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    if attachment:
        message.add_attachment(attachment[1], maintype="application", subtype="pdf", filename=attachment[0])
    with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=10) as smtp:
        smtp.send_message(message)


# -- mailpit-api-client 1.0.0 ------------------------------------------------------------------------------------

class MailpitApiClient:
    """mailpit.client.api.API: module-level httpx calls, form bodies for DELETE and PUT."""

    def __init__(self, mailpit_url: str) -> None:
        self.mailpit_url = mailpit_url

    def get_messages(self, limit: int = 50, start: int = 0) -> Any:
        response = httpx.get(f"{self.mailpit_url}/api/v1/messages", params={"limit": limit, "start": start})
        response.raise_for_status()
        return response.json()

    def delete_messages(self, ids: list[str]) -> None:
        response = httpx.request(method="DELETE", url=f"{self.mailpit_url}/api/v1/messages", data={"ids": ids})
        response.raise_for_status()

    def put_messages(self, ids: list[str], key: str, value: Any) -> None:
        response = httpx.put(f"{self.mailpit_url}/api/v1/messages", data={"ids": ids, key: value})
        response.raise_for_status()

    def get_message(self, message_id: str) -> Any:
        response = httpx.get(f"{self.mailpit_url}/api/v1/message/{message_id}")
        response.raise_for_status()
        return response.json()

    def get_message_attachment(self, message_id: str, part_id: str) -> str:
        response = httpx.get(f"{self.mailpit_url}/api/v1/message/{message_id}/part/{part_id}")
        response.raise_for_status()
        return response.text

    def get_message_headers(self, message_id: str) -> Any:
        response = httpx.get(f"{self.mailpit_url}/api/v1/message/{message_id}/headers")
        response.raise_for_status()
        return response.json()


@pytest.fixture
def api_client(mailpit: ServerThread) -> Iterator[MailpitApiClient]:
    client = MailpitApiClient(mailpit.http_url)
    httpx.delete(f"{mailpit.http_url}/api/v1/messages")
    yield client
    httpx.delete(f"{mailpit.http_url}/api/v1/messages")


def seeded(server: ServerThread, client: MailpitApiClient, count: int) -> list[str]:
    for i in range(count):
        send_email(server, f"rcpt{i}@example.test", subject=f"Form {i}", attachment=("invoice.pdf", PDF))
    return [m["ID"] for m in client.get_messages()["messages"]]


def test_api_client_reads_messages_parts_and_headers(mailpit: ServerThread, api_client: MailpitApiClient) -> None:
    ids = seeded(mailpit, api_client, 3)
    page = api_client.get_messages(limit=2, start=1)
    assert [m["ID"] for m in page["messages"]] == ids[1:] and page["start"] == 1 and page["total"] == 3
    message = api_client.get_message(ids[0])
    assert message["Subject"] == "Form 2" and message["From"]["Address"] == "sender@example.test"
    assert api_client.get_message_attachment(ids[0], message["Attachments"][0]["PartID"]) == PDF.decode()
    headers = api_client.get_message_headers(ids[0])
    assert headers["Subject"] == ["Form 2"] and headers["Content-Type"][0].startswith("multipart/mixed")


def test_api_client_fixture_teardown(mailpit: ServerThread, api_client: MailpitApiClient) -> None:
    """The package's `mailpit_api` fixture ends by deleting every message it lists, by ID, as a form body."""
    seeded(mailpit, api_client, 2)
    api_client.delete_messages([m["ID"] for m in api_client.get_messages()["messages"]])
    assert api_client.get_messages()["total"] == 0


def test_api_client_deletes_the_ids_of_a_form_body(mailpit: ServerThread, api_client: MailpitApiClient) -> None:
    """DELETE /api/v1/messages with `ids=A&ids=B` (Mailpit cannot parse it, so it deletes everything)."""
    ids = seeded(mailpit, api_client, 3)
    api_client.delete_messages(ids[:2])
    assert [m["ID"] for m in api_client.get_messages()["messages"]] == ids[2:]


def test_api_client_marks_the_ids_of_a_form_body_read(mailpit: ServerThread, api_client: MailpitApiClient) -> None:
    """PUT /api/v1/messages with `ids=A&Read=true`, then `Read=false`."""
    ids = seeded(mailpit, api_client, 3)
    api_client.put_messages([ids[0]], "Read", True)
    assert [m["Read"] for m in api_client.get_messages()["messages"]] == [True, False, False]
    api_client.put_messages([ids[0]], "Read", False)
    assert [m["Read"] for m in api_client.get_messages()["messages"]] == [False, False, False]


# -- pytest-mailpit 0.4.1 ----------------------------------------------------------------------------------------

class PytestMailpit:
    """pytest_mailpit.client.MailpitClient's requests, through its Transport: paths relative to the URL, redirects
    never followed, anything but 2xx an error whose detail is the plain text or the JSON "Error"."""

    def __init__(self, url: str) -> None:
        self.base_url = url if url.endswith("/") else f"{url}/"
        self.session = requests.Session()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json_body: Any = None) -> requests.Response:
        response = self.session.request(method, urljoin(self.base_url, path.lstrip("/")), params=params,
                                        json=json_body, timeout=10, allow_redirects=False)
        assert not response.is_redirect, f"{method} {path} redirects to {response.headers['Location']}"
        assert response.ok, f"{method} {path}: {response.status_code} {response.text}"
        return response

    def get_json(self, path: str, *, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def search(self, query: str, *, start: int = 0, limit: int = 50) -> Any:
        return self.get_json("api/v1/search", params={"query": query, "start": start, "limit": limit})

    def search_all(self, query: str, *, page_size: int = 250) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        start = 0
        while True:
            page = self.search(query, start=start, limit=page_size)
            for summary in page["messages"]:
                found.setdefault(summary["ID"], summary)
            start += len(page["messages"])
            if not page["messages"] or start >= page["messages_count"]:
                return list(found.values())

    def clock(self) -> datetime:
        """_clock: the server's time from the Date header of /livez."""
        server_time = parsedate_to_datetime(self.request("GET", "livez").headers["Date"])
        return server_time.astimezone(UTC)

    def server_time(self) -> datetime:
        """server_time: wait until the server's clock reaches its next second and return it."""
        first = self.clock()
        deadline = datetime.now(UTC) + timedelta(seconds=2)
        while datetime.now(UTC) < deadline:
            now = self.clock()
            if now > first:
                return now
        return first + timedelta(seconds=1)

    def close(self) -> None:
        self.session.close()


@pytest.fixture
def client(mailpit: ServerThread) -> Iterator[PytestMailpit]:
    opened = PytestMailpit(f"{mailpit.http_url}/")
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def recipient(request: pytest.FixtureRequest) -> str:
    """An address no other test uses, so the tests share one server as pytest-mailpit's do."""
    return f"it-{request.node.name.replace('_', '-')[:40].lower()}@example.test"


def query_to(address: str) -> str:
    """build_query(to=address)"""
    return f'to:"{address}"'


def arrived(client: PytestMailpit, recipient: str, count: int = 1) -> list[dict[str, Any]]:
    """The integration conftest's arrived(): wait for the messages to the recipient, then search them all."""
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while len(found := client.search_all(query_to(recipient))) < count:
        assert datetime.now(UTC) < deadline, f"{count} message(s) to {recipient} did not arrive"
    return found


def test_info_and_readiness(client: PytestMailpit) -> None:
    # Mailpit's version is always "v" and a semantic version (e.g. "v1.30.5"); pytest-mailpit's test checks it
    assert client.get_json("api/v1/info")["Version"].startswith("v")
    assert client.request("GET", "readyz").ok


def test_search_returns_the_summary_of_a_sent_message(mailpit: ServerThread, client: PytestMailpit,
                                                       recipient: str) -> None:
    send_email(mailpit, recipient, subject=ORDER_SUBJECT, cc="accounts@example.test",
               attachment=("invoice.pdf", b"%PDF-1.7 test"))
    [summary] = arrived(client, recipient)
    assert summary["Subject"] == ORDER_SUBJECT
    assert summary["From"] == {"Name": "Test Sender", "Address": "sender@example.test"}
    assert [a["Address"] for a in summary["To"]] == [recipient]
    assert [a["Address"] for a in summary["Cc"]] == ["accounts@example.test"]
    assert summary["Attachments"] == 1
    assert datetime.fromisoformat(summary["Created"]).tzinfo is not None
    assert summary.get("Username", "") == ""  # MessageSummary.from_api reads it; no SMTP AUTH here


def test_get_message_returns_bodies_and_attachments(mailpit: ServerThread, client: PytestMailpit,
                                                    recipient: str) -> None:
    send_email(mailpit, recipient, text="Track your order: https://shop.example.test/orders/1001",
               html='<p>Track <a href="https://shop.example.test/orders/1001">your order</a></p>',
               attachment=("invoice.pdf", b"%PDF-1.7 test"))
    [summary] = arrived(client, recipient)
    message = client.get_json(f"api/v1/message/{summary['ID']}")
    assert "https://shop.example.test/orders/1001" in message["Text"]
    assert 'href="https://shop.example.test/orders/1001"' in message["HTML"]
    [attachment] = message["Attachments"]
    assert attachment["FileName"] == "invoice.pdf"
    assert client.request("GET", f"api/v1/message/{message['ID']}/part/{attachment['PartID']}").content \
        == b"%PDF-1.7 test"
    datetime.fromisoformat(message["Date"])  # Message.from_api parses it so


def test_get_headers_and_raw_source(mailpit: ServerThread, client: PytestMailpit, recipient: str) -> None:
    send_email(mailpit, recipient, subject="Headers check")
    [summary] = arrived(client, recipient)
    assert client.get_json(f"api/v1/message/{summary['ID']}/headers")["Subject"] == ["Headers check"]
    assert b"Subject: Headers check" in client.request("GET", f"api/v1/message/{summary['ID']}/raw").content


def test_search_all_reads_every_page(mailpit: ServerThread, client: PytestMailpit, recipient: str) -> None:
    for number in range(3):
        send_email(mailpit, recipient, subject=f"Message {number}")
    arrived(client, recipient, count=3)
    found = client.search_all(query_to(recipient), page_size=2)
    assert sorted(summary["Subject"] for summary in found) == ["Message 0", "Message 1", "Message 2"]


def test_delete_messages_deletes_only_the_given_ones(mailpit: ServerThread, client: PytestMailpit,
                                                     recipient: str) -> None:
    send_email(mailpit, recipient, subject="Keep")
    send_email(mailpit, recipient, subject="Delete")
    found = arrived(client, recipient, count=2)
    ids = [summary["ID"] for summary in found if summary["Subject"] == "Delete"]
    client.request("DELETE", "api/v1/messages", json_body={"IDs": ids})
    assert [summary["Subject"] for summary in client.search_all(query_to(recipient))] == ["Keep"]


def test_delete_search(mailpit: ServerThread, client: PytestMailpit, recipient: str) -> None:
    send_email(mailpit, recipient)
    send_email(mailpit, recipient)
    arrived(client, recipient, count=2)
    client.request("DELETE", "api/v1/search", params={"query": query_to(recipient)})
    assert client.search_all(query_to(recipient)) == []


def test_mark_read_and_unread(mailpit: ServerThread, client: PytestMailpit, recipient: str) -> None:
    send_email(mailpit, recipient)
    [summary] = arrived(client, recipient)
    client.request("PUT", "api/v1/messages", json_body={"IDs": [summary["ID"]], "Read": False})
    assert not client.search_all(query_to(recipient))[0]["Read"]
    client.request("PUT", "api/v1/messages", json_body={"IDs": [summary["ID"]], "Read": True})
    assert client.search_all(query_to(recipient))[0]["Read"]


def test_unknown_message_is_a_404(client: PytestMailpit) -> None:
    response = client.session.get(urljoin(client.base_url, "api/v1/message/this-id-does-not-exist"),
                                  allow_redirects=False, timeout=10)
    assert response.status_code == 404


def test_tags_and_chaos(mailpit: ServerThread, client: PytestMailpit, recipient: str) -> None:
    send_email(mailpit, recipient)
    [summary] = arrived(client, recipient)
    client.request("PUT", "api/v1/tags", json_body={"IDs": [summary["ID"]], "Tags": ["pytest mailpit"]})
    assert client.search_all('tag:"pytest mailpit"')[0]["ID"] == summary["ID"]
    triggers = {"Sender": {"ErrorCode": 451, "Probability": 0}, "Recipient": {"ErrorCode": 451, "Probability": 0},
                "Authentication": {"ErrorCode": 535, "Probability": 0}}
    assert client.request("PUT", "api/v1/chaos", json_body=triggers).json() == triggers
    assert client.get_json("api/v1/chaos") == triggers


def test_one_click_unsubscribe(mailpit: ServerThread, client: PytestMailpit, recipient: str) -> None:
    """Message.unsubscribe_link(one_click=True) needs Header, Links and HeaderPost."""
    send_email(mailpit, recipient, subject="Newsletter", headers={
        "List-Unsubscribe": "<mailto:unsubscribe@shop.example.com>, <https://shop.example.com/u/7>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"})
    [summary] = arrived(client, recipient)
    unsubscribe = client.get_json(f"api/v1/message/{summary['ID']}")["ListUnsubscribe"]
    assert unsubscribe["Links"] == ["mailto:unsubscribe@shop.example.com", "https://shop.example.com/u/7"]
    assert unsubscribe["Errors"] == ""
    assert unsubscribe["HeaderPost"].strip().lower() == "list-unsubscribe=one-click"


def test_an_invalid_list_unsubscribe_header_has_errors(mailpit: ServerThread, client: PytestMailpit,
                                                       recipient: str) -> None:
    send_email(mailpit, recipient, subject="Newsletter", headers={"List-Unsubscribe": "https://shop.example.com/u/7"})
    [summary] = arrived(client, recipient)
    unsubscribe = client.get_json(f"api/v1/message/{summary['ID']}")["ListUnsubscribe"]
    assert unsubscribe["Header"] == "https://shop.example.com/u/7" and unsubscribe["Errors"]


def test_the_ui_links_of_failure_reports_open(mailpit: ServerThread, client: PytestMailpit, recipient: str) -> None:
    """view_url, search_url and html_url go into pytest-mailpit's failure reports; a browser opens them."""
    send_email(mailpit, recipient, html="<p>Hello <b>there</b></p>")
    [summary] = arrived(client, recipient)
    with httpx.Client(follow_redirects=True, timeout=10) as browser:
        for url in (urljoin(client.base_url, f"view/{summary['ID']}"), urljoin(client.base_url, "view/latest"),
                    urljoin(client.base_url, f"search?{urlencode({'q': query_to(recipient)}, quote_via=quote)}")):
            page = browser.get(url)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), url
        html = browser.get(urljoin(client.base_url, f"view/{summary['ID']}.html"))
        assert html.status_code == 200 and "<p>Hello <b>there</b></p>" in html.text


def test_server_time_is_after_every_message_received_before(mailpit: ServerThread, client: PytestMailpit,
                                                            recipient: str) -> None:
    """server_time() reads the Date header of /livez, to the second, and waits for its next second: "every
    message Mailpit received before the call is older". That holds only if the Date header is the time of the
    response: one cached and refreshed once a second is behind by up to a second, so for part of every second a
    message already received has a Created later than the Date that follows it. Back-to-back messages for 1.5 s
    cover every part of a second."""
    behind = []
    with smtplib.SMTP("127.0.0.1", mailpit.smtp_port, timeout=10) as smtp:
        started = datetime.now(UTC)
        while datetime.now(UTC) - started < timedelta(seconds=1.5):
            smtp.sendmail("sender@example.test", [recipient], f"To: {recipient}\r\nSubject: clock\r\n\r\nx\r\n")
            [latest] = client.get_json("api/v1/search", params={"query": query_to(recipient), "limit": 1})["messages"]
            created = datetime.fromisoformat(latest["Created"]).replace(microsecond=0)
            date = client.clock()
            if date < created:
                behind.append(f"Date {date:%H:%M:%S} after a message created at {latest['Created']}")
    client.request("DELETE", "api/v1/search", params={"query": query_to(recipient)})
    assert behind == []
    assert abs(client.server_time() - datetime.now(UTC)) < timedelta(minutes=5)  # test_server_time_is_close_to_now
