"""The upstream answer parsers on any JSON: each returns a value or raises a GatewayError, never anything else."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fuzz_support import FUZZ, device_answers, json_values, sms_answers
from hypothesis import given
from hypothesis import strategies as st

from bridge.gateway import parse
from bridge.gateway.errors import GatewayError, MalformedResponse
from bridge.gateway.models import Device, Sms, SmsStatusInfo

PARIS = ZoneInfo("Europe/Paris")

PARSERS: dict[str, Callable[[Any], object]] = {
    "raise_for_error": parse.raise_for_error,
    "parse_token": parse.parse_token,
    "parse_sms_id": parse.parse_sms_id,
    "parse_tag_id": parse.parse_tag_id,
    "parse_contact_id": parse.parse_contact_id,
    "parse_paket_id": parse.parse_paket_id,
    "parse_ok": parse.parse_ok,
    "parse_count": parse.parse_count,
    "read_sms_list": lambda data: parse.read_sms_list(data, PARIS).messages,
    "parse_sms_status": lambda data: parse.parse_sms_status(data, 62050971),
    "parse_devices": lambda data: parse.parse_devices(data, PARIS),
}


def outcome(parser: Callable[[Any], object], data: Any) -> object:
    """What `parser` made of `data`: its value, or the GatewayError it raised (any other exception fails)."""
    try:
        return parser(data)
    except GatewayError as exc:
        assert exc.message, "a gateway error says what went wrong"
        return exc


@FUZZ
@given(data=json_values)
def test_any_json_value_parses_or_raises_a_gateway_error(data: Any) -> None:
    """Any decoded JSON value given to any parser gives a value or a GatewayError."""
    for parser in PARSERS.values():
        outcome(parser, data)


@FUZZ
@given(data=sms_answers)
def test_getallsms_shaped_answers_give_messages_or_a_gateway_error(data: dict[str, Any]) -> None:
    """getallsms-shaped answers give typed messages with aware dates (and a count), or a GatewayError."""
    assert isinstance(outcome(parse.parse_count, data), (int, GatewayError))
    messages = outcome(PARSERS["read_sms_list"], data)
    if isinstance(messages, GatewayError):
        return
    for sms in messages:
        assert isinstance(sms, Sms) and isinstance(sms.id, int) and isinstance(sms.body, str)
        assert isinstance(sms.created, datetime) and sms.created.tzinfo is not None


@FUZZ
@given(data=device_answers)
def test_getalldevices_shaped_answers_give_devices_or_a_gateway_error(data: dict[str, Any]) -> None:
    """getalldevices-shaped answers with any field values give typed devices, or a GatewayError."""
    devices = outcome(PARSERS["parse_devices"], data)
    if isinstance(devices, GatewayError):
        return
    for device in devices:
        assert isinstance(device, Device) and isinstance(device.id, int)
        assert all(isinstance(sim.slot, int) for sim in device.sims)
        assert device.sms_delay is None or 0 < device.sms_delay <= parse.MAX_SMS_DELAY


@FUZZ
@given(data=st.fixed_dictionaries({}, optional={"error": json_values, "message": json_values,
                                                "sms_id": json_values, "status": json_values,
                                                "status_description": json_values}))
def test_getsmsstatus_shaped_answers_give_a_status_or_a_gateway_error(data: dict[str, Any]) -> None:
    """getsmsstatus-shaped answers give an SmsStatusInfo with an int id, or a GatewayError."""
    info = outcome(PARSERS["parse_sms_status"], data)
    assert isinstance(info, GatewayError) or (isinstance(info, SmsStatusInfo) and isinstance(info.sms_id, int))


@FUZZ
@given(raw=st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                     sms_answers.map(lambda v: json.dumps(v).encode()[:60])))
def test_any_body_decodes_to_an_object_or_malformed_response(raw: bytes) -> None:
    """Any response body (junk, any JSON, truncated JSON) decodes to a dict or raises MalformedResponse."""
    try:
        data = parse.decode(raw)
    except MalformedResponse:
        return
    assert isinstance(data, dict)


@FUZZ
@given(value=json_values)
def test_a_date_of_any_shape_is_an_aware_datetime_or_none(value: Any) -> None:
    """parse_date never raises: any value gives an aware datetime or None."""
    when = parse.parse_date(value, PARIS)
    assert when is None or when.tzinfo is not None


@FUZZ
@given(value=json_values)
def test_scalar_readers_never_raise(value: Any) -> None:
    """to_int, to_bool, to_str and normalize_number read any JSON value without raising."""
    assert isinstance(parse.to_int(value), (int, type(None)))
    assert isinstance(parse.to_bool(value), bool)
    assert isinstance(parse.to_str(value), (str, type(None)))
    assert isinstance(parse.normalize_number(value), (str, type(None)))
