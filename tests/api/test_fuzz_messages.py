"""Batches of POST /v1/messages with bad sends among good ones: each bad one fails alone, with a clear reason.

Requests are accepted while the sender waits, then drained together, so good and bad SMS share the same
addalotofsms calls. A recipient the upstream refuses (an unknown device) shows `failed` with the upstream's
reason in GET /v1/messages/{id}; a send_at or number the bridge cannot use is a 400 naming its field; every
good SMS is sent exactly once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from api_support import Bridge
from hostile_inputs import WHOLE_PATH, any_text, readable
from hypothesis import given
from hypothesis import strategies as st
from simulator_control import SimulatorControl
from test_messages import numbers

from bridge.config import Config

TAGS = itertools.count()  # a tag per request, unique over every example, so each is found among all sent
POOL = numbers(12, start=700)
BAD_SEND_AT = ("9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "2026-02-30 10:00", "tomorrow", 5)

requests = st.lists(st.fixed_dictionaries({
    "kind": st.sampled_from(("good", "good", "unknown_device", "bad_send_at", "bad_number")),
    "to": st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True),
    "text": any_text.map(lambda text: readable(text)[:400]),
    "send_at": st.sampled_from(BAD_SEND_AT),
}), min_size=1, max_size=6)


def body_of(request: dict[str, Any], tag: int) -> dict[str, Any]:
    """The POST body a generated request stands for."""
    body: dict[str, Any] = {"to": request["to"], "body": f"{request['text']} #{tag}"}
    if request["kind"] == "unknown_device":
        body["device_id"] = 999
    elif request["kind"] == "bad_send_at":
        body["send_at"] = request["send_at"]
    elif request["kind"] == "bad_number":
        body["to"] = [*request["to"], "+49 not a number"]
    return body


@pytest.fixture
async def waiting_bridge(make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]]) -> Bridge:
    """A bridge whose sender starts only when the test says."""
    return await bridges(make_config(), start_sender=False)


@WHOLE_PATH
@given(batch=requests)
async def test_each_bad_send_in_a_batch_fails_alone_and_the_others_go_once(
        waiting_bridge: Bridge, sim: SimulatorControl, batch: list[dict[str, Any]]) -> None:
    """Good sends are submitted and sent once each; an unknown device fails with the upstream's reason; a bad
    send_at or number is a 400 naming it, and nothing of it is sent."""
    bridge = waiting_bridge
    bodies = [body_of(request, next(TAGS)) for request in batch]
    responses = await asyncio.gather(*(bridge.send(body) for body in bodies))
    await bridge.sender.start()
    try:
        for request, body, response in zip(batch, bodies, responses):
            answer = await response.json()
            if request["kind"] == "bad_send_at":
                assert response.status == 400 and answer["field"] == "send_at", answer
            elif request["kind"] == "bad_number":
                assert response.status == 400 and answer["field"] == f"to[{len(request['to'])}]", answer
            else:
                assert response.status == 202, answer
                message = await bridge.settled(answer["id"])
                if request["kind"] == "good":
                    assert {r["state"] for r in message["recipients"]} == {"submitted"}, message
                else:
                    assert all(r["state"] == "failed" and "Device not found" in r["reason"]
                               for r in message["recipients"]), message
    finally:
        await bridge.sender.stop()
    sent = Counter((s["to"], s["body"]) for s in await sim.sent())
    for request, body in zip(batch, bodies):
        expected = 1 if request["kind"] == "good" else 0
        assert [sent[number, body["body"]] for number in request["to"]] == [expected] * len(request["to"])
