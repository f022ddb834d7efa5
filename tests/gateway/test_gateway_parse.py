"""The pure parsers: every JSON example of the API reference, the upstream's quirks, and any JSON at all."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.gateway import parse
from bridge.gateway.errors import ApiError, GatewayError, MalformedResponse
from bridge.gateway.models import Status

PARIS = ZoneInfo("Europe/Paris")
UTC = ZoneInfo("UTC")

# --- the reference's examples, verbatim ---------------------------------------------------------

GETTOKEN_OK = '{"error":0,"message":"OK","token":"abbde3e31e9d026c02f41119fc551111e"}'
GETTOKEN_ERROR = '{"error":1,"message":"Login or password incorrect"}'
ADDSMS_OK = '{ "error": 0, "sms_id": 62807347, "message": "Sms has been saved successfully"}'
SMSTOSEND_OK = '{ "error": 0, "sms_id": 62807347, "message": "Sms has been saved successfully"}'
ADDALOTOFSMS_DATAJSON = '{"token":"df427bfcf113c9a21c67718035076b5b","smsdata":[{"sendto":"015752982212","body":"Test message","sim":1,"timetosend":"2019-07-01 23:50:00","device_id":260},{"sendto":"+4915752982212","body":"Test message 2","sim":1,"timetosend":"2019-07-01 23:50:00","device_id":260,"urgent":1}]}'  # noqa: E501
ADDALOTOFSMS_REQUEST = '{ "token":"df427bfcf113c9a21c6771803501", "smsdata":[ { "sendto":"015752982212", "body":"Your password is 12345", "sim":1, "timetosend":"2019-07-01 23:50:00", "device_id":260, "customerid":122, "urgent":1 }, { "sendto":"015752982212", "body":"Regular SMS. Not urgnet", "sim":1, "timetosend":"2019-07-01 23:50:00", "device_id":260, "customerid":122, "urgent":0 } ] }'  # noqa: E501
GETALLSMS = '{ "smss": { "62050971": { "id": 62050971, "sendto": "+4912312312332", "body": "Hello! Thank you for Order! ", "customerid": null, "status": 2, "statustitle": "sending", "deviceid": 11231, "urgent": null, "created": { "date": "2023-11-02 22:44:43.000000", "timezone_type": 3, "timezone": "Europe/Paris" }, "senttime": null, "timetosend": null, "paketid": null, "pakettitle": null, "paketbody": null }, "62051117": { "id": 62051117, "sendto": "+4912312312332", "body": "Hello! Thank you for Order! ", "customerid": null, "status": 7, "statustitle": "delivered", "deviceid": 11231, "urgent": null, "created": { "date": "2023-11-02 22:46:09.000000", "timezone_type": 3, "timezone": "Europe/Paris" }, "senttime": null, "timetosend": null, "paketid": null, "pakettitle": null, "paketbody": null } } }'  # noqa: E501
SAVETAG_OK = '{ "error": 0, "tag_id": 8303, "message": "OK" }'
SAVECONTACT_OK = '{"error":0,"contact_id":15954765,"message":"ok"}'
SAVEPAKET_OK = '{"error":0,"message":"OK","token":"abbde3e31e9d026c02f4f49fc551111e"}'
SAVEPAKET_ERROR = '{"error":1,"message":"Login or password incorrect"}'
GETALLDEVICES = """    {
    "count": 2,
    "device": {
        "1576": {
            "id": 1576,
            "title": "AOSP_on_IA_Emulator",
            "number": null,
            "imei": "358240051111110",
            "created": {
                "date": "2020-03-28 20:10:29.000000",
                "timezone_type": 3,
                "timezone": "UTC"
            },
            "createdhumanformat": "28.03.2020 20:10:29",
            "lastseen": {
                "date": "2020-04-23 17:02:21.000000",
                "timezone_type": 3,
                "timezone": "UTC"
            },
            "lastseenhumanformat": "23.04.2020 17:02:21",
            "serialnumber": "EMULATOR30X0X5X0",
            "siminfo": [
                {
                    "Slot": "0",
                    "IccId": "89014103211118510720",
                    "Number": " 15555215554",
                    "Roaming": "0",
                    "CountryIso": "us",
                    "CarrierName": "Android (T-Mobile)"
                }
            ],
            "appversion": "12.1.21",
            "isappversionactual": false,
            "delaybetweeneachsms": null,
            "delaybetweenrequest": 1,
            "subscription": true
        },
        "1297": {
            "id": 1297,
            "title": "Android_SDK_built_for_x86",
            "number": null,
            "imei": "null",
            "created": {
                "date": "2020-01-20 14:01:05.000000",
                "timezone_type": 3,
                "timezone": "UTC"
            },
            "createdhumanformat": "20.01.2020 14:01:05",
            "lastseen": {
                "date": "2020-04-20 20:51:34.000000",
                "timezone_type": 3,
                "timezone": "UTC"
            },
            "lastseenhumanformat": "20.04.2020 20:51:34",
            "serialnumber": "unknown",
            "siminfo": [
                {
                    "Slot": "0",
                    "IccId": "8949226172233934327",
                    "Number": "+4915752982212",
                    "Roaming": "1",
                    "CountryIso": "de",
                    "CarrierName": "Drillisch (o2)"
                }
            ],
            "appversion": "12.1.21",
            "isappversionactual": false,
            "delaybetweeneachsms": 5,
            "delaybetweenrequest": 10,
            "subscription": false
        }
    }
}"""
GETSMSSTATUS_OK = '{"error":0,"message":"OK","token":"abbde3e31e9d026c02f4f49fc551111e"}'
GETSMSSTATUS_ERROR = '{"error":1,"message":"Login or password incorrect"}'


def load(text: str) -> object:
    """Decode an example answer as the client does."""
    return parse.decode(text.encode())


def test_reference_gettoken_answer_gives_the_token() -> None:
    """The reference's gettoken success example yields its token."""
    assert parse.parse_token(load(GETTOKEN_OK)) == "abbde3e31e9d026c02f41119fc551111e"


