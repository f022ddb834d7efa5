"""bridge.config: loading, interpolation, validation and located error messages."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from config_issues import BASE, issues
from hypothesis import assume, given
from jinja2.defaults import DEFAULT_NAMESPACE
from hypothesis import strategies as st

from bridge.config import (
    ActionConfig,
    ActionKind,
    Config,
    ConfigError,
    ConfigIssue,
    Rate,
    Secret,
    SimulatorConfig,
    load_config,
)
from bridge.templating import RULE_NAMES, TemplateEngine
from repo_paths import EXAMPLE_CONFIG

WriteConfig = Callable[[str], Path]

def load(path: Path, env: Mapping[str, str] | None = None) -> Config:
    return load_config(path, env={} if env is None else env)


# --- the example ---------------------------------------------------------------------------------


def test_example_loads_without_environment() -> None:
    """rules.yaml.example loads with no environment variables, running on the in-process simulator."""
    config = load(EXAMPLE_CONFIG)
    assert config.gateway.simulator == SimulatorConfig(inbound_every=8.0, pace=4.0)
    assert config.server.api_keys == (Secret("change-me"),)
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.storage.path == EXAMPLE_CONFIG.parent / "bridge.db"


def test_example_documents_every_section() -> None:
    """rules.yaml.example sets every section, so every key has a documented example."""
    config = load(EXAMPLE_CONFIG)
    assert config.webhooks["crm"].template.lstrip().startswith("{")
    assert config.inbound["alertmanager"].preset == "alertmanager"
    assert {a.kind for r in config.rules for a in r.actions} == set(ActionKind)
    assert [r.name for r in config.rules if r.default] == ["fallback"]


def test_example_works_when_copied_elsewhere(tmp_path: Path) -> None:
    """rules.yaml.example copied out of the repository loads alone: it needs no file beside it."""
    copy = tmp_path / "rules.yaml"
    copy.write_bytes(EXAMPLE_CONFIG.read_bytes())
    config = load(copy)
    assert config.storage.path == tmp_path / "bridge.db"


def test_example_polls_every_status_step() -> None:
    """The example polls more often than its simulated SMS step, so the log shows every status in turn."""
    config = load(EXAMPLE_CONFIG)
    assert config.poll.interval < config.gateway.simulator.pace


def test_example_delivers_to_the_simulators_sink() -> None:
    """The example's webhook target is the in-process simulator's demo sink, so its deliveries succeed."""
    config = load(EXAMPLE_CONFIG)
    assert config.webhooks["crm"].url == f"{config.gateway.simulator.url}/simulator/webhooks"


# --- defaults and shapes -------------------------------------------------------------------------


def test_minimal_config_gets_documented_defaults(write_config: WriteConfig) -> None:
    """Absent sections take the defaults of DESIGN section 3."""
    config = load(write_config(BASE))
    assert config.poll.interval == 15.0 and config.poll.lookback == 172800.0
    assert config.safety.loop_limit == Rate(20, 300.0)
    assert config.webhooks == {} and config.rules == ()
    assert config.templates_dir == config.source.parent / "templates"


def test_storage_path_is_relative_to_the_config_file(write_config: WriteConfig) -> None:
    """A relative storage path is resolved against the config file's directory, not the working directory."""
    path = write_config(BASE + "storage: {path: data/b.db, synchronous: full}\n")
    storage = load(path).storage
    assert (storage.path, storage.synchronous) == (path.parent / "data" / "b.db", "full")


def test_storage_url_selects_postgresql_with_a_lease(write_config: WriteConfig) -> None:
    """`storage.url` selects PostgreSQL; its password stays hidden and the lease defaults to 15 seconds."""
    path = write_config(BASE + "storage:\n  url: postgresql://bridge:${PGPASSWORD}@db:5432/bridge\n")
    storage = load(path, {"PGPASSWORD": "s3cret"}).storage
    assert storage.url is not None and storage.url.reveal() == "postgresql://bridge:s3cret@db:5432/bridge"
    assert "s3cret" not in repr(storage) and storage.lease == 15.0


def test_storage_lease_is_a_duration(write_config: WriteConfig) -> None:
    """`storage.lease` takes a duration."""
    path = write_config(BASE + "storage: {url: 'postgresql://db/bridge', lease: 30s}\n")
    assert load(path).storage.lease == 30.0


def test_storage_url_and_path_together_are_an_error(write_config: WriteConfig) -> None:
    """`storage.url` with `storage.path` is an error naming the url's line."""
    path = write_config(BASE + "storage:\n  path: b.db\n  url: postgresql://db/bridge\n")
    assert issues(path) == [
        "rules.yaml:7: storage.url: storage.path is set too: give path (SQLite) or url (PostgreSQL), not both"]


