"""Helpers of the gateway tests: a handle on a running simulator and a client factory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bridge.gateway.client import GatewayClient
from bridge.gateway.simulator import SIMULATOR, Simulator

EMAIL = "demo@example.com"
PASSWORD = "demo"


@dataclass
class SimulatorHandle:
    """A running simulator: its base URL, its app, and helpers for its control endpoints."""

    url: str
    app: web.Application
    session: aiohttp.ClientSession

    @property
    def state(self) -> Simulator:
        """The simulator's state object (for reading only; tests change it through HTTP)."""
        return self.app[SIMULATOR]

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST JSON to a control endpoint and return its JSON answer."""
        async with self.session.post(self.url + path, json=body or {}) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def get(self, path: str) -> Any:
        """GET a control endpoint and return its JSON answer."""
        async with self.session.get(self.url + path) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def stats(self) -> dict[str, Any]:
        """GET /simulator/stats."""
        return await self.get("/simulator/stats")

    async def fault(self, mode: str, count: int = 1, methods: list[str] | None = None, **extra: Any) -> None:
        """POST /simulator/faults."""
        await self.post("/simulator/faults", {"mode": mode, "count": count, "methods": methods, **extra})

    async def inbound(self, sender: str, body: str, **extra: Any) -> int:
        """POST /simulator/inbound; returns the new SMS id."""
        return (await self.post("/simulator/inbound", {"from": sender, "body": body, **extra}))["sms_id"]


MakeSimulator = Callable[..., Awaitable[SimulatorHandle]]


def make_client(session: aiohttp.ClientSession, sim: SimulatorHandle, **options: Any) -> GatewayClient:
    """A client of `sim` logging in with the demo credentials unless `options` say otherwise."""
    options.setdefault("timeout", 5)
    if "token" not in options:
        options.setdefault("email", EMAIL)
        options.setdefault("password", PASSWORD)
    return GatewayClient(session, sim.url, **options)

