"""The pytest plugin, driven through pytester: real inner test runs, real servers, real SMTP."""

from __future__ import annotations

import socket

import httpcore  # noqa: F401
import pytest

from mailnest.client import Client, MailnestError
from mailnest.pytest_plugin import Inbox, MailnestServer
from mailnest.runtime import ServerThread

pytest_plugins = ["pytester"]
# httpcore is imported here, before any in-process pytester run: httpx imports it lazily and caches its exception
# classes, and pytester drops modules first imported during an inner run, which would leave that cache stale.

# Every test sends to two of its own addresses, to a stranger and to the shared parent domain, then checks it sees
# exactly its own two messages. The sleeps make tests on different workers overlap in time.
ISOLATION = r'''
import os, smtplib, time
from pathlib import Path
import pytest

@pytest.mark.parametrize("n", range(6))
def test_own_mail_only(mailnest, mailnest_server, n):
    with open(Path(__file__).with_name("servers.txt"), "a") as log:
        log.write(f"{os.environ.get('PYTEST_XDIST_WORKER', '-')} {mailnest_server.http_url}\n")
    alice, bob = mailnest.address("alice"), mailnest.address("Bob")
    with smtplib.SMTP(mailnest.smtp_host, mailnest.smtp_port) as smtp:
        smtp.sendmail("app@example.com", [alice], f"Subject: alice {n}\r\n\r\nhi https://a.example/{n}\r\n")
        time.sleep(0.05)
        smtp.sendmail("app@example.com", [bob, "someone@elsewhere.test"], f"Subject: bob {n}\r\n\r\nhi\r\n")
        smtp.sendmail("app@example.com", ["outsider@mailnest.test"], "Subject: not yours\r\n\r\n.\r\n")
    mails = mailnest.wait_for(count=2, timeout=10)
    assert sorted(m.subject for m in mails) == [f"alice {n}", f"bob {n}"]
    time.sleep(0.1)
    assert sorted(s.subject for s in mailnest.messages()) == [f"alice {n}", f"bob {n}"]
    [to_bob] = mailnest.wait_for(to=bob)
    assert to_bob.subject == f"bob {n}"
    [to_alice] = mailnest.assert_sent(to=alice, subject=f"alice {n}", count=1)
    assert to_alice.first_link() == f"https://a.example/{n}"
'''


def _servers_by_worker(pytester: pytest.Pytester) -> dict[str, set[str]]:
    result: dict[str, set[str]] = {}
    for line in (pytester.path / "servers.txt").read_text().splitlines():
        worker, url = line.split()
        result.setdefault(worker, set()).add(url)
    return result


def test_each_test_sees_only_its_own_mail_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolation=ISOLATION)
    result = pytester.runpytest_subprocess("-n", "2", "-v", "-p", "no:cacheprovider", "--timeout=60")
    result.assert_outcomes(passed=6)
    servers = _servers_by_worker(pytester)
    assert set(servers) == {"gw0", "gw1"}
    assert all(len(urls) == 1 for urls in servers.values())  # one server per worker, for the whole session
    assert servers["gw0"] != servers["gw1"]


def test_workers_sharing_one_server_stay_isolated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_isolation=ISOLATION)
    with ServerThread() as shared, Client(shared.http_url) as client:
        result = pytester.runpytest_subprocess(
            "-n", "2", "-v", "-p", "no:cacheprovider", "--timeout=60",
            "--mailnest-url", shared.http_url, "--mailnest-smtp", f"127.0.0.1:{shared.smtp_port}")
        result.assert_outcomes(passed=6)
        assert _servers_by_worker(pytester) == {"gw0": {shared.http_url}, "gw1": {shared.http_url}}
        everything = client.messages(limit=100)
    # Every test's mail went to the one shared server, each test to a mailbox on demand of its own, deleted with
    # its mail when the test passed; what a test sent outside its mailboxes stays.
    assert everything.total == 6
    assert {r for s in everything for r in s.recipients} == {"outsider@mailnest.test"}


