"""Fixtures of the reliability suites: an HTTP session, a simulator on 127.0.0.1, a whole bridge polling it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from reliability_support import RequestLog, RunningBridge, SimulatorControl, running_bridge, write_bridge_config
from waiting import eventually

from bridge.gateway.simulator import SIMULATOR, Simulator, build_simulator_app, serve_simulator


def pytest_configure(config: pytest.Config) -> None:
    """Register the `slow` mark: slow tests still run in CI; `-m "not slow"` leaves them out locally."""
    config.addinivalue_line("markers", "slow: a long scenario (crash loop); still part of every CI run")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for the test's own requests."""
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def sim_app() -> AsyncIterator[tuple[str, Simulator, RequestLog]]:
    """A simulator (Europe/Paris, statuses stepping every 50 ms) on a free port: its URL, state and request log."""
    app = build_simulator_app(seed=1, pace=0.05)
    log = RequestLog()
    app.middlewares.append(log.middleware)
    async with serve_simulator(app) as url:
        yield url, app[SIMULATOR], log


@pytest.fixture
def sim(sim_app: tuple[str, Simulator, RequestLog], session: aiohttp.ClientSession) -> SimulatorControl:
    """The simulator's control endpoints."""
    url, _, log = sim_app
    return SimulatorControl(url, session, log)


@pytest.fixture
async def bridge(tmp_path: Path, sim: SimulatorControl, session: aiohttp.ClientSession
                 ) -> AsyncIterator[RunningBridge]:
    """A bridge (build_app, poll every 200 ms, gateway timeout 500 ms) that has completed its first poll."""
    config = write_bridge_config(tmp_path, sim.url)
    async with running_bridge(config, session) as running:
        await eventually(lambda: running.poller_ok_since(0), what="the first poll")
        yield running
