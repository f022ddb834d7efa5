"""The bundled templates render every kind of event (or alert payload) into output their receivers parse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from sample_events import NOW, OWN, SENDER, device, inbound, status

from bridge.events import DeviceFacts, Event, EventType, device_event
from bridge.gateway.models import Status
from bridge.templating import (
    BUNDLED_TEMPLATES,
    TemplateEngine,
    TemplateError,
    is_gsm7,
    payload_context,
    sms_length,
    template_context,
)

FIXTURES = Path(__file__).parent / "fixtures"
NASTY = 'He said "hi"\n\t\\ </script> {{ 7*7 }} & <!channel> @everyone ü 🎉 \u2028 %s'


def outgoing(new: Status, kind: EventType = EventType.STATUS) -> Event:
    """An sms.status / sms.stuck event of a message from OWN to SENDER, sent for customer 5."""
    return status(new, kind, customer_id=5)


def phone(online: bool) -> Event:
    """A device.online / device.offline event of a phone titled with a quote to escape, never seen yet."""
    return device(online, 'Pixel "7"', last_seen=None)


EVENTS = {
    "inbound": inbound(),
    "inbound-nasty": inbound(NASTY),
    "inbound-empty": inbound(""),
    "status": outgoing(Status.DELIVERED),
    "status-failed": outgoing(Status.FAILED),
    "stuck": outgoing(Status.QUEUED, EventType.STUCK),
    "device-offline": phone(False),
    "device-online": phone(True),
}
JSON_PRESETS = sorted(p.name for p in BUNDLED_TEMPLATES.glob("[!_]*.json.j2"))


def render(name: str, event: Event, engine: TemplateEngine | None = None) -> str:
    """A preset rendered for `event` under rule `r`."""
    return (engine or TemplateEngine(None)).compile(name).render(**template_context(event, "r", {}, NOW))


def render_json(name: str, event: Event) -> Any:
    """A JSON preset rendered for `event`, parsed."""
    return json.loads(render(name, event))


def render_payload(name: str, payload: Any) -> str:
    """An alert preset rendered for a hook payload."""
    return TemplateEngine(None).compile(name).render(**payload_context(payload, NOW))


def strings(value: Any) -> list[str]:
    """Every string inside a parsed JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [text for item in value for text in strings(item)] if isinstance(value, list) else []


def alertmanager_fixture() -> dict[str, Any]:
    """The body a real Alertmanager 0.25 posted (two alerts shown, one truncated)."""
    return json.loads((FIXTURES / "alertmanager-v4-firing.json").read_text())


# --- JSON presets ------------------------------------------------------------------------------


def test_json_presets_are_found() -> None:
    """The JSON presets are bundled with the package."""
    assert JSON_PRESETS == ["discord.json.j2", "event.json.j2", "ntfy.json.j2", "slack.json.j2", "teams.json.j2"]


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
@pytest.mark.parametrize("name", JSON_PRESETS)
def test_json_preset_is_valid_json(name: str, event: Event) -> None:
    """Every JSON preset renders valid JSON for every kind of event and any SMS text."""
    assert isinstance(render_json(name, event), dict)


@pytest.mark.parametrize("event", EVENTS.values(), ids=EVENTS.keys())
def test_event_preset_is_the_event_json(event: Event) -> None:
    """event.json.j2 renders the same JSON as the default body."""
    assert render_json("event.json.j2", event) == event.to_json("r")


@pytest.mark.parametrize("name", JSON_PRESETS)
def test_sms_text_arrives_verbatim_in_json_presets(name: str) -> None:
    """The SMS text, quotes, newlines and template syntax included, is in the output unchanged."""
    assert any(NASTY in text for text in strings(render_json(name, inbound(NASTY))))


def test_slack_has_text_and_blocks() -> None:
    """The Slack preset has a notification text and Block Kit blocks starting with a header."""
    out = render_json("slack.json.j2", inbound())
    assert out["text"] == f"SMS from {SENDER}: INFO please" and out["blocks"][0]["type"] == "header"


def test_slack_escapes_sms_text_in_mrkdwn() -> None:
    """SMS text in Slack's mrkdwn cannot ping a channel or add links."""
    assert "&lt;!channel&gt; " in render_json("slack.json.j2", inbound(NASTY))["text"]


