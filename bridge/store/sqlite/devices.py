"""Device statements on SQLite."""

from __future__ import annotations

from collections.abc import Iterable

import aiosqlite

from bridge.store.devices import DeviceOps
from bridge.store.records import DeviceRecord, Row


class SqliteDevices(DeviceOps):
    """The `devices` table."""

    _db: aiosqlite.Connection

    async def device_rows(self) -> dict[int, Row]:
        """Every known device (id, title, online, last_seen_ts, numbers JSON, imei, serial, sms_delay, moved_to),
        keyed by id."""
        cursor = await self._db.execute(
            "SELECT id, title, online, last_seen_ts, numbers, imei, serial, sms_delay, moved_to FROM devices")
        return {row["id"]: row for row in await cursor.fetchall()}

    async def upsert_devices(self, rows: Iterable[DeviceRecord], now: float) -> None:
        """Store devices as the device check saw them (a device listed under its own id is no longer moved)."""
        await self._db.executemany(
            "INSERT INTO devices (id, title, online, last_seen_ts, numbers, imei, serial, sms_delay, updated_ts) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (id) DO UPDATE SET title = excluded.title, online = excluded.online, "
            "last_seen_ts = excluded.last_seen_ts, numbers = excluded.numbers, imei = excluded.imei, "
            "serial = excluded.serial, sms_delay = excluded.sms_delay, moved_to = NULL, "
            "updated_ts = excluded.updated_ts",
            [(d.id, d.title, int(d.online), d.last_seen_ts, d.numbers, d.imei, d.serial, d.sms_delay, now)
             for d in rows],
        )

    async def move_devices(self, moves: Iterable[tuple[int, int]], now: float) -> None:
        """Note (old id, new id) for phones whose app signed in again and that are listed under the new id."""
        await self._db.executemany("UPDATE devices SET moved_to = ?, updated_ts = ? WHERE id = ?",
                                   [(new, now, old) for old, new in moves])
