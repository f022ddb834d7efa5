"""What callers hand to the store and how it hands rows back, the same on every engine."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

# A result row, readable by column name and by position (sqlite3.Row, asyncpg.Record).
Row: TypeAlias = Any

# Rows of `messages` are written as tuples of these columns, in this order.
MESSAGE_COLUMNS: tuple[str, ...] = (
    "id", "direction", "number", "body", "device_id", "sim", "status", "customer_id",
    "created", "created_ts", "updated_ts", "due_ts",
)


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as the poller's device check stores it: `numbers` is the JSON list of SIM numbers by slot;
    `imei` and `serial` name the phone whatever id it has; `sms_delay` is its own delaybetweeneachsms."""

    id: int
    title: str
    online: bool
    last_seen_ts: float | None
    numbers: str = "[]"
    imei: str | None = None
    serial: str | None = None
    sms_delay: float | None = None


@dataclass(frozen=True, slots=True)
class NewSend:
    """An accepted send (from the API, an inbound hook or a rule) to queue for the sender."""

    id: str
    source: str
    recipients: tuple[str, ...]
    body: str
    device_id: int | None
    sim: int | None
    send_at: str | None = None
    urgent: bool = False
    customer_id: int | None = None
    event_id: str | None = None
    is_reply: bool = False


@dataclass(frozen=True, slots=True)
class NewDelivery:
    """One outbox row to create for an event: a webhook to call or a contact to tag."""

    event_id: str
    kind: str
    target: str
    rule: str | None
    spec: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventAction:
    """What became of one action planned for an event (or of the safety keyword it carried)."""

    event_id: str
    position: int
    rule: str | None
    action: str
    target: str | None
    outcome: str
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class AttemptLog:
    """One delivery attempt as the history keeps it."""

    delivery_id: int
    outcome: str
    status: int | None
    latency_ms: float | None
    error: str | None
    response: str | None
