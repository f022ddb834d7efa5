"""The one webhook sink of the test suite: a real aiohttp server on 127.0.0.1 that records every request it gets
and answers as the test tells it to (200 at once unless told otherwise)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, headers, a body, and how long to wait before giving it (cut short by
    `Sink.release`)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""
    delay: float = 0.0


@dataclass
class Received:
    """One request the sink got, and the status it answered (None while it is being answered)."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None

    @property
    def webhook_id(self) -> str:
        """The request's `webhook-id` header ("" without one)."""
        return self.headers.get("webhook-id", "")

    @property
    def delivered(self) -> bool:
        """True once the sink answered it with a 2xx."""
        return self.status is not None and 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    def verified(self, secret: str) -> Any:
        """The body parsed as JSON once standardwebhooks' reference verifier accepts its signature under `secret`
        (it raises WebhookVerificationError otherwise)."""
        return Webhook(secret).verify(self.body, self.headers)


class Sink:
    """A webhook receiver: records requests, answers each path as scripted, holds a path's requests on demand."""

    def __init__(self) -> None:
        self.url = ""  # the base URL, set once the server listens
        self.received: list[Received] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self._script: dict[str, list[Reply]] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._released = asyncio.Event()

    def answer(self, path: str, *replies: Reply) -> None:
        """Answer the next requests to `path` with `replies`, in order (then 200 again)."""
        self._script.setdefault(path, []).extend(replies)

    def hold(self, path: str) -> asyncio.Event:
        """Keep requests to `path` waiting until the returned event is set (or `release` is called)."""
        return self._gates.setdefault(path, asyncio.Event())

    def release(self) -> None:
        """Let every held request and every delayed answer go now."""
        self._released.set()
        for gate in self._gates.values():
            gate.set()

    def requests(self, path: str | None = None) -> list[Received]:
        """The requests to `path` (to any path if None), in arrival order."""
        return [r for r in self.received if path is None or r.path == path]

    def delivered(self, path: str | None = None) -> Counter[str]:
        """How many 2xx answers each webhook-id got on `path` (on any path if None): the receiver's dedupe view."""
        return Counter(r.webhook_id for r in self.requests(path) if r.delivered)

    def attempts(self, path: str | None = None) -> Counter[str]:
        """How many requests each webhook-id made to `path` (to any path if None)."""
        return Counter(r.webhook_id for r in self.requests(path))

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request, wait as told, and give the next scripted answer for its path."""
        path = request.path
        seen = Received(path, dict(request.headers), await request.read())
        self.received.append(seen)
        self.in_flight[path] += 1
        self.max_in_flight[path] = max(self.max_in_flight[path], self.in_flight[path])
        try:
            gate = self._gates.get(path)
            if gate is not None:
                await gate.wait()
            script = self._script.get(path)
            reply = script.pop(0) if script else Reply()
            if reply.delay:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._released.wait(), reply.delay)
            seen.status = reply.status
            return web.Response(status=reply.status, headers=reply.headers, text=reply.body)
        finally:
            self.in_flight[path] -= 1


@contextlib.asynccontextmanager
async def serve_sink(port: int = 0) -> AsyncIterator[Sink]:
    """A Sink listening on 127.0.0.1:`port` (0: a free one) for the duration of the block."""
    sink = Sink()
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", sink.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        sink.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        yield sink
    finally:
        sink.release()
        await runner.cleanup()
