"""Podman, driven from the tests: build the Dockerfile, run its image, read what the image says of itself.

`podman build --isolation chroot` needs nothing from the sandbox. `podman run` with its defaults is refused here:
crun cannot set RLIMIT_NOFILE or RLIMIT_NPROC to podman's defaults (no CAP_SYS_RESOURCE), and with limits the
process already has it stops at the hybrid cgroup hierarchy, which runc accepts. `run_options()` therefore tries
podman's defaults first, and then runc with the limits this process has, and keeps the first that starts the
image; every other option of a run is the image's own (entrypoint, command, user, environment, volume, ports).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import resource
import shutil
import subprocess
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.container.debian_base import cache_dir

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT = 900.0
# Every build is also tagged so: removing a test's own tag then leaves the image and its steps, the cache of the
# next build (podman removes the untagged parents of an image it deletes).
LAST_BUILD = "localhost/mailnest-test:last-build"
_names = itertools.count(1)


class PodmanError(RuntimeError):
    """A podman command failed; the message holds its command line and what it printed."""


def podman(*args: str, timeout: float = 120.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    command = [shutil.which("podman") or "podman", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise PodmanError(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def unique_name(what: str) -> str:
    return f"mailnest-test-{what}-{os.getpid()}-{next(_names)}"


def unique_tag(repository: str) -> str:
    """A tag of this run's own under localhost/, removed by whoever made it."""
    return f"localhost/{repository}:{uuid.uuid4().hex[:12]}"


def snapshot_context(into: Path, repo: Path = REPO) -> Path:
    """A copy of the build context as it is now: the Dockerfile, .dockerignore and the paths its `!` lines let
    in. Built from the copy, the image holds exactly these files however the working tree changes meanwhile."""
    ignore = (repo / ".dockerignore").read_text()
    kept = [line[1:].strip().rstrip("/") for line in ignore.splitlines() if line.startswith("!")]
    into.mkdir(parents=True, exist_ok=True)
    for name in ("Dockerfile", ".dockerignore", *kept):
        source, target = repo / name, into / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copyfile(source, target)
    return into


def build(base: str, tag: str, context: Path = REPO) -> float:
    """Build the repository's Dockerfile on `base`; the seconds it took. The docker format keeps HEALTHCHECK
    (podman drops it from OCI images)."""
    started = time.monotonic()
    result = podman("build", "--isolation", "chroot", "--format", "docker", "--build-arg", f"BASE={base}",
                    "--tag", tag, "--tag", LAST_BUILD, str(context), timeout=BUILD_TIMEOUT)
    seconds = time.monotonic() - started
    _forget_earlier_builds(re.findall(r"^--> (?:Using cache )?([0-9a-f]{11,64})$", result.stdout, re.M))
    return seconds


def _forget_earlier_builds(steps: list[str]) -> None:
    """Remove the step images of the previous build that this one no longer uses.

    Every step of a build leaves an image, the layer cache that makes the next build fast. A change to the code
    leaves new mailnest layers (about 70 MB) each time; without this they would pile up on a machine kept
    between sessions. Images still in use (a container, a child, another tag) are refused and stay."""
    record = cache_dir() / "last-build-steps.txt"
    record.parent.mkdir(parents=True, exist_ok=True)
    earlier = record.read_text().split() if record.exists() else []
    record.write_text("\n".join(steps) + "\n")
    for image_id in reversed(earlier):  # the last steps first: their parents are refused while they exist
        if not any(step.startswith(image_id) or image_id.startswith(step) for step in steps):
            podman("rmi", image_id, check=False)


