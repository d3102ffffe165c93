#!/usr/bin/env python3
"""Rebuild `src/mailnest/htmlcheck/caniemail.json` from a checkout of https://github.com/hteumeuleu/caniemail.

    git clone --depth 1 https://github.com/hteumeuleu/caniemail /tmp/caniemail
    .venv/bin/python scripts/refresh_caniemail.py /tmp/caniemail

Reads each `_features/*.md` front matter (the same data caniemail.com publishes as /api/data.json) and
`_data/nicenames.yml`, keeps what the HTML check needs, and writes one compact JSON file. Needs PyYAML (installed
with the test extras); the server itself only reads the JSON. The checkout's commit goes into the file's
`source` so the shipped extract says what it was built from; update `htmlcheck/README.md` with it.
"""

from __future__ import annotations

import argparse
import datetime
import json
import pathlib
import re
import subprocess
import sys
from typing import Any

import yaml

FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)
SITE = "https://www.caniemail.com"
OUTPUT = pathlib.Path(__file__).resolve().parent.parent / "src" / "mailnest" / "htmlcheck" / "caniemail.json"


def front_matter(text: str) -> dict[str, Any]:
    """The YAML between the two `---` lines. caniemail indents its flow mappings with tabs, which Jekyll's YAML
    parser accepts and PyYAML does not: tabs become spaces (nothing in the data depends on a tab)."""
    match = FRONT_MATTER.match(text)
    if match is None:
        raise ValueError("no front matter")
    loaded = yaml.safe_load(match.group(1).replace("\t", "    "))
    if not isinstance(loaded, dict):
        raise ValueError("front matter is not a mapping")
    return loaded


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def stats(raw: Any) -> dict[str, dict[str, dict[str, str]]]:
    """family -> platform -> version -> support ("y", "n", "a", "u", each optionally followed by " #N" notes)."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for family, platforms in (raw or {}).items():
        for platform, versions in (platforms or {}).items():
            cells = {str(version): _text(support).strip() for version, support in (versions or {}).items()}
            if cells:
                out.setdefault(str(family), {})[str(platform)] = cells
    return out


def tags(raw: Any) -> list[str]:
    """Jekyll takes `tags: a b` as the list [a, b]."""
    if isinstance(raw, str):
        return raw.split()
    return [str(tag) for tag in raw or []]


def feature(slug: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "slug": slug,
        "title": _text(data.get("title")),
        "description": _text(data.get("description")),
        "url": f"{SITE}/features/{slug}/",
        "category": _text(data.get("category")),
        "tags": tags(data.get("tags")),
        "keywords": _text(data.get("keywords")),
        "last_test_date": _text(data.get("last_test_date")),
        "stats": stats(data.get("stats")),
        "notes_by_num": {str(k): _text(v) for k, v in (data.get("notes_by_num") or {}).items()},
    }


def commit_of(checkout: pathlib.Path) -> str:
    try:
        done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True,
                              text=True, check=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip()


def build(checkout: pathlib.Path) -> dict[str, Any]:
    features_dir = checkout / "_features"
    nicenames_file = checkout / "_data" / "nicenames.yml"
    if not features_dir.is_dir() or not nicenames_file.is_file():
        raise SystemExit(f"error: {checkout} is not a caniemail checkout (no _features/ or _data/nicenames.yml)")
    features = []
    for path in sorted(features_dir.glob("*.md")):
        if path.name.startswith("_"):
            continue  # _template.md
        try:
            features.append(feature(path.stem, front_matter(path.read_text(encoding="utf-8"))))
        except (ValueError, yaml.YAMLError) as exc:
            raise SystemExit(f"error: {path}: {exc}") from None
    nicenames = yaml.safe_load(nicenames_file.read_text(encoding="utf-8"))
    return {
        "source": {
            "repository": "https://github.com/hteumeuleu/caniemail",
            "commit": commit_of(checkout),
            "built": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            "licence": "MIT, Copyright (c) 2019 Rémi Parmentier (see LICENSE.caniemail)",
        },
        "nicenames": nicenames,
        "features": features,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkout", type=pathlib.Path, help="a checkout of github.com/hteumeuleu/caniemail")
    parser.add_argument("--output", type=pathlib.Path, default=OUTPUT, help=f"default: {OUTPUT}")
    args = parser.parse_args(argv)
    data = build(args.checkout)
    args.output.write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":"), sort_keys=False) + "\n",
                           encoding="utf-8")
    print(f"{len(data['features'])} features from {data['source']['commit']} -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
