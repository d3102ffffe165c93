"""Tags: the pure rules (cleaning, plus-addressing, X-Tags, --tag rules) and, end to end, tags given at ingest and
changed through Mailpit's tag API."""

from __future__ import annotations

import httpx
import pytest

from mailnest import Config, ServerThread
from mailnest.config import ConfigError
from mailnest.models import Address, Envelope
from mailnest.tags import TagRule, clean, from_header, ingest_tags, parse_rule, parse_rules, plus_tag, unique
from tests.conftest import send


@pytest.mark.parametrize(("raw", "cleaned"), [
    ("billing", "billing"), ("  Two   words ", "Two words"), ("a/b!c", "abc"), ("ünïcode", "ncode"),
    ("v1.2_x-y", "v1.2_x-y"), ("!!!", ""), ("x" * 150, "x" * 100),
])
def test_clean(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned


def test_unique_ignores_case_sorts_and_reuses_existing_spelling() -> None:
    assert unique(["beta", "Alpha", "BETA", "", "!!", "gamma"]) == ("Alpha", "beta", "gamma")
    assert unique(["INVOICE", "new"], existing=["Invoice"]) == ("Invoice", "new")


@pytest.mark.parametrize(("address", "tag"), [
    ("alice+billing@example.com", "billing"), ("alice@example.com", ""), ("a+b+c@example.com", "bc"),
    ("+x@example.com", "x"), ("no-at-sign+x", ""), ("alice+@example.com", ""),
])
def test_plus_tag(address: str, tag: str) -> None:
    assert plus_tag(address) == tag


def test_ingest_tags_from_every_source() -> None:
    envelope = Envelope(mail_from="s@example.com", rcpt_tos=("hidden+secret@example.com", "to+news@example.com"))
    tags = ingest_tags(x_tags=["one, Two", " three "], to=[Address("", "to+news@example.com")],
                       cc=[Address("C", "cc+copy@example.com")], envelope=envelope, explicit=["api", "ONE"])
    assert tags == ("api", "copy", "news", "one", "secret", "three", "Two")
    assert from_header("a,, b ,") == ["a", " b "]


def test_parse_rule_both_orders() -> None:
    assert parse_rule("subject:invoice=billing") == TagRule("subject:invoice", "billing")
    assert parse_rule("Billing Dept=from:billing@example.com") == TagRule("from:billing@example.com", "Billing Dept")
    assert parse_rule('subject:"a=b"=weird') == TagRule('subject:"a=b"', "weird")
    assert str(parse_rule("has:attachment=files")) == "has:attachment=files"
    assert parse_rules(["is:unread=new", "invoice=money"]) == (TagRule("is:unread", "new"),
                                                              TagRule("invoice", "money"))


@pytest.mark.parametrize(("rule", "fragment"), [
    ("no equals sign", "QUERY=TAG"), ("=tag", "empty"), ('subject:"unclosed=tag', "bad search query"),
    ("has:wings=x", "bad search query"), ("a:b=c:d", "not a tag name"),
])
def test_bad_rules_stop_start_up(rule: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match="--tag") as caught:
        parse_rule(rule)
    assert fragment in str(caught.value)


# -- end to end ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("server_config", [Config(tag_rules=("subject:invoice=billing", "Urgent=subject:urgent"))])
def test_tags_at_ingest(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="Invoice 42", to=["bob+accounts@example.com"], X_Tags="Finance, q3")
    send(server, subject="Urgent: invoice overdue", to=["carol@example.com"])
    send(server, subject="Hello", to=["dave@example.com"])
    listing = api.get("/api/v1/messages").json()
    assert {m["Subject"]: m["Tags"] for m in listing["messages"]} == {
        "Invoice 42": ["accounts", "billing", "Finance", "q3"],
        "Urgent: invoice overdue": ["billing", "Urgent"],
        "Hello": [],
    }
    assert sorted(listing["tags"], key=str.lower) == ["accounts", "billing", "Finance", "q3", "Urgent"]
    assert api.get("/api/v1/info").json()["Tags"] == {"accounts": 1, "billing": 2, "Finance": 1, "q3": 1, "Urgent": 1}
    found = api.get("/api/v1/search", params={"query": "tag:billing -tag:urgent"}).json()
    assert [m["Subject"] for m in found["messages"]] == ["Invoice 42"]


def test_tag_api(server: ServerThread, api: httpx.Client) -> None:
    send(server, subject="one", X_Tags="Keep")
    send(server, subject="two")
    first, second = [m["ID"] for m in api.get("/api/v1/messages").json()["messages"]]
    assert api.put("/api/v1/tags", json={"IDs": [first, second], "Tags": ["keep", "Shared ", "bad/chars"]}).text == "ok"
    assert api.get(f"/api/v1/message/{first}").json()["Tags"] == ["badchars", "Keep", "Shared"]
    assert api.get("/api/v1/tags").json() == ["badchars", "Keep", "Shared"]
    assert api.put("/api/v1/tags/Shared", json={"Name": "Common"}).status_code == 200
    assert api.put("/api/v1/tags/keep", json={"Name": "common"}).status_code == 200  # merges, case ignored
    assert api.get(f"/api/v1/message/{second}").json()["Tags"] == ["badchars", "Common"]
    assert api.delete("/api/v1/tags/badchars").status_code == 200
    assert api.get("/api/v1/tags").json() == ["Common"]
    unknown = api.delete("/api/v1/tags/never-used")  # Mailpit: 400 for a tag no message has
    assert unknown.status_code == 400 and unknown.json()["Error"] == "tag not found: never-used"
    assert api.put("/api/v1/tags", json={"IDs": [first], "Tags": []}).status_code == 200
    assert api.get(f"/api/v1/message/{first}").json()["Tags"] == []
    assert api.get("/api/v1/messages").json()["tags"] == ["Common"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("PUT", "/api/v1/tags", ["list"]),
    ("PUT", "/api/v1/tags", {"IDs": "x", "Tags": []}),
    ("PUT", "/api/v1/tags", {"IDs": [], "Tags": [1]}),
    ("PUT", "/api/v1/tags/never-used", {"Name": "renamed"}),
    ("DELETE", "/api/v1/tags/never-used", None),
    ("PUT", "/api/v1/tags", None),
    ("PUT", "/api/v1/tags/x", {"Name": "!!!"}),
    ("PUT", "/api/v1/tags/x", {"Name": 5}),
    ("PUT", "/api/v1/tags/x", {}),
    ("PUT", "/api/v1/tags/!!!", {"Name": "ok"}),
    ("DELETE", "/api/v1/tags/%21%21", None),
])
def test_bad_tag_requests(server: ServerThread, api: httpx.Client, method: str, path: str, body: object) -> None:
    response = api.request(method, path, json=body)
    assert response.status_code == 400, response.text
    assert response.json()["Error"]
