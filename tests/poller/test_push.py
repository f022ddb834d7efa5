"""The push path `POST /v1/gateway/{secret}`: SmsGateway24's webhooks feed the same pipeline as the poller."""

from __future__ import annotations

from typing import Any

import pytest
from poller_support import HOOK_SECRET, Harness, MakeHarness, PushClient

PATH = f"/v1/gateway/{HOOK_SECRET}"


def _incoming(sms_id: int, **extra: Any) -> dict[str, Any]:
    return {"address": "+4917642111111", "date": "2026-11-24 10:00:00", "date_sent": "2026-11-24 09:59:58",
            "body": "INFO please", "internal_id": 812, "channel_id": 0, "sms_id": sms_id, "device_id": 1576,
            "device_name": "AOSP_on_IA_Emulator", "type": "text", **extra}


async def test_pushed_sms_is_an_event_at_once(bridge: Harness, push_client: PushClient) -> None:
    """A pushed incoming SMS is recorded as sms.received before the answer, without waiting for a poll."""
    client = await push_client(bridge)
    response = await client.post(PATH, json=_incoming(99001))
    assert response.status == 200
    (event,) = await bridge.events()
    assert (await response.json())["events"] == [event["id"]]
    assert event["type"] == "sms.received" and event["sms"]["body"] == "INFO please"
    assert event["sms"]["created_at"] == "2026-11-24T10:00:00+01:00"


IMAGE_URL = "https://smsgateway24.s3.eu-central-1.amazonaws.com/wa/812.jpg"


async def test_channel_of_a_pushed_message_reaches_the_event(bridge: Harness, push_client: PushClient) -> None:
    """A pushed text message's `channel_id` is the event's `sms.channel`; a text has no `media_url`."""
    client = await push_client(bridge)
    assert (await client.post(PATH, json=_incoming(99011, channel_id=2))).status == 200
    (event,) = await bridge.events()
    assert (event["sms"]["channel"], event["sms"]["media_url"]) == (2, None)


async def test_pushed_image_without_text_is_an_event(bridge: Harness, push_client: PushClient) -> None:
    """A pushed WhatsApp image (`type: img`, empty body) is an sms.received whose `media_url` is its `img_url`."""
    client = await push_client(bridge)
    image = {"address": "+4917642111111", "date": "2026-11-24 10:00:00", "date_sent": "2026-11-24 09:59:58",
             "body": "", "internal_id": None, "sim": 0, "sms_id": 99012, "type": "img", "img_url": IMAGE_URL}
    response = await client.post(PATH, json=image)
    assert response.status == 200
    (event,) = await bridge.events()
    assert (await response.json())["events"] == [event["id"]]
    assert (event["type"], event["sms"]["body"], event["sms"]["media_url"]) == ("sms.received", "", IMAGE_URL)


async def test_polled_sms_has_no_channel_or_media(bridge: Harness) -> None:
    """An SMS seen only by polling carries `channel` and `media_url` as null: the API does not say."""
    await bridge.poller.poll_once()
    await bridge.inbound(body="hello")
    await bridge.poller.poll_once()
    (event,) = await bridge.events()
    assert (event["sms"]["channel"], event["sms"]["media_url"]) == (None, None)


async def test_sms_pushed_then_polled_is_one_event(bridge: Harness, push_client: PushClient) -> None:
    """An SMS that arrives by push and is then seen by the poll is emitted once."""
    client = await push_client(bridge)
    await bridge.poller.poll_once()
    sms_id = await bridge.inbound(body="INFO please")
    assert (await client.post(PATH, json=_incoming(sms_id))).status == 200
    await bridge.poller.poll_once()
    assert [e["sms"]["id"] for e in await bridge.events()] == [sms_id]


async def test_sms_polled_then_pushed_is_one_event(bridge: Harness, push_client: PushClient) -> None:
    """An SMS the poll already emitted is not emitted again when its push arrives late."""
    client = await push_client(bridge)
    await bridge.poller.poll_once()
    sms_id = await bridge.inbound()
    await bridge.poller.poll_once()
    response = await client.post(PATH, json=_incoming(sms_id))
    assert (await response.json())["events"] == []
    assert len(await bridge.events()) == 1


async def test_delivery_status_push_is_one_status_event(bridge: Harness, push_client: PushClient) -> None:
    """A pushed delivery status of a sent SMS is one sms.status; the poll seeing the same status adds nothing."""
    client = await push_client(bridge)
    await bridge.poller.poll_once()
    sms_id = await bridge.submit()
    await bridge.simulator.post("status", {"sms_id": sms_id, "status": 7})
    body = {"sms_id": sms_id, "status_id": 7, "status_message": "delivered", "sendto": "+4917642111111",
            "senttime": "2026-11-24 10:00:05", "channel_id": 0, "device_id": 1576}
    assert (await client.post(PATH, json=body)).status == 200
    await bridge.poller.poll_once()
    assert [(e["sms"]["previous_status"], e["sms"]["status"]) for e in await bridge.events()] == [(1, 7)]


