"""The `mailnest` command: serve, send, and the tools around them.

Every `serve` option can also be set with a MAILNEST_* environment variable (the option's name in capitals,
dashes as underscores: --max-messages -> MAILNEST_MAX_MESSAGES). A flag on the command line wins. The options
themselves are one table, in options.py. Every error is one line, `mailnest COMMAND: error: ...`, naming the
option as the user spelt it; exit 2 for an unusable option or file, 1 when a listener cannot be bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import logging
import mimetypes
import os
import re
import signal
import smtplib
import sqlite3
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any, NoReturn

from . import __version__, options
from .config import SERVE_DEFAULTS, Config, ConfigError

log = logging.getLogger("mailnest")

class _Parser(argparse.ArgumentParser):
    """argparse with mailnest's one error style: `mailnest COMMAND: error: MESSAGE`, the usage only for a command
    line that argparse could not read, and a "did you mean" for a misspelt flag."""

    def error(self, message: str) -> NoReturn:
        # "argument --smtp: --smtp: 'x' needs a port" -> "--smtp: 'x' needs a port"
        message = re.sub(r"^argument (\S+?)(?:/\S+)?: (?:\1: )?", lambda m: f"{m.group(1)}: ", message)
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            message = self.unknown_arguments(unknown.group(1).split())
        if unknown or "required" in message or "expected" in message or "invalid choice" in message:
            self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")

    def unknown_arguments(self, words: list[str]) -> str:
        known = sorted(option for option in self._option_string_actions if option.startswith("--"))
        flags = [word.split("=", 1)[0] for word in words if word.startswith("-")]
        hints = []
        for flag in flags:
            nearest = difflib.get_close_matches(flag, known, n=1, cutoff=0.6)
            if nearest:
                hints.append(f"{flag}: did you mean {nearest[0]}?")
        message = f"unrecognized arguments: {' '.join(words)}"
        return message + (f" ({'; '.join(hints)})" if hints else "")


def fail(prog: str, message: str, code: int = 2) -> int:
    """Say what went wrong in the one style every command uses; return the exit code."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    return code


def _from_args_or_env(args: argparse.Namespace, name: str, parse: options.Parse, flag: str, default: Any,
                      environ: Mapping[str, str] | None = None) -> Any:
    """A subcommand's own option that also reads MAILNEST_*: the flag, else the variable, else the default."""
    environ = os.environ if environ is None else environ
    if getattr(args, name, None) is not None:
        return getattr(args, name)
    variable = options.env_name(flag)
    if variable in environ:
        return parse(environ[variable], variable)
    return default


def _flag(parse: options.Parse, flag: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text, flag)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def resolve_serve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> options.Resolved:
    """The serve options from the flags, MAILNEST_* variables and defaults (ConfigError names the spelling)."""
    return options.resolve(args, os.environ if environ is None else environ)


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Config:
    """The Config of `mailnest serve ARGS`; a ConfigError names each option as the user spelt it."""
    resolved = resolve_serve(args, environ)
    try:
        return _config(resolved)
    except ConfigError as exc:
        raise ConfigError(resolved.spelled(str(exc))) from None


def _config(resolved: options.Resolved) -> Config:
    fields = dict(resolved.values)
    for name in ("relay_allow", "release_allow", "relay_deny", "forward_to", "relay_override_from"):
        if fields[name] and not fields["relay"]:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} needs --relay HOST:PORT, the server to forward to")
    if fields["smtp_ignore_rejected_recipients"] and not fields["smtp_allowed_recipients"]:
        raise ConfigError("--smtp-ignore-rejected-recipients needs --smtp-allowed-recipients REGEX, the recipients "
                          "to keep")
    config = SERVE_DEFAULTS.replace(**fields)
    if config.require_tls and not config.tls_enabled:
        raise ConfigError("--require-tls needs TLS: add --tls (self-signed) or --tls-cert/--tls-key")
    return config


_SQLITE_HEADER = b"SQLite format 3\x00"


