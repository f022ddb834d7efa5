"""POST /v1/messages and GET /v1/messages/{id}: accepted, validated, sent once, and followed."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from api_support import API_KEY, DEVICE, Bridge
from simulator_control import SimulatorControl


def numbers(n: int, start: int = 0) -> list[str]:
    """`n` distinct valid German mobile numbers."""
    return [f"+49157529{start + i:05d}" for i in range(n)]


async def test_post_answers_202_queued_with_an_id(bridge: Bridge) -> None:
    """A valid message is answered 202 with a msg_ id and status queued."""
    response = await bridge.send({"to": "+4915752982212", "body": "hello"})
    assert response.status == 202
    body = await response.json()
    assert body["status"] == "queued" and body["id"].startswith("msg_")
    assert response.headers["Location"] == f"/v1/messages/{body['id']}"


async def test_single_recipient_is_sent_with_addsms_and_learns_its_id(bridge: Bridge, sim: SimulatorControl) -> None:
    """One recipient goes out through addsms and the message shows its upstream id and pending status."""
    response = await bridge.send({"to": "+4915752982212", "body": "one"})
    message = await bridge.settled((await response.json())["id"])
    sent = await sim.sent()
    assert [(s["to"], s["method"]) for s in sent] == [("+4915752982212", "addsms")]
    assert message["status"] == "submitted"
    attempt = {"sms_id": sent[0]["sms_id"], "device_id": 1576, "sim": 0, "status": 1, "status_name": "pending"}
    assert message["recipients"] == [{"to": "+4915752982212", "sms_id": sent[0]["sms_id"], "status": 1,
                                      "status_name": "pending", "state": "submitted", "reason": None,
                                      "attempts": [attempt]}]


@pytest.mark.parametrize("count", [10, 1000])
async def test_many_recipients_go_in_batches_and_all_learn_their_ids(
        bridge: Bridge, sim: SimulatorControl, count: int) -> None:
    """A message to many numbers is sent with addalotofsms and every recipient learns its own sms_id."""
    to = numbers(count)
    response = await bridge.send({"to": to, "body": f"batch of {count}"})
    message = await bridge.settled((await response.json())["id"], timeout=60)
    sent = await sim.sent()
    by_number = {s["to"]: s["sms_id"] for s in sent}
    assert len(sent) == count and {s["method"] for s in sent} == {"addalotofsms"}
    assert [r["to"] for r in message["recipients"]] == to
    assert [r["sms_id"] for r in message["recipients"]] == [by_number[n] for n in to]
    assert await sim.calls("addalotofsms") == -(-count // 100)


async def test_numbers_are_normalised_to_e164_and_sent_once(bridge: Bridge, sim: SimulatorControl) -> None:
    """National and formatted spellings become E.164 (default region), and a repeated number is sent once."""
    response = await bridge.send({"to": ["0157 5298 2212", "+49 (157) 52982212", "+4915752982213"], "body": "x"})
    message = await bridge.settled((await response.json())["id"])
    assert [r["to"] for r in message["recipients"]] == ["+4915752982212", "+4915752982213"]
    assert sorted(s["to"] for s in await sim.sent()) == ["+4915752982212", "+4915752982213"]


async def test_invalid_number_is_400_naming_its_position(bridge: Bridge, sim: SimulatorControl) -> None:
    """An invalid number in the list is a 400 whose field is to[INDEX]; nothing is queued."""
    response = await bridge.send({"to": ["+4915752982212", "+4915752982213", "12"], "body": "x"})
    assert response.status == 400
    body = await response.json()
    assert body["field"] == "to[2]" and "'12'" in body["error"]
    assert (await bridge.store.fetch_one("SELECT count(*) FROM sends"))[0] == 0


async def test_a_plus_before_letters_is_400_naming_the_number(bridge: Bridge) -> None:
    """A `+` followed by words is no phone number: a 400 naming its position, not an internal error."""
    response = await bridge.send({"to": ["+4915752982212", "+49 not a number"], "body": "x"})
    assert response.status == 400 and (await response.json())["field"] == "to[1]"


async def test_invalid_single_number_names_to(bridge: Bridge) -> None:
    """An invalid single number is a 400 whose field is `to`."""
    response = await bridge.send({"to": "not a number", "body": "x"})
    assert response.status == 400 and (await response.json())["field"] == "to"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"to": "+4915752982212", "body": "x", "colour": "red"}, "colour"),
        ({"body": "x"}, "to"),
        ({"to": [], "body": "x"}, "to"),
        ({"to": ["+4915752982212", 15752982212], "body": "x"}, "to[1]"),
        ({"to": "+4915752982212"}, "body"),
        ({"to": "+4915752982212", "body": 7}, "body"),
        ({"to": "+4915752982212", "body": "   "}, "body"),
        ({"to": "+4915752982212", "body": "x" * 1601}, "body"),
        ({"to": "+4915752982212", "body": "x", "sim": 2}, "sim"),
        ({"to": "+4915752982212", "body": "x", "device_id": "1576"}, "device_id"),
        ({"to": "+4915752982212", "body": "x", "device_id": True}, "device_id"),
        ({"to": "+4915752982212", "body": "x", "urgent": 1}, "urgent"),
        ({"to": "+4915752982212", "body": "x", "customer_id": -1}, "customer_id"),
        ({"to": "+4915752982212", "body": "x", "send_at": "tomorrow"}, "send_at"),
        ({"to": "+4915752982212", "body": "x", "send_at": "2026-02-30 10:00"}, "send_at"),
    ],
)
async def test_bad_fields_are_400_naming_the_field(bridge: Bridge, body: dict, field: str) -> None:
    """Unknown fields, missing ones, wrong types and invalid values are 400 with the field named."""
    response = await bridge.send(body)
    assert response.status == 400
    assert response.content_type == "application/json"
    assert (await response.json())["field"] == field


@pytest.mark.parametrize("raw", [b"{", b"", b"[1, 2]", b'"text"', b'{"to": NaN}', b"\xff\xfe"])
async def test_malformed_json_is_400(bridge: Bridge, raw: bytes) -> None:
    """A body that is not a JSON object is a JSON 400 with a null field."""
    response = await bridge.client.post("/v1/messages", data=raw, headers={
        "Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"})
    assert response.status == 400
    body = await response.json()
    assert body["field"] is None and body["error"]


async def test_deeply_nested_json_is_400_not_500(bridge: Bridge) -> None:
    """JSON nested deeper than the parser allows is a 400."""
    raw = b"[" * 200_000 + b"]" * 200_000
    response = await bridge.client.post("/v1/messages", data=raw, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status == 400


async def test_lone_surrogate_in_body_is_400(bridge: Bridge) -> None:
    """A body with a lone UTF-16 surrogate escape cannot be stored and is a 400."""
    raw = b'{"to": "+4915752982212", "body": "a\\ud800b"}'
    response = await bridge.client.post("/v1/messages", data=raw, headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status == 400 and (await response.json())["field"] == "body"


async def test_send_at_without_offset_is_read_in_the_account_zone(bridge: Bridge, sim: SimulatorControl) -> None:
    """A naive send_at is the account's local time and reaches the upstream as timetosend unchanged."""
    response = await bridge.send({"to": "+4915752982212", "body": "later", "send_at": "2030-07-01 09:30"})
    message = await bridge.settled((await response.json())["id"])
    assert message["send_at"] == "2030-07-01T09:30:00+02:00"
    assert (await sim.sent())[0]["timetosend"] == "2030-07-01 09:30:00"


