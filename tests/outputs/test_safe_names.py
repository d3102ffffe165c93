"""The naming rule: every address becomes one harmless path component per level, and distinct addresses
stay distinct."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest

from mailnest.outputs import safe_names
from tests.outputs.helpers import HOSTILE

SAFE_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+=%()~-")
DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


@pytest.mark.parametrize("address", HOSTILE)
def test_hostile_addresses_give_single_harmless_components(address: str) -> None:
    for part in safe_names.mailbox_parts(address):
        assert part not in ("", ".", "..")
        assert set(part) <= SAFE_CHARS, part
        assert len(part.encode()) <= safe_names.MAX_NAME
        assert not part.startswith(".") and not part.endswith(".")
        assert part.split(".")[0].lower() not in DEVICES


def test_ordinary_addresses_read_naturally() -> None:
    assert safe_names.mailbox_parts("bart@example.com") == ("example.com", "bart")
    assert safe_names.mailbox_parts("Bart.Simpson+tag@Example.COM") == ("example.com", "bart.simpson+tag")
    assert safe_names.mailbox_parts("bart@mail-1.example.com") == ("mail-1.example.com", "bart")


def test_documented_examples() -> None:
    assert safe_names.mailbox_parts("../../etc/passwd@x") == ("x", "%2E.%2F..%2Fetc%2Fpasswd")
    assert safe_names.mailbox_parts("a/b@c") == ("c", "a%2Fb")
    assert safe_names.mailbox_parts("bob@..") == ("%2E%2E", "bob")
    assert safe_names.mailbox_parts("/etc/passwd") == ("(none)", "%2Fetc%2Fpasswd")
    assert safe_names.mailbox_parts("con@nul") == ("%6Eul", "%63on")
    assert safe_names.mailbox_parts("a@b@c") == ("c", "a%40b")
    assert safe_names.name("nul.tar.gz") == "%6Eul.tar.gz"
    assert safe_names.name("console") == "console"  # only the exact device names are reserved


def test_distinct_addresses_never_share_a_folder() -> None:
    addresses = [*HOSTILE, "a%2Fb@c", "a/b@c", "A/B@C", "a_b@c", "(none)@x", "@x", "%@x", "%25@x", "a@b@c",
                 "a%40b@c", "x" * 120 + "1@y", "x" * 120 + "2@y"]
    # "" and "@" (like "bob" and "bob@") are the same mailbox: empty user, empty domain.
    lowered = {a.lower() for a in addresses if a != "@"}
    folders = {safe_names.mailbox_parts(a) for a in lowered}
    assert len(folders) == len(lowered)


def test_names_decode_back_to_the_address() -> None:
    for address in ["a/b@c", "ümlaut@bücher.de", "x\x00y@z", "..@..", "con@nul", "%41@b"]:
        domain, user = safe_names.mailbox_parts(address)
        assert unquote(user) + "@" + unquote(domain) == address.lower()


def test_long_names_are_cut_with_a_digest() -> None:
    long_a, long_b = "é" * 200, "é" * 199 + "e"
    a, b = safe_names.name(long_a), safe_names.name(long_b)
    assert a != b and len(a) <= safe_names.MAX_NAME and "~" in a
    assert "%" not in a.split("~")[0][-2:]  # never half an escape before the digest


def test_inside_refuses_escapes_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    assert safe_names.inside(root, root / "a" / "b") == root / "a" / "b"
    with pytest.raises(safe_names.UnsafePath):
        safe_names.inside(root, root / ".." / "elsewhere")
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(safe_names.UnsafePath):
        safe_names.mailbox_dir(root, "user@link")
