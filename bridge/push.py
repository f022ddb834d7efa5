"""The push path: SmsGateway24's own webhooks (incoming message, delivery status) -> the pipeline.

`POST /v1/gateway/{secret}` is guarded by its secret path (`gateway.webhook_secret`, compared in
constant time; 404 when it differs or none is configured). The body is JSON or a form; fields the
bridge does not use are ignored. What arrives is judged by the same `Pipeline.record` as what the
poller sees, so an SMS seen both ways is one event, and the answer is sent only once the
transaction has committed (a failure to store answers 503, so the upstream retries). Whatever the body,
the answer is 200 or 4xx: text that is not valid Unicode reads with U+FFFD, and an id, number or date the
bridge cannot hold (past 64 bits, no UTC instant) is a 400 naming its field.

- Incoming message: {address, date, date_sent, body, internal_id, channel_id, sms_id, device_id,
  device_name, type} (`type: text`), or {address, date, date_sent, body: "", sim, sms_id, type: img,
  img_url} for an image (WhatsApp). `channel_id` becomes the event's `sms.channel`, `img_url` its
  `sms.media_url`; an image without text is an event like any other. `date` may be Unix seconds or milliseconds, or a date string (read in the
  account's zone when it names none); without it the message is dated now. The SIM slot is taken
  from `sim` when present.
- Delivery status: {sms_id, status_id, status_message, sendto, senttime, channel_id, device_id}.
  A status for a message the bridge has never stored waits for the poll, which brings the message.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bridge.appkeys import CONFIG, POLLER
from bridge.bodies import ApiProblem, within_read_timeout
from bridge.gateway import parse
from bridge.gateway.models import Sms, Status
from bridge.pipeline import Observation, SmsSeen, StatusSeen
from bridge.store import StoreRejected, StoreUnavailable

_MILLISECONDS_FROM = 100_000_000_000  # a Unix time above this is in milliseconds (year 5138 in seconds)
_MAX_URL = 4096


class PushError(ValueError):
    """A push body the bridge cannot use: answer 400 naming `field`."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


async def gateway_push(request: web.Request) -> web.Response:
    """`POST /v1/gateway/{secret}`: record an incoming SMS or a delivery status pushed by the upstream."""
    config = request.app[CONFIG]
    secret = config.gateway.webhook_secret
    given = request.match_info.get("secret", "")
    if secret is None or not hmac.compare_digest(given.encode(), secret.reveal().encode()):
        return web.json_response({"error": "not found"}, status=404)
    poller = request.app[POLLER]
    try:
        fields = await within_read_timeout(_fields(request), config.server)
        observation = parse_push(fields, ZoneInfo(config.gateway.timezone), poller.clock())
    except ApiProblem as problem:
        return problem.response()
    except PushError as exc:
        return web.json_response({"error": exc.message, "field": exc.field}, status=400)
    try:
        recorded = await poller.pipeline.record([observation])
    except StoreUnavailable:
        return web.json_response({"error": "the bridge cannot store it right now; retry later"}, status=503)
    except StoreRejected:
        return web.json_response({"error": "the body holds a value the bridge cannot store", "field": None},
                                 status=400)
    return web.json_response({"ok": True, "events": [event.id for event in recorded.events]})


async def _fields(request: web.Request) -> Mapping[str, Any]:
    """The body's fields: a JSON object, or a urlencoded/multipart form."""
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        return {key: value for key, value in form.items() if isinstance(value, str)}
    raw = await request.read()
    try:
        data = parse.loads(raw)
    except ValueError:
        raise PushError("the body must be a JSON object or a form", None) from None
    if not isinstance(data, dict):
        raise PushError("the body must be a JSON object or a form", None)
    return data


def parse_push(fields: Mapping[str, Any], zone: tzinfo, now: float) -> Observation:
    """The observation a push body carries: an incoming SMS (`address`) or a delivery status (`status_id`)."""
    if "status_id" in fields:
        code = _required_int(fields, "status_id")
        return StatusSeen(_required_int(fields, "sms_id"), Status.from_code(code))
    if "address" in fields:
        return SmsSeen(_incoming(fields, zone, now))
    raise PushError("neither an incoming message (address) nor a delivery status (status_id)", None)


def _incoming(fields: Mapping[str, Any], zone: tzinfo, now: float) -> Sms:
    sender = parse.normalize_number(fields.get("address"))
    if not sender:
        raise PushError("address must be the sender's number", "address")
    body = fields.get("body")
    if body is None:
        body = ""
    if not isinstance(body, str):
        raise PushError("body must be a string", "body")
    return Sms(
        id=_required_int(fields, "sms_id"),
        number=sender,
        body=body,
        status=Status.RECEIVED,
        status_code=int(Status.RECEIVED),
        device_id=_optional_int(fields, "device_id"),
        created=_date(fields.get("date"), zone, now),
        sim=_optional_int(fields, "sim"),
        channel=_optional_int(fields, "channel_id"),
        media_url=_media_url(fields),
    )


def _media_url(fields: Mapping[str, Any]) -> str | None:
    """The image of an incoming `type: img` message (`img_url`, http or https); None for text."""
    url = fields.get("img_url")
    if url is None or url == "":
        return None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > _MAX_URL:
        raise PushError("img_url must be an http(s) URL", "img_url")
    return url


def _required_int(fields: Mapping[str, Any], name: str) -> int:
    value = _optional_int(fields, name)
    if value is None:
        raise PushError(f"{name} must be an integer", name)
    return value


def _optional_int(fields: Mapping[str, Any], name: str) -> int | None:
    value = fields.get(name)
    if value is None or value == "":
        return None
    number = parse.to_int(value) if not isinstance(value, bool) else None
    if number is None:
        raise PushError(f"{name} must be an integer of at most 64 bits", name)
    return number


def _date(value: object, zone: tzinfo, now: float) -> datetime:
    """When the SMS arrived: Unix seconds or milliseconds, or a date string; now when absent."""
    if value is None or value == "":
        return datetime.fromtimestamp(now, zone)
    number = parse.to_int(value) if not isinstance(value, bool) else None
    if number is not None:
        seconds = number / 1000 if number >= _MILLISECONDS_FROM else number
        try:
            return datetime.fromtimestamp(seconds, zone)
        except (OverflowError, OSError, ValueError):
            raise PushError("date is out of range", "date") from None
    when = parse.parse_date(value, zone) if isinstance(value, str) else None
    if when is None:
        raise PushError("date must be a date (YYYY-MM-DD HH:MM:SS, ISO 8601) or Unix time", "date")
    return when.astimezone(zone)
