"""The one handle on a simulator the tests run on 127.0.0.1: its URL, its state, its control endpoints over HTTP,
and a count of the API calls it served."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

from bridge.gateway.simulator import SIMULATOR, Simulator, build_simulator_app, serve_simulator


class RequestLog:
    """Counts the API calls a simulator app started and finished, per method (its middleware does)."""

    def __init__(self) -> None:
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Count the call as started, and as finished once answered (or failed)."""
        method = request.match_info.get("method", "") if request.path.startswith("/getdata/") else ""
        self.started[method] += 1
        try:
            return await handler(request)
        finally:
            self.finished[method] += 1

    def settled(self, *methods: str) -> bool:
        """True when every call of `methods` that started has finished (a hung call has run to its end)."""
        return all(self.started[m] == self.finished[m] for m in methods)


@dataclass
class SimulatorControl:
    """A running simulator: its base URL, its app, the session the test talks to it with, and its request log."""

    url: str
    app: web.Application
    session: aiohttp.ClientSession
    requests: RequestLog

    @property
    def state(self) -> Simulator:
        """The simulator's state object (for reading only; tests change it through HTTP)."""
        return self.app[SIMULATOR]

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST JSON to /simulator/PATH and return the JSON answer (asserting 200)."""
        async with self.session.post(f"{self.url}/simulator/{path}", json=body or {}) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def get(self, path: str) -> Any:
        """GET /simulator/PATH as JSON (asserting 200)."""
        async with self.session.get(f"{self.url}/simulator/{path}") as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def inbound(self, sender: str, body: str, **extra: Any) -> int:
        """An SMS the phone receives; returns its upstream id."""
        return (await self.post("inbound", {"from": sender, "body": body, **extra}))["sms_id"]

    async def fault(self, mode: str, count: int = 1, methods: list[str] | None = None,
                    hang_seconds: float = 30.0) -> None:
        """Make the next `count` calls (of `methods`, of any method if None) fail in `mode`."""
        await self.post("faults", {"mode": mode, "count": count, "methods": methods, "hang_seconds": hang_seconds})

    async def sent(self) -> list[dict[str, Any]]:
        """What the upstream accepted for sending."""
        return await self.get("sent")

    async def stats(self) -> dict[str, Any]:
        """Calls per method, tokens, pending faults."""
        return await self.get("stats")

    async def calls(self, method: str) -> int:
        """How often the API method `method` was called."""
        return (await self.stats())["calls"].get(method, 0)


MakeSimulator = Callable[..., Awaitable[SimulatorControl]]


@contextlib.asynccontextmanager
async def running_simulator(session: aiohttp.ClientSession, **options: Any) -> AsyncIterator[SimulatorControl]:
    """A simulator (build_simulator_app's keyword arguments) on a free port of 127.0.0.1 for the duration of the
    block, its calls counted."""
    app = build_simulator_app(**options)
    log = RequestLog()
    app.middlewares.append(log.middleware)
    async with serve_simulator(app) as url:
        yield SimulatorControl(url, app, session, log)
