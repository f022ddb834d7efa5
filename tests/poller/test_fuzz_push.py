"""Any body POSTed to the push path `POST /v1/gateway/{secret}` is answered 200 or 4xx, never 5xx.

A 5xx makes the upstream retry the same body forever; a body the bridge cannot use is a 400 naming the field,
and one it can is recorded (an incoming SMS at most once, however often it is pushed).
"""

from __future__ import annotations

import io
import json
from typing import Any
from urllib.parse import urlencode

from hostile_inputs import WHOLE_PATH, any_text, json_scalars, json_values
from hypothesis import given
from hypothesis import strategies as st
from poller_support import HOOK_SECRET, Harness, PushClient

from bridge.gateway import parse

PATH = f"/v1/gateway/{HOOK_SECRET}"

_edges = st.sampled_from((2**63, 2**70, -(2**70), 1e20, 1e300, "9" * 30, 7, "7", 1_764_000_000_000, 0, -1))
_ids = st.one_of(_edges, json_scalars)
_dates = st.one_of(st.sampled_from(("2026-11-24 10:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59",
                                    "9999-12-31T23:59:59-12:00", "0001-01-01T00:00:00+14:00", "")), _edges,
                   json_scalars)
_numbers = st.one_of(st.sampled_from(("+4917642111111", " 4917642111111", "004917642111111", "ACME")), json_scalars)
_extra = {"date_sent": json_values, "status_message": json_values, "sendto": _numbers, "senttime": _dates,
          "internal_id": _ids, "channel_id": _ids, "type": json_values, "sim": _ids, "device_id": _ids,
          "img_url": st.one_of(st.just("https://smsgateway24.s3.eu-central-1.amazonaws.com/a.jpg"), any_text,
                               json_values)}
push_bodies = st.one_of(
    st.fixed_dictionaries({"address": _numbers, "sms_id": _ids},
                          optional={"date": _dates, "body": st.one_of(any_text, json_values), **_extra}),
    st.fixed_dictionaries({"status_id": _ids, "sms_id": _ids}, optional=_extra),
    st.dictionaries(st.text(max_size=8), json_values, max_size=5),
)

def as_form(body: dict[str, Any]) -> bytes:
    """The body as an urlencoded form (values as text; halves of surrogate pairs as the bytes they would be)."""
    fields = {key: value if isinstance(value, str) else json.dumps(value) for key, value in body.items()}
    return urlencode(fields, encoding="utf-8", errors="surrogatepass").encode()


@WHOLE_PATH
@given(body=push_bodies, shape=st.sampled_from(("json", "form", "bytes")), raw=st.binary(max_size=40))
async def test_any_push_body_is_answered_200_or_4xx(bridge: Harness, push_client: PushClient,
                                                    body: dict[str, Any], shape: str, raw: bytes) -> None:
    """Whatever the fields, their types and text, sent as JSON, as a form or as arbitrary bytes, the answer
    is 200 with the events recorded or a 4xx JSON error."""
    client = await push_client(bridge)
    if shape == "json":
        payload, kind = json.dumps(body).encode(), "application/json"
    elif shape == "form":
        payload, kind = as_form(body), "application/x-www-form-urlencoded"
    else:
        payload, kind = raw + json.dumps(body).encode(), "application/json"
    # A stream, as aiohttp's client asks for bodies over 1 MiB (escaped text can grow that large).
    response = await client.post(PATH, data=io.BytesIO(payload), headers={"Content-Type": kind})
    assert response.status == 200 or 400 <= response.status < 500, await response.text()
    answer = await response.json()
    if response.status == 200:
        assert answer["ok"] is True
    else:
        assert answer["error"]


@WHOLE_PATH
@given(sms_id=_ids, date=_dates)
async def test_an_incoming_sms_with_any_id_and_date_is_recorded_once_or_refused(
        bridge: Harness, push_client: PushClient, sms_id: Any, date: Any) -> None:
    """An incoming SMS pushed twice with any id and date is recorded under its id once, or refused twice with 400."""
    client = await push_client(bridge)
    body = {"address": "+4917642111111", "sms_id": sms_id, "date": date, "body": "hi"}
    first, again = [await client.post(PATH, json=body) for _ in range(2)]
    assert first.status == again.status and first.status in (200, 400), await first.text()
    if first.status == 200:
        assert (await again.json())["events"] == []
        assert parse.to_int(sms_id) in {e["sms"]["id"] for e in await bridge.events()}
