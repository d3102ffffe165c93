"""`mailnest readyz`: exit 0 when a running mailnest is ready, 1 when it is not or cannot be reached (after
`--wait SECONDS` if given), 2 for a URL that cannot be used."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from tests.test_cli import MAILNEST, serving, stop


def readyz(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MAILNEST_")}
    return subprocess.run([*MAILNEST, "readyz", *args], capture_output=True, text=True, timeout=timeout,
                          env={**environment, **(env or {})})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_ready_is_exit_0_from_the_url_or_the_servers_own_variables(tmp_path: Path) -> None:
    with serving(tmp_path) as (proc, ports):
        assert readyz("--url", f"http://127.0.0.1:{ports['http']}").returncode == 0
        assert readyz("--url", f"http://127.0.0.1:{ports['http']}/").returncode == 0
        by_env = readyz(env={"MAILNEST_HTTP": f"0.0.0.0:{ports['http']}"})  # any address: asks loopback
        assert by_env.returncode == 0, by_env.stderr
        stop(proc)


def test_nothing_listening_is_exit_1_with_the_reason() -> None:
    port = free_port()
    result = readyz("--url", f"http://127.0.0.1:{port}/")
    assert result.returncode == 1
    assert result.stderr.startswith(f"mailnest readyz: not ready: cannot reach http://127.0.0.1:{port}/readyz")
    assert "Traceback" not in result.stderr


def test_wait_asks_again_until_the_server_is_up(tmp_path: Path) -> None:
    port = free_port()
    waiting = subprocess.Popen([*MAILNEST, "readyz", "--url", f"http://127.0.0.1:{port}", "--wait", "60"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        assert waiting.poll() is None, waiting.communicate()  # still waiting: nothing listens yet
        server = subprocess.Popen([*MAILNEST, "serve", "--smtp", "127.0.0.1:0", "--http", f"127.0.0.1:{port}",
                                   "--imap", "off", "--pop3", "off"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True)
        try:
            assert waiting.wait(timeout=60) == 0, waiting.communicate()
        finally:
            server.terminate()
            server.communicate(timeout=15)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()


def test_wait_gives_up_after_its_time_with_exit_1() -> None:
    started = time.monotonic()
    result = readyz("--url", f"http://127.0.0.1:{free_port()}", "--wait", "1.5")
    assert result.returncode == 1
    assert "not ready after waiting 1.5s" in result.stderr
    assert time.monotonic() - started >= 1.0


def test_a_bad_url_is_exit_2() -> None:
    for url in ("ftp://127.0.0.1/", "127.0.0.1:8025", "http://127.0.0.1:99999/", "http://h/?q=1"):
        result = readyz("--url", url)
        assert result.returncode == 2, (url, result.stderr)
        assert result.stderr.startswith("mailnest readyz: error: --url:"), result.stderr
    result = readyz(env={"MAILNEST_HTTP": "off"})
    assert result.returncode == 2 and "MAILNEST_HTTP is off" in result.stderr
    result = readyz(env={"MAILNEST_WEBROOT": "/../"})
    assert result.returncode == 2 and "MAILNEST_WEBROOT" in result.stderr
