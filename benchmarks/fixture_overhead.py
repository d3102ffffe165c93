"""What the pytest plugin costs a test suite, in figures (not pass/fail).

1. Per-test overhead of the `mailnest` fixture: a generated suite of tests that take the fixture and of tests that
   do not, run in-process by pytest; the difference of their mean setup+teardown time (goal: under 2 ms).
2. Latency from the SMTP 250 to `wait_for` returning the parsed message (goal: p99 under 20 ms), both for a wait
   already in progress when the mail lands (the long poll wakes up) and for a wait that starts after the 250.

    .venv/bin/python benchmarks/fixture_overhead.py [--tests 300] [--mails 300]
"""

from __future__ import annotations

import argparse
import smtplib
import statistics
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from mailnest.pytest_plugin import Inbox, MailnestServer
from mailnest.runtime import ServerThread

SUITE = """
import pytest

@pytest.mark.parametrize("n", range({n}))
def test_without_fixture(n):
    assert "alice@x".startswith("alice@")

@pytest.mark.parametrize("n", range({n}))
def test_with_fixture(mailnest, n):
    assert mailnest.address("alice").startswith("alice@")
"""


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:7.3f} ms"


def _summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"{label:<34} n={len(samples):<5} mean {_ms(statistics.fmean(samples))}  "
            f"p50 {_ms(statistics.median(samples))}  p99 {_ms(p99)}  max {_ms(ordered[-1])}")


class _Durations:
    """A pytest plugin that keeps each test's setup + teardown time, by test function."""

    def __init__(self) -> None:
        self.by_function: dict[str, list[float]] = {}
        self._partial: dict[str, float] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call":
            return
        self._partial[report.nodeid] = self._partial.get(report.nodeid, 0.0) + report.duration
        if report.when == "teardown":
            function = report.nodeid.split("::")[-1].split("[")[0]
            self.by_function.setdefault(function, []).append(self._partial.pop(report.nodeid))


def fixture_overhead(tests: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "test_generated.py").write_text(textwrap.dedent(SUITE.format(n=tests)))
        durations = _Durations()
        started = time.perf_counter()
        code = pytest.main([directory, "-qq", "-p", "no:cacheprovider", "-x",
                            "-W", "ignore::pytest.PytestAssertRewriteWarning"], plugins=[durations])
        elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"the generated suite failed (exit code {code})")
    with_fixture = durations.by_function["test_with_fixture"]
    without = durations.by_function["test_without_fixture"]
    # The first test that asks for mailnest starts the session's server; the session's last test stops it.
    first, rest, last = with_fixture[0], with_fixture[1:-1], with_fixture[-1]
    print("\n== per-test overhead of the mailnest fixture ==")
    print(f"whole generated run ({2 * tests} tests): {elapsed:.2f} s")
    print(f"first test (starts the session's server): {_ms(first)}")
    print(f"last test (stops it at session end):      {_ms(last)}")
    print(_summary("setup+teardown, with mailnest", rest))
    print(_summary("setup+teardown, without", without))
    mean = statistics.fmean(rest) - statistics.fmean(without)
    median = statistics.median(rest) - statistics.median(without)
    print(f"overhead per test: {_ms(mean)} (means), {_ms(median)} (medians)   goal: under 2 ms")


def _send(smtp: smtplib.SMTP, to: str, n: int) -> None:
    smtp.sendmail("bench@app.example", [to], f"From: bench@app.example\r\nTo: {to}\r\nSubject: code {n}\r\n\r\n"
                  f"Your code is {100000 + n}: https://app.example/verify/{n}\r\n")


def wait_latency(mails: int) -> None:
    with ServerThread() as thread:
        server = MailnestServer(http_url=thread.http_url, smtp_host=thread.smtp_host, smtp_port=thread.smtp_port)
        in_progress: list[float] = []
        after: list[float] = []
        with smtplib.SMTP(thread.smtp_host, thread.smtp_port) as smtp:
            for n in range(mails + 10):  # the first ten warm up connections, caches and the thread pool
                inbox = Inbox(server, f"bench-{n}.mailnest.test")
                _send(smtp, inbox.address("late"), n)
                started = time.perf_counter()
                [mail] = inbox.wait_for(timeout=5)
                assert mail.codes() == [str(100000 + n)]
                if n >= 10:
                    after.append(time.perf_counter() - started)

            for n in range(mails + 10):
                inbox = Inbox(server, f"wake-{n}.mailnest.test")
                returned: list[float] = []

                def wait(inbox: Inbox = inbox, returned: list[float] = returned) -> None:
                    inbox.wait_for(timeout=5)
                    returned.append(time.perf_counter())

                waiter = threading.Thread(target=wait)
                waiter.start()
                time.sleep(0.01)  # let the long poll reach the server before the mail does
                _send(smtp, inbox.address("early"), n)
                acknowledged = time.perf_counter()
                waiter.join()
                if n >= 10:
                    in_progress.append(returned[0] - acknowledged)
        server.stop()
    print("\n== SMTP 250 -> wait_for returned the parsed message ==")
    print(_summary("wait started after the 250", after))
    print(_summary("wait in progress (long poll wakes)", in_progress))
    print("goal: p99 under 20 ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=300, help="tests of each kind in the generated suite")
    parser.add_argument("--mails", type=int, default=300, help="messages timed for each wait latency")
    args = parser.parse_args()
    fixture_overhead(args.tests)
    wait_latency(args.mails)


if __name__ == "__main__":
    main()
