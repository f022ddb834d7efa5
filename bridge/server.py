"""The bridge's HTTP API (DESIGN section 5): sends from any system, authenticated, idempotent, durable.

Choices where the contract leaves room:
- A 202 means the send is committed to the store; safety (opt-out list, loop guard) is judged when the
  sender hands it to the upstream, for every source alike. A recipient on the opt-out list is therefore
  still answered 202 and shows up in `GET /v1/messages/{id}` as `refused` with reason `opted_out`.
- `to` may repeat a number; it is sent once (numbers are compared in E.164).
- Only 202 answers are kept for an `Idempotency-Key` (an error can be fixed and retried with the same key);
  the kept answer is committed in the same transaction as the send, so a crash never leaves a key that
  blocks its retries. A request still running under the same key answers 409.
- Hook payloads that the preset cannot use, and templates that fail on a payload, are 4xx (alerting
  senders retry only 5xx); a rendered text longer than `server.max_body_chars` is cut, not refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import time
import unicodedata
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from bridge.numbers import e164
from bridge.appkeys import CONFIG, METRICS, POLLER, SENDER, STORE, TEMPLATES
from bridge.bodies import ApiProblem, error_response, within_read_timeout
from bridge.config import Config, InboundConfig, PoolConfig, Rate, ServerConfig
from bridge.gateway import parse
from bridge.gateway.models import Status
from bridge.metrics import Metrics
from bridge.placement import member_reports
from bridge.pool import EXHAUSTED
from bridge.openapi import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    IDEMPOTENCY_KEY_PATTERN,
    MAX_CUSTOMER_ID,
    MAX_RECIPIENTS,
    NUMBER_MAX_LENGTH,
    SEND_AT_PATTERN,
    openapi_document,
)
from bridge.push import gateway_push
from bridge.sender import StoredAnswer
from bridge.store import NewSend, StoreError, StoreFileLost, StoreUnavailable
from bridge.templating import TemplateEngine, TemplateError, payload_context

log = logging.getLogger(__name__)

MESSAGE_FIELDS = frozenset({"to", "body", "device_id", "sim", "send_at", "urgent", "customer_id"})
PRESET_TEMPLATES = {"alertmanager": "alertmanager.txt.j2", "grafana": "grafana.txt.j2"}
# A generic hook without a template sends the payload's own text field, or else its JSON.
GENERIC_TEMPLATE = (
    "{% for k in ['text', 'message', 'body'] if payload[k] is defined and payload[k] is string %}"
    "{% if loop.first %}{{ payload[k] }}{% endif %}{% else %}{{ payload | tojson }}{% endfor %}"
)
_SEND_AT = re.compile(SEND_AT_PATTERN)
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+)\s*")
# An Idempotency-Key: a structured-field string, or (leniently) the bare token inside one.
_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
_ALERT_STATUSES = ("firing", "resolved")
SCOPE = web.RequestKey("api_scope", str)


@dataclass(slots=True)
class RateLimiter:
    """A token bucket per scope (an API key, a client address)."""

    rate: Rate
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # scope -> (tokens, at)

    def retry_after(self, scope: str, now: float) -> float | None:
        """None when the request may go now (a token is taken), else seconds until one is free."""
        refill = self.rate.count / self.rate.per
        tokens, at = self.buckets.get(scope, (float(self.rate.count), now))
        tokens = min(float(self.rate.count), tokens + (now - at) * refill)
        if tokens >= 1:
            self.buckets[scope] = (tokens - 1, now)
            return None
        self.buckets[scope] = (tokens, now)
        return (1 - tokens) / refill


@dataclass(slots=True)
class _Api:
    """What the handlers share: parsed config, the hook template engine, idempotency keys in flight."""

    config: Config
    keys: tuple[bytes, ...]
    limiter: RateLimiter | None
    engine: TemplateEngine
    zone: ZoneInfo
    openapi: bytes
    metrics: Metrics
    in_flight: set[tuple[str, str]] = field(default_factory=set)
    counters: dict[tuple[str, int], Any] = field(default_factory=dict)

    def count(self, request: web.Request, status: int) -> None:
        """Count an answer by route template and status (the labelled counters are kept: one lookup per answer)."""
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        counter = self.counters.get((route, status))
        if counter is None:
            counter = self.counters[route, status] = self.metrics.http_requests.labels(route=route, status=str(status))
        counter.inc()


API = web.AppKey("api", _Api)


def setup_api(app: web.Application) -> None:
    """Add the API's routes and middleware to `app` (app[CONFIG], app[METRICS] and app[TEMPLATES] must be set;
    the store, sender and poller are read per request)."""
    config = app[CONFIG]
    server = config.server
    app[API] = _Api(
        config=config,
        keys=tuple(key.reveal().encode() for key in server.api_keys),
        limiter=RateLimiter(server.rate_limit) if server.rate_limit is not None else None,
        engine=app[TEMPLATES],
        zone=ZoneInfo(config.gateway.timezone),
        openapi=json.dumps(openapi_document(config), indent=1).encode(),
        metrics=app[METRICS],
    )
    app.middlewares.append(_gatekeeper)
    app.router.add_post("/v1/messages", post_message)
    app.router.add_get("/v1/messages/{id}", get_message)
    app.router.add_post("/v1/hooks/{name}", post_hook)
    app.router.add_post("/v1/gateway/{secret}", gateway_push)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)


# --- middleware -----------------------------------------------------------------------------------


@web.middleware
async def _gatekeeper(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                      ) -> web.StreamResponse:
    """`/v1/*` (but the push path) needs a known key within its rate; every error is JSON; every answer counted."""
    try:
        if _needs_key(request.path):
            request[SCOPE] = _authorize(request)
        response = await handler(request)
    except ApiProblem as problem:
        response = problem.response()
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = _from_http_exception(exc)
    except StoreFileLost as exc:
        log.error("api: %s; answering 503", exc)
        response = error_response(503, str(exc))
    except StoreUnavailable:
        log.warning("api: the store cannot write now; answering 503")
        response = error_response(503, "the bridge cannot store requests right now; retry later",
                                  headers={"Retry-After": "5"})
    except Exception:
        log.exception("api: %s %s failed", request.method, request.rel_url.path)
        response = error_response(500, "internal error")
    request.app[API].count(request, response.status)
    return response


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    default = f"{exc.status}: {exc.reason}"
    message = exc.text if exc.text and exc.text != default else exc.reason.lower()
    keep = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
    return error_response(exc.status, message, None, keep)


def _needs_key(path: str) -> bool:
    return path.startswith("/v1/") and not path.startswith("/v1/gateway/")


def _authorize(request: web.Request) -> str:
    """The scope (SHA-256 of the key) of a request's known bearer key; 401 without one, 429 over its rate."""
    api = request.app[API]
    match = _BEARER.fullmatch(request.headers.get("Authorization", ""))
    given = match.group(1).encode() if match else b""
    known = False
    for key in api.keys:  # no early exit: the time taken does not tell which key nearly matched
        known |= hmac.compare_digest(key, given)
    if not known:
        raise ApiProblem(401, "a valid API key is required: Authorization: Bearer KEY",
                         headers={"WWW-Authenticate": 'Bearer realm="sms-bridge"'})
    scope = hashlib.sha256(given).hexdigest()
    if api.limiter is not None:
        wait = api.limiter.retry_after(scope, time.monotonic())
        if wait is not None:
            raise ApiProblem(429, "too many requests for this API key; slow down",
                             headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return scope


# --- sends ----------------------------------------------------------------------------------------


async def post_message(request: web.Request) -> web.Response:
    """`POST /v1/messages`: queue one text to one or more numbers; 202 once committed."""
    api = request.app[API]
    _require_json(request)
    raw = await read_body(request, api.config.server)
    return await _accept_once(request, api, raw, lambda: message_send(parse_json(raw), api.config))


async def post_hook(request: web.Request) -> web.Response:
    """`POST /v1/hooks/{name}`: render an inbound hook's template with the JSON body and queue the text."""
    api = request.app[API]
    name = request.match_info["name"]
    inbound = api.config.inbound.get(name)
    if inbound is None:
        raise ApiProblem(404, f"no inbound hook named {name[:64]!r}")
    raw = await read_body(request, api.config.server)
    return await _accept_once(request, api, raw, lambda: hook_send(inbound, parse_json(raw), api))


async def _accept_once(request: web.Request, api: _Api, raw: bytes, build: Callable[[], NewSend]
                       ) -> web.Response:
    """Queue the send `build` makes, honouring an Idempotency-Key: one send per key and body."""
    sender = request.app[SENDER]
    key = idempotency_key(request.headers.get("Idempotency-Key"))
    if key is None:
        send = build()
        await sender.accept(send)
        return _queued(send)
    slot = (request[SCOPE], key)
    if slot in api.in_flight:
        raise _still_running()
    api.in_flight.add(slot)
    marked = False  # the key is marked running in the database (replicas: another may get the same key)
    try:
        digest = hashlib.sha256(f"{request.method} {request.path}\n".encode() + raw).hexdigest()
        stored = await sender.stored_answer(*slot)
        if stored is not None:
            if not hmac.compare_digest(stored["request_hash"], digest):
                raise ApiProblem(422, "this Idempotency-Key was used with a different request",
                                 "Idempotency-Key")
            replayed = {"Idempotent-Replayed": "true",
                        "Location": f"/v1/messages/{json.loads(stored['response'])['id']}"}
            return web.Response(status=stored["status"], text=stored["response"], content_type="application/json",
                                headers=replayed)
        if request.app[STORE].shared:
            marked = await sender.claim_key(*slot)
            if not marked:
                raise _still_running()
        send = build()
        answer = _queued(send)
        await sender.accept(send, StoredAnswer(*slot, digest, answer.status, answer.text or ""))
        marked = False  # the stored answer replaced the mark
        return answer
    finally:
        api.in_flight.discard(slot)
        if marked:
            await sender.release_key(*slot)


def _still_running() -> ApiProblem:
    return ApiProblem(409, "a request with this Idempotency-Key is still being processed; retry later",
                      "Idempotency-Key", {"Retry-After": "1"})


def _queued(send: NewSend) -> web.Response:
    return web.json_response({"id": send.id, "status": "queued"}, status=202,
                             headers={"Location": f"/v1/messages/{send.id}"})


def new_send_id() -> str:
    """A fresh message id: the time in microseconds, then 40 random bits.

    Ids in time order are appended to the ends of the indexes instead of scattered over them, so a commit
    writes fewer pages; the random part keeps them unique and hard to guess.
    """
    return f"msg_{time.time_ns() // 1000:014x}{secrets.token_hex(5)}"


def _require_json(request: web.Request) -> None:
    """415 naming the Content-Type unless the body is declared JSON, or not declared (no type, or the generic
    application/octet-stream): a form or plain text is a client that meant something else, even when its
    bytes happen to parse."""
    if "Content-Type" not in request.headers:
        return
    kind = request.content_type
    if kind in ("application/json", "application/octet-stream") or (
            kind.startswith("application/") and kind.endswith("+json")):
        return
    raise ApiProblem(415, f"Content-Type {kind[:80]} is not accepted: send the JSON body as application/json",
                     "Content-Type")


async def read_body(request: web.Request, server: ServerConfig) -> bytes:
    """The request body: 413 as soon as it is longer than server.max_request_bytes, 408 when it has not
    arrived whole within server.read_timeout."""
    return await within_read_timeout(_body_bytes(request, server.max_request_bytes), server)


async def _body_bytes(request: web.Request, limit: int) -> bytes:
    length = request.content_length
    if length == 0:
        return b""
    if length is not None:
        if length > limit:
            raise _too_large(limit)
        try:
            return await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            raise ApiProblem(400, "the request body is shorter than its Content-Length") from None
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise _too_large(limit)
    return bytes(body)


def _too_large(limit: int) -> ApiProblem:
    return ApiProblem(413, f"the request body is larger than {limit} bytes")


def parse_json(raw: bytes) -> Any:
    """The JSON value of a UTF-8 body; 400 when it is empty or not JSON (NaN and Infinity are not JSON)."""
    if not raw.strip():
        raise ApiProblem(400, "the request body is empty; send a JSON object")
    try:
        return _JSON.decode(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        raise ApiProblem(400, f"malformed JSON: {str(exc)[:200]}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_JSON = json.JSONDecoder(parse_constant=_no_constant)


def idempotency_key(header: str | None) -> str | None:
    """The key of an Idempotency-Key header: a structured-field string ("…") or a bare token; 400 if bad."""
    if header is None:
        return None
    if len(header) <= IDEMPOTENCY_KEY_MAX_LENGTH and _KEY.fullmatch(header):
        return re.sub(r"\\(.)", r"\1", header[1:-1]) if header.startswith('"') else header
    raise ApiProblem(400, f"Idempotency-Key must be a quoted string or a token of printable ASCII, at most "
                          f"{IDEMPOTENCY_KEY_MAX_LENGTH} characters", "Idempotency-Key")


def message_send(payload: Any, config: Config) -> NewSend:
    """The send a `POST /v1/messages` body asks for; ApiProblem(400) naming the first bad field."""
    if not isinstance(payload, dict):
        raise ApiProblem(400, "the body must be a JSON object")
    for name in payload:
        if name not in MESSAGE_FIELDS:
            raise ApiProblem(400, f"unknown field (known: {', '.join(sorted(MESSAGE_FIELDS))})", name[:100])
    gateway = config.gateway
    numbers = recipients(payload.get("to"), gateway.default_region)
    body = _body(payload.get("body"), config.server.max_body_chars)
    device_id = _optional_int(payload, "device_id", 1, 2**63 - 1)
    sim = _optional_int(payload, "sim", 0, 1)
    pooled = device_id is None and config.pool is not None  # the sender places it on a pool member
    if device_id is None and not pooled:
        device_id = gateway.device_id
        if device_id is None:
            raise ApiProblem(400, "required: no default device (gateway.device_id) is configured", "device_id")
    when = send_at(payload.get("send_at"), ZoneInfo(gateway.timezone))
    urgent = payload.get("urgent")
    if urgent is not None and not isinstance(urgent, bool):
        raise ApiProblem(400, "must be true or false", "urgent")
    return NewSend(
        id=new_send_id(),
        source="api",
        recipients=numbers,
        body=body,
        device_id=device_id,
        sim=gateway.sim if sim is None and not pooled else sim,
        send_at=when,
        urgent=bool(urgent),
        customer_id=_optional_int(payload, "customer_id", 0, MAX_CUSTOMER_ID),
    )


def recipients(value: Any, region: str | None) -> tuple[str, ...]:
    """The `to` numbers in E.164, each once, in order; 400 naming the first bad one (`to[2]`)."""
    if value is None:
        raise ApiProblem(400, "required: a phone number or a list of them", "to")
    items, names = ([value], ["to"]) if isinstance(value, str) else (value, None)
    if not isinstance(items, list):
        raise ApiProblem(400, "must be a phone number or a list of them", "to")
    if not items:
        raise ApiProblem(400, "must name at least one number", "to")
    if len(items) > MAX_RECIPIENTS:
        raise ApiProblem(400, f"at most {MAX_RECIPIENTS} numbers per message", "to")
    out: dict[str, None] = {}
    for i, item in enumerate(items):
        where = names[0] if names else f"to[{i}]"
        if not isinstance(item, str):
            raise ApiProblem(400, "must be a string", where)
        number = e164(item, region) if len(item) <= NUMBER_MAX_LENGTH else None
        if number is None:
            hint = f" (numbers without a country code are read in region {region})" if region else \
                " (give it with its country code, e.g. +49…)"
            raise ApiProblem(400, f"{item[:40]!r} is not a valid phone number{hint}", where)
        out[number] = None
    return tuple(out)


def _body(value: Any, max_chars: int) -> str:
    if value is None:
        raise ApiProblem(400, "required: the text to send", "body")
    if not isinstance(value, str):
        raise ApiProblem(400, "must be a string", "body")
    if not is_visible(value):
        raise ApiProblem(400, "must not be empty (or only invisible characters)", "body")
    if len(value) > max_chars:
        raise ApiProblem(400, f"longer than {max_chars} characters", "body")
    if not _encodable(value):
        raise ApiProblem(400, "contains characters that are not valid Unicode (lone surrogates)", "body")
    return value


# Letters and symbols that render as nothing (Hangul fillers, the blank Braille pattern), beside the categories
# of whitespace, format controls (zero-width space and joiners, BOM, soft hyphen) and lone combining marks.
_BLANK_CHARACTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cc", "Cf", "Cn", "Mn", "Me"})


def is_visible(text: str) -> bool:
    """True when `text` has at least one character a reader would see."""
    return any(ch not in _BLANK_CHARACTERS and unicodedata.category(ch) not in _INVISIBLE_CATEGORIES
               for ch in text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _optional_int(payload: Mapping[str, Any], name: str, low: int, high: int) -> int | None:
    value = payload.get(name)
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        bounds = "0 or 1" if (low, high) == (0, 1) else f"an integer from {low} to {high}"
        raise ApiProblem(400, f"must be {bounds}", name)
    return value


def send_at(value: Any, zone: ZoneInfo) -> str | None:
    """The scheduled time as ISO 8601 with its offset; a time without an offset is in the account's zone."""
    if value is None:
        return None
    hint = "must be ISO 8601 (2025-01-12T02:03:39+01:00) or YYYY-MM-DD HH:MM[:SS] in the account's zone"
    if not isinstance(value, str) or not _SEND_AT.fullmatch(value):
        raise ApiProblem(400, hint, "send_at")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ApiProblem(400, f"not a valid date or time: {hint}", "send_at") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=zone)
    try:
        parse.format_time(when, zone)  # what the upstream will be given: it must exist in the account's zone
    except ValueError as exc:
        raise ApiProblem(400, str(exc), "send_at") from None
    return when.isoformat()


# --- inbound hooks --------------------------------------------------------------------------------


def hook_send(inbound: InboundConfig, payload: Any, api: _Api) -> NewSend:
    """The send an inbound hook makes of a payload: validated for its preset, rendered, cut to size."""
    if not isinstance(payload, dict):
        raise ApiProblem(400, "the body must be a JSON object")
    if inbound.preset == "alertmanager":
        check_alertmanager(payload)
    elif inbound.preset == "grafana":
        check_grafana(payload)
    template = inbound.template or PRESET_TEMPLATES.get(inbound.preset, GENERIC_TEMPLATE)
    try:
        text = api.engine.compile(template).render(**payload_context(payload, datetime.now(api.zone))).strip()
    except TemplateError as exc:
        raise ApiProblem(422, f"the hook's template cannot render this payload: {exc}") from None
    if not is_visible(text):
        raise ApiProblem(422, "the hook's template rendered an empty text for this payload")
    if not _encodable(text):
        raise ApiProblem(400, "the payload contains characters that are not valid Unicode")
    limit = api.config.server.max_body_chars
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    gateway = api.config.gateway
    pooled = inbound.device_id is None and api.config.pool is not None  # the sender places it on a member
    return NewSend(
        id=new_send_id(),
        source=f"hook:{inbound.name}",
        recipients=_hook_recipients(inbound, gateway.default_region),
        body=text,
        device_id=inbound.device_id if inbound.device_id is not None or pooled else gateway.device_id,
        sim=inbound.sim if inbound.sim is not None or pooled else gateway.sim,
    )


def _hook_recipients(inbound: InboundConfig, region: str | None) -> tuple[str, ...]:
    numbers: dict[str, None] = {}
    for i, number in enumerate(inbound.to):
        normal = e164(number, region)
        if normal is None:
            raise ApiProblem(500, f"inbound.{inbound.name}.to[{i}] is not a valid phone number; fix the config")
        numbers[normal] = None
    return tuple(numbers)


def check_alertmanager(payload: Mapping[str, Any]) -> None:
    """400 unless `payload` is an Alertmanager webhook (version 4) with at least one alert."""
    version = payload.get("version")
    if version is not None and version != "4":
        raise ApiProblem(400, "only Alertmanager webhook version 4 is understood", "version")
    _choice(payload, "status", _ALERT_STATUSES)
    alerts = payload.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise ApiProblem(400, "must be a non-empty list of alerts", "alerts")
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            raise ApiProblem(400, "must be an object", where)
        _choice(alert, "status", _ALERT_STATUSES, where)
        _labels(alert, "labels", where, required=True)
        _labels(alert, "annotations", where)
    for name in ("groupLabels", "commonLabels", "commonAnnotations"):
        _labels(payload, name, None)
    truncated = payload.get("truncatedAlerts")
    if truncated is not None and (not isinstance(truncated, int) or isinstance(truncated, bool) or truncated < 0):
        raise ApiProblem(400, "must be a count", "truncatedAlerts")


def check_grafana(payload: Mapping[str, Any]) -> None:
    """400 unless `payload` is a Grafana alerting webhook: an alert group, or a legacy alert (state, title)."""
    if "alerts" not in payload:
        for name in ("state", "title"):
            if not isinstance(payload.get(name), str):
                raise ApiProblem(400, "required: a string (a Grafana alert carries alerts, or state and title)", name)
        if payload.get("message") is not None and not isinstance(payload["message"], str):
            raise ApiProblem(400, "must be a string", "message")
        return
    check_alertmanager({k: v for k, v in payload.items() if k != "version"})


def _choice(obj: Mapping[str, Any], name: str, choices: tuple[str, ...], where: str | None = None) -> None:
    if obj.get(name) not in choices:
        raise ApiProblem(400, f"must be one of {', '.join(choices)}", _path(where, name))


def _labels(obj: Mapping[str, Any], name: str, where: str | None, required: bool = False) -> None:
    value = obj.get(name)
    if value is None and not required:
        return
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ApiProblem(400, "must be an object of strings", _path(where, name))


def _path(where: str | None, name: str) -> str:
    return f"{where}.{name}" if where else name


# --- reading --------------------------------------------------------------------------------------


async def get_message(request: web.Request) -> web.Response:
    """`GET /v1/messages/{id}`: a send's overall status and each recipient's upstream id and status."""
    send_id = request.match_info["id"]
    found = await request.app[STORE].get_send(send_id)
    if found is None:
        raise ApiProblem(404, f"no message {send_id[:64]!r}")
    send, rows = found
    earlier: dict[int, list[dict[str, Any]]] = {}
    for attempt in await request.app[STORE].recipient_attempts(send_id):
        earlier.setdefault(attempt["position"], []).append(_attempt(attempt))
    recipients_out = [
        {
            "to": row["number"],
            "sms_id": row["sms_id"],
            "status": row["status"],
            "status_name": _status_name(row["status"]),
            "state": _api_state(row["state"]),
            "reason": row["reason"],
            "attempts": earlier.get(row["position"], []) + ([] if row["sms_id"] is None else [_attempt(row)]),
        }
        for row in rows
    ]
    return web.json_response({
        "id": send["id"],
        "status": overall_status([r["state"] for r in recipients_out]),
        "created_at": utc_iso(send["created_ts"]),
        "source": send["source"],
        "send_at": send["send_at"],
        "reason": EXHAUSTED if any(r["reason"] == EXHAUSTED for r in recipients_out) else None,
        "recipients": recipients_out,
    })


def _attempt(row: Any) -> dict[str, Any]:
    """One upstream SMS of a recipient: its id, the device and SIM it went out on, its last known status."""
    return {"sms_id": row["sms_id"], "device_id": row["device_id"], "sim": row["sim"], "status": row["status"],
            "status_name": _status_name(row["status"])}


def _status_name(status: int | None) -> str | None:
    return None if status is None else Status.from_code(status).label


def _api_state(state: str) -> str:
    return "queued" if state == "submitting" else state


def overall_status(states: list[str]) -> str:
    """A send's status from its recipients': the least advanced wins (queued, in_doubt, submitted, …)."""
    for state in ("queued", "in_doubt", "submitted"):
        if state in states:
            return state
    return "refused" if states and all(s == "refused" for s in states) else "failed"


def utc_iso(ts: float) -> str:
    """Unix seconds as ISO 8601 in UTC (`2026-11-27T16:00:01Z`)."""
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


async def healthz(request: web.Request) -> web.Response:
    """`GET /healthz`: the poller's health, queue depths and disabled webhook targets; 503 when degraded."""
    poller = request.app.get(POLLER)
    health = poller.health() if poller is not None else None
    store = request.app[STORE]
    try:
        depths = await store.send_queue_depths()
        disabled = await store.disabled_targets()
    except StoreError as exc:
        log.warning("healthz: cannot read the store: %s", exc)
        return web.json_response({"status": "degraded", "error": f"the store cannot be read: {exc}"}, status=503)
    degraded = health is not None and health.degraded
    body: dict[str, Any] = {"status": "degraded" if degraded else "ok"}
    if poller is not None:
        body["role"] = str(poller.leadership.role)
    body |= {
        "poller": None if health is None else {
            "last_success": None if health.last_success_ts is None else utc_iso(health.last_success_ts),
            "failing_since": None if health.failing_since is None else utc_iso(health.failing_since),
            "last_error": health.last_error,
            "degraded": health.degraded,
        },
        "queues": {
            "sends_queued": depths["queued"] + depths["submitting"],
            "sends_in_doubt": depths["in_doubt"],
            "webhooks_pending": depths["outbox_pending"],
            "webhooks_dead": depths["outbox_dead"],
        },
        "disabled_webhooks": [
            {"name": row["name"], "reason": row["reason"], "disabled_at": utc_iso(row["disabled_ts"])}
            for row in disabled
        ],
    }
    pool = request.app[CONFIG].pool
    if pool is not None:
        body["pool"] = await _pool_health(request.app, pool)
    return web.json_response(body, status=503 if degraded else 200)


async def _pool_health(app: web.Application, pool: PoolConfig) -> dict[str, Any]:
    """The pool as /healthz shows it: recipients waiting for a usable member, and each member's state."""
    store = app[STORE]
    reports = await member_reports(store, pool, ZoneInfo(app[CONFIG].gateway.timezone), time.time())
    return {
        "waiting": await store.pool_waiting(),
        "members": [r.to_json() for r in reports],
    }


async def metrics(request: web.Request) -> web.Response:
    """`GET /metrics`: Prometheus text, queue depths read at scrape time."""
    registry = request.app[METRICS]
    depths = await request.app[STORE].send_queue_depths()
    for queue, depth in depths.items():
        registry.queue_depth.labels(queue=queue if queue.startswith("outbox") else f"sends_{queue}").set(depth)
    pool = request.app[CONFIG].pool
    if pool is not None:
        health = await _pool_health(request.app, pool)
        registry.queue_depth.labels(queue="sends_pool_exhausted").set(health["waiting"])
        for m in health["members"]:
            labels = {"device_id": str(m["device_id"]), "sim": str(m["sim"])}
            registry.pool_sent_today.labels(**labels).set(m["sent_today"])
            registry.pool_recipients_month.labels(**labels).set(m["recipients_this_month"])
            registry.pool_usable.labels(**labels).set(int(m["state"] == "usable"))
    poller = request.app.get(POLLER)
    if poller is not None:
        registry.leader.set(int(poller.leadership.is_leader))
        registry.lease_token.set(poller.leadership.token or 0)
    return web.Response(body=generate_latest(registry.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def openapi(request: web.Request) -> web.Response:
    """`GET /openapi.json`: the OpenAPI 3 description of this API."""
    return web.Response(body=request.app[API].openapi, content_type="application/json")
