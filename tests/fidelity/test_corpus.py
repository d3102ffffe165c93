"""The hand-picked corpus: each session goes to mailnest and to the reference aiosmtpd, written whole (pipelined),
one byte at a time and in random-size pieces; what mailnest stores is checked against the reference (all-CRLF
messages) or against what the sender meant (bare line endings), then read back through IMAP and POP3."""

from __future__ import annotations

import pytest

from tests.fidelity.harness import Mailnest, Session, check_session
from tests.fidelity.reference import ReferenceServer

HEAD = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: corpus\r\n\r\n"


def lines(ending: bytes) -> bytes:
    return ending.join([b"first", b".one dot", b"..two dots", b"...three dots", b".", b"last"]) + ending


CORPUS = {
    "crlf": HEAD + lines(b"\r\n"),
    "lf": HEAD.replace(b"\r\n", b"\n") + lines(b"\n"),
    "cr": HEAD + lines(b"\r"),
    "mixed": HEAD + b"crlf\r\n.after crlf\n.after lf\r.after cr\r\n..x\n...y\rz\r\n",
    "dots-after-each-ending": HEAD + b"a\r\n.b\r\n..c\r\n...d\na\n.b\n..c\n...d\na\r.b\r..c\r...d\r\n",
    "lone-dot-inside": HEAD + b"before\r\n.\r\nafter\r\n",
    "lone-dot-after-lf": HEAD + b"before\n.\nafter\r\n",
    "only-a-dot": b".\r\n",
    "empty": b"",
    "nul-and-8bit": HEAD + b"nul \x00 here\r\n8bit \xe9\xff\xfe\x80\r\n\x00.\r\n",
    "utf8-headers": "From: Jürgen <jürgen@exämple.com>\r\nSubject: Grüße ☃\r\n\r\nbody ü\r\n".encode(),
    "line-over-1000": HEAD + b"x" * 1500 + b"\r\n" + b"." + b"y" * 2000 + b"\r\n",
    "line-over-1mib": HEAD + b"z" * ((1 << 20) + 10) + b"\r\nend\r\n",
    "no-final-line-ending": HEAD + b"no newline at the end",
    "no-final-line-ending-dot": HEAD + b"ends\r\n.",
    "crlf-dot-lookalikes": HEAD + b"a\r\n.\rb\n.\nc\r.\r\nd\r\n",
}

SESSIONS = {name: Session(message) for name, message in CORPUS.items()}
SESSIONS["smtputf8-envelope"] = Session(CORPUS["utf8-headers"], mail_from="jürgen@exämple.com",
                                        rcpt_tos=("zoë@example.com", "b@example.com"), mail_options="SMTPUTF8")
SESSIONS["many-recipients"] = Session(CORPUS["crlf"], rcpt_tos=tuple(f"r{n}@example.com" for n in range(30)))


@pytest.mark.parametrize("how", ["whole", "bytes", "pieces"])
@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_corpus(mailnest: Mailnest, reference: ReferenceServer, name: str, how: str) -> None:
    session = SESSIONS[name]
    if how == "bytes" and len(session.wire()) > 20_000:
        how = "pieces"  # a megabyte one byte per write takes minutes; random pieces still split every boundary
    check_session(mailnest, reference, session, how, seed=hash(name) & 0xFFFF, read_back=how == "whole")


def test_two_transactions_pipelined_in_one_write(mailnest: Mailnest, reference: ReferenceServer) -> None:
    first, second = Session(CORPUS["crlf"]), Session(CORPUS["lf"], mail_from="other@example.com")
    wire = first.commands() + first.data() + second.commands().replace(b"EHLO client.test\r\n", b"") \
        + second.data() + b"QUIT\r\n"
    from tests.fidelity.harness import check_read_back, check_stored, converse

    ours = converse(mailnest.server.smtp_port, wire)
    assert ours == converse(reference.port, wire)
    ours_stored, theirs = mailnest.take(), reference.take()
    assert len(ours_stored) == len(theirs) == 2
    for stored, delivered, session in zip(ours_stored, theirs, (first, second), strict=True):
        check_stored(stored, delivered, session.meant(), session.data())
        check_read_back(mailnest, stored)
