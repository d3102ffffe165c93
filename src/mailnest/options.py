"""The table of `mailnest serve` options: one row drives the flag, its MAILNEST_* variable, the check and the help.

A value comes from the flag when it is on the command line, else from the variable, else the default; every
error names the spelling the user wrote (`--smtp` or `MAILNEST_SMTP`), and `spelled()` rewrites the option names
in a later message (a check across options, a listener that cannot bind) the same way. A switch in the
environment must say on (1, true, yes, on) or off (0, false, no, off, empty): anything else is refused, not taken
for off. `unknown_variables()` names MAILNEST_* variables that no option reads, with the nearest known name.
"""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import (
    SERVE_DEFAULTS,
    ConfigError,
    Listen,
    check_label,
    compile_recipients,
    normalise_cors,
    normalise_webroot,
    parse_duration,
    parse_listen,
    parse_size,
)
from .store.select import parse_db

PREFIX = "MAILNEST_"
OFF_WORDS = {"off", "none", "no", "false", ""}  # a listener switched off; not "0": port 0 means "any free port"
_ON = {"1", "true", "yes", "on"}
_OFF = {"0", "false", "no", "off", ""}
# Read by other parts of the project, not by a serve option: not reported as unknown.
OTHER_VARIABLES = frozenset({
    "MAILNEST_MCP_URL", "MAILNEST_MCP_USER", "MAILNEST_MCP_PASSWORD",  # `mailnest mcp` (mcp/stdio.py)
    "MAILNEST_UPDATE_SCREENSHOTS",  # the browser tests: rewrite the README screenshots
})

Parse = Callable[[str, str], Any]  # (text, the spelling to name in an error) -> value


def env_name(flag: str) -> str:
    """`--max-messages` -> `MAILNEST_MAX_MESSAGES`."""
    return PREFIX + flag.lstrip("-").upper().replace("-", "_")


# -- value parsers: each names `what` (the flag or the variable) in its error ---------------------------------

def listen_or_off(text: str, what: str) -> Listen | None:
    if text.strip().lower() in OFF_WORDS:
        return None
    return parse_listen(text, what=what)


def switch(text: str, what: str) -> bool:
    word = text.strip().lower()
    if word in _ON:
        return True
    if word in _OFF:
        return False
    raise ConfigError(f"{what}={text!r} is neither on nor off: use 1, true, yes or on to switch it on, and 0, "
                      "false, no, off or nothing to switch it off")


def whole_number(text: str, what: str) -> int:
    try:
        number = int(text)
    except ValueError:
        raise ConfigError(f"{what}: {text!r} is not a whole number") from None
    if number < 0:
        raise ConfigError(f"{what}: must be 0 or more")
    return number


def size(text: str, what: str) -> int:
    return parse_size(text, what=what)


def duration(text: str, what: str) -> float | None:
    return parse_duration(text, what=what)


def seconds(text: str, what: str) -> float:
    """A duration that must be more than zero (a timeout): `30s`, `5m`, `90`."""
    value = parse_duration(text, what=what)
    if value is None:
        raise ConfigError(f"{what}: {text!r} must be more than 0, such as 30s or 5m")
    return value


def choice(*choices: str, upper: bool = False) -> Parse:
    def parse(text: str, what: str) -> str:
        value = text.strip().upper() if upper else text.strip()
        if value not in choices:
            raise ConfigError(f"{what}: {text!r} is not one of {', '.join(choices)}")
        return value

    return parse


def text_value(text: str, what: str) -> str:
    return text


def path(text: str, what: str) -> Path:
    return Path(text)


def db(text: str, what: str) -> Path | str:
    return parse_db(text)


def webroot(text: str, what: str) -> str:
    return normalise_webroot(text, what=what)


def label(text: str, what: str) -> str | None:
    return check_label(text, what=what)


def recipients(text: str, what: str) -> str:
    compile_recipients(text, what=what)
    return text


