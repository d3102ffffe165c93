"""The one frozen Config, and the parsers that turn flag and environment strings into its values.

Config is built at the edge (cli.py, the pytest plugin, or the embedding caller) and passed down.
Embedding defaults differ from `mailnest serve`: every port is 0 and IMAP/POP3 are off unless asked for.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path


class ConfigError(ValueError):
    """A setting that cannot be used; the message says which and how to fix it."""


_DATABASE_URL = re.compile(r"^postgres(?:ql)?://", re.I)
# A PostgreSQL schema name that needs no quoting, short enough that the NOTIFY channel `mailnest_<name>` fits
# PostgreSQL's 63 bytes.
TENANT = re.compile(r"^[a-z_][a-z0-9_]{0,53}$")
# Schema names a tenant may not take: the store's own default (the mail of every node without --tenant),
# PostgreSQL's own (pg_*, information_schema; pg_dump leaves the catalogs out) and `public` (other apps' tables).
_RESERVED_TENANTS = re.compile(r"^(mailnest|public|information_schema|pg_.*)$")


def is_database_url(db: object) -> bool:
    """A PostgreSQL URL (`postgresql://` or `postgres://`) as `db`, as opposed to a SQLite file path."""
    return isinstance(db, str) and bool(_DATABASE_URL.match(db))


def _check_tenant(tenant: str | None, db: Path | str | None) -> None:
    """Refuse a tenant name that is not a plain schema name, or a tenant without PostgreSQL."""
    if tenant is None:
        return
    if not is_database_url(db):
        raise ConfigError("--tenant needs a PostgreSQL --db (postgresql://...); a SQLite file holds one tenant: "
                          "use one --db file per team instead")
    problem = tenant_problem(tenant)
    if problem:
        raise ConfigError(f"--tenant {problem}")


def tenant_problem(tenant: str) -> str | None:
    """Why `tenant` cannot name a tenant's schema, or None when it can."""
    if not TENANT.fullmatch(tenant):
        return (f"{tenant!r}: use 1-54 lower-case letters, digits and _, starting with a letter or _ (it names a "
                "PostgreSQL schema)")
    if _RESERVED_TENANTS.fullmatch(tenant):
        return (f"{tenant!r} is reserved: 'mailnest' is the mail of nodes without --tenant, and public, "
                "information_schema and pg_* belong to PostgreSQL; choose another name")
    return None


@dataclass(frozen=True, slots=True)
class Listen:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def is_loopback(self) -> bool:
        return self.host in ("localhost", "::1") or self.host.startswith("127.")


def parse_listen(value: str | Listen, *, what: str = "listener") -> Listen:
    """`HOST:PORT`, `:PORT` (loopback), `PORT`, or `[v6]:PORT`. Port 0 picks a free port."""
    if isinstance(value, Listen):
        return value
    text = str(value).strip()
    host, port_text = "127.0.0.1", text
    if text.startswith("["):
        match = re.fullmatch(r"\[([^\]]+)\]:(\d+)", text)
        if not match:
            raise ConfigError(f"{what}: {text!r} is not [IPv6]:PORT")
        host, port_text = match.group(1), match.group(2)
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        host = host or "127.0.0.1"
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(f"{what}: {text!r} needs a port between 0 and 65535, as in 127.0.0.1:1025")
    return Listen(host, int(port_text))


# `max_message_size=0` (unlimited) is kept as this, so that every size check stays a plain comparison.
UNLIMITED_SIZE = sys.maxsize

_WEBROOT_SEGMENT = re.compile(r"[A-Za-z0-9._~-]+")


def normalise_webroot(value: str, *, what: str = "webroot") -> str:
    """`mail`, `/mail`, `/mail/` -> `/mail/`; `/` or empty -> `/`. A clean absolute path only: letters, digits and
    `. _ ~ -` between single slashes, no `.` or `..` segment, no query, fragment or percent-escape."""
    text = str(value).strip()
    if any(ch in text for ch in "?#"):
        raise ConfigError(f"{what}: {value!r} must be a plain path such as /mail/ (no query or fragment)")
    if "//" in text:
        raise ConfigError(f"{what}: {value!r} has an empty segment (//); write a path such as /mail/ or /a/b/")
    segments = [segment for segment in text.split("/") if segment]
    for segment in segments:
        if segment in (".", ".."):
            raise ConfigError(f"{what}: {value!r} may not contain '{segment}'; write the path itself, such as "
                              "/mail/")
        if not _WEBROOT_SEGMENT.fullmatch(segment):
            raise ConfigError(f"{what}: {value!r}: use letters, digits and . _ ~ - between slashes, such as "
                              "/mail/ or /tools/mail/")
    return "/" + "".join(segment + "/" for segment in segments)


