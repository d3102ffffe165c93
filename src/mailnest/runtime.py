"""MailServer: the composition root. Builds the store, the hub and every front door from one Config on one loop.

`async with MailServer(config) as server:` runs on the caller's loop; `with ServerThread(config) as server:` runs
the same in a background thread for synchronous code. Every listener accepts port 0; the bound ports are
reported as attributes (`smtp_port`, `http_port`, `http_url`, `imap_port`, `pop3_port`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import shutil
import socket
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import uvicorn

from . import tls
from .auth import Credentials, FailureGuard, LoginChecker
from .chaos import Chaos
from .config import Config, ConfigError, Listen
from .dblock import DatabaseLock
from .events import Hub
from .imap.server import checking_authenticator as imap_checking_authenticator
from .imap.server import start_imap
from .limits import quiet_accept_errors
from .mcp.streamable import McpHttp
from .metrics import Metrics
from .outputs import CustomHandlers, OutputDispatcher
from .outputs.webhook import SpaceWebhooks, WebhookDispatcher
from .outputs.work import WorkSweeper
from .pop3.server import checking_authenticator, start_pop3
from .smtp.security import SMTPSecurity
from .smtp.server import SMTPListener, start_smtp
from .store.base import Store
from .store.select import open_store
from .tags import parse_rules
from .web.spaces import suffix_of

log = logging.getLogger("mailnest")


class BindError(OSError):
    """A listener could not bind its address; the message names the listener and the address."""


class _Uvicorn(uvicorn.Server):
    # The process owns signals (cli.py); uvicorn must not install its own handlers on our loop.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind_socket(name: str, listen: Listen) -> socket.socket:
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    # proto must say TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto is IPPROTO_TCP, and
    # without it every keep-alive HTTP response waits 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(512)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise _bind_error(name, listen, exc) from exc
    return sock


def _bind_error(name: str, listen: Listen, exc: OSError) -> BindError:
    hint = ""
    if exc.errno == errno.EADDRINUSE:
        hint = f" (another program is using it; pick another with --{name} HOST:PORT, or port 0 for any free port)"
    elif exc.errno == errno.EACCES:
        hint = " (ports below 1024 need privileges; use a port above 1024)"
    return BindError(exc.errno or 0, f"cannot listen for {name.upper()} on {listen}: {exc.strerror or exc}{hint}")


def _port_of(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


class MailServer:
    """Every front door of mailnest on the running event loop."""

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        config = config or Config()
        self.config = config.replace(**overrides) if overrides else config
        self.hub = Hub()
        self.metrics = Metrics(self.hub)  # /metrics: this server's counts only
        self.store: Store = open_store(self.config, self.hub)
        # Built here, so that a bad --chaos, --tag, --handler or output setting fails before anything is bound.
        self.chaos = Chaos.from_config(self.config)
        self.store.configure_tags(parse_rules(self.config.tag_rules))
        self.custom_handlers = CustomHandlers.from_config(self.config.handlers)
        # Webhooks, relay and file outputs are once-only work claimed through the store (outputs/work.py): the
        # store writes their rows with each message only when some are configured.
        self.work = WorkSweeper.from_config(self.config, self.store)
        self.outputs = OutputDispatcher(self.config, self.store, self.hub, work=self.work)
        self.webhooks = WebhookDispatcher.from_config(self.config, self.hub, work=self.work)
        self.work.serve(self.outputs)
        if self.webhooks is not None:
            self.work.serve(self.webhooks)
        self.work.configure()
        self.metrics.watch(webhooks=self.webhooks, relay=self.outputs.relay)
        # The webhooks of mailboxes on demand (POST /api/v1/mailboxes), posted by the node that took the message.
        self.space_webhooks = SpaceWebhooks.for_spaces(self.config, self.store, self.hub,
                                                       suffix=suffix_of(self.config.extra))
        # MCP for coding agents at /mcp: loads the SDK and starts its session manager on the first request only.
        self.mcp = McpHttp()
        self._wrote_ports_file = False
        self.smtp_port: int | None = None
        self.http_port: int | None = None
        self.imap_port: int | None = None
        self.pop3_port: int | None = None
        self.smtps_port: int | None = None
        self.imaps_port: int | None = None
        self.pop3s_port: int | None = None
        self._servers: list[asyncio.Server] = []
        self._http: _Uvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []  # closed last, in reverse order
        self._front_doors: list[Callable[[], Awaitable[None]]] = []  # closed first, all at once
        self._smtp_listeners: list[SMTPListener] = []
        self._started = False
        self._stopped = False
        self.credentials = Credentials.load(self.config.auth_file)
        self.login_failures = FailureGuard()
        self.tls: tls.TLSMaterial | None = None
        self.ssl_context: ssl.SSLContext | None = None
        self._scratch: str | None = None
        self._db_lock: DatabaseLock | None = None

    # -- reporting -------------------------------------------------------------------------------------

    @property
    def tls_cert(self) -> Path | None:
        """The certificate served (generated or given); load it as the CA file to trust a generated one."""
        return self.tls.cert if self.tls else None

    @property
    def smtp_host(self) -> str:
        return self.config.smtp.host if self.config.smtp else "127.0.0.1"

    @property
    def http_url(self) -> str:
        if self.http_port is None or self.config.http is None:
            raise RuntimeError("the HTTP listener is not running")
        host = self.config.http.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        # Under --webroot, without its last slash: f"{http_url}/api/v1/messages" is then right either way.
        root = self.config.webroot.rstrip("/")
        return f"{'https' if self.config.http_tls else 'http'}://{host}:{self.http_port}{root}"

    def ports(self) -> dict[str, int]:
        names = ("smtp", "http", "imap", "pop3", "smtps", "imaps", "pop3s")
        return {n: p for n in names if (p := getattr(self, f"{n}_port")) is not None}

    # -- life cycle ------------------------------------------------------------------------------------

    async def start(self) -> MailServer:
        if self._started:
            raise RuntimeError("this MailServer was already started; make a new one")
        self._started = True
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start(self) -> None:
        config = self.config
        # Out of file descriptors, asyncio logs a traceback per failed accept: one rate-limited line instead,
        # for every listener on this loop (HTTP included).
        quiet_accept_errors(asyncio.get_running_loop(), log)
        if tls.tls_wanted(config):
            self._scratch = tempfile.mkdtemp(prefix="mailnest-tls-")
            self._closers.append(self._remove_scratch)
            self.tls = tls.load_material(config, Path(self._scratch))
            assert self.tls is not None
            self.ssl_context = tls.server_context(self.tls)
        if isinstance(config.db, Path):  # one server per SQLite file (dblock.py); PostgreSQL is for sharing
            self._db_lock = DatabaseLock.take(config.db)
            self._closers.append(self._release_db)
        await self.store.start()
        self._closers.append(self.store.close)
        # Closers run in reverse: the sweeper stops taking work over, webhooks and outputs flush, then the work
        # still held is let go (for the next node), and only then does the store close.
        self._closers.append(self.work.close)
        if self.webhooks is not None:
            await self.webhooks.start()
            self._closers.append(self.webhooks.close)
        await self.space_webhooks.start()
        self._closers.append(self.space_webhooks.close)
        await self.outputs.start()
        self._closers.append(self.outputs.close)
        await self.work.start()
        self._closers.append(self.work.stop_sweeping)
        security = SMTPSecurity(self.credentials, self.login_failures, self.ssl_context)
        checker = LoginChecker(self.credentials, self.login_failures)

        imap_login = imap_checking_authenticator(checker)
        pop3_login = checking_authenticator(checker)
        for name, implicit_tls in (("smtp", False), ("smtps", True), ("imap", False), ("imaps", True),
                                   ("pop3", False), ("pop3s", True)):
            listen: Listen | None = getattr(config, name)
            if listen is None:
                continue
            try:
                if name.startswith("smtp"):
                    smtp = await start_smtp(config, self.store, listen, security=security, implicit_tls=implicit_tls,
                                            chaos=self.chaos, custom=self.custom_handlers, metrics=self.metrics,
                                            observer=self.metrics.listener(name))
                    self._front_doors.append(smtp.close)
                    self._smtp_listeners.append(smtp)
                    port = smtp.port
                else:
                    start = start_imap if name.startswith("imap") else start_pop3
                    login: Any = imap_login if name.startswith("imap") else pop3_login
                    server = await start(config, self.store, self.hub, listen, authenticate=login,
                                         tls_context=self.ssl_context, implicit_tls=implicit_tls,
                                         observer=self.metrics.listener(name))
                    self._servers.append(server)
                    port = _port_of(server)
            except OSError as exc:
                raise _bind_error(name, listen, exc) from exc
            setattr(self, f"{name}_port", port)
        if config.http is not None:
            await self._start_http(config.http)
        if config.ports_file:
            Path(config.ports_file).write_text(json.dumps(self.ports()) + "\n")
            self._wrote_ports_file = True
        self._warn_about_exposure()
        log.info("mailnest is ready: %s", ", ".join(f"{k.upper()} {self._where(k)}" for k in self.ports()))

    def _warn_about_exposure(self) -> None:
        """Say loudly when a listener other machines can reach lets anyone in."""
        for name in self.ports():
            listen: Listen = getattr(self.config, name)
            if listen.is_loopback:
                continue
            guarded = bool(self.config.http_auth_file) if name == "http" else not self.credentials.accept_all
            if not guarded:
                fix = "--http-auth-file" if name == "http" else "--auth-file"
                log.warning("%s listens on %s, which other machines can reach, and lets anyone in: captured mail "
                            "is readable by anybody on the network. Bind to 127.0.0.1 or add %s.",
                            name.upper(), listen, fix)
            if name == "http" and listen.host in ("0.0.0.0", "::", "") and "*" not in self.config.allowed_hosts:
                log.warning("HTTP listens on every address: browsers that reach it by a name or address other than "
                            "localhost/127.0.0.1 get 400 until you add --allowed-host NAME for it")

    def _where(self, name: str) -> str:
        if name == "http":
            return self.http_url
        listen: Listen = getattr(self.config, name)
        return str(Listen(listen.host, getattr(self, f"{name}_port")))

    async def _release_db(self) -> None:
        if self._db_lock is not None:
            self._db_lock.release()
            self._db_lock = None

    async def _remove_scratch(self) -> None:
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)

    async def _start_http(self, listen: Listen) -> None:
        from .web.app import create_app

        sock = _bind_socket("http", listen)
        app = create_app(self)
        self._closers.append(self.mcp.stop)
        tls_files: dict[str, Any] = {}
        if self.config.http_tls and self.tls is not None:
            tls_files = {"ssl_certfile": str(self.tls.cert), "ssl_keyfile": str(self.tls.key)}
        uv_config = uvicorn.Config(app, lifespan="off", log_config=None, access_log=False, ws="websockets-sansio",
                                   date_header=False,  # the app sets Date per response (uvicorn's lags up to 1 s)
                                   **tls_files,
                                   timeout_graceful_shutdown=2, log_level="warning", ws_per_message_deflate=False)
        self._http = _Uvicorn(uv_config)
        self.http_port = int(sock.getsockname()[1])
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]), name="mailnest-http")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("the HTTP listener stopped during start-up")
            await asyncio.sleep(0.001)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        if self._wrote_ports_file and self.config.ports_file:  # a stale file would point scripts at dead ports
            Path(self.config.ports_file).unlink(missing_ok=True)
        for server in self._servers:
            server.close()
        if self._front_doors:
            await asyncio.gather(*(close() for close in self._front_doors), return_exceptions=True)
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(Exception):
                await self._http_task
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        for close in reversed(self._closers):
            try:
                await close()
            except Exception:
                log.exception("error while stopping")

    def hurry(self) -> None:
        """A stop under way no longer waits for messages being received: each gets a 421 (a second Ctrl-C)."""
        for listener in self._smtp_listeners:
            listener.hurry()

    async def __aenter__(self) -> MailServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes the event loop `--loop` names: asyncio's own, or uvloop's (about a tenth more messages per
    second over SMTP, benchmarks/README.md); ConfigError, saying how to get it, when uvloop is not installed."""
    if name == "asyncio":
        return asyncio.new_event_loop
    if name != "uvloop":
        raise ConfigError(f"--loop: {name!r} is not one of asyncio, uvloop")
    try:
        import uvloop
    except ImportError:
        raise ConfigError("--loop uvloop: uvloop is not installed; pip install 'mailnest[fast]' (or pip install "
                          "uvloop), or leave --loop out") from None
    return uvloop.new_event_loop


class ServerThread:
    """A MailServer on its own loop in a background thread, for synchronous code and test suites."""

    def __init__(self, config: Config | None = None, **overrides: Any) -> None:
        self.server = MailServer(config, **overrides)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def __getattr__(self, name: str) -> Any:
        # smtp_port, http_url, store, hub, config ... come from the MailServer
        return getattr(self.__dict__["server"], name)

    def start(self) -> ServerThread:
        self._thread = threading.Thread(target=self._run, name="mailnest", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def _run(self) -> None:
        loop = loop_factory(self.server.config.loop)()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            await self.server.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await self.server.stop()

    def call(self, coro: Awaitable[Any], timeout: float | None = 30) -> Any:
        """Run a coroutine on the server's loop (e.g. `thread.call(thread.store.list())`)."""
        if self._loop is None:
            raise RuntimeError("the server thread is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