async def test_stale_status_after_a_final_one_is_ignored(bridge: Harness, push_client: PushClient) -> None:
    """A status older than the one recorded (a poll racing a push) changes nothing and emits nothing."""
    client = await push_client(bridge)
    await bridge.poller.poll_once()
    sms_id = await bridge.submit()
    await client.post(PATH, json={"sms_id": sms_id, "status_id": 7})
    await client.post(PATH, json={"sms_id": sms_id, "status_id": 6})
    assert [e["sms"]["status"] for e in await bridge.events()] == [7]
    row = await bridge.store.fetch_one("SELECT status FROM messages WHERE id = ?", (sms_id,))
    assert row["status"] == 7


async def test_form_body_is_accepted(bridge: Harness, push_client: PushClient) -> None:
    """A urlencoded form body works like JSON (every value a string)."""
    client = await push_client(bridge)
    form = {key: str(value) for key, value in _incoming(99002).items()}
    assert (await client.post(PATH, data=form)).status == 200
    assert [e["sms"]["id"] for e in await bridge.events()] == [99002]


async def test_unix_milliseconds_date_is_read(bridge: Harness, push_client: PushClient) -> None:
    """A `date` in Unix milliseconds (as Android reports it) dates the SMS."""
    client = await push_client(bridge)
    await client.post(PATH, json=_incoming(99003, date=1700000000000))
    (event,) = await bridge.events()
    assert event["sms"]["created_at"] == "2023-11-14T23:13:20+01:00"


async def test_unknown_fields_are_ignored(bridge: Harness, push_client: PushClient) -> None:
    """Fields the bridge does not know do not make a push fail."""
    client = await push_client(bridge)
    response = await client.post(PATH, json=_incoming(99004, img_url=None, extra={"nested": [1]}))
    assert response.status == 200


@pytest.mark.parametrize(("body", "field"), [
    ({"address": "+491", "sms_id": "abc"}, "sms_id"),
    ({"address": "", "sms_id": 5}, "address"),
    ({"address": "+491", "sms_id": 5, "date": "yesterday-ish"}, "date"),
    ({"sms_id": 5, "status_id": "delivered"}, "status_id"),
    ({"hello": "world"}, None),
    ({"address": "+491", "sms_id": 2**70}, "sms_id"),
    ({"address": "+491", "sms_id": 1e20}, "sms_id"),
    ({"sms_id": 2**70, "status_id": 7}, "sms_id"),
    ({"address": "+491", "sms_id": 5, "device_id": 2**70}, "device_id"),
    ({"address": "+491", "sms_id": 5, "type": "img", "img_url": "javascript:alert(1)"}, "img_url"),
    ({"address": "+491", "sms_id": 5, "type": "img", "img_url": 7}, "img_url"),
    ({"address": "+491", "sms_id": 5, "channel_id": "whatsapp"}, "channel_id"),
    ({"address": "+491", "sms_id": 5, "date": "0001-01-01 00:00:00"}, "date"),
    ({"address": "+491", "sms_id": 5, "date": "9999-12-31T23:59:59-12:00"}, "date"),
])
async def test_unusable_body_is_400_naming_the_field(bridge: Harness, push_client: PushClient,
                                                     body: dict[str, Any], field: str | None) -> None:
    """A body the bridge cannot use is answered 400 with {"error", "field"} and records nothing."""
    client = await push_client(bridge)
    response = await client.post(PATH, json=body)
    assert response.status == 400
    answer = await response.json()
    assert answer["field"] == field and answer["error"]
    assert await bridge.events() == []


async def test_half_a_surrogate_pair_in_a_pushed_body_arrives_as_the_replacement_character(
        bridge: Harness, push_client: PushClient) -> None:
    """A pushed SMS whose body holds half a surrogate pair is recorded with U+FFFD in its place."""
    client = await push_client(bridge)
    raw = b'{"address": "+4917600000002", "sms_id": 99005, "body": "half emoji \\ud83d"}'
    response = await client.post(PATH, data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 200
    assert [e["sms"]["body"] for e in await bridge.events()] == ["half emoji \ufffd"]


async def test_body_that_is_not_json_is_400(bridge: Harness, push_client: PushClient) -> None:
    """A body that is neither JSON nor a form is answered 400."""
    client = await push_client(bridge)
    response = await client.post(PATH, data=b"{not json", headers={"Content-Type": "application/json"})
    assert response.status == 400


async def test_wrong_secret_is_404(bridge: Harness, push_client: PushClient) -> None:
    """A wrong secret in the path is answered 404, as if the endpoint did not exist."""
    client = await push_client(bridge)
    response = await client.post("/v1/gateway/guess", json=_incoming(99005))
    assert response.status == 404
    assert await bridge.events() == []


async def test_push_is_404_when_no_secret_is_configured(make_harness: MakeHarness, push_client: PushClient) -> None:
    """Without gateway.webhook_secret the push path does not exist."""
    bridge = await make_harness(webhook_secret=None)
    client = await push_client(bridge)
    assert (await client.post("/v1/gateway/", json=_incoming(1))).status == 404
    assert (await client.post("/v1/gateway/anything", json=_incoming(1))).status == 404