@pytest.mark.parametrize("example", [GETTOKEN_ERROR, SAVEPAKET_ERROR, GETSMSSTATUS_ERROR])
def test_reference_error_examples_raise_api_error_with_the_message(example: str) -> None:
    """Every `error: 1` example of the reference becomes an ApiError carrying the upstream's message."""
    with pytest.raises(ApiError, match="Login or password incorrect"):
        parse.raise_for_error(load(example))


@pytest.mark.parametrize("example", [ADDSMS_OK, SMSTOSEND_OK])
def test_reference_addsms_and_smstosend_answers_give_the_sms_id(example: str) -> None:
    """The addsms and smstosend examples yield sms_id 62807347."""
    assert parse.parse_sms_id(load(example)) == 62807347


def test_reference_getallsms_example_parses_to_typed_messages() -> None:
    """The getallsms example gives both messages with ids, statuses and Paris-zoned creation times."""
    first, second = parse.read_sms_list(load(GETALLSMS), UTC).messages
    assert (first.id, first.status, first.status_title, first.device_id) == (62050971, Status.TAKEN, "sending", 11231)
    assert (second.id, second.status) == (62051117, Status.DELIVERED)
    assert first.number == "+4912312312332" and first.body == "Hello! Thank you for Order! "
    assert first.created == datetime(2023, 11, 2, 22, 44, 43, tzinfo=PARIS)
    assert first.created.tzinfo == PARIS
    assert (first.customer_id, first.urgent, first.sent_time, first.time_to_send, first.sim) == (
        None, False, None, None, None)


def test_reference_getallsms_example_counts_two() -> None:
    """Without a `count` field the count is the number of messages."""
    assert parse.parse_count(load(GETALLSMS)) == 2