def test_storage_url_must_be_postgresql(write_config: WriteConfig) -> None:
    """A `storage.url` that is not a PostgreSQL URL is an error that does not echo it."""
    path = write_config(BASE + "storage: {url: 'mysql://root:hunter2@db/bridge'}\n")
    [issue] = issues(path)
    assert issue.startswith("rules.yaml:5: storage.url: expected a PostgreSQL URL") and "hunter2" not in issue


def test_listen_gives_host_and_port(write_config: WriteConfig) -> None:
    """`server.listen: HOST:PORT` sets host and port; IPv6 hosts are bracketed."""
    path = write_config(BASE + "  listen: '[::1]:9090'\n")
    server = load(path).server
    assert (server.host, server.port) == ("::1", 9090)


def test_simulator_zero_inbound_every_means_no_traffic(write_config: WriteConfig) -> None:
    """`simulator: {inbound_every: 0}` turns generated inbound traffic off (None)."""
    path = write_config("gateway:\n  simulator: {inbound_every: 0, pace: 500ms}\nserver: {enabled: false}\n")
    assert load(path).gateway.simulator == SimulatorConfig(inbound_every=None, pace=0.5)


def test_simulator_listen(write_config: WriteConfig) -> None:
    """`simulator.listen` is where the in-process simulator listens; 127.0.0.1:8024 by default."""
    path = write_config("gateway:\n  simulator: {listen: '[::1]:9024'}\nserver: {enabled: false}\n")
    simulator = load(path).gateway.simulator
    assert (simulator.host, simulator.port, simulator.url) == ("::1", 9024, "http://[::1]:9024")
    assert SimulatorConfig().url == "http://127.0.0.1:8024"


def test_simulator_bad_listen_is_located(write_config: WriteConfig) -> None:
    """A bad `simulator.listen` is an error naming its line and key."""
    path = write_config("gateway:\n  simulator:\n    listen: localhost\nserver: {enabled: false}\n")
    with pytest.raises(ConfigError) as error:
        load(path)
    assert [str(issue) for issue in error.value.errors] == [
        f"{path}:3: gateway.simulator.listen: bad listen address 'localhost' (use HOST:PORT, e.g. 127.0.0.1:8080)"]


def test_unquoted_phone_numbers_stay_strings(write_config: WriteConfig) -> None:
    """`+4915752982212` unquoted (an integer to YAML) keeps its plus sign where a string is expected."""
    path = write_config(BASE + "inbound:\n  alerts:\n    to: [+4915752982212]\n")
    assert load(path).inbound["alerts"].to == ("+4915752982212",)


def test_yes_no_words_stay_strings(write_config: WriteConfig) -> None:
    """A keyword like NO (a boolean to YAML 1.1) stays the word where a string is expected."""
    path = write_config(BASE + "rules:\n  - name: r\n    match: {keyword: [NO, yes]}\n")
    assert load(path).rules[0].match.keyword == ("NO", "yes")


def test_inbound_preset_defaults_to_its_name(write_config: WriteConfig) -> None:
    """An inbound endpoint named grafana uses the grafana preset; any other name the generic one."""
    path = write_config(BASE + "inbound:\n  grafana: {to: '+491'}\n  other: {to: '+492'}\n")
    inbound = load(path).inbound
    assert (inbound["grafana"].preset, inbound["other"].preset) == ("grafana", "generic")


def test_action_forms(write_config: WriteConfig) -> None:
    """Each action's short and long YAML forms give the ActionConfig they mean."""
    path = write_config(BASE + """\
webhooks: {crm: {url: 'https://crm.example.com/h'}}
rules:
  - name: r
    actions:
      - reply: "hi"
      - reply: {text: "hi", sim: 1, allow_alphanumeric: true}
      - send: {to: "+491", text: "x"}
      - webhook: crm
      - webhook: {target: crm, template: "{{ sms.body }}"}
      - tag: 8303
      - tag: {tag_id: 8303, name: "{{ sms.from }}"}
      - opt_out: true
      - opt_in: true
""")
    assert load(path).rules[0].actions == (
        ActionConfig(ActionKind.REPLY, text="hi"),
        ActionConfig(ActionKind.REPLY, text="hi", sim=1, allow_alphanumeric=True),
        ActionConfig(ActionKind.SEND, to=("+491",), text="x"),
        ActionConfig(ActionKind.WEBHOOK, webhook="crm"),
        ActionConfig(ActionKind.WEBHOOK, webhook="crm", template="{{ sms.body }}"),
        ActionConfig(ActionKind.TAG, tag_id=8303),
        ActionConfig(ActionKind.TAG, tag_id=8303, name_template="{{ sms.from }}"),
        ActionConfig(ActionKind.OPT_OUT),
        ActionConfig(ActionKind.OPT_IN),
    )


