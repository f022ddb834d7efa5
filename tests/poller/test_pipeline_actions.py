"""The pipeline's routing and stateful safety: actions are written with their event, and only when safe."""

from __future__ import annotations

import json
import logging

import pytest
from poller_support import Harness, MakeHarness

from bridge.config import ActionConfig, ActionKind, MatchConfig, RuleConfig, SafetyConfig

INFO = RuleConfig(
    name="info",
    match=MatchConfig(event=("inbound",), keyword=("INFO",)),
    actions=(ActionConfig(ActionKind.REPLY, text="Hours: 9-17"), ActionConfig(ActionKind.WEBHOOK, webhook="crm")),
)
REPORTS = RuleConfig(
    name="reports",
    match=MatchConfig(event=("status",), status=("delivered",)),
    actions=(ActionConfig(ActionKind.WEBHOOK, webhook="crm"),),
)


async def _routed(make_harness: MakeHarness, **kwargs: object) -> Harness:
    bridge = await make_harness(rules=(INFO, REPORTS), **kwargs)
    await bridge.poller.check_devices()
    await bridge.poller.poll_once()
    return bridge


async def _sends(bridge: Harness) -> list[dict]:
    rows = await bridge.store.fetch_all(
        "SELECT s.source, s.body, s.event_id, s.is_reply, s.device_id, r.number FROM sends s "
        "JOIN recipients r ON r.send_id = s.id ORDER BY s.created_ts, r.id"
    )
    return [dict(row) for row in rows]


async def _outbox(bridge: Harness) -> list[dict]:
    rows = await bridge.store.fetch_all("SELECT event_id, kind, target, rule, spec FROM outbox ORDER BY id")
    return [dict(row) for row in rows]


async def test_matching_rule_queues_its_reply_and_webhook_with_the_event(make_harness: MakeHarness) -> None:
    """An inbound INFO queues the rule's reply and webhook rows, tied to the event, and wakes both workers."""
    bridge = await _routed(make_harness)
    woken: list[str] = []
    bridge.pipeline.on_sends = lambda: woken.append("sender")
    bridge.pipeline.on_deliveries = lambda: woken.append("delivery")
    await bridge.inbound("+4917642111111", "info please", device_id=1297)
    await bridge.poller.poll_once()
    (event,) = await bridge.events()
    (send,) = await _sends(bridge)
    assert send == {"source": "rule:info", "body": "Hours: 9-17", "event_id": event["id"], "is_reply": 1,
                    "device_id": 1297, "number": "+4917642111111"}
    (delivery,) = await _outbox(bridge)
    assert (delivery["event_id"], delivery["kind"], delivery["target"], delivery["rule"]) == \
        (event["id"], "webhook", "crm", "info")
    assert sorted(woken) == ["delivery", "sender"]


async def test_status_rule_delivers_the_status_event(make_harness: MakeHarness) -> None:
    """A rule on delivered statuses queues a webhook for the sms.status event and nothing for other steps."""
    bridge = await _routed(make_harness)
    await bridge.submit()
    bridge.advance(5 * 60)  # past the whole walk at the harness pace
    await bridge.poller.poll_once()
    (event,) = await bridge.events("sms.status")
    assert [(d["event_id"], d["rule"]) for d in await _outbox(bridge)] == [(event["id"], "reports")]


async def test_reply_cooldown_allows_one_reply_per_sender_and_rule(make_harness: MakeHarness) -> None:
    """A second INFO from the same sender within safety.reply_cooldown gets no second reply; after it, one more."""
    bridge = await _routed(make_harness, safety=SafetyConfig(reply_cooldown=300))
    for wait in (0, 60, 300):
        bridge.advance(wait)
        await bridge.inbound("+4917642111111", "INFO")
        await bridge.poller.poll_once()
    assert len(await bridge.events()) == 3
    assert len(await _sends(bridge)) == 2
    assert len(await _outbox(bridge)) == 3


async def test_no_reply_to_an_alphanumeric_sender(make_harness: MakeHarness) -> None:
    """An SMS from a sender id with letters gets no auto-reply; its webhook still goes."""
    bridge = await _routed(make_harness)
    await bridge.inbound("DHL", "INFO your parcel")
    await bridge.poller.poll_once()
    assert await _sends(bridge) == []
    assert len(await _outbox(bridge)) == 1


async def test_no_reply_to_the_accounts_own_number(make_harness: MakeHarness) -> None:
    """An SMS from one of the account's own SIM numbers (a gateway texting itself) gets no auto-reply."""
    bridge = await _routed(make_harness)
    await bridge.inbound("+49 159 00000002", "INFO")
    await bridge.poller.poll_once()
    assert await _sends(bridge) == []


@pytest.mark.parametrize("sender", ["015100000001", "004915100000001", "4915100000001", "15555215554"])
async def test_no_reply_to_the_accounts_own_number_in_any_spelling(make_harness: MakeHarness, sender: str) -> None:
    """A SIM of the account texting INFO gets no auto-reply however its number is spelled: national, 00…, or
    the digits without the `+` the upstream loses."""
    bridge = await _routed(make_harness, default_region="DE")
    await bridge.inbound(sender, "INFO", device_id=1576)
    await bridge.poller.poll_once()
    assert await _sends(bridge) == []


async def test_reply_cooldown_holds_across_spellings(make_harness: MakeHarness) -> None:
    """INFO from one number spelled +49…, 0049…, 49… and 0… within the cooldown gets one reply."""
    bridge = await _routed(make_harness, safety=SafetyConfig(reply_cooldown=300), default_region="DE")
    for sender in ("+4917642111111", "004917642111111", "4917642111111", "017642111111"):
        bridge.advance(10)
        await bridge.inbound(sender, "INFO")
        await bridge.poller.poll_once()
    assert len(await bridge.events()) == 4
    assert len(await _sends(bridge)) == 1