def check_label(value: str | None, *, what: str = "label") -> str | None:
    """A label is one short line of printable text; empty means none."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if not text.isprintable() or len(text) > 100:
        raise ConfigError(f"{what}: {value!r} must be one line of printable text, at most 100 characters")
    return text


_CORS_HOST = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:\d{1,5})?"
                        r"|\[[0-9a-f:.]+\](:\d{1,5})?")


def normalise_cors(entries: tuple[str, ...] | list[str], *, what: str = "cors") -> tuple[str, ...]:
    """CORS entries as Mailpit's --api-cors takes them, beside full origins: `example.com`, `example.com:8080`,
    `http://localhost:3000`, `*`; each may hold several, separated by commas or spaces. As in Mailpit the match is
    on host and port, whatever the scheme: each entry becomes its http:// and https:// origin, in lower case.
    `*` anywhere allows every origin."""
    origins: list[str] = []
    for entry in entries:
        for item in re.split(r"[,\s]+", str(entry).strip()):
            if not item:
                continue
            if item == "*":
                return ("*",)
            text = item.lower().rstrip("/")
            scheme, _, host = text.rpartition("://")
            if scheme not in ("", "http", "https") or not _CORS_HOST.fullmatch(host) or not host.isascii():
                raise ConfigError(f"{what}: {item!r} is not a host name or an origin: use example.com, "
                                  "example.com:8080, http://localhost:3000 or *")
            port = host.rpartition(":")[2] if not host.endswith("]") and ":" in host else None
            if port is not None and not 0 < int(port) < 65536:
                raise ConfigError(f"{what}: {item!r} has a port outside 1-65535")
            for origin in (f"http://{host}", f"https://{host}"):
                if origin not in origins:
                    origins.append(origin)
    return tuple(origins)


def compile_recipients(pattern: str | None, *, what: str = "smtp-allowed-recipients") -> re.Pattern[str] | None:
    """The allowed-recipients regular expression (searched in each RCPT TO address, as Mailpit's Go regexp
    MatchString does: anchor it with ^...$ to match whole addresses; (?i) for any case)."""
    if pattern is None or pattern == "":
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{what}: {pattern!r} is not a regular expression: {exc}") from None


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1024**2, "mb": 1024**2, "mib": 1024**2,
               "g": 1024**3, "gb": 1024**3, "gib": 1024**3}


def parse_size(value: str | int, *, what: str = "size") -> int:
    """`52428800`, `50M`, `50MiB`, `100k` -> bytes (binary units)."""
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", str(value))
    if not match or match.group(2).lower() not in _SIZE_UNITS:
        raise ConfigError(f"{what}: {value!r} is not a size such as 50M, 512k or 1048576")
    return int(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: str | float | int | None, *, what: str = "duration") -> float | None:
    """`30s`, `15m`, `12h`, `7d`, `2w`, `1h30m`, or plain seconds. `0`/empty -> None (no limit)."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float):
        return float(value) or None
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text) or None
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ConfigError(f"{what}: {value!r} is not a duration such as 30s, 15m, 12h, 7d or 1h30m")
    return sum(float(n) * _DURATION_UNITS[u] for n, u in parts) or None