def cors(text: str, what: str) -> list[str]:
    return list(normalise_cors([text], what=what))


def spamd_address(text: str, what: str) -> str:
    from .spamd import SpamdAddress, SpamdAddressError

    try:
        return str(SpamdAddress.parse(text, what))
    except SpamdAddressError as exc:
        raise ConfigError(str(exc)) from None


def items(text: str, what: str) -> list[str]:
    """One item of a repeatable option. An empty one is refused rather than ignored: `--relay-deny ''` must not
    quietly deny nothing. (A variable's empty parts between separators are skipped before this.)"""
    if not text.strip():
        raise ConfigError(f"{what}: an empty value; give one, or leave the option out")
    return [text]


# -- the table ------------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Option:
    flag: str
    group: str
    help: str
    parse: Parse = text_value
    default: Any = None
    metavar: str | None = None
    dest: str | None = None  # default: the flag's name with underscores
    kind: str = "value"  # value | switch | list (repeatable; the variable holds several, split by `sep`)
    sep: str = ","
    also_env: tuple[str, ...] = ()  # older or shared names, read when the main one is not set
    nargs: str | None = None
    const: str | None = None

    @property
    def name(self) -> str:
        return self.dest or self.flag.lstrip("-").replace("-", "_")

    @property
    def env(self) -> str:
        return env_name(self.flag)


_D = SERVE_DEFAULTS
LISTENERS = "listeners (HOST:PORT; port 0 picks a free port; 'off' disables)"
STORE, SMTP, LIMITS, SECURITY = "store", "SMTP", ("limits (SMTP, IMAP and POP3 listeners; a client over them "
                                                  "gets 421 or BYE)"), "TLS and authentication"
WEB = "web UI and API"
FILES = "file outputs and extensions (after each message is stored)"
RELAY = "relay (off unless configured; only allow-listed recipients are forwarded)"
EXTRAS, OUTPUT = "API extras", "output"

