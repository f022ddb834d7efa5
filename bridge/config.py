"""Load `rules.yaml`: interpolate `${VAR}`, validate every key, build frozen dataclasses (DESIGN section 3).

Pure: reads the config file (and, through the template engine, the template files it names) and nothing else.
Every problem is collected with its line, so one `sms-bridge check` lists them all as `FILE:LINE: key.path: message`.
Secret values (passwords, tokens, keys, webhook secrets, header values) never appear in a message.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import enum
import hmac
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from bridge.events import RULE_EVENT_NAMES
from bridge.gateway.models import STATUS_NAMES
from bridge.pool import Member, Strategy
from bridge.templating import PAYLOAD_NAMES, RULE_NAMES, TemplateEngine, TemplateError

# --- public values ----------------------------------------------------------------------------------------------


class Secret:
    """A secret string (password, token, key): repr and str show '***'; `.reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for the one place that must send or compare it."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    def __str__(self) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time: api keys are compared against what clients send.
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` events per `per` seconds."""

    count: int
    per: float


class ActionKind(enum.StrEnum):
    """What a rule's action does; the value is its key in the YAML."""

    REPLY = "reply"
    SEND = "send"
    WEBHOOK = "webhook"
    TAG = "tag"
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


DEMO_EMAIL, DEMO_PASSWORD = "demo@example.com", "demo"  # the simulator's account when the config names none


@dataclass(frozen=True, slots=True)
class SimulatorConfig:
    """The in-process simulator used instead of the real API."""

    inbound_every: float | None = 8.0
    pace: float = 2.0
    failure_rate: float = 0.0
    host: str = "127.0.0.1"  # where it listens, so commands given the same config reach it (DESIGN section 6)
    port: int = 8024

    @property
    def url(self) -> str:
        """The simulator's base URL, as commands given the same config reach it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """How to reach the SmsGateway24 API and the account's defaults."""

    url: str = "https://smsgateway24.com"
    email: str | None = None
    password: Secret | None = None
    token: Secret | None = None
    device_id: int | None = None
    sim: int = 0
    timezone: str = "Europe/Paris"
    default_region: str | None = None
    webhook_secret: Secret | None = None
    simulator: SimulatorConfig | None = None
    timeout: float = 30.0
    max_per_minute: int | None = None

    def simulator_login(self) -> tuple[str, Secret]:
        """The email and password the in-process simulator accepts: the configured ones, else the demo account's."""
        return self.email or DEMO_EMAIL, self.password or Secret(DEMO_PASSWORD)


@dataclass(frozen=True, slots=True)
class PollConfig:
    """The poller's schedule and windows, in seconds."""

    interval: float = 15.0
    lookback: float = 2 * 86400.0
    overlap: float = 300.0
    backfill: float = 0.0
    devices_interval: float = 60.0
    device_offline_after: float = 600.0
    stuck_after: float = 900.0
    unhealthy_after: float = 300.0


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The database: the SQLite file (absolute once loaded) and its durability level, or, when `url` is set,
    a PostgreSQL server shared by replicas, whose poller leadership lasts `lease` seconds without renewal."""

    path: Path = Path("bridge.db")
    synchronous: Literal["normal", "full"] = "normal"
    url: Secret | None = None
    lease: float = 15.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The bridge's HTTP API."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    api_keys: tuple[Secret, ...] = ()
    rate_limit: Rate | None = None
    max_body_chars: int = 1600
    max_request_bytes: int = 1_048_576
    read_timeout: float = 10.0        # a request must arrive whole within this (slow clients are cut off)
    dashboard: bool = True            # the web dashboard under /ui/
    public_url: str | None = None     # where people reach the bridge; https makes the dashboard's cookie Secure

    @property
    def example_key_exposed(self) -> bool:
        """True when the example's API key `change-me` opens the API on an address other machines can reach."""
        return self.enabled and not _is_loopback(self.host) and any(
            hmac.compare_digest(key.reveal(), EXAMPLE_API_KEY) for key in self.api_keys)


EXAMPLE_API_KEY = "change-me"  # rules.yaml.example's key when BRIDGE_API_KEY is unset


def _is_loopback(host: str) -> bool:
    """True for an address only this machine reaches (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


DEFAULT_RETRY: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """A named webhook target."""

    name: str
    url: str
    template: str | None = None
    headers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    secret: Secret | None = None
    timeout: float = 10.0
    retry: tuple[float, ...] = DEFAULT_RETRY
    concurrency: int = 16


@dataclass(frozen=True, slots=True)
class InboundConfig:
    """A `POST /v1/hooks/{name}` endpoint that turns any JSON into sends."""

    name: str
    to: tuple[str, ...]
    template: str | None = None
    preset: Literal["alertmanager", "grafana", "generic"] = "generic"
    device_id: int | None = None
    sim: int | None = None


@dataclass(frozen=True, slots=True)
class SafetyConfig:
    """Limits applied to every reply and send."""

    opt_out_keywords: tuple[str, ...] = ("STOP", "UNSUBSCRIBE")
    opt_in_keywords: tuple[str, ...] = ("START", "UNSTOP")
    reply_cooldown: float = 300.0
    loop_limit: Rate = Rate(20, 300.0)


@dataclass(frozen=True, slots=True)
class MatchConfig:
    """A rule's conditions; None means no condition. `from_` is the key `from`, `not_` the key `not`."""

    event: tuple[str, ...] | None = None
    keyword: tuple[str, ...] | None = None
    body_regex: str | None = None
    from_: tuple[str, ...] | None = None
    to: tuple[str, ...] | None = None
    device_id: tuple[int, ...] | None = None
    sim: int | None = None
    status: tuple[str, ...] | None = None
    between: str | None = None
    days: tuple[str, ...] | None = None
    timezone: str | None = None
    not_: MatchConfig | None = None


