"""Rule matching: an event -> the actions the configured rules plan for it. Pure: no I/O, no state.

Semantics (rules.yaml `rules:`):
- Rules are tried in order; every matching rule's actions are planned, until a matching rule with
  `stop: true` (its own actions included). Rules with `default: true` are tried, in order, only for an
  inbound SMS that no other rule matched.
- All conditions of a `match` must hold; an absent condition holds. `not:` holds when its inner match fails.
  `keyword` is the first word, case- and accent-folded, punctuation around it ignored (bridge.safety.keyword_of).
  `from` / `to` compare without spaces, dashes, dots, slashes, parentheses or case; `*`, `?` and `[…]` make a glob.
  `between` (start included, end excluded) and `days` test the routing time (`now`) in the rule's `timezone`
  (default: the gateway's); `days` is the local date of that time, also inside a window crossing midnight.
- reply, tag, opt_out and opt_in act on the sender of an inbound SMS: on other events they plan nothing.
- A reply or send whose text renders empty (e.g. `{% if … %}` that is false) plans nothing: a way to
  reply conditionally. A text that fails to render plans a `Failed` in its place; other actions and rules
  still run. Templates see `now` in the gateway's zone.
Safety that needs state (opt-out list, cooldown, loop guard, own numbers) is the caller's (bridge.safety).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.config import ActionConfig, ActionKind, Config, MatchConfig, RuleConfig
from bridge.events import RULE_EVENT_NAMES, Event, EventType
from bridge.gateway.models import STATUS_NAMES
from bridge.numbers import normalize_number
from bridge.safety import keyword_of
from bridge.templating import CompiledTemplate, TemplateEngine, TemplateError, template_context

DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = r"([01]\d|2[0-3]):([0-5]\d)"
_BETWEEN = re.compile(f"{_HHMM}-{_HHMM}")
_NO_GROUPS: Mapping[str, str] = MappingProxyType({})


class RuleError(ValueError):
    """A rule cannot be compiled: fix the configuration at `path` (e.g. `rules[1].match.between`)."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


# --- planned actions ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendSms:
    """Send `text` to `to`; device_id/sim None means the gateway's default. Safety checks are the caller's."""

    to: str
    text: str
    device_id: int | None
    sim: int | None
    rule: str
    is_reply: bool
    allow_alphanumeric: bool = False
    allow_own_numbers: bool = False


@dataclass(frozen=True, slots=True)
class Deliver:
    """POST the event to the webhook target `webhook`; `template` overrides the target's own (None: keep it).

    Delivery renders the body at send time with `template_context(event, rule, match, now)`.
    """

    webhook: str
    rule: str
    template: str | None
    match: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AddTag:
    """Save `phone` as a contact named `name` under the upstream tag `tag_id`."""

    tag_id: int
    phone: str
    name: str
    rule: str


@dataclass(frozen=True, slots=True)
class OptOut:
    """Put `number` on the opt-out list."""

    number: str
    rule: str


@dataclass(frozen=True, slots=True)
class OptIn:
    """Take `number` off the opt-out list."""

    number: str
    rule: str


@dataclass(frozen=True, slots=True)
class Failed:
    """Action `action_index` of `rule` could not be planned (its template failed): log it, run the rest."""

    rule: str
    action_index: int
    message: str


PlannedAction = SendSms | Deliver | AddTag | OptOut | OptIn | Failed


@dataclass(frozen=True, slots=True)
class RuleMatch:
    """One rule that matched an event, the named groups of its `body_regex` and what it plans."""

    rule: str
    match: Mapping[str, str]
    actions: tuple[PlannedAction, ...]
    default: bool


# --- the facts conditions test -----------------------------------------------------------------


