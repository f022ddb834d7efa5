"""The SmsGateway24 wire format, both ways: JSON answers -> typed values, values -> request fields.

Pure functions. Every parser accepts any decoded JSON value and either returns a value or raises
a GatewayError (`ApiError` for an `error: 1` answer, `MalformedResponse` for a shape it cannot
read); nothing else escapes. The upstream's quirks live here: ids and numbers as strings, `smss`
and `device` as objects keyed by id (or `[]`, or absent), dates as PHP DateTime objects naming
their own zone, and a `+` that URL decoding turned into a leading space.

What the bridge cannot hold is read as unreadable, never passed on: text that is not valid Unicode (bytes
that are not UTF-8, half a surrogate pair) reads with U+FFFD in its place; an integer past 64 bits is no
integer; a date that has no UTC instant (before year 1 or after 9999 there) is no date. One message of a
getallsms answer without a usable id or date is skipped and reported, never the whole answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from bridge.gateway.errors import ApiError, MalformedResponse
from bridge.gateway.models import Device, SimInfo, Sms, SmsListing, SmsStatusInfo, Status, UnreadableRow

_STATUS_BY_CODE: dict[int, Status] = {s.value: s for s in Status}
_FALSE_WORDS = frozenset({"", "0", "false", "no", "off", "null", "none", "ok"})
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_NULL_WORDS = frozenset({"", "null", "none"})
_OFFSET = re.compile(r"([+-])(\d{1,2})(?::?(\d{2}))?")
_MESSAGE_LIMIT = 300
_INT64 = 2**63  # integers the upstream sends fit in 64 bits, as the database's do
MAX_SMS_DELAY = 3600  # seconds: the longest delaybetweeneachsms taken as pacing
# Only a \uD800-\uDFFF escape can put a lone surrogate into decoded JSON text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# PHP DateTime `timezone_type: 2` carries an abbreviation; these are the ones PHP commonly emits.
_ABBREVIATIONS: dict[str, float] = {
    "UTC": 0, "GMT": 0, "UT": 0, "Z": 0, "WET": 0, "WEST": 1, "BST": 1, "IST": 5.5, "CET": 1,
    "CEST": 2, "MET": 1, "MEST": 2, "EET": 2, "EEST": 3, "MSK": 3, "EST": -5, "EDT": -4, "CST": -6,
    "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7, "AKST": -9, "AKDT": -8, "HST": -10,
    "BRT": -3, "ART": -3, "JST": 9, "KST": 9, "HKT": 8, "SGT": 8, "AWST": 8, "ACST": 9.5,
    "ACDT": 10.5, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13,
}


# --- scalars -----------------------------------------------------------------------------------


def to_int(value: object) -> int | None:
    """A 64-bit int from an int, a numeric string ("15", "15.0") or an integral float; None otherwise."""
    kind = type(value)
    if kind is int:
        return value if -_INT64 <= value < _INT64 else None  # type: ignore[return-value,operator]
    if kind is str:
        text = value.strip()  # type: ignore[union-attr]
        if not text:
            return None
        try:
            number = int(text)
        except ValueError:
            return _integral(text)
        return number if -_INT64 <= number < _INT64 else None
    if kind is float:
        return _integral(value)
    if kind is bool:
        return int(value)  # type: ignore[arg-type]
    return None


def _integral(value: object) -> int | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and -_INT64 <= number < _INT64 else None


def to_bool(value: object) -> bool:
    """A bool from true/false, 0/1, "0"/"1", "true"/"false"; null, "" and anything unreadable are False."""
    if value is None:
        return False
    kind = type(value)
    if kind is bool:
        return value  # type: ignore[return-value]
    if kind is int or kind is float:
        return value != 0
    if kind is str:
        text = value.strip().lower()  # type: ignore[union-attr]
        if text in _TRUE_WORDS:
            return True
        number = to_int(text)
        return bool(number)
    return False


def to_str(value: object) -> str | None:
    """A str from a str or a number; None for null and for objects or lists."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if kind is int or kind is float:
        return str(value)
    return None


def _opt_str(value: object) -> str | None:
    text = to_str(value)
    if text is None:
        return None
    text = text.strip()
    return None if text.lower() in _NULL_WORDS else text


