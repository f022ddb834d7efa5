"""Helpers of the outbox tests: a recording webhook sink, a movable clock, events and outbox rows."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from aiohttp import web

from bridge.config import WebhookConfig
from bridge.events import Event, EventType, SmsFacts, sms_event
from bridge.gateway.models import Status
from bridge.store import NewDelivery, Store
from bridge.templating import to_json

class FakeClock:
    """A clock that moves only when told; starts at the real time so signatures verify."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@dataclass(frozen=True)
class Reply:
    """One scripted answer of the sink."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


@dataclass
class Received:
    """One request the sink saw, and the status it answered (None while it is being answered)."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None

    @property
    def webhook_id(self) -> str:
        """The request's `webhook-id` header."""
        return self.headers["webhook-id"]

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class Sink:
    """A webhook receiver on 127.0.0.1 that records requests and answers as scripted (200 by default)."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight: Counter[str] = Counter()
        self.base_url = ""
        self._script: dict[str, list[Reply]] = {}
        self._gates: dict[str, asyncio.Event] = {}

    def url(self, path: str) -> str:
        """The absolute URL of `path` on the sink."""
        return self.base_url + path

    def answer(self, path: str, status: int, *, times: int = 1, headers: dict[str, str] | None = None,
               body: str = "") -> None:
        """Answer the next `times` requests to `path` with `status` (then 200 again)."""
        self._script.setdefault(path, []).extend([Reply(status, headers or {}, body)] * times)

    def hold(self, path: str) -> asyncio.Event:
        """Keep requests to `path` waiting until the returned event is set."""
        return self._gates.setdefault(path, asyncio.Event())

    def release_all(self) -> None:
        """Let every held request go."""
        for gate in self._gates.values():
            gate.set()

    def requests(self, path: str) -> list[Received]:
        """The requests seen on `path`, in arrival order."""
        return [r for r in self.received if r.path == path]

    def delivered_ids(self, path: str) -> set[str]:
        """The webhook-ids answered with a 2xx on `path` (the receiver's dedupe set)."""
        return {r.webhook_id for r in self.requests(path) if r.status is not None and 200 <= r.status < 300}

    async def handle(self, request: web.Request) -> web.Response:
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
            reply = script.pop(0) if script else Reply(200)
            seen.status = reply.status
            return web.Response(status=reply.status, headers=reply.headers, text=reply.body)
        finally:
            self.in_flight[path] -= 1

def target(sink: Sink, name: str = "crm", **options: Any) -> WebhookConfig:
    """A webhook target posting to /NAME on the sink."""
    return WebhookConfig(name=name, url=sink.url(f"/{name}"), **options)


_counter = iter(range(1, 1_000_000))


def inbound_event(body: str = "INFO please", sender: str = "+4912312312332") -> Event:
    """A fresh `sms.received` event (a new sms id each call)."""
    sms_id = 62050000 + next(_counter)
    created = datetime(2026, 11, 24, 11, 0, tzinfo=timezone.utc)
    facts = SmsFacts(sms_id, sender, None, body, 11231, 0, Status.RECEIVED, None, created, None)
    return sms_event(EventType.RECEIVED, facts, created)


async def add_event(store: Store, event: Event, now: float, payload: str | None = None) -> None:
    """Store an event as the pipeline does: its compact JSON with `rule` null (or the `payload` text given)."""
    text = to_json(event.to_json()) if payload is None else payload
    async with store.transaction() as db:
        row = (event.id, event.dedupe_key, str(event.type), text, now, event.sms.id if event.sms else None)
        await db.insert_events([row])


async def queue(store: Store, now: float, *deliveries: NewDelivery) -> None:
    """Add outbox rows, as the pipeline does."""
    async with store.transaction() as db:
        for delivery in deliveries:
            await db.insert_delivery(delivery, now)


async def queue_webhook(store: Store, now: float, target_name: str = "crm", *, rule: str = "info",
                        event: Event | None = None, spec: dict[str, Any] | None = None) -> Event:
    """A new event with one delivery to `target_name`; returns the event."""
    event = event or inbound_event()
    await add_event(store, event, now)
    await queue(store, now, NewDelivery(event.id, "webhook", target_name, rule, spec or {}))
    return event


async def outbox(store: Store) -> list[dict[str, Any]]:
    """Every outbox row as a dict, by id."""
    return [dict(row) for row in await store.fetch_all("SELECT * FROM outbox ORDER BY id")]
