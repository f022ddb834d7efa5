"""Event statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.store.events import EventOps
from bridge.store.records import EventAction, Row


class PostgresEvents(EventOps):
    """The `events` table."""

    _db: asyncpg.Connection

    async def known_event_keys(self, keys: Iterable[str]) -> set[str]:
        """The dedupe keys among `keys` that already have an event."""
        rows = await self._db.fetch("SELECT dedupe_key FROM events WHERE dedupe_key = ANY($1::text[])", list(keys))
        return {row[0] for row in rows}

    async def insert_events(self, rows: Iterable[tuple[str, str, str, str, float, int | None]]) -> None:
        """Add events as (id, dedupe key, type, payload JSON, created_ts, sms id or None)."""
        await self._db.executemany(
            "INSERT INTO events (id, dedupe_key, type, payload, created_ts, sms_id) VALUES ($1, $2, $3, $4, $5, $6)",
            list(rows),
        )

    async def insert_event_actions(self, rows: Iterable[EventAction]) -> None:
        """Note what the rules and the safety keywords did with events."""
        await self._db.executemany(
            "INSERT INTO event_actions (event_id, position, rule, action, target, outcome, reason) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id, position) DO NOTHING",
            [(a.event_id, a.position, a.rule, a.action, a.target, a.outcome, a.reason) for a in rows],
        )

    async def unlinked_events(self, after: str, limit: int) -> list[Row]:
        """Up to `limit` events without an SMS id whose ids sort after `after`, in id order: id, payload."""
        return list(await self._db.fetch(
            "SELECT id, payload FROM events WHERE sms_id IS NULL AND id > $1 ORDER BY id LIMIT $2", after, limit))

    async def link_events(self, links: Iterable[tuple[int, str]]) -> None:
        """Give events their SMS, as (sms id, event id) pairs."""
        await self._db.executemany("UPDATE events SET sms_id = $1 WHERE id = $2", list(links))
