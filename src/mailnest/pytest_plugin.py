"""pytest fixtures: one mailnest per test session (per xdist worker), and a private inbox for each test.

`mailnest_server` (session) starts a server in a background thread the first time a test asks for it, or points
at one already running (`--mailnest-url`). `mailnest` (function) gives each test addresses under a domain of its
own (`alice@<test>-<token>.mailnest.test`) and reads only mail sent to that domain, through the API's
`mailbox=@domain` filter, so tests running side by side never see each other's mail.

Against a server already running (`--mailnest-url`, shared by several runs), each test's domain is a mailbox on
demand (`POST /api/v1/mailboxes`), made with a retention (SPACE_MAX_AGE) so that the mail of a run that crashed
goes by itself, and deleted with its mail after a test that passed (a failed test's mail stays for a look, until
its retention takes it). A server without mailboxes on demand (an older mailnest) gets today's domains, and so
does an overridden `mailnest_domain`.

Loaded by every pytest run once mailnest is installed, so importing this module must stay cheap: the server, the
HTTP client and their dependencies are imported only when a fixture is first used.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .client import Client
    from .config import Config
    from .received import Mail, MailSummary
    from .runtime import ServerThread

DEFAULT_DOMAIN = "mailnest.test"  # .test is reserved for testing (RFC 2606): mail to it can never leave
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")
_PAGE = 1000
SPACE_MAX_AGE = 3600.0  # seconds a remote server keeps a test's mail when the test did not delete its mailbox
_FAILED = pytest.StashKey[bool]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("mailnest", "mailnest (mail capture for tests)")
    group.addoption("--mailnest-url", metavar="URL", default=None,
                    help="use the mailnest already running at URL (its HTTP address) instead of starting one")
    group.addoption("--mailnest-smtp", metavar="HOST:PORT", default=None,
                    help="with --mailnest-url: where that server takes SMTP (default: the URL's host, port 1025)")


class MailnestServer:
    """The mailnest a test session sends to: one this plugin started, or one already running elsewhere."""

    def __init__(self, *, http_url: str, smtp_host: str, smtp_port: int, thread: ServerThread | None = None) -> None:
        self.http_url = http_url
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.thread = thread  # None when the server is not ours (--mailnest-url)
        self.spaces = thread is None  # make a mailbox on demand per test (until the server says it has none)
        self._client: Client | None = None
        self._stopped = False

    @property
    def client(self) -> Client:
        """A synchronous API client shared by the session (one connection pool, kept alive)."""
        if self._stopped:
            from .client import MailnestError

            raise MailnestError(f"the mailnest server of this test session ({self.http_url}) has stopped; "
                                "mailnest fixtures work only while their test session runs")
        if self._client is None:
            from .client import Client

            self._client = Client(self.http_url)
        return self._client

    def stop(self) -> None:
        self._stopped = True
        if self._client is not None:
            self._client.close()
        if self.thread is not None:
            self.thread.stop()

    def __repr__(self) -> str:
        return f"<MailnestServer {self.http_url} smtp={self.smtp_host}:{self.smtp_port}>"


class Inbox:
    """One test's private view of mailnest: its own addresses, and only the mail sent to them."""

    def __init__(self, server: MailnestServer, domain: str, test: str = "", *, space: bool = False) -> None:
        self.server = server
        self.domain = domain.lower()
        self.space = space  # the domain is a mailbox on demand of the server's, deleted by `close(delete=True)`
        self._test = test
        self._closed = False

    @property
    def smtp_host(self) -> str:
        return self.server.smtp_host

    @property
    def smtp_port(self) -> int:
        return self.server.smtp_port

    @property
    def http_url(self) -> str:
        return self.server.http_url

    @property
    def client(self) -> Client:
        """The session's API client; unlike this inbox's own methods it sees every test's mail."""
        if self._closed:
            from .client import MailnestError

            raise MailnestError(f"this mailnest fixture belonged to {self._test or 'a test'}, which has finished; "
                                "request the mailnest fixture in the test that uses it")
        return self.server.client

    @property
    def _scope(self) -> str:
        return "@" + self.domain

    def address(self, name: str = "user") -> str:
        """An address that only this test receives mail for: address("alice") -> alice@<this test's domain>."""
        if not _LOCAL_PART.fullmatch(name) or name.startswith(".") or name.endswith(".") or ".." in name:
            raise ValueError(f"{name!r} cannot be the local part of an address; use letters, digits and ._+-")
        return f"{name.lower()}@{self.domain}"

    def messages(self) -> list[MailSummary]:
        """Every message sent to this test's addresses, newest first."""
        client = self.client
        page = client.messages(mailbox=self._scope, limit=_PAGE)
        found = list(page)
        while len(found) < page.messages_count and len(page):
            page = client.messages(mailbox=self._scope, start=len(found), limit=_PAGE)
            found.extend(page)
        return found

    def get(self, id: str) -> Mail:
        return self.client.get(id)

    def wait_for(self, query: str = "", *, count: int = 1, timeout: float = 10.0, to: str | None = None) -> list[Mail]:
        """Wait until `count` messages to this test's addresses (or just to `to`) match `query`; the newest `count`,
        newest first (exactly `count`, so `[mail] = mailnest.wait_for(...)` is safe).

        Raises mailnest.client.WaitTimeoutError (a TimeoutError) naming what did arrive.
        """
        __tracebackhide__ = True
        return self.client.wait_for(query, count=count, timeout=timeout, mailbox=self._mailbox(to))

    def assert_sent(self, *, to: str | None = None, subject: str | re.Pattern[str] | None = None,
                    count: int | None = None) -> list[Mail]:
        """Assert that mail was sent (exactly `count` messages, if given) and return it, newest first.

        Checks what is stored now, without waiting: an SMTP 250 means the message is already stored. For mail
        sent in the background, use wait_for. `subject` is the exact subject, or a compiled regex to search.
        """
        __tracebackhide__ = True
        if to is not None:
            self._mailbox(to)
        sent = self.messages()
        matching = [s for s in sent if (to is None or to.lower() in s.recipients) and _subject_matches(subject, s.subject)]
        if len(matching) != count if count is not None else not matching:
            wanted = "a message" if count is None else f"{count} message{'s' if count != 1 else ''}"
            conditions = [f"to {to}"] if to else []
            if subject is not None:
                conditions.append(f"with subject {_describe(subject)}")
            lines = [f"expected {' '.join([wanted, *conditions])}; {len(matching)} matched, "
                     f"{len(sent)} sent to this test's addresses (@{self.domain}):"]
            lines += [f"  - {s}" for s in sent] or ["  (none)"]
            raise AssertionError("\n".join(lines))
        return [self.get(s.id) for s in matching]

    def _mailbox(self, to: str | None) -> str:
        if to is None:
            return self._scope
        if not to.lower().endswith(self._scope):
            raise ValueError(f"{to!r} is not one of this test's addresses (they end in @{self.domain}); "
                             "use mailnest.address(...) for the addresses the code under test sends to")
        return to.lower()

    def close(self, *, delete: bool = True) -> None:
        """No use after this; a mailbox on demand is deleted with its mail (unless `delete` is False: then its
        retention takes it)."""
        if self.space and delete and not self._closed:
            from .client import MailnestError, NotFoundError

            try:
                self.server.client.delete_mailbox(self.domain)
            except NotFoundError:
                pass  # gone already (its retention, or the test deleted it)
            except MailnestError as error:
                warnings.warn(pytest.PytestWarning(f"mailnest: the mailbox {self.domain} was not deleted ({error}); "
                                                   "its retention removes it"), stacklevel=2)
        self._closed = True

    def __repr__(self) -> str:
        return f"<mailnest inbox @{self.domain} via {self.http_url}>"


