"""POST /v1/hooks/{name}: Alertmanager, Grafana and generic JSON become SMS; bad payloads are 4xx, never 5xx."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from api_support import ALERT_TO, Bridge
from simulator_control import SimulatorControl

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def alertmanager_payload() -> dict[str, Any]:
    """The body a real Alertmanager 0.25 posted (see tests/fixtures)."""
    return json.loads((FIXTURES / "alertmanager-v4-firing.json").read_text(encoding="utf-8"))


def grafana_payload() -> dict[str, Any]:
    """A Grafana unified-alerting webhook body."""
    return {
        "receiver": "sms", "status": "firing", "orgId": 1, "version": "1", "groupKey": "{}:{}",
        "title": "[FIRING:1] DiskFull", "state": "alerting", "message": "disk is full",
        "groupLabels": {"alertname": "DiskFull"}, "commonLabels": {"alertname": "DiskFull", "host": "db1"},
        "commonAnnotations": {"summary": "Disk 98% full on db1"}, "externalURL": "http://grafana:3000/",
        "truncatedAlerts": 0,
        "alerts": [{
            "status": "firing", "labels": {"alertname": "DiskFull", "host": "db1"},
            "annotations": {"summary": "Disk 98% full on db1"}, "startsAt": "2026-11-27T16:00:00Z",
            "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "", "fingerprint": "abc", "silenceURL": "",
            "dashboardURL": "", "panelURL": "", "values": {"B": 98.2}, "valueString": "[ var='B' value=98.2 ]",
        }],
    }


async def test_alertmanager_fixture_becomes_one_sms_to_the_hook_numbers(bridge: Bridge, sim: SimulatorControl) -> None:
    """The real Alertmanager v4 body is queued (202) and sent as one SMS naming the alert group."""
    response = await bridge.send(alertmanager_payload(), path="/v1/hooks/alertmanager")
    assert response.status == 202
    message = await bridge.settled((await response.json())["id"])
    [sent] = await sim.sent()
    assert message["source"] == "hook:alertmanager" and sent["to"] == ALERT_TO
    assert sent["body"].startswith("[FIRING:2] HighTemp (critical)")
    assert "instance=a: Temp high on a" in sent["body"] and "+1 more" in sent["body"]


async def test_alertmanager_resolved_group_says_so(bridge: Bridge, sim: SimulatorControl) -> None:
    """A resolved notification is sent with RESOLVED in its title."""
    payload = alertmanager_payload()
    payload["status"] = "resolved"
    for alert in payload["alerts"]:
        alert["status"] = "resolved"
    response = await bridge.send(payload, path="/v1/hooks/alertmanager")
    await bridge.settled((await response.json())["id"])
    assert (await sim.sent())[0]["body"].startswith("[RESOLVED] HighTemp")


async def test_alertmanager_repeats_are_not_deduplicated(bridge: Bridge, sim: SimulatorControl) -> None:
    """The same group notified twice (a repeat_interval) is two SMS: groupKey is not a dedupe key."""
    for _ in range(2):
        response = await bridge.send(alertmanager_payload(), path="/v1/hooks/alertmanager")
        await bridge.settled((await response.json())["id"])
    assert len(await sim.sent()) == 2


def _broken(path: str, value: Any) -> dict[str, Any]:
    payload = alertmanager_payload()
    target: Any = payload
    keys = path.split(".")
    for key in keys[:-1]:
        target = target[int(key)] if key.isdigit() else target[key]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[int(keys[-1]) if keys[-1].isdigit() else keys[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (_broken("alerts", KeyError), "alerts"),
        (_broken("alerts", []), "alerts"),
        (_broken("alerts", "HighTemp"), "alerts"),
        (_broken("alerts.0", "x"), "alerts[0]"),
        (_broken("alerts.1.labels", KeyError), "alerts[1].labels"),
        (_broken("alerts.0.labels", {"severity": 3}), "alerts[0].labels"),
        (_broken("alerts.0.annotations", ["summary"]), "alerts[0].annotations"),
        (_broken("alerts.0.status", "pending"), "alerts[0].status"),
        (_broken("status", KeyError), "status"),
        (_broken("version", "3"), "version"),
        (_broken("commonLabels", "x"), "commonLabels"),
        (_broken("truncatedAlerts", "1"), "truncatedAlerts"),
    ],
)
async def test_unusable_alertmanager_payload_is_400_naming_the_field(bridge: Bridge, payload: dict, field: str
                                                                    ) -> None:
    """A body that is not an Alertmanager v4 notification is a 400 (Alertmanager does not retry 4xx)."""
    response = await bridge.send(payload, path="/v1/hooks/alertmanager")
    assert response.status == 400
    assert (await response.json())["field"] == field


@pytest.mark.parametrize("payload", [[], "firing", 42, None, {}, {"alerts": [{}]}, {"receiver": {"a": [1, {}]}}])
async def test_garbage_to_a_preset_hook_is_4xx(bridge: Bridge, payload: Any) -> None:
    """Any JSON an alert preset cannot use is a 4xx, never a 5xx."""
    for name in ("alertmanager", "grafana"):
        response = await bridge.send(payload, path=f"/v1/hooks/{name}")
        assert 400 <= response.status < 500, (name, payload, response.status)


async def test_grafana_alert_group_becomes_an_sms(bridge: Bridge, sim: SimulatorControl) -> None:
    """A Grafana alerting notification is sent with its title line and summary."""
    response = await bridge.send(grafana_payload(), path="/v1/hooks/grafana")
    assert response.status == 202
    await bridge.settled((await response.json())["id"])
    body = (await sim.sent())[0]["body"]
    assert body.startswith("[FIRING:1] DiskFull") and "Disk 98% full on db1" in body


async def test_grafana_legacy_alert_becomes_an_sms(bridge: Bridge, sim: SimulatorControl) -> None:
    """A legacy Grafana alert (state, title, message; no alerts) is sent too."""
    payload = {"state": "alerting", "title": "CPU high", "message": "cpu at 99%", "ruleId": 1}
    response = await bridge.send(payload, path="/v1/hooks/grafana")
    await bridge.settled((await response.json())["id"])
    assert (await sim.sent())[0]["body"] == "[ALERTING] CPU high\ncpu at 99%"


async def test_generic_hook_renders_its_template_to_every_number(bridge: Bridge, sim: SimulatorControl) -> None:
    """A generic hook renders its template with `payload` and sends to each of its numbers."""
    response = await bridge.send({"build": 812, "result": "failed"}, path="/v1/hooks/ci")
    await bridge.settled((await response.json())["id"])
    sent = await sim.sent()
    assert sorted(s["to"] for s in sent) == [ALERT_TO, "+4915752982213"]
    assert {s["body"] for s in sent} == {"Build 812 FAILED"}


async def test_generic_hook_template_error_is_422(bridge: Bridge, sim: SimulatorControl) -> None:
    """A payload the template cannot render (a missing key) is a 422 and nothing is queued."""
    response = await bridge.send({"result": "failed"}, path="/v1/hooks/ci")
    assert response.status == 422
    assert "build" in (await response.json())["error"]


async def test_generic_hook_without_template_sends_the_text_field(bridge: Bridge, sim: SimulatorControl) -> None:
    """Without a template a generic hook sends the payload's text field."""
    response = await bridge.send({"text": "backup done", "level": "info"}, path="/v1/hooks/plain")
    await bridge.settled((await response.json())["id"])
    assert (await sim.sent())[0]["body"] == "backup done"


