"""Shared pieces of the fuzz suites: bounded hypothesis settings and strategies for YAML and JSON values.

`FUZZ_EXAMPLES` (environment) raises the example count for a longer local run; CI keeps the default.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    # Tests reuse one tmp file per test; every example overwrites it, so sharing the fixture is safe.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- YAML configs ---------------------------------------------------------------------------------

# Every character YAML treats as a line break: a located issue's line is at most their count + 1.
_LINE_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def line_count(text: str) -> int:
    """How many lines a YAML parser sees in `text` (at least 1)."""
    return len(_LINE_BREAKS.findall(text)) + 1


# Values shaped like what the config expects, near misses, and the extremes the parsers must survive.
PLAUSIBLE = (
    "0", "500ms", "15s", "5m", "2h", "1d", "1.5s", "-5s", "5 m", "5x", "9" * 400 + "s",
    "20/5m", "50/1s", "0/1s", "1/0s", "3/m", "9" * 5000 + "/1s",
    "Europe/Paris", "America/Los_Angeles", "UTC", "Mars/Olympus", "../../etc/passwd", "a\x00b",
    "http://127.0.0.1:9/x", "https://crm.example.com/hooks/sms", "ftp://x", "http://", "http://[::1", "http://a:99999/",
    "127.0.0.1:8080", "[::1]:8080", "host:99999", ":80", "localhost",
    "INFO", "two words", "!!", "(?i)order\\s+(\\d+)", "(", "a{99999999999}", "(" * 1500 + ")" * 1500,
    "{{ sms.from }}", "{{", "{% for %}", "{{ 7*7 }}", "x.j2", "slack.json.j2", "../../x.j2", "a" * 5000 + ".j2",
    "${VAR}", "${VAR:-fallback}", "${MISSING}", "${}", "${1BAD}", "$${literal}", "${VAR", "${SECRET}",
    "whsec_aGVsbG8gd29ybGQ=", "whsec_", "not base64!",
    "09:00-17:00", "22:00-06:00", "09:00-09:00", "25:00-26:00", "mon-fri", "fri-mon", "funday",
    "+4915752982212", "015752982212", "DE", "XX", "inbound", "status", "delivered", "nope",
    "alertmanager", "grafana", "generic", "normal", "full", "demo@example.com", "no-at-sign",
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=30),
    st.sampled_from(PLAUSIBLE),
)


def values(leaf: st.SearchStrategy[Any] = scalars) -> st.SearchStrategy[Any]:
    """Scalars, and small lists and mappings of them, nested a little."""
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(("a", "to", "text", "x")), st.text(max_size=8)),
                            inner, max_size=4),
        ),
        max_leaves=12,
    )


def record(keys: tuple[str, ...], value: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping of some of `keys` (and now and then an unknown one) to `value`s."""
    return st.dictionaries(st.one_of(st.sampled_from(keys), st.sampled_from(("bogus", "URL", "Timeout"))),
                           value, max_size=len(keys) + 1)


GATEWAY_KEYS = ("url", "email", "password", "token", "device_id", "sim", "timezone", "default_region",
                "webhook_secret", "simulator", "timeout", "max_per_minute")
POLL_KEYS = ("interval", "lookback", "overlap", "backfill", "devices_interval", "device_offline_after",
             "stuck_after", "unhealthy_after")
STORAGE_KEYS = ("synchronous",)  # `path` stays unset: a generated path must not create files anywhere
SERVER_KEYS = ("enabled", "listen", "api_keys", "rate_limit", "max_body_chars", "max_request_bytes")
WEBHOOK_KEYS = ("url", "template", "headers", "secret", "timeout", "retry", "concurrency")
INBOUND_KEYS = ("to", "template", "preset", "device_id", "sim")
SAFETY_KEYS = ("opt_out_keywords", "opt_in_keywords", "reply_cooldown", "loop_limit")
MATCH_KEYS = ("event", "keyword", "body_regex", "from", "to", "device_id", "sim", "status", "between", "days",
              "timezone", "not")
ACTION_KEYS = ("reply", "send", "webhook", "tag", "opt_out", "opt_in")
ACTION_FIELDS = ("text", "to", "target", "template", "tag_id", "name", "device_id", "sim", "allow_alphanumeric",
                 "allow_own_numbers")

_any = values()
_action = st.dictionaries(st.sampled_from(ACTION_KEYS), st.one_of(scalars, record(ACTION_FIELDS, _any)),
                          min_size=1, max_size=2)
_rule = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.sampled_from(("info", "hours", "info")), scalars),
        "match": st.one_of(record(MATCH_KEYS, _any), scalars),
        "actions": st.one_of(st.lists(st.one_of(_action, scalars), max_size=3), scalars),
        "stop": scalars,
        "default": scalars,
    },
)
_names = st.sampled_from(("crm", "slack", "alertmanager", "grafana", "bad name", "ci"))

