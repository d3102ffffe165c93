"""The `mailnest` command: serve, send, and the tools around them.

Every `serve` option can also be set with a MAILNEST_* environment variable (the option's name in capitals,
dashes as underscores: --max-messages -> MAILNEST_MAX_MESSAGES). A flag on the command line wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import mimetypes
import os
import signal
import smtplib
import sys
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

from . import __version__
from .config import SERVE_DEFAULTS, Config, ConfigError, Listen, parse_duration, parse_listen, parse_size
from .store.select import parse_db

log = logging.getLogger("mailnest")

OFF_WORDS = {"off", "none", "no", "false", ""}  # not "0": port 0 means "any free port"


def _env(name: str) -> str | None:
    return os.environ.get("MAILNEST_" + name.upper().replace("-", "_"))


def _env_bool(name: str) -> bool:
    value = _env(name)
    return value is not None and value.strip().lower() in {"1", "true", "yes", "on"}


def _listen_or_off(what: str) -> Callable[[str], Listen | None]:
    def parse(value: str) -> Listen | None:
        if value.strip().lower() in OFF_WORDS:
            return None
        try:
            return parse_listen(value, what=f"--{what}")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _typed(parser: Callable[..., Any], what: str) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            return parser(value, what=f"--{what}")
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _seconds(value: str, *, what: str = "duration") -> float:
    """A duration that must be more than zero (a timeout): `30s`, `5m`, `90`."""
    seconds = parse_duration(value, what=what)
    if seconds is None:
        raise ConfigError(f"{what}: {value!r} must be more than 0, such as 30s or 5m")
    return seconds


def _int(what: str) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--{what}: {value!r} is not a whole number") from None
        if number < 0:
            raise argparse.ArgumentTypeError(f"--{what}: must be 0 or more")
        return number

    return parse


def _default(name: str, fallback: Any, convert: Callable[[str], Any] | None = None) -> Any:
    value = _env(name)
    if value is None:
        return fallback
    return convert(value) if convert else value


def _add_serve_arguments(p: argparse.ArgumentParser) -> None:
    d = SERVE_DEFAULTS
    listeners = p.add_argument_group("listeners (HOST:PORT; port 0 picks a free port; 'off' disables)")
    for name, listen, what in (
        ("smtp", d.smtp, "SMTP, where applications send mail"),
        ("http", d.http, "HTTP: the web UI and the API"),
        ("imap", d.imap, "IMAP4rev1, to read mail in a mail client (log in as a recipient address, or * for all)"),
        ("pop3", d.pop3, "POP3, to read a mailbox (log in as a recipient address, or * for everything)"),
    ):
        listeners.add_argument(f"--{name}", metavar="HOST:PORT", type=_listen_or_off(name),
                               default=_default(name, listen, _listen_or_off(name)),
                               help=f"{what} (default {listen}; env MAILNEST_{name.upper()})")
    listeners.add_argument("--smtps", metavar="HOST:PORT", type=_listen_or_off("smtps"),
                           default=_default("smtps", None, _listen_or_off("smtps")),
                           help="an extra SMTP listener with implicit TLS (port 465 style), e.g. 127.0.0.1:1465 "
                                "(default off; env MAILNEST_SMTPS)")
    listeners.add_argument("--imaps", metavar="HOST:PORT", type=_listen_or_off("imaps"),
                           default=_default("imaps", None, _listen_or_off("imaps")),
                           help="an extra IMAP listener with implicit TLS (port 993 style), e.g. 127.0.0.1:1993 "
                                "(default off; env MAILNEST_IMAPS)")
    listeners.add_argument("--pop3s", metavar="HOST:PORT", type=_listen_or_off("pop3s"),
                           default=_default("pop3s", None, _listen_or_off("pop3s")),
                           help="an extra POP3 listener with implicit TLS (port 995 style), e.g. 127.0.0.1:1995 "
                                "(default off; env MAILNEST_POP3S)")
    listeners.add_argument("--hostname", default=_default("hostname", d.hostname),
                           help=f"name used in the SMTP greeting (default {d.hostname}; no DNS lookup is made)")

    store = p.add_argument_group("store")
    store.add_argument("--db", metavar="PATH|URL", type=parse_db, default=_default("db", None, parse_db),
                       help="keep messages in this SQLite file across restarts, or in PostgreSQL "
                            "(postgresql://user:password@host:port/dbname), which several mailnest nodes can share "
                            "(default: a temporary SQLite database deleted at exit; env MAILNEST_DB)")
    store.add_argument("--tenant", metavar="NAME", default=_default("tenant", None),
                       help="PostgreSQL only: keep this team's or project's mail apart from others on the same "
                            "database (a schema of that name; env MAILNEST_TENANT)")
    store.add_argument("--max-messages", metavar="N", type=_int("max-messages"),
                       default=_default("max_messages", d.max_messages, _int("max-messages")),
                       help=f"keep at most N messages, pruning the oldest (default {d.max_messages}; 0 = no limit)")
    store.add_argument("--max-age", metavar="DURATION", type=_typed(parse_duration, "max-age"),
                       default=_default("max_age", None, _typed(parse_duration, "max-age")),
                       help="delete messages older than this, e.g. 12h, 7d (default: keep)")

    smtp = p.add_argument_group("SMTP")
    smtp.add_argument("--max-message-size", metavar="SIZE", type=_typed(parse_size, "max-message-size"),
                      default=_default("max_message_size", d.max_message_size, _typed(parse_size, "max-message-size")),
                      help="refuse larger messages with 552, e.g. 10M (default 50M)")
    smtp.add_argument("--max-recipients", metavar="N", type=_int("max-recipients"),
                      default=_default("max_recipients", d.max_recipients, _int("max-recipients")),
                      help=f"refuse more recipients per message with 452 (default {d.max_recipients})")
    smtp.add_argument("--smtp-timeout", metavar="DURATION", type=_typed(_seconds, "smtp-timeout"),
                      default=_default("smtp_timeout", d.smtp_timeout, _typed(_seconds, "smtp-timeout")),
                      help=f"close an SMTP connection idle this long between commands (default {d.smtp_timeout:g}s)")
    smtp.add_argument("--data-timeout", metavar="DURATION", type=_typed(_seconds, "data-timeout"),
                      default=_default("data_timeout", d.data_timeout, _typed(_seconds, "data-timeout")),
                      help=f"deadline for sending one whole message after DATA (default {d.data_timeout:g}s)")

    limits = p.add_argument_group("limits (SMTP, IMAP and POP3 listeners; a client over them gets 421 or BYE)")
    limits.add_argument("--max-connections", metavar="N", type=_int("max-connections"),
                        default=_default("max_connections", d.max_connections, _int("max-connections")),
                        help=f"open connections per listener (default {d.max_connections})")
    limits.add_argument("--max-connections-per-client", metavar="N", type=_int("max-connections-per-client"),
                        default=_default("max_connections_per_client", d.max_connections_per_client,
                                         _int("max-connections-per-client")),
                        help=f"open connections per listener from one client address "
                             f"(default {d.max_connections_per_client})")
    limits.add_argument("--command-timeout", metavar="DURATION", type=_typed(_seconds, "command-timeout"),
                        default=_default("command_timeout", d.command_timeout, _typed(_seconds, "command-timeout")),
                        help=f"deadline for one whole command line once it has started (default "
                             f"{d.command_timeout:g}s)")
    limits.add_argument("--idle-timeout", metavar="DURATION", type=_typed(_seconds, "idle-timeout"),
                        default=_default("idle_timeout", d.idle_timeout, _typed(_seconds, "idle-timeout")),
                        help=f"close an IMAP or POP3 connection idle this long (default {d.idle_timeout:g}s)")
    limits.add_argument("--max-event-queue", metavar="N", type=_int("max-event-queue"),
                        default=_default("max_event_queue", d.max_event_queue, _int("max-event-queue")),
                        help=f"live events queued for one websocket or SSE client before it is dropped as too "
                             f"slow (default {d.max_event_queue})")

    sec = p.add_argument_group("TLS and authentication")
    sec.add_argument("--tls", action="store_true", default=_env_bool("tls"),
                     help="offer STARTTLS, with a self-signed certificate generated at start for the host names "
                          "(its path is logged) unless --tls-cert/--tls-key are given")
    sec.add_argument("--tls-cert", metavar="PEM", type=Path, default=_default("tls_cert", None, Path),
                     help="your certificate (chain) in PEM; implies --tls")
    sec.add_argument("--tls-key", metavar="PEM", type=Path, default=_default("tls_key", None, Path),
                     help="the private key of --tls-cert, in PEM")
    sec.add_argument("--require-tls", action="store_true", default=_env_bool("require_tls"),
                     help="refuse MAIL and AUTH before STARTTLS (530 5.7.0)")
    sec.add_argument("--auth-file", metavar="FILE", type=Path, default=_default("auth_file", None, Path),
                     help="check logins against user:password lines (plain or bcrypt); without it any "
                          "credentials are accepted and the user name is recorded")
    sec.add_argument("--require-auth", action="store_true", default=_env_bool("require_auth"),
                     help="refuse mail from clients that have not logged in (530 5.7.0)")
    sec.add_argument("--http-tls", action="store_true", default=_env_bool("http_tls"),
                     help="serve the web UI and API over HTTPS with the TLS certificate (implies --tls)")
    sec.add_argument("--http-auth-file", metavar="FILE", type=Path, default=_default("http_auth_file", None, Path),
                     help="require HTTP basic authentication on the UI and API with these user:password lines "
                          "(plain or bcrypt); /livez and /readyz stay open")
    sec.add_argument("--send-auth-file", metavar="FILE", type=Path, default=_default("send_auth_file", None, Path),
                     help="separate accounts for the send API (POST /api/v1/send), e.g. for a test suite")
    sec.add_argument("--cors", dest="cors_origins", metavar="ORIGIN", action="append",
                     default=_default("cors", [], lambda v: [x for x in v.split(",") if x]),
                     help="let web pages from ORIGIN (e.g. http://localhost:3000, or *) call the API and open the "
                          "event stream; repeatable; default: same origin only")
    sec.add_argument("--allowed-host", dest="allowed_hosts", metavar="NAME", action="append",
                     default=_default("allowed_hosts", [], lambda v: [x for x in v.split(",") if x]),
                     help="a Host name the web UI and API answer to, besides loopback names and addresses, the "
                          "listen address and --hostname (repeatable; .example.com or *.example.com for a domain and "
                          "every name under it; '*' for any; defends against DNS rebinding)")
    sec.add_argument("--allow-insecure-auth", action="store_true", default=_env_bool("allow_insecure_auth"),
                     help="allow plain-text AUTH before STARTTLS even when TLS is configured")

    files = p.add_argument_group("file outputs and extensions (after each message is stored)")
    files.add_argument("--mh", metavar="DIR", type=Path, default=_default("mh", None, Path),
                       help="also write each message into MH folders DIR/DOMAIN/USER/1, 2, 3... (one per recipient)")
    files.add_argument("--maildir", metavar="DIR", type=Path, default=_default("maildir", None, Path),
                       help="also deliver each message into a Maildir per recipient, DIR/DOMAIN/USER/{tmp,new,cur}")
    files.add_argument("--mbox", metavar="FILE", type=Path, default=_default("mbox", None, Path),
                       help="also append each message to this mbox file (with locking; mutt can read it)")
    files.add_argument("--latest", metavar="FILE", type=Path, default=_default("latest", None, Path),
                       help="also overwrite FILE with the newest message (X-MailFrom, X-RcptTo, X-Peer added)")
    files.add_argument("--handler", dest="handlers", metavar="MODULE:OBJECT", action="append",
                       default=_default("handler", [], lambda v: [x for x in v.split(",") if x]),
                       help="your own handler with aiosmtpd hooks (handle_RCPT, handle_DATA...) or smtpd's "
                            "process_message(peer, mailfrom, rcpttos, data); repeatable; also path/file.py:obj")
    relay = p.add_argument_group("relay (off unless configured; only allow-listed recipients are forwarded)")
    relay.add_argument("--relay", metavar="HOST:PORT", default=_default("relay", None),
                       help="upstream SMTP server to forward allow-listed recipients to, in the background")
    relay.add_argument("--relay-allow", metavar="PATTERN", action="append",
                       default=_default("relay_allow", [], lambda v: [x for x in v.split(",") if x]),
                       help="recipients that may be forwarded: an exact address, *@example.com, or /regex/; "
                            "repeatable; nothing is forwarded without one")
    relay.add_argument("--relay-tls", choices=["none", "starttls", "tls"], default=_default("relay_tls", "none"),
                       help="how to talk to the upstream (default none)")
    relay.add_argument("--relay-user", metavar="USER", default=_default("relay_user", None),
                       help="log in to the upstream as USER")
    relay.add_argument("--relay-password", metavar="PASSWORD", default=_default("relay_password", None),
                       help="the upstream password (better: MAILNEST_RELAY_PASSWORD, kept out of ps)")

    api = p.add_argument_group("API extras")
    api.add_argument("--tag", dest="tag_rules", metavar="QUERY=TAG", action="append",
                     default=_default("tag", [], lambda v: [x for x in v.split(";") if x]),
                     help="tag messages that match a search as they arrive, e.g. subject:invoice=billing "
                          "(repeatable; Mailpit's TAG=QUERY order works too)")
    api.add_argument("--webhook", dest="webhooks", metavar="URL", action="append",
                     default=_default("webhook", [], lambda v: [x for x in v.split(",") if x]),
                     help="POST each new message's summary (Mailpit's webhook shape) to URL, retried with "
                          "backoff (repeatable)")
    api.add_argument("--chaos", metavar="SPEC", nargs="?", const="on", default=_default("chaos", None),
                     help="make SMTP fail on purpose to test retry logic, e.g. sender=451:0.5,recipient=550:10%%,"
                          "auth=535:0.2,latency=200ms,rate=10/s,drop=0.05,seed=42; plain --chaos only enables the "
                          "chaos API (/api/v1/chaos)")
    api.add_argument("--allow-private-link-check", action="store_true",
                     default=_env_bool("allow_private_link_check"),
                     help="let the link check request private, loopback and link-local addresses")

    out = p.add_argument_group("output")
    out.add_argument("--print", dest="print_messages", action="store_true", default=_env_bool("print"),
                     help="also print each message to the console as it arrives (like smtpd's DebuggingServer)")
    out.add_argument("--ports-file", metavar="FILE", type=Path, default=_default("ports_file", None, Path),
                     help="write the bound ports as JSON to FILE, for scripts (useful with port 0)")
    out.add_argument("--log-level", default=_default("log_level", os.environ.get("LOG_LEVEL", "INFO")),
                     choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                     help="logging detail (default INFO; env MAILNEST_LOG_LEVEL, or LOG_LEVEL)")


def config_from_args(args: argparse.Namespace) -> Config:
    fields = {name: getattr(args, name) for name in (
        "smtp", "http", "imap", "pop3", "smtps", "imaps", "pop3s", "hostname", "db", "tenant", "max_messages", "max_age", "max_message_size", "max_recipients",
        "print_messages", "ports_file", "log_level", "tls", "tls_cert", "tls_key", "require_tls", "auth_file",
        "require_auth", "allow_insecure_auth", "mh", "maildir", "mbox", "latest", "relay", "relay_tls",
        "relay_user", "relay_password", "chaos", "allow_private_link_check", "http_tls", "http_auth_file",
        "send_auth_file", "smtp_timeout", "data_timeout", "max_connections", "max_connections_per_client",
        "command_timeout", "idle_timeout", "max_event_queue",
    )}
    fields["allowed_hosts"] = tuple(args.allowed_hosts)
    fields["cors_origins"] = tuple(args.cors_origins)
    fields["tag_rules"] = tuple(args.tag_rules)
    fields["webhooks"] = tuple(args.webhooks)
    fields["handlers"] = tuple(args.handlers)
    fields["relay_allow"] = tuple(args.relay_allow)
    if fields["relay_allow"] and not fields["relay"]:
        raise ConfigError("--relay-allow needs --relay HOST:PORT, the server to forward to")
    config = SERVE_DEFAULTS.replace(**fields)
    if config.require_tls and not config.tls_enabled:
        raise ConfigError("--require-tls needs TLS: add --tls (self-signed) or --tls-cert/--tls-key")
    return config


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", stream=sys.stderr)


def _raise_open_file_limit(config: Config) -> None:
    """Let the process hold every connection the limits allow: raise the soft open-file limit toward the hard one.

    Four listeners of `max_connections` each, plus the store's files and HTTP, must fit under RLIMIT_NOFILE, or an
    accept fails with EMFILE and a flood of idle clients starves everyone. The common soft limit is 1024.
    """
    try:
        import resource
    except ImportError:  # not on this platform
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    listeners = sum(1 for listen in (config.smtp, config.imap, config.pop3, config.smtps, config.imaps,
                                     config.pop3s) if listen is not None)
    wanted = listeners * config.max_connections + 1024
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, target, exc)
            return
    if target < wanted:
        log.warning("the open-file limit (%d) is below what --max-connections %d on %d listener(s) needs (%d); "
                    "lower --max-connections or raise `ulimit -n`", target, config.max_connections, listeners, wanted)


async def _serve(config: Config) -> int:
    from .outputs import HandlerLoadError
    from .runtime import MailServer

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _raise_open_file_limit(config)
    try:
        server = MailServer(config)
    except (ConfigError, HandlerLoadError) as exc:
        log.error("%s", exc)
        return 2
    try:
        await server.start()
    except (OSError, ConfigError, HandlerLoadError) as exc:
        log.error("%s", exc)
        return 1
    await stop.wait()
    log.info("stopping: closing listeners and finishing messages in flight")
    await server.stop()
    log.info("mailnest stopped")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        config = config_from_args(args)
        from .auth import Credentials

        for accounts in (config.auth_file, config.http_auth_file, config.send_auth_file):
            if accounts is not None:
                Credentials.load(accounts)  # a bad file is a start-up error, said before binding anything
    except ConfigError as exc:
        print(f"mailnest: {exc}", file=sys.stderr)
        return 2
    _setup_logging(config.log_level)
    return asyncio.run(_serve(config))


def cmd_send(args: argparse.Namespace) -> int:
    msg = EmailMessage()
    msg["From"] = args.from_
    msg["To"] = ", ".join(args.to)
    if args.cc:
        msg["Cc"] = ", ".join(args.cc)
    msg["Subject"] = args.subject
    msg["Message-ID"] = make_msgid(domain="mailnest.local")
    msg.set_content(args.body if args.body is not None else sys.stdin.read() if args.body_stdin else
                    "This is a test message sent by `mailnest send`.\n")
    if args.html:
        msg.add_alternative(args.html, subtype="html")
    for path in args.attach:
        try:
            data = path.read_bytes()
        except OSError as exc:
            print(f"mailnest send: cannot read attachment {path}: {exc.strerror}", file=sys.stderr)
            return 2
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        maintype, subtype = ctype.split("/", 1)
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=path.name)
    listen = args.smtp
    try:
        with smtplib.SMTP(listen.host, listen.port, timeout=30, local_hostname="mailnest-send") as client:
            refused = client.send_message(msg, from_addr=args.from_, to_addrs=[*args.to, *args.cc, *args.bcc])
    except (OSError, smtplib.SMTPException) as exc:
        print(f"mailnest send: could not send to {listen}: {exc}\n"
              f"Is `mailnest serve` running? Point at it with --smtp HOST:PORT.", file=sys.stderr)
        return 1
    for address, (code, text) in refused.items():
        print(f"mailnest send: {address} was refused: {code} {text.decode(errors='replace')}", file=sys.stderr)
    if refused:
        return 1
    print(f"sent {msg['Subject']!r} to {', '.join([*args.to, *args.cc, *args.bcc])} via {listen}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mailnest",
        description="A local mail server for development and testing: capture mail over SMTP, read it in a web "
                    "UI, over an HTTP API (Mailpit/MailHog compatible), IMAP or POP3.",
        epilog="Start with `mailnest serve`, then open http://127.0.0.1:8025. Each command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"mailnest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the mail server (SMTP 127.0.0.1:1025, web UI and API on :8025)",
                           description="Run mailnest: capture every message sent over SMTP and serve it over "
                                       "HTTP. Every option also reads MAILNEST_<OPTION> from the environment.")
    _add_serve_arguments(serve)
    serve.set_defaults(func=cmd_serve)

    send = sub.add_parser("send", help="send a test message to a running mailnest",
                          description="Send a test message over SMTP, for a quick check without another tool.")
    send.add_argument("--to", action="append", required=True, metavar="ADDRESS", help="recipient (repeatable)")
    send.add_argument("--cc", action="append", default=[], metavar="ADDRESS", help="Cc recipient (repeatable)")
    send.add_argument("--bcc", action="append", default=[], metavar="ADDRESS",
                      help="Bcc recipient: in the envelope only (repeatable)")
    send.add_argument("--from", dest="from_", default="mailnest@localhost", metavar="ADDRESS",
                      help="sender (default mailnest@localhost)")
    send.add_argument("--subject", default="Test message from mailnest", help="subject line")
    body = send.add_mutually_exclusive_group()
    body.add_argument("--body", help="plain-text body (default: a short test text)")
    body.add_argument("--body-stdin", action="store_true", help="read the plain-text body from standard input")
    send.add_argument("--html", help="an HTML alternative body")
    send.add_argument("--attach", action="append", default=[], type=Path, metavar="FILE",
                      help="attach a file (repeatable)")
    send.add_argument("--smtp", metavar="HOST:PORT", type=_listen_or_off("smtp"),
                      default=_default("smtp", SERVE_DEFAULTS.smtp, _listen_or_off("smtp")),
                      help="where mailnest listens for SMTP (default 127.0.0.1:1025; env MAILNEST_SMTP)")
    send.set_defaults(func=cmd_send)

    from .importer import add_ingest_arguments, ingest_main

    ingest = sub.add_parser("ingest", help="load .eml files, MH folders, Maildirs or mbox files into mailnest",
                            description="Replay saved mail: .eml files, MH folders, Maildirs and mbox files go "
                                        "into a running mailnest over SMTP, or straight into a --db file.")
    add_ingest_arguments(ingest)
    ingest.set_defaults(func=ingest_main)

    sub.add_parser("sendmail", help="a sendmail drop-in: reads a message on stdin (-t, -f, -i, recipients)",
                   description="Hands a message on standard input to a running mailnest, taking sendmail's "
                               "usual flags (-t, -f, -F, -i/-oi, recipients). See `mailnest sendmail --help`.",
                   add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sendmail"]:
        # sendmail's flags (-t, -oi, -fme@x ...) are not argparse's; hand them over untouched.
        from .sendmail import sendmail_main

        return sendmail_main(argv[1:])
    try:
        parser = build_parser()
    except argparse.ArgumentTypeError as exc:
        print(f"mailnest: bad MAILNEST_* environment variable: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
