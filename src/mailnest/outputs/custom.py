"""Custom handlers: user code that watches, and may refuse, each step of an SMTP conversation.

A handler is any object with one or more of aiosmtpd's hooks (``handle_HELO``, ``handle_EHLO``,
``handle_MAIL``, ``handle_RCPT``, ``handle_DATA``, ``handle_RSET``, ``handle_NOOP``, ``handle_VRFY``,
``handle_QUIT``), or with smtpd's ``process_message(peer, mailfrom, rcpttos, data)``, or a plain function
with that signature. Hooks may be ``async def`` or plain functions (those run on a worker thread, so a slow
one never stalls other SMTP sessions). They receive aiosmtpd's own ``server``, ``session`` and ``envelope``.

What a hook's reply does:
- a 4xx/5xx reply (``"550 no such user"``) is sent to the client instead of mailnest's, and the step is
  refused: a refused RCPT adds no recipient, a refused DATA stores nothing;
- a 2xx/3xx reply, or ``None``, lets mailnest carry on and send its own reply (hooks written for aiosmtpd
  append to ``envelope.rcpt_tos`` and set ``envelope.mail_from`` themselves; mailnest undoes that
  bookkeeping after the hook and does its own, so such handlers work unchanged and nothing is counted twice);
- for RSET, NOOP, VRFY and QUIT, which change nothing, any reply the hook returns is sent;
- a hook that raises is logged with its traceback and the client gets ``451``; the server keeps serving;
- a reply that is not an SMTP reply line (``"250 ok"``, ``"550-a\\r\\n550 b"``) is a bug in the handler:
  logged, and the client gets ``451``.
Handlers run in the order given; the first one that refuses ends the step. ``handle_DATA`` sees the
message in ``envelope.content``; changing it changes nothing stored (mailnest keeps the bytes as received).

``load_handler("package.module:name")`` imports a handler (``path/to/file.py:name`` works too); a class is
instantiated without arguments.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

HOOKS = ("HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY", "QUIT")
HANDLER_FAILED = "451 Requested action aborted: local error in processing"
_REPLY_LINE = re.compile(r"[2-5][0-9][0-9](?:[ -][^\r\n]*)?")


class HandlerLoadError(ValueError):
    """A ``--handler`` that cannot be used; the message names the handler and what is wrong."""


def load_handler(spec: str) -> object:
    """Import ``module:object`` (or ``file.py:object``); a class is instantiated with no arguments."""
    module_name, sep, attr_path = spec.strip().partition(":")
    if not sep or not module_name or not attr_path:
        raise HandlerLoadError(f"handler {spec!r}: expected module:object, as in myproject.hooks:Handler")
    module = _import(spec, module_name)
    target: Any = module
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerLoadError(f"handler {spec!r}: {module_name} has no attribute {attr_path!r}") from None
    if inspect.isclass(target):
        try:
            target = target()
        except Exception as exc:
            raise HandlerLoadError(
                f"handler {spec!r}: {attr_path}() failed ({type(exc).__name__}: {exc}); "
                "a handler class must be constructible without arguments"
            ) from exc
    check_handler(target, spec)
    return target


def check_handler(handler: object, label: str) -> None:
    """HandlerLoadError unless `handler` has a hook, a process_message, or is itself a function."""
    if _hook_names(handler) or callable(getattr(handler, "process_message", None)) or callable(handler):
        return
    raise HandlerLoadError(
        f"handler {label!r}: {type(handler).__name__} has none of "
        + ", ".join(f"handle_{h}" for h in HOOKS)
        + " or process_message, and is not callable"
    )


def _import(spec: str, module_name: str) -> Any:
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise HandlerLoadError(f"handler {spec!r}: no such file {path}")
        name = f"mailnest_handler_{path.stem}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise HandlerLoadError(f"handler {spec!r}: cannot load {path} as Python")
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[name] = module
        try:
            loader_spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise HandlerLoadError(f"handler {spec!r}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise HandlerLoadError(f"handler {spec!r}: no module named {exc.name!r} (is it on sys.path?)") from exc
        raise HandlerLoadError(f"handler {spec!r}: importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise HandlerLoadError(f"handler {spec!r}: importing {module_name} failed: {type(exc).__name__}: {exc}") from exc


def _hook_names(handler: object) -> list[str]:
    return [h for h in HOOKS if callable(getattr(handler, f"handle_{h}", None))]


def _describe(handler: object) -> str:
    return getattr(handler, "__qualname__", None) or type(handler).__qualname__


def _is_refusal(reply: str) -> bool:
    return reply[:1] in ("4", "5")


def valid_reply(reply: object) -> bool:
    """An SMTP reply as aiosmtpd pushes it: one line, or lines joined by CRLF, all with the same code,
    every line but the last with ``-`` after the code."""
    if not isinstance(reply, str):
        return False
    lines = reply.split("\r\n")
    if not all(_REPLY_LINE.fullmatch(line) for line in lines):
        return False
    code = lines[0][:3]
    return all(line[:3] == code for line in lines) and all(line[3:4] == "-" for line in lines[:-1]) and (
        lines[-1][3:4] != "-"
    )


def _valid_lines(lines: list[Any]) -> bool:
    """EHLO's list form: the lines of one multi-line reply."""
    return bool(lines) and all(isinstance(line, str) and "\r" not in line and "\n" not in line for line in lines) \
        and valid_reply("\r\n".join(lines))


