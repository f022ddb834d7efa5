"""Device health: one `device.offline` and one `device.online` per outage episode; device rows for own numbers."""

from __future__ import annotations

import json

from poller_support import TEST_POLL, Harness

FROZEN = 1297


async def _freeze(bridge: Harness, frozen: bool) -> None:
    await bridge.simulator.post("device", {"device_id": FROZEN, "frozen": frozen})


async def test_frozen_device_goes_offline_once_then_online_once(bridge: Harness) -> None:
    """A device not seen for poll.device_offline_after gives one device.offline; seen again, one device.online."""
    await bridge.poller.check_devices()
    await _freeze(bridge, True)
    for _ in range(3):
        bridge.advance(TEST_POLL.device_offline_after / 2 + 1)
        await bridge.poller.check_devices()
    await _freeze(bridge, False)
    for _ in range(2):
        bridge.advance(TEST_POLL.devices_interval)
        await bridge.poller.check_devices()
    events = await bridge.events()
    assert [(e["type"], e["device"]["id"]) for e in events] == [("device.offline", FROZEN), ("device.online", FROZEN)]


async def test_a_second_outage_is_a_new_episode(bridge: Harness) -> None:
    """A device that goes offline again after coming back gives a second offline/online pair."""
    await bridge.poller.check_devices()
    for _ in range(2):
        await _freeze(bridge, True)
        bridge.advance(TEST_POLL.device_offline_after + 1)
        await bridge.poller.check_devices()
        await _freeze(bridge, False)
        bridge.advance(1)
        await bridge.poller.check_devices()
    assert [e["type"] for e in await bridge.events()] == ["device.offline", "device.online"] * 2


async def test_device_episode_survives_a_restart(bridge: Harness) -> None:
    """A restart during an outage neither repeats device.offline nor loses the device.online that ends it."""
    await bridge.poller.check_devices()
    await _freeze(bridge, True)
    bridge.advance(TEST_POLL.device_offline_after + 1)
    await bridge.poller.check_devices()
    await bridge.restart()
    await bridge.poller.check_devices()
    await _freeze(bridge, False)
    await bridge.poller.check_devices()
    assert [e["type"] for e in await bridge.events()] == ["device.offline", "device.online"]


async def test_devices_are_stored_with_their_sim_numbers(bridge: Harness) -> None:
    """Device rows keep the title and the SIM numbers by slot (a `+` lost to URL decoding restored)."""
    await bridge.poller.check_devices()
    rows = {r["id"]: r for r in await bridge.store.fetch_all("SELECT id, title, online, numbers FROM devices")}
    assert rows[1576]["title"] == "AOSP_on_IA_Emulator" and rows[1576]["online"] == 1
    assert json.loads(rows[1576]["numbers"]) == ["+15555215554", "+4915100000001"]
    assert set(await bridge.store.own_numbers()) == {"+15555215554", "+4915100000001", "+4915900000002"}


async def test_device_offline_at_first_check_is_reported_once(bridge: Harness) -> None:
    """A device already offline when the bridge first looks gives one device.offline, not one per check."""
    await bridge.simulator.post("device", {"device_id": FROZEN, "frozen": True, "last_seen_ago": 3 * 3600})
    for _ in range(2):
        await bridge.poller.check_devices()
    assert [(e["type"], e["device"]["id"]) for e in await bridge.events()] == [("device.offline", FROZEN)]