def test_match_keys_from_and_not(write_config: WriteConfig) -> None:
    """`from` becomes `from_`, `not` a nested MatchConfig, and single values become one-item tuples."""
    path = write_config(BASE + "rules:\n  - name: r\n    match: {from: '+49*', not: {status: failed}}\n")
    match = load(path).rules[0].match
    assert match.from_ == ("+49*",)
    assert match.not_ is not None and match.not_.status == ("failed",)


def test_day_ranges_expand(write_config: WriteConfig) -> None:
    """`days: [fri-mon, wed]` expands the range across the week's end, in week order."""
    path = write_config(BASE + "rules:\n  - name: r\n    match: {days: [fri-mon, wed]}\n")
    assert load(path).rules[0].match.days == ("mon", "wed", "fri", "sat", "sun")


# --- interpolation -------------------------------------------------------------------------------


def test_interpolation_replaces_variables(write_config: WriteConfig) -> None:
    """`${VAR}` takes the environment's value, also inside a longer string."""
    path = write_config(BASE + "webhooks:\n  crm: {url: 'https://${HOST}/hooks'}\n")
    assert load(path, {"HOST": "crm.example.com"}).webhooks["crm"].url == "https://crm.example.com/hooks"


def test_interpolation_default_when_unset_or_empty(write_config: WriteConfig) -> None:
    """`${VAR:-default}` uses the default when VAR is unset or empty, and VAR otherwise."""
    path = write_config("gateway:\n  email: ${E:-a@example.com}\n  password: x\nserver: {enabled: false}\n")
    assert load(path, {}).gateway.email == "a@example.com"
    assert load(path, {"E": ""}).gateway.email == "a@example.com"
    assert load(path, {"E": "b@example.com"}).gateway.email == "b@example.com"


def test_interpolation_escape(write_config: WriteConfig) -> None:
    """`$${` is a literal `${`, and is not read as a variable."""
    path = write_config(BASE + "rules:\n  - name: r\n    actions: [{reply: 'costs $${PRICE} {{ 1 }}'}]\n")
    assert load(path).rules[0].actions[0].text == "costs ${PRICE} {{ 1 }}"


def test_interpolated_plain_number_is_a_number(write_config: WriteConfig) -> None:
    """An unquoted `${VAR:-1576}` is typed after interpolation, so it can fill an integer key."""
    path = write_config(BASE + "  max_body_chars: ${MAX:-1576}\n")
    assert load(path).server.max_body_chars == 1576


def test_interpolated_empty_optional_key_is_unset(write_config: WriteConfig) -> None:
    """An unquoted `${VAR:-}` that expands to nothing leaves an optional key unset."""
    path = write_config(BASE.replace("simulator: true", "simulator: true\n  webhook_secret: ${HOOK:-}"))
    assert load(path).gateway.webhook_secret is None


def test_missing_variable_is_located(write_config: WriteConfig) -> None:
    """A `${VAR}` with no value and no default is an error at that scalar's line."""
    path = write_config("gateway:\n  email: ${SMSGW_EMAIL}\n  password: p\nserver: {enabled: false}\n")
    assert issues(path) == [
        "rules.yaml:2: gateway.email: environment variable SMSGW_EMAIL is not set (give a default: ${SMSGW_EMAIL:-…})"
    ]


def test_malformed_reference_is_an_error(write_config: WriteConfig) -> None:
    """An unclosed or badly named `${…}` is reported with the syntax to use."""
    path = write_config(BASE + "  listen: ${1BAD}:80\n")
    assert issues(path) == [
        "rules.yaml:5: server.listen: bad variable reference "
        "(use ${VAR} or ${VAR:-default}; write $${ for a literal ${)"
    ]


# --- durations and rates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("15s", 15.0), ("5m", 300.0), ("2h", 7200.0), ("1d", 86400.0), ("0", 0.0), ("1.5s", 1.5)],
)
def test_durations(write_config: WriteConfig, text: str, seconds: float) -> None:
    """Durations with units ms, s, m, h, d (or a bare 0) are read as float seconds."""
    path = write_config(BASE + f"poll: {{backfill: {text}}}\n")
    assert load(path).poll.backfill == seconds