def _subject_matches(wanted: str | re.Pattern[str] | None, subject: str) -> bool:
    if wanted is None:
        return True
    return bool(wanted.search(subject)) if isinstance(wanted, re.Pattern) else subject == wanted


def _describe(wanted: str | re.Pattern[str]) -> str:
    return f"/{wanted.pattern}/" if isinstance(wanted, re.Pattern) else repr(wanted)


def _slug(test_name: str) -> str:
    """A DNS label naming the test, so the web UI shows whose mail is whose."""
    return re.sub(r"[^a-z0-9]+", "-", test_name.lower().removeprefix("test_")).strip("-")[:24].strip("-") or "t"


def _label(test_name: str) -> str:
    """The test's DNS label, made unique by a random token."""
    return f"{_slug(test_name)}-{os.urandom(4).hex()}"


def _space_inbox(server: MailnestServer, test_name: str, test: str) -> Inbox | None:
    """A mailbox on demand of the server's for this test; None (and none tried again) when the server has none."""
    from .client import NotSupportedError

    try:
        box = server.client.create_mailbox(label=_slug(test_name), max_age=SPACE_MAX_AGE)
    except NotSupportedError:
        server.spaces = False
        return None
    return Inbox(server, box.domain, test, space=True)


@pytest.fixture(scope="session")
def mailnest_config() -> Config:
    """The Config of the server the session starts; override this fixture to change it (e.g. enable IMAP)."""
    from .config import Config

    return Config()


