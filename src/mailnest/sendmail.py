"""A sendmail(8) drop-in: reads a message on stdin and hands it to a running mailnest over SMTP.

Applications that shell out to `sendmail` (PHP's mail(), cron, git send-email, Django's sendmail backends...)
can point at this instead. It accepts the flags those callers pass: `-t`, `-f`/`-r`, `-F`, `-i`/`-oi`, recipient
arguments, and ignores the usual delivery options (`-odi`, `-oem`, `-bm`, `-N`, `-R`, `-V`, `-B`...).

Like Postfix's local submission, it removes Bcc headers and adds From, Date and Message-ID when the message
lacks them (mailnest still shows the Bcc recipients, from the envelope). The envelope sender is `-f`, else
the From header's address, else user@host. Exit codes are sysexits.h, as sendmail's are.
"""

from __future__ import annotations

import email.utils
import getpass
import os
import re
import smtplib
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO, TextIO

from .config import ConfigError, Listen, parse_listen
from .importer import field_name, header_values, split_header

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_PROTOCOL = 76

DEFAULT_SMTP = "127.0.0.1:1025"

USAGE = """usage: mailnest sendmail [-t] [-i] [-f SENDER] [-F NAME] [-S HOST:PORT] [-v] [RECIPIENT ...] < message

Hands the message on standard input to a running mailnest over SMTP, as sendmail(8) would deliver it.
  -t            take recipients from the To, Cc and Bcc headers (Bcc is then removed), plus any given
  -i, -oi       a line with a single dot does not end the message
  -f, -r ADDR   envelope sender (default: the From header's address, else user@host); -f '<>' for none
  -F NAME       full name for a From header that has to be added
  -S, --smtp HOST:PORT
                where mailnest listens (default $MAILNEST_SMTP, else 127.0.0.1:1025)
  -v            show the SMTP conversation
Other sendmail options (-odi, -oem, -bm, -N, -R, -V, -B, ...) are accepted and ignored.
Exit codes follow sysexits.h: 0 sent, 64 usage, 65 refused as too big, 67 recipient refused, 69 server
unreachable, 75 temporary failure."""

# Flags that take a value (attached, as in -fme@x, or as the next argument) and that we accept and ignore.
_IGNORED_WITH_VALUE = set("ABCdhLNOpRVX")
# Flags without a value that we accept and ignore (-v is honoured: it shows the SMTP dialogue).
_IGNORED_FLAGS = set("GmnU")
_BARE_LF = re.compile(rb"(?<!\r)\n")


class UsageError(Exception):
    pass


@dataclass
class Options:
    recipients: list[str] = field(default_factory=list)
    extract_recipients: bool = False  # -t
    sender: str | None = None  # -f / -r
    full_name: str | None = None  # -F
    ignore_dots: bool = False  # -i / -oi
    verbose: bool = False  # -v
    smtp: str | None = None  # --smtp / -S (Mailpit's spelling)


def parse_args(argv: Sequence[str]) -> Options:
    options = Options()
    args = list(argv)
    index = 0

    def value_for(flag: str, attached: str) -> str:
        nonlocal index
        if attached:
            return attached
        if index + 1 >= len(args):
            raise UsageError(f"option -{flag} needs a value")
        index += 1
        return args[index]

    while index < len(args):
        arg = args[index]
        if arg == "--":
            options.recipients += args[index + 1:]
            break
        if arg.startswith("--smtp"):
            if arg.startswith("--smtp="):
                options.smtp = arg.split("=", 1)[1]
            elif arg == "--smtp":
                options.smtp = value_for("-smtp", "")
            else:
                raise UsageError(f"unknown option {arg}")
        elif arg.startswith("--"):
            raise UsageError(f"unknown option {arg}")
        elif arg.startswith("-o"):
            # -oi is the one -o option that changes what we do; -odi, -oem, -oQ... are about queueing.
            option = arg[2:] or value_for("o", "")
            if option == "i":
                options.ignore_dots = True
        elif arg.startswith("-b"):
            mode = arg[2:]
            if mode not in ("m", ""):
                raise UsageError(f"mode -b{mode} is not supported (only -bm, deliver mail)")
        elif arg.startswith("-") and len(arg) > 1:
            _parse_cluster(arg, options, value_for)
        else:
            options.recipients.append(arg)
        index += 1
    return options


