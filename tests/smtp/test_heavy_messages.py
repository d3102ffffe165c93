"""A message that is costly to parse (a 10 MB Subject of encoded words) must not hold up anyone else: other
clients' 250s and /livez stay fast while it is received and parsed, and it is stored and decoded itself.

Before the fix its 250 took 34 s (decoding joined bytes over and over) and every other client waited on the one
writer thread that parsed it."""

from __future__ import annotations

import smtplib
import statistics
import threading
import time

import httpx

from mailnest import ServerThread

from .test_limits import probe

WORD = b"=?utf-8?q?caf=C3=A9?= "  # one encoded word: "café", and the space between adjacent words is dropped
WORDS = 10 * 1024 * 1024 // len(WORD)


def test_a_costly_subject_holds_up_no_other_client(server: ServerThread) -> None:
    raw = b"From: a@example.com\r\nTo: b@example.com\r\nSubject: " + WORD * WORDS + b"\r\n\r\nbody\r\n"
    answer: dict[str, object] = {}

    def heavy() -> None:
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", server.smtp_port, timeout=60) as client:
            answer["refused"] = client.sendmail("a@example.com", ["heavy@example.com"], raw)
        answer["seconds"] = time.monotonic() - started

    sender = threading.Thread(target=heavy)
    sender.start()
    probes = []
    while sender.is_alive() or not probes:
        probes.append(probe(server))
        time.sleep(0.05)
    sender.join()
    assert answer.get("refused") == {}, answer
    worst_smtp = max(smtp for smtp, _ in probes)
    worst_livez = max(livez for _, livez in probes)
    assert len(probes) > 1, "the heavy message was stored before any probe could overlap it"
    # The typical probe meets the bounds (250 within 1 s, /livez within 100 ms); the worst of many on a
    # busy machine gets more room, since the parse shares the GIL with the event loop. Before the fix the loop
    # waited for the whole parse and the probes timed out (5 s).
    median_smtp = statistics.median(smtp for smtp, _ in probes)
    median_livez = statistics.median(livez for _, livez in probes)
    assert median_smtp < 1.0 and median_livez < 0.1, (median_smtp, median_livez, len(probes))
    assert worst_smtp < 2.0 and worst_livez < 1.0, (worst_smtp, worst_livez, len(probes))
    assert answer["seconds"] < 15, answer  # was 34 s; linear decoding takes about half a second of CPU
    with httpx.Client(base_url=server.http_url, timeout=30) as api:
        message = api.get("/api/v1/message/latest", params={"query": "mailbox:heavy@example.com"}).json()
    assert message["Subject"].startswith("cafécafé") and len(message["Subject"]) == 4 * WORDS