def normalize_number(value: object) -> str | None:
    """A phone number as sent: stripped, and a leading space before digits read back as the `+` it was."""
    text = to_str(value)
    if text is None:
        return None
    stripped = text.strip()
    if stripped.lower() in _NULL_WORDS:
        return None
    if text[0] == " " and stripped[0].isdigit():
        return "+" + stripped
    return stripped


# --- dates -------------------------------------------------------------------------------------


def parse_date(value: object, fallback: tzinfo) -> datetime | None:
    """An aware datetime from a PHP DateTime object (in the zone it names) or a plain string (in `fallback`).

    Unreadable or null dates give None.
    """
    kind = type(value)
    if kind is dict:
        text = value.get("date")  # type: ignore[union-attr]
        if type(text) is not str:
            return None
        return _at(text, _named_zone(value.get("timezone"), value.get("timezone_type")) or fallback)  # type: ignore[union-attr]
    if kind is str:
        return _at(value, fallback)  # type: ignore[arg-type]
    if kind is int or kind is float:
        try:
            return datetime.fromtimestamp(value, fallback)  # type: ignore[arg-type]
        except (OverflowError, OSError, ValueError):
            return None
    return None


def _named_zone(name: object, kind: object) -> tzinfo | None:
    """The zone of a PHP DateTime object, cached by its (timezone, timezone_type) pair."""
    try:
        return _ZONE_CACHE[name, kind]
    except KeyError:
        pass
    except TypeError:  # an unhashable timezone: not a zone
        return None
    zone = _zone(name, to_int(kind)) if type(name) is str else None
    if len(_ZONE_CACHE) < 256:
        _ZONE_CACHE[name, kind] = zone
    return zone


_ZONE_CACHE: dict[tuple[object, object], tzinfo | None] = {}


def _at(text: str, zone: tzinfo) -> datetime | None:
    try:
        when = _fromisoformat(text)
    except ValueError:
        text = text.strip()
        try:
            when = _fromisoformat(text)
        except ValueError:
            try:
                when = datetime.strptime(text, "%d.%m.%Y %H:%M:%S")
            except ValueError:
                return None
    if when.tzinfo is None:
        when = _combine(when.date(), when.time(), zone)  # several times faster than replace()
    else:
        try:
            when = when.astimezone(zone)
        except (OverflowError, ValueError):
            return None
    return when if 1 < when.year < 9999 or _has_utc_instant(when) else None


def _has_utc_instant(when: datetime) -> bool:
    """True when an aware datetime of year 1 or 9999 is still within datetime's range in UTC."""
    try:
        when.astimezone(timezone.utc)
    except OverflowError:
        return False
    return True


_fromisoformat = datetime.fromisoformat
_combine = datetime.combine


def _zone(name: str, kind: int | None) -> tzinfo | None:
    """The zone a PHP DateTime names: type 1 an offset, type 2 an abbreviation, type 3 an IANA name."""
    name = name.strip()
    if not name:
        return None
    if kind == 1 or name[0] in "+-":
        return _offset_zone(name)
    if kind == 2:
        return _abbreviation_zone(name) or _iana_zone(name)
    return _iana_zone(name) or _abbreviation_zone(name)


def _offset_zone(text: str) -> tzinfo | None:
    found = _OFFSET.fullmatch(text)
    if found is None:
        return None
    sign, hours, minutes = found.groups()
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta >= timedelta(hours=24):
        return None
    return timezone(-delta if sign == "-" else delta)


def _abbreviation_zone(name: str) -> tzinfo | None:
    hours = _ABBREVIATIONS.get(name.upper())
    if hours is None:
        return None
    return timezone.utc if hours == 0 else timezone(timedelta(hours=hours), name.upper())


def _iana_zone(name: str) -> tzinfo | None:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError, TypeError):
        return None


def format_time(when: datetime, zone: tzinfo) -> str:
    """`YYYY-MM-DD HH:MM:SS` in `zone`, as begindate/enddate/timetosend expect; naive means already in it.

    ValueError when the instant has no date in `zone` (before year 1 or after 9999 there).
    """
    if when.tzinfo is not None:
        try:
            when = when.astimezone(zone)
        except OverflowError:
            raise ValueError(f"{when.isoformat()} is out of range: it has no date in the account's zone") from None
    return (f"{when.year:04d}-{when.month:02d}-{when.day:02d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}")


