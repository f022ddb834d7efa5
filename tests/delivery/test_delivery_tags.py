"""`tag` actions: the sender saved as a contact under an upstream tag, through the simulator."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
import pytest
from delivery_support import add_event, inbound_event, outbox, queue
from simulator_control import MakeSimulator

from bridge.gateway.client import GatewayClient
from bridge.gateway.simulator import Simulator
from bridge.store import NewDelivery

TOKEN = "sim-token"


@dataclass
class Upstream:
    """A simulated account and a client for it."""

    simulator: Simulator
    client: GatewayClient


@pytest.fixture
async def upstream(make_simulator: MakeSimulator, session: aiohttp.ClientSession) -> Upstream:
    """The SmsGateway24 simulator on 127.0.0.1 with a fixed token."""
    sim = await make_simulator(token=TOKEN)
    return Upstream(sim.state, GatewayClient(session, sim.url, token=TOKEN))


async def queue_tag(store, now: float, tag_id: int, phone: str = "+4912312312332", name: str = "Ada") -> None:
    """A new inbound event with one tag action."""
    event = inbound_event(sender=phone)
    await add_event(store, event, now)
    await queue(store, now, NewDelivery(event.id, "tag", str(tag_id), "vip", {"phone": phone, "name": name}))


async def recipients_of(upstream: Upstream, tag_id: int) -> list[str]:
    """Who a newsletter to `tag_id` goes to: the tag's contacts as the upstream knows them."""
    [device] = (await upstream.client.get_all_devices())[:1]
    await upstream.client.save_paket("probe", device.id, "newsletter probe", [tag_id])
    return [sms.number for sms in await upstream.client.get_all_sms() if sms.body == "newsletter probe"]


async def test_a_tag_action_saves_the_contact_upstream(upstream, store, make_worker, clock):
    """A tag row calls savecontact: the number becomes a contact of the tag."""
    tag_id = await upstream.client.save_tag("VIP")
    worker = make_worker(gateway=upstream.client)
    await queue_tag(store, clock(), tag_id)
    assert await worker.deliver_due_once() == 1
    [row] = await outbox(store)
    assert row["state"] == "delivered"
    assert await recipients_of(upstream, tag_id) == ["+4912312312332"]


async def test_a_refused_tag_is_dead_at_once(upstream, store, make_worker, clock):
    """An unknown tag id is refused by the API: the row is dead after one attempt."""
    worker = make_worker(gateway=upstream.client)
    await queue_tag(store, clock(), 999_999)
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("dead", 1)
    assert "refused" in row["last_error"]


async def test_an_unavailable_upstream_is_retried(upstream, store, make_worker, clock):
    """A 5xx from the API leaves the tag row pending for a later attempt, which succeeds."""
    tag_id = await upstream.client.save_tag("VIP")
    upstream.simulator.add_fault("500", 1, ["savecontact"], 0)
    worker = make_worker(gateway=upstream.client)
    await queue_tag(store, clock(), tag_id)
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    clock.advance(6)
    await worker.deliver_due_once()
    [row] = await outbox(store)
    assert row["state"] == "delivered"