class _Facts:
    """What the conditions look at, computed once per event."""

    __slots__ = ("event_name", "body", "keyword", "sender", "recipient", "device_id", "sim", "status",
                 "_now", "_clocks")

    def __init__(self, event: Event, now: datetime) -> None:
        sms, device = event.sms, event.device
        self.event_name = event.type.rule_name
        self.body = sms.body if sms is not None else None
        self.keyword = keyword_of(sms.body) if sms is not None else ""
        self.sender = normalize_number(sms.sender) if sms is not None and sms.sender else None
        self.recipient = normalize_number(sms.recipient) if sms is not None and sms.recipient else None
        self.device_id = sms.device_id if sms is not None else device.id if device is not None else None
        self.sim = sms.sim if sms is not None else None
        self.status = sms.status.label if sms is not None else None
        self._now = now
        self._clocks: dict[ZoneInfo, tuple[int, int]] = {}

    def clock(self, zone: ZoneInfo) -> tuple[int, int]:
        """(minute of the day, weekday 0=Monday) of the routing time in `zone`."""
        found = self._clocks.get(zone)
        if found is None:
            local = self._now.astimezone(zone)
            found = self._clocks[zone] = (local.hour * 60 + local.minute, local.weekday())
        return found


Predicate = Callable[[_Facts], bool]


@dataclass(frozen=True, slots=True)
class _Matcher:
    """A compiled `match`: cheap predicates first, then the body regex that yields the named groups."""

    predicates: tuple[Predicate, ...]
    regex: re.Pattern[str] | None
    keywords: frozenset[str] | None  # the `keyword` condition, by which the router indexes top-level matches

    def match(self, facts: _Facts) -> Mapping[str, str] | None:
        """The named groups when every condition holds, else None."""
        for predicate in self.predicates:
            if not predicate(facts):
                return None
        if self.regex is None:
            return _NO_GROUPS
        if facts.body is None:
            return None
        found = self.regex.search(facts.body)
        if found is None:
            return None
        return {name: value or "" for name, value in found.groupdict().items()}


# --- compiling conditions ----------------------------------------------------------------------


def _compile_match(match: MatchConfig, path: str, zone: ZoneInfo, *, indexed: bool = False) -> _Matcher:
    """Compile `match`; when `indexed` (a rule's top level), the router's index by event type and keyword
    already guarantees those two conditions, so they are not tested again."""
    if match.timezone is not None:
        zone = _zone(match.timezone, f"{path}.timezone")
    predicates: list[Predicate] = []
    events = _names(match.event, RULE_EVENT_NAMES, f"{path}.event") if match.event is not None else None
    if events is not None and not indexed:
        predicates.append(_in_set("event_name", events))
    if match.device_id is not None:
        predicates.append(_in_set("device_id", frozenset(match.device_id)))
    if match.sim is not None:
        sim = match.sim
        predicates.append(lambda f: f.sim == sim)
    if match.status is not None:
        predicates.append(_in_set("status", _names(match.status, STATUS_NAMES, f"{path}.status")))
    if match.from_ is not None:
        predicates.append(_number_predicate("sender", match.from_))
    if match.to is not None:
        predicates.append(_number_predicate("recipient", match.to))
    keywords = _keywords(match.keyword, f"{path}.keyword") if match.keyword is not None else None
    if keywords is not None and not indexed:
        predicates.append(_in_set("keyword", keywords))
    if match.days is not None:
        predicates.append(_days_predicate(match.days, zone, f"{path}.days"))
    if match.between is not None:
        predicates.append(_between_predicate(match.between, zone, f"{path}.between"))
    if match.not_ is not None:
        inner = _compile_match(match.not_, f"{path}.not", zone)
        predicates.append(lambda f: inner.match(f) is None)
    regex = _regex(match.body_regex, f"{path}.body_regex") if match.body_regex is not None else None
    return _Matcher(tuple(predicates), regex, keywords)


def _in_set(attribute: str, allowed: frozenset[Any]) -> Predicate:
    value_of = attrgetter(attribute)
    return lambda f: value_of(f) in allowed


def _names(given: tuple[str, ...], known: tuple[str, ...], path: str) -> frozenset[str]:
    unknown = [name for name in given if name not in known]
    if unknown:
        raise RuleError(path, f"unknown name {unknown[0]!r}; one of {', '.join(known)}")
    return frozenset(given)


def _keywords(given: tuple[str, ...], path: str) -> frozenset[str]:
    words = set()
    for keyword in given:
        if len(keyword.split()) != 1 or not keyword_of(keyword):
            raise RuleError(path, f"{keyword!r} is not one word")
        words.add(keyword_of(keyword))
    return frozenset(words)