def test_one_server_per_session_and_overridable_settings(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('''
import pytest
from mailnest.config import Config

@pytest.fixture(scope="session")
def mailnest_config():
    return Config(hostname="mx.custom.test")

@pytest.fixture(scope="session")
def mailnest_domain():
    return "corp.test"
''')
    pytester.makepyfile('''
import re
import smtplib
import pytest

servers = set()

@pytest.mark.parametrize("n", range(3))
def test_settings_apply(mailnest, mailnest_server, n):
    servers.add(mailnest_server.http_url)
    assert len(servers) == 1 and mailnest.server is mailnest_server
    address = mailnest.address("carol")
    assert re.fullmatch(rf"carol@settings-apply-{n}-[0-9a-f]{{8}}\\.corp\\.test", address), address
    with smtplib.SMTP(mailnest.smtp_host, mailnest.smtp_port) as smtp:
        code, banner = smtp.ehlo()
        assert b"mx.custom.test" in banner
        smtp.sendmail("app@example.com", [address], "Subject: configured\\r\\n\\r\\n.\\r\\n")
    [mail] = mailnest.wait_for(timeout=5)
    assert mail.subject == "configured"

def test_without_the_fixture_no_mail_is_involved():
    pass
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=4)


def test_failures_say_what_happened(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
import re
import smtplib

kept = []

def send(mailnest, subject):
    with smtplib.SMTP(mailnest.smtp_host, mailnest.smtp_port) as smtp:
        smtp.sendmail("app@example.com", [mailnest.address("dave")],
                      f"From: App <app@example.com>\\r\\nSubject: {subject}\\r\\n\\r\\n.\\r\\n")

def test_wait_times_out(mailnest):
    send(mailnest, "Hello")
    mailnest.wait_for("Invoice", timeout=0.3)

def test_assert_sent_mismatch(mailnest):
    send(mailnest, "Hello")
    mailnest.assert_sent(subject=re.compile("^Bye"))

def test_nothing_sent(mailnest):
    mailnest.assert_sent(to=mailnest.address("erin"))

def test_foreign_address(mailnest):
    mailnest.wait_for(to="erin@example.com")

def test_bad_local_part(mailnest):
    mailnest.address("two words")

def test_keep_fixture(mailnest):
    kept.append(mailnest)

def test_use_finished_fixture():
    kept[0].messages()
''')
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=6)
    result.stdout.re_match_lines([
        r"E +mailnest\.client\.WaitTimeoutError: waited 0\.3s for 1 message matching 'Invoice' in mailbox "
        r"'@wait-times-out-[0-9a-f]{8}\.mailnest\.test'; 0 matched, 1 arrived there in all",
        r"E +  - 'Hello' from App <app@example\.com> to dave@wait-times-out-.* \(did not match\)",
        r"E +AssertionError: expected a message with subject /\^Bye/; 0 matched, 1 sent to this test's "
        r"addresses \(@assert-sent-mismatch-.*\):",
        r"E +AssertionError: expected a message to erin@nothing-sent-.*; 0 matched, 0 sent .*",
        r"E +  \(none\)",
        r"E +ValueError: 'erin@example\.com' is not one of this test's addresses .*",
        r"E +ValueError: 'two words' cannot be the local part of an address.*",
        r"E +mailnest\.client\.MailnestError: this mailnest fixture belonged to "
        r"test_failures_say_what_happened\.py::test_keep_fixture, which has finished.*",
    ], consecutive=False)


def test_fixture_after_its_server_stopped_is_a_clear_error() -> None:
    thread = ServerThread().start()
    server = MailnestServer(http_url=thread.http_url, smtp_host=thread.smtp_host, smtp_port=thread.smtp_port,
                            thread=thread)
    inbox = Inbox(server, "late.mailnest.test")
    assert inbox.messages() == []
    server.stop()
    with pytest.raises(MailnestError, match=r"the mailnest server of this test session \(http://.*\) has stopped"):
        inbox.messages()


def test_remote_mode_reports_a_missing_server_and_bad_options(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
def test_uses_mail(mailnest):
    pass

def test_does_not():
    pass
''')
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = pytester.runpytest("-p", "no:cacheprovider", "--mailnest-url", f"http://127.0.0.1:{port}")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*ServerUnavailableError: mailnest at http://127.0.0.1:{port} did not answer*"])

    result = pytester.runpytest("-p", "no:cacheprovider", "--mailnest-url", "http://127.0.0.1:1",
                                "--mailnest-smtp", "nowhere")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*--mailnest-smtp: 'nowhere' needs a port between 0 and 65535*"])


def test_plugin_costs_nothing_when_unused(pytester: pytest.Pytester) -> None:
    pytester.makepyfile('''
import sys, threading

def test_nothing_started(pytestconfig):
    assert pytestconfig.pluginmanager.has_plugin("mailnest")
    heavy = [m for m in ("mailnest.runtime", "mailnest.client", "httpx", "uvicorn", "aiosmtpd") if m in sys.modules]
    assert heavy == []
    assert not [t for t in threading.enumerate() if t.name == "mailnest"]
''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
