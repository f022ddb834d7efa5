"""Helpers of the outbox tests: webhook targets on the sink, events and outbox rows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sample_events import NOW, inbound
from webhook_sink import Sink

from bridge.config import WebhookConfig
from bridge.events import Event
from bridge.store import NewDelivery, Store
from bridge.templating import to_json


def target(sink: Sink, name: str = "crm", **options: Any) -> WebhookConfig:
    """A webhook target posting to /NAME on the sink."""
    return WebhookConfig(name=name, url=f"{sink.url}/{name}", **options)


_counter = iter(range(1, 1_000_000))


def inbound_event(body: str = "INFO please", sender: str = "+4912312312332") -> Event:
    """A fresh `sms.received` event (a new sms id each call)."""
    return inbound(body, sender, sms_id=62050000 + next(_counter), created=NOW + timedelta(hours=1))


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
