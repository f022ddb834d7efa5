"""Event statements on SQLite."""

from __future__ import annotations

import json
from collections.abc import Iterable

import aiosqlite

from bridge.store.events import EventOps


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

    async def insert_events(self, rows: Iterable[tuple[str, str, str, str, float]]) -> None:
        """Add events as (id, dedupe key, type, payload JSON, created_ts)."""
        await self._db.executemany(
            "INSERT INTO events (id, dedupe_key, type, payload, created_ts) VALUES (?, ?, ?, ?, ?)", rows
        )