SERVE_OPTIONS: tuple[Option, ...] = (
    Option("--smtp", LISTENERS, f"SMTP, where applications send mail (default {_D.smtp})", listen_or_off, _D.smtp,
           "HOST:PORT"),
    Option("--http", LISTENERS, f"HTTP: the web UI and the API (default {_D.http})", listen_or_off, _D.http,
           "HOST:PORT"),
    Option("--imap", LISTENERS, "IMAP4rev1, to read mail in a mail client (log in as a recipient address, or * for "
           f"all; default {_D.imap})", listen_or_off, _D.imap, "HOST:PORT"),
    Option("--pop3", LISTENERS, "POP3, to read a mailbox (log in as a recipient address, or * for everything; "
           f"default {_D.pop3})", listen_or_off, _D.pop3, "HOST:PORT"),
    Option("--smtps", LISTENERS, "an extra SMTP listener with implicit TLS (port 465 style), e.g. 127.0.0.1:1465 "
           "(default off)", listen_or_off, None, "HOST:PORT"),
    Option("--imaps", LISTENERS, "an extra IMAP listener with implicit TLS (port 993 style), e.g. 127.0.0.1:1993 "
           "(default off)", listen_or_off, None, "HOST:PORT"),
    Option("--pop3s", LISTENERS, "an extra POP3 listener with implicit TLS (port 995 style), e.g. 127.0.0.1:1995 "
           "(default off)", listen_or_off, None, "HOST:PORT"),
    Option("--hostname", LISTENERS, f"name used in the SMTP greeting (default {_D.hostname}; no DNS lookup is made)",
           text_value, _D.hostname, "NAME"),
    Option("--label", LISTENERS, "a name for this instance, shown in the UI title and the SMTP greeting "
           "(220 HOST mailnest (NAME) ESMTP), e.g. staging", label, None, "NAME"),

    Option("--db", STORE, "keep messages in this SQLite file across restarts, or in PostgreSQL "
           "(postgresql://user:password@host:port/dbname), which several mailnest nodes can share (default: a "
           "temporary SQLite database deleted at exit)", db, None, "PATH|URL"),
    Option("--tenant", STORE, "PostgreSQL only: keep this team's or project's mail apart from others on the same "
           "database (a schema of that name)", text_value, None, "NAME"),
    Option("--max-messages", STORE, f"keep at most N messages, pruning the oldest (default {_D.max_messages}; "
           "0 = no limit)", whole_number, _D.max_messages, "N"),
    Option("--max-age", STORE, "delete messages older than this, e.g. 12h, 7d (default: keep)", duration, None,
           "DURATION"),
    Option("--ignore-duplicate-ids", STORE, "answer 250 to a message whose Message-ID is already stored, and keep "
           "only the first (Mailpit's --ignore-duplicate-ids)", kind="switch", default=False),
    Option("--compress", STORE, "keep each new message's raw bytes compressed with zstd (stored at 17-60%% of "
           "their size: least for HTML mail, most for small messages; the API, IMAP and POP3 give back the bytes "
           "exactly as received; Mailpit's --compression)", kind="switch", default=False),
    Option("--use-message-dates", STORE, "date each message by its own Date header rather than when it arrived "
           "(the list order and before:/after: follow it; Mailpit's --use-message-dates)", kind="switch",
           default=False),

    Option("--max-message-size", SMTP, "refuse larger messages with 552, e.g. 10M (default 50M; 0 = no limit)",
           size, _D.max_message_size, "SIZE"),
    Option("--max-recipients", SMTP, f"refuse more recipients per message with 452 (default {_D.max_recipients})",
           whole_number, _D.max_recipients, "N"),
    Option("--smtp-allowed-recipients", SMTP, "accept only recipients in which this regular expression finds a "
           r"match, others get 550, e.g. '@example\.com$' or '(?i)^(dev|qa)@' (default: every recipient)",
           recipients, None, "REGEX"),
    Option("--smtp-ignore-rejected-recipients", SMTP, "with --smtp-allowed-recipients: answer 250 to the others "
           "and drop them (a message left with no recipient is not stored)", kind="switch", default=False),
    Option("--smtp-timeout", SMTP, f"close an SMTP connection idle this long between commands (default "
           f"{_D.smtp_timeout:g}s)", seconds, _D.smtp_timeout, "DURATION"),
    Option("--data-timeout", SMTP, f"deadline for sending one whole message after DATA (default "
           f"{_D.data_timeout:g}s)", seconds, _D.data_timeout, "DURATION"),

    Option("--max-connections", LIMITS, f"open connections per listener (default {_D.max_connections})",
           whole_number, _D.max_connections, "N"),
    Option("--max-connections-per-client", LIMITS, "open connections per listener from one client address "
           f"(default {_D.max_connections_per_client})", whole_number, _D.max_connections_per_client, "N"),
    Option("--command-timeout", LIMITS, "deadline for one whole command line once it has started (default "
           f"{_D.command_timeout:g}s)", seconds, _D.command_timeout, "DURATION"),
    Option("--idle-timeout", LIMITS, f"close an IMAP or POP3 connection idle this long (default "
           f"{_D.idle_timeout:g}s)", seconds, _D.idle_timeout, "DURATION"),
    Option("--max-event-queue", LIMITS, "live events queued for one websocket or SSE client before it is dropped "
           f"as too slow (default {_D.max_event_queue})", whole_number, _D.max_event_queue, "N"),

    Option("--tls", SECURITY, "offer STARTTLS, with a self-signed certificate generated at start for the host "
           "names (its path is logged) unless --tls-cert/--tls-key are given", kind="switch", default=False),
    Option("--tls-cert", SECURITY, "your certificate (chain) in PEM; implies --tls", path, None, "PEM"),
    Option("--tls-key", SECURITY, "the private key of --tls-cert, in PEM", path, None, "PEM"),
    Option("--require-tls", SECURITY, "refuse MAIL and AUTH before STARTTLS (530 5.7.0)", kind="switch",
           default=False),
    Option("--auth-file", SECURITY, "check logins against user:password lines (plain or bcrypt); without it any "
           "credentials are accepted and the user name is recorded", path, None, "FILE"),
    Option("--require-auth", SECURITY, "refuse mail from clients that have not logged in (530 5.7.0)",
           kind="switch", default=False),
    Option("--http-tls", SECURITY, "serve the web UI and API over HTTPS with the TLS certificate (implies --tls)",
           kind="switch", default=False),
    Option("--http-auth-file", SECURITY, "require HTTP basic authentication on the UI and API with these "
           "user:password lines (plain or bcrypt); /livez and /readyz stay open", path, None, "FILE"),
    Option("--send-auth-file", SECURITY, "separate accounts for the send API (POST /api/v1/send), e.g. for a test "
           "suite", path, None, "FILE"),
    Option("--allow-insecure-auth", SECURITY, "allow plain-text AUTH before STARTTLS even when TLS is configured",
           kind="switch", default=False),

    Option("--webroot", WEB, "serve the web UI and API under this path, behind a reverse proxy, e.g. /mail/ "
           "(default /)", webroot, "/", "PATH"),
    Option("--cors", WEB, "let web pages from ORIGIN call the API and open the event stream: a host name as "
           "Mailpit's --api-cors takes it (example.com, example.com:8080; http and https), a full origin "
           "(http://localhost:3000) or *; several separated by commas, or repeat it; default: same origin only",
           cors, (), "ORIGIN", dest="cors_origins", kind="list"),
    Option("--allowed-host", WEB, "a Host name the web UI and API answer to, besides loopback names and "
           "addresses, the listen address and --hostname (repeatable; .example.com or *.example.com for a domain "
           "and every name under it; '*' for any; defends against DNS rebinding)", items, (), "NAME",
           dest="allowed_hosts", kind="list", also_env=("MAILNEST_ALLOWED_HOSTS",)),

    Option("--mh", FILES, "also write each message into MH folders DIR/DOMAIN/USER/1, 2, 3... (one per "
           "recipient)", path, None, "DIR"),
    Option("--maildir", FILES, "also deliver each message into a Maildir per recipient, "
           "DIR/DOMAIN/USER/{tmp,new,cur}", path, None, "DIR"),
    Option("--mbox", FILES, "also append each message to this mbox file (with locking; mutt can read it)", path,
           None, "FILE"),
    Option("--latest", FILES, "also overwrite FILE with the newest message (X-MailFrom, X-RcptTo, X-Peer added)",
           path, None, "FILE"),
    Option("--handler", FILES, "your own handler with aiosmtpd hooks (handle_RCPT, handle_DATA...) or smtpd's "
           "process_message(peer, mailfrom, rcpttos, data); repeatable; also path/file.py:obj", items, (),
           "MODULE:OBJECT", dest="handlers", kind="list"),

    Option("--relay", RELAY, "upstream SMTP server to forward allow-listed recipients to, in the background",
           text_value, None, "HOST:PORT"),
    Option("--relay-allow", RELAY, "recipients that may be forwarded: an exact address, *@example.com, or "
           "/regex/; repeatable; nothing is forwarded without one", items, (), "PATTERN", kind="list"),
    Option("--relay-tls", RELAY, "how to talk to the upstream: none, starttls or tls (default none)",
           choice("none", "starttls", "tls"), "none", "none|starttls|tls"),
    Option("--relay-user", RELAY, "log in to the upstream as USER", text_value, None, "USER"),
    Option("--relay-password", RELAY, "the upstream password (better: MAILNEST_RELAY_PASSWORD, kept out of ps)",
           text_value, None, "PASSWORD"),
    Option("--release-allow", RELAY, "recipients a stored message may be released to on demand (the UI's Release, "
           "the release API) but never forwarded automatically; patterns as --relay-allow, /.*/ for any; "
           "repeatable", items, (), "PATTERN", kind="list"),
    Option("--relay-deny", RELAY, "recipients never forwarded nor released, whatever the allow-lists say; "
           "patterns as --relay-allow; repeatable", items, (), "PATTERN", kind="list"),
    Option("--forward-to", RELAY, "also send every new message through the relay to this address (not to its "
           "own recipients); repeatable", items, (), "ADDRESS", kind="list"),
    Option("--relay-override-from", RELAY, "the sender of relayed, released and forwarded mail: the envelope "
           "sender and the From header become ADDRESS", text_value, None, "ADDRESS"),

    Option("--work-lease", RELAY, "how long a node holds a message's webhook, relay and file-output work before "
           f"another node (or this one restarted) may take it over (default {_D.work_lease:g}s)", seconds,
           _D.work_lease, "DURATION"),
    Option("--work-sweep", RELAY, "how often each node renews its leases and takes over work whose lease ran out "
           f"(default {_D.work_sweep:g}s; at most a third of --work-lease)", seconds, _D.work_sweep, "DURATION"),
    Option("--tag", EXTRAS, "tag messages that match a search as they arrive, e.g. subject:invoice=billing "
           "(repeatable; Mailpit's TAG=QUERY order works too; several in the variable separated by ;)", items, (),
           "QUERY=TAG", dest="tag_rules", kind="list", sep=";"),
    Option("--webhook", EXTRAS, "POST each new message's summary (Mailpit's webhook shape) to URL, retried with "
           "backoff (repeatable)", items, (), "URL", dest="webhooks", kind="list"),
    Option("--chaos", EXTRAS, "make SMTP fail on purpose to test retry logic, e.g. sender=451:0.5,"
           "recipient=550:10%%,auth=535:0.2,latency=200ms,rate=10/s,drop=0.05,seed=42; plain --chaos only enables "
           "the chaos API (/api/v1/chaos)", text_value, None, "SPEC", nargs="?", const="on"),
    Option("--allow-private-link-check", EXTRAS, "let the link check request private, loopback and link-local "
           "addresses", kind="switch", default=False),

    Option("--spamassassin", EXTRAS, "score messages with this SpamAssassin spamd for /sa-check and the UI's Spam "
           "tab: HOST:PORT or unix:/path (default off)", spamd_address, None, "HOST:PORT"),

    Option("--print", OUTPUT, "also print each message to the console as it arrives (like smtpd's "
           "DebuggingServer)", kind="switch", default=False, dest="print_messages"),
    Option("--ports-file", OUTPUT, "write the bound ports as JSON to FILE, for scripts (useful with port 0); it "
           "is removed at exit", path, None, "FILE"),
    Option("--loop", OUTPUT, "the event loop: asyncio (default) or uvloop (faster: install it with "
           "pip install 'mailnest[fast]')", choice("asyncio", "uvloop"), "asyncio", "asyncio|uvloop"),
    Option("--log-level", OUTPUT, "logging detail: DEBUG, INFO, WARNING or ERROR (default INFO; also LOG_LEVEL)",
           choice("DEBUG", "INFO", "WARNING", "ERROR", upper=True), "INFO", "LEVEL", also_env=("LOG_LEVEL",)),
)


