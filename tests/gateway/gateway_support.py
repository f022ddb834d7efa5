"""Helpers of the gateway tests: the demo credentials and a client factory."""

from __future__ import annotations

from typing import Any

import aiohttp
from simulator_control import SimulatorControl

from bridge.gateway.client import GatewayClient

EMAIL = "demo@example.com"
PASSWORD = "demo"


def make_client(session: aiohttp.ClientSession, sim: SimulatorControl, **options: Any) -> GatewayClient:
    """A client of `sim` logging in with the demo credentials unless `options` say otherwise."""
    options.setdefault("timeout", 5)
    if "token" not in options:
        options.setdefault("email", EMAIL)
        options.setdefault("password", PASSWORD)
    return GatewayClient(session, sim.url, **options)

