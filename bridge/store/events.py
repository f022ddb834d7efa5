"""Events: one row per thing that happened upstream, unique by its dedupe key."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable

from bridge.store.records import EventAction, Row

_LINK_BATCH = 1000
_SMS_ID_RANGE = range(-(2**63), 2**63)


class EventOps(ABC):
    """Event statements inside a transaction."""

    @abstractmethod
    async def known_event_keys(self, keys: Iterable[str]) -> set[str]:
        """The dedupe keys among `keys` that already have an event."""

    @abstractmethod
    async def insert_events(self, rows: Iterable[tuple[str, str, str, str, float, int | None]]) -> None:
        """Add events as (id, dedupe key, type, payload JSON, created_ts, sms id or None)."""

    @abstractmethod
    async def insert_event_actions(self, rows: Iterable[EventAction]) -> None:
        """Note what the rules and the safety keywords did with events."""

    @abstractmethod
    async def unlinked_events(self, after: str, limit: int) -> list[Row]:
        """Up to `limit` events without an SMS id whose ids sort after `after`, in id order: id, payload."""

    @abstractmethod
    async def link_events(self, links: Iterable[tuple[int, str]]) -> None:
        """Give events their SMS, as (sms id, event id) pairs."""


async def link_events_to_sms(tx: EventOps) -> None:
    """Give each event recorded without its SMS id (before schema version 6) the `sms.id` of its payload."""
    after = ""
    while rows := await tx.unlinked_events(after, _LINK_BATCH):
        await tx.link_events([(sms_id, row[0]) for row in rows if (sms_id := sms_id_of(row[1])) is not None])
        after = rows[-1][0]


def sms_id_of(payload: str) -> int | None:
    """The `sms.id` of an event's payload JSON; None for an event about no SMS (or a payload unreadable)."""
    try:
        sms = json.loads(payload).get("sms")
    except (ValueError, AttributeError):
        return None
    sms_id = sms.get("id") if isinstance(sms, dict) else None
    return sms_id if type(sms_id) is int and sms_id in _SMS_ID_RANGE else None
