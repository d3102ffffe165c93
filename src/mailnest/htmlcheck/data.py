"""The caniemail.com data set shipped with the package (`caniemail.json`, rebuilt by
`scripts/refresh_caniemail.py`), and each feature rendered as a Mailpit `HTMLCheckWarning`.

A support cell is "y", "n", "a" (partial) or "u" (unknown), optionally followed by note references (" #1 #2").
As Mailpit does, every tested version of a client is one result and the feature's percentages are over all of
them; unlike Mailpit, the letter alone decides the support ("y #2" is supported with a note, not partial), an
unknown result is left out rather than counted as partial, and a note is attached whatever the support.
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

_SUPPORT = {"y": "yes", "n": "no", "a": "partial"}
_NOTE = re.compile(r"#(\d+)")
_CODE = re.compile(r"`([^`\n]*)`")
_LINK = re.compile(r"\[([^\]\n]*)\]\((https?://[^)\s]*)\)")
_STRONG = re.compile(r"\*\*([^*\n]+)\*\*")


@dataclass(frozen=True)
class Dataset:
    """The parsed extract: features by slug, display names, and where it came from."""

    features: dict[str, dict[str, Any]]
    families: dict[str, str]
    platforms: dict[str, str]
    source: dict[str, str]


@functools.lru_cache(maxsize=1)
def dataset() -> Dataset:
    """Load the extract once per process (about 0.6 MB of JSON, ~20 ms)."""
    text = resources.files(__package__).joinpath("caniemail.json").read_text(encoding="utf-8")
    raw = json.loads(text)
    nicenames = raw.get("nicenames", {})
    return Dataset(features={f["slug"]: f for f in raw["features"]},
                   families=dict(nicenames.get("family", {})), platforms=dict(nicenames.get("platform", {})),
                   source=dict(raw.get("source", {})))


def markdown(text: str) -> str:
    """The data's descriptions and notes use a little Markdown (code, links, bold): render that much as HTML,
    as Mailpit does, with everything else escaped (the text is shown in the UI as HTML)."""
    out = html.escape(text, quote=False)
    out = _CODE.sub(lambda m: f"<code>{m.group(1)}</code>", out)
    out = _LINK.sub(lambda m: f'<a href="{m.group(2)}" target="_blank">{m.group(1)}</a>', out)
    return _STRONG.sub(lambda m: f"<strong>{m.group(1)}</strong>", out)


def platforms() -> dict[str, list[str]]:
    """Mailpit's `Platforms`: each platform with the sorted display names of the client families tested on it."""
    data = dataset()
    seen: dict[str, set[str]] = {}
    for feature in data.features.values():
        for family, by_platform in feature["stats"].items():
            for platform in by_platform:
                seen.setdefault(platform, set()).add(data.families.get(family, family))
    return {platform: sorted(names) for platform, names in sorted(seen.items())}


@functools.cache
def _warning_template(slug: str) -> dict[str, Any]:
    data = dataset()
    feature = data.features[slug]
    results: list[dict[str, str]] = []
    counts = {"yes": 0, "no": 0, "partial": 0}
    for family, by_platform in feature["stats"].items():
        for platform, versions in by_platform.items():
            for version, cell in versions.items():
                support = _SUPPORT.get(cell[:1].lower())
                if support is None:
                    continue  # "u": not tested, or the result is unknown
                counts[support] += 1
                notes = _NOTE.findall(cell)
                results.append({
                    "Name": f"{data.families.get(family, family)} {data.platforms.get(platform, platform)} "
                            f"({version})",
                    "Platform": platform,
                    "Family": family,
                    "Version": version,
                    "Support": support,
                    "NoteNumber": notes[0] if notes else "",
                })
    total = sum(counts.values()) or 1
    return {
        "Slug": slug,
        "Title": feature["title"],
        "Description": markdown(feature["description"]),
        "URL": feature["url"],
        "Category": feature["category"],
        "Tags": list(feature["tags"]),
        "Keywords": feature["keywords"],
        "Results": results,
        "NotesByNumber": {n: markdown(note) for n, note in feature["notes_by_num"].items()},
        "Score": {
            "Found": 0,
            "Supported": counts["yes"] * 100 / total,
            "Partial": counts["partial"] * 100 / total,
            "Unsupported": counts["no"] * 100 / total,
        },
    }


def known(slug: str) -> bool:
    return slug in dataset().features


def warning(slug: str, found: int) -> dict[str, Any]:
    """A fresh `HTMLCheckWarning` for a feature of the data set found `found` times."""
    template = _warning_template(slug)
    return {**template, "Tags": list(template["Tags"]), "Results": [dict(r) for r in template["Results"]],
            "NotesByNumber": dict(template["NotesByNumber"]), "Score": {**template["Score"], "Found": found}}
