"""The OpenAPI 3 description of the bridge's HTTP API, as data (served at `GET /openapi.json`)."""

from __future__ import annotations

from typing import Any

from bridge import __version__
from bridge.config import Config

_ERROR_REF = {"$ref": "#/components/schemas/Error"}
# Shared with the server's validation, so the document and the behaviour cannot drift apart.
NUMBER_MAX_LENGTH = 64
MAX_RECIPIENTS = 1000
MAX_CUSTOMER_ID = 2**31 - 1
IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_KEY_PATTERN = r'^(?:"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])+"|[\x21\x23-\x5b\x5d-\x7e]+)$'
SEND_AT_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?)?$"
)
_STATES = ["queued", "submitted", "in_doubt", "failed", "refused"]


def openapi_document(config: Config) -> dict[str, Any]:
    """The OpenAPI 3.0 document for this config (limits and hook names are the configured ones)."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "sms-bridge HTTP API",
            "version": __version__,
            "description": (
                "Send SMS through SmsGateway24 from any system. A 202 is answered once the send is committed to "
                "the bridge's store: it is then never lost and never sent twice. Every error is JSON "
                '`{"error": "...", "field": "..."}`.'
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "paths": {
            "/v1/messages": {"post": _post_message(config)},
            "/v1/messages/{id}": {"get": _get_message()},
            "/v1/hooks/{name}": {"post": _post_hook(config)},
            "/v1/gateway/{secret}": {"post": _gateway_push()},
            "/healthz": {"get": _healthz()},
            "/metrics": {"get": _metrics()},
            "/openapi.json": {"get": _openapi()},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "One of `server.api_keys`."}},
            "schemas": _schemas(config),
            "responses": _responses(config),
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": (
                        "Makes a retry safe: the same key with the same body answers the first answer again "
                        "(header `Idempotent-Replayed: true`) and sends nothing; with another body 422; while "
                        "the first request still runs 409. A structured-field string (`\"abc\"`) or a bare "
                        "token; kept 24 hours, per API key."
                    ),
                    "schema": {"type": "string", "minLength": 1, "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
                               "pattern": IDEMPOTENCY_KEY_PATTERN},
                }
            },
        },
    }


def _errors(*statuses: str) -> dict[str, Any]:
    names = {"400": "BadRequest", "401": "Unauthorized", "404": "NotFound", "408": "TooSlow", "409": "Conflict",
             "413": "TooLarge", "415": "NotJson", "422": "Unprocessable", "429": "RateLimited", "503": "Unavailable"}
    out: dict[str, Any] = {s: {"$ref": f"#/components/responses/{names[s]}"} for s in statuses}
    out["default"] = {"$ref": "#/components/responses/Error"}
    return out


def _accepted() -> dict[str, Any]:
    return {
        "description": "Committed to the send queue.",
        "headers": {
            "Location": {"schema": {"type": "string"}, "description": "Where to follow the message."},
            "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]},
                                    "description": "Present when this is the stored answer to an earlier request."},
        },
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}},
    }


def _post_message(config: Config) -> dict[str, Any]:
    return {
        "operationId": "sendMessage",
        "summary": "Queue one text to one or more numbers",
        "description": (
            "Numbers are normalised to E.164 (`gateway.default_region` for numbers without a country code); "
            "a repeated number is sent once. Safety is applied when the message is handed to the upstream: a "
            "recipient on the opt-out list, or over the loop guard, is still answered 202 and then shows as "
            "`refused` with its reason."
        ),
        "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/MessageRequest"}}},
        },
        "responses": {"202": _accepted(), **_errors("400", "401", "408", "409", "413", "415", "422", "429", "503")},
    }


def _get_message() -> dict[str, Any]:
    return {
        "operationId": "getMessage",
        "summary": "A message's status and its recipients' upstream ids and statuses",
        "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": {
            "200": {"description": "The message.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Message"}}}},
            **_errors("401", "404", "429"),
        },
    }


def _post_hook(config: Config) -> dict[str, Any]:
    name_schema: dict[str, Any] = {"type": "string"}
    if config.inbound:
        name_schema["enum"] = sorted(config.inbound)
    return {
        "operationId": "inboundHook",
        "summary": "An inbound hook: any JSON -> the hook's template -> a text to the hook's numbers",
        "description": (
            "Presets: `alertmanager` (Prometheus Alertmanager webhook version 4), `grafana` (Grafana alerting), "
            "`generic` (any JSON object; the template sees it as `payload`). A payload the preset cannot use, or "
            "that the template cannot render, is answered 4xx (alerting senders retry only 5xx). A rendered text "
            "longer than the body limit is cut."
        ),
        "parameters": [
            {"name": "name", "in": "path", "required": True, "schema": name_schema},
            {"$ref": "#/components/parameters/IdempotencyKey"},
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
        },
        "responses": {"202": _accepted(), **_errors("400", "401", "404", "408", "409", "413", "422", "429", "503")},
    }


def _gateway_push() -> dict[str, Any]:
    return {
        "operationId": "gatewayPush",
        "summary": "SmsGateway24's own dashboard webhooks (incoming message, delivery status)",
        "description": "Guarded by its secret path (`gateway.webhook_secret`); 404 when it differs or is unset.",
        "security": [],
        "parameters": [{"name": "secret", "in": "path", "required": True, "schema": {"type": "string"}}],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            },
        },
        "responses": {
            "200": {
                "description": "Recorded.",
                "content": {"application/json": {"schema": {
                    "type": "object", "required": ["ok", "events"],
                    "properties": {"ok": {"type": "boolean"}, "events": {"type": "array", "items": {"type": "string"}}},
                }}},
            },
            **_errors("400", "404", "408", "413"),
            "503": {"description": "The bridge cannot store it now; the upstream retries.",
                    "content": {"application/json": {"schema": _ERROR_REF}}},
        },
    }


def _healthz() -> dict[str, Any]:
    health = {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}
    return {
        "operationId": "health",
        "summary": "The poller's health, queue depths and disabled webhook targets",
        "security": [],
        "responses": {
            "200": {"description": "Healthy.", "content": health},
            "503": {"description": "Degraded: the upstream has failed for long, or the store cannot be read.",
                    "content": health},
            "default": {"$ref": "#/components/responses/Error"},
        },
    }


def _metrics() -> dict[str, Any]:
    return {
        "operationId": "metrics",
        "summary": "Prometheus metrics",
        "security": [],
        "responses": {
            "200": {"description": "Prometheus text exposition format.",
                    "content": {"text/plain": {"schema": {"type": "string"}}}},
            "default": {"$ref": "#/components/responses/Error"},
        },
    }


def _openapi() -> dict[str, Any]:
    return {
        "operationId": "openapi",
        "summary": "This document",
        "security": [],
        "responses": {
            "200": {"description": "The OpenAPI 3 document.",
                    "content": {"application/json": {"schema": {"type": "object"}}}},
            "default": {"$ref": "#/components/responses/Error"},
        },
    }


def _schemas(config: Config) -> dict[str, Any]:
    server = config.server
    number = {"type": "string", "minLength": 1, "maxLength": NUMBER_MAX_LENGTH, "example": "+4915752982212"}
    nullable_int = {"type": "integer", "nullable": True}
    return {
        "Error": {
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": {"type": "string", "description": "What is wrong, for people."},
                "field": {"type": "string", "nullable": True,
                          "description": "The request field at fault (`to[2]`, `body`, `Idempotency-Key`)."},
            },
        },
        "MessageRequest": {
            "type": "object",
            "required": ["to", "body"],
            "additionalProperties": False,
            "properties": {
                "to": {"oneOf": [number, {"type": "array", "items": number, "minItems": 1,
                                          "maxItems": MAX_RECIPIENTS}]},
                "body": {"type": "string", "minLength": 1, "maxLength": server.max_body_chars, "pattern": r"\S",
                         "description": "The text; not only blanks."},
                "device_id": {**nullable_int, "minimum": 1,
                              "description": "Default: a pool member when `pool` is configured, else "
                                             "gateway.device_id."},
                "sim": {**nullable_int, "enum": [0, 1, None],
                        "description": "Default: the pool member's, else gateway.sim."},
                "send_at": {
                    "type": "string", "nullable": True,
                    "pattern": SEND_AT_PATTERN,
                    "description": "When to send (the API's timetosend): ISO 8601, or `YYYY-MM-DD HH:MM[:SS]`; "
                                   "without an offset it is read in the account's zone (gateway.timezone).",
                    "example": "2026-12-24 18:00",
                },
                "urgent": {"type": "boolean", "nullable": True},
                "customer_id": {**nullable_int, "minimum": 0, "maximum": MAX_CUSTOMER_ID,
                                "description": "Your own id, sent upstream as customerid."},
            },
        },
        "Accepted": {
            "type": "object",
            "required": ["id", "status"],
            "properties": {"id": {"type": "string", "pattern": "^msg_"}, "status": {"type": "string",
                                                                                  "enum": ["queued"]}},
        },
        "Recipient": {
            "type": "object",
            "required": ["to", "sms_id", "status", "status_name", "state", "reason"],
            "properties": {
                "to": {"type": "string"},
                "sms_id": {**nullable_int, "description": "The upstream id, once known."},
                "status": {**nullable_int, "description": "The upstream status code last seen (null until seen)."},
                "status_name": {"type": "string", "nullable": True},
                "state": {"type": "string", "enum": _STATES},
                "reason": {"type": "string", "nullable": True,
                           "description": "Why failed, refused (opted_out, loop_guard), in doubt, retried or "
                                          "waiting (pool_exhausted: no pool member is usable)."},
                "attempts": {"type": "array", "items": {"$ref": "#/components/schemas/Attempt"},
                             "description": "Every upstream SMS for this recipient, the latest last (a failover "
                                            "adds one)."},
            },
        },
        "Attempt": {
            "type": "object",
            "required": ["sms_id", "device_id", "sim", "status", "status_name"],
            "properties": {
                "sms_id": {"type": "integer"},
                "device_id": nullable_int,
                "sim": nullable_int,
                "status": nullable_int,
                "status_name": {"type": "string", "nullable": True},
            },
        },
        "Message": {
            "type": "object",
            "required": ["id", "status", "created_at", "source", "send_at", "recipients"],
            "properties": {
                "id": {"type": "string"},
                "status": {"type": "string", "enum": _STATES,
                           "description": "The least advanced state of its recipients."},
                "created_at": {"type": "string", "format": "date-time"},
                "source": {"type": "string", "description": "api, hook:NAME or rule:NAME."},
                "send_at": {"type": "string", "nullable": True},
                "reason": {"type": "string", "nullable": True,
                           "description": "pool_exhausted while a recipient waits for a usable pool member."},
                "recipients": {"type": "array", "items": {"$ref": "#/components/schemas/Recipient"}},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {
                "status": {"type": "string", "enum": ["ok", "degraded"]},
                "role": {"type": "string", "enum": ["leader", "follower"],
                         "description": "Whether this replica polls the upstream (the leader) or not."},
                "error": {"type": "string"},
                "poller": {
                    "type": "object", "nullable": True,
                    "properties": {
                        "last_success": {"type": "string", "format": "date-time", "nullable": True},
                        "failing_since": {"type": "string", "format": "date-time", "nullable": True},
                        "last_error": {"type": "string", "nullable": True},
                        "degraded": {"type": "boolean"},
                    },
                },
                "queues": {"type": "object", "additionalProperties": {"type": "integer"}},
                "disabled_webhooks": {
                    "type": "array",
                    "items": {"type": "object", "properties": {
                        "name": {"type": "string"}, "reason": {"type": "string"},
                        "disabled_at": {"type": "string", "format": "date-time"},
                    }},
                },
            },
        },
    }


def _responses(config: Config) -> dict[str, Any]:
    def error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}
        if headers:
            out["headers"] = headers
        return out

    retry_after = {"Retry-After": {"required": True, "schema": {"type": "string"}, "description": "Seconds."}}
    return {
        "BadRequest": error("Malformed JSON, a wrong type, an unknown field or an invalid value (`field` names it)."),
        "Unauthorized": error("No or an unknown bearer key.",
                              {"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}}),
        "NotFound": error("No such message, hook or route."),
        "Conflict": error("A request with this Idempotency-Key is still running.", retry_after),
        "TooSlow": error(f"The body did not arrive within {config.server.read_timeout:g}s (server.read_timeout)."),
        "TooLarge": error(f"The body is larger than {config.server.max_request_bytes} bytes."),
        "NotJson": error("The Content-Type is not JSON (a form, plain text): `field` is `Content-Type`."),
        "Unprocessable": error("The Idempotency-Key was used with another request, or the hook's template "
                               "cannot render this payload."),
        "RateLimited": error("Over this key's rate limit.", retry_after),
        "Unavailable": error("The store cannot take the request now; retry.", retry_after),
        "Error": error("Any other error (404 unknown route, 405 wrong method, …)."),
    }