def code_digest(package: Path = REPO / "src" / "mailnest") -> str:
    """A digest of the package's Python files (names and bytes): what the image's copy must also give."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def inspect_image(tag: str) -> dict[str, Any]:
    info: list[dict[str, Any]] = json.loads(podman("image", "inspect", tag).stdout)
    return info[0]


def _sandbox_limits() -> tuple[str, str]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return f"nofile={soft}:{hard}", "nproc=4096:4096"


def _sandbox_options() -> list[str]:
    return ["--runtime", "runc", *(arg for limit in _sandbox_limits() for arg in ("--ulimit", limit))]


def containers_conf(options: Sequence[str]) -> str | None:
    """`run_options()` as a containers.conf, for tools that start containers themselves (podman-compose)."""
    if not options:
        return None
    assert list(options) == _sandbox_options(), options
    limits = ", ".join(f'"{limit}"' for limit in _sandbox_limits())
    return f'[containers]\ndefault_ulimits = [{limits}]\n\n[engine]\nruntime = "runc"\n'


def run_options(tag: str) -> list[str]:
    """The `podman run` options that start `tag` on this machine: none where podman works as shipped."""
    candidates: list[list[str]] = [[]]
    if shutil.which("runc"):
        candidates.append(_sandbox_options())
    errors = []
    for options in candidates:
        result = podman("run", "--rm", *options, "--entrypoint", "python3", tag, "-c", "pass", check=False)
        if result.returncode == 0:
            return options
        errors.append(f"podman run {' '.join(options) or '(defaults)'}: {result.stderr.strip()[-600:]}")
    hint = "" if shutil.which("runc") else " (install the Debian package runc)"
    raise PodmanError("no way to run a container here" + hint + ":\n" + "\n".join(errors))


class Container:
    """A container of the image, started detached; its ports published on 127.0.0.1 at ports podman picks."""

    def __init__(self, tag: str, options: Sequence[str], *, args: Sequence[str] = (), env: dict[str, str] | None = None,
                 volume: str | None = None, network: str | None = None, alias: str | None = None,
                 publish: Sequence[int] = (1025, 8025, 1143, 1110)) -> None:
        self.name = unique_name("run")
        command = ["run", "--detach", "--name", self.name, *options,
                   # The sandbox has no systemd for podman's health timers: the check is run by hand instead.
                   "--health-interval", "disable"]
        for port in publish:
            command += ["--publish", f"127.0.0.1::{port}"]
        for key, value in (env or {}).items():
            command += ["--env", f"{key}={value}"]
        if volume:
            command += ["--volume", f"{volume}:/data"]
        if network:
            command += ["--network", network]
        if alias:
            command += ["--network-alias", alias]
        podman(*command, tag, *args)
        self.started = time.monotonic()

    def port(self, inner: int) -> int:
        """The host port published for the container's `inner` TCP port."""
        mapping = podman("port", self.name, f"{inner}/tcp").stdout.strip().splitlines()[0]
        return int(mapping.rpartition(":")[2])

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr

    def healthcheck(self) -> subprocess.CompletedProcess[str]:
        """Run the image's HEALTHCHECK command in the container, as the engine's timer would."""
        return podman("healthcheck", "run", self.name, check=False, timeout=60)

    def wait_healthy(self, deadline: float = 60.0) -> float:
        """Seconds from `podman run` until the HEALTHCHECK passed; fails with the logs past the deadline."""
        until = time.monotonic() + deadline
        while True:
            result = self.healthcheck()
            if result.returncode == 0:
                return time.monotonic() - self.started
            if time.monotonic() > until:
                raise AssertionError(f"{self.name} not healthy after {deadline:g}s: {result.stdout}{result.stderr}\n"
                                     f"{self.logs()[-3000:]}")
            time.sleep(0.2)

    def state(self) -> dict[str, Any]:
        info: list[dict[str, Any]] = json.loads(podman("container", "inspect", self.name).stdout)
        state: dict[str, Any] = info[0]["State"]
        return state

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman("exec", self.name, *command, check=False)

    def terminate(self, deadline: float = 30.0) -> tuple[int, float]:
        """Send SIGTERM to PID 1 and wait for it to exit: its exit code and the seconds it took."""
        started = time.monotonic()
        podman("kill", "--signal", "TERM", self.name)
        try:
            podman("wait", self.name, timeout=deadline)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running {deadline:g}s after SIGTERM:\n"
                                 f"{self.logs()[-3000:]}") from None
        return int(self.state()["ExitCode"]), time.monotonic() - started

    def remove(self) -> None:
        podman("rm", "--force", "--volumes", self.name, check=False)