@dataclass(frozen=True, slots=True)
class ActionConfig:
    """One action of a rule; which fields apply depends on `kind`."""

    kind: ActionKind
    text: str | None = None
    to: tuple[str, ...] = ()
    webhook: str | None = None
    template: str | None = None
    tag_id: int | None = None
    name_template: str | None = None
    device_id: int | None = None
    sim: int | None = None
    allow_alphanumeric: bool = False
    allow_own_numbers: bool = False


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """A named rule: when `match` holds, run `actions`."""

    name: str
    match: MatchConfig = MatchConfig()
    actions: tuple[ActionConfig, ...] = ()
    stop: bool = False
    default: bool = False


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """The device pool: the members sends without a device_id are placed on, and how (DESIGN section 9)."""

    members: tuple[Member, ...]
    strategy: Strategy = Strategy.STICKY
    failover: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    gateway: GatewayConfig = GatewayConfig()
    poll: PollConfig = PollConfig()
    storage: StorageConfig = StorageConfig()
    server: ServerConfig = ServerConfig()
    webhooks: Mapping[str, WebhookConfig] = field(default_factory=lambda: MappingProxyType({}))
    inbound: Mapping[str, InboundConfig] = field(default_factory=lambda: MappingProxyType({}))
    safety: SafetyConfig = SafetyConfig()
    rules: tuple[RuleConfig, ...] = ()
    pool: PoolConfig | None = None
    templates_dir: Path = Path("templates")
    source: Path = Path("rules.yaml")

    @property
    def secrets(self) -> tuple[Secret, ...]:
        """Every secret of the config, for log redaction."""
        gw = self.gateway
        found = [gw.password, gw.token, gw.webhook_secret, *self.server.api_keys]
        found += [hook.secret for hook in self.webhooks.values()]
        return tuple(s for s in found if s is not None)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in the config file, located by line and key path."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The config file is invalid: fix every listed issue and load again."""

    def __init__(self, errors: Iterable[ConfigIssue]) -> None:
        self.errors = tuple(errors)
        super().__init__("\n".join(map(str, self.errors)))


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem, OSError if unreadable."""
    source = Path(path)
    raw = source.read_bytes()
    ctx = _Ctx(str(path), os.environ if env is None else env, source.absolute().parent)
    root = _parse_yaml(ctx, raw)
    config = _config(ctx, root, source.absolute()) if root is not None else None
    if ctx.issues or config is None:
        raise ConfigError(sorted(ctx.issues, key=lambda issue: issue.line))
    return config


# --- reading YAML into located values ---------------------------------------------------------------------------


class _Bad:
    """Marks a value that was already reported as invalid, so nothing reports it twice."""

    def __repr__(self) -> str:
        return "<invalid>"


_BAD: Any = _Bad()


@dataclass(slots=True)
class _Val:
    """A YAML value after interpolation, with its line (a collection's line is its key's)."""

    line: int
    data: Any  # dict[str, _Val] | list[_Val] | a scalar | _BAD
    text: str = ""  # a scalar's text after interpolation (strings come from here, so `+4930…` stays a string)
    source: str = ""  # a scalar as written in the file: safe to quote in messages


class _Ctx:
    """State of one load: where we are, what we found, and the issues so far."""

    def __init__(self, file: str, env: Mapping[str, str], base_dir: Path) -> None:
        self.file = file
        self.env = env
        self.base_dir = base_dir
        self.issues: list[ConfigIssue] = []
        self.engine: TemplateEngine | None = None
        self.webhook_names: frozenset[str] = frozenset()

    def issue(self, line: int, path: str, message: str) -> Any:
        """Record a problem; returns _BAD so parsers can `return ctx.issue(...)`."""
        self.issues.append(ConfigIssue(self.file, line, path, message))
        return _BAD


_TOP_SHAPE = "a mapping of sections (gateway, poll, storage, server, webhooks, inbound, safety, rules)"
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()


def _parse_yaml(ctx: _Ctx, raw: bytes) -> _Val | None:
    """The document as a _Val tree, or None when it is not a readable, non-empty mapping (reported)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        ctx.issue(raw[: exc.start].count(b"\n") + 1, "", "not UTF-8 text")
        return None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        ctx.issue(1, "", "the document is nested too deeply")
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        ctx.issue(mark.line + 1 if mark else 1, "", f"YAML syntax error: {exc.problem or exc.context}")
        return None
    except yaml.YAMLError as exc:
        position = getattr(exc, "position", 0)
        ctx.issue(text[:position].count("\n") + 1, "", f"YAML syntax error: {getattr(exc, 'reason', exc)}")
        return None
    if node is None:
        ctx.issue(1, "", f"the file is empty; expected {_TOP_SHAPE}")
        return None
    root = _convert(ctx, node, "", node.start_mark.line + 1, frozenset())
    if not isinstance(root.data, dict):
        if root.data is not _BAD:
            ctx.issue(root.line, "", f"expected {_TOP_SHAPE}, got {_kind(root.data)}")
        return None
    return root


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _convert(ctx: _Ctx, node: yaml.Node, path: str, line: int, active: frozenset[int]) -> _Val:
    """Turn a node into a _Val; `active` holds the collections being converted, to stop recursive aliases."""
    if id(node) in active:
        return _Val(line, ctx.issue(line, path, "recursive alias"))
    if isinstance(node, yaml.ScalarNode):
        return _scalar(ctx, node, path, line)
    inner = active | {id(node)}
    if isinstance(node, yaml.SequenceNode):
        items = [
            _convert(ctx, item, f"{path}[{i}]", item.start_mark.line + 1, inner)
            for i, item in enumerate(node.value)
        ]
        return _Val(line, items)
    return _Val(line, _mapping(ctx, node, path, inner))


def _mapping(ctx: _Ctx, node: yaml.MappingNode, path: str, active: frozenset[int]) -> dict[str, _Val]:
    """A mapping's entries by key; keys are taken as written (never interpolated)."""
    out: dict[str, _Val] = {}
    for key_node, value_node in node.value:
        key_line = key_node.start_mark.line + 1
        if not isinstance(key_node, yaml.ScalarNode):
            ctx.issue(key_line, path, "keys must be plain strings")
            continue
        key = key_node.value
        if key in out:
            ctx.issue(key_line, _join(path, key), f"duplicate key (first at line {out[key].line})")
            continue
        out[key] = _convert(ctx, value_node, _join(path, key), key_line, active)
    return out


