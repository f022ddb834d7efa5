"""Device statements on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg

from bridge.store.devices import MOVE_DEVICES, UPSERT_DEVICES, DeviceOps, move_rows, upsert_rows
from bridge.store.postgres.dialect import numbered
from bridge.store.records import DeviceRecord, Row

_UPSERT_DEVICES, _MOVE_DEVICES = numbered(UPSERT_DEVICES), numbered(MOVE_DEVICES)


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
        await self._db.executemany(_UPSERT_DEVICES, upsert_rows(rows, now))

    async def move_devices(self, moves: Iterable[tuple[int, int]], now: float) -> None:
        """Note (old id, new id) for phones whose app signed in again and that are listed under the new id."""
        await self._db.executemany(_MOVE_DEVICES, move_rows(moves, now))
