"""The container image's size and start-up time: figures for benchmarks/README.md, not a pass/fail test.

Builds the repository's Dockerfile with podman on the Debian base the tests make (tests/container/debian_base.py:
bookworm from the machine's apt mirror, cached under ~/.cache/mailnest-tests), then prints

- the image's size as `podman image inspect` gives it, the base's, and what the Dockerfile adds, layer by layer;
- the start-up time over several rounds: from `podman run` until the container's `/readyz` answers 200 on its
  published port (what a user or compose waits for), and from the moment the runtime says the container started
  (State.StartedAt) until then (mailnest's own start);
- the stop time: from SIGTERM to PID 1 until the container has exited.

    python benchmarks/container_image.py               # 5 rounds
    python benchmarks/container_image.py --rounds 10

Needs root, podman, runc and debootstrap (as the tests do); the first run makes the base (one to two minutes).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.container import podman as pm  # noqa: E402
from tests.container.debian_base import ensure_base  # noqa: E402


def _mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def _started_at(name: str) -> float:
    """The container's State.StartedAt as a Unix time (podman gives RFC 3339 with nanoseconds)."""
    state = json.loads(pm.podman("container", "inspect", name).stdout)[0]["State"]
    match = re.fullmatch(r"(.+?)(\.\d{1,6})?\d*(Z|[+-]\d\d:\d\d)", str(state["StartedAt"]))
    if match is None:
        raise SystemExit(f"cannot read State.StartedAt {state['StartedAt']!r}")
    zone = "+00:00" if match.group(3) == "Z" else match.group(3)
    return datetime.fromisoformat(match.group(1) + (match.group(2) or "") + zone).timestamp()


def one_round(tag: str, options: list[str]) -> tuple[float, float, float]:
    """(run to ready, started to ready, SIGTERM to exited), in seconds."""
    began_wall, began = time.time(), time.monotonic()
    container = pm.Container(tag, options, publish=(8025,))
    try:
        url = f"http://127.0.0.1:{container.port(8025)}/readyz"
        deadline = began + 120
        with httpx.Client(timeout=5) as client:
            while True:
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"not ready after 120 s:\n{container.logs()[-2000:]}")
                time.sleep(0.02)
        ready = time.monotonic()
        started = _started_at(container.name) - began_wall + began
        code, stop = container.terminate()
        if code != 0:
            raise SystemExit(f"exit code {code} after SIGTERM:\n{container.logs()[-2000:]}")
        return ready - began, ready - started, stop
    finally:
        container.remove()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="containers started, one after another (default 5)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds: at least 1")
    podman, maker = shutil.which("podman"), shutil.which("debootstrap")
    if podman is None or maker is None:
        parser.error("needs podman and debootstrap (Debian packages podman, debootstrap, runc)")

    started = time.monotonic()
    base, how = ensure_base(podman, maker)
    print(f"base {base} ({how}, {time.monotonic() - started:.0f} s)")
    tag = pm.unique_tag("mailnest-bench")
    seconds = pm.build(base, tag)
    try:
        print(f"build {seconds:.1f} s (with whatever layer cache podman has)")
        image, base_info = pm.inspect_image(tag), pm.inspect_image(base)
        print(f"image size {_mb(image['Size'])}: base {_mb(base_info['Size'])}, "
              f"added by the Dockerfile {_mb(image['Size'] - base_info['Size'])}")
        layers = pm.podman("history", "--format", "{{.Size}}\t{{.CreatedBy}}", tag).stdout.splitlines()
        for line in layers:
            size, _, step = line.partition("\t")
            if size.strip() not in ("0B", "0 B"):
                print(f"  {size:>9}  {step[:90]}")
        options = pm.run_options(tag)
        rounds = [one_round(tag, options) for _ in range(args.rounds)]
        for label, values in zip(("run -> /readyz 200", "started -> /readyz 200", "SIGTERM -> exited"),
                                 zip(*rounds, strict=True), strict=True):
            print(f"{label:24} median {statistics.median(values):.2f} s  "
                  f"(min {min(values):.2f}, max {max(values):.2f}, {len(values)} rounds)")
    finally:
        pm.podman("rmi", tag, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