def test_reference_savetag_and_savecontact_answers_give_ids() -> None:
    """The savetag and savecontact examples yield their ids."""
    assert parse.parse_tag_id(load(SAVETAG_OK)) == 8303
    assert parse.parse_contact_id(load(SAVECONTACT_OK)) == 15954765


def test_reference_savepaket_example_without_paket_id_gives_none() -> None:
    """The savepaket example carries no paket_id, which reads as None rather than an error."""
    assert parse.parse_paket_id(load(SAVEPAKET_OK)) is None


def test_reference_getalldevices_example_parses_devices_and_sims() -> None:
    """The getalldevices example gives both devices, UTC times, and the SIM number with its `+` restored."""
    emulator, sdk = parse.parse_devices(load(GETALLDEVICES), PARIS)
    assert (emulator.id, emulator.title, emulator.imei, emulator.app_version) == (
        1576, "AOSP_on_IA_Emulator", "358240051111110", "12.1.21")
    assert emulator.last_seen == datetime(2020, 4, 23, 17, 2, 21, tzinfo=timezone.utc)
    assert emulator.last_seen.tzinfo == UTC
    assert emulator.sims[0].number == "+15555215554"
    assert (emulator.sims[0].slot, emulator.sims[0].carrier, emulator.sims[0].roaming) == (0, "Android (T-Mobile)", False)
    assert emulator.subscription is True and sdk.subscription is False
    assert sdk.imei is None and sdk.sims[0].roaming is True and sdk.sims[0].number == "+4915752982212"
    assert sdk.sim_number(0) == "+4915752982212"


def test_reference_getalldevices_example_gives_each_devices_own_delay_between_sms() -> None:
    """delaybetweeneachsms null is no pacing of the phone's own; 5 is 5 seconds between two SMS."""
    emulator, sdk = parse.parse_devices(load(GETALLDEVICES), PARIS)
    assert (emulator.sms_delay, sdk.sms_delay) == (None, 5.0)


@pytest.mark.parametrize(("value", "seconds"), [
    ("7", 7.0), (7.0, 7.0), (0, None), (-3, None), ("", None), ("soon", None), ([5], None), (True, 1.0),
    (parse.MAX_SMS_DELAY, float(parse.MAX_SMS_DELAY)), (parse.MAX_SMS_DELAY + 1, None), (10**30, None),
])
def test_a_devices_delay_between_sms_is_read_only_when_it_can_pace(value: object, seconds: float | None) -> None:
    """A delay that is not a positive number of seconds, or is beyond an hour, paces nothing."""
    (device,) = parse.parse_devices({"device": {"9": {"id": 9, "delaybetweeneachsms": value}}}, PARIS)
    assert device.sms_delay == seconds


def test_reference_getsmsstatus_example_without_status_reads_as_unknown() -> None:
    """The getsmsstatus example lacks sms_id and status: the asked id and UNKNOWN are reported."""
    info = parse.parse_sms_status(load(GETSMSSTATUS_OK), 62050971)
    assert (info.sms_id, info.status, info.status_code, info.description) == (62050971, Status.UNKNOWN, 0, None)


@pytest.mark.parametrize("example", [ADDALOTOFSMS_DATAJSON, ADDALOTOFSMS_REQUEST])
def test_reference_addalotofsms_requests_are_json_with_token_and_smsdata(example: str) -> None:
    """Both addalotofsms request examples are JSON objects with a token and a list of items."""
    data = json.loads(example)
    assert isinstance(data["token"], str)
    assert all({"sendto", "body", "device_id"} <= set(item) for item in data["smsdata"])


