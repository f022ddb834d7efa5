"""The rules dry run (`sms-bridge route` and the dashboard's form): which rules match an event and what they
would do, as lines of text. Sends nothing and reads no state."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from bridge import numbers, safety
from bridge.config import Config
from bridge.events import DeviceFacts, Event, EventType, SmsFacts, device_event, sms_event
from bridge.gateway.models import Status
from bridge.rules import AddTag, Deliver, OptIn, OptOut, PlannedAction, Router, SendSms
from bridge.templating import TemplateEngine, TemplateError, render_event_body


FAILED = "FAILED"  # how the line of an action that cannot run starts


class RouteError(Exception):
    """The options do not describe an event; the message says which one is missing."""


@dataclass(frozen=True, slots=True)
class RouteRequest:
    """The event to route, as `route`'s options describe it (None: the default)."""

    event: str = "inbound"
    sender: str | None = None
    to: str | None = None
    body: str | None = None
    status: str | None = None
    previous_status: str | None = None
    sms_id: int = 1
    device_id: int | None = None
    sim: int | None = None


def route_lines(config: Config, request: RouteRequest, at: datetime) -> list[str]:
    """What routing the described event at `at` would do, line by line; RuleError for rules that do not load."""
    zone = ZoneInfo(config.gateway.timezone)
    event = route_event(request, config, at)
    engine = TemplateEngine(config.templates_dir, default_region=config.gateway.default_region)
    router = Router.for_config(config, engine)
    lines = [f"event: {event.type} {event.id} at {at.isoformat()}"]
    lines += [f"safety: {note}" for note in _event_safety_notes(event, config)]
    found = router.matches(event, at)
    if not found:
        lines.append("no rule matches")
    for match in found:
        groups = "".join(f" {name}={value!r}" for name, value in match.match.items())
        lines.append(f"rule {match.rule}{' (default)' if match.default else ''}{groups}")
        for action in match.actions:
            lines += [f"  {line}" for line in _describe_action(action, event, config, engine, at.astimezone(zone))]
        if not match.actions:
            lines.append("  (no actions for this event)")
    return lines


def has_failures(lines: list[str]) -> bool:
    """True when a dry run's lines show an action that would fail (`route` then exits 1)."""
    return any(line.lstrip().startswith(FAILED) for line in lines)


def route_event(request: RouteRequest, config: Config, at: datetime) -> Event:
    """The event the request describes."""
    device_id = request.device_id if request.device_id is not None else config.gateway.device_id
    if request.event in ("device_offline", "device_online"):
        if device_id is None:
            raise RouteError(f"--event {request.event} needs --device-id (or gateway.device_id)")
        facts = DeviceFacts(device_id, f"device {device_id}", at, ())
        return device_event(request.event == "device_online", facts, at, "route")
    sim = request.sim if request.sim is not None else config.gateway.sim
    if request.event == "inbound":
        if request.sender is None or request.body is None:
            raise RouteError("--event inbound needs --from and --body")
        facts = SmsFacts(request.sms_id, request.sender, request.to, request.body, device_id, sim, Status.RECEIVED,
                         None, at, None)
        return sms_event(EventType.RECEIVED, facts, at)
    kind = EventType.STATUS if request.event == "status" else EventType.STUCK
    status = Status.from_name(request.status or ("delivered" if kind is EventType.STATUS else "pending"))[0]
    previous = Status.from_name(request.previous_status)[0] if request.previous_status else None
    facts = SmsFacts(request.sms_id, request.sender, request.to, request.body or "", device_id, sim, status,
                     previous, at, None)
    return sms_event(kind, facts, at)


def _event_safety_notes(event: Event, config: Config) -> list[str]:
    """What the stateless safety rules say about an inbound SMS's sender and keyword."""
    sms = event.sms
    if event.type is not EventType.RECEIVED or sms is None or not sms.sender:
        return []
    notes = []
    if numbers.is_alphanumeric_sender(sms.sender):
        notes.append(f"{sms.sender} is an alphanumeric sender id: replies to it are refused "
                     "(unless the reply sets allow_alphanumeric)")
    if safety.is_opt_out(sms.body, config.safety):
        notes.append(f"{safety.keyword_of(sms.body).upper()} is an opt-out keyword: {sms.sender} goes on the "
                     "opt-out list, and sends to it are refused from now on")
    elif safety.is_opt_in(sms.body, config.safety):
        notes.append(f"{safety.keyword_of(sms.body).upper()} is an opt-in keyword: {sms.sender} comes off the "
                     "opt-out list")
    return notes


def _describe_action(action: PlannedAction, event: Event, config: Config, engine: TemplateEngine,
                     now: datetime) -> list[str]:
    """Lines describing one planned action, webhook bodies rendered as delivery would render them."""
    if isinstance(action, SendSms):
        verb = "reply" if action.is_reply else "send"
        device = "default device" if action.device_id is None else f"device {action.device_id}"
        sim = "default SIM" if action.sim is None else f"SIM {action.sim}"
        lines = [f"{verb} to {action.to} ({device}, {sim}): {json.dumps(action.text, ensure_ascii=False)}"]
        refusal = _stateless_refusal(action, event, config)
        return lines + ([f"  would be refused: {refusal.message}"] if refusal else [])
    if isinstance(action, Deliver):
        webhook = config.webhooks.get(action.webhook)
        template = action.template or (webhook.template if webhook else None)
        try:
            body = render_event_body(engine, template, event.to_json(action.rule), action.match, now)
        except TemplateError as exc:
            return [f"{FAILED} webhook {action.webhook}: cannot render: {exc}"]
        return [f"webhook {action.webhook} ({template or 'event JSON'}, {body.content_type}):",
                *(f"  {line}" for line in body.body.splitlines())]
    if isinstance(action, AddTag):
        return [f"tag {action.tag_id}: {action.phone} as {action.name!r}"]
    if isinstance(action, OptOut):
        return [f"opt out {action.number}"]
    if isinstance(action, OptIn):
        return [f"opt in {action.number}"]
    return [f"{FAILED} action {action.action_index}: {action.message}"]


def _stateless_refusal(action: SendSms, event: Event, config: Config) -> safety.Refusal | None:
    """The refusal the data at hand already decides: an alphanumeric recipient, or a sender opting out now."""
    if not action.allow_alphanumeric and numbers.is_alphanumeric_sender(action.to):
        return safety.Refusal.ALPHANUMERIC
    sms = event.sms
    if event.type is not EventType.RECEIVED or sms is None or sms.sender is None:
        return None
    if safety.is_opt_out(sms.body, config.safety) and (
            numbers.same_number(action.to, sms.sender, config.gateway.default_region)):
        return safety.Refusal.OPTED_OUT
    return None
