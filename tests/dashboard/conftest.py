"""Fixtures of the dashboard tests: a whole bridge (build_app) on a simulator, posting to the sink; a browser."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))  # the shared bridge

from dashboard_support import Browser, Dashboard, browser_or_skip, write_dashboard_config  # noqa: E402
from reliability_support import RunningBridge, SimulatorControl, running_bridge  # noqa: E402
from waiting import eventually  # noqa: E402
from webhook_sink import Sink  # noqa: E402

from bridge.gateway.simulator import build_simulator_app, serve_simulator  # noqa: E402


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """An HTTP session that keeps cookies for 127.0.0.1, as a browser does."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        yield http


@pytest.fixture
async def sim(session: aiohttp.ClientSession) -> AsyncIterator[SimulatorControl]:
    """A simulator on a free port, statuses stepping every 50 ms."""
    async with serve_simulator(build_simulator_app(seed=3, pace=0.05)) as url:
        yield SimulatorControl(url, session)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module saying BOTH_ENGINES = True runs each of its tests on SQLite, then on PostgreSQL."""
    if "postgres_storage" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_ENGINES", False):
        metafunc.parametrize("postgres_storage", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def postgres_storage(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL database the bridge stores in, None for SQLite (the default)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


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