def db_problem(db: Path, what: str = "--db") -> str | None:
    """Why `db` cannot be a SQLite database file, found before anything starts; None when it can."""
    if db.is_dir():
        return f"{what} {db} is a folder: name a database file in it, such as {db / 'mailnest.db'}"
    folder = db.absolute().parent
    if not folder.exists():
        return f"{what} {db}: the folder {folder} does not exist; create it first (mkdir -p {folder})"
    if not folder.is_dir():
        return f"{what} {db}: {folder} is not a folder"
    if db.exists():
        if not os.access(db, os.R_OK | os.W_OK):
            return f"{what} {db}: this file cannot be read and written by this user; check its permissions"
        try:
            with db.open("rb") as file:
                header = file.read(len(_SQLITE_HEADER))
        except OSError as exc:
            return f"{what} {db}: cannot read it: {exc.strerror or exc}"
        if header and header != _SQLITE_HEADER:
            return (f"{what} {db} is not a SQLite database (it holds something else); name a new file, such as "
                    "mail.db, or move this one away")
    elif not os.access(folder, os.W_OK | os.X_OK):
        return f"{what} {db}: cannot create a file in {folder} (no write permission); choose a folder you can write to"
    return None


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


def _bind_hint(message: str, resolved: options.Resolved) -> str:
    """A listener that cannot bind: which flag or variable moves it, and, when it is on its default port, how to
    move all of them (another mailnest on the same ports is the usual cause)."""
    match = re.search(r"cannot listen for (\w+) on", message)
    if match is None or "in use" not in message.lower():
        return message
    name = match.group(1).lower()
    if name in resolved.spellings:  # the user chose this address
        return message
    spelt_env = options.env_name(f"--{name}")
    return (f"{message}, or {spelt_env}=HOST:PORT in the environment. Is another mailnest running? A second one "
            "needs every listener moved: --smtp :0 --http :0 --imap :0 --pop3 :0 (any free ports; --ports-file "
            "FILE says which), or 'off' for the ones you do not need")


def _remove_ports_file(config: Config) -> None:
    """A ports file left behind would point scripts at ports nobody listens on."""
    if config.ports_file is not None:
        with contextlib.suppress(OSError):
            Path(config.ports_file).unlink(missing_ok=True)


async def _serve(config: Config, resolved: options.Resolved) -> int:
    from .outputs import HandlerLoadError
    from .runtime import BindError, MailServer
    from .store.base import StoreUnavailableError

    prog = "mailnest serve"
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    _raise_open_file_limit(config)
    try:
        server = MailServer(config)
    except (ConfigError, HandlerLoadError) as exc:
        return fail(prog, resolved.spelled(str(exc)))
    try:
        await server.start()
    except BindError as exc:
        return fail(prog, _bind_hint(resolved.spelled(exc.strerror or str(exc)), resolved), 1)
    except (ConfigError, HandlerLoadError) as exc:
        return fail(prog, resolved.spelled(str(exc)))
    except RuntimeError as exc:
        if isinstance(exc.__cause__, sqlite3.Error):  # the database file cannot be used
            return fail(prog, f"{exc}; check {resolved.spellings.get('db', '--db')}: its folder must be one this "
                              "user can write to, and the file a mailnest database")
        return fail(prog, str(exc), 1)
    except (OSError, StoreUnavailableError) as exc:
        return fail(prog, resolved.spelled(str(exc)), 1)
    try:
        await stop.wait()
        log.info("stopping: closing listeners and finishing messages in flight")
        stopping = asyncio.ensure_future(server.stop())

        def hurry() -> None:
            log.warning("stopping now: messages still being received are abandoned (their clients get 421)")
            server.hurry()

        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C stops at once
            loop.add_signal_handler(sig, hurry)
        await stopping
    finally:
        _remove_ports_file(config)
    log.info("mailnest stopped")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    prog = "mailnest serve"
    try:
        resolved = resolve_serve(args)
        config = config_from_args(args)
    except ConfigError as exc:
        return fail(prog, str(exc))
    if isinstance(config.db, Path):
        problem = db_problem(config.db, resolved.spellings.get("db", "--db"))
        if problem:
            return fail(prog, problem)
    try:
        from .auth import Credentials

        for accounts in (config.auth_file, config.http_auth_file, config.send_auth_file):
            if accounts is not None:
                Credentials.load(accounts)  # a bad file is a start-up error, said before binding anything
    except ConfigError as exc:
        return fail(prog, resolved.spelled(str(exc)))
    from .runtime import loop_factory

    try:
        make_loop = loop_factory(config.loop)
    except ConfigError as exc:
        return fail(prog, resolved.spelled(str(exc)))
    _setup_logging(config.log_level)
    with asyncio.Runner(loop_factory=make_loop) as runner:
        return runner.run(_serve(config, resolved))


