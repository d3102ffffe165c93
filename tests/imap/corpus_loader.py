"""The shared test corpus (tests/corpus) as raw bytes in a stable order, plus its generated 5 MB message."""

from __future__ import annotations

from ..corpus import all_messages, build


def corpus_messages() -> list[bytes]:
    messages = list(all_messages().values())
    assert messages, "the corpus in tests/corpus is empty"
    big, _attachment = build.attachment_message(5_000_000)
    return [*messages, big]
