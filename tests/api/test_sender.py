"""The sender: nothing accepted is lost, nothing is sent twice, safety applies at send time."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from api_support import DEVICE, Bridge, Clock
from ports import free_port
from simulator_control import SimulatorControl
from test_messages import numbers
from waiting import eventually

from bridge.config import Config
from bridge.sender import LEARN_POLLS
from bridge.store import NewSend, StoreUnavailable

TO = "+4915752982212"


def metric(text: str, line: str) -> float:
    """The value of one sample line of Prometheus text (0 when absent)."""
    for row in text.splitlines():
        if row.startswith(line + " "):
            return float(row.split()[-1])
    return 0.0


async def test_restart_with_queued_sends_sends_each_exactly_once(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """Sends accepted by a bridge that stopped before sending go out exactly once after a restart (twice)."""
    config = make_config()
    first = await bridges(config, start_sender=False)
    ids = [(await (await first.send({"to": numbers(3, start=10 * i), "body": f"queued {i}"})).json())["id"]
           for i in range(4)]
    await first.close()
    second = await bridges(config)
    for message_id in ids:
        assert (await second.settled(message_id))["status"] == "submitted"
    await second.close()
    third = await bridges(config)
    await third.sender.drain_once()
    sent = Counter((s["to"], s["body"]) for s in await sim.sent())
    assert len(sent) == 12 and set(sent.values()) == {1}


async def drain_until_settled(bridge: Bridge, clock: Clock, message_id: str, step: float = 60.0) -> dict:
    """Drain, moving the clock `step` seconds between passes, until the message is settled (at most 20 passes)."""
    for _ in range(20):
        await bridge.sender.drain_once()
        message = await bridge.message(message_id)
        if all(r["state"] not in ("queued", "in_doubt") and r["sms_id"] for r in message["recipients"]):
            return message
        clock.advance(step)
    raise AssertionError(f"message did not settle: {message}")


async def test_upstream_down_for_a_while_then_sent_exactly_once(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """With the upstream answering 503 for a while the send is in doubt (a 503 may have been applied), is looked
    up (the lookups failing too) until the upstream answers that it does not have it, then goes out once."""
    clock = Clock()
    bridge = await bridges(make_config(), start_sender=False, clock=clock)
    await sim.fault("503", count=4)
    message_id = (await (await bridge.send({"to": TO, "body": "patience"})).json())["id"]
    message = await drain_until_settled(bridge, clock, message_id)
    assert message["status"] == "submitted"
    assert [s["to"] for s in await sim.sent()] == [TO]


async def test_unreachable_upstream_keeps_the_send_queued(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A connection refused (surely not applied) keeps the recipient queued with the reason, never dropped."""
    closed_port = free_port()
    config = make_config()
    dead = replace(config, gateway=replace(config.gateway, url=f"http://127.0.0.1:{closed_port}"))
    bridge = await bridges(dead, start_sender=False)
    message_id = (await (await bridge.send({"to": TO, "body": "anyone?"})).json())["id"]
    await bridge.sender.drain_once()
    recipient = (await bridge.message(message_id))["recipients"][0]
    assert recipient["state"] == "queued" and "cannot connect" in recipient["reason"]


async def test_error_after_the_upstream_stored_it_is_reconciled_not_resent(
        bridge: Bridge, sim: SimulatorControl) -> None:
    """A 500 answered after the upstream stored the SMS puts it in doubt; the lookup finds it: sent once."""
    await sim.fault("500_applied", count=1, methods=["addsms"])
    response = await bridge.send({"to": TO, "body": "stored anyway"})
    message = await bridge.settled((await response.json())["id"])
    sent = await sim.sent()
    assert [s["sms_id"] for s in sent] == [message["recipients"][0]["sms_id"]]
    metrics = await (await bridge.client.get("/metrics")).text()
    assert metric(metrics, 'bridge_sends_total{outcome="in_doubt"}') == 1