def cmd_send(args: argparse.Namespace) -> int:
    msg = EmailMessage()
    msg["From"] = args.from_
    msg["To"] = ", ".join(args.to)
    if args.cc:
        msg["Cc"] = ", ".join(args.cc)
    msg["Subject"] = args.subject
    msg["Date"] = formatdate(localtime=True)  # RFC 5322 requires one (spam checks score its absence)
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
    try:
        listen = _from_args_or_env(args, "smtp", options.listen_or_off, "--smtp", SERVE_DEFAULTS.smtp)
    except ConfigError as exc:
        return fail("mailnest send", str(exc))
    if listen is None:
        return fail("mailnest send", "--smtp: name the HOST:PORT where mailnest listens for SMTP")
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
    parser = _Parser(
        prog="mailnest",
        description="A local mail server for development and testing: capture mail over SMTP, read it in a web "
                    "UI, over an HTTP API (Mailpit/MailHog compatible), IMAP or POP3.",
        epilog="Start with `mailnest serve`, then open http://127.0.0.1:8025. Each command has --help.",
    )
    parser.add_argument("--version", action="version", version=f"mailnest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    serve = sub.add_parser("serve", help="run the mail server (SMTP 127.0.0.1:1025, web UI and API on :8025)",
                           description="Run mailnest: capture every message sent over SMTP and serve it over "
                                       "HTTP. Every option also reads MAILNEST_<OPTION> from the environment "
                                       "(a flag wins); a switch there takes 1/true/yes/on or 0/false/no/off.")
    options.add_options(serve)
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
    send.add_argument("--smtp", metavar="HOST:PORT", type=_flag(options.listen_or_off, "--smtp"),
                      help="where mailnest listens for SMTP (default 127.0.0.1:1025; env MAILNEST_SMTP)")
    send.set_defaults(func=cmd_send)

    from .importer import add_ingest_arguments, ingest_main

    ingest = sub.add_parser("ingest", help="load .eml files, MH folders, Maildirs or mbox files into mailnest",
                            description="Replay saved mail: .eml files, MH folders, Maildirs and mbox files go "
                                        "into a running mailnest over SMTP, or straight into a --db file.")
    add_ingest_arguments(ingest)
    ingest.set_defaults(func=ingest_main)

    from .dump import add_dump_arguments, dump_main
    from .probe import add_readyz_arguments, readyz_main

    dump = sub.add_parser("dump", help="write every message to a folder as .eml files, from a --db or over HTTP",
                          description="Write every stored message into DIR as ID.eml (the bytes as received), "
                                      "read from a database (--db) or from a running mailnest over HTTP (--url).")
    add_dump_arguments(dump)
    dump.set_defaults(func=dump_main)

    readyz = sub.add_parser("readyz", help="exit 0 when a running mailnest is ready, 1 when not (a health probe)",
                            description="Ask a running mailnest's /readyz: exit 0 when it is ready, 1 when it is "
                                        "not (or cannot be reached), 2 for a bad --url. For containers and scripts.")
    add_readyz_arguments(readyz)
    readyz.set_defaults(func=readyz_main)

    from .mcp.stdio import add_mcp_arguments, mcp_main

    mcp = sub.add_parser("mcp", help="serve captured mail to coding agents over MCP on stdio",
                         description="An MCP (Model Context Protocol) server on standard input and output that reads "
                                     "a running mailnest over its HTTP API.")
    add_mcp_arguments(mcp)
    mcp.set_defaults(func=mcp_main)

    sub.add_parser("sendmail", help="a sendmail drop-in: reads a message on stdin (-t, -f, -i, recipients)",
                   description="Hands a message on standard input to a running mailnest, taking sendmail's "
                               "usual flags (-t, -f, -F, -i/-oi, recipients). See `mailnest sendmail --help`.",
                   add_help=False)
    parser.set_defaults(commands=sub.choices)
    return parser


def _warn_about_unknown_variables() -> None:
    for warning in options.unknown_variables(os.environ, options.known_variables()):
        print(f"mailnest: warning: {warning}", file=sys.stderr)


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    # As PID 1 (a container), a signal without a handler is ignored: until `serve` installs its own, SIGTERM
    # (a quick `docker stop`) exits as it would anywhere else, instead of waiting for the SIGKILL.
    if threading.current_thread() is threading.main_thread() and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["sendmail"]:
        # sendmail's flags (-t, -oi, -fme@x ...) are not argparse's; hand them over untouched.
        from .sendmail import sendmail_main

        return sendmail_main(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # The subcommand's usage and its flags, not the top level's, for a flag it does not know.
        command = parser if args.command is None else args.commands[args.command]
        command.error(f"unrecognized arguments: {' '.join(extra)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _warn_about_unknown_variables()
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
