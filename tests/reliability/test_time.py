"""Time: polling across Europe/Paris daylight-saving changes, and a server whose zone is not the account's.

The bridge runs on the simulator's clock (build_app's `clock`), which the test sets next to a transition
and moves forward in steps; the upstream renders dates in the account's zone, as SmsGateway24 does.
"""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
from running_bridge import RunningBridge, running_bridge, write_bridge_config
from simulator_control import SimulatorControl
from waiting import eventually

FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=timezone.utc)       # 03:00 CEST -> 02:00 CET
SPRING_FORWARD = datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc)   # 02:00 CET -> 03:00 CEST
LOS_ANGELES_FALL_BACK = datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)  # 02:00 PDT -> 01:00 PST
STEP = 7 * 60.0  # one poll per step: wider than the 5 min overlap, so the cursor really moves


@asynccontextmanager
async def bridge_at(moment: datetime, sim: SimulatorControl, tmp_path: Path,
                    session: aiohttp.ClientSession) -> AsyncIterator[RunningBridge]:
    """A bridge sharing the simulator's clock, both set to `moment`, after its first poll."""
    sim.state.advance(moment.timestamp() - sim.state.now())
    async with running_bridge(write_bridge_config(tmp_path, sim.url), session, clock=sim.state.now) as bridge:
        await eventually(lambda: bridge.poller_ok_since(0), what="the first poll")
        yield bridge


async def walk(bridge: RunningBridge, sim: SimulatorControl, steps: int) -> list[int]:
    """Step the shared clock forward `steps` times; before each step the phone receives one SMS now and one
    created four minutes ago. Returns their ids after a poll has run at every step."""
    ids: list[int] = []
    for n in range(steps):
        ids.append(await sim.inbound("+4917642111111", f"now {n}"))
        ids.append(await sim.inbound("+33612345678", f"late {n}", created_ago=240))
        await sim.post("clock", {"advance": STEP})
        moment = sim.state.now()
        await eventually(lambda: bridge.poller_ok_since(moment), what="a poll after the clock moved")
    return ids


async def received_exactly_once(bridge: RunningBridge, ids: list[int]) -> None:
    """Every id gets its sms.received event, and none gets two."""
    async def all_there() -> bool:
        return set(ids) <= set(await bridge.received_ids())

    await eventually(all_there, what="an event for every incoming SMS")
    received = await bridge.received_ids()
    assert len(received) == len(set(received))


async def test_polling_across_the_autumn_fall_back_loses_and_repeats_nothing(
        sim: SimulatorControl, tmp_path: Path,
        session: aiohttp.ClientSession) -> None:
    """From 02:20 CEST through the repeated hour to 03:05 CET, every incoming SMS gives exactly one event."""
    async with bridge_at(FALL_BACK.replace(hour=0, minute=20), sim, tmp_path, session) as bridge:
        ids = await walk(bridge, sim, steps=15)
        await received_exactly_once(bridge, ids)


async def test_polling_across_the_spring_forward_loses_and_repeats_nothing(
        sim: SimulatorControl, tmp_path: Path,
        session: aiohttp.ClientSession) -> None:
    """From 01:20 CET across the skipped hour to 03:30 CEST, every incoming SMS gives exactly one event."""
    async with bridge_at(SPRING_FORWARD.replace(hour=0, minute=20), sim, tmp_path, session) as bridge:
        ids = await walk(bridge, sim, steps=10)
        await received_exactly_once(bridge, ids)


async def test_an_sms_received_in_the_repeated_hour_keeps_its_true_time(
        sim: SimulatorControl, tmp_path: Path,
        session: aiohttp.ClientSession) -> None:
    """An SMS received at 02:10 CET (the second 02:10 of the night) is reported at that instant, not an hour early."""
    async with bridge_at(FALL_BACK.replace(minute=10), sim, tmp_path, session) as bridge:
        truth = sim.state.now()
        sms_id = await sim.inbound("+4917642111111", "in the repeated hour")
        await received_exactly_once(bridge, [sms_id])
        [event] = [e for e in await bridge.received_events() if e["sms"]["id"] == sms_id]
        assert datetime.fromisoformat(event["sms"]["created_at"]).timestamp() == int(truth)


@pytest.fixture
def server_in_los_angeles() -> Iterator[None]:
    """The process's local zone is America/Los_Angeles for the test (restored after)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "America/Los_Angeles"
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


async def test_a_server_zone_unlike_the_account_zone_loses_nothing(
        server_in_los_angeles: None, sim: SimulatorControl,
        tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """A bridge whose local zone is Los Angeles, polling a Europe/Paris account across the night Los Angeles
    turns its clocks back (Paris does not), gets every SMS exactly once."""
    assert time.strftime("%Z") in ("PST", "PDT")
    async with bridge_at(LOS_ANGELES_FALL_BACK.replace(minute=20, hour=8), sim, tmp_path, session) as bridge:
        ids = await walk(bridge, sim, steps=7)
        await received_exactly_once(bridge, ids)
