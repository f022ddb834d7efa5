"""The device pool end to end: sends placed on members against the simulator, limits, offline devices,
stickiness across restarts, failover and sends that wait for a usable member."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from api_support import API_KEY, Bridge
from simulator_control import SimulatorControl
from test_messages import numbers
from waiting import eventually

from bridge.config import Config
from bridge.pool import Member, sticky_order
from bridge.store import Store, StoreUnavailable, Tx

A, B = (1576, 0), (1297, 0)


def pool_yaml(*, a_limit: int | None = None, b_limit: int | None = None, strategy: str = "sticky",
              failover: bool = False) -> str:
    """A pool of A (device 1576 SIM 0) and B (device 1297 SIM 0) with optional daily limits."""
    def member(key: tuple[int, int], limit: int | None) -> str:
        extra = f", daily_limit: {limit}" if limit is not None else ""
        return f"    - {{device_id: {key[0]}, sim: {key[1]}{extra}}}\n"
    return (f"pool:\n  strategy: {strategy}\n  failover: {str(failover).lower()}\n  members:\n"
            + member(A, a_limit) + member(B, b_limit))


def number_placed_on(key: tuple[int, int], start: int = 0) -> str:
    """A number sticky placement puts on `key` while every member is usable."""
    members = [Member(*A), Member(*B)]
    return next(n for n in numbers(200, start) if sticky_order(n, members)[0].key == key)


async def sent_on(sim: SimulatorControl) -> Counter[tuple[int, int]]:
    """How many SMS the simulator accepted per (device, sim)."""
    return Counter((s["device_id"], s["sim"]) for s in await sim.sent())


async def send_all(bridge: Bridge, to: str, count: int) -> list[str]:
    """Queue `count` sends to `to` with distinct texts; their message ids."""
    ids = []
    for i in range(count):
        response = await bridge.send({"to": to, "body": f"pool message {i}"})
        assert response.status == 202, await response.text()
        ids.append((await response.json())["id"])
    return ids


async def test_daily_limit_on_a_sends_the_rest_on_b(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """Eight sends to a recipient placed on A, whose daily limit is 5: five go out on A, three on B."""
    bridge = await bridges(make_config(extra=pool_yaml(a_limit=5)))
    for message_id in await send_all(bridge, number_placed_on(A), 8):
        assert (await bridge.settled(message_id))["status"] == "submitted"
    assert await sent_on(sim) == Counter({A: 5, B: 3})


async def test_offline_member_gets_no_new_sends_and_nothing_is_lost(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """With A's device offline every new send goes out on B, each exactly once."""
    bridge = await bridges(make_config(extra=pool_yaml()))
    sim.state.set_device(A[0], frozen=True, last_seen_ago=3600)
    await bridge.poller.check_devices()
    ids = [(await (await bridge.send({"to": n, "body": "while A is off"})).json())["id"] for n in numbers(6)]
    for message_id in ids:
        assert (await bridge.settled(message_id))["status"] == "submitted"
    assert await sent_on(sim) == Counter({B: 6})
    assert sorted(s["to"] for s in await sim.sent()) == numbers(6)


