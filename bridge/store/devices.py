"""The account's devices as getalldevices last reported them: titles, online state, SIM numbers, IMEI and serial
number, and each phone's own pacing (delaybetweeneachsms)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterable

from bridge.store.access import Access
from bridge.store.records import DeviceRecord, Row


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
