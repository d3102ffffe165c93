"""Chaos: make the SMTP side fail on purpose, so that a client's retry logic can be tested. Pure: no sockets.

`ChaosSettings` (frozen) says what may go wrong and how often; it comes from `--chaos` (`parse_spec`), from
Mailpit's API (`PUT /api/v1/chaos`, `from_mailpit`) or from MailHog's Jim (`/api/v2/jim`, `from_jim`).
`Chaos` holds the current settings, a seedable random generator and the rate limiter; the SMTP listener asks a
`ChaosSession` (one per connection) what to do at each step and gets an `Action`: wait, answer with an error
instead, or drop the connection. With nothing configured every answer is `NOTHING` and costs one comparison.

`--chaos` syntax: comma-separated `key=value` items, e.g.
`sender=451:0.5,recipient=550:10%,auth=535:0.2,latency=200ms,rate=10/s,drop=0.05,accept=0.99,seed=42`.

- sender / recipient / auth = CODE:CHANCE (or just CHANCE, with the codes 451 / 451 / 535): answer MAIL FROM,
  RCPT TO or AUTH with that SMTP code, at that chance (a fraction 0..1 or a percentage such as 10%);
- drop = CHANCE: at every command, close the connection without a reply;
- accept = CHANCE: a new connection is accepted at this chance, otherwise closed at once (MailHog's Jim);
- latency = DURATION: wait this long before every reply (200ms, 1.5s, or plain seconds);
- rate = N/s (or N/m, or N): over N messages per second across all connections, MAIL FROM gets
  `421 4.7.0` and the connection is closed, as a server under load does;
- seed = INT: a fixed random seed, for reproducible runs.

`--chaos on` (or an empty spec) enables the chaos API with nothing triggered yet, as Mailpit's --enable-chaos.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .config import ConfigError

log = logging.getLogger("mailnest.chaos")


class ChaosError(ValueError):
    """Settings that cannot be used; the message says which and how to write them."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """Answer a command with `code` at `probability` (0..1)."""

    code: int
    probability: float = 0.0


@dataclass(frozen=True, slots=True)
class Action:
    """What the SMTP listener does at one step. The default does nothing."""

    delay: float = 0.0  # seconds to wait before answering
    reply: str | None = None  # answer this instead of the normal reply
    drop: bool = False  # close the connection without any reply
    close: bool = False  # close the connection after sending `reply` (421)

    def __bool__(self) -> bool:
        return bool(self.delay or self.reply or self.drop)


NOTHING = Action()
DEFAULT_CODES = {"sender": 451, "recipient": 451, "auth": 535}
_WHAT = {"sender": "sender rejected", "recipient": "recipient rejected", "auth": "authentication failed"}


@dataclass(frozen=True, slots=True)
class ChaosSettings:
    sender: Trigger = Trigger(DEFAULT_CODES["sender"])
    recipient: Trigger = Trigger(DEFAULT_CODES["recipient"])
    auth: Trigger = Trigger(DEFAULT_CODES["auth"])
    drop: float = 0.0  # chance per command of dropping the connection
    accept: float = 1.0  # chance a new connection is accepted
    latency: float = 0.0  # seconds before every reply
    rate: float = 0.0  # messages per second over which MAIL FROM gets 421; 0 = no limit
    link_affect: float = 0.0  # chance a connection is throttled to a slow link (MailHog's Jim)
    link_min: int = 1024  # bytes per second
    link_max: int = 10240
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("sender", "recipient", "auth"):
            trigger: Trigger = getattr(self, name)
            if not 400 <= trigger.code <= 599:
                raise ChaosError(f"{name}: the SMTP code must be between 400 and 599, not {trigger.code}")
            _check_chance(name, trigger.probability)
        for name in ("drop", "accept", "link_affect"):
            _check_chance(name, getattr(self, name))
        if self.latency < 0 or self.latency > 600:
            raise ChaosError(f"latency must be between 0 and 600 seconds, not {self.latency:g}")
        if self.rate < 0:
            raise ChaosError(f"rate must be 0 (no limit) or more messages per second, not {self.rate:g}")
        if not 1 <= self.link_min <= self.link_max:
            raise ChaosError(f"link speeds must satisfy 1 <= min <= max, not {self.link_min}..{self.link_max}")

    @property
    def active(self) -> bool:
        return bool(self.sender.probability or self.recipient.probability or self.auth.probability or self.drop
                    or self.accept < 1 or self.latency or self.rate or self.link_affect)


def _check_chance(name: str, value: float) -> None:
    if not 0 <= value <= 1:
        raise ChaosError(f"{name}: a chance must be between 0 and 1 (or 0% and 100%), not {value:g}")


# -- the --chaos flag ----------------------------------------------------------------------------------------

_CHANCE = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(%?)")
_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m)?")
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/\s*(s|sec|second|m|min|minute))?")
_KEYS = {"sender": "sender", "mail": "sender", "recipient": "recipient", "rcpt": "recipient",
         "auth": "auth", "authentication": "auth", "drop": "drop", "disconnect": "drop", "accept": "accept",
         "latency": "latency", "delay": "latency", "rate": "rate", "seed": "seed"}


def _chance(text: str, what: str) -> float:
    match = _CHANCE.fullmatch(text.strip())
    if not match:
        raise ChaosError(f"{what}: {text!r} is not a chance such as 0.05 or 5%")
    value = float(match.group(1)) / (100 if match.group(2) else 1)
    _check_chance(what, value)
    return value


def _trigger(text: str, what: str) -> Trigger:
    code_text, colon, chance_text = text.partition(":")
    if not colon:
        return Trigger(DEFAULT_CODES[what], _chance(text, what))
    if not code_text.strip().isdigit():
        raise ChaosError(f"{what}: {text!r} is not CODE:CHANCE such as 451:0.5")
    return Trigger(int(code_text), _chance(chance_text, what))


def _duration(text: str) -> float:
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise ChaosError(f"latency: {text!r} is not a duration such as 200ms or 1.5s")
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[match.group(2)]


def _rate(text: str) -> float:
    match = _RATE.fullmatch(text.strip().lower())
    if not match:
        raise ChaosError(f"rate: {text!r} is not a rate such as 10/s or 600/m")
    per_minute = (match.group(2) or "s").startswith("m")
    return float(match.group(1)) / (60 if per_minute else 1)


def parse_spec(spec: str | None) -> ChaosSettings:
    """`--chaos` text -> settings (see the module docstring). Raises ConfigError naming the bad item."""
    text = (spec or "").strip()
    if text.lower() in ("", "on", "true", "yes", "1"):
        return ChaosSettings()
    values: dict[str, Any] = {}
    try:
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            key, eq, value = item.partition("=")
            name = _KEYS.get(key.strip().lower())
            if not eq or name is None:
                known = "sender, recipient, auth, drop, accept, latency, rate, seed"
                raise ChaosError(f"{item!r} is not KEY=VALUE with KEY one of {known}")
            if name in DEFAULT_CODES:
                values[name] = _trigger(value, name)
            elif name in ("drop", "accept"):
                values[name] = _chance(value, name)
            elif name == "latency":
                values[name] = _duration(value)
            elif name == "rate":
                values[name] = _rate(value)
            elif not value.strip().lstrip("-").isdigit():
                raise ChaosError(f"seed: {value!r} is not a whole number")
            else:
                values[name] = int(value)
        return ChaosSettings(**values)
    except ChaosError as exc:
        raise ConfigError(f"--chaos: {exc} (example: sender=451:0.5,latency=200ms,rate=10/s)") from None


def describe(settings: ChaosSettings) -> str:
    """The settings in `--chaos` syntax (for logs and the UI)."""
    parts = [f"{name}={t.code}:{t.probability:g}" for name in DEFAULT_CODES
             if (t := getattr(settings, name)).probability]
    if settings.drop:
        parts.append(f"drop={settings.drop:g}")
    if settings.accept < 1:
        parts.append(f"accept={settings.accept:g}")
    if settings.latency:
        parts.append(f"latency={settings.latency * 1000:g}ms")
    if settings.rate:
        parts.append(f"rate={settings.rate:g}/s")
    return ",".join(parts) or "nothing triggered"


# -- Mailpit's triggers and MailHog's Jim ----------------------------------------------------------------------

MAILPIT_TRIGGERS = {"Sender": "sender", "Recipient": "recipient", "Authentication": "auth"}


def _percent(probability: float) -> int | float:
    value = round(probability * 100, 4)
    return int(value) if value == int(value) else value


def to_mailpit(settings: ChaosSettings) -> dict[str, dict[str, int | float]]:
    return {key: {"ErrorCode": getattr(settings, name).code, "Probability": _percent(getattr(settings, name).probability)}
            for key, name in MAILPIT_TRIGGERS.items()}


def _field(mapping: Mapping[str, Any], known: Mapping[str, str], what: str) -> dict[str, Any]:
    """Keys matched without regard to case; unknown keys are ignored (logged at debug level), as Go's JSON decoder
    (and so Mailpit and MailHog) ignores them."""
    by_lower = {k.lower(): k for k in known}
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        canonical = by_lower.get(str(key).lower())
        if canonical is None:
            log.debug("%s: ignored the unknown field %r (known: %s)", what, key, ", ".join(known))
            continue
        out[canonical] = value
    return out


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChaosError(f"{what} must be a number, not {value!r}")
    return float(value)


def from_mailpit(body: Any, base: ChaosSettings) -> ChaosSettings:
    """Apply a `PUT /api/v1/chaos` body. Omitted triggers reset to 0%, as in Mailpit; other settings stay."""
    if not isinstance(body, dict):
        raise ChaosError('expected a JSON object such as {"Sender": {"ErrorCode": 451, "Probability": 5}}')
    given = _field(body, MAILPIT_TRIGGERS, "chaos triggers")
    changes: dict[str, Any] = {}
    for key, name in MAILPIT_TRIGGERS.items():
        if key not in given:
            changes[name] = Trigger(DEFAULT_CODES[name])
            continue
        trigger = given[key]
        if not isinstance(trigger, dict):
            raise ChaosError(f"{key} must be an object with ErrorCode and Probability")
        values = _field(trigger, {"ErrorCode": "", "Probability": ""}, key)
        code = _number(values.get("ErrorCode", DEFAULT_CODES[name]), f"{key}.ErrorCode")
        if code != int(code):
            raise ChaosError(f"{key}.ErrorCode must be a whole number")
        percent = _number(values.get("Probability", 0), f"{key}.Probability")
        if not 0 <= percent <= 100:
            raise ChaosError(f"{key}.Probability must be between 0 and 100, not {percent:g}")
        changes[name] = Trigger(int(code), percent / 100)
    return replace(base, **changes)


JIM_FIELDS = {"DisconnectChance": "drop", "AcceptChance": "accept", "LinkSpeedAffect": "link_affect",
              "LinkSpeedMin": "link_min", "LinkSpeedMax": "link_max", "RejectSenderChance": "sender",
              "RejectRecipientChance": "recipient", "RejectAuthChance": "auth"}
# MailHog's defaults for an invited Jim (its -jim-* flags).
JIM_DEFAULTS = {"DisconnectChance": 0.005, "AcceptChance": 0.99, "LinkSpeedAffect": 0.1, "LinkSpeedMin": 1024,
                "LinkSpeedMax": 10240, "RejectSenderChance": 0.05, "RejectRecipientChance": 0.05,
                "RejectAuthChance": 0.05}
_JIM_CODES = {"sender": 550, "recipient": 550, "auth": 535}
MAX_LINK_SPEED = 1_000_000_000


def to_jim(settings: ChaosSettings) -> dict[str, float | int]:
    out: dict[str, float | int] = {}
    for key, name in JIM_FIELDS.items():
        value = getattr(settings, name)
        out[key] = value.probability if isinstance(value, Trigger) else value
    return out


def from_jim(body: Any, base: ChaosSettings) -> ChaosSettings:
    """Apply a Jim body (any subset of its fields) on top of `base`."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ChaosError('expected a JSON object such as {"RejectSenderChance": 0.5}')
    changes: dict[str, Any] = {}
    for key, value in _field(body, JIM_FIELDS, "Jim").items():
        name = JIM_FIELDS[key]
        number = _number(value, key)
        if name in _JIM_CODES:
            _check_chance(key, number)
            current: Trigger = getattr(base, name)
            code = current.code if current.probability else _JIM_CODES[name]
            changes[name] = Trigger(code, number)
        elif name in ("link_min", "link_max"):
            if not 1 <= number <= MAX_LINK_SPEED or number != int(number):
                raise ChaosError(f"{key} must be a whole number of bytes per second, 1 to {MAX_LINK_SPEED}")
            changes[name] = int(number)
        else:
            changes[name] = number
    low = changes.get("link_min", base.link_min)
    changes["link_max"] = max(low, changes.get("link_max", base.link_max))  # a range given backwards is one speed
    return replace(base, **changes)


