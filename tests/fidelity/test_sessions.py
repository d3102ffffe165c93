"""Sessions from hypothesis strategies: any mix of line endings, leading dots, NUL and 8-bit bytes, written whole,
a byte at a time or in random pieces, to mailnest and to the reference; then read back through IMAP and POP3."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fidelity.harness import Mailnest, Session, check_session
from tests.fidelity.reference import ReferenceServer

ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])  # mostly CRLF, so both rules get exercised
STARTS = st.sampled_from([b"", b"", b".", b"..", b"...", b". ", b"From "])
TEXT = st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
LINE = st.tuples(STARTS, TEXT, ENDINGS).map(b"".join)
MESSAGE = st.tuples(st.lists(LINE, max_size=12), st.one_of(st.just(b""), st.tuples(STARTS, TEXT).map(b"".join)))\
    .map(lambda parts: b"".join(parts[0]) + parts[1])
ADDRESS = st.sampled_from(["a@example.com", "b.c+tag@example.org", "jürgen@exämple.com", "x@[127.0.0.1]"])
SESSION = st.builds(
    lambda message, sender, rcpts: Session(
        message, mail_from=sender, rcpt_tos=tuple(dict.fromkeys(rcpts)),
        mail_options="SMTPUTF8" if not (sender + "".join(rcpts)).isascii() else ""),
    MESSAGE, ADDRESS, st.lists(ADDRESS, min_size=1, max_size=3))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(session=SESSION, how=st.sampled_from(["whole", "bytes", "pieces"]), seed=st.integers(0, 1000))
def test_generated_sessions(mailnest: Mailnest, reference: ReferenceServer, session: Session, how: str,
                            seed: int) -> None:
    mailnest.take()
    reference.take()
    check_session(mailnest, reference, session, how, seed)
