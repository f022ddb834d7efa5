"""Fixtures for the gateway client and simulator: a real simulator on 127.0.0.1 and a client of it."""

from __future__ import annotations

import aiohttp
import pytest
from gateway_support import make_client
from simulator_control import MakeSimulator, SimulatorControl

from bridge.gateway.client import GatewayClient


@pytest.fixture
async def simulator(make_simulator: MakeSimulator) -> SimulatorControl:
    """A running simulator with the defaults (Europe/Paris, demo@example.com / demo, pace 2s)."""
    return await make_simulator()


@pytest.fixture
def client(session: aiohttp.ClientSession, simulator: SimulatorControl) -> GatewayClient:
    """A GatewayClient of the `simulator` fixture (email and password, account zone Europe/Paris)."""
    return make_client(session, simulator)
