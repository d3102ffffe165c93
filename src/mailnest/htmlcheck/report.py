"""Mailpit's `HTMLCheckResponse` for one message's HTML: the features found, each with every client's support,
and the overall score.

Scoring follows Mailpit: a warning's weight is its unsupported (or partial) percentage times how many times it
was found, over the number of HTML nodes; the overall unsupported and partial figures are the heaviest single
warning of each kind, and supported is what is left of 100. Mailpit can report more than 100% when a feature is
found more often than there are nodes; here each figure is capped so the three add up to 100.
"""

from __future__ import annotations

import logging
from typing import Any

from . import data
from .scan import HtmlScan

log = logging.getLogger("mailnest.htmlcheck")

# Only this much of a message's HTML is read: the work is linear, but pure Python; at its slowest (hostile CSS,
# a declaration every few bytes) a megabyte takes about 2 s on a busy 2-core machine. Gmail clips a message's
# HTML at 102 KB, so real mail is far below this.
MAX_HTML_CHARS = 1_000_000

# Features of the data set that no markup shows (AMP is a separate MIME part; BIMI is a DNS record).
_UNDETECTABLE = {"amp", "bimi"}

SCRIPT_WARNING: dict[str, Any] = {
    "Slug": "html-script",
    "Title": "<script> element",
    "Description": "JavaScript is not supported in any email client.",
    "URL": "",
    "Category": "html",
    "Tags": [],
    "Keywords": "",
    "Results": [],
    "NotesByNumber": {},
}


def scan(html: str) -> HtmlScan:
    """Tokenize the HTML once; never raises (a parser error keeps what was read before it)."""
    scanner = HtmlScan(set(data.dataset().features))
    try:
        scanner.feed(html)
        scanner.close()
    except Exception:  # the stdlib tokenizer has raised on odd markup in some versions; keep what was read
        log.warning("html-check: the HTML parser stopped early", exc_info=True)
    return scanner


def truncated(html: str) -> bool:
    return len(html) > MAX_HTML_CHARS


def check(html: str) -> dict[str, Any]:
    """The `HTMLCheckResponse` for `html` (the message's HTML body, already decoded); past `MAX_HTML_CHARS`
    the rest is not read (`truncated(html)` says whether that happened)."""
    scanner = scan(html[:MAX_HTML_CHARS])
    nodes = max(scanner.nodes, 1)
    found = scanner.counts + scanner.css.counts
    warnings = [data.warning(slug, count) for slug, count in found.items() if count > 0]
    if scanner.scripts:
        warnings.append({**SCRIPT_WARNING, "Score": {"Found": scanner.scripts, "Supported": 0.0,
                                                     "Partial": 0.0, "Unsupported": 100.0}})
    partial = unsupported = 0.0
    for warning in warnings:
        score = warning["Score"]
        unsupported = max(unsupported, score["Unsupported"] * score["Found"] / nodes)
        partial = max(partial, score["Partial"] * score["Found"] / nodes)
    unsupported = min(unsupported, 100.0)
    partial = min(partial, 100.0 - unsupported)

    def weight(warning: dict[str, Any]) -> float:
        score = warning["Score"]
        return float((score["Unsupported"] + score["Partial"]) * score["Found"] / nodes)

    warnings.sort(key=lambda w: (-weight(w), w["Slug"]))
    return {
        "Platforms": data.platforms(),
        "Total": {
            "Nodes": scanner.nodes,
            "Partial": partial,
            "Supported": 100.0 - partial - unsupported,
            "Tests": len(set(data.dataset().features) - _UNDETECTABLE) + 1,
            "Unsupported": unsupported,
        },
        "Warnings": warnings,
    }
