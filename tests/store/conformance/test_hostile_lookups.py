"""Lookups with values no stored message can have (a NUL, as a percent-decoded URL path can carry) find nothing
on every backend, instead of failing: PostgreSQL text cannot hold a NUL at all."""

from __future__ import annotations

import pytest

from mailnest.models import Envelope
from mailnest.store.base import Store

pytestmark = pytest.mark.anyio


async def test_a_nul_in_an_id_a_mailbox_or_a_folder_finds_nothing(store: Store) -> None:
    await store.add(b"From: a@example.com\r\nTo: b@example.com\r\nSubject: hi\r\n\r\nhi\r\n",
                    Envelope("a@example.com", ("b@example.com",)))
    assert await store.get("a\x00b") is None
    assert await store.raw("a\x00b") is None
    assert await store.set_read(["a\x00b"], True) == []
    assert await store.delete(["a\x00b"]) == []
    assert (await store.list(mailbox="a\x00b@example.com")).messages == ()
    assert await store.count(query="subject:\"h\x00i\"") == 0
    assert not await store.imap_folder_exists("b@example.com", "Arch\x00ive")
    assert await store.count() == 1  # and the store is unharmed
