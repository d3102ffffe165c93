"""POP3 command parsing: pure, no sockets."""

from __future__ import annotations

import pytest

from mailnest.pop3.parser import MAX_LINE, Command, CommandError, parse_command, parse_number


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"STAT\r\n", Command("STAT")),
        (b"stat\r\n", Command("STAT")),
        (b"List\n", Command("LIST")),
        (b"LIST 3\r\n", Command("LIST", ("3",))),
        (b"TOP 1 10\r\n", Command("TOP", ("1", "10"))),
        (b"TOP 1 10  \r\n", Command("TOP", ("1", "10"))),
        (b"USER alice@example.com\r\n", Command("USER", ("alice@example.com",))),
        (b"USER j\xc3\xbcrgen@example.com\r\n", Command("USER", ("j\u00fcrgen@example.com",))),
        (b"PASS  two  spaced words \r\n", Command("PASS", (" two  spaced words ",))),
        (b"APOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n",
         Command("APOP", ("mrose", "c4c9334bac560ecc979e58001b3e22fb"))),
        (b"QUIT", Command("QUIT")),
    ],
)
def test_parses(line: bytes, expected: Command) -> None:
    assert parse_command(line) == expected


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"\r\n", "empty"),
        (b"   \r\n", "empty"),
        (b"FROB\r\n", "unknown command FROB"),
        (b"LAST\r\n", "unknown command LAST"),
        (b"ST\r\n", "unknown command"),
        (b"\xff\xfe\r\n", "unknown command"),
        (b"STAT 1\r\n", "STAT takes no argument"),
        (b"RETR\r\n", "RETR needs 1 argument"),
        (b"TOP 1\r\n", "TOP needs 2 arguments"),
        (b"LIST 1 2\r\n", "LIST takes at most 1 argument"),
        (b"PASS\r\n", "PASS needs a password"),
        (b"USER " + b"a" * 300 + b"\r\n", "argument too long"),
        (b"NOOP " + b"x" * MAX_LINE + b"\r\n", "line too long"),
    ],
)
def test_refuses(line: bytes, reason: str) -> None:
    with pytest.raises(CommandError, match=reason):
        parse_command(line)


@pytest.mark.parametrize(("text", "value"), [("1", 1), ("007", 7), ("0", 0), ("-1", None), ("+1", None),
                                             ("1.0", None), ("", None), ("\u0661", None), ("1" * 10, None)])
def test_parse_number(text: str, value: int | None) -> None:
    assert parse_number(text) == value