async def test_timeout_while_upstream_still_stores_is_reconciled_without_duplicate(
        bridge: Bridge, sim: SimulatorControl) -> None:
    """addsms hanging past the client timeout (the upstream stores it afterwards) is in doubt, then found."""
    await sim.fault("hang", count=1, methods=["addsms"], hang_seconds=1.5)
    response = await bridge.send({"to": TO, "body": "slow upstream"})
    message_id = (await response.json())["id"]

    async def in_doubt() -> bool:
        return (await bridge.message(message_id))["status"] == "in_doubt"

    await eventually(in_doubt, what="the send to be in doubt")
    message = await bridge.settled(message_id)
    sent = await sim.sent()
    assert message["status"] == "submitted"
    assert [s["sms_id"] for s in sent] == [message["recipients"][0]["sms_id"]]


async def test_timeout_on_a_batch_is_reconciled_without_duplicates(bridge: Bridge, sim: SimulatorControl) -> None:
    """An addalotofsms that times out but is applied upstream: every recipient is found, none resent."""
    await sim.fault("hang", count=1, methods=["addalotofsms"], hang_seconds=1.5)
    response = await bridge.send({"to": numbers(5), "body": "slow batch"})
    message = await bridge.settled((await response.json())["id"])
    assert Counter(s["to"] for s in await sim.sent()) == Counter(numbers(5))
    assert all(r["sms_id"] for r in message["recipients"])