def format_paket_time(when: datetime, zone: tzinfo) -> str:
    """`DD.MM.YYYY HH:MM:SS` in `zone`, the format savepaket's time_to_send expects."""
    if when.tzinfo is not None:
        when = when.astimezone(zone)
    return (f"{when.day:02d}.{when.month:02d}.{when.year:04d} "
            f"{when.hour:02d}:{when.minute:02d}:{when.second:02d}")


# --- envelopes ---------------------------------------------------------------------------------


def decode(raw: bytes) -> dict[str, Any]:
    """The JSON object of an answer body; MalformedResponse for anything else (HTML, truncation, a list)."""
    try:
        data = loads(raw)
    except ValueError:
        raise MalformedResponse(f"the gateway answered something that is not JSON: {_preview(raw)}") from None
    if type(data) is not dict:
        raise MalformedResponse("the gateway answered JSON that is not an object")
    return data


def loads(raw: bytes) -> Any:
    """The JSON value of a body from outside, every text in it valid Unicode; ValueError when it is not JSON.

    Bytes that are not UTF-8 and half surrogate pairs (a `\\ud83d` escape alone) read as U+FFFD: one odd
    character must not make a whole answer, or the database write after it, fail.
    """
    text = raw.decode("utf-8-sig", "replace")
    try:
        data = json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    return _readable(data) if _SURROGATE_ESCAPE.search(text) else data


def _readable(value: Any) -> Any:
    """`value` with every lone surrogate in its texts (keys too) replaced by U+FFFD."""
    kind = type(value)
    if kind is str:
        return _LONE_SURROGATE.sub("\ufffd", value)
    if kind is list:
        return [_readable(item) for item in value]
    if kind is dict:
        return {_readable(key): _readable(item) for key, item in value.items()}
    return value


def _preview(raw: bytes) -> str:
    text = raw[:80].decode("utf-8", "replace")
    return repr(text) if text else "an empty body"


def raise_for_error(data: object) -> dict[str, Any]:
    """The answer itself when it reports success; ApiError with the upstream's message for `error: 1`."""
    if type(data) is not dict:
        raise MalformedResponse("the gateway answered JSON that is not an object")
    flag = data.get("error")  # type: ignore[union-attr]
    if _is_error(flag):
        message = _opt_str(data.get("message"))  # type: ignore[union-attr]
        if message is None and type(flag) is str:
            message = flag.strip()
        raise ApiError((message or "the gateway refused the request")[:_MESSAGE_LIMIT])
    return data  # type: ignore[return-value]


def _is_error(flag: object) -> bool:
    if flag is None:
        return False
    if type(flag) is str:
        return flag.strip().lower() not in _FALSE_WORDS
    if type(flag) in (bool, int, float):
        return flag != 0
    return bool(flag)


def _required_id(data: object, key: str, method: str) -> int:
    value = to_int(raise_for_error(data).get(key))
    if value is None:
        raise MalformedResponse(f"{method} answered without a readable {key}")
    return value


def parse_token(data: object) -> str:
    """The token of a gettoken answer."""
    token = _opt_str(raise_for_error(data).get("token"))
    if token is None:
        raise MalformedResponse("gettoken answered without a token")
    return token


def parse_sms_id(data: object) -> int:
    """The `sms_id` of an addsms or smstosend answer."""
    return _required_id(data, "sms_id", "the gateway")


def parse_tag_id(data: object) -> int:
    """The `tag_id` of a savetag answer."""
    return _required_id(data, "tag_id", "savetag")


def parse_contact_id(data: object) -> int:
    """The `contact_id` of a savecontact answer."""
    return _required_id(data, "contact_id", "savecontact")


def parse_paket_id(data: object) -> int | None:
    """The `paket_id` of a savepaket answer, when the upstream reports one."""
    answer = raise_for_error(data)
    return to_int(answer.get("paket_id", answer.get("paketid")))


def parse_ok(data: object) -> None:
    """Check an answer that carries nothing but success (addalotofsms)."""
    raise_for_error(data)


