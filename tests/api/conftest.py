"""Fixtures of the HTTP API and sender tests: a simulator, a config and running bridges."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from api_support import Bridge, start_bridge, write_config
from simulator_control import MakeSimulator, SimulatorControl

from bridge.config import Config


@pytest.fixture
async def sim(make_simulator: MakeSimulator) -> SimulatorControl:
    """A simulator on a free port."""
    return await make_simulator(pace=1.0, seed=7)


@pytest.fixture
def make_config(tmp_path: Path, sim: SimulatorControl) -> Callable[..., Config]:
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