@pytest.mark.parametrize("text", ["15", "'15 sec'", "-5s", "5w", "1h30m"])
def test_bad_durations(write_config: WriteConfig, text: str) -> None:
    """Anything else is a located error showing the value and the accepted forms."""
    path = write_config(BASE + f"poll:\n  interval: {text}\n")
    shown = text.strip("'")
    assert issues(path) == [f"rules.yaml:6: poll.interval: bad duration '{shown}' (use 500ms, 15s, 5m, 2h, 1d)"]


@pytest.mark.parametrize(
    ("text", "rate"), [("20/5m", Rate(20, 300.0)), ("50/1s", Rate(50, 1.0)), ("50/s", Rate(50, 1.0))]
)
def test_rates(write_config: WriteConfig, text: str, rate: Rate) -> None:
    """Rates are COUNT/DURATION."""
    path = write_config(BASE + f"  rate_limit: {text}\n")
    assert load(path).server.rate_limit == rate


def test_bad_rate(write_config: WriteConfig) -> None:
    """A rate that is not COUNT/DURATION is a located error with an example."""
    path = write_config(BASE + "safety:\n  loop_limit: 20 per 5m\n")
    assert issues(path) == [
        "rules.yaml:6: safety.loop_limit: bad rate '20 per 5m' (use COUNT/DURATION, e.g. 20/5m or 50/1s)"
    ]


def test_zero_duration_rejected_where_it_makes_no_sense(write_config: WriteConfig) -> None:
    """A poll interval of 0 is an error (the poller would spin)."""
    path = write_config(BASE + "poll: {interval: 0s}\n")
    assert issues(path) == ["rules.yaml:5: poll.interval: must be longer than 0"]


# --- structural errors ---------------------------------------------------------------------------


def test_unknown_key_with_hint(write_config: WriteConfig) -> None:
    """An unknown key is reported at its line with the closest known key."""
    path = write_config(BASE + "poll:\n  intervl: 5s\n")
    assert issues(path) == ["rules.yaml:6: poll.intervl: unknown key (did you mean 'interval'?)"]


def test_unknown_section_with_hint(write_config: WriteConfig) -> None:
    """An unknown top-level key names the closest section."""
    path = write_config(BASE + "rule: []\n")
    assert issues(path) == ["rules.yaml:5: rule: unknown section (did you mean 'rules'?)"]


def test_wrong_type_is_named(write_config: WriteConfig) -> None:
    """A value of the wrong type names the expected and the given type."""
    path = write_config(BASE + "  max_body_chars: [1]\n")
    assert issues(path) == ["rules.yaml:5: server.max_body_chars: expected an integer, got a list"]


def test_boolean_is_not_an_integer(write_config: WriteConfig) -> None:
    """`true` where an integer is expected is an error, not 1."""
    path = write_config(BASE + "  max_body_chars: true\n")
    assert issues(path) == ["rules.yaml:5: server.max_body_chars: expected an integer, got true/false"]


def test_empty_file_is_one_error(write_config: WriteConfig) -> None:
    """An empty file gives one clear error."""
    path = write_config("# nothing yet\n")
    assert issues(path) == [
        "rules.yaml:1: the file is empty; expected a mapping of sections "
        "(gateway, poll, storage, server, webhooks, inbound, safety, rules)"
    ]


def test_non_mapping_top_level_is_one_error(write_config: WriteConfig) -> None:
    """A top level that is not a mapping gives one clear error."""
    path = write_config("- gateway\n- rules\n")
    assert issues(path) == [
        "rules.yaml:1: expected a mapping of sections "
        "(gateway, poll, storage, server, webhooks, inbound, safety, rules), got a list"
    ]


def test_yaml_syntax_error_is_located(write_config: WriteConfig) -> None:
    """Broken YAML is one error at the line where the parser gave up."""
    path = write_config(BASE + "poll: [1, 2\nrules: []\n")
    assert issues(path) == ["rules.yaml:6: YAML syntax error: expected ',' or ']', but got ':'"]


def test_duplicate_key(write_config: WriteConfig) -> None:
    """A key given twice in one mapping is an error naming the first line."""
    path = write_config(BASE + "poll:\n  interval: 5s\n  interval: 10s\n")
    assert issues(path) == ["rules.yaml:7: poll.interval: duplicate key (first at line 6)"]


def test_missing_file_raises_oserror(tmp_path: Path) -> None:
    """A file that cannot be read raises the OSError (the CLI turns it into one line)."""
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "absent.yaml", env={})