async def test_generic_hook_without_text_sends_the_json(bridge: Bridge, sim: SimulatorControl) -> None:
    """Without a template or a text field a generic hook sends the payload as compact JSON."""
    response = await bridge.send({"level": "info", "n": 2}, path="/v1/hooks/plain")
    await bridge.settled((await response.json())["id"])
    assert (await sim.sent())[0]["body"] == '{"level":"info","n":2}'


async def test_long_rendered_text_is_cut_to_the_body_limit(bridge: Bridge, sim: SimulatorControl) -> None:
    """A rendered text over server.max_body_chars is cut with an ellipsis rather than refused."""
    response = await bridge.send({"text": "x" * 5000}, path="/v1/hooks/plain")
    await bridge.settled((await response.json())["id"])
    body = (await sim.sent())[0]["body"]
    assert len(body) == 1600 and body.endswith("…")


async def test_unknown_hook_is_404(bridge: Bridge) -> None:
    """A hook name that is not configured is a JSON 404."""
    response = await bridge.send({"a": 1}, path="/v1/hooks/nagios")
    assert response.status == 404
    assert "nagios" in (await response.json())["error"]


async def test_alert_with_many_alerts_still_fits(bridge: Bridge, sim: SimulatorControl) -> None:
    """A group of 200 alerts renders to a bounded SMS (the preset cuts it to two segments)."""
    payload = alertmanager_payload()
    template = payload["alerts"][0]
    payload["alerts"] = [copy.deepcopy(template) | {"labels": {**template["labels"], "instance": f"i{i}"}}
                         for i in range(200)]
    response = await bridge.send(payload, path="/v1/hooks/alertmanager")
    await bridge.settled((await response.json())["id"])
    assert len((await sim.sent())[0]["body"]) <= 306


async def test_a_nul_in_a_hook_payload_is_sent_whole(bridge: Bridge, sim: SimulatorControl) -> None:
    """A rendered hook text holding a NUL character reaches the upstream whole."""
    response = await bridge.send({"text": "disk\u0000full"}, path="/v1/hooks/plain")
    assert response.status == 202
    await bridge.settled((await response.json())["id"])
    assert [s["body"] for s in await sim.sent()] == ["disk\x00full"]