def jim_settings(body: Any) -> ChaosSettings:
    """The settings of a newly invited Jim: MailHog's defaults, overridden by the body's fields."""
    return from_jim(body, from_jim(JIM_DEFAULTS, ChaosSettings()))


# -- deciding ----------------------------------------------------------------------------------------------------


@dataclass
class Chaos:
    """The live chaos state, shared by the SMTP listener and the API (all on one event loop)."""

    settings: ChaosSettings = field(default_factory=ChaosSettings)
    enabled: bool = False  # may the Mailpit API change the triggers (Mailpit's --enable-chaos)
    jim: bool = False  # MailHog's Jim is "invited" (GET /api/v2/jim answers 200)
    clock: Callable[[], float] = time.monotonic
    _rng: random.Random = field(init=False, repr=False)
    _recent: deque[float] = field(init=False, repr=False, default_factory=deque)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.settings.seed)

    @classmethod
    def from_config(cls, config: Any) -> Chaos:
        spec = getattr(config, "chaos", None)
        return cls(parse_spec(spec), enabled=spec is not None)

    def update(self, settings: ChaosSettings) -> None:
        if settings.seed is not None and settings.seed != self.settings.seed:
            self._rng.seed(settings.seed)
        self.settings = settings

    def chance(self, probability: float) -> bool:
        return probability > 0 and (probability >= 1 or self._rng.random() < probability)

    def session(self) -> ChaosSession:
        """Decisions for one new SMTP connection."""
        return ChaosSession(self)

    def over_rate(self) -> bool:
        """Count one message against the rate limit; True when it is over."""
        rate = self.settings.rate
        if not rate:
            return False
        now = self.clock()
        recent = self._recent
        while recent and recent[0] <= now - 1.0:
            recent.popleft()
        if len(recent) >= rate:
            return True
        recent.append(now)
        return False