async def test_send_at_with_an_offset_is_converted_to_the_account_zone(bridge: Bridge, sim: SimulatorControl) -> None:
    """An ISO 8601 send_at with Z reaches the upstream in the account's zone."""
    response = await bridge.send({"to": "+4915752982212", "body": "later", "send_at": "2030-01-15T08:00:00Z"})
    await bridge.settled((await response.json())["id"])
    assert (await sim.sent())[0]["timetosend"] == "2030-01-15 09:00:00"


async def test_options_reach_the_upstream(bridge: Bridge, sim: SimulatorControl) -> None:
    """device_id, sim and urgent given in the request are what the upstream receives."""
    response = await bridge.send({"to": "+4915752982212", "body": "otp 1234", "device_id": 1297, "sim": 1,
                                  "urgent": True})
    await bridge.settled((await response.json())["id"])
    [sent] = await sim.sent()
    assert (sent["device_id"], sent["sim"], sent["urgent"]) == (1297, 1, True)


async def test_defaults_come_from_the_gateway_config(bridge: Bridge, sim: SimulatorControl) -> None:
    """Without device_id and sim the configured defaults are used."""
    response = await bridge.send({"to": "+4915752982212", "body": "defaults"})
    await bridge.settled((await response.json())["id"])
    [sent] = await sim.sent()
    assert (sent["device_id"], sent["sim"], sent["urgent"]) == (DEVICE, 0, False)