def _scalar(ctx: _Ctx, node: yaml.ScalarNode, path: str, line: int) -> _Val:
    """A scalar after `${VAR}` interpolation, typed as YAML would type the result."""
    text, problems = _interpolate(node.value, ctx.env)
    for problem in problems:
        ctx.issue(line, path, problem)
    if problems:
        return _Val(line, _BAD, node.value, node.value)
    tag = node.tag
    implicit = _RESOLVER.resolve(yaml.ScalarNode, node.value, (True, False))
    if node.style is None and text != node.value and tag == implicit:
        tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))
    construct = SafeConstructor.yaml_constructors.get(tag)
    if construct is None or tag in _COLLECTION_TAGS:
        return _Val(line, ctx.issue(line, path, f"unsupported YAML tag {tag}"), text, node.value)
    try:
        data = construct(_CONSTRUCTOR, yaml.ScalarNode(tag, text, node.start_mark, node.end_mark, node.style))
    except (yaml.YAMLError, ValueError):
        return _Val(line, ctx.issue(line, path, f"not a valid {tag.rsplit(':', 1)[-1]}"), text, node.value)
    return _Val(line, data, text, node.value)


_COLLECTION_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("seq", "map", "omap", "pairs", "set")}

# `$${` is a literal `${`; otherwise `${NAME}` or `${NAME:-default}` (default used when unset or empty).
_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_VARIABLE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.S)
_REFERENCE_HELP = "use ${VAR} or ${VAR:-default}; write $${ for a literal ${"


def _interpolate(text: str, env: Mapping[str, str]) -> tuple[str, list[str]]:
    """`text` with every `${VAR}` replaced, and the problems found (messages never include values)."""
    problems: list[str] = []

    def replace(m: re.Match[str]) -> str:
        if m.group(0) == "$${":
            return "${"
        ref = _VARIABLE.fullmatch(m.group(1)) if m.group(2) else None
        if ref is None:
            problems.append(f"bad variable reference ({_REFERENCE_HELP})")
            return ""
        name, default = ref.groups()
        value = env.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                problems.append(f"environment variable {name} is not set (give a default: ${{{name}:-…}})")
                return ""
            return default
        return value

    return _REFERENCE.sub(replace, text), problems


# --- value parsers: (ctx, value, path) -> parsed value, or _BAD after reporting ------------------------------------

_Parse = Callable[[_Ctx, _Val, str], Any]


def _kind(data: Any) -> str:
    """How a message names the type of a YAML value."""
    if isinstance(data, bool):
        return "true/false"
    names = ((int, "an integer"), (float, "a number"), (str, "a string"), (list, "a list"),
             (dict, "a mapping"), (date, "a date"), (bytes, "binary data"), (type(None), "nothing"))
    return next((name for typ, name in names if isinstance(data, typ)), "a value")


def _shown(v: _Val) -> str:
    """A scalar as written in the file (so an interpolated, maybe secret, value is never shown)."""
    return repr(v.source)


def _hint(word: str, options: Iterable[str]) -> str:
    """` (did you mean 'x'?)` for a near miss, else the list of options when it is short."""
    options = list(options)
    close = difflib.get_close_matches(word, options, n=1)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (one of: {', '.join(options)})" if len(options) <= 12 else ""


def _string(ctx: _Ctx, v: _Val, path: str) -> Any:
    """Any non-empty scalar, as its text."""
    if v.data is _BAD:
        return _BAD
    if isinstance(v.data, (list, dict)):
        return ctx.issue(v.line, path, f"expected a string, got {_kind(v.data)}")
    if v.text == "":
        return ctx.issue(v.line, path, "must not be empty")
    return v.text


def _text(ctx: _Ctx, v: _Val, path: str) -> Any:
    """Any scalar as its text, empty allowed."""
    if v.data is _BAD:
        return _BAD
    if isinstance(v.data, (list, dict)):
        return ctx.issue(v.line, path, f"expected a string, got {_kind(v.data)}")
    return v.text


