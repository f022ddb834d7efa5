"""`sms-bridge route`: a dry run printing the matching rules, their rendered actions and safety verdicts."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.cli import main

CONFIG = """
gateway:
  simulator: true
  device_id: 1576
  timezone: Europe/Paris
server:
  enabled: false
webhooks:
  crm: {url: "http://127.0.0.1:9/hook"}
  chat: {url: "http://127.0.0.1:9/chat", template: discord.json.j2}
rules:
  - name: info
    match: {event: inbound, keyword: INFO}
    actions:
      - reply: "Hours 9-17, {{ sms.from }}"
      - webhook: crm
    stop: true
  - name: order
    match: {event: inbound, body_regex: 'order (?P<n>\\d+)'}
    actions:
      - reply: "Order {{ match.n }} is on its way"
      - webhook: chat
  - name: broken
    match: {event: inbound, keyword: BROKEN}
    actions:
      - reply: "{{ sms.nope }}"
  - name: night
    match: {event: inbound, keyword: NIGHT, between: "22:00-06:00"}
    actions:
      - reply: "We sleep"
  - name: unsubscribe
    match: {event: inbound, keyword: STOP}
    actions:
      - reply: "You will get no more messages"
  - name: reports
    match: {event: status, status: [delivered, failed]}
    actions:
      - webhook: {target: crm, template: ntfy.json.j2}
  - name: phones
    match: {event: device_offline}
    actions:
      - send: {to: "+4930123456", text: "{{ device.title }} is offline"}
  - name: fallback
    default: true
    actions:
      - reply: "Send INFO for our hours"
"""


@pytest.fixture
def route(write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """Runs `sms-bridge route -c CONFIG ARGS…` and returns the exit code and what it printed."""
    path = write_config(CONFIG)

    def run(*args: str) -> tuple[int, str]:
        code = main(["route", "-c", str(path), *args])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    return run


def test_inbound_keyword_prints_the_rule_and_its_rendered_reply(route: Callable[..., tuple[int, str]]) -> None:
    """An inbound INFO shows the info rule and its reply rendered for the sender, exit 0."""
    code, out = route("--event", "inbound", "--from", "+4912312312332", "--body", "info please")
    assert code == 0
    assert "rule info\n" in out
    assert 'reply to +4912312312332 (device 1576, SIM 0): "Hours 9-17, +4912312312332"' in out


def test_stop_rule_hides_later_rules(route: Callable[..., tuple[int, str]]) -> None:
    """A stop: true rule ends the listing, as it ends routing."""
    _, out = route("--from", "+4912312312332", "--body", "INFO order 5")
    assert "rule order" not in out


def test_default_webhook_body_is_the_event_json(route: Callable[..., tuple[int, str]]) -> None:
    """A webhook without a template shows the event JSON it would post."""
    _, out = route("--from", "+4912312312332", "--body", "INFO")
    line = next(line for line in out.splitlines() if line.strip().startswith('{"id"'))
    assert json.loads(line)["sms"]["body"] == "INFO" and "webhook crm (event JSON, application/json):" in out


def test_regex_groups_and_target_template(route: Callable[..., tuple[int, str]]) -> None:
    """The named groups are shown and the target's template renders the webhook body."""
    _, out = route("--from", "+4912312312332", "--body", "where is order 42")
    assert "rule order n='42'" in out and "Order 42 is on its way" in out
    assert "webhook chat (discord.json.j2, application/json):" in out and '"allowed_mentions"' in out


def test_default_rule_when_nothing_matches(route: Callable[..., tuple[int, str]]) -> None:
    """An inbound SMS no rule matches shows the default rule."""
    _, out = route("--from", "+4912312312332", "--body", "hello")
    assert "rule fallback (default)" in out and "Send INFO for our hours" in out


def test_render_error_is_shown_and_exits_1(route: Callable[..., tuple[int, str]]) -> None:
    """A reply that fails to render is listed as FAILED with the reason, and `route` exits 1."""
    code, out = route("--from", "+4912312312332", "--body", "BROKEN")
    assert code == 1 and "FAILED action 0: inline template: 'dict object' has no attribute 'nope'" in out


def test_a_route_whose_actions_all_render_exits_0(route: Callable[..., tuple[int, str]]) -> None:
    """A dry run whose every action renders exits 0."""
    code, _ = route("--from", "+4912312312332", "--body", "order 12")
    assert code == 0


@pytest.mark.parametrize(("at", "matches"), [("2026-11-24T23:30", True), ("2026-11-24T12:00", False)])
def test_at_sets_the_routing_time(route: Callable[..., tuple[int, str]], at: str, matches: bool) -> None:
    """--at routes as if at that time in the gateway's zone."""
    _, out = route("--from", "+4912312312332", "--body", "NIGHT", "--at", at)
    assert ("rule night" in out) is matches


def test_alphanumeric_sender_is_flagged(route: Callable[..., tuple[int, str]]) -> None:
    """An alphanumeric sender gets a safety note and its reply is marked as refused."""
    _, out = route("--from", "DHL", "--body", "INFO parcel")
    assert "safety: DHL is an alphanumeric sender id" in out
    assert "would be refused: the recipient is an alphanumeric sender id" in out


def test_opt_out_keyword_is_flagged(route: Callable[..., tuple[int, str]]) -> None:
    """A STOP message says the sender is opted out, and a reply to it is marked as refused."""
    _, out = route("--from", "+4912312312332", "--body", "Stop")
    assert "safety: STOP is an opt-out keyword" in out and "would be refused: the recipient opted out" in out


def test_status_event(route: Callable[..., tuple[int, str]]) -> None:
    """--event status --status delivered --sms-id N routes a status change."""
    code, out = route("--event", "status", "--status", "delivered", "--sms-id", "62050971", "--to", "+491")
    assert code == 0 and "event: sms.status" in out and "webhook crm (ntfy.json.j2, application/json):" in out


def test_device_event(route: Callable[..., tuple[int, str]]) -> None:
    """--event device_offline routes a device event for the given device."""
    _, out = route("--event", "device_offline", "--device-id", "7")
    assert 'send to +4930123456 (default device, default SIM): "device 7 is offline"' in out


def test_no_rule_matches(route: Callable[..., tuple[int, str]]) -> None:
    """An event no rule matches says so and exits 0."""
    code, out = route("--event", "status", "--status", "sent")
    assert code == 0 and "no rule matches" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--event", "inbound", "--from", "+491"), "needs --from and --body"),
     (("--from", "+491", "--body", "x", "--at", "tomorrow"), "not an ISO 8601 time")],
)
def test_bad_options_exit_1(route: Callable[..., tuple[int, str]], args: tuple[str, ...], message: str) -> None:
    """Missing or malformed options end the command with exit 1 and a message."""
    code, out = route(*args)
    assert code == 1 and message in out


def test_rule_compile_error_exits_1(write_config: Callable[[str], Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A rule the router cannot compile (an empty time window) exits 1 naming its key path."""
    path = write_config("""
        gateway: {simulator: true}
        server: {enabled: false}
        rules:
          - name: never
            match: {between: "09:00-09:00"}
            actions: [{opt_out: true}]
        """)
    assert main(["route", "-c", str(path), "--from", "+491", "--body", "x"]) == 1
    assert "rules[0].match.between: " in capsys.readouterr().err