class ChaosSession:
    """What to do at each step of one SMTP connection. Each method returns NOTHING when chaos is idle."""

    def __init__(self, chaos: Chaos) -> None:
        self.chaos = chaos
        settings = chaos.settings
        self.link_speed: int | None = None
        if settings.link_affect and chaos.chance(settings.link_affect):
            self.link_speed = chaos._rng.randint(settings.link_min, settings.link_max)

    def _step(self) -> Action | None:
        """Latency and the per-command drop chance; None when neither applies."""
        settings = self.chaos.settings
        if settings.drop and self.chaos.chance(settings.drop):
            return Action(delay=settings.latency, drop=True)
        return Action(delay=settings.latency) if settings.latency else None

    def connect(self) -> Action:
        """Before the greeting: refuse the connection (accept chance) or delay the banner."""
        settings = self.chaos.settings
        if settings.accept < 1 and not self.chaos.chance(settings.accept):
            return Action(drop=True)
        return Action(delay=settings.latency) if settings.latency else NOTHING

    def command(self) -> Action:
        """Any other command (EHLO, RSET, NOOP ...): latency and the drop chance."""
        if not self.chaos.settings.active:
            return NOTHING
        return self._step() or NOTHING

    def _triggered(self, name: str) -> Action:
        settings = self.chaos.settings
        if not settings.active:
            return NOTHING
        step = self._step()
        if step is not None and step.drop:
            return step
        trigger: Trigger = getattr(settings, name)
        delay = step.delay if step else 0.0
        if trigger.probability and self.chaos.chance(trigger.probability):
            enhanced = f"{trigger.code // 100}.7.{8 if name == 'auth' else 1}"
            return Action(delay=delay, reply=f"{trigger.code} {enhanced} Chaos: {_WHAT[name]} (mailnest chaos)")
        return Action(delay=delay) if delay else NOTHING

    def mail(self) -> Action:
        """MAIL FROM: the rate limit first (421, then close), then the sender trigger."""
        settings = self.chaos.settings
        if settings.rate and self.chaos.over_rate():
            return Action(delay=settings.latency, close=True,
                          reply=f"421 4.7.0 Too many messages, over {settings.rate:g} per second; try again later")
        return self._triggered("sender")

    def rcpt(self) -> Action:
        return self._triggered("recipient")

    def auth(self) -> Action:
        return self._triggered("auth")

    def data(self, size: int) -> Action:
        """After the message is read: latency, the drop chance, and the time a slow link would have taken."""
        if not self.chaos.settings.active:
            return NOTHING
        step = self._step()
        if step is not None and step.drop:
            return step
        delay = (step.delay if step else 0.0) + (size / self.link_speed if self.link_speed else 0.0)
        return Action(delay=delay) if delay else NOTHING