def test_every_error_is_reported_in_line_order(write_config: WriteConfig) -> None:
    """A file with five different mistakes gives five located errors, sorted by line."""
    path = write_config("""\
gateway:
  timezone: Europe/Pariss
  simulator: true
poll:
  interval: 15 sec
server:
  api_keys: []
webhooks:
  crm: {url: ftp://crm.example.com}
rules:
  - name: info
    match: {keyword: INFO, evnt: inbound}
""")
    assert issues(path) == [
        "rules.yaml:2: gateway.timezone: unknown time zone 'Europe/Pariss' (did you mean 'Europe/Paris'?)",
        "rules.yaml:5: poll.interval: bad duration '15 sec' (use 500ms, 15s, 5m, 2h, 1d)",
        "rules.yaml:7: server.api_keys: needs at least one key while the server is enabled "
        "(or set server.enabled: false)",
        "rules.yaml:9: webhooks.crm.url: must be an http:// or https:// URL with a host",
        "rules.yaml:12: rules[0].match.evnt: unknown key (did you mean 'event'?)",
    ]


# --- semantic checks -----------------------------------------------------------------------------


def test_bad_regex(write_config: WriteConfig) -> None:
    """A body_regex that does not compile is reported with the regex engine's reason."""
    path = write_config(BASE + "rules:\n  - name: r\n    match:\n      body_regex: '(?P<n>\\d+'\n")
    assert issues(path) == [
        "rules.yaml:8: rules[0].match.body_regex: bad regex: missing ), unterminated subpattern at position 0"
    ]


def test_unknown_webhook(write_config: WriteConfig) -> None:
    """A rule naming a webhook target that is not defined gets the closest defined name."""
    path = write_config(BASE + "webhooks: {crm: {url: 'http://x'}}\n"
                               "rules:\n  - name: r\n    actions:\n      - webhook: crn\n")
    assert issues(path) == ["rules.yaml:9: rules[0].actions[0].webhook: unknown webhook 'crn' (did you mean 'crm'?)"]


def test_unknown_webhook_when_none_defined(write_config: WriteConfig) -> None:
    """With no webhooks section, the error says none are defined."""
    path = write_config(BASE + "rules:\n  - name: r\n    actions: [{webhook: {target: crm}}]\n")
    assert issues(path) == ["rules.yaml:7: rules[0].actions[0].webhook.target: unknown webhook 'crm' "
                            "(no webhooks are defined)"]


def test_template_syntax_error(write_config: WriteConfig) -> None:
    """A reply template that does not parse is reported at its line with the template error."""
    path = write_config(BASE + "rules:\n  - name: r\n    actions:\n      - reply: 'Hi {{ sms.from '\n")
    [error] = issues(path)
    assert error.startswith("rules.yaml:8: rules[0].actions[0].reply: bad template: inline template, line 1: ")


def test_template_file_not_found(write_config: WriteConfig) -> None:
    """A `.j2` name that is neither in templates_dir nor bundled is reported."""
    path = write_config(BASE + "webhooks:\n  crm: {url: 'http://x', template: nope.json.j2}\n")
    assert issues(path) == [
        "rules.yaml:6: webhooks.crm.template: bad template: nope.json.j2: template file 'nope.json.j2' not found"
    ]


def test_template_file_from_templates_dir(write_config: WriteConfig) -> None:
    """A `.j2` name is found in the templates directory next to the config."""
    path = write_config(BASE + "webhooks:\n  crm: {url: 'http://x', template: mine.txt.j2}\n")
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "mine.txt.j2").write_text("{{ sms.body }}")
    assert load(path).webhooks["crm"].template == "mine.txt.j2"


def test_undefined_name_in_a_rule_template(write_config: WriteConfig) -> None:
    """A reply using a name rule templates do not get is an error at its line, suggesting the near one."""
    path = write_config(BASE + "rules:\n  - name: r\n    actions:\n      - reply: '{{ smss.from }}'\n")
    assert issues(path) == ["rules.yaml:8: rules[0].actions[0].reply: bad template: undefined name 'smss' "
                            "(did you mean 'sms'?); a rule's template sees sms, device, event, match, now"]


def test_inbound_template_sees_payload_not_sms(write_config: WriteConfig) -> None:
    """An `inbound:` template sees `payload` and `now`; `sms` there is an error."""
    path = write_config(BASE + "inbound:\n  x: {to: '+4915752982212', template: '{{ payload.a }} {{ sms.body }}'}\n")
    assert issues(path) == ["rules.yaml:6: inbound.x.template: bad template: undefined name 'sms'; "
                            "an inbound template sees payload, now"]