def test_slack_shows_the_sms_as_plain_text() -> None:
    """The SMS body block is plain_text, carrying the text unescaped."""
    block = render_json("slack.json.j2", inbound(NASTY))["blocks"][2]
    assert block["text"] == {"type": "plain_text", "text": NASTY, "emoji": False}


def test_slack_header_is_within_slacks_limit() -> None:
    """The header stays within Slack's 150 characters for a long device title."""
    event = device_event(False, DeviceFacts(1, "x" * 400, None, ()), NOW, "1")
    assert len(render_json("slack.json.j2", event)["blocks"][0]["text"]["text"]) <= 150


def test_discord_content_and_no_mentions() -> None:
    """The Discord preset is one `content` and disables mentions from SMS text."""
    out = render_json("discord.json.j2", inbound(NASTY))
    assert out["content"].startswith(f"**SMS from {SENDER}**") and out["allowed_mentions"] == {"parse": []}


def test_discord_content_fits_discords_limit() -> None:
    """Discord content stays within 2000 characters."""
    assert len(render_json("discord.json.j2", inbound("x" * 5000))["content"]) <= 2000


def test_teams_is_a_workflows_adaptive_card() -> None:
    """The Teams preset is a message with one Adaptive Card 1.4 attachment."""
    out = render_json("teams.json.j2", outgoing(Status.DELIVERED))
    attachment = out["attachments"][0]
    assert (out["type"], attachment["contentType"], attachment["content"]["type"],
            attachment["content"]["version"]) == (
        "message", "application/vnd.microsoft.card.adaptive", "AdaptiveCard", "1.4")


def test_teams_facts_are_strings() -> None:
    """Adaptive Card fact values are strings, numbers and nulls included."""
    facts = render_json("teams.json.j2", inbound())["attachments"][0]["content"]["body"][1]["facts"]
    assert all(isinstance(f["value"], str) for f in facts) and {"title": "To", "value": "-"} in facts


def test_ntfy_defaults_to_topic_sms() -> None:
    """The ntfy preset publishes to topic `sms` with the SMS text as message."""
    out = render_json("ntfy.json.j2", inbound())
    assert (out["topic"], out["message"], out["priority"]) == ("sms", "INFO please", 3)


def test_ntfy_topic_set_by_a_wrapping_template(tmp_path: Path) -> None:
    """A one-line template setting `topic` and including the preset chooses the topic."""
    (tmp_path / "alerts.json.j2").write_text('{% set topic = "alerts" %}{% include "ntfy.json.j2" %}')
    assert json.loads(render("alerts.json.j2", inbound(), TemplateEngine(tmp_path)))["topic"] == "alerts"


@pytest.mark.parametrize(("event", "priority"), [(outgoing(Status.FAILED), 4), (phone(False), 4),
                                                 (outgoing(Status.QUEUED, EventType.STUCK), 4), (phone(True), 3)])
def test_ntfy_raises_priority_of_trouble(event: Event, priority: int) -> None:
    """Failures, stuck messages and offline devices are high priority on ntfy."""
    assert render_json("ntfy.json.j2", event)["priority"] == priority


# --- Twilio form -------------------------------------------------------------------------------


def test_twilio_form_carries_the_message() -> None:
    """The Twilio form has MessageSid, From, To and Body, the body verbatim after form decoding."""
    form = parse_qs(render("twilio.form.j2", inbound(NASTY)), keep_blank_values=True, strict_parsing=True)
    assert (form["MessageSid"], form["From"], form["To"], form["Body"], form["SmsStatus"]) == (
        ["SM00000000000000000000000003b2d29b"], [SENDER], [""], [NASTY], ["received"])


@pytest.mark.parametrize(
    ("new", "twilio"),
    [(Status.PENDING, "queued"), (Status.QUEUED, "queued"), (Status.TAKEN, "sending"), (Status.SENT, "sent"),
     (Status.DELIVERED, "delivered"), (Status.NOT_DELIVERED, "undelivered"), (Status.FAILED, "failed"),
     (Status.RADIO_OFF, "failed"), (Status.NOT_ALLOWED, "failed"), (Status.UNKNOWN, "queued")],
)
def test_twilio_status_names(new: Status, twilio: str) -> None:
    """Upstream statuses map to Twilio's MessageStatus values."""
    form = parse_qs(render("twilio.form.j2", outgoing(new)))
    assert form["MessageStatus"] == [twilio] and form["From"] == [OWN] and form["To"] == [SENDER]