async def test_opt_out_keyword_acts_without_any_rule(bridge: Harness) -> None:
    """STOP puts the sender on the opt-out list with no rule configured, and START takes it off."""
    await bridge.poller.poll_once()
    await bridge.inbound("+33 6 12 34 56 78", "Stop please")
    await bridge.poller.poll_once()
    assert [r["number"] for r in await bridge.store.fetch_all("SELECT number FROM opt_outs")] == ["+33612345678"]
    await bridge.inbound("+33612345678", "START")
    await bridge.poller.poll_once()
    assert await bridge.store.fetch_all("SELECT number FROM opt_outs") == []


async def test_webhook_spec_carries_the_template_override_and_match_groups(make_harness: MakeHarness) -> None:
    """A webhook action's outbox row keeps its template override and the body_regex groups for rendering."""
    rule = RuleConfig(name="orders", match=MatchConfig(body_regex=r"(?i)order\s+(?P<order>\d+)"),
                      actions=(ActionConfig(ActionKind.WEBHOOK, webhook="crm", template="{{ match.order }}"),))
    bridge = await make_harness(rules=(rule,))
    await bridge.poller.poll_once()
    await bridge.inbound(body="Order 12345: where is it?")
    await bridge.poller.poll_once()
    (delivery,) = await _outbox(bridge)
    assert json.loads(delivery["spec"]) == {"match": {"order": "12345"}, "template": "{{ match.order }}"}


# --- safety in the log ---------------------------------------------------------------------------


def bridge_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The INFO messages the pipeline logged, in order."""
    return [r.getMessage() for r in caplog.records if r.name == "bridge.pipeline" and r.levelno == logging.INFO]


async def test_opt_out_and_opt_in_are_logged_after_their_event(make_harness: MakeHarness,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """STOP and START each log their event, then one line naming the number and what changed."""
    bridge = await _routed(make_harness)
    caplog.set_level(logging.INFO, logger="bridge.pipeline")
    for body in ("STOP", "START"):
        await bridge.inbound("+4917642111111", body)
        await bridge.poller.poll_once()
    stop_event, stop_note, start_event, start_note = bridge_lines(caplog)
    assert stop_event.startswith("sms.received: sms ") and "'STOP'" in stop_event
    assert stop_note == "safety: +4917642111111 opted out (keyword STOP): nothing is sent to it from now on"
    assert "'START'" in start_event
    assert start_note == "safety: +4917642111111 opted in (keyword START): sends to it are allowed again"


async def test_cooldown_refusal_names_the_number_after_its_event(make_harness: MakeHarness,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """A reply held back by the cooldown logs, after the event it belongs to, the rule, the number and why."""
    bridge = await _routed(make_harness, safety=SafetyConfig(reply_cooldown=300))
    caplog.set_level(logging.INFO, logger="bridge.pipeline")
    for _ in range(2):
        await bridge.inbound("+4917642111111", "INFO")
        await bridge.poller.poll_once()
    first, second, refusal = bridge_lines(caplog)
    assert "-> rules: info" in first and "-> rules: info" in second
    assert refusal == ("safety: rule info: no reply to +4917642111111: this rule already auto-replied to this "
                       "sender recently (reply cooldown)")


async def test_inbound_line_leaves_out_an_unknown_receiving_number(make_harness: MakeHarness,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """An inbound SMS whose receiving SIM number is unknown (devices not read yet) logs no `to None`."""
    bridge = await make_harness(rules=(INFO,))
    await bridge.poller.poll_once()
    caplog.set_level(logging.INFO, logger="bridge.pipeline")
    await bridge.inbound("+4917642111111", "hello")
    await bridge.poller.poll_once()
    (line,) = bridge_lines(caplog)
    assert " from +4917642111111: 'hello'" in line and "None" not in line


async def _taken(bridge: Harness) -> list[tuple]:
    rows = await bridge.store.fetch_all(
        "SELECT position, rule, action, target, outcome, reason FROM event_actions ORDER BY event_id, position")
    return [tuple(row) for row in rows]


async def test_what_the_rules_did_is_kept_with_the_event(make_harness: MakeHarness) -> None:
    """Each action an event's rules planned is recorded with its outcome, a refused reply with its safety reason."""
    bridge = await _routed(make_harness)
    await bridge.inbound("DHL", "INFO your parcel")
    await bridge.poller.poll_once()
    assert await _taken(bridge) == [(0, "info", "reply", "DHL", "refused", "alphanumeric"),
                                    (1, "info", "webhook", "crm", "queued", None)]


async def test_a_safety_keyword_is_kept_as_an_action_without_a_rule(bridge: Harness) -> None:
    """STOP is recorded as an opt-out done by the safety keyword, with no rule."""
    await bridge.poller.poll_once()
    await bridge.inbound("+33 6 12 34 56 78", "STOP")
    await bridge.poller.poll_once()
    assert await _taken(bridge) == [(-1, None, "opt_out", "+33612345678", "done", "safety keyword STOP")]


async def test_an_sms_event_names_its_sms(bridge: Harness) -> None:
    """Every SMS event is stored with the id of its SMS, so its history can be looked up."""
    await bridge.poller.poll_once()
    sms_id = await bridge.inbound("+4917642111111", "hello")
    await bridge.poller.poll_once()
    assert [tuple(r) for r in await bridge.store.fetch_all("SELECT type, sms_id FROM events")] == \
        [("sms.received", sms_id)]
