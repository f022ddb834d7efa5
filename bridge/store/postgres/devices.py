"""Device statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.store.devices import DeviceOps
from bridge.store.records import Row


class PostgresDevices(DeviceOps):
    """The `devices` table."""

    _db: asyncpg.Connection

    async def device_rows(self) -> dict[int, Row]:
        """Every known device (id, title, online, last_seen_ts, numbers JSON), keyed by id."""
        rows = await self._db.fetch("SELECT id, title, online, last_seen_ts, numbers FROM devices")
        return {row["id"]: row for row in rows}

    async def upsert_devices(self, rows: Iterable[tuple[int, str, bool, float | None, str]], now: float) -> None:
        """Store devices as (id, title, online, last_seen_ts, numbers JSON: SIM numbers indexed by slot)."""
        await self._db.executemany(
            "INSERT INTO devices (id, title, online, last_seen_ts, numbers, updated_ts) VALUES ($1, $2, $3, $4, $5, $6) "
            "ON CONFLICT (id) DO UPDATE SET title = excluded.title, online = excluded.online, "
            "last_seen_ts = excluded.last_seen_ts, numbers = excluded.numbers, updated_ts = excluded.updated_ts",
            [(i, title, int(online), seen, numbers, now) for i, title, online, seen, numbers in rows],
        )