def _secret(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A non-empty secret string (messages never show it)."""
    value = _string(ctx, v, path)
    return _BAD if value is _BAD else Secret(value)


def _typed(typ: type, expected: str) -> _Parse:
    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        if v.data is _BAD:
            return _BAD
        if isinstance(v.data, bool) != (typ is bool) or not isinstance(v.data, typ):
            return ctx.issue(v.line, path, f"expected {expected}, got {_kind(v.data)}")
        return v.data

    return parse


_bool = _typed(bool, "true or false")
_int = _typed(int, "an integer")


def _int_in(low: int, high: int | None, message: str) -> _Parse:
    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        value = _int(ctx, v, path)
        if value is _BAD:
            return _BAD
        if value < low or (high is not None and value > high):
            return ctx.issue(v.line, path, message)
        return value

    return parse


_positive_int = _int_in(1, None, "must be 1 or more")
_id = _int_in(1, None, "must be a positive id")
_sim = _int_in(0, 1, "must be 0 or 1 (the SIM slot)")


def _fraction(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A number from 0 to 1."""
    if v.data is _BAD:
        return _BAD
    if isinstance(v.data, bool) or not isinstance(v.data, (int, float)):
        return ctx.issue(v.line, path, f"expected a number from 0 to 1, got {_kind(v.data)}")
    if not 0 <= v.data <= 1:
        return ctx.issue(v.line, path, "must be from 0 to 1")
    return float(v.data)


def _choice(options: Iterable[str], what: str) -> _Parse:
    options = tuple(options)

    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        value = _string(ctx, v, path)
        if value is _BAD or value in options:
            return value
        return ctx.issue(v.line, path, f"unknown {what} {_shown(v)}{_hint(value, options)}")

    return parse


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER_UNIT = r"(\d+(?:\.\d+)?)(ms|s|m|h|d)"
_DURATION = re.compile(_NUMBER_UNIT)
_RATE = re.compile(rf"(\d+)/(?:{_NUMBER_UNIT}|(ms|s|m|h|d))")
_DURATION_HELP = "use 500ms, 15s, 5m, 2h, 1d"


def _seconds(number: str | None, unit: str) -> float:
    return float(number or 1) * _UNITS[unit]


def _duration(ctx: _Ctx, v: _Val, path: str) -> Any:
    """`500ms`, `15s`, `5m`, `2h`, `1d` or a bare 0, in seconds."""
    if v.data is _BAD:
        return _BAD
    if isinstance(v.data, (list, dict)):
        return ctx.issue(v.line, path, f"expected a duration ({_DURATION_HELP}), got {_kind(v.data)}")
    if not isinstance(v.data, bool) and isinstance(v.data, (int, float)) and v.data == 0:
        return 0.0
    m = _DURATION.fullmatch(v.text)
    if m is None:
        return ctx.issue(v.line, path, f"bad duration {_shown(v)} ({_DURATION_HELP})")
    return _seconds(*m.groups())


def _positive_duration(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A duration longer than zero."""
    value = _duration(ctx, v, path)
    if value == 0:
        return ctx.issue(v.line, path, "must be longer than 0")
    return value


def _rate(ctx: _Ctx, v: _Val, path: str) -> Any:
    """`COUNT/DURATION` such as `20/5m` or `50/1s`."""
    if v.data is _BAD:
        return _BAD
    if isinstance(v.data, (list, dict)):
        return ctx.issue(v.line, path, f"expected a rate such as 20/5m, got {_kind(v.data)}")
    m = _RATE.fullmatch(v.text)
    if m is None:
        return ctx.issue(v.line, path, f"bad rate {_shown(v)} (use COUNT/DURATION, e.g. 20/5m or 50/1s)")
    count, number, unit, bare_unit = m.groups()
    per = _seconds(number, unit or bare_unit)
    if len(count) > 18:  # also keeps int() below Python's limit on digits
        return ctx.issue(v.line, path, f"bad rate {_shown(v)}: the count is too large")
    if int(count) == 0 or per == 0:
        return ctx.issue(v.line, path, f"bad rate {_shown(v)}: count and duration must be more than 0")
    return Rate(int(count), per)


def _http_url(ctx: _Ctx, v: _Val, path: str) -> Any:
    """An absolute http(s) URL (not shown in messages: webhook URLs often embed a token)."""
    value = _string(ctx, v, path)
    if value is _BAD:
        return _BAD
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed `[` of an IPv6 host
        return ctx.issue(v.line, path, "must be an http:// or https:// URL with a host")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ctx.issue(v.line, path, "must be an http:// or https:// URL with a host")
    return value


def _email(ctx: _Ctx, v: _Val, path: str) -> Any:
    """An account email address."""
    value = _string(ctx, v, path)
    if value is not _BAD and "@" not in value:
        return ctx.issue(v.line, path, "must be an email address")
    return value


def _zone(ctx: _Ctx, v: _Val, path: str) -> Any:
    """An IANA time zone name."""
    name = _string(ctx, v, path)
    if name is _BAD:
        return _BAD
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        hint = _hint(name, sorted(available_timezones())) or " (an IANA name such as Europe/Paris)"
        return ctx.issue(v.line, path, f"unknown time zone {_shown(v)}{hint}")
    return name


def _region(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A two-letter region code that phone numbers can be read in (DE, FR, US, …)."""
    name = _string(ctx, v, path)
    if name is _BAD:
        return _BAD
    if name.upper() not in phonenumbers.SUPPORTED_REGIONS:
        return ctx.issue(v.line, path, f"unknown region {_shown(v)} (a two-letter code such as DE or FR)")
    return name.upper()


_LISTEN = re.compile(r"(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\s\[\]]+)):(?P<port>\d{1,5})")


def _listen(ctx: _Ctx, v: _Val, path: str) -> Any:
    """`HOST:PORT` (`[::1]:8080` for IPv6), as (host, port)."""
    value = _string(ctx, v, path)
    if value is _BAD:
        return _BAD
    m = _LISTEN.fullmatch(value)
    if m is None or int(m["port"]) > 65535:
        return ctx.issue(v.line, path, f"bad listen address {_shown(v)} (use HOST:PORT, e.g. 127.0.0.1:8080)")
    return (m["v6"] or m["host"], int(m["port"]))


def _regex(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A Python regular expression that compiles."""
    value = _string(ctx, v, path)
    if value is _BAD:
        return _BAD
    try:
        re.compile(value)
    except (re.error, OverflowError, RecursionError) as exc:  # a huge repeat count, or nesting too deep
        return ctx.issue(v.line, path, f"bad regex: {exc}")
    return value


def _template_seeing(names: tuple[str, ...], what: str) -> _Parse:
    """A parser of Jinja templates (inline source, or a `.j2` file name) that may use `names` and no others."""

    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        value = _string(ctx, v, path)
        if value is _BAD or ctx.engine is None:
            return value
        try:
            unknown = ctx.engine.undefined_names(value, names)
        except TemplateError as exc:
            return ctx.issue(v.line, path, f"bad template: {exc}")
        if unknown:
            listed = ", ".join(f"{name!r}{_hint(name, names) if difflib.get_close_matches(name, names) else ''}"
                               for name in unknown)
            return ctx.issue(v.line, path, f"bad template: undefined name {listed}; {what} sees "
                                           f"{', '.join(names)}")
        return value

    return parse


_template = _template_seeing(RULE_NAMES, "a rule's template")
_payload_template = _template_seeing(PAYLOAD_NAMES, "an inbound template")


_HHMM = r"(?:[01]\d|2[0-3]):[0-5]\d"
_BETWEEN = re.compile(rf"{_HHMM}-{_HHMM}")


def _between(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A daily time window `HH:MM-HH:MM` (it may cross midnight)."""
    value = _string(ctx, v, path)
    if value is _BAD:
        return _BAD
    if not _BETWEEN.fullmatch(value):
        return ctx.issue(v.line, path, f"bad time window {_shown(v)} (use HH:MM-HH:MM, e.g. 09:00-17:00)")
    start, end = value.split("-")
    if start == end:
        return ctx.issue(v.line, path, f"empty time window {_shown(v)} (leave `between` out for all day)")
    return value


def _keyword(ctx: _Ctx, v: _Val, path: str) -> Any:
    """One word, matched against the first word of a message."""
    value = _string(ctx, v, path)
    if value is not _BAD and (len(value.split()) != 1 or not any(c.isalnum() for c in value)):
        return ctx.issue(v.line, path, f"a keyword is a single word, got {_shown(v)}")
    return value


WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _days(ctx: _Ctx, v: _Val, path: str) -> Any:
    """Weekdays as names or ranges (`mon-fri`), in week order."""
    items = _day_groups(ctx, v, path)
    if items is _BAD:
        return _BAD
    wanted = {day for group in items for day in group}
    return tuple(day for day in WEEKDAYS if day in wanted)


def _choice_or_range(ctx: _Ctx, v: _Val, path: str) -> Any:
    """One weekday (`mon`) or a range (`fri-mon` wraps past Sunday), as a tuple of days."""
    value = _string(ctx, v, path)
    if value is _BAD:
        return _BAD
    first, _, last = value.lower().partition("-")
    if first in WEEKDAYS and (not last or last in WEEKDAYS):
        start, end = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        return WEEKDAYS[start : end + 1] if start <= end else WEEKDAYS[start:] + WEEKDAYS[: end + 1]
    return ctx.issue(v.line, path, f"unknown day {_shown(v)} (use mon … sun, or a range such as mon-fri)")


def _one_or_list(item: _Parse, empty: str | None) -> _Parse:
    """A single item or a list of them, as a tuple; `empty` is the error for an empty list (None: allowed)."""

    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        if v.data is _BAD:
            return _BAD
        if not isinstance(v.data, list):
            one = item(ctx, v, path)
            return _BAD if one is _BAD else (one,)
        if not v.data and empty is not None:
            return ctx.issue(v.line, path, empty)
        values = [item(ctx, child, f"{path}[{i}]") for i, child in enumerate(v.data)]
        return _BAD if _BAD in values else tuple(values)

    return parse


def _list_of(item: _Parse, empty: str | None) -> _Parse:
    """A list (never a single item) of `item`, as a tuple."""
    one_or_list = _one_or_list(item, empty)

    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        if v.data is not _BAD and not isinstance(v.data, list):
            return ctx.issue(v.line, path, f"expected a list, got {_kind(v.data)}")
        return one_or_list(ctx, v, path)

    return parse


_day_groups = _one_or_list(_choice_or_range, "an empty list matches no day")


# --- records: mappings with a fixed set of keys ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Field:
    """How to read one key of a record."""

    parse: _Parse
    attr: str | None = None  # the dataclass attribute, when it differs from the key
    required: bool = False


def _record(ctx: _Ctx, v: _Val, path: str, fields: Mapping[str, _Field], shape: str = "a mapping"
            ) -> dict[str, Any] | None:
    """The record's parsed values by attribute (null counts as absent); None if unusable or a required key is bad."""
    if v.data is _BAD:
        return None
    if not isinstance(v.data, dict):
        ctx.issue(v.line, path, f"expected {shape}, got {_kind(v.data)}")
        return None
    for key, child in v.data.items():
        if key not in fields:
            ctx.issue(child.line, _join(path, key), f"unknown key{_hint(key, fields)}")
    out: dict[str, Any] = {}
    complete = True
    for key, spec in fields.items():
        child = v.data.get(key)
        if child is None or child.data is None:
            if spec.required:
                complete = False
                where, message = (child.line, "needs a value") if child else (v.line, f"missing key '{key}'")
                ctx.issue(where, _join(path, key) if child else path, message)
            continue
        value = out[spec.attr or key] = spec.parse(ctx, child, _join(path, key))
        complete = complete and not (spec.required and value is _BAD)
    return out if complete else None


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    """An instance from parsed values, leaving invalid ones (already reported) at their defaults."""
    return cls(**{k: value for k, value in values.items() if value is not _BAD})


def _key_line(v: _Val | None, key: str, default: int) -> int:
    """The line of `key` in mapping `v`, or `default`."""
    child = v.data.get(key) if v is not None and isinstance(v.data, dict) else None
    return child.line if child is not None else default


# --- sections ----------------------------------------------------------------------------------------------------

_SECTIONS = ("gateway", "poll", "storage", "server", "webhooks", "inbound", "safety", "rules", "pool",
             "templates_dir")


def _config(ctx: _Ctx, root: _Val, source: Path) -> Config | None:
    """The Config of a top-level mapping; None when something was reported."""
    for key, child in root.data.items():
        if key not in _SECTIONS:
            ctx.issue(child.line, key, f"unknown section{_hint(key, _SECTIONS)}")
    section: dict[str, _Val] = {k: v for k, v in root.data.items() if k in _SECTIONS and v.data is not None}
    templates_dir = _templates_dir(ctx, section.get("templates_dir"))
    try:
        ctx.engine = TemplateEngine(templates_dir)
    except OSError as exc:  # e.g. a name too long for the filesystem
        ctx.issue(_key_line(root, "templates_dir", root.line), "templates_dir",
                  f"cannot use this directory: {exc.strerror or exc}")
        ctx.engine = TemplateEngine(None)
    webhooks = _named(ctx, section.get("webhooks"), "webhooks", _webhook)
    ctx.webhook_names = frozenset(webhooks)
    config = Config(
        gateway=_gateway(ctx, section.get("gateway"), root.line),
        poll=_simple(ctx, section.get("poll"), "poll", _POLL, PollConfig),
        storage=_storage(ctx, section.get("storage")),
        server=_server(ctx, section.get("server"), root.line),
        webhooks=MappingProxyType(_present(webhooks)),
        inbound=MappingProxyType(_present(_named(ctx, section.get("inbound"), "inbound", _inbound))),
        safety=_safety(ctx, section.get("safety")),
        rules=_rules(ctx, section.get("rules")),
        pool=_pool(ctx, section.get("pool")),
        templates_dir=templates_dir,
        source=source,
    )
    return None if ctx.issues else config


def _present(values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries that parsed (the others were reported)."""
    return {k: value for k, value in values.items() if value is not _BAD}


def _simple(ctx: _Ctx, v: _Val | None, path: str, fields: Mapping[str, _Field], cls: type) -> Any:
    """A section that is just a record of its dataclass."""
    values = _record(ctx, v, path, fields) if v is not None else {}
    return _build(cls, values or {})


def _templates_dir(ctx: _Ctx, v: _Val | None) -> Path:
    """Where `.j2` names are looked up: `templates_dir`, relative to the config file (default `templates`)."""
    value = _string(ctx, v, "templates_dir") if v is not None else "templates"
    return ctx.base_dir / Path("templates" if value is _BAD else value).expanduser()


_SIMULATOR = {
    "inbound_every": _Field(_duration),
    "pace": _Field(_duration),
    "failure_rate": _Field(_fraction),
    "listen": _Field(_listen),
}


def _simulator(ctx: _Ctx, v: _Val, path: str) -> Any:
    """`simulator: true` (defaults), `false`, or a mapping of SimulatorConfig keys."""
    if isinstance(v.data, bool):
        return SimulatorConfig() if v.data else None
    values = _record(ctx, v, path, _SIMULATOR, shape="true or a mapping")
    if values is None:
        return _BAD
    if values.get("inbound_every") == 0:
        values["inbound_every"] = None
    listen = values.pop("listen", None)
    if isinstance(listen, tuple):
        values["host"], values["port"] = listen
    return _build(SimulatorConfig, values)


_GATEWAY = {
    "url": _Field(_http_url),
    "email": _Field(_email),
    "password": _Field(_secret),
    "token": _Field(_secret),
    "device_id": _Field(_id),
    "sim": _Field(_sim),
    "timezone": _Field(_zone),
    "default_region": _Field(_region),
    "webhook_secret": _Field(_secret),
    "simulator": _Field(_simulator),
    "timeout": _Field(_positive_duration),
    "max_per_minute": _Field(_positive_int),
}


def _gateway(ctx: _Ctx, v: _Val | None, top_line: int) -> GatewayConfig:
    values = _record(ctx, v, "gateway", _GATEWAY) if v is not None else {}
    if values is None:
        return GatewayConfig()
    _check_credentials(ctx, values, v.line if v is not None else top_line)
    return _build(GatewayConfig, values)


def _check_credentials(ctx: _Ctx, values: Mapping[str, Any], line: int) -> None:
    """email + password, or token, or simulator (a value reported as invalid still counts as given)."""
    given = {key for key in ("email", "password", "token", "simulator") if values.get(key) is not None}
    if given & {"token", "simulator"} or {"email", "password"} <= given:
        return
    if "email" in given:
        ctx.issue(line, "gateway.password", "required with gateway.email")
    elif "password" in given:
        ctx.issue(line, "gateway.email", "required with gateway.password")
    else:
        ctx.issue(line, "gateway", "no credentials: set email and password, or token, or simulator: true")


_POLL = {
    "interval": _Field(_positive_duration),
    "lookback": _Field(_duration),
    "overlap": _Field(_duration),
    "backfill": _Field(_duration),
    "devices_interval": _Field(_positive_duration),
    "device_offline_after": _Field(_positive_duration),
    "stuck_after": _Field(_positive_duration),
    "unhealthy_after": _Field(_positive_duration),
}


def _postgres_url(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A libpq-style PostgreSQL URL (it may hold a password: messages never show it)."""
    value = _secret(ctx, v, path)
    if value is not _BAD and not value.reveal().startswith(("postgresql://", "postgres://")):
        return ctx.issue(v.line, path, "expected a PostgreSQL URL: postgresql://USER:PASSWORD@HOST:PORT/DATABASE")
    return value


_STORAGE = {
    "path": _Field(_string),
    "synchronous": _Field(_choice(("normal", "full"), "synchronous level")),
    "url": _Field(_postgres_url),
    "lease": _Field(_positive_duration),
}


def _storage(ctx: _Ctx, v: _Val | None) -> StorageConfig:
    values = (_record(ctx, v, "storage", _STORAGE) if v is not None else {}) or {}
    path = values.get("path")
    if path is not None and values.get("url") is not None:
        ctx.issue(_key_line(v, "url", 1), "storage.url",
                  "storage.path is set too: give path (SQLite) or url (PostgreSQL), not both")
        values.pop("url")
    values["path"] = ctx.base_dir / Path("bridge.db" if path in (None, _BAD) else path).expanduser()
    return _build(StorageConfig, values)


_SERVER = {
    "enabled": _Field(_bool),
    "listen": _Field(_listen),
    "api_keys": _Field(_list_of(_secret, None)),
    "rate_limit": _Field(_rate),
    "max_body_chars": _Field(_positive_int),
    "max_request_bytes": _Field(_positive_int),
    "read_timeout": _Field(_positive_duration),
    "dashboard": _Field(_bool),
    "public_url": _Field(_http_url),
}


def _server(ctx: _Ctx, v: _Val | None, top_line: int) -> ServerConfig:
    values = _record(ctx, v, "server", _SERVER) if v is not None else {}
    if values is None:
        return ServerConfig()
    listen = values.pop("listen", None)
    if isinstance(listen, tuple):
        values["host"], values["port"] = listen
    if values.get("enabled", True) is not False and values.get("api_keys") in (None, ()):
        line = _key_line(v, "api_keys", v.line if v is not None else top_line)
        ctx.issue(line, "server.api_keys", "needs at least one key while the server is enabled "
                                           "(or set server.enabled: false)")
    return _build(ServerConfig, values)


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _named(ctx: _Ctx, v: _Val | None, path: str, entry: Callable[[_Ctx, _Val, str, str], Any]) -> dict[str, Any]:
    """A mapping of named entries (`webhooks`, `inbound`), each parsed by `entry`."""
    if v is None:
        return {}
    if not isinstance(v.data, dict):
        if v.data is not _BAD:
            ctx.issue(v.line, path, f"expected a mapping of names to settings, got {_kind(v.data)}")
        return {}
    out = {}
    for name, child in v.data.items():
        if not _NAME.fullmatch(name):
            ctx.issue(child.line, _join(path, name), "a name uses only letters, digits, '_', '.' and '-'")
        out[name] = entry(ctx, child, _join(path, name), name)
    return out


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _headers(ctx: _Ctx, v: _Val, path: str) -> Any:
    """Extra request headers; values are not shown in messages (they often carry credentials)."""
    if not isinstance(v.data, dict):
        return _BAD if v.data is _BAD else ctx.issue(v.line, path, f"expected a mapping, got {_kind(v.data)}")
    out: dict[str, str] = {}
    for name, child in v.data.items():
        value = _text(ctx, child, _join(path, name))
        if not _TOKEN.fullmatch(name):
            value = ctx.issue(child.line, _join(path, name), "not a valid header name")
        elif value is not _BAD and ("\r" in value or "\n" in value):
            value = ctx.issue(child.line, _join(path, name), "a header value must be on one line")
        out[name] = value
    return _BAD if _BAD in out.values() else MappingProxyType(out)


def _webhook_secret(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A Standard Webhooks secret: `whsec_` + base64 (or bare base64)."""
    secret = _secret(ctx, v, path)
    if secret is _BAD:
        return _BAD
    try:
        key = base64.b64decode(secret.reveal().removeprefix("whsec_"), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if not key:
        return ctx.issue(v.line, path, "must be whsec_ followed by base64, as Standard Webhooks defines")
    return secret


_WEBHOOK = {
    "url": _Field(_http_url, required=True),
    "template": _Field(_template),
    "headers": _Field(_headers),
    "secret": _Field(_webhook_secret),
    "timeout": _Field(_positive_duration),
    "retry": _Field(_list_of(_duration, "needs at least one delay")),
    "concurrency": _Field(_positive_int),
}


def _webhook(ctx: _Ctx, v: _Val, path: str, name: str) -> Any:
    values = _record(ctx, v, path, _WEBHOOK)
    return _BAD if values is None else _build(WebhookConfig, {"name": name, **values})


_PRESETS = ("alertmanager", "grafana", "generic")
_INBOUND = {
    "to": _Field(_one_or_list(_string, "needs at least one number"), required=True),
    "template": _Field(_payload_template),
    "preset": _Field(_choice(_PRESETS, "preset")),
    "device_id": _Field(_id),
    "sim": _Field(_sim),
}


def _inbound(ctx: _Ctx, v: _Val, path: str, name: str) -> Any:
    values = _record(ctx, v, path, _INBOUND)
    if values is None:
        return _BAD
    values.setdefault("preset", name if name in _PRESETS else "generic")
    return _build(InboundConfig, {"name": name, **values})


_SAFETY = {
    "opt_out_keywords": _Field(_one_or_list(_keyword, None)),
    "opt_in_keywords": _Field(_one_or_list(_keyword, None)),
    "reply_cooldown": _Field(_duration),
    "loop_limit": _Field(_rate),
}


def _safety(ctx: _Ctx, v: _Val | None) -> SafetyConfig:
    safety = _simple(ctx, v, "safety", _SAFETY, SafetyConfig)
    both = {k.upper() for k in safety.opt_out_keywords} & {k.upper() for k in safety.opt_in_keywords}
    if both:
        line = _key_line(v, "opt_in_keywords", v.line if v is not None else 1)
        ctx.issue(line, "safety.opt_in_keywords", f"also listed in opt_out_keywords: {', '.join(sorted(both))}")
    return safety


# --- pool --------------------------------------------------------------------------------------------------------

_MEMBER = {
    "device_id": _Field(_id, required=True),
    "sim": _Field(_sim),
    "daily_limit": _Field(_positive_int),
    "monthly_recipients": _Field(_positive_int),
}


def _member(ctx: _Ctx, v: _Val, path: str) -> Any:
    values = _record(ctx, v, path, _MEMBER)
    return _BAD if values is None else _build(Member, values)


_POOL = {
    "strategy": _Field(_choice(tuple(Strategy), "strategy")),
    "failover": _Field(_bool),
    "members": _Field(_list_of(_member, "a pool needs at least one member"), required=True),
}


def _pool(ctx: _Ctx, v: _Val | None) -> PoolConfig | None:
    """The `pool` section, or None without one; a member listed twice (same device_id and sim) is an error."""
    if v is None:
        return None
    values = _record(ctx, v, "pool", _POOL)
    if values is None or values.get("members") in (None, _BAD):
        return None
    seen: set[tuple[int, int]] = set()
    for i, member in enumerate(values["members"]):
        if member.key in seen:
            line = v.data["members"].data[i].line
            ctx.issue(line, f"pool.members[{i}]", f"device {member.device_id} SIM {member.sim} is listed twice")
        seen.add(member.key)
    if "strategy" in values and values["strategy"] is not _BAD:
        values["strategy"] = Strategy(values["strategy"])
    return _build(PoolConfig, values)


# --- rules -------------------------------------------------------------------------------------------------------


def _match(ctx: _Ctx, v: _Val, path: str) -> Any:
    """A rule's conditions (also used for `not`)."""
    values = _record(ctx, v, path, _MATCH)
    return _BAD if values is None else _build(MatchConfig, values)


_MATCH = {
    "event": _Field(_one_or_list(_choice(RULE_EVENT_NAMES, "event"), "an empty list matches nothing")),
    "keyword": _Field(_one_or_list(_keyword, "an empty list matches nothing")),
    "body_regex": _Field(_regex),
    "from": _Field(_one_or_list(_string, "an empty list matches nothing"), attr="from_"),
    "to": _Field(_one_or_list(_string, "an empty list matches nothing")),
    "device_id": _Field(_one_or_list(_id, "an empty list matches nothing")),
    "sim": _Field(_sim),
    "status": _Field(_one_or_list(_choice(STATUS_NAMES, "status"), "an empty list matches nothing")),
    "between": _Field(_between),
    "days": _Field(_days),
    "timezone": _Field(_zone),
    "not": _Field(_match, attr="not_"),
}


def _webhook_name(ctx: _Ctx, v: _Val, path: str) -> Any:
    """The name of a target under `webhooks:`."""
    name = _string(ctx, v, path)
    if name is _BAD or name in ctx.webhook_names:
        return name
    known = sorted(ctx.webhook_names)
    hint = _hint(name, known) if known else " (no webhooks are defined)"
    return ctx.issue(v.line, path, f"unknown webhook {_shown(v)}{hint}")


_SEND_OPTIONS = {
    "device_id": _Field(_id),
    "sim": _Field(_sim),
    "allow_alphanumeric": _Field(_bool),
    "allow_own_numbers": _Field(_bool),
}
_REPLY = {"text": _Field(_template, required=True), **_SEND_OPTIONS}
_SEND = {
    "to": _Field(_one_or_list(_template, "needs at least one number"), required=True),
    "text": _Field(_template, required=True),
    **_SEND_OPTIONS,
}
_WEBHOOK_ACTION = {"target": _Field(_webhook_name, attr="webhook", required=True), "template": _Field(_template)}
_TAG = {"tag_id": _Field(_id, required=True), "name": _Field(_template, attr="name_template")}


def _action_of(kind: ActionKind, fields: Mapping[str, _Field], short: tuple[str, _Parse] | None) -> _Parse:
    """A parser for one action kind: its record form, or the one-value short form `short` = (attr, parser)."""

    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        if short is not None and not isinstance(v.data, dict):
            attr, parse_short = short
            value = parse_short(ctx, v, path)
            return _BAD if value is _BAD else ActionConfig(kind, **{attr: value})
        values = _record(ctx, v, path, fields)
        return _BAD if values is None else _build(ActionConfig, {"kind": kind, **values})

    return parse


def _flag_action(kind: ActionKind) -> _Parse:
    def parse(ctx: _Ctx, v: _Val, path: str) -> Any:
        if v.data is not True:
            return _BAD if v.data is _BAD else ctx.issue(v.line, path, f"write `{kind}: true`")
        return ActionConfig(kind)

    return parse


_ACTIONS: dict[str, _Parse] = {
    ActionKind.REPLY: _action_of(ActionKind.REPLY, _REPLY, ("text", _template)),
    ActionKind.SEND: _action_of(ActionKind.SEND, _SEND, None),
    ActionKind.WEBHOOK: _action_of(ActionKind.WEBHOOK, _WEBHOOK_ACTION, ("webhook", _webhook_name)),
    ActionKind.TAG: _action_of(ActionKind.TAG, _TAG, ("tag_id", _id)),
    ActionKind.OPT_OUT: _flag_action(ActionKind.OPT_OUT),
    ActionKind.OPT_IN: _flag_action(ActionKind.OPT_IN),
}
_ACTION_SHAPE = f"an action ({', '.join(_ACTIONS)})"


def _action(ctx: _Ctx, v: _Val, path: str) -> Any:
    """One list item of `actions`: a mapping with exactly one action key."""
    if not isinstance(v.data, dict):
        return _BAD if v.data is _BAD else ctx.issue(v.line, path, f"expected {_ACTION_SHAPE}, got {_kind(v.data)}")
    for key, child in v.data.items():
        if key not in _ACTIONS:
            ctx.issue(child.line, _join(path, key), f"unknown action{_hint(key, _ACTIONS)}")
    kinds = [key for key in v.data if key in _ACTIONS]
    if len(kinds) > 1:
        return ctx.issue(v.line, path, f"one action per list item, got {' and '.join(kinds)}")
    if not kinds:
        return ctx.issue(v.line, path, f"expected {_ACTION_SHAPE}") if not v.data else _BAD
    kind = kinds[0]
    return _ACTIONS[kind](ctx, v.data[kind], _join(path, kind))


_RULE = {
    "name": _Field(_string, required=True),
    "match": _Field(_match),
    "actions": _Field(_list_of(_action, None)),
    "stop": _Field(_bool),
    "default": _Field(_bool),
}


def _rule(ctx: _Ctx, v: _Val, path: str) -> Any:
    values = _record(ctx, v, path, _RULE)
    if values is None:
        return _BAD
    rule = _build(RuleConfig, values)
    if rule.default and rule.match.event not in (None, ("inbound",)):
        ctx.issue(_key_line(v, "default", v.line), f"{path}.default",
                  "a default rule answers inbound SMS no other rule matched; its match.event must be inbound")
    return rule


def _rules(ctx: _Ctx, v: _Val | None) -> tuple[RuleConfig, ...]:
    """The rule list, each name unique."""
    if v is None or v.data is _BAD:
        return ()
    if not isinstance(v.data, list):
        ctx.issue(v.line, "rules", f"expected a list of rules, got {_kind(v.data)}")
        return ()
    rules: list[RuleConfig] = []
    first_line: dict[str, int] = {}
    for i, item in enumerate(v.data):
        rule = _rule(ctx, item, f"rules[{i}]")
        if rule is _BAD:
            continue
        line = _key_line(item, "name", item.line)
        if rule.name in first_line:
            ctx.issue(line, f"rules[{i}].name", f"duplicate rule name (first at line {first_line[rule.name]})")
        first_line.setdefault(rule.name, line)
        rules.append(rule)
    return tuple(rules)