def test_twilio_form_of_a_device_event() -> None:
    """A device event becomes a form with the event type and the device."""
    form = parse_qs(render("twilio.form.j2", phone(False)), keep_blank_values=True, strict_parsing=True)
    assert form == {"EventType": ["device.offline"], "DeviceId": ["1576"], "DeviceTitle": ['Pixel "7"'],
                    "LastSeen": [""]}


def test_twilio_form_has_no_trailing_newline() -> None:
    """The form body ends with its last value, not whitespace."""
    assert not render("twilio.form.j2", inbound()).endswith(("\n", " "))


# --- alert presets -----------------------------------------------------------------------------

ALERTMANAGER_FIXTURE_TEXT = "[FIRING:2] HighTemp (critical)\n- instance=a: Temp high on a\n- instance=b\n+1 more"


def test_alertmanager_fixture() -> None:
    """The real Alertmanager body becomes a short SMS: title, one line per alert, the truncated count."""
    assert render_payload("alertmanager.txt.j2", alertmanager_fixture()) == ALERTMANAGER_FIXTURE_TEXT


def test_alertmanager_resolved() -> None:
    """A resolved group says RESOLVED without a count."""
    payload = alertmanager_fixture() | {"status": "resolved", "truncatedAlerts": 0}
    payload["alerts"] = [a | {"status": "resolved"} for a in payload["alerts"]]
    assert render_payload("alertmanager.txt.j2", payload).startswith("[RESOLVED] HighTemp (critical)\n")


def test_alertmanager_marks_resolved_alerts_in_a_firing_group() -> None:
    """An alert whose status differs from the group's is marked."""
    payload = alertmanager_fixture()
    payload["alerts"][1] = payload["alerts"][1] | {"status": "resolved"}
    assert "- RESOLVED instance=b" in render_payload("alertmanager.txt.j2", payload)


def test_alertmanager_common_summary_is_said_once() -> None:
    """A summary common to all alerts is shown once under the title."""
    payload = alertmanager_fixture() | {"commonAnnotations": {"summary": "Hot"}, "truncatedAlerts": 0}
    assert render_payload("alertmanager.txt.j2", payload) == (
        "[FIRING:2] HighTemp (critical)\nHot\n- instance=a\n- instance=b")


def test_alertmanager_many_alerts_fit_two_segments() -> None:
    """A large group is cut to two SMS segments."""
    payload = alertmanager_fixture()
    payload["alerts"] = [payload["alerts"][0] | {"labels": {"alertname": "HighTemp", "instance": f"host-{i}"}}
                         for i in range(50)]
    text = render_payload("alertmanager.txt.j2", payload)
    assert sms_length(text) <= 306 and is_gsm7(text) and text.endswith("...")


def test_alertmanager_payload_without_alerts_is_an_error() -> None:
    """A body that is not an Alertmanager payload fails to render (the hook answers 4xx)."""
    with pytest.raises(TemplateError):
        render_payload("alertmanager.txt.j2", {"hello": "world"})


def test_grafana_unified_alerting() -> None:
    """A Grafana unified-alerting body (Alertmanager-shaped) renders like Alertmanager's."""
    payload = alertmanager_fixture() | {"title": "[FIRING:2] HighTemp", "state": "alerting", "orgId": 1,
                                        "message": "long default text"}
    assert render_payload("grafana.txt.j2", payload) == ALERTMANAGER_FIXTURE_TEXT


def test_grafana_legacy_alert() -> None:
    """A legacy Grafana alert renders its state, title and message."""
    payload = {"title": "[Alerting] CPU", "state": "alerting", "message": "CPU above 90%", "ruleId": 1}
    assert render_payload("grafana.txt.j2", payload) == "[ALERTING] [Alerting] CPU\nCPU above 90%"


def test_grafana_legacy_long_message_is_cut() -> None:
    """A long legacy message is cut to two SMS segments."""
    payload = {"title": "CPU", "state": "ok", "message": "y" * 1000}
    assert sms_length(render_payload("grafana.txt.j2", payload)) <= 306