# --- quirks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"date": "2023-11-02 22:44:43.000000", "timezone_type": 3, "timezone": "America/Sao_Paulo"},
         datetime(2023, 11, 2, 22, 44, 43, tzinfo=ZoneInfo("America/Sao_Paulo"))),
        ({"date": "2023-11-02 22:44:43.000000", "timezone_type": 1, "timezone": "+05:30"},
         datetime(2023, 11, 2, 22, 44, 43, tzinfo=timezone(timedelta(hours=5, minutes=30)))),
        ({"date": "2023-11-02 22:44:43.000000", "timezone_type": 1, "timezone": "-0300"},
         datetime(2023, 11, 2, 22, 44, 43, tzinfo=timezone(timedelta(hours=-3)))),
        ({"date": "2023-11-02 22:44:43.000000", "timezone_type": 2, "timezone": "CET"},
         datetime(2023, 11, 2, 22, 44, 43, tzinfo=timezone(timedelta(hours=1)))),
        ({"date": "2023-11-02 22:44:43.000000", "timezone_type": "2", "timezone": "Z"},
         datetime(2023, 11, 2, 22, 44, 43, tzinfo=timezone.utc)),
        ("2023-11-02 22:44:43", datetime(2023, 11, 2, 22, 44, 43, tzinfo=PARIS)),
        ("2023-11-02", datetime(2023, 11, 2, tzinfo=PARIS)),
        ("2023-11-02T21:44:43Z", datetime(2023, 11, 2, 22, 44, 43, tzinfo=PARIS)),
        ("28.03.2020 20:10:29", datetime(2020, 3, 28, 20, 10, 29, tzinfo=PARIS)),
    ],
)
def test_dates_are_read_in_the_zone_they_name(value: object, expected: datetime) -> None:
    """PHP date objects of type 1, 2 and 3, and plain strings (read in the account zone), give the right instant."""
    parsed = parse.parse_date(value, PARIS)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() == expected.utcoffset()


def test_a_date_object_keeps_its_iana_zone() -> None:
    """A type-3 date is returned in the zone it names, not converted to the account zone."""
    value = {"date": "2023-07-02 10:00:00.000000", "timezone_type": 3, "timezone": "Asia/Kolkata"}
    assert parse.parse_date(value, PARIS).tzinfo == ZoneInfo("Asia/Kolkata")  # type: ignore[union-attr]


@pytest.mark.parametrize("value", [None, "", "null", "0000-00-00 00:00:00", {"date": None}, [], {"timezone": "UTC"}])
def test_missing_or_unreadable_dates_are_none(value: object) -> None:
    """Null, empty and zero dates read as None."""
    assert parse.parse_date(value, PARIS) is None


def test_an_unknown_zone_name_falls_back_to_the_account_zone() -> None:
    """A date object naming a zone that does not exist is read in the account zone."""
    value = {"date": "2023-11-02 22:44:43.000000", "timezone_type": 3, "timezone": "Mars/Olympus"}
    assert parse.parse_date(value, PARIS) == datetime(2023, 11, 2, 22, 44, 43, tzinfo=PARIS)


def test_numbers_as_strings_and_null_words_are_read() -> None:
    """Ids, statuses, flags and customer ids given as strings (or "null"/"") are read as numbers and None."""
    answer = {"error": "0", "count": "1", "smss": {"62050971": {
        "id": "62050971", "sendto": "+4912312312332", "body": 42, "customerid": "15", "status": "7",
        "statustitle": "null", "deviceid": "11231", "urgent": "1", "sim": "1",
        "created": {"date": "2023-11-02 22:44:43.000000", "timezone_type": "3", "timezone": "Europe/Paris"},
        "senttime": "", "timetosend": "null", "paketid": ""}}}
    (sms,) = parse.read_sms_list(answer, PARIS).messages
    assert (sms.id, sms.status, sms.status_code, sms.device_id, sms.customer_id, sms.sim) == (
        62050971, Status.DELIVERED, 7, 11231, 15, 1)
    assert (sms.body, sms.urgent, sms.status_title, sms.sent_time, sms.time_to_send, sms.paket_id) == (
        "42", True, None, None, None, None)
    assert parse.parse_count(answer) == 1


