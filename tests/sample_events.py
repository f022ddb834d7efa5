"""Events as the pipeline makes them, for the tests of rules, templates, presets and the outbox."""

from __future__ import annotations

from datetime import datetime, timezone

from bridge.events import DeviceFacts, Event, EventType, SmsFacts, device_event, sms_event
from bridge.gateway.models import Status

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)  # Tuesday 11:00 in Paris
SENDER = "+4912312312332"  # who writes to the phone
OWN = "+4915752982212"  # the phone's own number


def inbound(body: str = "INFO please", sender: str | None = SENDER, *, to: str | None = None,
            device_id: int = 11231, sim: int = 0, sms_id: int = 62050971, created: datetime = NOW) -> Event:
    """An sms.received event (its recipient unknown unless `to` is given)."""
    facts = SmsFacts(sms_id, sender, to, body, device_id, sim, Status.RECEIVED, None, created, None)
    return sms_event(EventType.RECEIVED, facts, created)


def status(new: Status = Status.DELIVERED, kind: EventType = EventType.STATUS, body: str = "Your code is 1234",
           customer_id: int | None = None) -> Event:
    """An sms.status (or sms.stuck) event of an outgoing message from OWN to SENDER."""
    facts = SmsFacts(77, OWN, SENDER, body, 11231, 1, new, Status.SENT, NOW, customer_id)
    return sms_event(kind, facts, NOW)


def device(online: bool = False, title: str = "Pixel", last_seen: datetime | None = NOW) -> Event:
    """A device.offline / device.online event of device 1576, whose number is OWN."""
    return device_event(online, DeviceFacts(1576, title, last_seen, (OWN,)), NOW, "1")
