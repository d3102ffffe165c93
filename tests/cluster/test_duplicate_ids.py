"""--ignore-duplicate-ids on a team instance: two `mailnest serve` nodes on one PostgreSQL, given the same messages
at the same moment, keep exactly one of each Message-ID, and every client gets its 250."""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .nodes import Node, wait_until

COUNT = 40


def deliver(node: Node, number: int) -> tuple[int, bytes]:
    raw = (f"From: app@example.com\r\nTo: team@example.com\r\nSubject: order {number}\r\n"
           f"Message-ID: <order-{number}@shop.test>\r\n\r\nconfirmation\r\n").encode()
    with smtplib.SMTP("127.0.0.1", node.ports["smtp"], timeout=30) as client:
        client.ehlo()
        client.mail("app@example.com")
        client.rcpt("team@example.com")
        return client.data(raw)


def test_two_nodes_given_one_message_id_at_once_keep_exactly_one(start_node: Callable[..., Node]) -> None:
    nodes = [start_node("--ignore-duplicate-ids"), start_node("--ignore-duplicate-ids")]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda job: deliver(*job), [(node, n) for n in range(COUNT) for node in nodes]))
    assert all(code == 250 for code, _ in replies), replies
    assert sum(b"duplicate" in text for _, text in replies) == COUNT

    def stored(node: Node) -> list[str]:
        with node.api() as api:
            return [m["MessageID"] for m in api.get("/api/v1/messages", params={"limit": 500}).json()["messages"]]

    wait_until(lambda: all(len(stored(node)) >= COUNT for node in nodes), what="every message on every node")
    for node in nodes:
        assert sorted(stored(node)) == sorted(f"order-{n}@shop.test" for n in range(COUNT))