def test_a_message_without_id_takes_its_key() -> None:
    """When a message lacks `id`, the key it is stored under in `smss` is its id."""
    answer = {"smss": {"7": {"status": 5, "created": "2023-11-02 22:44:43"}}}
    assert parse.read_sms_list(answer, PARIS).messages[0].id == 7


def test_unknown_status_codes_are_unknown_with_the_code_kept() -> None:
    """A status code the reference does not list reads as UNKNOWN and keeps its number."""
    answer = {"smss": [{"id": 1, "status": 42, "created": "2023-11-02 22:44:43"}]}
    (sms,) = parse.read_sms_list(answer, PARIS).messages
    assert (sms.status, sms.status_code) == (Status.UNKNOWN, 42)


@pytest.mark.parametrize("smss", [[], {}, None, ""])
def test_empty_smss_shapes_give_no_messages(smss: object) -> None:
    """`smss` as `[]`, `{}`, null or "" means no messages."""
    assert parse.read_sms_list({"error": 0, "smss": smss}, PARIS).messages == ()


def test_absent_smss_gives_no_messages_and_count_zero() -> None:
    """An answer without `smss` (the upstream's empty result) means no messages."""
    assert parse.read_sms_list({"error": 0, "message": "OK"}, PARIS).messages == ()
    assert parse.parse_count({"error": 0}) == 0


def test_smss_as_a_list_of_messages_is_read() -> None:
    """A list of message objects is accepted as well as an id-keyed object."""
    answer = {"smss": [{"id": 5, "status": 5, "sendto": "+331", "created": "2023-11-02 22:44:43"}]}
    assert [s.id for s in parse.read_sms_list(answer, PARIS).messages] == [5]


@pytest.mark.parametrize("smss", ["abc", 5, True])
def test_unreadable_smss_is_malformed(smss: object) -> None:
    """A `smss` that is not a collection of readable messages raises MalformedResponse."""
    with pytest.raises(MalformedResponse):
        parse.read_sms_list({"smss": smss}, PARIS).messages


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(" 15555215554", "+15555215554"), ("+4915752982212", "+4915752982212"), (" +33 6 12 ", "+33 6 12"),
     ("015752982212", "015752982212"), ("", None), ("null", None), (None, None), (4915752982212, "4915752982212"),
     (" ACME", "ACME")],
)
def test_numbers_are_normalized(raw: object, expected: str | None) -> None:
    """A leading space before digits is the `+` URL decoding ate; otherwise numbers are only stripped."""
    assert parse.normalize_number(raw) == expected


def test_siminfo_given_as_a_json_string_is_read() -> None:
    """`siminfo` JSON-encoded inside a string still gives the SIM cards."""
    answer = {"device": {"9": {"id": 9, "title": "x", "lastseen": None,
                               "siminfo": '[{"Slot": "1", "Number": " 4915", "Roaming": "1"}]'}}}
    (device,) = parse.parse_devices(answer, PARIS)
    assert device.sims[0].slot == 1 and device.sims[0].number == "+4915" and device.last_seen is None


@pytest.mark.parametrize("device", [[], None, {}])
def test_empty_device_shapes_give_no_devices(device: object) -> None:
    """`device` as `[]`, null or absent means no devices."""
    assert parse.parse_devices({"count": 0, "device": device}, PARIS) == []


@pytest.mark.parametrize("flag", [1, "1", True, "yes"])
def test_error_flags_in_any_spelling_raise(flag: object) -> None:
    """`error` as 1, "1" or true is a refusal."""
    with pytest.raises(ApiError):
        parse.raise_for_error({"error": flag, "message": "nope"})


