"""Event statements on SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from bridge.store.events import EventOps
from bridge.store.records import EventAction, Row


class SqliteEvents(EventOps):
    """The `events` table."""

    _db: aiosqlite.Connection

    async def known_event_keys(self, keys: Iterable[str]) -> set[str]:
        """The dedupe keys among `keys` that already have an event."""
        cursor = await self._db.execute(
            "SELECT e.dedupe_key FROM json_each(?) AS j JOIN events AS e ON e.dedupe_key = j.value",
            (json.dumps(list(keys)),),
        )
        return {row[0] for row in await cursor.fetchall()}

    async def insert_events(self, rows: Iterable[tuple[str, str, str, str, float, int | None]]) -> None:
        """Add events as (id, dedupe key, type, payload JSON, created_ts, sms id or None)."""
        await self._db.executemany(
            "INSERT INTO events (id, dedupe_key, type, payload, created_ts, sms_id) VALUES (?, ?, ?, ?, ?, ?)", rows
        )

    async def insert_event_actions(self, rows: Iterable[EventAction]) -> None:
        """Note what the rules and the safety keywords did with events."""
        await self._db.executemany(
            "INSERT INTO event_actions (event_id, position, rule, action, target, outcome, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id, position) DO NOTHING",
            [(a.event_id, a.position, a.rule, a.action, a.target, a.outcome, a.reason) for a in rows],
        )

    async def unlinked_events(self, after: str, limit: int) -> list[Row]:
        """Up to `limit` events without an SMS id whose ids sort after `after`, in id order: id, payload."""
        cursor = await self._db.execute(
            "SELECT id, payload FROM events WHERE sms_id IS NULL AND id > ? ORDER BY id LIMIT ?", (after, limit))
        return list(await cursor.fetchall())

    async def link_events(self, links: Iterable[tuple[int, str]]) -> None:
        """Give events their SMS, as (sms id, event id) pairs."""
        await self._db.executemany("UPDATE events SET sms_id = ? WHERE id = ?", list(links))