async def test_user_customer_id_is_sent_per_recipient_with_addsms(bridge: Bridge, sim: SimulatorControl) -> None:
    """A user-supplied customer_id goes upstream as customerid, one addsms per recipient, ids learned."""
    response = await bridge.send({"to": numbers(3), "body": "order shipped", "customer_id": 4242})
    message = await bridge.settled((await response.json())["id"])
    sent = await sim.sent()
    assert [(s["method"], s["customerid"]) for s in sent] == [("addsms", 4242)] * 3
    assert sorted(r["sms_id"] for r in message["recipients"]) == sorted(s["sms_id"] for s in sent)


async def test_upstream_refusal_fails_the_recipient_with_its_message(bridge: Bridge, sim: SimulatorControl) -> None:
    """An ApiError (an unknown device) marks the recipient failed with the upstream's message, not retried."""
    response = await bridge.send({"to": "+4915752982212", "body": "x", "device_id": 999})
    message = await bridge.settled((await response.json())["id"])
    assert message["status"] == "failed"
    assert "Device not found" in message["recipients"][0]["reason"]
    assert (await bridge.store.fetch_one("SELECT attempts FROM recipients"))[0] == 1
    assert await sim.sent() == []


async def test_status_follows_the_upstream_once_the_poller_sees_it(bridge: Bridge, sim: SimulatorControl) -> None:
    """After a poll, the recipient's status is the one the poller stored for its sms_id."""
    response = await bridge.send({"to": "+4915752982212", "body": "track me"})
    message = await bridge.settled((await response.json())["id"])
    sim.state.pin_status(message["recipients"][0]["sms_id"], 7)
    await bridge.poller.poll_once()
    recipient = (await bridge.message(message["id"]))["recipients"][0]
    assert (recipient["status"], recipient["status_name"]) == (7, "delivered")


async def test_unknown_message_is_a_json_404(bridge: Bridge) -> None:
    """GET of an id that was never issued is a JSON 404."""
    response = await bridge.client.get("/v1/messages/msg_nope", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status == 404
    assert (await response.json())["error"]


async def test_every_accepted_send_is_sent_exactly_once_under_concurrency(
        bridge: Bridge, sim: SimulatorControl) -> None:
    """Many concurrent requests are all accepted and each recipient is sent exactly once."""
    responses = await asyncio.gather(*(bridge.send({"to": n, "body": "burst"}) for n in numbers(50)))
    assert {r.status for r in responses} == {202}
    for response in responses:
        await bridge.settled((await response.json())["id"])
    assert Counter(s["to"] for s in await sim.sent()) == Counter(numbers(50))


async def test_a_nul_in_the_body_is_sent_whole(bridge: Bridge, sim: SimulatorControl) -> None:
    """A body holding a NUL character reaches the upstream whole, and is stored whole."""
    response = await bridge.send({"to": "+4915752982212", "body": "Hel\u0000lo"})
    assert response.status == 202
    await bridge.settled((await response.json())["id"])
    assert [s["body"] for s in await sim.sent()] == ["Hel\x00lo"]


@pytest.mark.parametrize("when", ["9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00"])
async def test_a_send_at_the_upstream_cannot_take_is_400_naming_send_at(bridge: Bridge, when: str) -> None:
    """A send_at that has no instant in the account's zone (past year 9999 or before year 1 there) is a 400."""
    response = await bridge.send({"to": "+4915752982212", "body": "x", "send_at": when})
    assert response.status == 400 and (await response.json())["field"] == "send_at"
