"""Sandboxed Jinja templates for replies, webhook bodies and inbound hooks. Pure: loads template files only.

Templates come from the configuration (written by the operator, never by an SMS sender); the sandbox keeps
them away from Python internals and from mutating their context. SMS text and request payloads are only ever
context values: nothing received is compiled as a template.

Environment: undefined names are errors; no HTML escaping; `{{ None }}` prints nothing; `trim_blocks` and
`lstrip_blocks` are on (a line holding only a `{% … %}` tag leaves no blank line). Filters beyond Jinja's:
`e164`, `sms_truncate`, `tojson` (compact, non-ASCII kept) and `urlencode` (form bodies).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from bridge.numbers import e164
from bridge.events import Event

BUNDLED_TEMPLATES = Path(__file__).parent / "templates"
MAX_OUTPUT_CHARS = 65_536
INLINE_NAME = "inline template"

JSON_TYPE = "application/json"
FORM_TYPE = "application/x-www-form-urlencoded"
TEXT_TYPE = "text/plain"

# GSM 03.38 default alphabet (without the escape code) and its extension table, whose characters take 2 septets.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")
SEGMENT_SEPTETS = 160

RULE_NAMES = ("sms", "device", "event", "match", "now")  # what a rule's and a webhook target's templates see
PAYLOAD_NAMES = ("payload", "now")  # what an `inbound:` hook's template sees


class TemplateError(Exception):
    """A template does not compile or failed to render: fix the template (the message says where and why)."""

    def __init__(self, message: str, *, template: str = INLINE_NAME, lineno: int | None = None) -> None:
        where = f"{template}, line {lineno}" if lineno else template
        super().__init__(f"{where}: {message}")
        self.template = template
        self.lineno = lineno


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template compiled once and rendered many times."""

    name: str
    content_type: str
    _template: jinja2.Template

    def render(self, **context: Any) -> str:
        """Render with `context`; raises TemplateError on any render error or an output over MAX_OUTPUT_CHARS."""
        parts: list[str] = []
        size = 0
        try:
            for part in self._template.generate(**context):
                size += len(part)
                if size > MAX_OUTPUT_CHARS:
                    raise TemplateError(f"output is longer than {MAX_OUTPUT_CHARS} characters", template=self.name)
                parts.append(part)
        except TemplateError:
            raise
        except jinja2.TemplateError as exc:
            raise TemplateError(exc.message or type(exc).__name__, template=self.name) from exc
        # Anything a sandboxed template raises (1/0, a bad filter argument, …) is that template's error.
        except Exception as exc:
            raise TemplateError(f"{type(exc).__name__}: {exc}", template=self.name) from exc
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class RenderedBody:
    """A webhook body and its Content-Type."""

    body: str
    content_type: str


class TemplateEngine:
    """Compiles inline template strings and `.j2` files from `templates_dir`, then the bundled presets."""

    def __init__(self, templates_dir: Path | None = None, *, default_region: str | None = None) -> None:
        search = [templates_dir] if templates_dir is not None and templates_dir.is_dir() else []
        self.default_region = default_region
        self._env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader([*search, BUNDLED_TEMPLATES]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_none_as_empty,
        )
        self._env.filters.update(
            e164=self._e164, sms_truncate=sms_truncate, tojson=to_json, urlencode=urlencode
        )
        self._cache: dict[str, CompiledTemplate] = {}

    def compile(self, source_or_name: str) -> CompiledTemplate:
        """Compile an inline template, or load the file it names when it ends in `.j2`; cached by source."""
        compiled = self._cache.get(source_or_name)
        if compiled is None:
            compiled = self._compile(source_or_name)
            self._cache[source_or_name] = compiled
        return compiled

    def _compile(self, source_or_name: str) -> CompiledTemplate:
        is_file = source_or_name.endswith(".j2")
        name = source_or_name if is_file else INLINE_NAME
        try:
            if is_file:
                template = self._env.get_template(source_or_name)
            else:
                template = self._env.from_string(source_or_name)
        except jinja2.TemplateNotFound as exc:
            raise TemplateError(f"template file {exc.name!r} not found", template=name) from exc
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(exc.message or "syntax error", template=exc.name or name, lineno=exc.lineno) from exc
        return CompiledTemplate(name, content_type_of(name), template)

    def undefined_names(self, source_or_name: str, known: tuple[str, ...]) -> list[str]:
        """The names a template uses that neither `known`, Jinja's globals nor the template itself define.

        A name only tested with `is defined` or given a `default` is optional, not undefined. The template
        must compile (see `compile`); the names of templates it imports or includes are theirs to define.
        """
        self.compile(source_or_name)
        if source_or_name.endswith(".j2"):
            source = self._env.loader.get_source(self._env, source_or_name)[0]  # type: ignore[union-attr]
        else:
            source = source_or_name
        tree = self._env.parse(source)
        used = jinja2.meta.find_undeclared_variables(tree)
        return sorted(used - set(known) - set(self._env.globals) - _optional_names(tree))

    def _e164(self, number: Any, region: str | None = None) -> Any:
        """The number in E.164 (`+4915712345678`); anything that is not a valid number comes back unchanged."""
        if not isinstance(number, str):
            return number
        return e164(number, region or self.default_region) or number