def _parse_cluster(arg: str, options: Options, value_for: Callable[[str, str], str]) -> None:
    """A group of one-letter flags such as -ti, possibly ending in one that takes a value (-fme@x)."""
    letters = arg[1:]
    for position, letter in enumerate(letters):
        rest = letters[position + 1:]
        if letter == "t":
            options.extract_recipients = True
        elif letter == "i":
            options.ignore_dots = True
        elif letter == "v":
            options.verbose = True
        elif letter in "fr":
            # "-f <>" asks for the null sender, as bounces use.
            sender = value_for(letter, rest).strip()
            options.sender = sender[1:-1] if sender.startswith("<") and sender.endswith(">") else sender
            return
        elif letter == "F":
            options.full_name = value_for(letter, rest)
            return
        elif letter == "S":
            options.smtp = value_for(letter, rest)
            return
        elif letter in _IGNORED_WITH_VALUE:
            value_for(letter, rest)
            return
        elif letter not in _IGNORED_FLAGS:
            raise UsageError(f"unknown option -{letter}")


def read_message(stream: BinaryIO, ignore_dots: bool) -> bytes:
    """The message on stdin: to EOF, or (without -i) up to a line holding only a dot."""
    if ignore_dots:
        return stream.read()
    lines = []
    for line in iter(stream.readline, b""):
        if line in (b".\n", b".\r\n", b"."):
            break
        lines.append(line)
    return b"".join(lines)


def prepare(data: bytes, options: Options, *, hostname: str, user: str) -> tuple[bytes, str, list[str]]:
    """(message to send, envelope sender, envelope recipients) for what came in on stdin."""
    fields, body = split_header(data)

    def addresses(*names: str) -> list[str]:
        return [addr for _, addr in email.utils.getaddresses(header_values(fields, *names)) if addr]

    recipients = list(options.recipients)
    if options.extract_recipients:
        # RFC 5322 section 3.6.6: when Resent- fields are present they name this delivery's recipients.
        resent = addresses("Resent-To", "Resent-Cc", "Resent-Bcc")
        recipients += resent or addresses("To", "Cc", "Bcc")
    recipients = list({r.lower(): r for r in recipients}.values())

    from_header = addresses("From")
    sender = options.sender if options.sender is not None else (from_header[0] if from_header else
                                                                  f"{user}@{hostname}")
    kept = [f for f in fields if field_name(f) not in ("bcc", "resent-bcc")]
    added: list[str] = []
    if not header_values(fields, "From"):
        address = options.sender or f"{user}@{hostname}"
        added.append(f"From: {email.utils.formataddr((options.full_name or '', address))}")
    if not header_values(fields, "Date"):
        added.append(f"Date: {email.utils.formatdate(localtime=True)}")
    if not header_values(fields, "Message-ID"):
        added.append(f"Message-ID: {email.utils.make_msgid(domain=hostname)}")
    header = b"".join(kept) + b"".join(line.encode("utf-8") + b"\r\n" for line in added)
    if body and not body.startswith((b"\n", b"\r\n")):
        body = b"\r\n" + body  # a body that followed the header without a blank line
    message = _BARE_LF.sub(b"\r\n", header + (body or b"\r\n"))
    return message, sender, recipients


def _smtp_address(options: Options) -> Listen:
    return parse_listen(options.smtp or os.environ.get("MAILNEST_SMTP") or DEFAULT_SMTP, what="--smtp")


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _code_exit(code: int, permanent: int) -> int:
    return EX_TEMPFAIL if 400 <= code < 500 else permanent