def test_undefined_name_in_a_template_file(write_config: WriteConfig) -> None:
    """A `.j2` file of templates_dir is checked for undefined names too."""
    path = write_config(BASE + "webhooks:\n  crm: {url: 'http://x', template: mine.txt.j2}\n")
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "mine.txt.j2").write_text("{% set who = sms.from %}{{ who }} {{ customer }}")
    assert issues(path) == ["rules.yaml:6: webhooks.crm.template: bad template: undefined name 'customer'; "
                            "a rule's template sees sms, device, event, match, now"]


@pytest.mark.parametrize("source", ["{{ device.title }} {{ now }} {{ match.n }} {{ event.id }}",
                                    "{{ topic | default('sms') }}", "{% if x is defined %}{{ x }}{% endif %}",
                                    "{% for i in range(3) %}{{ i }}{% endfor %}", "{{ dict(a=1) | tojson }}"])
def test_names_a_template_may_use(source: str, write_config: WriteConfig) -> None:
    """The context names, Jinja's globals, loop and set names and optional (`default`, `is defined`) names pass."""
    path = write_config(BASE + f"rules:\n  - name: r\n    actions:\n      - reply: \"{source}\"\n")
    assert load(path).rules[0].actions[0].text == source


@given(st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True))
def test_any_other_name_is_undefined(name: str) -> None:
    """Any name that is not a context name, a Jinja global or a keyword is reported as undefined."""
    assume(name not in RULE_NAMES and name not in DEFAULT_NAMESPACE
           and name not in {"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if",
                            "else", "recursive"})
    assert TemplateEngine().undefined_names("{{ " + name + " }}", RULE_NAMES) == [name]


def test_bad_zone(write_config: WriteConfig) -> None:
    """An unknown time zone is an error suggesting the closest IANA name."""
    path = write_config(BASE + "rules:\n  - name: r\n    match: {timezone: Europe/Berln}\n")
    assert issues(path) == [
        "rules.yaml:7: rules[0].match.timezone: unknown time zone 'Europe/Berln' (did you mean 'Europe/Berlin'?)"
    ]


def test_missing_credentials(write_config: WriteConfig) -> None:
    """A gateway without email+password, token or simulator is an error."""
    path = write_config("gateway:\n  device_id: 1576\nserver: {enabled: false}\n")
    assert issues(path) == [
        "rules.yaml:1: gateway: no credentials: set email and password, or token, or simulator: true"
    ]


def test_email_needs_password(write_config: WriteConfig) -> None:
    """An email without a password names the missing key."""
    path = write_config("gateway:\n  email: a@example.com\nserver: {enabled: false}\n")
    assert issues(path) == ["rules.yaml:1: gateway.password: required with gateway.email"]


def test_token_alone_is_enough(write_config: WriteConfig) -> None:
    """A token is a complete credential."""
    path = write_config("gateway: {token: abc}\nserver: {enabled: false}\n")
    assert load(path).gateway.token == Secret("abc")


def test_empty_api_keys(write_config: WriteConfig) -> None:
    """An enabled server with an empty key list is an error at that key."""
    path = write_config("gateway: {simulator: true}\nserver:\n  listen: 127.0.0.1:8080\n  api_keys: []\n")
    assert issues(path) == [
        "rules.yaml:4: server.api_keys: needs at least one key while the server is enabled "
        "(or set server.enabled: false)"
    ]


def test_missing_server_section_needs_api_keys(write_config: WriteConfig) -> None:
    """With no server section the server is on, so keys are required."""
    path = write_config("gateway: {simulator: true}\n")
    assert issues(path) == [
        "rules.yaml:1: server.api_keys: needs at least one key while the server is enabled "
        "(or set server.enabled: false)"
    ]


def test_empty_api_key_string(write_config: WriteConfig) -> None:
    """An empty key (e.g. an unset variable quoted) is an error at that item."""
    path = write_config("gateway: {simulator: true}\nserver:\n  api_keys: ['${KEY:-}']\n")
    assert issues(path) == ["rules.yaml:3: server.api_keys[0]: must not be empty"]


def test_disabled_server_needs_no_keys(write_config: WriteConfig) -> None:
    """`server.enabled: false` needs no api keys."""
    path = write_config("gateway: {simulator: true}\nserver: {enabled: false}\n")
    assert load(path).server.enabled is False


def test_bad_listen(write_config: WriteConfig) -> None:
    """A listen address without a port is an error with the expected form."""
    path = write_config(BASE + "  listen: localhost\n")
    assert issues(path) == [
        "rules.yaml:5: server.listen: bad listen address 'localhost' (use HOST:PORT, e.g. 127.0.0.1:8080)"
    ]


