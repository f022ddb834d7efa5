"""The template sandbox, its filters and the contexts rules and hooks render with."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sample_events import NOW, device, inbound

from bridge.templating import (
    MAX_OUTPUT_CHARS,
    PAYLOAD_NAMES,
    RULE_NAMES,
    TemplateEngine,
    TemplateError,
    content_type_of,
    event_context,
    is_gsm7,
    payload_context,
    render_event_body,
    sms_length,
    sms_truncate,
    template_context,
    to_json,
    urlencode,
)


def render(source: str, engine: TemplateEngine | None = None, **context: object) -> str:
    """Compile and render `source` with `context`."""
    return (engine or TemplateEngine(None)).compile(source).render(**context)


# --- compiling and loading ---------------------------------------------------------------------


def test_inline_template_renders_its_context() -> None:
    """An inline template renders the values it is given."""
    assert render("Hi {{ name }}!", name="Ann") == "Hi Ann!"


def test_compile_caches_by_source() -> None:
    """Compiling the same source twice returns the same compiled template."""
    engine = TemplateEngine(None)
    assert engine.compile("{{ a }}") is engine.compile("{{ a }}")


def test_file_in_templates_dir_wins_over_bundled_preset(tmp_path: Path) -> None:
    """A file in the user's templates_dir shadows the bundled preset of the same name."""
    (tmp_path / "slack.json.j2").write_text('{"mine": true}')
    assert render("slack.json.j2", TemplateEngine(tmp_path)) == '{"mine": true}'


def test_missing_templates_dir_still_finds_presets(tmp_path: Path) -> None:
    """A templates_dir that does not exist leaves the bundled presets available."""
    engine = TemplateEngine(tmp_path / "absent")
    assert engine.compile("discord.json.j2").name == "discord.json.j2"


def test_unknown_file_is_a_template_error() -> None:
    """Naming a `.j2` file that exists nowhere raises TemplateError naming it."""
    with pytest.raises(TemplateError, match="nope.j2"):
        TemplateEngine(None).compile("nope.j2")


def test_syntax_error_reports_its_line() -> None:
    """A syntax error raises TemplateError carrying the line number."""
    with pytest.raises(TemplateError) as caught:
        TemplateEngine(None).compile("line one\n{% if %}")
    assert caught.value.lineno == 2 and "line 2" in str(caught.value)


def test_undefined_name_is_a_template_error_with_the_template_name(tmp_path: Path) -> None:
    """Rendering an undefined name raises TemplateError that names the template and the variable."""
    (tmp_path / "crm.json.j2").write_text("{{ customer }}")
    with pytest.raises(TemplateError, match=r"crm\.json\.j2: 'customer' is undefined"):
        render("crm.json.j2", TemplateEngine(tmp_path))


def test_python_error_while_rendering_is_a_template_error() -> None:
    """An exception raised by an expression (1/0) becomes a TemplateError."""
    with pytest.raises(TemplateError, match="ZeroDivisionError"):
        render("{{ 1 / 0 }}")


def test_output_over_the_cap_is_a_template_error() -> None:
    """A template producing more than MAX_OUTPUT_CHARS raises TemplateError."""
    with pytest.raises(TemplateError, match="longer than"):
        render("{% for i in range(n) %}xx{% endfor %}", n=MAX_OUTPUT_CHARS // 2 + 1)


def test_none_prints_as_nothing() -> None:
    """`{{ value }}` of None prints an empty string, not the word None."""
    assert render("to:{{ sms.to }}.", sms={"to": None}) == "to:."


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("crm.json.j2", "application/json"),
        ("twilio.form.j2", "application/x-www-form-urlencoded"),
        ("alert.txt.j2", "text/plain"),
        ("inline template", "text/plain"),
    ],
)
def test_content_type_follows_the_file_name(name: str, content_type: str) -> None:
    """The output's Content-Type comes from the template's file name."""
    assert content_type_of(name) == content_type


# --- the sandbox -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "attack",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ range.__self__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ [].append(1) }}",
        "{{ {}.update(a=1) }}",
        "{{ sms.body.format_map(sms) }}",
    ],
)
def test_sandbox_escape_in_a_template_is_refused(attack: str) -> None:
    """A template reaching for Python internals or mutating data raises TemplateError."""
    with pytest.raises(TemplateError):
        render(attack, sms={"body": "{0.__class__}"})


@pytest.mark.parametrize(
    "body",
    [
        "{{ 7*7 }}",
        "{% for x in range(3) %}x{% endfor %}",
        "{{ ''.__class__.__mro__ }}",
        "{# hidden #}",
        "{% raw %}{{ a }}{% endraw %}",
        "{{ sms.body }}",
    ],
)
def test_sms_body_is_data_never_a_template(body: str) -> None:
    """Template syntax inside an SMS body comes out verbatim."""
    context = template_context(inbound(body), "r", {}, NOW)
    assert render("{{ sms.body }}", **context) == body


# --- filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "region", "filter_args", "expected"),
    [
        ("+49 1575 2982212", None, "", "+4915752982212"),
        ("015752982212", "DE", "", "+4915752982212"),
        ("015752982212", None, "", "015752982212"),
        ("015752982212", None, "('DE')", "+4915752982212"),
        ("(030) 123456", "FR", "('DE')", "+4930123456"),
        ("DHL", "DE", "", "DHL"),
        ("+49 12", None, "", "+49 12"),
    ],
)
def test_e164(number: str, region: str | None, filter_args: str, expected: str) -> None:
    """e164 formats valid numbers (engine region, or the filter's) and returns anything else unchanged."""
    engine = TemplateEngine(None, default_region=region)
    assert render("{{ n | e164" + filter_args + " }}", engine, n=number) == expected


