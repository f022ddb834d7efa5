"""The whole bridge against an upstream that fails: it keeps running, catches up, loses and repeats nothing.

Each test injects faults through the simulator's /simulator/faults (or revokes the token), makes traffic
flow meanwhile, and checks the outcome the user sees: one `sms.received` event per incoming SMS, one
upstream SMS per accepted send.
"""

from __future__ import annotations

import pytest
from reliability_support import count_sent
from running_bridge import RunningBridge
from simulator_control import SimulatorControl
from waiting import eventually

INBOUND = 5
SENDER = "+4917642111111"


async def receive_during(bridge: RunningBridge, sim: SimulatorControl, label: str) -> list[int]:
    """Inject INBOUND incoming SMS; returns their ids once each has an event (or fails after the bound)."""
    ids = [await sim.inbound(SENDER, f"{label} {n}") for n in range(INBOUND)]

    async def all_received() -> bool:
        return set(ids) <= set(await bridge.received_ids())

    await eventually(all_received, what="an sms.received event for every incoming SMS")
    return ids


async def faults_used_up(sim: SimulatorControl) -> None:
    """Wait until every injected fault has been hit (so the test really went through them)."""
    async def none_left() -> bool:
        return (await sim.stats())["faults_pending"] == 0

    await eventually(none_left, what="the injected faults to be used up")


async def exactly_once(bridge: RunningBridge, sim: SimulatorControl, ids: list[int]) -> None:
    """After a few more polls, each id has exactly one sms.received event."""
    calls = (await sim.stats())["calls"].get("getallsms", 0)

    async def polled_again() -> bool:
        return (await sim.stats())["calls"].get("getallsms", 0) >= calls + 3

    await eventually(polled_again, what="three more polls")
    received = await bridge.received_ids()
    assert sorted(received) == sorted(set(received)), "an sms.received event was recorded twice"
    assert sorted(set(received) & set(ids)) == sorted(ids)


POLL_FAULTS = ["500", "502", "503", "hang", "malformed", "html", "not_object", "empty", "empty_smss", "auth",
               "stringly"]


@pytest.mark.parametrize("mode", POLL_FAULTS)
async def test_incoming_sms_are_received_once_through_getallsms_faults(
        bridge: RunningBridge, sim: SimulatorControl, mode: str) -> None:
    """Three getallsms calls failing in `mode` delay the incoming SMS but each still gives exactly one event."""
    await sim.fault(mode, count=3, methods=["getallsms"], hang_seconds=0.75)
    ids = await receive_during(bridge, sim, f"fault {mode}")
    await faults_used_up(sim)
    await exactly_once(bridge, sim, ids)


async def test_incoming_sms_are_received_once_after_the_token_is_revoked(
        bridge: RunningBridge, sim: SimulatorControl) -> None:
    """A revoked token is renewed and polling goes on: each incoming SMS gives exactly one event."""
    tokens = (await sim.stats())["tokens_issued"]
    await sim.post("revoke_token")
    ids = await receive_during(bridge, sim, "revoked")
    assert (await sim.stats())["tokens_issued"] > tokens
    await exactly_once(bridge, sim, ids)


async def test_incoming_sms_are_received_once_through_a_gettoken_slower_than_the_timeout(
        bridge: RunningBridge, sim: SimulatorControl) -> None:
    """A token renewal that hangs past the client timeout fails one poll; the next renews and nothing is lost."""
    await sim.fault("hang", count=2, methods=["gettoken"], hang_seconds=0.75)
    await sim.post("revoke_token")
    ids = await receive_during(bridge, sim, "slow gettoken")
    await faults_used_up(sim)
    await exactly_once(bridge, sim, ids)


# --- sends -----------------------------------------------------------------------------------------------

SEND_METHODS = ["addsms", "addalotofsms"]


async def accept_sends(bridge: RunningBridge, label: str) -> tuple[list[str], set[tuple[str, str]]]:
    """Four API sends (one to one number, three to two numbers each); their ids and every (number, text)."""
    ids, expected = [], set()
    for n in range(4):
        numbers = ["+4915752982212"] if n == 0 else ["+4915752982212", "+4915752982213"]
        body = f"{label} send {n}"
        status, answer = await bridge.send(numbers, body)
        assert status == 202, answer
        ids.append(answer["id"])
        expected |= {(number, body) for number in numbers}
    return ids, expected


async def sent_exactly_once(bridge: RunningBridge, sim: SimulatorControl, ids: list[str],
                            expected: set[tuple[str, str]]) -> None:
    """Every accepted send reaches `submitted` with its upstream ids, and the upstream got each SMS once."""
    async def submitted() -> bool:
        for message_id in ids:
            message = await bridge.message(message_id)
            if message["status"] != "submitted" or any(r["sms_id"] is None for r in message["recipients"]):
                return False
        return True

    await eventually(submitted, what="every accepted send to be submitted with its upstream ids")
    await eventually(lambda: sim.requests.settled(*SEND_METHODS), what="every send call to run to its end")
    counts = count_sent(await sim.sent())
    assert {key: counts[key] for key in expected} == {key: 1 for key in expected}


SEND_FAULTS = ["500", "500_applied", "503", "hang", "malformed", "empty", "auth", "stringly"]


@pytest.mark.parametrize("mode", SEND_FAULTS)
async def test_accepted_sends_go_out_once_through_send_faults(
        bridge: RunningBridge, sim: SimulatorControl, mode: str) -> None:
    """Send calls failing in `mode` (applied or not) are reconciled: every accepted SMS goes out exactly once."""
    await sim.fault(mode, count=2, methods=SEND_METHODS, hang_seconds=0.75)
    ids, expected = await accept_sends(bridge, f"fault {mode}")
    await faults_used_up(sim)
    await sent_exactly_once(bridge, sim, ids, expected)


async def test_accepted_sends_go_out_once_after_the_token_is_revoked(
        bridge: RunningBridge, sim: SimulatorControl) -> None:
    """Sends made after the token is revoked renew it and go out exactly once."""
    await sim.post("revoke_token")
    ids, expected = await accept_sends(bridge, "revoked")
    await sent_exactly_once(bridge, sim, ids, expected)


async def test_a_send_the_upstream_applies_after_the_in_doubt_wait_is_not_sent_twice(
        bridge: RunningBridge, sim: SimulatorControl) -> None:
    """A send call that hangs past twice the client timeout (the in-doubt wait) and then applies is not doubled."""
    await sim.fault("hang", count=1, methods=SEND_METHODS, hang_seconds=2.5)
    ids, expected = await accept_sends(bridge, "very slow")
    await faults_used_up(sim)
    await sent_exactly_once(bridge, sim, ids, expected)
