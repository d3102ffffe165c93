"""The README's recipe blocks as files: a block whose first line is `# NAME.py` (or `.ini`) is that file, exactly
as printed. Tests write them into a folder of their own and run them there, as a user's project would."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def between(start: str, end: str) -> str:
    """The README's text from the line starting with `start` up to `end`."""
    text = README.read_text(encoding="utf-8")
    first = text.index(start)
    return text[first:text.index(end, first)]


def files(part: str) -> dict[str, str]:
    """The blocks of `part` that start with a `# FILE` line, by file name."""
    out = {}
    for block in re.findall(r"```(?:python|ini)\n(.*?)```", part, re.S):
        first = block.splitlines()[0]
        if re.fullmatch(r"# [\w/.]+\.(py|ini)", first):
            out[first[2:]] = block
    return out


def write(folder: Path, blocks: dict[str, str]) -> Path:
    for name, text in blocks.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def run(folder: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`python ARGV` in `folder`, importable from there, with none of this run's MAILNEST_/DJANGO_/PYTEST_ settings."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MAILNEST_", "DJANGO_", "PYTEST_"))}
    environment["PYTHONPATH"] = str(folder)
    return subprocess.run([sys.executable, *argv], cwd=folder, capture_output=True, text=True, timeout=120,
                          env=environment)
