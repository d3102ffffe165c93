"""How long mailnest.mime takes on the messages SMTP ingest sees. Prints figures; no pass/fail.

    .venv/bin/python benchmarks/mime_parse.py

Each figure is the best of several rounds (the least disturbed by other processes). The calibration line is a
fixed pure-Python loop, to compare machines: about 8 us on an idle modern laptop core.
"""

from __future__ import annotations

import sys
import timeit
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.corpus import build

from mailnest import mime


def best(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Best time per call, in microseconds."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    calibration = best(lambda: sum(range(1000)), 2000)
    typical = build.typical_text_message()
    big, _ = build.attachment_message(5_000_000)
    big_lf, _ = build.attachment_message(5_000_000, line_ending=b"\n")
    newsletter = build.html_message(100_000)
    rows = [
        ("calibration: sum(range(1000))", calibration, ""),
        (f"parse: typical text message ({len(typical)} B)", best(lambda: mime.parse(typical), 2000), "target < 100 us"),
        (f"structure: typical text message ({len(typical)} B)", best(lambda: mime.structure(typical), 2000), ""),
        (f"parse: 5 MB base64 attachment, CRLF ({len(big)} B)", best(lambda: mime.parse(big), 20), "target < 5000 us"),
        (f"parse: 5 MB base64 attachment, LF ({len(big_lf)} B)", best(lambda: mime.parse(big_lf), 20), ""),
        (f"structure: 5 MB base64 attachment ({len(big)} B)", best(lambda: mime.structure(big), 10), ""),
        (f"parse: HTML-only newsletter ({len(newsletter)} B)", best(lambda: mime.parse(newsletter), 200),
         "target < 1000 us"),
    ]
    width = max(len(name) for name, _, _ in rows)
    for name, micros, note in rows:
        print(f"{name:<{width}}  {micros:10.1f} us  {note}")


if __name__ == "__main__":
    main()