@pytest.fixture(scope="session")
def mailnest_domain() -> str:
    """The domain under which each test gets its own subdomain; override to use another."""
    return DEFAULT_DOMAIN


@pytest.fixture(scope="session")
def mailnest_server(request: pytest.FixtureRequest, mailnest_config: Config) -> Iterator[MailnestServer]:
    """The session's mailnest: started once per session (once per xdist worker), or --mailnest-url's."""
    url = request.config.getoption("mailnest_url")
    server = _remote(url, request.config.getoption("mailnest_smtp")) if url else _start(mailnest_config)
    try:
        yield server
    finally:
        server.stop()


def _start(config: Config) -> MailnestServer:
    from .runtime import ServerThread

    if config.smtp is None or config.http is None:
        raise pytest.UsageError("mailnest_config must keep the SMTP and HTTP listeners on (smtp=, http= not None)")
    thread = ServerThread(config).start()
    return MailnestServer(http_url=thread.http_url, smtp_host=thread.smtp_host, smtp_port=thread.smtp_port,
                          thread=thread)


def _remote(url: str, smtp: str | None) -> MailnestServer:
    from urllib.parse import urlsplit

    from .config import ConfigError, parse_listen

    host = urlsplit(url).hostname
    if not host:
        raise pytest.UsageError(f"--mailnest-url {url!r} needs a scheme and a host, as in http://127.0.0.1:8025")
    try:
        listen = parse_listen(smtp or f"{host}:1025", what="--mailnest-smtp")
    except ConfigError as error:
        raise pytest.UsageError(str(error)) from None
    server = MailnestServer(http_url=url.rstrip("/"), smtp_host=listen.host, smtp_port=listen.port)
    server.client.messages(limit=1)  # fail here, once, with the client's clear message, when nothing answers
    return server


@pytest.fixture
def mailnest(request: pytest.FixtureRequest, mailnest_server: MailnestServer, mailnest_domain: str) -> Iterator[Inbox]:
    """This test's inbox: `mailnest.address("alice")`, `mailnest.smtp_host/smtp_port`, `mailnest.wait_for()`."""
    inbox = None
    if mailnest_server.spaces and mailnest_domain == DEFAULT_DOMAIN:
        inbox = _space_inbox(mailnest_server, request.node.name, request.node.nodeid)
    if inbox is None:
        inbox = Inbox(mailnest_server, f"{_label(request.node.name)}.{mailnest_domain}", request.node.nodeid)
    try:
        yield inbox
    finally:
        inbox.close(delete=not request.node.stash.get(_FAILED, False))


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Remembers a failed test, so that its mailbox on demand is kept for a look (see `mailnest`). The old-style
    wrapper, which every pytest this plugin may be loaded into knows (it is loaded wherever mailnest is
    installed)."""
    outcome = yield
    if outcome.get_result().failed:
        item.stash[_FAILED] = True