class _Undo:
    """The envelope and session fields an aiosmtpd hook is expected to set, put back after the hook."""

    def __init__(self, session: Any, envelope: Any) -> None:
        self.session, self.envelope = session, envelope
        self.host_name = getattr(session, "host_name", None)
        self.extended_smtp = getattr(session, "extended_smtp", False)
        self.mail_from = getattr(envelope, "mail_from", None)
        self.mail_options = list(getattr(envelope, "mail_options", []))
        self.rcpt_tos = list(getattr(envelope, "rcpt_tos", []))
        self.rcpt_options = list(getattr(envelope, "rcpt_options", []))
        self.content = getattr(envelope, "content", None)
        self.original_content = getattr(envelope, "original_content", None)

    def restore(self) -> None:
        session, envelope = self.session, self.envelope
        if session is not None:
            session.host_name = self.host_name
            session.extended_smtp = self.extended_smtp
        if envelope is not None:
            envelope.mail_from = self.mail_from
            envelope.mail_options[:] = self.mail_options
            envelope.rcpt_tos[:] = self.rcpt_tos
            envelope.rcpt_options[:] = self.rcpt_options
            envelope.content = self.content
            envelope.original_content = self.original_content


async def _call(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    dunder_call = type(func).__call__ if not inspect.isroutine(func) else None
    if inspect.iscoroutinefunction(func) or (dunder_call is not None and inspect.iscoroutinefunction(dunder_call)):
        return await func(*args, **kwargs)
    result = await asyncio.to_thread(func, *args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def _process_message_kwargs(func: Callable[..., Any], session: Any, envelope: Any) -> dict[str, Any]:
    # smtpd passed mail_options/rcpt_options to process_message when its signature asked for them.
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = {}
    for key in ("mail_options", "rcpt_options"):
        if takes_any or key in params:
            kwargs[key] = list(getattr(envelope, key, []))
    return kwargs


def _ehlo_style(func: Callable[..., Any]) -> str:
    """aiosmtpd's two handle_EHLO styles, told apart as aiosmtpd does: exactly four parameters (hostname
    last) is the old style returning one line; anything else the new one, given and returning the lines."""
    try:
        count = len(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return "new"
    return "old" if count == 4 else "new"


class CustomHandlers:
    """The user's handlers, called by mailnest's SMTP handler at each step (see the module docstring)."""

    def __init__(self, handlers: Sequence[object] = ()) -> None:
        self.handlers = tuple(handlers)

    @classmethod
    def from_config(cls, specs: Sequence[object | str]) -> CustomHandlers:
        """Config.handlers: ``module:object`` strings are loaded, objects used as they are."""
        handlers = []
        for spec in specs:
            if isinstance(spec, str):
                handlers.append(load_handler(spec))
            else:
                check_handler(spec, repr(spec))
                handlers.append(spec)
        return cls(handlers)

    def __bool__(self) -> bool:
        return bool(self.handlers)

    def _hooks(self, command: str) -> list[tuple[object, Callable[..., Any]]]:
        found = []
        for handler in self.handlers:
            hook = getattr(handler, f"handle_{command}", None)
            if callable(hook):
                found.append((handler, hook))
        return found

    @staticmethod
    async def _run(func: Callable[..., Any], session: Any, envelope: Any, *args: Any, **kwargs: Any) -> Any:
        undo = _Undo(session, envelope)
        try:
            return await _call(func, *args, **kwargs)
        finally:
            undo.restore()

    async def _step(self, command: str, server: Any, session: Any, envelope: Any, *args: Any,
                    any_reply: bool = False) -> str | None:
        for handler, hook in self._hooks(command):
            try:
                reply = await self._run(hook, session, envelope, server, session, envelope, *args)
            except Exception:
                log.exception("custom handler %s failed in handle_%s", _describe(handler), command)
                return HANDLER_FAILED
            if reply is None:
                continue
            if not valid_reply(reply):
                log.error("custom handler %s returned %r from handle_%s, which is not an SMTP reply",
                          _describe(handler), reply, command)
                return HANDLER_FAILED
            if any_reply or _is_refusal(reply):
                return reply
        return None

    async def on_helo(self, server: Any, session: Any, envelope: Any, hostname: str) -> str | None:
        return await self._step("HELO", server, session, envelope, hostname)

    async def on_ehlo(self, server: Any, session: Any, envelope: Any, hostname: str,
                      responses: list[str]) -> list[str]:
        """The EHLO response lines to send: `responses` (mailnest's), as edited by new-style hooks
        (which may drop an extension), or one refusal line."""
        for handler, hook in self._hooks("EHLO"):
            style = _ehlo_style(hook)
            args = (hostname, list(responses)) if style == "new" else (hostname,)
            try:
                reply = await self._run(hook, session, envelope, server, session, envelope, *args)
            except Exception:
                log.exception("custom handler %s failed in handle_EHLO", _describe(handler))
                return [HANDLER_FAILED]
            if reply is None:
                continue
            lines = [reply] if isinstance(reply, str) else reply
            if not isinstance(lines, list) or not _valid_lines(lines):
                log.error("custom handler %s returned %r from handle_EHLO, which is not a list of SMTP replies",
                          _describe(handler), reply)
                return [HANDLER_FAILED]
            if _is_refusal(lines[-1]):
                return [lines[-1]]
            if style == "new":
                responses = lines
        return responses

    async def on_mail(self, server: Any, session: Any, envelope: Any, address: str,
                      options: list[str]) -> str | None:
        return await self._step("MAIL", server, session, envelope, address, options)

    async def on_rcpt(self, server: Any, session: Any, envelope: Any, address: str,
                      options: list[str]) -> str | None:
        return await self._step("RCPT", server, session, envelope, address, options)

    async def on_data(self, server: Any, session: Any, envelope: Any) -> str | None:
        """Before the message is stored. handle_DATA hooks first, then process_message ones, in order."""
        for handler in self.handlers:
            hook = getattr(handler, "handle_DATA", None)
            if callable(hook):
                args: tuple[Any, ...] = (server, session, envelope)
                kwargs: dict[str, Any] = {}
                name = "handle_DATA"
            else:
                hook = getattr(handler, "process_message", None)
                if not callable(hook):
                    hook = handler if callable(handler) and not _hook_names(handler) else None
                if hook is None:
                    continue
                args = (session.peer, envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
                kwargs = _process_message_kwargs(hook, session, envelope)
                name = "process_message"
            try:
                reply = await self._run(hook, session, envelope, *args, **kwargs)
            except Exception:
                log.exception("custom handler %s failed in %s", _describe(handler), name)
                return HANDLER_FAILED
            if reply is None:
                continue
            if not valid_reply(reply):
                log.error("custom handler %s returned %r from %s, which is not an SMTP reply",
                          _describe(handler), reply, name)
                return HANDLER_FAILED
            if _is_refusal(reply):
                return reply
        return None

    async def on_command(self, command: str, server: Any, session: Any, envelope: Any, *args: Any) -> str | None:
        """RSET, NOOP (arg), VRFY (address), QUIT: any reply a hook gives is the reply."""
        return await self._step(command.upper(), server, session, envelope, *args, any_reply=True)


class HookedHandler:
    """mailnest's own aiosmtpd handler with the user's handlers in front of it.

    ``HookedHandler(CaptureHandler(config, store), custom)`` is given to aiosmtpd's SMTP in place of the
    capture handler. At each step the user's hooks run first; a refusal is the reply, otherwise the inner
    handler's hook runs, or aiosmtpd's default when the inner handler has none for that step.
    """

    _OWN = frozenset({"HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "VRFY", "QUIT"})

    def __init__(self, inner: object, custom: CustomHandlers) -> None:
        self.inner = inner
        self.custom = custom
        # aiosmtpd finds hooks with dir(handler): pass through the inner handler's other hooks (AUTH,
        # STARTTLS, PROXY, exception) so wrapping changes nothing else.
        for attr in dir(inner):
            if attr.startswith("handle_") and attr.removeprefix("handle_") not in self._OWN:
                setattr(self, attr, getattr(inner, attr))

    def _inner(self, command: str) -> Callable[..., Any] | None:
        hook = getattr(self.inner, f"handle_{command}", None)
        return hook if callable(hook) else None

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        reply = await self.custom.on_helo(server, session, envelope, hostname)
        if reply is not None:
            return reply
        inner = self._inner("HELO")
        if inner is not None:
            return await inner(server, session, envelope, hostname)
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,
                          responses: list[str]) -> list[str]:
        inner = self._inner("EHLO")
        if inner is not None:
            responses = await inner(server, session, envelope, hostname, responses)
        else:
            session.host_name = hostname
        lines = await self.custom.on_ehlo(server, session, envelope, hostname, responses)
        if len(lines) == 1 and _is_refusal(lines[0]):
            session.host_name = None  # refused: the client has not said hello
        return lines

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          mail_options: list[str]) -> str:
        reply = await self.custom.on_mail(server, session, envelope, address, mail_options)
        if reply is not None:
            return reply
        inner = self._inner("MAIL")
        if inner is not None:
            return await inner(server, session, envelope, address, mail_options)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        reply = await self.custom.on_rcpt(server, session, envelope, address, rcpt_options)
        if reply is not None:
            return reply
        inner = self._inner("RCPT")
        if inner is not None:
            return await inner(server, session, envelope, address, rcpt_options)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await self.custom.on_data(server, session, envelope)
        if reply is not None:
            return reply
        inner = self._inner("DATA")
        if inner is not None:
            return await inner(server, session, envelope)
        return "250 OK"

    async def _simple(self, command: str, default: str, server: Any, session: Any, envelope: Any,
                      *args: Any) -> str:
        reply = await self.custom.on_command(command, server, session, envelope, *args)
        if reply is not None:
            return reply
        inner = self._inner(command)
        if inner is not None:
            return await inner(server, session, envelope, *args)
        return default

    async def handle_RSET(self, server: Any, session: Any, envelope: Any) -> str:
        return await self._simple("RSET", "250 OK", server, session, envelope)

    async def handle_NOOP(self, server: Any, session: Any, envelope: Any, arg: str) -> str:
        return await self._simple("NOOP", "250 OK", server, session, envelope, arg)

    async def handle_VRFY(self, server: Any, session: Any, envelope: Any, address: str) -> str:
        return await self._simple("VRFY", "252 Cannot VRFY user, but will accept message and attempt delivery",
                                  server, session, envelope, address)

    async def handle_QUIT(self, server: Any, session: Any, envelope: Any) -> str:
        return await self._simple("QUIT", "221 Bye", server, session, envelope)