async def test_crash_while_submitting_is_reconciled_on_restart(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A bridge killed during addsms leaves the row submitting; the next one finds it upstream: sent once."""
    config = make_config(timeout="10s")
    await sim.fault("hang", count=1, methods=["addsms"], hang_seconds=1.0)
    first = await bridges(config)
    message_id = (await (await first.send({"to": TO, "body": "crash"})).json())["id"]

    async def submitting() -> bool:
        row = await first.store.fetch_one("SELECT state FROM recipients")
        return row[0] == "submitting"

    await eventually(submitting, what="the addsms call to start")
    await first.sender.stop(grace=0)
    await first.close()

    async def stored_upstream() -> bool:
        return len(await sim.sent()) == 1

    await eventually(stored_upstream, what="the simulator to store the hung request")
    second = await bridges(config, in_doubt_after=0.1)
    message = await second.settled(message_id)
    assert [s["sms_id"] for s in await sim.sent()] == [message["recipients"][0]["sms_id"]]


async def test_crash_before_the_call_reached_upstream_sends_once_after_restart(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A row left submitting that the upstream never saw is looked up, not found, and then sent once."""
    config = make_config()
    first = await bridges(config, start_sender=False)
    message_id = (await (await first.send({"to": numbers(2), "body": "never left"})).json())["id"]
    async with first.store.transaction() as db:
        await db.execute("UPDATE recipients SET state = 'submitting', attempts = 1, submitted_ts = ?",
                         (first.clock(),))
    await first.close()
    clock = Clock()
    second = await bridges(config, start_sender=False, in_doubt_after=0.1, clock=clock)
    await drain_until_settled(second, clock, message_id)
    assert sorted(s["to"] for s in await sim.sent()) == numbers(2)


async def test_ids_of_a_batch_are_learned_from_the_next_poll(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """After addalotofsms the sender lists nothing itself: the next poll's window teaches every recipient its id."""
    bridge = await bridges(make_config(), start_sender=False)
    message_id = (await (await bridge.send({"to": numbers(3), "body": "learn from the poll"})).json())["id"]
    await bridge.sender.drain_once()
    early = await bridge.message(message_id)
    listed_by_sender = await sim.calls("getallsms")
    await bridge.poller.poll_once()
    late = await bridge.message(message_id)
    assert [(r["state"], r["sms_id"]) for r in early["recipients"]] == [("submitted", None)] * 3
    assert listed_by_sender == 0
    sent = {s["to"]: s["sms_id"] for s in await sim.sent()}
    assert {r["to"]: r["sms_id"] for r in late["recipients"]} == sent and len(sent) == 3


async def test_ids_no_poll_teaches_are_looked_up_by_the_sender(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """When polling fails, the sender looks the ids of a batch up itself once the polls had their chance."""
    clock = Clock()
    config = make_config()
    bridge = await bridges(config, start_sender=False, clock=clock)
    message_id = (await (await bridge.send({"to": numbers(3), "body": "learn later"})).json())["id"]
    await bridge.sender.drain_once()
    await sim.fault("503", count=1, methods=["getallsms"])
    assert not (await bridge.poller.poll_once()).ok
    await bridge.sender.drain_once()
    early = await bridge.message(message_id)
    clock.advance(LEARN_POLLS * config.poll.interval + 1)
    await bridge.sender.drain_once()
    late = await bridge.message(message_id)
    assert [(r["state"], r["sms_id"]) for r in early["recipients"]] == [("submitted", None)] * 3
    sent = {s["to"]: s["sms_id"] for s in await sim.sent()}
    assert {r["to"]: r["sms_id"] for r in late["recipients"]} == sent and len(sent) == 3


async def test_opted_out_number_is_refused_and_visible(bridge: Bridge, sim: SimulatorControl) -> None:
    """A number on the opt-out list is answered 202, then refused with reason opted_out; nothing is sent."""
    async with bridge.store.transaction() as db:
        await db.set_opted_out(TO, True, "keyword", bridge.clock())
    response = await bridge.send({"to": [TO, "+4915752982213"], "body": "promo"})
    assert response.status == 202
    message = await bridge.settled((await response.json())["id"])
    assert [(r["state"], r["reason"]) for r in message["recipients"]] == [("refused", "opted_out"),
                                                                          ("submitted", None)]
    assert [s["to"] for s in await sim.sent()] == ["+4915752982213"]


async def test_rule_sends_are_screened_too(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A send queued by a rule (not the API) to an opted-out number is refused by the sender."""
    bridge = await bridges(make_config(), start_sender=False)
    async with bridge.store.transaction() as db:
        await db.set_opted_out(TO, True, "keyword", bridge.clock())
        await db.insert_send(NewSend("msg_rule1", "rule:info", (TO,), "Our hours are 9-17", None, None,
                                            is_reply=True), bridge.clock())
    await bridge.sender.drain_once()
    message = await bridge.message("msg_rule1")
    assert message["recipients"][0]["reason"] == "opted_out" and await sim.sent() == []


async def test_a_refused_send_is_logged_with_its_number(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]],
        caplog: pytest.LogCaptureFixture) -> None:
    """A send refused because its number opted out logs one INFO line naming the send, the number and why."""
    bridge = await bridges(make_config(), start_sender=False)
    async with bridge.store.transaction() as db:
        await db.set_opted_out(TO, True, "keyword", bridge.clock())
        await db.insert_send(NewSend("msg_rule2", "rule:info", (TO,), "Hi", None, None), bridge.clock())
    caplog.set_level(logging.INFO, logger="bridge.sender")
    await bridge.sender.drain_once()
    assert [r.getMessage() for r in caplog.records if r.name == "bridge.sender"] == [
        f"sender: not sending msg_rule2 to {TO}: the recipient opted out of messages"]


async def test_loop_guard_refuses_the_21st_identical_text(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """Twenty identical texts to one number in five minutes go out; the 21st is refused (loop_guard)."""
    bridge = await bridges(make_config(), start_sender=False)
    ids = [(await (await bridge.send({"to": TO, "body": "same"})).json())["id"] for _ in range(21)]
    other = (await (await bridge.send({"to": TO, "body": "different"})).json())["id"]
    await bridge.sender.drain_once()
    states = [(await bridge.message(i))["recipients"][0] for i in ids]
    assert [r["state"] for r in states[:20]] == ["submitted"] * 20
    assert (states[20]["state"], states[20]["reason"]) == ("refused", "loop_guard")
    assert (await bridge.message(other))["status"] == "submitted"
    assert len(await sim.sent()) == 21


async def test_loop_guard_window_slides(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """After the loop-guard window has passed, the same text may go to the number again."""
    clock = Clock()
    bridge = await bridges(make_config(), start_sender=False, clock=clock)
    for _ in range(20):
        await bridge.send({"to": TO, "body": "same"})
    await bridge.sender.drain_once()
    clock.advance(301)
    late = (await (await bridge.send({"to": TO, "body": "same"})).json())["id"]
    await bridge.sender.drain_once()
    assert (await bridge.message(late))["status"] == "submitted"


async def test_max_per_minute_paces_each_device(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """With gateway.max_per_minute 3, five recipients go out three now and the rest as tokens refill."""
    clock = Clock()
    bridge = await bridges(make_config(gateway="max_per_minute: 3"), start_sender=False, clock=clock)
    message_id = (await (await bridge.send({"to": numbers(5), "body": "paced"})).json())["id"]
    await bridge.sender.drain_once()
    assert len(await sim.sent()) == 3
    clock.advance(20)
    await bridge.sender.drain_once()
    assert len(await sim.sent()) == 4
    clock.advance(20)
    await bridge.sender.drain_once()
    assert (await bridge.message(message_id))["status"] == "submitted"
    assert len(await sim.sent()) == 5


async def handed_over_times(
        bridge: Bridge, sim: SimulatorControl, clock: Clock, count: int, seconds: int) -> list[float]:
    """Drain the queue once a second for `seconds` (the test's clock): when each of `count` SMS was accepted."""
    times: list[float] = []
    for _ in range(seconds):
        await bridge.sender.drain_once()
        times += [clock()] * (len(await sim.sent()) - len(times))
        if len(times) == count:
            break
        clock.advance(1)
    return times


async def test_a_devices_own_delay_between_sms_paces_it(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A phone whose delaybetweeneachsms is 5 gets its four SMS one at a time, 5 s apart, none lost."""
    sim.state.devices[DEVICE].delay_between_sms = 5
    clock = Clock()
    bridge = await bridges(make_config(), start_sender=False, clock=clock)
    await bridge.poller.check_devices()
    message_id = (await (await bridge.send({"to": numbers(4), "body": "paced by the phone"})).json())["id"]
    times = await handed_over_times(bridge, sim, clock, 4, 30)
    assert [round(b - a) for a, b in zip(times, times[1:])] == [5, 5, 5]
    assert (await bridge.message(message_id))["status"] == "submitted"


async def test_the_stricter_of_max_per_minute_and_the_devices_delay_paces_it(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """With max_per_minute 6 (one each 10 s) and the phone's delay 5 s, SMS go one at a time 10 s apart."""
    sim.state.devices[DEVICE].delay_between_sms = 5
    clock = Clock()
    bridge = await bridges(make_config(gateway="max_per_minute: 6"), start_sender=False, clock=clock)
    await bridge.poller.check_devices()
    await bridge.send({"to": numbers(3), "body": "paced by both"})
    times = await handed_over_times(bridge, sim, clock, 3, 40)
    assert [round(b - a) for a, b in zip(times, times[1:])] == [10, 10]


async def test_stop_lets_accepted_sends_stay_queued(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """Sends accepted while the sender is stopped stay queued in the store and nothing is sent."""
    bridge = await bridges(make_config())
    await bridge.sender.stop()
    response = await bridge.send({"to": TO, "body": "after stop"})
    assert response.status == 202
    assert (await bridge.message((await response.json())["id"]))["status"] == "queued"
    assert await sim.sent() == []


async def test_outcome_that_cannot_be_stored_is_reconciled_in_the_same_run(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """When the store refuses to record a successful addsms, the row is reconciled on a later pass, not resent."""
    clock = Clock()
    bridge = await bridges(make_config(), start_sender=False, clock=clock)
    message_id = (await (await bridge.send({"to": TO, "body": "unrecorded"})).json())["id"]
    await bridge.store.fetch_one("PRAGMA busy_timeout = 50")
    await sim.fault("hang", count=1, methods=["addsms"], hang_seconds=0.5)
    drain = asyncio.create_task(bridge.sender.drain_once())

    async def submitting() -> bool:
        return (await bridge.store.fetch_one("SELECT state FROM recipients"))[0] == "submitting"

    await eventually(submitting, what="the addsms call to start")
    other = sqlite3.connect(bridge.config.storage.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable):
            await drain
    finally:
        other.execute("ROLLBACK")
        other.close()
    await bridge.sender.drain_once()
    clock.advance(bridge.config.gateway.timeout * 2 + 1)
    await bridge.sender.drain_once()
    message = await bridge.message(message_id)
    assert [s["sms_id"] for s in await sim.sent()] == [message["recipients"][0]["sms_id"]]


async def test_a_send_at_the_upstream_cannot_take_fails_alone_in_its_batch(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """A queued send whose send_at has no instant in the account's zone fails with a reason naming send_at;
    the send batched with it goes out once."""
    bridge = await bridges(make_config(), start_sender=False)
    bad = NewSend("msg_bad_send_at", "api", (TO,), "x", 1576, 0, send_at="9999-12-31T23:59:59-12:00")
    good = NewSend("msg_plain", "api", (TO,), "x", 1576, 0)
    await asyncio.gather(bridge.sender.accept(bad), bridge.sender.accept(good))
    await bridge.sender.drain_once()
    assert (await bridge.settled("msg_plain"))["status"] == "submitted"
    failed = await bridge.settled("msg_bad_send_at")
    assert failed["status"] == "failed" and "send_at" in failed["recipients"][0]["reason"]
    assert [(s["to"], s["body"], s["timetosend"]) for s in await sim.sent()] == [(TO, "x", None)]


async def test_a_recipient_the_upstream_refuses_fails_alone_in_its_batch(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """When the upstream refuses a batch for one of its SMS (an unknown device), only that one fails, with the
    upstream's reason; the others of the batch are sent once."""
    bridge = await bridges(make_config(), start_sender=False)
    sends = [NewSend(f"msg_ok_{i}", "api", (number,), "x", 1576, 0) for i, number in enumerate(numbers(3))]
    refused = NewSend("msg_unknown_device", "api", (numbers(1, start=50)[0],), "x", 999, 0)
    await asyncio.gather(*(bridge.sender.accept(send) for send in [*sends[:2], refused, sends[2]]))
    await bridge.sender.drain_once()
    for send in sends:
        assert (await bridge.settled(send.id))["status"] == "submitted"
    failed = await bridge.settled(refused.id)
    assert failed["status"] == "failed" and "Device not found" in failed["recipients"][0]["reason"]
    assert sorted(s["to"] for s in await sim.sent()) == numbers(3)


async def test_a_sender_whose_database_is_gone_logs_it_once_and_counts_every_pass(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]],
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A sender failing pass after pass (its database file deleted) writes one log line, while /metrics counts
    each failed pass."""
    monkeypatch.setattr("bridge.sender.ERROR_WAIT", 0.01)
    bridge = await bridges(make_config())
    caplog.set_level(logging.INFO, logger="bridge.sender")
    Path(bridge.config.storage.path).unlink()
    bridge.sender.wake()

    async def failed_passes() -> bool:
        value = bridge.metrics.registry.get_sample_value("bridge_worker_failures_total", {"worker": "sender"})
        return (value or 0) >= 5

    await eventually(failed_passes, what="five failed sender passes")
    failures = [r for r in caplog.records if r.name == "bridge.sender" and "send queue" in r.getMessage()]
    assert len(failures) == 1 and failures[0].levelno == logging.WARNING