@dataclass(frozen=True, slots=True)
class Config:
    # Listeners. None disables one. Embedding defaults: SMTP and HTTP on port 0, IMAP/POP3 off.
    smtp: Listen | None = Listen("127.0.0.1", 0)
    http: Listen | None = Listen("127.0.0.1", 0)
    imap: Listen | None = None
    pop3: Listen | None = None
    smtps: Listen | None = None
    imaps: Listen | None = None
    pop3s: Listen | None = None
    hostname: str = "mailnest"  # the name the SMTP banner, EHLO and IMAP greeting use (no DNS lookup)

    # Store
    # A SQLite file, or a postgresql:// URL (the team store; see store.select). None: a temporary SQLite database
    # deleted at exit.
    db: Path | str | None = None
    tenant: str | None = None  # PostgreSQL only: the schema that keeps this team's mail apart
    max_messages: int = 50_000  # 0 = unlimited; oldest pruned first
    max_age: float | None = None  # seconds; None = keep forever
    ignore_duplicate_ids: bool = False  # 250 to a message whose Message-ID is stored already, and keep the first
    use_message_dates: bool = False  # date messages by their Date header rather than their arrival
    compress: bool = False  # keep raw message bytes zstd-compressed at rest (read back exactly as received)

    # SMTP
    max_message_size: int = 50 * 1024 * 1024  # 0 = unlimited (kept as UNLIMITED_SIZE)
    max_recipients: int = 100
    smtp_timeout: float = 300.0
    print_messages: bool = False  # console output: envelope then message, as smtpd's DebuggingServer

    data_timeout: float = 600.0  # deadline for a whole DATA phase (RFC 5321 4.5.3.2 suggests 10 minutes)
    # A regular expression searched in each RCPT TO address; a recipient that does not match gets 550 (Mailpit's
    # --smtp-allowed-recipients). None accepts every recipient.
    smtp_allowed_recipients: str | None = None
    # With smtp_allowed_recipients: answer 250 to a recipient that does not match, and drop it (a message with
    # no other recipient is answered 250 and not stored), as Mailpit's --smtp-ignore-rejected-recipients.
    smtp_ignore_rejected_recipients: bool = False

    # IMAP / POP3
    catch_all_login: str = "*"  # this login sees every message
    idle_timeout: float = 1800.0

    # Limits on every listener (SMTP, IMAP, POP3): a client over them is answered and closed, others go on.
    max_connections: int = 500  # open connections per listener
    max_connections_per_client: int = 50  # open connections per listener from one client address
    command_timeout: float = 60.0  # deadline for one whole command line once its first byte has arrived

    # Outputs (issue 4)
    mh: Path | None = None
    maildir: Path | None = None
    mbox: Path | None = None
    latest: Path | None = None
    handlers: tuple[object | str, ...] = ()  # "module:object" strings or handler objects (embedding)
    relay: str | None = None  # HOST:PORT of the upstream server
    relay_tls: str = "none"  # none | starttls | tls
    relay_user: str | None = None
    relay_password: str | None = None
    relay_allow: tuple[str, ...] = ()
    release_allow: tuple[str, ...] = ()  # release on demand only, never automatic forwarding
    relay_deny: tuple[str, ...] = ()  # never forwarded nor released; wins over both allow-lists
    forward_to: tuple[str, ...] = ()  # every new message is also relayed to these addresses
    relay_override_from: str | None = None  # the envelope sender and From header of relayed mail
    webhooks: tuple[str, ...] = ()
    # Once-only work (webhooks, relay, file outputs) is claimed through the store with a lease, renewed by its node
    # every sweep; another node (or this one restarted) takes over work whose lease ran out (outputs/work.py).
    work_lease: float = 30.0
    work_sweep: float = 5.0

    # API extras (issue 6)
    tag_rules: tuple[str, ...] = ()  # "subject:invoice=billing"
    chaos: str | None = None
    allow_private_link_check: bool = False
    spamassassin: str | None = None  # a spamd for /sa-check: HOST:PORT or unix:/path

    # TLS and authentication (issue 8)
    tls: bool = False
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False
    auth_file: Path | None = None
    require_auth: bool = False
    allow_insecure_auth: bool = False
    http_tls: bool = False  # serve the UI and API over HTTPS with the TLS certificate
    http_auth_file: Path | None = None
    send_auth_file: Path | None = None
    cors_origins: tuple[str, ...] = ()
    # Host names the HTTP server answers to besides loopback names and addresses, its listen address and
    # `hostname` (a defence against DNS rebinding); "*" answers any.
    allowed_hosts: tuple[str, ...] = ()
    max_event_queue: int = 1000  # events queued for one websocket/SSE client before it is dropped as too slow
    webroot: str = "/"  # serve the UI and API under this path (behind a reverse proxy), e.g. "/mail/"
    label: str | None = None  # a name for this instance: the UI title, the SMTP greeting, webhook headers

    # Process
    ports_file: Path | None = None
    log_level: str = "INFO"
    loop: str = "asyncio"  # asyncio | uvloop (runtime.loop_factory)
    extra: dict[str, object] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.max_message_size < 0:
            raise ConfigError("max_message_size must be 0 (unlimited) or more bytes")
        if self.max_message_size == 0:
            object.__setattr__(self, "max_message_size", UNLIMITED_SIZE)
        object.__setattr__(self, "webroot", normalise_webroot(self.webroot))
        object.__setattr__(self, "label", check_label(self.label))
        object.__setattr__(self, "cors_origins", normalise_cors(self.cors_origins))
        compile_recipients(self.smtp_allowed_recipients)
        if self.max_recipients < 1:
            raise ConfigError("max_recipients must be at least 1")
        if self.max_messages < 0:
            raise ConfigError("max_messages must be 0 (unlimited) or more")
        if self.max_connections < 1 or self.max_connections_per_client < 1:
            raise ConfigError("max_connections and max_connections_per_client must be at least 1")
        if self.max_event_queue < 1:
            raise ConfigError("max_event_queue must be at least 1")
        for name in ("smtp_timeout", "data_timeout", "idle_timeout", "command_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be more than 0 seconds")
        _check_tenant(self.tenant, self.db)

    def replace(self, **changes: object) -> Config:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def tls_enabled(self) -> bool:
        """A certificate is served: by --tls/--tls-cert, or implied by an implicit-TLS listener or --http-tls
        (SMTP, IMAP and POP3 then offer STARTTLS with it)."""
        return bool(self.tls or self.tls_cert or self.smtps or self.imaps or self.pop3s or self.http_tls)


SERVE_DEFAULTS = Config(
    smtp=Listen("127.0.0.1", 1025),
    http=Listen("127.0.0.1", 8025),
    imap=Listen("127.0.0.1", 1143),
    pop3=Listen("127.0.0.1", 1110),
)
