"""Fixtures of the HTTP API and sender tests: a simulator, a config and running bridges."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bridge.config import Config
from bridge.gateway.simulator import SIMULATOR, build_simulator_app, serve_simulator

from api_support import Bridge, Sim, start_bridge, write_config



@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    """A simulator on a free port."""
    app = build_simulator_app(pace=1.0, seed=7)
    async with aiohttp.ClientSession() as session, serve_simulator(app) as url:
        yield Sim(url, app[SIMULATOR], session)


@pytest.fixture
def make_config(tmp_path: Path, sim: Sim) -> Callable[..., Config]:
    """Builds a config pointing at the simulator (write_config's keyword arguments)."""
    return lambda **kwargs: write_config(tmp_path, sim.url, **kwargs)


@pytest.fixture
async def bridges() -> AsyncIterator[Callable[..., Awaitable[Bridge]]]:
    """Starts bridges (start_bridge's arguments); all are closed at the end of the test."""
    started: list[Bridge] = []

    async def start(config: Config, **kwargs: Any) -> Bridge:
        bridge = await start_bridge(config, **kwargs)
        started.append(bridge)
        return bridge

    yield start
    for bridge in reversed(started):
        await bridge.close()


@pytest.fixture
async def bridge(make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]]) -> Bridge:
    """A running bridge with the default test config."""
    return await bridges(make_config())
