"""Which phone a device id names: the upstream gives a phone a new id when its app signs in again (same IMEI and
serial number, the old id gone from getalldevices). Pure functions over the stored devices and a listing (no I/O).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bridge.store import DeviceRecord, Row

# Values some apps report where they cannot read the phone's IMEI or serial: they name no phone.
_PLACEHOLDERS = frozenset({"unknown", "n/a", "na", "null", "none", "undefined", "0"})
_SHORTEST = 6  # characters: an IMEI has 15, serial numbers rarely fewer than 8


def moves(stored: Mapping[int, Row], listed: Iterable[DeviceRecord]) -> list[tuple[int, int]]:
    """(old id, new id) for each stored device not in `listed`, not followed yet, whose IMEI or serial number
    exactly one listed device of another id has (a value shared by several devices names none of them)."""
    listed = list(listed)
    listed_ids = {d.id for d in listed}
    holders: dict[str, set[int]] = {}
    # A device already followed is the same phone as the one it moved to, not another holder of its names.
    here = [(i, r["imei"], r["serial"]) for i, r in stored.items() if r["moved_to"] is None]
    for device_id, imei, serial in [*here, *((d.id, d.imei, d.serial) for d in listed)]:
        for name in _names(imei, serial):
            holders.setdefault(name, set()).add(device_id)
    found = []
    for old, row in sorted(stored.items()):
        if old in listed_ids or row["moved_to"] is not None:
            continue
        new = {i for name in _names(row["imei"], row["serial"]) if len(holders[name]) == 2
               for i in holders[name] if i != old and i in listed_ids}
        if len(new) == 1:
            found.append((old, new.pop()))
    return found


def listed_id(devices: Mapping[int, Row], device_id: int) -> int:
    """The id the phone first known as `device_id` is listed under now, following each move."""
    seen = {device_id}
    row = devices.get(device_id)
    while row is not None and row["moved_to"] is not None and row["moved_to"] not in seen:
        device_id = row["moved_to"]
        seen.add(device_id)
        row = devices.get(device_id)
    return device_id


def _names(imei: str | None, serial: str | None) -> list[str]:
    """The values that name a phone: its IMEI and serial number, where they can."""
    return [f"{kind}:{value.strip().lower()}" for kind, value in (("imei", imei), ("serial", serial))
            if value and len(value.strip()) >= _SHORTEST and value.strip().lower() not in _PLACEHOLDERS
            and len(set(value.strip())) > 1]
