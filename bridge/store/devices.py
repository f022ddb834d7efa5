"""The account's devices as getalldevices last reported them: titles, online state, SIM numbers, IMEI and serial
number, and each phone's own pacing (delaybetweeneachsms)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable

from bridge.store.access import Access
from bridge.store.records import DeviceRecord, Row


# The device check's writes, in SQLite's `?` spelling (PostgreSQL's backend numbers the placeholders).
UPSERT_DEVICES = (
    "INSERT INTO devices (id, title, online, last_seen_ts, numbers, imei, serial, sms_delay, updated_ts) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (id) DO UPDATE SET title = excluded.title, online = excluded.online, "
    "last_seen_ts = excluded.last_seen_ts, numbers = excluded.numbers, imei = excluded.imei, "
    "serial = excluded.serial, sms_delay = excluded.sms_delay, moved_to = NULL, updated_ts = excluded.updated_ts"
)
MOVE_DEVICES = "UPDATE devices SET moved_to = ?, updated_ts = ? WHERE id = ?"


def upsert_rows(rows: Iterable[DeviceRecord], now: float) -> list[tuple]:
    """UPSERT_DEVICES's parameters for `rows`."""
    return [(d.id, d.title, int(d.online), d.last_seen_ts, d.numbers, d.imei, d.serial, d.sms_delay, now)
            for d in rows]


def move_rows(moves: Iterable[tuple[int, int]], now: float) -> list[tuple]:
    """MOVE_DEVICES's parameters for (old id, new id) pairs."""
    return [(new, now, old) for old, new in moves]


class DeviceOps(ABC):
    """Device statements inside a transaction."""

    @abstractmethod
    async def device_rows(self) -> dict[int, Row]:
        """Every known device (id, title, online, last_seen_ts, numbers JSON, imei, serial, sms_delay, moved_to),
        keyed by id."""

    @abstractmethod
    async def upsert_devices(self, rows: Iterable[DeviceRecord], now: float) -> None:
        """Store devices as the device check saw them (a device listed under its own id is no longer moved)."""

    @abstractmethod
    async def move_devices(self, moves: Iterable[tuple[int, int]], now: float) -> None:
        """Note (old id, new id) for phones whose app signed in again and that are listed under the new id."""


class DeviceReads(Access):
    """Device reads on the store, each in a read of its own."""

    async def own_numbers(self) -> tuple[str, ...]:
        """Every SIM number of the account's devices as getalldevices last reported them."""
        async with self.reading() as tx:
            devices = await tx.device_rows()
        return tuple(n for device_id in sorted(devices) for n in json.loads(devices[device_id]["numbers"]) if n)