@pytest.mark.parametrize("flag", [0, "0", False, None, ""])
def test_error_flags_meaning_success_pass(flag: object) -> None:
    """`error` as 0, "0", false, null or "" is success."""
    assert parse.raise_for_error({"error": flag, "token": "t"}) == {"error": flag, "token": "t"}


@pytest.mark.parametrize("raw", [b"", b"<html>502</html>", b'{"error":0,"smss":{', b"[]", b'"text"', b"\xff\xfe",
                                 b'{"error":0}\xff'])
def test_bodies_that_are_not_a_json_object_are_malformed(raw: bytes) -> None:
    """HTML, truncated JSON, a JSON list or string, and undecodable bytes raise MalformedResponse."""
    with pytest.raises(MalformedResponse):
        parse.decode(raw)


def test_a_utf8_bom_before_the_json_is_accepted() -> None:
    """A byte order mark before the JSON object does not break decoding."""
    assert parse.decode(b'\xef\xbb\xbf{"error":0}') == {"error": 0}


def test_request_times_are_written_in_the_account_zone() -> None:
    """An aware time is converted to the account zone; a naive time is written as it is."""
    moment = datetime(2025, 1, 12, 1, 3, 39, tzinfo=timezone.utc)
    assert parse.format_time(moment, PARIS) == "2025-01-12 02:03:39"
    assert parse.format_time(moment, ZoneInfo("America/Sao_Paulo")) == "2025-01-11 22:03:39"
    assert parse.format_time(datetime(2025, 1, 12, 2, 3, 39), PARIS) == "2025-01-12 02:03:39"
    assert parse.format_paket_time(moment, PARIS) == "12.01.2025 02:03:39"


# --- robustness and speed -----------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
    | st.sampled_from(["", "null", "1", " 15", "2023-11-02 22:44:43", "Europe/Paris", "+01:00", "CET", "Z"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["id", "status", "created", "date", "timezone", "timezone_type", "smss", "device", "error",
                         "message", "token", "sms_id", "count", "siminfo", "Slot", "Number", "sendto", "lastseen",
                         "deviceid", "urgent", "customerid", "senttime", "tag_id", "62050971"]) | st.text(max_size=5),
        children, max_size=6),
    max_leaves=25,
)
PARSERS = [
    parse.parse_token, parse.parse_sms_id, parse.parse_tag_id, parse.parse_contact_id, parse.parse_paket_id,
    parse.parse_ok, parse.parse_count, lambda d: parse.read_sms_list(d, PARIS).messages,
    lambda d: parse.parse_devices(d, PARIS),
    lambda d: parse.parse_sms_status(d, 1), lambda d: parse.parse_date(d, PARIS), parse.normalize_number,
]


@settings(max_examples=300, deadline=None)
@given(data=JSON)
def test_parsers_never_crash_on_any_json(data: object) -> None:
    """Every parser either returns a value or raises a GatewayError, whatever JSON it is given."""
    for parser in PARSERS:
        for shape in (data, {"smss": data}, {"device": {"1": data}}, {"smss": {"1": data}}):
            try:
                parser(shape)
            except GatewayError:
                pass


def test_ten_thousand_messages_parse_well_under_100_ms() -> None:
    """Parsing a getallsms answer of 10,000 messages takes well under 100 ms of CPU (best of five runs)."""
    one = json.loads(GETALLSMS)["smss"]["62050971"]
    answer = {"smss": {str(62050000 + i): {**one, "id": 62050000 + i, "customerid": i} for i in range(10_000)}}
    best = float("inf")
    for _ in range(5):
        started = time.process_time()  # CPU time: other processes on the machine do not count
        parsed = parse.read_sms_list(answer, PARIS).messages
        best = min(best, time.process_time() - started)
    assert len(parsed) == 10_000 and parsed[-1].customer_id == 9_999
    assert best < 0.1


# --- rows the bridge cannot read ----------------------------------------------------------------

GOOD_ROW = {"id": 9, "status": 5, "sendto": "+331", "body": "fine", "created": "2023-11-02 22:44:43"}