configs = st.fixed_dictionaries(
    {},
    optional={
        # Usually a usable base, so that generated values deeper down are reached and judged.
        "gateway": st.one_of(st.just({"simulator": True}), record(GATEWAY_KEYS, _any), scalars),
        "server": st.one_of(st.just({"enabled": False}), record(SERVER_KEYS, _any), scalars),
        "poll": st.one_of(record(POLL_KEYS, _any), scalars),
        "storage": st.one_of(record(STORAGE_KEYS, _any), scalars),
        "webhooks": st.one_of(st.dictionaries(_names, st.one_of(record(WEBHOOK_KEYS, _any), scalars), max_size=3),
                              scalars),
        "inbound": st.one_of(st.dictionaries(_names, st.one_of(record(INBOUND_KEYS, _any), scalars), max_size=3),
                             scalars),
        "safety": st.one_of(record(SAFETY_KEYS, _any), scalars),
        "rules": st.one_of(st.lists(st.one_of(_rule, scalars), max_size=4), scalars),
        "extra": _any,
    },
)

# Pieces of YAML syntax: joined at random they make text that is often nearly a config.
YAML_TOKENS = (
    "gateway:", "poll:", "server:", "rules:", "webhooks:", "storage:", "safety:", "inbound:", "templates_dir:",
    "  simulator: true", "  enabled: false", "  interval: 5m", "  - name: x", "    match:", "    actions:",
    "      - reply: hi", "- ", "  ", "\t", ": ", "\n", "\r\n", "\r", "\u2028", "\x85", "&a ", "*a", "<<: *a", "!!str ",
    "!!binary ", "!!python/name:os.system ", "? ", "| ", "> ", "---", "...", "%YAML 1.1", "# c", "'", '"', "{", "}",
    "[", "]", ",", "${X}", "${X:-1}", "$${", "\\u0000", "\ufeff", "\x00", "\ud800", "9" * 5000, "~", "null",
    "1e400", "0x1F", "2026-10-25", "2001-13-14", "yes", "on",
)
yaml_texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(YAML_TOKENS), st.text(max_size=5)), max_size=40).map("".join),
)

environments = st.dictionaries(st.sampled_from(("X", "VAR", "SECRET", "A")),
                               st.one_of(st.text(max_size=10), st.sampled_from(PLAUSIBLE)), max_size=4)

# --- JSON answers ---------------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),  # json.loads gives NaN and Infinity too
    st.text(max_size=20),
    st.sampled_from(("", " ", "0", "1", "-1", "15.0", "1e400", "nan", "null", "None", "true", "ok", " 4915752982212",
                     "62050971", "2023-11-02 22:44:43.000000", "0001-01-01 00:00:00", "9999-12-31 23:59:59",
                     "02.11.2023 22:44:43", "Europe/Paris", "CEST", "+01:00", "-23:59", "+25:00", "Not/AZone",
                     "../../etc/passwd", "[]", "{}", '[{"Slot": "0"}]', "[" * 2000)),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=20,
)

_date_objects = st.one_of(
    json_values,
    st.fixed_dictionaries({"date": json_values}, optional={"timezone_type": json_values, "timezone": json_values}),
    st.fixed_dictionaries({"date": st.sampled_from(("2023-11-02 22:44:43.000000", "0001-01-01 00:00:00.000000",
                                                    "9999-12-31 23:59:59.000000"))},
                          optional={"timezone_type": st.sampled_from((1, 2, 3, "3", None)),
                                    "timezone": st.sampled_from(("Europe/Paris", "UTC", "+14:00", "-12:00", "CEST",
                                                                 "Mars/Base", "", "+99:00"))}),
)
_sms_item = st.fixed_dictionaries(
    {},
    optional={key: json_values for key in ("id", "sendto", "body", "customerid", "status", "statustitle", "deviceid",
                                           "device_id", "urgent", "sim", "paketid")}
    | {"created": _date_objects, "senttime": _date_objects, "timetosend": _date_objects},
)
_envelope = {"error": st.one_of(st.sampled_from((0, "0", None, False, "", 1, "1", True, "yes")), json_values),
             "message": json_values}
sms_answers = st.fixed_dictionaries(
    {},
    optional={
        **_envelope,
        "count": json_values,
        "smss": st.one_of(st.dictionaries(st.one_of(st.text(max_size=10), st.integers().map(str)),
                                          st.one_of(_sms_item, json_values), max_size=4),
                          st.lists(st.one_of(_sms_item, json_values), max_size=4), json_values),
    },
)
_sim_info = st.fixed_dictionaries({}, optional={key: json_values for key in (
    "Slot", "slot", "Number", "number", "IccId", "CarrierName", "CountryIso", "Roaming")})
_device_item = st.fixed_dictionaries(
    {},
    optional={key: json_values for key in ("id", "title", "number", "imei", "serialnumber", "appversion",
                                           "subscription", "createdhumanformat", "lastseenhumanformat",
                                           "delaybetweeneachsms")}
    | {"created": _date_objects, "lastseen": _date_objects,
       "siminfo": st.one_of(st.lists(st.one_of(_sim_info, json_values), max_size=3),
                            st.lists(_sim_info, max_size=3).map(json.dumps),
                            json_values)},
)
device_answers = st.fixed_dictionaries(
    {},
    optional={**_envelope, "count": json_values,
              "device": st.one_of(st.dictionaries(st.text(max_size=10), st.one_of(_device_item, json_values),
                                                  max_size=3), json_values)},
)
