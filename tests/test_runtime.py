"""The composition root: ports, start-up and stop, bind errors, exposure warnings."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from pathlib import Path

import pytest

from mailnest import BindError, Config, Listen, MailServer, ServerThread


def test_every_listener_reports_the_port_it_bound() -> None:
    config = Config(pop3=Listen("127.0.0.1", 0))
    with ServerThread(config) as server:
        ports = server.ports()
        assert set(ports) >= {"smtp", "http", "pop3"}
        for port in ports.values():
            assert port > 0
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert server.http_url == f"http://127.0.0.1:{ports['http']}"


def test_embedded_on_the_callers_loop() -> None:
    async def main() -> None:
        async with MailServer(Config()) as server:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.smtp_port)
            assert (await reader.readline()).startswith(b"220")
            writer.close()

    asyncio.run(main())


def test_start_is_fast_and_stop_leaves_nothing_behind() -> None:
    before_threads = {t.ident for t in threading.enumerate()}
    started = time.perf_counter()
    server = ServerThread(Config(tls=True)).start()
    elapsed = time.perf_counter() - started
    port = server.smtp_port
    database_dir = server.store.path.parent
    cert = server.tls_cert
    assert database_dir.exists() and cert.exists()
    server.stop()
    assert elapsed < 2  # the goal is 150 ms (benchmarks/README.md); generous here for loaded CI machines
    assert {t.ident for t in threading.enumerate()} <= before_threads
    assert not database_dir.exists()
    assert not cert.exists()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1)


def test_a_busy_port_raises_a_clear_error_instead_of_hanging() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for config in (Config(smtp=Listen("127.0.0.1", port)), Config(http=Listen("127.0.0.1", port))):
            with pytest.raises(BindError, match=f"127.0.0.1:{port}"):
                ServerThread(config).start()


def test_exposed_listeners_without_authentication_are_warned_about(caplog: pytest.LogCaptureFixture,
                                                                   tmp_path: Path) -> None:
    caplog.set_level(logging.WARNING, logger="mailnest")
    with ServerThread(Config(smtp=Listen("0.0.0.0", 0), http=Listen("127.0.0.1", 0))):
        pass
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("SMTP listens on 0.0.0.0" in w and "--auth-file" in w for w in warnings), warnings
    assert not any("HTTP listens" in w for w in warnings)
    caplog.clear()
    users = tmp_path / "users"
    users.write_text("u:p\n")
    with ServerThread(Config(smtp=Listen("0.0.0.0", 0), auth_file=users)):
        pass
    assert not [r for r in caplog.records if "listens on" in r.getMessage()]


def test_the_ports_file_goes_when_the_embedded_server_stops(tmp_path: Path) -> None:
    ports_file = tmp_path / "ports.json"
    with ServerThread(Config(ports_file=ports_file)) as server:
        assert f'"smtp": {server.smtp_port}' in ports_file.read_text()
    assert not ports_file.exists()  # a stale file would point scripts at dead ports
