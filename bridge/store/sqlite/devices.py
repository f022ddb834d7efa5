"""Device statements on SQLite."""

from __future__ import annotations

from collections.abc import Iterable

import aiosqlite

from bridge.store.devices import MOVE_DEVICES, UPSERT_DEVICES, DeviceOps, move_rows, upsert_rows
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
        await self._db.executemany(UPSERT_DEVICES, upsert_rows(rows, now))

    async def move_devices(self, moves: Iterable[tuple[int, int]], now: float) -> None:
        """Note (old id, new id) for phones whose app signed in again and that are listed under the new id."""
        await self._db.executemany(MOVE_DEVICES, move_rows(moves, now))