def _optional_names(tree: nodes.Template) -> set[str]:
    """Names a template uses only where being undefined is fine: `x | default(…)`, `x is defined`."""
    optional = set()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        names = ("default", "d") if isinstance(node, nodes.Filter) else ("defined", "undefined")
        if node.name in names and isinstance(node.node, nodes.Name):
            optional.add(node.node.name)
    return optional


def content_type_of(name: str) -> str:
    """The Content-Type of a template's output, from its file name (`*.json.j2`, `*.form.j2`, else text)."""
    if name.endswith(".json.j2"):
        return JSON_TYPE
    if name.endswith(".form.j2"):
        return FORM_TYPE
    return TEXT_TYPE


def _none_as_empty(value: Any) -> Any:
    # `{{ sms.to }}` for an unknown number prints nothing rather than the word "None".
    return "" if value is None else value


def to_json(value: Any) -> str:
    """Compact JSON, non-ASCII kept as is; datetimes as ISO 8601."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def urlencode(value: Any) -> str:
    """Form-encode a mapping (`a=1&b=x+y`, None as empty) or quote one string for a form value."""
    if isinstance(value, Mapping):
        pairs = [(str(k), "" if v is None else str(v)) for k, v in value.items()]
        return urllib.parse.urlencode(pairs)
    return urllib.parse.quote_plus("" if value is None else str(value))


def sms_truncate(text: Any, n: int = SEGMENT_SEPTETS) -> str:
    """Cut `text` to a budget of `n` GSM-7 septets, or the same bits in UCS-2 (n*7//16 units: 160 -> 70).

    A text made only of GSM 03.38 characters (extension characters cost 2 septets) keeps the GSM-7 budget
    and is cut with "..." so it stays GSM-7; any other text is counted in UTF-16 units and cut with "…".
    So `sms_truncate(160)` always fits one SMS segment.
    """
    text = "" if text is None else str(text)
    if is_gsm7(text):
        return _cut(text, n, "...", _septets)
    return _cut(text, n * 7 // 16, "…", _utf16_units)


def is_gsm7(text: str) -> bool:
    """True when every character is in the GSM 03.38 default alphabet or its extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def sms_length(text: str) -> int:
    """The size of `text` in its SMS encoding: septets when it is GSM-7, else UTF-16 units."""
    return sum(map(_septets, text)) if is_gsm7(text) else sum(map(_utf16_units, text))


def _septets(ch: str) -> int:
    return 2 if ch in GSM7_EXTENSION else 1


def _utf16_units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _cut(text: str, budget: int, ellipsis: str, cost: Callable[[str], int]) -> str:
    if sum(map(cost, text)) <= budget:
        return text
    room = budget - sum(map(cost, ellipsis))
    if room < 0:
        ellipsis, room = "", budget
    used = 0
    end = 0
    for end, ch in enumerate(text):
        used += cost(ch)
        if used > room:
            break
    # A zero-width joiner left at the end would glue the ellipsis to half an emoji sequence.
    return text[:end].rstrip("\u200d") + ellipsis


def template_context(event: Event, rule: str | None, match: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """What a rule's templates see: `sms` (None for device events), `device`, `event`, `match`, `now`."""
    return event_context(event.to_json(rule), match, now)


def event_context(event_json: Mapping[str, Any], match: Mapping[str, str], now: datetime) -> dict[str, Any]:
    """The rule template context from a stored event JSON (what `Event.to_json(rule)` gave)."""
    return {
        "sms": event_json.get("sms"),
        "device": event_json.get("device"),
        "event": event_json,
        "match": dict(match),
        "now": now,
    }


def payload_context(payload: Any, now: datetime) -> dict[str, Any]:
    """What an `inbound:` hook's template sees: `payload` (the request's JSON) and `now`."""
    return {"payload": payload, "now": now}


def render_event_body(
    engine: TemplateEngine,
    template: str | None,
    event_json: Mapping[str, Any],
    match: Mapping[str, str],
    now: datetime,
) -> RenderedBody:
    """A webhook body: `template` rendered with the rule context, or the event JSON itself when None.

    The event JSON is written exactly as the `event.json.j2` preset writes it (compact, non-ASCII kept).
    """
    if template is None:
        return RenderedBody(to_json(event_json), JSON_TYPE)
    compiled = engine.compile(template)
    return RenderedBody(compiled.render(**event_context(event_json, match, now)), compiled.content_type)