def test_unknown_event_and_status(write_config: WriteConfig) -> None:
    """match.event and match.status accept only the documented names."""
    path = write_config(BASE + "rules:\n  - name: r\n    match:\n      event: [inbound, stauts]\n"
                               "      status: deliverd\n")
    assert issues(path) == [
        "rules.yaml:8: rules[0].match.event[1]: unknown event 'stauts' (did you mean 'status'?)",
        "rules.yaml:9: rules[0].match.status: unknown status 'deliverd' (did you mean 'delivered'?)",
    ]


def test_bad_days_and_between(write_config: WriteConfig) -> None:
    """Days must be mon … sun and `between` HH:MM-HH:MM."""
    path = write_config(BASE + "rules:\n  - name: r\n    match: {days: monday, between: '9-17'}\n")
    assert issues(path) == [
        "rules.yaml:7: rules[0].match.between: bad time window '9-17' (use HH:MM-HH:MM, e.g. 09:00-17:00)",
        "rules.yaml:7: rules[0].match.days: unknown day 'monday' (use mon … sun, or a range such as mon-fri)",
    ]


def test_webhook_retry_needs_a_delay(write_config: WriteConfig) -> None:
    """An empty retry schedule is an error."""
    path = write_config(BASE + "webhooks:\n  crm:\n    url: http://x\n    retry: []\n")
    assert issues(path) == ["rules.yaml:8: webhooks.crm.retry: needs at least one delay"]


def test_webhook_needs_url(write_config: WriteConfig) -> None:
    """A webhook target without url names the missing key."""
    path = write_config(BASE + "webhooks:\n  crm:\n    timeout: 5s\n")
    assert issues(path) == ["rules.yaml:6: webhooks.crm: missing key 'url'"]


def test_webhook_secret_format(write_config: WriteConfig) -> None:
    """A webhook secret must be `whsec_` + base64."""
    path = write_config(BASE + "webhooks:\n  crm: {url: 'http://x', secret: 'whsec_not base64!'}\n")
    assert issues(path) == [
        "rules.yaml:6: webhooks.crm.secret: must be whsec_ followed by base64, as Standard Webhooks defines"
    ]


def test_inbound_to_must_not_be_empty(write_config: WriteConfig) -> None:
    """An inbound endpoint needs at least one recipient."""
    path = write_config(BASE + "inbound:\n  alertmanager:\n    to: []\n")
    assert issues(path) == ["rules.yaml:7: inbound.alertmanager.to: needs at least one number"]


def test_default_rule_must_be_for_inbound(write_config: WriteConfig) -> None:
    """A default rule whose event excludes inbound is an error at `default`."""
    path = write_config(BASE + "rules:\n  - name: r\n    match: {event: status}\n    default: true\n")
    assert issues(path) == [
        "rules.yaml:8: rules[0].default: a default rule answers inbound SMS no other rule matched; "
        "its match.event must be inbound"
    ]


def test_duplicate_rule_names(write_config: WriteConfig) -> None:
    """Two rules with one name is an error naming the first."""
    path = write_config(BASE + "rules:\n  - name: r\n  - name: r\n")
    assert issues(path) == ["rules.yaml:7: rules[1].name: duplicate rule name (first at line 6)"]


def test_rule_needs_a_name(write_config: WriteConfig) -> None:
    """A rule without name names the missing key."""
    path = write_config(BASE + "rules:\n  - match: {event: inbound}\n")
    assert issues(path) == ["rules.yaml:6: rules[0]: missing key 'name'"]


def test_unknown_action_with_hint(write_config: WriteConfig) -> None:
    """An unknown action key gets the closest action."""
    path = write_config(BASE + "rules:\n  - name: r\n    actions:\n      - replay: hi\n")
    assert issues(path) == ["rules.yaml:8: rules[0].actions[0].replay: unknown action (did you mean 'reply'?)"]


def test_two_actions_in_one_item(write_config: WriteConfig) -> None:
    """Two action keys in one list item is an error asking for one per item."""
    path = write_config(BASE + "rules:\n  - name: r\n    actions:\n      - {reply: hi, opt_out: true}\n")
    assert issues(path) == ["rules.yaml:8: rules[0].actions[0]: one action per list item, got reply and opt_out"]


def test_opt_keywords_must_not_overlap(write_config: WriteConfig) -> None:
    """A word cannot be both an opt-out and an opt-in keyword."""
    path = write_config(BASE + "safety:\n  opt_out_keywords: [STOP]\n  opt_in_keywords: [stop]\n")
    assert issues(path) == ["rules.yaml:7: safety.opt_in_keywords: also listed in opt_out_keywords: STOP"]