def _number_predicate(attribute: str, patterns: tuple[str, ...]) -> Predicate:
    """Exact numbers, or globs (`+49157*`), compared without separators and case."""
    parts = []
    for pattern in patterns:
        normal = normalize_number(pattern)
        parts.append(fnmatch.translate(normal) if any(c in normal for c in "*?[") else re.escape(normal))
    fullmatch = re.compile("|".join(f"(?:{part})" for part in parts)).fullmatch
    number_of = attrgetter(attribute)

    def predicate(facts: _Facts) -> bool:
        number = number_of(facts)
        return number is not None and fullmatch(number) is not None

    return predicate


def _regex(source: str, path: str) -> re.Pattern[str]:
    try:
        return re.compile(source)
    except re.error as exc:
        raise RuleError(path, f"invalid regular expression: {exc}") from None


def _zone(name: str, path: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise RuleError(path, f"unknown time zone {name!r}") from None


def _days_predicate(days: tuple[str, ...], zone: ZoneInfo, path: str) -> Predicate:
    numbers = set()
    for day in days:
        name = day.strip().casefold()
        if name not in DAY_NAMES:
            raise RuleError(path, f"unknown day {day!r}; one of {', '.join(DAY_NAMES)}")
        numbers.add(DAY_NAMES.index(name))
    allowed = frozenset(numbers)
    return lambda f: f.clock(zone)[1] in allowed


def _between_predicate(window: str, zone: ZoneInfo, path: str) -> Predicate:
    """`HH:MM-HH:MM`, end excluded; a start after the end wraps past midnight ("22:00-06:00")."""
    found = _BETWEEN.fullmatch(window)
    if found is None:
        raise RuleError(path, f"{window!r} is not HH:MM-HH:MM")
    start, end = int(found[1]) * 60 + int(found[2]), int(found[3]) * 60 + int(found[4])
    if start == end:
        raise RuleError(path, f"{window!r} is an empty window; leave `between` out for all day")
    if start < end:
        return lambda f: start <= f.clock(zone)[0] < end
    return lambda f: f.clock(zone)[0] >= start or f.clock(zone)[0] < end


# --- compiling actions -------------------------------------------------------------------------


class _Scope:
    """One matched rule on one event: what its actions need to plan."""

    __slots__ = ("event", "rule", "match", "now", "_context")

    def __init__(self, event: Event, rule: str, match: Mapping[str, str], now: datetime) -> None:
        self.event, self.rule, self.match, self.now = event, rule, match, now
        self._context: dict[str, Any] | None = None

    @property
    def sender(self) -> str | None:
        """The sender of an inbound SMS; None for any other event."""
        sms = self.event.sms
        return sms.sender if self.event.type is EventType.RECEIVED and sms is not None else None

    def render(self, template: CompiledTemplate) -> str:
        """`template` rendered with the rule's context (built once per scope)."""
        if self._context is None:
            self._context = template_context(self.event, self.rule, self.match, self.now)
        return template.render(**self._context)


Planner = Callable[[_Scope], tuple[PlannedAction, ...]]


def _compile_action(action: ActionConfig, engine: TemplateEngine, path: str) -> Planner:
    kind = action.kind
    if kind is ActionKind.REPLY:
        return _reply_planner(action, _template(engine, action.text, f"{path}.text"))
    if kind is ActionKind.SEND:
        if not action.to:
            raise RuleError(f"{path}.to", "send needs at least one recipient")
        recipients = tuple(_template(engine, to, f"{path}.to[{i}]") for i, to in enumerate(action.to))
        return _send_planner(action, _template(engine, action.text, f"{path}.text"), recipients)
    if kind is ActionKind.WEBHOOK:
        return _webhook_planner(action, engine, path)
    if kind is ActionKind.TAG:
        return _tag_planner(action, engine, path)
    opt = OptOut if kind is ActionKind.OPT_OUT else OptIn
    return lambda s: (opt(s.sender, s.rule),) if s.sender else ()


def _template(engine: TemplateEngine, source: str | None, path: str) -> CompiledTemplate:
    if source is None:
        raise RuleError(path, "a text is required")
    try:
        return engine.compile(source)
    except TemplateError as exc:
        raise RuleError(path, str(exc)) from None


def _reply_planner(action: ActionConfig, text: CompiledTemplate) -> Planner:
    def plan(scope: _Scope) -> tuple[PlannedAction, ...]:
        sms = scope.event.sms
        if scope.sender is None or sms is None:
            return ()
        body = scope.render(text)
        if not body.strip():
            return ()
        return (SendSms(scope.sender, body, _pick(action.device_id, sms.device_id), _pick(action.sim, sms.sim),
                        scope.rule, True, action.allow_alphanumeric, action.allow_own_numbers),)

    return plan


def _send_planner(action: ActionConfig, text: CompiledTemplate, recipients: tuple[CompiledTemplate, ...]) -> Planner:
    def plan(scope: _Scope) -> tuple[PlannedAction, ...]:
        body = scope.render(text)
        if not body.strip():
            return ()
        numbers = [scope.render(to).strip() for to in recipients]
        if not all(numbers):
            raise TemplateError("a recipient rendered empty", template="to")
        return tuple(SendSms(number, body, action.device_id, action.sim, scope.rule, False,
                             action.allow_alphanumeric, action.allow_own_numbers) for number in numbers)

    return plan


def _webhook_planner(action: ActionConfig, engine: TemplateEngine, path: str) -> Planner:
    if not action.webhook:
        raise RuleError(f"{path}.webhook", "a webhook target name is required")
    if action.template is not None:
        _template(engine, action.template, f"{path}.template")
    target, template = action.webhook, action.template
    return lambda s: (Deliver(target, s.rule, template, dict(s.match)),)


def _tag_planner(action: ActionConfig, engine: TemplateEngine, path: str) -> Planner:
    if action.tag_id is None:
        raise RuleError(f"{path}.tag_id", "a tag id is required")
    tag_id = action.tag_id
    name = _template(engine, action.name_template, f"{path}.name") if action.name_template is not None else None

    def plan(scope: _Scope) -> tuple[PlannedAction, ...]:
        if scope.sender is None:
            return ()
        label = scope.render(name).strip() if name is not None else ""
        return (AddTag(tag_id, scope.sender, label or scope.sender, scope.rule),)

    return plan


def _pick(override: int | None, default: int | None) -> int | None:
    return default if override is None else override


# --- rules and the router ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rule:
    """A compiled rule: the event types it admits, its matcher and one planner per action."""

    name: str
    events: frozenset[EventType]
    matcher: _Matcher
    planners: tuple[Planner, ...]
    stop: bool
    default: bool

    def plan(self, event: Event, match: Mapping[str, str], now: datetime) -> list[PlannedAction]:
        """This rule's actions for `event`; an action whose template fails becomes a `Failed`."""
        scope = _Scope(event, self.name, match, now)
        planned: list[PlannedAction] = []
        for index, planner in enumerate(self.planners):
            try:
                planned.extend(planner(scope))
            except TemplateError as exc:
                planned.append(Failed(self.name, index, str(exc)))
        return planned


def _compile_rule(rule: RuleConfig, index: int, engine: TemplateEngine, zone: ZoneInfo) -> _Rule:
    path = f"rules[{index}]"
    matcher = _compile_match(rule.match, f"{path}.match", zone, indexed=True)
    names = rule.match.event if rule.match.event is not None else RULE_EVENT_NAMES
    events = frozenset(t for t in EventType if t.rule_name in names)
    if rule.default and EventType.RECEIVED not in events:
        raise RuleError(f"{path}.default", "a default rule only runs for inbound SMS; its event excludes inbound")
    planners = tuple(_compile_action(a, engine, f"{path}.actions[{i}]") for i, a in enumerate(rule.actions))
    return _Rule(rule.name, events, matcher, planners, rule.stop, rule.default)


@dataclass(frozen=True, slots=True)
class _Candidates:
    """The rules worth trying for one event type, in order: those without a keyword condition, plus, for an
    SMS whose first word is a configured keyword, the rules of that keyword (so most rules are never tried)."""

    unkeyed: tuple[_Rule, ...]
    by_keyword: Mapping[str, tuple[_Rule, ...]]

    @classmethod
    def of(cls, rules: list[_Rule]) -> _Candidates:
        """Index `rules` by the keywords of their top-level `keyword` condition."""
        words = {word for r in rules if r.matcher.keywords for word in r.matcher.keywords}
        by_keyword = {w: tuple(r for r in rules if r.matcher.keywords is None or w in r.matcher.keywords)
                      for w in words}
        return cls(tuple(r for r in rules if r.matcher.keywords is None), by_keyword)

    def get(self, keyword: str) -> tuple[_Rule, ...]:
        """The rules to try, in order, for an SMS whose first word is `keyword`."""
        return self.by_keyword.get(keyword, self.unkeyed)


class Router:
    """Compiled rules: maps an event to the actions the rules plan for it."""

    def __init__(self, rules: tuple[_Rule, ...], zone: ZoneInfo, handled_keywords: frozenset[str] = frozenset()) -> None:
        self._zone = zone
        self._handled = handled_keywords
        self._ordinary = {t: _Candidates.of([r for r in rules if not r.default and t in r.events]) for t in EventType}
        self._defaults = _Candidates.of([r for r in rules if r.default])

    @classmethod
    def compile(cls, rules: tuple[RuleConfig, ...], engine: TemplateEngine, default_timezone: str,
                handled_keywords: Iterable[str] = ()) -> Router:
        """Compile every regex, template, glob and time window once; raises RuleError naming the key path.

        `handled_keywords` (the safety opt-out and opt-in words) count as matched: default rules ignore them.
        """
        zone = _zone(default_timezone, "gateway.timezone")
        compiled: list[_Rule] = []
        for index, rule in enumerate(rules):
            if any(r.name == rule.name for r in compiled):
                raise RuleError(f"rules[{index}].name", f"another rule is already named {rule.name!r}")
            compiled.append(_compile_rule(rule, index, engine, zone))
        return cls(tuple(compiled), zone, frozenset(keyword_of(k) for k in handled_keywords))

    @classmethod
    def for_config(cls, config: Config, engine: TemplateEngine) -> Router:
        """The router of a loaded config: its rules, in its gateway's zone, leaving its safety keywords to safety."""
        safety = config.safety
        return cls.compile(config.rules, engine, config.gateway.timezone,
                           handled_keywords=safety.opt_out_keywords + safety.opt_in_keywords)

    def matches(self, event: Event, now: datetime) -> tuple[RuleMatch, ...]:
        """Every rule that matches `event` at `now` (timezone-aware), in order, with its planned actions."""
        local_now = self._local(now)
        return tuple(RuleMatch(rule.name, groups, tuple(rule.plan(event, groups, local_now)), rule.default)
                     for rule, groups in self._matching(event, now))

    def route(self, event: Event, now: datetime) -> tuple[PlannedAction, ...]:
        """The actions every matching rule plans for `event` at `now` (timezone-aware), in rule order."""
        local_now = self._local(now)
        planned: list[PlannedAction] = []
        for rule, groups in self._matching(event, now):
            planned.extend(rule.plan(event, groups, local_now))
        return tuple(planned)

    def _local(self, now: datetime) -> datetime:
        """`now` in the gateway's zone, as templates see it."""
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now.astimezone(self._zone)

    def _matching(self, event: Event, now: datetime) -> list[tuple[_Rule, Mapping[str, str]]]:
        """The rules that match, with their regex groups: the ordinary ones, else the defaults."""
        facts = _Facts(event, now)
        found = _first_matches(self._ordinary[event.type].get(facts.keyword), facts)
        if not found and event.type is EventType.RECEIVED and facts.keyword not in self._handled:
            found = _first_matches(self._defaults.get(facts.keyword), facts)
        return found


def _first_matches(rules: tuple[_Rule, ...], facts: _Facts) -> list[tuple[_Rule, Mapping[str, str]]]:
    """The matching rules in order, up to and including the first matching one with `stop`."""
    found = []
    for rule in rules:
        groups = rule.matcher.match(facts)
        if groups is not None:
            found.append((rule, groups))
            if rule.stop:
                break
    return found
