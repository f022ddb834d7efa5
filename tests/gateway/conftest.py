"""Fixtures for the gateway client and simulator: a real simulator on 127.0.0.1 and a client of it."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from gateway_support import MakeSimulator, SimulatorHandle, make_client

from bridge.gateway.client import GatewayClient
from bridge.gateway.simulator import build_simulator_app, serve_simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One aiohttp session for the test, closed at the end."""
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def make_simulator(session: aiohttp.ClientSession) -> AsyncIterator[MakeSimulator]:
    """A factory of running simulators (keyword arguments of build_simulator_app); all stop after the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**options: Any) -> SimulatorHandle:
            options.setdefault("seed", 1)
            app = build_simulator_app(**options)
            url = await stack.enter_async_context(serve_simulator(app))
            return SimulatorHandle(url, app, session)

        yield make


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> SimulatorHandle:
    """A running simulator with the defaults (Europe/Paris, demo@example.com / demo, pace 2s)."""
    return await make_simulator()


@pytest.fixture
def client(session: aiohttp.ClientSession, simulator: SimulatorHandle) -> GatewayClient:
    """A GatewayClient of the `simulator` fixture (email and password, account zone Europe/Paris)."""
    return make_client(session, simulator)
