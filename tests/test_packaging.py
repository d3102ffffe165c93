"""The package as a user outside the clone gets it: a wheel with one version, an SPDX licence and its LICENSE,
installed alone into a fresh virtualenv (no test toolchain), whose `mailnest serve` starts and takes mail.

`make serve` installs that package alone as well; `make test` adds the extras.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

import mailnest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("wheel")
    # Built from a copy: pip builds in the source folder (build/, *.egg-info), and two workers building from the
    # checkout at once trip over each other's files.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    [path] = out.glob("mailnest-*.whl")
    return path, built.stdout + built.stderr


def _metadata(path: Path) -> email.message.Message:
    with zipfile.ZipFile(path) as archive:
        [name] = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_wheel_has_one_version_an_spdx_licence_and_its_licence_file(wheel: tuple[Path, str]) -> None:
    path, output = wheel
    meta = _metadata(path)
    assert meta["Version"] == mailnest.__version__
    assert path.name.startswith(f"mailnest-{mailnest.__version__}-")
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert "deprecat" not in output.lower()  # the table form of `license` warned on every build
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert any(n.startswith("mailnest/web/static/") for n in names)  # the UI ships in the wheel


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_wheel_installed_alone_serves_mail_without_the_test_toolchain(
        wheel: tuple[Path, str], tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "--quiet", str(wheel[0])],
                               capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr
    listed = subprocess.run([str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True,
                            check=True).stdout.lower()
    for tool in ("playwright", "django", "schemathesis", "pytest", "mypy"):
        assert not re.search(rf"^{tool}==", listed, re.M), f"{tool} came with the server: {listed}"
    smtp, http = _free_port(), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILNEST_")}
    server = subprocess.Popen([str(env_dir / "bin" / "mailnest"), "serve", "--smtp", f"127.0.0.1:{smtp}",
                               "--http", f"127.0.0.1:{http}", "--imap", "off", "--pop3", "off"],
                              cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{http}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, server.communicate()[0]
            assert time.monotonic() < deadline, "the installed server did not become ready in 30 s"
            time.sleep(0.1)
        with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as client:
            client.sendmail("app@example.com", ["user@example.com"], b"Subject: from the wheel\r\n\r\nhello\r\n")
        found = httpx.get(f"http://127.0.0.1:{http}/api/v1/messages", timeout=5).json()
        assert [m["Subject"] for m in found["messages"]] == ["from the wheel"]
    finally:
        server.terminate()
        server.wait(timeout=15)


def test_make_serve_installs_the_package_alone_and_make_test_the_extras() -> None:
    serve = subprocess.run(["make", "-n", "-B", "serve"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    test = subprocess.run(["make", "-n", "-B", "test"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "pip install --quiet -e .\n" in serve and "[test]" not in serve
    assert "pip install --quiet -e '.[test]'" in test
