"""The HTTP API core, end to end over real sockets with httpx."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mailnest import Config, ServerThread
from tests.conftest import IN_CI, send


def ids(listing: dict) -> list[str]:
    return [m["ID"] for m in listing["messages"]]


def test_list_is_newest_first_with_paging_and_counts(server: ServerThread, api: httpx.Client) -> None:
    for i in range(5):
        send(server, subject=f"message {i}")
    listing = api.get("/api/v1/messages", params={"limit": 2}).json()
    assert listing["total"] == 5
    assert listing["unread"] == 5
    assert listing["messages_count"] == 5
    assert listing["count"] == 2
    assert [m["Subject"] for m in listing["messages"]] == ["message 4", "message 3"]
    page2 = api.get("/api/v1/messages", params={"start": 2, "limit": 2}).json()
    assert page2["start"] == 2
    assert [m["Subject"] for m in page2["messages"]] == ["message 2", "message 1"]
    summary = listing["messages"][0]
    assert set(summary) >= {"ID", "MessageID", "Read", "From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Created",
                            "Size", "Attachments", "Snippet", "Tags"}
    assert summary["Snippet"] == "Hello there."


def test_message_latest_headers_and_404(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="first")
    send(server, subject="second", X_Custom="one")
    latest = api.get("/api/v1/message/latest").json()
    assert latest["Subject"] == "second"
    headers = api.get(f"/api/v1/message/{latest['ID']}/headers").json()
    assert headers["Subject"] == ["second"]
    assert headers["X-Custom"] == ["one"]
    missing = api.get("/api/v1/message/doesnotexist")
    assert missing.status_code == 404
    assert "not found" in missing.json()["Error"]
    assert api.get("/api/v1/message/doesnotexist/raw").status_code == 404
    assert api.get(f"/api/v1/message/{latest['ID']}/part/9.9").status_code == 404


def test_read_flags(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="a")
    send(server, subject="b")
    listing = api.get("/api/v1/messages").json()
    first, second = ids(listing)
    assert api.put("/api/v1/messages", json={"IDs": [first], "Read": True}).status_code == 200
    listing = api.get("/api/v1/messages").json()
    assert listing["unread"] == 1
    assert {m["ID"]: m["Read"] for m in listing["messages"]} == {first: True, second: False}
    assert api.get(f"/api/v1/message/{first}").json()["Read"] is True
    assert api.put("/api/v1/messages", json={"Read": True}).status_code == 200  # all
    assert api.get("/api/v1/messages").json()["unread"] == 0
    api.put("/api/v1/messages", json={"IDs": [second], "Read": False})
    assert api.get("/api/v1/messages").json()["unread"] == 1
    # As in Mailpit (and mailpit-api's setReadStatus()), a body without "Read" marks unread.
    assert api.put("/api/v1/messages", json={}).status_code == 200
    assert api.get("/api/v1/messages").json()["unread"] == 2


def test_delete_by_ids_and_all(server: ServerThread, api: httpx.Client) -> None:
    for i in range(3):
        send(server, subject=f"d{i}")
    listing = api.get("/api/v1/messages").json()
    doomed = ids(listing)[0]
    assert api.request("DELETE", "/api/v1/messages", json={"IDs": [doomed]}).status_code == 200
    remaining = api.get("/api/v1/messages").json()
    assert remaining["total"] == 2 and doomed not in ids(remaining)
    assert api.get(f"/api/v1/message/{doomed}").status_code == 404
    assert api.delete("/api/v1/messages").status_code == 200
    assert api.get("/api/v1/messages").json()["total"] == 0


def test_search(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="Invoice 1001", body="Please pay the invoice.", sender="billing@shop.example")
    send(server, subject="Welcome aboard", body="Confirm your account.", sender="hello@app.example")
    send(server, subject="Another invoice", body="Second reminder, pay now.", sender="billing@shop.example")

    def subjects(query: str) -> list[str]:
        response = api.get("/api/v1/search", params={"query": query})
        assert response.status_code == 200, response.text
        return [m["Subject"] for m in response.json()["messages"]]

    assert subjects("invoice") == ["Another invoice", "Invoice 1001"]
    assert subjects("confirm account") == ["Welcome aboard"]
    assert subjects("nothing-matches-this") == []
    assert api.get("/api/v1/search").status_code == 400


def test_search_language_fields(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="Invoice 1001", body="Please pay.", sender="billing@shop.example")
    send(server, subject="Welcome aboard", body="Confirm your invoice settings.", sender="hello@app.example")

    def subjects(query: str) -> list[str]:
        response = api.get("/api/v1/search", params={"query": query})
        assert response.status_code == 200, response.text
        return [m["Subject"] for m in response.json()["messages"]]

    assert subjects("from:billing@shop.example") == ["Invoice 1001"]
    assert subjects('subject:"welcome aboard"') == ["Welcome aboard"]
    assert subjects("invoice -subject:invoice") == ["Welcome aboard"]
    assert subjects("to:rcpt@example.com") == ["Welcome aboard", "Invoice 1001"]
    bad = api.get("/api/v1/search", params={"query": 'subject:"unclosed'})
    assert bad.status_code == 400
    assert "query" in bad.json()["Error"]


def test_mailbox_filter_and_mailboxes(server: ServerThread, api: httpx.Client) -> None:
    send(server, to=["alice@example.com"], subject="for alice")
    send(server, to=["Bob@Example.com", "alice@example.com"], subject="for both")
    alice = api.get("/api/v1/messages", params={"mailbox": "alice@example.com"}).json()
    assert [m["Subject"] for m in alice["messages"]] == ["for both", "for alice"]
    bob = api.get("/api/v1/messages", params={"mailbox": "bob@example.com"}).json()
    assert [m["Subject"] for m in bob["messages"]] == ["for both"]
    assert bob["total"] == 1
    boxes = api.get("/api/v1/mailboxes").json()
    assert [{k: b[k] for k in ("Address", "Total", "Unread")} for b in boxes] == [
        {"Address": "alice@example.com", "Total": 2, "Unread": 2}, {"Address": "bob@example.com", "Total": 1, "Unread": 1}]
    assert all(b["Latest"] == alice["messages"][0]["Created"] for b in boxes)  # "for both" is the newest of each


def test_wait_returns_immediately_when_already_there(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="already here")
    started = time.monotonic()
    response = api.get("/api/v1/wait", params={"query": "already", "timeout": 5})
    assert response.status_code == 200
    assert time.monotonic() - started < 1
    assert [m["Subject"] for m in response.json()["messages"]] == ["already here"]


def test_wait_returns_when_the_message_arrives(server: ServerThread, api: httpx.Client) -> None:
    timer = threading.Timer(0.3, lambda: [send(server, subject=f"arriving {i}") for i in range(2)])
    timer.start()
    try:
        started = time.monotonic()
        response = api.get("/api/v1/wait", params={"query": "arriving", "count": 2, "timeout": 10})
        elapsed = time.monotonic() - started
    finally:
        timer.join()
    assert response.status_code == 200, response.text
    assert 0.25 < elapsed < 5
    assert sorted(m["Subject"] for m in response.json()["messages"]) == ["arriving 0", "arriving 1"]


def test_wait_ignores_other_mail_and_times_out_with_408(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="unrelated")
    started = time.monotonic()
    response = api.get("/api/v1/wait", params={"query": "subject:expected", "timeout": 0.5})
    assert response.status_code == 408
    assert 0.45 < time.monotonic() - started < 3
    body = response.json()
    assert "timed out" in body["Error"] and body["Arrived"] == 0


def test_wait_in_a_mailbox(server: ServerThread, api: httpx.Client) -> None:
    timer = threading.Timer(0.2, lambda: (send(server, to=["other@example.com"], subject="x"),
                                          send(server, to=["mine@example.com"], subject="y")))
    timer.start()
    response = api.get("/api/v1/wait", params={"mailbox": "mine@example.com", "timeout": 10})
    timer.join()
    assert response.status_code == 200
    assert [m["Subject"] for m in response.json()["messages"]] == ["y"]


@pytest.mark.parametrize(("method", "path", "kwargs"), [
    ("GET", "/api/v1/wait?timeout=forever", {}),
    ("GET", "/api/v1/wait?count=0", {}),
    ("GET", "/api/v1/wait?timeout=100000", {}),
    ("PUT", "/api/v1/messages", {"content": b"{not json"}),
    ("PUT", "/api/v1/messages", {"json": {"IDs": "notalist", "Read": True}}),
    ("PUT", "/api/v1/messages", {"json": {"IDs": [], "Read": "yes"}}),
    ("PUT", "/api/v1/messages", {"json": ["a list"]}),
    ("DELETE", "/api/v1/messages", {"json": {"IDs": [1, 2]}}),
    ("DELETE", "/api/v1/search", {}),
])
def test_bad_parameters_get_400_with_a_reason(server: ServerThread, api: httpx.Client, method: str, path: str,
                                              kwargs: dict) -> None:
    response = api.request(method, path, **kwargs)
    assert response.status_code == 400, response.text
    assert response.json()["Error"]
    assert api.get("/livez").status_code == 200


def test_info_and_health(server: ServerThread, api: httpx.Client) -> None:
    send(server)
    info = api.get("/api/v1/info").json()
    assert info["Messages"] == 1 and info["Unread"] == 1
    assert info["Version"]
    assert api.get("/livez").text == "ok"
    assert api.get("/readyz").status_code == 200


@pytest.mark.parametrize("server_config", [Config(max_messages=3)])
def test_retention_prunes_oldest(server: ServerThread, api: httpx.Client) -> None:
    for i in range(5):
        send(server, subject=f"r{i}")
    listing = api.get("/api/v1/messages").json()
    assert listing["total"] == 3
    assert [m["Subject"] for m in listing["messages"]] == ["r4", "r3", "r2"]


def test_unknown_routes_and_methods_get_json_errors(server: ServerThread, api: httpx.Client) -> None:
    missing = api.get("/api/v1/no-such-thing")
    assert missing.status_code == 404 and "/api/v1/no-such-thing" in missing.json()["Error"]
    wrong = api.patch("/api/v1/messages")
    assert wrong.status_code == 405 and "allowed" in wrong.json()["Error"]


# -- failures answer JSON (issue 11) ------------------------------------------------------------------------------

SEND = {"From": {"Email": "a@example.com"}, "To": [{"Email": "b@example.com"}], "Subject": "s", "Text": "x" * 50_000}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (CI runs as root): a disk that really fills up."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        (pytest.fail if IN_CI else pytest.skip)("mounting a small tmpfs needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_writes_on_a_full_disk_answer_507(small_disk: Path) -> None:
    with ServerThread(Config(db=small_disk / "mail.db")) as running, \
            httpx.Client(base_url=running.http_url, timeout=10) as api:
        kept = api.post("/api/v1/send", json=SEND).json()["ID"]
        filler = fill(small_disk)
        for method, path, body in [("POST", "/api/v1/send", SEND), ("PUT", "/api/v1/messages", {"Read": True}),
                                   ("DELETE", "/api/v1/messages", None)]:
            response = api.request(method, path, json=body)
            assert response.status_code == 507, (method, path, response.text)
            assert response.json()["Error"].startswith("the disk is full: ")
        assert api.get(f"/api/v1/message/{kept}").status_code == 200  # reads go on; nothing acknowledged is lost
        filler.unlink()
        assert api.post("/api/v1/send", json=SEND).status_code == 200


def test_an_unexpected_failure_answers_a_json_500(server: ServerThread, api: httpx.Client) -> None:
    server.call(server.store.close())  # a real failure: every route now meets a closed store
    for method, path in [("GET", "/api/v1/messages"), ("GET", "/api/v1/message/latest"), ("GET", "/api/v2/messages"),
                         ("DELETE", "/api/v1/messages"), ("GET", "/api/v1/folders")]:
        response = api.request(method, path)
        assert response.status_code == 500, (method, path)
        assert response.headers["content-type"] == "application/json"
        assert "internal error" in response.json()["Error"]
    assert api.get("/livez").status_code == 200  # the listener is still there


@pytest.mark.parametrize(("query", "expected"), [
    ("limit=0", (0, 7)), ("limit=5000", (0, 7)), ("limit=2", (0, 2)), ("limit=-1", (0, 7)), ("limit=abc", (0, 7)),
    ("start=-5&limit=3", (0, 3)), ("start=abc", (0, 7)), ("start=5", (5, 2)), ("start=5&limit=0", (5, 2)),
])
def test_paging_is_lenient_as_mailpit(server: ServerThread, api: httpx.Client, query: str,
                                      expected: tuple[int, int]) -> None:
    """Mailpit: limit=0 is everything, a bad or negative value is the default (start 0, limit 50)."""
    for number in range(7):
        send(server, subject=f"page {number}")
    body = api.get(f"/api/v1/messages?{query}").json()
    assert (body["start"], len(body["messages"])) == expected and body["total"] == 7


def test_unknown_json_fields_are_ignored_as_go_does(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="to read")
    message_id = api.get("/api/v1/messages").json()["messages"][0]["ID"]
    response = api.put("/api/v1/messages", json={"IDs": [message_id], "Read": True, "Colour": "blue"})
    assert response.status_code == 200 and response.text == "ok"
    assert api.get("/api/v1/messages").json()["unread"] == 0


@pytest.mark.parametrize("kwargs", [{"json": {"Ids_": ["x"]}}, {"data": {"id": "x"}}], ids=["json", "form"])
def test_a_delete_body_of_unknown_fields_only_deletes_nothing(server: ServerThread, api: httpx.Client,
                                                             kwargs: dict[str, object]) -> None:
    """An empty DELETE body means "every message"; a misspelt one must not mean that too (Mailpit would)."""
    send(server, subject="keep me")
    response = api.request("DELETE", "/api/v1/messages", **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 400 and "is known" in response.json()["Error"], response.text
    assert api.get("/api/v1/messages").json()["total"] == 1
