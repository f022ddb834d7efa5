"""Events: one row per thing that happened upstream, unique by its dedupe key."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable

from bridge.store.records import EventAction


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
