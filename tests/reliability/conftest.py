"""Fixtures of the reliability suites: a simulator on 127.0.0.1, a whole bridge polling it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from running_bridge import RunningBridge, running_bridge, write_bridge_config
from simulator_control import MakeSimulator, SimulatorControl
from waiting import eventually


def pytest_configure(config: pytest.Config) -> None:
    """Register the `slow` mark: slow tests still run in CI; `-m "not slow"` leaves them out locally."""
    config.addinivalue_line("markers", "slow: a long scenario (crash loop); still part of every CI run")


@pytest.fixture
async def sim(make_simulator: MakeSimulator) -> SimulatorControl:
    """A simulator (Europe/Paris, statuses stepping every 50 ms) on a free port, its calls counted."""
    return await make_simulator(pace=0.05)


@pytest.fixture
async def bridge(tmp_path: Path, sim: SimulatorControl, session: aiohttp.ClientSession
                 ) -> AsyncIterator[RunningBridge]:
    """A bridge (build_app, poll every 200 ms, gateway timeout 500 ms) that has completed its first poll."""
    config = write_bridge_config(tmp_path, sim.url)
    async with running_bridge(config, session) as running:
        await eventually(lambda: running.poller_ok_since(0), what="the first poll")
        yield running