def _flag_type(option: Option) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return option.parse(text, option.flag)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def add_options(parser: argparse.ArgumentParser, options: Sequence[Option] = SERVE_OPTIONS) -> None:
    """Add each option to `parser`, in its group. Unset ones stay out of the namespace (see `resolve`)."""
    groups: dict[str, Any] = {}
    for option in options:
        group = groups.get(option.group) or groups.setdefault(option.group, parser.add_argument_group(option.group))
        help_text = f"{option.help} (env {option.env})"
        common: dict[str, Any] = {"dest": option.name, "default": argparse.SUPPRESS, "help": help_text}
        if option.kind == "switch":
            group.add_argument(option.flag, action="store_true", **common)
        elif option.kind == "list":
            group.add_argument(option.flag, action="append", type=_flag_type(option), metavar=option.metavar,
                               **common)
        else:
            group.add_argument(option.flag, type=_flag_type(option), metavar=option.metavar, nargs=option.nargs,
                               const=option.const, **common)


@dataclass(frozen=True, slots=True)
class Resolved:
    """Every option's value, and how the user spelt each one that was set (flag or variable)."""

    values: dict[str, Any]
    spellings: dict[str, str]  # option name -> "--smtp" or "MAILNEST_SMTP"; defaults are spelt as the flag

    def spelled(self, message: str) -> str:
        """`message` with each option named as the user set it: `--smtp` becomes `MAILNEST_SMTP` when the value
        came from the environment, and a Config field name (`max_connections`) becomes the flag or variable."""
        by_flag = {option.flag: self.spellings.get(option.name, option.flag) for option in SERVE_OPTIONS}
        by_field = {option.name: self.spellings.get(option.name, option.flag) for option in SERVE_OPTIONS
                    if "_" in option.name}

        def flag(match: re.Match[str]) -> str:
            spelt = by_flag.get(match.group(1), match.group(1))
            value = match.group(2) or ""
            if spelt.startswith(PREFIX) and value:  # "--smtp HOST:PORT" -> "MAILNEST_SMTP=HOST:PORT"
                return f"{spelt}={value.lstrip()}"
            return spelt + value

        def field(match: re.Match[str]) -> str:
            return by_field.get(match.group(0), match.group(0))

        message = re.sub(r"(?<![\w-])(--[a-z0-9][a-z0-9-]*)(?![\w-])( [A-Z][A-Z0-9:|_.]*(?![\w]))?", flag,
                         message)
        return re.sub(r"(?<![\w-])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![\w-])", field, message)


