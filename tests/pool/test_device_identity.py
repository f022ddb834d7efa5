"""Following a phone whose app signed in again under a new id: which stored devices moved, and where to."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.device_identity import listed_id, moves
from bridge.store import DeviceRecord

NOW = 1_800_000_000.0


def stored(*devices: tuple[int, str | None, str | None, int | None]) -> dict[int, dict[str, object]]:
    """Stored device rows as (id, imei, serial, moved_to)."""
    return {i: {"id": i, "imei": imei, "serial": serial, "moved_to": moved} for i, imei, serial, moved in devices}


def listed(*devices: tuple[int, str | None, str | None]) -> list[DeviceRecord]:
    """A getalldevices listing as (id, imei, serial)."""
    return [DeviceRecord(i, f"Phone {i}", True, NOW, imei=imei, serial=serial) for i, imei, serial in devices]


def test_a_device_gone_while_its_serial_appears_under_a_new_id_moved_there() -> None:
    """Device 1576 is not listed any more and 1580 has its serial number: 1576 moved to 1580."""
    assert moves(stored((1576, None, "SN1576", None), (1297, None, "SN1297", None)),
                 listed((1580, None, "SN1576"), (1297, None, "SN1297"))) == [(1576, 1580)]


def test_the_imei_alone_is_enough() -> None:
    """A matching IMEI follows the phone when the serial number changed or is not reported."""
    assert moves(stored((1, "350000000000001", "A-1", None)), listed((2, "350000000000001", None))) == [(1, 2)]


def test_a_device_still_listed_or_already_followed_does_not_move() -> None:
    """A device listed under its own id, or already followed, is left as it is."""
    assert moves(stored((1, None, "SERIAL-1", None)), listed((1, None, "SERIAL-1"), (2, None, "SERIAL-1"))) == []
    assert moves(stored((1, None, "SERIAL-1", 2)), listed((2, None, "SERIAL-1"))) == []


def test_a_phone_that_signs_in_twice_moves_on_from_its_second_id() -> None:
    """After 1 moved to 2, the phone signs in again as 3: 2 moves to 3 (1 is the same phone, not a third)."""
    assert moves(stored((1, None, "SERIAL-1", 2), (2, None, "SERIAL-1", None)),
                 listed((3, None, "SERIAL-1"))) == [(2, 3)]


def test_placeholders_and_shared_values_name_no_phone() -> None:
    """'unknown', too short or repeated values, and a value several devices share, follow nothing."""
    for value in ("unknown", "1234", "000000000000000"):
        assert moves(stored((1, value, value, None)), listed((2, value, value))) == []
    assert moves(stored((1, None, "SHARED-SN", None)), listed((2, None, "SHARED-SN"), (3, None, "SHARED-SN"))) == []


def test_a_phone_is_followed_through_each_new_id() -> None:
    """A phone that signed in twice is listed under its latest id; a loop of moves ends."""
    assert listed_id(stored((1, None, None, 2), (2, None, None, 3), (3, None, None, None)), 1) == 3
    assert listed_id(stored((1, None, None, 2), (2, None, None, 1)), 1) == 2
    assert listed_id({}, 7) == 7


names = st.sampled_from([None, "", "unknown", "SERIAL-AAAA", "SERIAL-BBBB", "350000000000001", "x"])
ids = st.integers(1, 6)


@given(old=st.lists(st.tuples(ids, names, names, st.none() | ids), max_size=6, unique_by=lambda d: d[0]),
       new=st.lists(st.tuples(ids, names, names), max_size=6, unique_by=lambda d: d[0]))
def test_moves_go_only_from_unlisted_devices_to_listed_ones(old: list, new: list) -> None:
    """Whatever the upstream reports, a move leaves a stored device that is not listed for one that is, once."""
    found = moves(stored(*old), listed(*new))
    listed_ids = {d[0] for d in new}
    assert all(o not in listed_ids and n in listed_ids and o != n for o, n in found)
    assert len({o for o, _ in found}) == len(found)
