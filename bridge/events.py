"""Events the bridge emits and their JSON (DESIGN section 4). Pure: no I/O."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from bridge.gateway.models import Device, Sms, Status


class EventType(enum.StrEnum):
    """The kinds of event; the value is the `type` field of the event JSON."""

    RECEIVED = "sms.received"
    STATUS = "sms.status"
    STUCK = "sms.stuck"
    DEVICE_OFFLINE = "device.offline"
    DEVICE_ONLINE = "device.online"

    @property
    def rule_name(self) -> str:
        """The name a rule's `match.event` uses for this type (`inbound`, `status`, …)."""
        return _RULE_NAMES[self]


_RULE_NAMES = {
    EventType.RECEIVED: "inbound",
    EventType.STATUS: "status",
    EventType.STUCK: "stuck",
    EventType.DEVICE_OFFLINE: "device_offline",
    EventType.DEVICE_ONLINE: "device_online",
}
RULE_EVENT_NAMES: tuple[str, ...] = tuple(_RULE_NAMES.values())


@dataclass(frozen=True, slots=True)
class SmsFacts:
    """The `sms` object of an event: one message as the bridge saw it."""

    id: int
    sender: str | None
    recipient: str | None
    body: str
    device_id: int | None
    sim: int | None
    status: Status
    previous_status: Status | None
    created_at: datetime
    customer_id: int | None
    channel: int | None = None
    media_url: str | None = None

    @classmethod
    def incoming(cls, sms: Sms, own_number: str | None) -> SmsFacts:
        """Facts of an inbound SMS: the API's `sendto` is the sender, `own_number` the receiving SIM."""
        return cls(sms.id, sms.number, own_number, sms.body, sms.device_id, sms.sim,
                   sms.status, None, sms.created, sms.customer_id, sms.channel, sms.media_url)

    @classmethod
    def outgoing(cls, sms: Sms, own_number: str | None, previous: Status | None) -> SmsFacts:
        """Facts of an outgoing SMS: `own_number` sent it to the API's `sendto`."""
        return cls(sms.id, own_number, sms.number, sms.body, sms.device_id, sms.sim,
                   sms.status, previous, sms.created, sms.customer_id)

    def to_json(self) -> dict[str, Any]:
        """The `sms` object exactly as DESIGN section 4 shows it."""
        prev = self.previous_status
        return {
            "id": self.id,
            "from": self.sender,
            "to": self.recipient,
            "body": self.body,
            "device_id": self.device_id,
            "sim": self.sim,
            "status": int(self.status) if self.status is not Status.UNKNOWN else None,
            "status_name": self.status.label,
            "previous_status": int(prev) if prev is not None else None,
            "previous_status_name": prev.label if prev is not None else None,
            "created_at": self.created_at.isoformat(),
            "customer_id": self.customer_id,
            "channel": self.channel,
            "media_url": self.media_url,
        }


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """The `device` object of a device event."""

    id: int
    title: str
    last_seen: datetime | None
    numbers: tuple[str, ...]

    @classmethod
    def of(cls, device: Device) -> DeviceFacts:
        """Facts of a device as `getalldevices` reported it."""
        return cls(device.id, device.title, device.last_seen,
                   tuple(s.number for s in device.sims if s.number))

    def to_json(self) -> dict[str, Any]:
        """The `device` object of the event JSON."""
        return {
            "id": self.id,
            "title": self.title,
            "last_seen": self.last_seen.isoformat() if self.last_seen else None,
            "numbers": list(self.numbers),
        }


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened upstream, emitted once (its `dedupe_key` is unique in the store)."""

    type: EventType
    occurred_at: datetime
    dedupe_key: str
    sms: SmsFacts | None = None
    device: DeviceFacts | None = None

    @property
    def id(self) -> str:
        """A stable id derived from the dedupe key, so the same happening always has the same id."""
        return "evt_" + hashlib.sha256(self.dedupe_key.encode()).hexdigest()[:26]

    def to_json(self, rule: str | None = None) -> dict[str, Any]:
        """The default webhook body (DESIGN section 4); `rule` names the rule that routed it."""
        out: dict[str, Any] = {
            "id": self.id,
            "type": str(self.type),
            "occurred_at": self.occurred_at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "rule": rule,
        }
        if self.sms is not None:
            out["sms"] = self.sms.to_json()
        if self.device is not None:
            out["device"] = self.device.to_json()
        return out


def sms_event(kind: EventType, facts: SmsFacts, occurred_at: datetime) -> Event:
    """An event about one SMS; its dedupe key is (sms id, status), or (sms id, stuck)."""
    suffix = "stuck" if kind is EventType.STUCK else str(facts.status.value)
    return Event(kind, occurred_at, f"sms:{facts.id}:{suffix}", sms=facts)


def device_event(online: bool, facts: DeviceFacts, occurred_at: datetime, episode: str) -> Event:
    """A device event; `episode` (e.g. the last-seen time that started it) keeps outages apart."""
    kind = EventType.DEVICE_ONLINE if online else EventType.DEVICE_OFFLINE
    state = "online" if online else "offline"
    return Event(kind, occurred_at, f"device:{facts.id}:{state}:{episode}", device=facts)
