"""Live events: Mailpit's websocket (/api/events) and the same stream over SSE (/api/v1/events), with real clients
(the websockets library, httpx streaming), the origin check, and a client too slow to keep up."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket as socket_module
import struct
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from mailnest import Config, ServerThread, events
from mailnest.events import Event
from mailnest.models import Address, Envelope, Stats, Summary
from mailnest.web.events import batches, frames, origin_allowed
from tests.conftest import send

# -- the pure parts ------------------------------------------------------------------------------------------


def summary(id_: str = "abc") -> Summary:
    return Summary(id=id_, uid=1, message_id="m@x", read=False, from_=Address("A", "a@example.com"), to=(),
                   cc=(), bcc=(), reply_to=(), subject="Hi", created=datetime(2026, 1, 2, tzinfo=UTC), size=10,
                   attachments=0, snippet="", tags=("t",))


def decoded(event: Event) -> list[dict[str, Any]]:
    return [json.loads(text) for text in frames(event)]


def test_frames_follow_mailpit_shapes() -> None:
    new = decoded(events.MessageAdded(summary()))
    assert new[0]["Type"] == "new" and new[0]["Data"]["ID"] == "abc" and new[0]["Data"]["Tags"] == ["t"]
    assert decoded(events.ReadChanged(("a", "b"), (1, 2), True)) == [
        {"Type": "update", "Data": {"ID": "a", "Read": True}}, {"Type": "update", "Data": {"ID": "b", "Read": True}}]
    assert decoded(events.TagsChanged(("a",), ("x",))) == [{"Type": "update", "Data": {"ID": "a", "Tags": ["x"]}}]
    assert decoded(events.FlagsChanged(("a",), (1,), (frozenset({"\\Flagged"}),))) == []
    assert decoded(events.MessagesFiled(("a",), (1,), "Work")) == []
    assert decoded(events.FolderRenamed((1,), "Work", "Jobs")) == []
    assert decoded(events.MessagesDeleted(("a",), (1,))) == [{"Type": "delete", "Data": {"ID": "a", "IDs": ["a"]}}]
    many = tuple(str(i) for i in range(500))
    uids = tuple(range(500))
    assert decoded(events.MessagesDeleted(many, uids)) == [{"Type": "prune", "Data": {"IDs": list(many)}}]
    assert decoded(events.ReadChanged(many, uids, True)) == [{"Type": "prune", "Data": None}]
    assert decoded(events.TagsChanged(many, ("x",), uids)) == [{"Type": "prune", "Data": None}]
    # IMAP-only changes of many messages are still nothing of Mailpit's (the UI does not reload for them)
    assert decoded(events.FlagsChanged(many, uids, (frozenset(),) * 500)) == []
    assert decoded(events.MessagesPruned(("a",), (1,))) == [{"Type": "prune", "Data": {"IDs": ["a"]}}]
    assert decoded(events.MessagesPruned(tuple(str(i) for i in range(5000)), tuple(range(5000)))) == [
        {"Type": "prune", "Data": None}]
    assert decoded(events.AllDeleted()) == [{"Type": "truncate", "Data": None}]
    assert decoded(events.StatsChanged(Stats(3, 1, 100)))[0]["Data"]["Total"] == 3
    assert decoded(events.ErrorReported("disk full")) == [
        {"Type": "error", "Data": {"Level": "error", "Type": "", "IP": "", "Message": "disk full"}}]
    assert decoded(events.ErrorReported("slow", level="warning", kind="too-slow", ip="::1")) == [
        {"Type": "error", "Data": {"Level": "warning", "Type": "too-slow", "IP": "::1", "Message": "slow"}}]


def test_batches_join_events_by_lines_within_a_size() -> None:
    assert batches(["a", "b", "c"]) == ["a\nb\nc"]
    assert batches(["aaaa", "bbbb", "cc"], limit=9) == ["aaaa\nbbbb", "cc"]
    assert batches(["x" * 20], limit=9) == ["x" * 20]
    assert batches([]) == []


@pytest.mark.parametrize(("headers", "allowed", "ok"), [
    ({"host": "127.0.0.1:8025"}, (), True),
    ({"host": "127.0.0.1:8025", "origin": "http://127.0.0.1:8025"}, (), True),
    ({"host": "127.0.0.1:8025", "origin": "http://evil.example"}, (), False),
    ({"host": "127.0.0.1:8025", "origin": "null"}, (), False),
    ({"host": "127.0.0.1:8025", "origin": "http://app.test:3000"}, ("http://app.test:3000",), True),
    ({"host": "127.0.0.1:8025", "origin": "http://other.test"}, ("http://app.test:3000",), False),
    ({"host": "127.0.0.1:8025", "origin": "http://other.test"}, ("*",), True),
])
def test_origin_check(headers: dict[str, str], allowed: tuple[str, ...], ok: bool) -> None:
    assert origin_allowed(headers, allowed) is ok


# -- websocket ------------------------------------------------------------------------------------------------


def ws_url(server: ServerThread, path: str = "/api/events") -> str:
    return server.http_url.replace("http://", "ws://") + path


@pytest.fixture
def socket(server: ServerThread) -> Iterator[ClientConnection]:
    with connect(ws_url(server), open_timeout=10) as ws:
        yield ws


def next_of(ws: ClientConnection, type_: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        for line in str(ws.recv(timeout=max(0.01, deadline - time.monotonic()))).split("\n"):
            event = json.loads(line)
            if event["Type"] == type_:
                return event


def test_websocket_stream(server: ServerThread, api: httpx.Client, socket: ClientConnection) -> None:
    first = json.loads(str(socket.recv(timeout=10)).split("\n")[0])
    assert first == {"Type": "stats", "Data": {"Total": 0, "Unread": 0, "Version": first["Data"]["Version"]}}
    send(server, subject="live one")
    new = next_of(socket, "new")["Data"]
    assert new["Subject"] == "live one" and new["Read"] is False and "Snippet" in new
    assert next_of(socket, "stats")["Data"]["Total"] == 1
    api.put("/api/v1/messages", json={"IDs": [new["ID"]], "Read": True})
    assert next_of(socket, "update")["Data"] == {"ID": new["ID"], "Read": True}
    api.put("/api/v1/tags", json={"IDs": [new["ID"]], "Tags": ["Live"]})
    assert next_of(socket, "update")["Data"] == {"ID": new["ID"], "Tags": ["Live"]}
    api.request("DELETE", "/api/v1/messages", json={"IDs": [new["ID"]]})
    assert next_of(socket, "delete")["Data"]["ID"] == new["ID"]
    send(server, subject="two")
    next_of(socket, "new")
    api.delete("/api/v1/messages")
    assert next_of(socket, "truncate")["Data"] is None
    assert next_of(socket, "stats")["Data"]["Total"] == 0


def test_websocket_refuses_other_sites(server: ServerThread) -> None:
    with pytest.raises(InvalidStatus) as caught:
        connect(ws_url(server), origin="http://evil.example", open_timeout=10)
    assert caught.value.response.status_code == 403
    with connect(ws_url(server), origin=server.http_url, open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["Type"] == "stats"


@pytest.mark.parametrize("server_config", [Config(cors_origins=("http://app.test:3000",))])
def test_cors_origins_may_use_the_stream(server: ServerThread, api: httpx.Client) -> None:
    with connect(ws_url(server), origin="http://app.test:3000", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["Type"] == "stats"
    with pytest.raises(InvalidStatus):
        connect(ws_url(server), origin="http://else.test", open_timeout=10)
    response = api.get("/api/v1/info", headers={"Origin": "http://app.test:3000"})
    assert response.headers["access-control-allow-origin"] == "http://app.test:3000"
    assert "access-control-allow-origin" not in api.get("/api/v1/info", headers={"Origin": "http://x.test"}).headers
    preflight = api.options("/api/v1/messages", headers={"Origin": "http://app.test:3000",
                                                         "Access-Control-Request-Method": "DELETE"})
    assert preflight.status_code == 200 and "DELETE" in preflight.headers["access-control-allow-methods"]


def big_message(index: int, size: int = 3000) -> bytes:
    subject = f"bulk {index} " + "x" * size
    return f"From: a@example.com\r\nTo: b@example.com\r\nSubject: {subject}\r\n\r\nbody\r\n".encode()


class Closed(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason


class StuckClient:
    """A websocket client on a raw socket with a tiny receive buffer, which does not read until told to: the
    server's writes to it block as they would to a stalled browser tab on a slow network."""

    def __init__(self, port: int) -> None:
        self.sock = socket_module.socket()
        self.sock.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                          .encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n")
        assert head.split(b"\r\n")[0].split()[1] == b"101", head

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buffer += chunk

    def _read(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def recv(self) -> list[dict[str, Any]]:
        """The events of the next text frame (server frames are unmasked; one JSON object per line).
        A close frame raises `Closed` with its code and reason."""
        while True:
            first, second = self._read(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack(">H", self._read(2))[0]
            elif size == 127:
                size = struct.unpack(">Q", self._read(8))[0]
            payload = self._read(size)
            if first & 0x0F == 8:
                raise Closed(struct.unpack(">H", payload[:2])[0], payload[2:].decode())
            if first & 0x0F == 1:
                return [json.loads(line) for line in payload.split(b"\n")]

    def close(self) -> None:
        self.sock.close()


def test_a_stuck_client_never_slows_ingest_and_is_dropped(server: ServerThread,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mailnest.http")
    envelope = Envelope(mail_from="a@example.com", rcpt_tos=("b@example.com",))

    async def ingest(count: int) -> None:
        await asyncio.gather(*(server.store.add(big_message(i), envelope) for i in range(count)))

    stuck = StuckClient(server.http_port)
    try:
        with connect(ws_url(server), open_timeout=10) as healthy:
            assert json.loads(healthy.recv(timeout=10))["Type"] == "stats"
            started = time.monotonic()
            server.call(ingest(3000), timeout=120)
            assert time.monotonic() - started < 30  # the stuck client held nothing up
            # The healthy client is kept in step: it gets every message, or, when more arrived between two
            # fan-outs than a client may queue (3,000 at once on a busy machine), a reload frame (prune, no IDs)
            # in their place. Either way it stays connected and hears of the next message.
            news, reloaded = 0, False
            while news < 3000 and not reloaded:
                for line in str(healthy.recv(timeout=30)).split("\n"):
                    event = json.loads(line)
                    news += event["Type"] == "new"
                    assert event["Type"] != "prune" or event["Data"] is None, event
                    reloaded = reloaded or event["Type"] == "prune"
            last = server.call(server.store.add(big_message(3000), envelope), timeout=30)
            while True:
                frames = [json.loads(line) for line in str(healthy.recv(timeout=30)).split("\n")]
                if any(f["Type"] == "new" and f["Data"]["ID"] == last.id for f in frames):
                    break
        # The stuck client, once it reads again, finds what fitted in the buffers, then the end: it was dropped
        # (with a close frame saying why where the frame could still be written).
        types: list[str] = []
        with contextlib.suppress(EOFError):
            try:
                while True:
                    types.extend(event["Type"] for event in stuck.recv())
            except Closed as closed:
                assert closed.code == 1013 and "too slow" in closed.reason
        assert types.count("new") < 3000
        assert any("too slow" in r.getMessage() for r in caplog.records), caplog.text
    finally:
        stuck.close()


@pytest.mark.parametrize("server_config", [Config(max_event_queue=20)])
def test_the_event_queue_limit_is_the_configured_one(server: ServerThread, caplog: pytest.LogCaptureFixture) -> None:
    """With --max-event-queue 20, a stuck client is dropped after about 20 events, not 1,000."""
    caplog.set_level(logging.INFO, logger="mailnest.http")
    envelope = Envelope(mail_from="a@example.com", rcpt_tos=("b@example.com",))

    async def ingest(count: int) -> None:
        for i in range(count):  # one commit each: events trickle, as from a slow sender
            await server.store.add(big_message(i, 50_000), envelope)

    stuck = StuckClient(server.http_port)
    try:  # 200 events of 50 KB: more than the kernel's buffers hold, so the server's sends block
        server.call(ingest(200), timeout=60)
        deadline = time.monotonic() + 10
        while not any("too slow" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, "the stuck client was not dropped"
            time.sleep(0.05)
        assert "more than 20 events" in caplog.text
    finally:
        stuck.close()


# -- server-sent events ----------------------------------------------------------------------------------------


def sse_events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    for line in response.iter_lines():
        if line.startswith("data: "):
            yield json.loads(line[6:])


def test_server_sent_events(server: ServerThread, api: httpx.Client) -> None:
    with httpx.Client(base_url=server.http_url, timeout=10) as client, client.stream("GET", "/api/v1/events") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        received = sse_events(stream)
        assert next(received)["Type"] == "stats"
        send(server, subject="over SSE")
        event = next(e for e in received if e["Type"] == "new")
        assert event["Data"]["Subject"] == "over SSE"
        api.put("/api/v1/messages", json={"IDs": [event["Data"]["ID"]], "Read": True})
        assert next(e for e in received if e["Type"] == "update")["Data"]["Read"] is True
    assert api.get("/api/v1/events", headers={"Origin": "http://evil.example"}).status_code == 403


def test_many_clients_come_and_go(server: ServerThread, api: httpx.Client) -> None:
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(connect(ws_url(server), open_timeout=10)) for _ in range(5)]
        for ws in sockets:
            json.loads(ws.recv(timeout=10))
        sockets[0].close()
        sockets[1].socket.close()  # gone without a goodbye
        send(server, subject="for the rest")
        for ws in sockets[2:]:
            assert next_of(ws, "new")["Data"]["Subject"] == "for the rest"
    assert api.get("/livez").status_code == 200


@pytest.mark.parametrize("server_config", [Config(max_event_queue=20)])
def test_a_stuck_event_stream_client_is_ended(server: ServerThread, api: httpx.Client,
                                              caplog: pytest.LogCaptureFixture) -> None:
    """The SSE stream too: a reader that stopped reading is ended once 20 events wait, and the others go on."""
    caplog.set_level(logging.INFO, logger="mailnest.http")
    stuck = socket_module.socket()
    stuck.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", server.http_port))
    stuck.sendall(f"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1:{server.http_port}\r\n\r\n".encode())
    envelope = Envelope(mail_from="a@example.com", rcpt_tos=("b@example.com",))

    async def ingest(count: int) -> None:
        for i in range(count):
            await server.store.add(big_message(i, 50_000), envelope)

    try:
        with httpx.Client(base_url=server.http_url, timeout=10) as client, \
                client.stream("GET", "/api/v1/events") as stream:
            received = sse_events(stream)
            assert next(received)["Type"] == "stats"
            server.call(ingest(3), timeout=60)
            assert next(e for e in received if e["Type"] == "new")["Data"]["Subject"].startswith("bulk 0")
            # The healthy reader is stopped now too (it is inside this `with`): so run the flood after it.
        server.call(ingest(200), timeout=60)
        deadline = time.monotonic() + 10
        while "ended a slow event-stream client" not in caplog.text:
            assert time.monotonic() < deadline, "the stuck SSE client was not ended"
            time.sleep(0.05)
        assert "more than 20 events" in caplog.text
        assert api.get("/livez").text == "ok"
    finally:
        stuck.close()


# -- the hub ---------------------------------------------------------------------------------------------------


def test_hub_offers_each_event_only_to_subscribers_of_its_type() -> None:
    async def scenario() -> None:
        hub = events.Hub()
        news = hub.subscribe(types=(events.NEW,))
        everything = hub.subscribe()
        read = events.ReadChanged(("a",), (1,), True)
        added = events.MessageAdded(summary("n"))
        hub.publish(read)
        hub.publish(added)
        assert (await news.get(timeout=1)) is added
        assert news.get_nowait() is None
        assert [everything.get_nowait(), everything.get_nowait()] == [read, added]
        waiting = asyncio.ensure_future(news.get())
        await asyncio.sleep(0)
        news.close()  # a consumer waiting on a closed subscription is woken with None
        assert await asyncio.wait_for(waiting, 1) is None
        later = events.MessageAdded(summary("after close"))
        hub.publish(later)
        assert hub.subscriber_count == 1 and everything.get_nowait() is later

    asyncio.run(scenario())


def test_hub_publish_costs_one_append_per_subscriber() -> None:
    """Issue 12 item 8: publishing to 2,000 subscribers (long-polls, IDLE sessions) must stay cheap, and a full
    subscriber loses events (and is told so) instead of growing or slowing the publisher."""

    async def scenario() -> float:
        hub = events.Hub()
        subs = [hub.subscribe(maxsize=100) for _ in range(2000)]
        sent = [events.MessageAdded(summary(str(i))) for i in range(200)]
        started = time.perf_counter()
        for event in sent:
            hub.publish(event)
        elapsed = time.perf_counter() - started
        assert all(s.lagged and len(s._items) == 100 for s in subs)
        assert subs[0].get_nowait() is sent[0]
        return elapsed

    elapsed = asyncio.run(scenario())
    assert elapsed < 1.0, f"400,000 offers took {elapsed:.2f}s"  # about 0.1 s; a lock or copy per offer is not


def test_a_broadcast_renders_each_event_once_for_every_client() -> None:
    """What MailHog's websocket needs: an async renderer (it reads the store) run once per event, whatever the
    number of clients, and each frame a message of its own."""

    async def scenario() -> None:
        hub = events.Hub()
        rendered: list[object] = []

        async def render(event: Event) -> list[str]:
            assert isinstance(event, events.MessageAdded)
            rendered.append(event.id)
            await asyncio.sleep(0)  # as a store read would
            return [f"message {event.id}"]

        feed = events.Broadcast(hub, render, max_queue=10, types=(events.NEW,))
        clients = [feed.attach() for _ in range(500)]
        await asyncio.sleep(0)  # the pump subscribes
        for i in range(3):
            hub.publish(events.MessageAdded(summary(str(i))))
        hub.publish(events.ReadChanged(("x",), (9,), True))  # not asked for: never rendered
        got: dict[int, list[str]] = {}
        while any(len(got.get(n, [])) < 3 for n in range(len(clients))):
            for n, client in enumerate(clients):
                if len(got.setdefault(n, [])) < 3:
                    got[n].extend(await feed.next_messages(client, timeout=5) or ())
        assert rendered == ["0", "1", "2"]
        assert all(messages == ["message 0", "message 1", "message 2"] for messages in got.values())
        for client in clients:
            feed.detach(client)
        assert hub.subscriber_count == 0 or (await asyncio.sleep(0.01) is None and hub.subscriber_count == 0)

    asyncio.run(scenario())
