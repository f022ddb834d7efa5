"""Device statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.store.devices import DeviceOps
from bridge.store.records import DeviceRecord, Row


class PostgresDevices(DeviceOps):
    """The `devices` table."""

    _db: asyncpg.Connection

    async def device_rows(self) -> dict[int, Row]:
        """Every known device (id, title, online, last_seen_ts, numbers JSON, imei, serial, sms_delay, moved_to),
        keyed by id."""
        rows = await self._db.fetch(
            "SELECT id, title, online, last_seen_ts, numbers, imei, serial, sms_delay, moved_to FROM devices")
        return {row["id"]: row for row in rows}

    async def upsert_devices(self, rows: Iterable[DeviceRecord], now: float) -> None:
        """Store devices as the device check saw them (a device listed under its own id is no longer moved)."""
        await self._db.executemany(
            "INSERT INTO devices (id, title, online, last_seen_ts, numbers, imei, serial, sms_delay, updated_ts) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
            "ON CONFLICT (id) DO UPDATE SET title = excluded.title, online = excluded.online, "
            "last_seen_ts = excluded.last_seen_ts, numbers = excluded.numbers, imei = excluded.imei, "
            "serial = excluded.serial, sms_delay = excluded.sms_delay, moved_to = NULL, "
            "updated_ts = excluded.updated_ts",
            [(d.id, d.title, int(d.online), d.last_seen_ts, d.numbers, d.imei, d.serial, d.sms_delay, now)
             for d in rows],
        )

    async def move_devices(self, moves: Iterable[tuple[int, int]], now: float) -> None:
        """Note (old id, new id) for phones whose app signed in again and that are listed under the new id."""
        await self._db.executemany("UPDATE devices SET moved_to = $1, updated_ts = $2 WHERE id = $3",
                                   [(new, now, old) for old, new in moves])