async def test_a_recipient_keeps_its_member_across_a_restart(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A recipient moved to B while A was offline stays on B after A is back and the bridge restarted."""
    config = make_config(extra=pool_yaml())
    to = number_placed_on(A)
    first = await bridges(config)
    sim.state.set_device(A[0], frozen=True, last_seen_ago=3600)
    await first.poller.check_devices()
    (moved,) = await send_all(first, to, 1)
    await first.settled(moved)
    await first.close()
    sim.state.set_device(A[0], frozen=False, last_seen_ago=1)
    second = await bridges(config)
    await second.poller.check_devices()
    again = (await (await second.send({"to": to, "body": "after the restart"})).json())["id"]
    await second.settled(again)
    fresh = (await (await second.send({"to": number_placed_on(A, 300), "body": "new recipient"})).json())["id"]
    await second.settled(fresh)
    assert [(s["to"], (s["device_id"], s["sim"])) for s in await sim.sent()] == [
        (to, B), (to, B), (number_placed_on(A, 300), A)]


async def test_a_final_failure_on_a_is_sent_once_more_on_b(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """Status 10 on A's SMS makes exactly one new SMS on B; its failure makes no third; both are attempts."""
    bridge = await bridges(make_config(extra=pool_yaml(failover=True)))
    to = number_placed_on(A)
    (message_id,) = await send_all(bridge, to, 1)
    first = (await bridge.settled(message_id))["recipients"][0]["sms_id"]
    sim.state.pin_status(first, 10)
    await bridge.poller.poll_once()
    await bridge.sender.drain_once()
    message = await bridge.settled(message_id)
    (recipient,) = message["recipients"]
    assert recipient["sms_id"] != first
    assert [(s["sms_id"], (s["device_id"], s["sim"])) for s in await sim.sent()] == [
        (first, A), (recipient["sms_id"], B)]
    sim.state.pin_status(recipient["sms_id"], 9)
    await bridge.poller.poll_once()
    await bridge.sender.drain_once()
    assert len(await sim.sent()) == 2
    message = await bridge.message(message_id)
    assert message["recipients"][0]["attempts"] == [
        {"sms_id": first, "device_id": A[0], "sim": A[1], "status": 10, "status_name": "no_service"},
        {"sms_id": recipient["sms_id"], "device_id": B[0], "sim": B[1], "status": 9, "status_name": "failed"},
    ]


async def test_a_pending_sms_is_never_failed_over(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """An SMS still pending, queued or taken (1, 3, 2) is not sent again on another member."""
    bridge = await bridges(make_config(extra=pool_yaml(failover=True)))
    (message_id,) = await send_all(bridge, number_placed_on(A), 1)
    first = (await bridge.settled(message_id))["recipients"][0]["sms_id"]
    for status in (1, 3, 2):
        sim.state.pin_status(first, status)
        await bridge.poller.poll_once()
        await bridge.sender.drain_once()
    assert len(await sim.sent()) == 1


async def test_exhausted_pool_holds_sends_until_midnight(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """With every member at its daily limit a send waits (pool_exhausted, in the API, /healthz and /metrics)
    and goes out once the account's day has turned."""
    bridge = await bridges(make_config(extra=pool_yaml(a_limit=1, b_limit=1)))
    ids = [(await (await bridge.send({"to": n, "body": "limited"})).json())["id"] for n in numbers(3)]

    async def two_submitted() -> bool:
        return [(await bridge.message(i))["status"] for i in ids].count("submitted") == 2

    await eventually(two_submitted, what="two sends within the limits")
    waiting = [i for i in ids if (await bridge.message(i))["status"] == "queued"]
    assert len(waiting) == 1
    message = await bridge.message(waiting[0])
    assert message["reason"] == "pool_exhausted" and message["recipients"][0]["reason"] == "pool_exhausted"
    health = await (await bridge.client.get("/healthz")).json()
    assert health["pool"]["waiting"] == 1
    assert [m["state"] for m in health["pool"]["members"]] == ["daily_limit", "daily_limit"]
    metrics = await (await bridge.client.get("/metrics", headers={"Authorization": f"Bearer {API_KEY}"})).text()
    assert 'bridge_queue_depth{queue="sends_pool_exhausted"} 1.0' in metrics
    await bridge.sender.drain_once()
    assert len(await sim.sent()) == 2
    zone = ZoneInfo("Europe/Paris")
    midnight = datetime.combine(datetime.now(zone).date() + timedelta(days=1), datetime.min.time(), zone)
    bridge.clock.advance(midnight.timestamp() - bridge.clock() + 1)
    bridge.sender.wake()
    assert (await bridge.settled(waiting[0]))["status"] == "submitted"
    assert len(await sim.sent()) == 3


async def test_an_explicit_device_bypasses_the_pool_but_counts_against_its_limit(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A send naming device A goes out on A; it uses A's daily place, so the next pooled send goes to B."""
    bridge = await bridges(make_config(extra=pool_yaml(a_limit=1)))
    to = number_placed_on(A)
    explicit = (await (await bridge.send({"to": to, "body": "on A", "device_id": A[0]})).json())["id"]
    await bridge.settled(explicit)
    (pooled,) = await send_all(bridge, to, 1)
    await bridge.settled(pooled)
    assert [(s["device_id"], s["sim"]) for s in await sim.sent()] == [A, B]


async def test_round_robin_spreads_sends_over_the_members(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """round_robin puts six sends to one number three on each member."""
    bridge = await bridges(make_config(extra=pool_yaml(strategy="round_robin")))
    for message_id in await send_all(bridge, numbers(1)[0], 6):
        await bridge.settled(message_id)
    assert await sent_on(sim) == Counter({A: 3, B: 3})


REPLY_RULES = """
rules:
  - name: info
    match: {event: inbound, keyword: INFO}
    actions:
      - reply: "Our hours are 9-17."
"""


async def test_a_reply_keeps_the_receiving_member_unless_it_is_offline(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A reply goes out on the device and SIM that received the SMS; with that device offline, on the other."""
    bridge = await bridges(make_config(extra=pool_yaml() + REPLY_RULES))
    await bridge.poller.mark_start()
    to_b, to_a = numbers(2, 500)
    sim.state.add_inbound(to_b, "INFO please", device_id=B[0], sim=B[1])
    await bridge.poller.poll_once()
    await eventually(lambda: _sent_count(sim, 1), what="the first reply")
    sim.state.set_device(B[0], frozen=True, last_seen_ago=3600)
    await bridge.poller.check_devices()
    sim.state.add_inbound(to_a, "INFO", device_id=B[0], sim=B[1])
    await bridge.poller.poll_once()
    await eventually(lambda: _sent_count(sim, 2), what="the second reply")
    assert [(s["to"], (s["device_id"], s["sim"])) for s in await sim.sent()] == [(to_b, B), (to_a, A)]


async def _sent_count(sim: SimulatorControl, count: int) -> bool:
    return len(await sim.sent()) >= count


async def reauthenticate(sim: SimulatorControl, device_id: int) -> int:
    """POST /simulator/reauth: the phone's app signs in again; the id it is listed under now."""
    async with sim.session.post(sim.url + "/simulator/reauth", json={"device_id": device_id}) as response:
        assert response.status == 200, await response.text()
        return int((await response.json())["device_id"])


async def test_a_member_whose_app_signed_in_again_is_followed_under_its_new_id(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl,
        caplog: pytest.LogCaptureFixture) -> None:
    """A's phone gets a new id: its recipient's sends keep going out on that phone, under the new id, none lost,
    and the move is logged once."""
    bridge = await bridges(make_config(extra=pool_yaml()))
    to = number_placed_on(A)
    await bridge.poller.check_devices()
    before = await send_all(bridge, to, 2)
    for message_id in before:
        await bridge.settled(message_id)
    new_id = await reauthenticate(sim, A[0])
    with caplog.at_level(logging.INFO, logger="bridge.pipeline"):
        await bridge.poller.check_devices()
        after = await send_all(bridge, to, 2)
        for message_id in after:
            assert (await bridge.settled(message_id))["status"] == "submitted"
        await bridge.poller.check_devices()
    assert [(s["to"], (s["device_id"], s["sim"])) for s in await sim.sent()] == [
        (to, A), (to, A), (to, (new_id, A[1])), (to, (new_id, A[1]))]
    moved = [r.getMessage() for r in caplog.records if "signed in again" in r.getMessage()]
    assert len(moved) == 1 and str(A[0]) in moved[0] and str(new_id) in moved[0]


class CommitFails:
    """A store whose write transactions run their statements, then fail to commit (and so roll back)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        """The store's transaction, failing at its end as a COMMIT on a full disk does."""
        async with self._store.transaction() as tx:
            yield tx
            raise StoreUnavailable("database or disk is full")


def moves_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The log lines that announce a device move."""
    return [r.getMessage() for r in caplog.records if "signed in again" in r.getMessage()]


async def test_a_move_whose_transaction_does_not_commit_is_not_logged(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl,
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """A's phone gets a new id, but the device check that finds it cannot commit: no move is logged or kept; the
    next device check records it and logs it once."""
    bridge = await bridges(make_config(extra=pool_yaml()))
    await bridge.poller.check_devices()
    new_id = await reauthenticate(sim, A[0])
    with caplog.at_level(logging.INFO, logger="bridge.pipeline"):
        monkeypatch.setattr(bridge.poller.pipeline, "store", CommitFails(bridge.store))
        assert not (await bridge.poller.check_devices()).ok
        assert moves_logged(caplog) == []
        async with bridge.store.reading() as tx:
            assert (await tx.device_rows())[A[0]]["moved_to"] is None
        monkeypatch.undo()
        assert (await bridge.poller.check_devices()).ok
    moved = moves_logged(caplog)
    assert len(moved) == 1 and str(A[0]) in moved[0] and str(new_id) in moved[0]


async def test_a_followed_member_keeps_its_daily_count(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """With A's daily limit 3, two sends before its new id and three after: A takes one more, B the other two,
    and A shows 3 sent today, online."""
    bridge = await bridges(make_config(extra=pool_yaml(a_limit=3)))
    to = number_placed_on(A)
    await bridge.poller.check_devices()
    for message_id in await send_all(bridge, to, 2):
        await bridge.settled(message_id)
    new_id = await reauthenticate(sim, A[0])
    await bridge.poller.check_devices()
    for message_id in await send_all(bridge, to, 3):
        assert (await bridge.settled(message_id))["status"] == "submitted"
    assert await sent_on(sim) == Counter({A: 2, (new_id, A[1]): 1, B: 2})
    health = await (await bridge.client.get("/healthz")).json()
    member_a = health["pool"]["members"][0]
    assert (member_a["device_id"], member_a["sent_today"], member_a["online"]) == (A[0], 3, True)
