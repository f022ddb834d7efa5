"""Fixtures of the dashboard tests: a whole bridge (build_app) on a simulator, posting to the sink; a browser."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest
from dashboard_support import Browser, Dashboard, browser_or_skip, write_dashboard_config
from running_bridge import RunningBridge, running_bridge
from simulator_control import MakeSimulator, SimulatorControl
from waiting import eventually
from webhook_sink import Sink


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session that keeps cookies for 127.0.0.1, as a browser does."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


@pytest.fixture
async def sim(make_simulator: MakeSimulator) -> SimulatorControl:
    """A simulator on a free port, statuses stepping every 50 ms."""
    return await make_simulator(seed=3, pace=0.05)


@pytest.fixture
def start_bridge(tmp_path: Path, sim: SimulatorControl, sink: Sink, session: aiohttp.ClientSession,
                 postgres_storage: str | None) -> Callable[..., AbstractAsyncContextManager[RunningBridge]]:
    """Starts a bridge with the dashboard (write_dashboard_config's keyword arguments) on the test's engine."""
    return lambda **kwargs: running_bridge(
        write_dashboard_config(tmp_path, sim.url, sink.url, postgres_url=postgres_storage, **kwargs), session)


@pytest.fixture
async def bridge(start_bridge: Callable[..., AbstractAsyncContextManager[RunningBridge]]
                 ) -> AsyncIterator[RunningBridge]:
    """A bridge with the dashboard that has completed its first poll."""
    async with start_bridge() as running:
        await eventually(lambda: running.poller_ok_since(0), what="the first poll")
        yield running


@pytest.fixture
async def ui(bridge: RunningBridge, session: aiohttp.ClientSession) -> Dashboard:
    """The dashboard of `bridge`, signed in."""
    dashboard = Dashboard(bridge.url, session)
    await dashboard.sign_in()
    return dashboard


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """Headless Chromium driven by Selenium; the test is skipped, saying why, where it cannot start."""
    with browser_or_skip(tmp_path / "chromium-profile") as running:
        yield running