def _from_environment(option: Option, environ: Mapping[str, str]) -> tuple[str, str] | None:
    for name in (option.env, *option.also_env):
        if name in environ:
            return name, environ[name]
    return None


def resolve(args: argparse.Namespace, environ: Mapping[str, str],
            options: Sequence[Option] = SERVE_OPTIONS) -> Resolved:
    """Each option from its flag, else its variable, else its default. Raises ConfigError naming the spelling."""
    values: dict[str, Any] = {}
    spellings: dict[str, str] = {}
    for option in options:
        if hasattr(args, option.name):
            value = getattr(args, option.name)
            if option.kind == "list":
                value = [item for parsed in value for item in parsed]
            spellings[option.name] = option.flag
        elif (found := _from_environment(option, environ)) is not None:
            name, text = found
            spellings[option.name] = name
            if option.kind == "switch":
                value = switch(text, name)
            elif option.kind == "list":
                value = [item for part in text.split(option.sep) if part.strip()
                         for item in option.parse(part.strip(), name)]
            else:
                value = option.parse(text, name)
        else:
            value = option.default
        values[option.name] = tuple(value) if option.kind == "list" else value
    return Resolved(values, spellings)


def unknown_variables(environ: Iterable[str], known: Iterable[str]) -> list[str]:
    """A warning for each MAILNEST_* variable that nothing reads, with the nearest known name when there is one."""
    names = set(known) | OTHER_VARIABLES
    warnings = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in names:
            continue
        # Compared without the prefix that every name shares (it would make any two names look alike).
        suffixes = {known_name.removeprefix(PREFIX): known_name for known_name in names}
        nearest = difflib.get_close_matches(name.removeprefix(PREFIX), sorted(suffixes), n=1, cutoff=0.7)
        hint = (f"; did you mean {suffixes[nearest[0]]}?" if nearest
                else f"; `mailnest serve --help` lists the {PREFIX}* names")
        warnings.append(f"{name} is not a mailnest setting, ignored{hint}")
    return warnings


def known_variables() -> set[str]:
    return {name for option in SERVE_OPTIONS for name in (option.env, *option.also_env) if name.startswith(PREFIX)}