# --- messages ----------------------------------------------------------------------------------


def _entries(value: object, what: str) -> Iterable[tuple[object, object]]:
    """(key, item) pairs of an id-keyed object, a list, or nothing (null, absent, `[]`, "")."""
    if value is None or value == "":
        return ()
    if type(value) is dict:
        return value.items()  # type: ignore[union-attr]
    if type(value) is list:
        return ((None, item) for item in value)  # type: ignore[union-attr]
    raise MalformedResponse(f"the gateway answered `{what}` that is neither an object nor a list")


def read_sms_list(data: object, fallback: tzinfo) -> SmsListing:
    """A getallsms answer: its readable messages in the upstream's order, and the rows without a usable id or
    date; plain date strings are read in `fallback`."""
    answer = raise_for_error(data)
    messages: list[Sms] = []
    unreadable: list[UnreadableRow] = []
    for key, item in _entries(answer.get("smss"), "smss"):
        try:
            messages.append(_sms(key, item, fallback))
        except _Unreadable as exc:
            unreadable.append(UnreadableRow(str(exc), _fingerprint(key, item)))
    return SmsListing(tuple(messages), tuple(unreadable))


class _Unreadable(ValueError):
    """One message of an answer that cannot be read; the message says why."""


def _fingerprint(key: object, item: object) -> str:
    """The same short text for the same row in every answer."""
    try:
        text = json.dumps([key, item], sort_keys=True, default=repr)
    except (TypeError, ValueError, RecursionError):  # keys that do not sort: not from a JSON answer
        text = repr((key, item))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def parse_count(data: object) -> int:
    """The `count` of a getallsms answer (onlycount); the number of messages when it is missing."""
    answer = raise_for_error(data)
    count = to_int(answer.get("count"))
    if count is not None:
        return count
    return sum(1 for _ in _entries(answer.get("smss"), "smss"))


def _row_id(value: object, key: object) -> int | None:
    """A row's id: its `id` field, else the key the row is listed under in an id-keyed object."""
    found = to_int(value)
    return found if found is not None else to_int(key)


def _sms(key: object, item: object, zone: tzinfo) -> Sms:
    if type(item) is not dict:
        raise _Unreadable("a message in `smss` is not an object")
    get = item.get  # type: ignore[union-attr]
    sms_id = _row_id(get("id"), key)
    if sms_id is None:
        raise _Unreadable("a message in `smss` has no usable id (a 64-bit integer)")
    created = parse_date(get("created"), zone)
    if created is None:
        raise _Unreadable(f"message {sms_id} has no readable `created` date")
    code = get("status")
    if type(code) is not int:
        code = to_int(code) or 0
    device = get("deviceid")
    if type(device) is not int:
        device = to_int(get("device_id") if device is None else device)
    body = get("body")
    if type(body) is not str:
        body = to_str(body) or ""
    sim, customer, urgent = get("sim"), get("customerid"), get("urgent")
    sent, send_at, paket = get("senttime"), get("timetosend"), get("paketid")
    return _new_sms(
        sms_id,
        normalize_number(get("sendto")) or "",
        body,
        _STATUS_BY_CODE.get(code, Status.UNKNOWN),
        code,
        device,
        created,
        None if sim is None else to_int(sim),
        None if customer is None else to_int(customer),
        _opt_str(get("statustitle")),
        False if urgent is None else to_bool(urgent),
        None if sent is None else parse_date(sent, zone),
        None if send_at is None else parse_date(send_at, zone),
        None if paket is None else to_int(paket),
    )


_SMS_FIELDS = ("id", "number", "body", "status", "status_code", "device_id", "created", "sim",
               "customer_id", "status_title", "urgent", "sent_time", "time_to_send", "paket_id")
(_set_id, _set_number, _set_body, _set_status, _set_code, _set_device, _set_created, _set_sim,
 _set_customer, _set_title, _set_urgent, _set_sent, _set_send_at, _set_paket) = (
    getattr(Sms, name).__set__ for name in _SMS_FIELDS)
_object_new = object.__new__