def deliver(message: bytes, sender: str, recipients: list[str], listen: Listen, *, hostname: str,
            verbose: bool, stderr: TextIO) -> int:
    try:
        client = smtplib.SMTP(listen.host, listen.port, timeout=60, local_hostname=hostname)
    except OSError as exc:
        print(f"sendmail: cannot reach mailnest at {listen}: {exc}. Is `mailnest serve` running? "
              "Set --smtp HOST:PORT or MAILNEST_SMTP.", file=stderr)
        return EX_UNAVAILABLE
    try:
        if verbose:
            client.set_debuglevel(1)
        client.ehlo()
        options = []
        if not all(a.isascii() for a in (sender, *recipients)) and client.has_extn("smtputf8"):
            options.append("SMTPUTF8")
        if not message.isascii() and client.has_extn("8bitmime"):
            options.append("BODY=8BITMIME")
        refused = client.sendmail(sender, recipients, message, mail_options=options)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        for rcpt, (code, text) in exc.recipients.items():
            print(f"sendmail: {rcpt}: refused: {code} {_text(text)}", file=stderr)
        return EX_TEMPFAIL if all(400 <= c < 500 for c in codes) else EX_NOUSER
    except smtplib.SMTPSenderRefused as exc:
        print(f"sendmail: sender {sender} refused: {exc.smtp_code} {_text(exc.smtp_error)}",
              file=stderr)
        return _code_exit(exc.smtp_code, EX_UNAVAILABLE)
    except smtplib.SMTPDataError as exc:
        print(f"sendmail: message refused: {exc.smtp_code} {_text(exc.smtp_error)}",
              file=stderr)
        return _code_exit(exc.smtp_code, EX_DATAERR if exc.smtp_code == 552 else EX_UNAVAILABLE)
    except smtplib.SMTPServerDisconnected as exc:
        print(f"sendmail: mailnest at {listen} closed the connection: {exc}", file=stderr)
        return EX_TEMPFAIL
    except smtplib.SMTPResponseException as exc:
        print(f"sendmail: {exc.smtp_code} {_text(exc.smtp_error)}", file=stderr)
        return _code_exit(exc.smtp_code, EX_PROTOCOL)
    except (smtplib.SMTPException, OSError) as exc:
        print(f"sendmail: sending to {listen} failed: {exc}", file=stderr)
        return EX_TEMPFAIL
    finally:
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()
    if refused:
        for rcpt, (code, text) in refused.items():
            print(f"sendmail: {rcpt}: refused: {code} {_text(text)}", file=stderr)
        return EX_NOUSER
    return EX_OK


def sendmail_main(argv: list[str], *, stdin: BinaryIO | None = None, stderr: TextIO | None = None) -> int:
    """Run as sendmail with `argv` (without the program name); returns a sysexits.h code."""
    stdin = stdin if stdin is not None else sys.stdin.buffer
    stderr = stderr if stderr is not None else sys.stderr
    if argv[:1] == ["--help"]:
        print(USAGE, file=sys.stdout, flush=True)
        return EX_OK
    try:
        options = parse_args(argv)
        listen = _smtp_address(options)
    except (UsageError, ConfigError) as exc:
        print(f"sendmail: {exc}", file=stderr)
        return EX_USAGE
    try:
        data = read_message(stdin, options.ignore_dots)
    except OSError as exc:
        print(f"sendmail: cannot read the message: {exc}", file=stderr)
        return EX_IOERR
    # gethostname() reads the kernel's name: no DNS lookup, unlike getfqdn() (smtplib's default).
    hostname = socket.gethostname() or "localhost"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "nobody"
    message, sender, recipients = prepare(data, options, hostname=hostname, user=user)
    if not recipients:
        print("sendmail: no recipient addresses found"
              + (" in the To, Cc or Bcc headers" if options.extract_recipients else " (give some, or use -t)"),
              file=stderr)
        return EX_USAGE
    return deliver(message, sender, recipients, listen, hostname=hostname, verbose=options.verbose, stderr=stderr)


def main() -> None:
    """Console-script entry point (`mailnest-sendmail`, or installed as `sendmail`)."""
    sys.exit(sendmail_main(sys.argv[1:]))


if __name__ == "__main__":
    main()