@pytest.mark.parametrize("row", [
    {"status": 5, "created": "2023-11-02 22:44:43"},
    {"id": 2**70, "status": 5, "created": "2023-11-02 22:44:43"},
    {"id": 1e20, "status": 5, "created": "2023-11-02 22:44:43"},
    {"id": "abc", "status": 5, "created": "2023-11-02 22:44:43"},
    {"id": 8, "status": 5},
    {"id": 8, "status": 5, "created": "0001-01-01 00:00:00"},
    {"id": 8, "status": 5, "created": {"date": "9999-12-31 23:59:59.000000", "timezone": "-12:00"}},
    "not an object",
], ids=["no id", "id past 64 bits", "id 1e20", "id not a number", "no date", "date before year 1 in UTC",
        "date after 9999 in UTC", "not an object"])
def test_a_row_that_cannot_be_read_is_skipped_and_the_others_kept(row: object) -> None:
    """One row without a usable id or date is reported as unreadable; every other row is read."""
    listing = parse.read_sms_list({"smss": [row, GOOD_ROW]}, PARIS)
    assert [sms.id for sms in listing.messages] == [9]
    (unreadable,) = listing.unreadable
    assert unreadable.reason and unreadable.fingerprint


def test_an_unreadable_row_has_the_same_fingerprint_in_every_answer() -> None:
    """The same unreadable row in two answers has one fingerprint (it is reported once), another row another."""
    first = parse.read_sms_list({"smss": [{"id": 2**70, "body": "a"}]}, PARIS).unreadable
    again = parse.read_sms_list({"smss": [GOOD_ROW, {"id": 2**70, "body": "a"}]}, PARIS).unreadable
    other = parse.read_sms_list({"smss": [{"id": 2**70, "body": "b"}]}, PARIS).unreadable
    assert first == again and first != other


def test_dates_of_any_representable_year_are_read() -> None:
    """Dates from year 1 to year 9999, far behind or ahead of now, are read where they fit in UTC."""
    answer = {"smss": [{**GOOD_ROW, "id": 1, "created": "0001-01-02 00:00:00"},
                       {**GOOD_ROW, "id": 2, "created": "9999-12-30 23:59:59"},
                       {**GOOD_ROW, "id": 3, "created": "1901-12-13 20:45:52"}]}
    assert [sms.created.year for sms in parse.read_sms_list(answer, PARIS).messages] == [1, 9999, 1901]


def test_a_lone_surrogate_escape_in_an_answer_reads_as_the_replacement_character() -> None:
    """Half a surrogate pair in the JSON text reads as U+FFFD, and a whole pair as its character."""
    raw = b'{"smss":[{"id":1,"status":5,"created":"2023-11-02 22:44:43","body":"half \\ud83d, whole \\ud83d\\ude00"}]}'
    (sms,) = parse.read_sms_list(parse.decode(raw), PARIS).messages
    assert sms.body == "half \ufffd, whole \U0001f600"


def test_bytes_that_are_not_utf8_in_an_answer_read_as_the_replacement_character() -> None:
    """A body whose bytes are not UTF-8 reads with U+FFFD where they could not be read; the answer is kept."""
    raw = b'{"smss":[{"id":1,"status":5,"created":"2023-11-02 22:44:43","body":"caf\xe9 ok"}]}'
    (sms,) = parse.read_sms_list(parse.decode(raw), PARIS).messages
    assert sms.body == "caf\ufffd ok"


def test_an_unreadable_row_of_python_values_that_do_not_sort_is_still_skipped() -> None:
    """A row given as Python values whose keys do not sort (not from JSON) is skipped, not a crash."""
    listing = parse.read_sms_list({"smss": [{1: "a", "b": 2}, GOOD_ROW]}, PARIS)
    assert [sms.id for sms in listing.messages] == [9] and len(listing.unreadable) == 1