@pytest.mark.parametrize(
    ("text", "n", "expected"),
    [
        ("a" * 160, 160, "a" * 160),
        ("a" * 161, 160, "a" * 157 + "..."),
        ("€" * 80, 160, "€" * 80),
        ("€" * 81, 160, "€" * 78 + "..."),
        ("я" * 70, 160, "я" * 70),
        ("я" * 71, 160, "я" * 69 + "…"),
        ("🎉" * 35, 160, "🎉" * 35),
        ("🎉" * 36, 160, "🎉" * 34 + "…"),
        ("a" * 200 + "🎉", 160, "a" * 69 + "…"),
        ("я" * 200, 306, "я" * 132 + "…"),
        ("abcdef", 2, "ab"),
    ],
)
def test_sms_truncate(text: str, n: int, expected: str) -> None:
    """sms_truncate keeps n GSM-7 septets (extension chars cost 2) or n*7//16 UTF-16 units for other text."""
    assert sms_truncate(text, n) == expected


@pytest.mark.parametrize("text", ["x" * 500, "{" * 500, "Ёлка " * 100, "🎉" * 100, "é€" * 100])
def test_sms_truncate_160_fits_one_segment(text: str) -> None:
    """sms_truncate(160) output is one SMS segment in the encoding it needs."""
    cut = sms_truncate(text)
    assert sms_length(cut) <= (160 if is_gsm7(cut) else 70)


def test_sms_truncate_keeps_a_gsm7_text_gsm7() -> None:
    """A cut GSM-7 text ends in "..." so the ellipsis does not switch it to UCS-2."""
    assert is_gsm7(sms_truncate("Hello world " * 20))


def test_sms_truncate_does_not_end_in_a_zero_width_joiner() -> None:
    """A cut inside an emoji ZWJ sequence does not leave the joiner dangling."""
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert "\u200d…" not in sms_truncate(family * 20)


def test_sms_truncate_filter_in_a_template() -> None:
    """The sms_truncate filter is available to templates."""
    assert render("{{ t | sms_truncate(10) }}", t="a" * 20) == "a" * 7 + "..."


def test_tojson_is_compact_and_keeps_unicode() -> None:
    """tojson writes compact JSON with non-ASCII characters as they are."""
    assert to_json({"a": "ü 🎉", "b": [1, None]}) == '{"a":"ü 🎉","b":[1,null]}'


def test_tojson_writes_datetimes_as_iso() -> None:
    """tojson turns a datetime into ISO 8601 text."""
    assert render("{{ now | tojson }}", now=NOW) == '"2026-11-24T10:00:00+00:00"'


def test_tojson_escapes_what_breaks_json() -> None:
    """Quotes, backslashes and newlines in a value stay valid JSON through tojson."""
    body = 'say "hi"\\\n\t</script>'
    assert json.loads(render('{"b": {{ b | tojson }}}', b=body)) == {"b": body}


def test_urlencode_mapping() -> None:
    """urlencode turns a mapping into a form body, None as empty."""
    assert urlencode({"From": "+49 1", "To": None, "Body": "a&b=c"}) == "From=%2B49+1&To=&Body=a%26b%3Dc"


def test_urlencode_string() -> None:
    """urlencode quotes a single string as a form value."""
    assert render("{{ v | urlencode }}", v="a b&c") == "a+b%26c"


# --- contexts and bodies -----------------------------------------------------------------------


def test_template_context_exposes_sms_with_from() -> None:
    """The rule context's `sms` is the event's sms object, with `from` as the sender."""
    context = template_context(inbound(), "info", {"n": "1"}, NOW)
    assert (context["sms"]["from"], context["event"]["rule"], context["match"], context["now"]) == (
        "+4912312312332", "info", {"n": "1"}, NOW)


def test_template_context_of_a_device_event_has_no_sms() -> None:
    """A device event's context has `sms` None and the `device` object."""
    context = template_context(device(), None, {}, NOW)
    assert context["sms"] is None and context["device"]["id"] == 1576


def test_payload_context() -> None:
    """An inbound hook's context holds the request JSON as `payload` and `now`."""
    assert payload_context({"a": 1}, NOW) == {"payload": {"a": 1}, "now": NOW}


def test_event_context_from_stored_json() -> None:
    """A context built from stored event JSON equals the one built from the event."""
    event = inbound()
    assert event_context(event.to_json("r"), {}, NOW) == template_context(event, "r", {}, NOW)


def test_default_body_is_the_event_json() -> None:
    """Without a template the webhook body is the event JSON with the rule name."""
    event_json = inbound().to_json("info")
    rendered = render_event_body(TemplateEngine(None), None, event_json, {}, NOW)
    assert (json.loads(rendered.body), rendered.content_type) == (event_json, "application/json")


def test_templated_body_carries_the_template_content_type() -> None:
    """With a form template the body is rendered and typed as a form."""
    rendered = render_event_body(TemplateEngine(None), "twilio.form.j2", inbound().to_json("info"), {}, NOW)
    assert rendered.content_type == "application/x-www-form-urlencoded" and "Body=INFO+please" in rendered.body


def test_default_body_matches_the_event_preset_byte_for_byte() -> None:
    """The default body and the event.json.j2 preset are the same bytes."""
    event_json = inbound('quote " and ü').to_json("r")
    engine = TemplateEngine(None)
    preset = render_event_body(engine, "event.json.j2", event_json, {}, NOW)
    assert preset == render_event_body(engine, None, event_json, {}, NOW)


def test_context_names_are_what_check_allows() -> None:
    """Rule and inbound templates get exactly the names `check` lets them use."""
    now = datetime(2026, 11, 24, tzinfo=timezone.utc)
    assert tuple(event_context({}, {}, now)) == RULE_NAMES
    assert tuple(payload_context({}, now)) == PAYLOAD_NAMES