def test_unknown_region(write_config: WriteConfig) -> None:
    """default_region must be a region phone numbers can be read in."""
    path = write_config("gateway:\n  simulator: true\n  default_region: XX\nserver: {enabled: false}\n")
    assert issues(path) == [
        "rules.yaml:3: gateway.default_region: unknown region 'XX' (a two-letter code such as DE or FR)"
    ]


# --- secrets -------------------------------------------------------------------------------------


def test_wrong_typed_password_is_not_shown(write_config: WriteConfig) -> None:
    """A password of the wrong type is reported without its value."""
    path = write_config("gateway:\n  email: a@example.com\n  password: [hunter2-secret]\nserver: {enabled: false}\n")
    errors = issues(path)
    assert errors == ["rules.yaml:3: gateway.password: expected a string, got a list"]
    assert "hunter2-secret" not in "\n".join(errors)


def test_secrets_never_appear_in_any_error(write_config: WriteConfig) -> None:
    """Secret values (and header values) appear in no message, even when misplaced or malformed."""
    path = write_config("""\
gateway:
  token: {value: hunter2-secret}
  webhook_secret: [hunter2-secret]
server:
  api_keys: [[hunter2-secret]]
webhooks:
  crm:
    url: ${CRM_URL}
    secret: hunter2-secret
    headers: {Authorization: "Bearer hunter2-secret\\n"}
poll:
  interval: ${CRM_URL}
""")
    errors = "\n".join(issues(path, {"CRM_URL": "https://hunter2-secret@crm"}))
    assert errors.count("\n") == 5
    assert "hunter2-secret" not in errors
    assert "bad duration '${CRM_URL}'" in errors


def test_secret_hides_its_value() -> None:
    """A Secret shows '***' in repr and str, gives its value with reveal(), and compares by value."""
    secret = Secret("hunter2-secret")
    assert (repr(secret), str(secret), secret.reveal()) == ("'***'", "***", "hunter2-secret")
    assert secret == Secret("hunter2-secret") and secret != Secret("other")


def test_config_repr_hides_secrets(write_config: WriteConfig) -> None:
    """The repr of a whole loaded config contains no secret value, and `secrets` lists them all."""
    path = write_config("""\
gateway: {email: a@example.com, password: hunter2-pw, webhook_secret: hunter2-hook}
server: {api_keys: [hunter2-key]}
webhooks: {crm: {url: 'http://x', secret: whsec_aHVudGVyMi13aA==}}
""")
    config = load(path)
    assert "hunter2" not in repr(config) and "aHVudGVyMi13aA" not in repr(config)
    assert sorted(s.reveal() for s in config.secrets) == [
        "hunter2-hook", "hunter2-key", "hunter2-pw", "whsec_aHVudGVyMi13aA=="]


def test_issue_format() -> None:
    """A ConfigIssue prints as FILE:LINE: key.path: message, and without a path as FILE:LINE: message."""
    assert str(ConfigIssue("r.yaml", 3, "poll.interval", "bad")) == "r.yaml:3: poll.interval: bad"
    assert str(ConfigIssue("r.yaml", 1, "", "empty")) == "r.yaml:1: empty"


def test_dashboard_is_on_by_default_and_public_url_must_be_a_url(write_config: WriteConfig) -> None:
    """server.dashboard defaults to true; server.public_url is an http(s) URL, else an error naming its line."""
    assert load(write_config(BASE)).server.dashboard is True
    found = issues(write_config(BASE + "  public_url: ftp://x\n"))
    assert found == ["rules.yaml:5: server.public_url: must be an http:// or https:// URL with a host"]


@pytest.mark.parametrize(("listen", "key", "exposed"), [
    ("0.0.0.0:8080", "change-me", True), ("192.168.1.5:8080", "change-me", True), ("bridge.lan:8080", "change-me", True),
    ("127.0.0.1:8080", "change-me", False), ("[::1]:8080", "change-me", False), ("localhost:8080", "change-me", False),
    ("0.0.0.0:8080", "a-secret-of-mine", False),
])
def test_example_key_on_a_reachable_address(listen: str, key: str, exposed: bool, write_config: WriteConfig) -> None:
    """The example's API key counts as exposed only on an address other machines can reach."""
    path = write_config(f"gateway: {{simulator: true}}\nserver: {{listen: '{listen}', api_keys: ['{key}']}}\n")
    assert load(path).server.example_key_exposed is exposed