def _fast_sms(sms_id: int, number: str, body: str, status: Status, code: int, device: int | None,
              created: datetime, sim: int | None, customer: int | None, title: str | None,
              urgent: bool, sent: datetime | None, send_at: datetime | None, paket: int | None) -> Sms:
    # Sms is a frozen dataclass whose generated __init__ costs ~3 µs; a poll reads up to 10,000
    # messages at a time, so the slots are filled directly (same object, same equality).
    sms = _object_new(Sms)
    _set_id(sms, sms_id)
    _set_number(sms, number)
    _set_body(sms, body)
    _set_status(sms, status)
    _set_code(sms, code)
    _set_device(sms, device)
    _set_created(sms, created)
    _set_sim(sms, sim)
    _set_customer(sms, customer)
    _set_title(sms, title)
    _set_urgent(sms, urgent)
    _set_sent(sms, sent)
    _set_send_at(sms, send_at)
    _set_paket(sms, paket)
    return sms


# Should the model gain a field, fall back to its constructor rather than leave a slot empty.
_new_sms = _fast_sms if tuple(f.name for f in dataclasses.fields(Sms)) == _SMS_FIELDS else Sms


def parse_sms_status(data: object, sms_id: int) -> SmsStatusInfo:
    """A getsmsstatus answer; `sms_id` is the id asked for, used when the answer omits it."""
    answer = raise_for_error(data)
    code = to_int(answer.get("status")) or 0
    answered_id = to_int(answer.get("sms_id"))
    return SmsStatusInfo(
        sms_id if answered_id is None else answered_id,
        _STATUS_BY_CODE.get(code, Status.UNKNOWN),
        code,
        _opt_str(answer.get("status_description")),
    )


# --- devices -----------------------------------------------------------------------------------


def parse_devices(data: object, fallback: tzinfo) -> list[Device]:
    """The devices of a getalldevices answer; plain date strings are read in `fallback`."""
    answer = raise_for_error(data)
    return [_device(key, item, fallback) for key, item in _entries(answer.get("device"), "device")]


def _device(key: object, item: object, zone: tzinfo) -> Device:
    if type(item) is not dict:
        raise MalformedResponse("a device in `device` is not an object")
    get = item.get  # type: ignore[union-attr]
    device_id = _row_id(get("id"), key)
    if device_id is None:
        raise MalformedResponse("a device has no readable id")
    last_seen = parse_date(get("lastseen"), zone) or parse_date(get("lastseenhumanformat"), zone)
    created = parse_date(get("created"), zone) or parse_date(get("createdhumanformat"), zone)
    return Device(
        id=device_id,
        title=_opt_str(get("title")) or "",
        last_seen=last_seen,
        sims=_sims(get("siminfo")),
        created=created,
        number=normalize_number(get("number")),
        imei=_opt_str(get("imei")),
        serial_number=_opt_str(get("serialnumber")),
        app_version=_opt_str(get("appversion")),
        subscription=to_bool(get("subscription")),
        sms_delay=_sms_delay(get("delaybetweeneachsms")),
    )


def _sms_delay(value: object) -> float | None:
    """A device's delaybetweeneachsms in seconds: None when unset, not a number, not positive, or beyond
    `MAX_SMS_DELAY` (a phone that claims to wait days between SMS must not stall its sends)."""
    seconds = to_int(value)
    return float(seconds) if seconds is not None and 0 < seconds <= MAX_SMS_DELAY else None


def _sims(value: object) -> tuple[SimInfo, ...]:
    """SIM cards from `siminfo`: a list of objects, or that list JSON-encoded in a string; junk is skipped."""
    if type(value) is str:
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return ()
    if type(value) is dict:
        value = list(value.values())  # type: ignore[union-attr]
    if type(value) is not list:
        return ()
    sims = []
    for index, sim in enumerate(value):  # type: ignore[arg-type]
        if type(sim) is not dict:
            continue
        get = sim.get
        slot = to_int(get("Slot", get("slot")))
        sims.append(SimInfo(
            slot=index if slot is None else slot,
            number=normalize_number(get("Number", get("number"))),
            iccid=_opt_str(get("IccId", get("iccid"))),
            carrier=_opt_str(get("CarrierName", get("carriername"))),
            country_iso=_opt_str(get("CountryIso", get("countryiso"))),
            roaming=to_bool(get("Roaming", get("roaming"))),
        ))
    return tuple(sims)
