"""Requests the API refuses clearly: empty or mistyped bodies, invisible texts, slow clients, chatty logs."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest
from api_support import API_KEY, Bridge
from slow_clients import trickle

from bridge.config import Config
from bridge.logs import setup_logging

AUTH = {"Authorization": f"Bearer {API_KEY}"}
BODY = b'{"to": "+4915752982212", "body": "hello"}'


async def test_content_length_0_is_a_json_400_asking_for_a_body(bridge: Bridge) -> None:
    """A POST with `Content-Length: 0` is a JSON 400 saying a JSON object is required."""
    response = await bridge.client.post("/v1/messages", data=b"",
                                        headers={**AUTH, "Content-Type": "application/json"})
    assert response.status == 400
    assert "empty" in (await response.json())["error"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
async def test_a_body_that_is_not_json_by_its_type_is_a_415_naming_it(bridge: Bridge, content_type: str) -> None:
    """A send whose Content-Type is not JSON (text/plain, a form) is refused with 415 naming the type, even when
    the bytes would parse as JSON; nothing is queued."""
    response = await bridge.client.post("/v1/messages", data=BODY, headers={**AUTH, "Content-Type": content_type})
    assert response.status == 415
    answer = await response.json()
    assert content_type in answer["error"] and answer["field"] == "Content-Type"
    assert await bridge.store.fetch_all("SELECT id FROM sends") == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "application/vnd.api+json"])
async def test_json_content_types_are_accepted(bridge: Bridge, content_type: str) -> None:
    """application/json, with a charset, and +json types are read as JSON."""
    response = await bridge.client.post("/v1/messages", data=BODY, headers={**AUTH, "Content-Type": content_type})
    assert response.status == 202, await response.text()


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\u200d", " \u2060 ", "\ufeff", "\u3164", "\u00ad\u180e",
                                  "\u2800", "\u034f\u034f"])
async def test_a_body_of_only_invisible_characters_is_refused_naming_body(bridge: Bridge, text: str) -> None:
    """A text of nothing but zero-width, formatting or blank characters is a 400 naming `body`."""
    response = await bridge.send({"to": "+4915752982212", "body": text})
    assert response.status == 400
    assert (await response.json())["field"] == "body"


async def test_a_body_with_visible_text_among_invisible_characters_is_accepted(bridge: Bridge) -> None:
    """Zero-width joiners inside real text (emoji sequences, scripts that need them) are fine."""
    response = await bridge.send({"to": "+4915752982212", "body": "\u200bhi \U0001F469\u200d\U0001F4BB"})
    assert response.status == 202


PUSH_SECRET = "push-secret-123"


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/hooks/plain", f"/v1/gateway/{PUSH_SECRET}"])
async def test_a_body_sent_slowly_is_cut_off_with_a_json_408(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], path: str) -> None:
    """A client that sends its body a byte at a time, to a send, a hook or the push path, is answered a JSON 408
    once server.read_timeout has passed."""
    bridge = await bridges(make_config(server="read_timeout: 1s", gateway=f"webhook_secret: {PUSH_SECRET}"))
    reader, writer = await asyncio.open_connection(bridge.client.host, bridge.client.port)
    writer.write(f"POST {path} HTTP/1.1\r\nHost: bridge\r\nAuthorization: Bearer {API_KEY}\r\n"
                 f"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n".encode())
    started = time.monotonic()
    sending = asyncio.create_task(trickle(writer, lambda _: b" "))
    try:
        answer = await asyncio.wait_for(reader.read(65536), 5)
    finally:
        sending.cancel()
        writer.close()
    assert time.monotonic() - started < 3
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"application/json" in head, answer
    assert json.loads(body) == {"error": "the request body did not arrive within 1s", "field": None}


@pytest.fixture
def debug_logging() -> Iterator[None]:
    """The bridge's logging at --log-level debug, put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    setup_logging("debug")
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_debug_logs_show_no_value_derived_from_the_api_key(
        bridge: Bridge, debug_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """At --log-level debug, a send with an Idempotency-Key logs neither the key's SHA-256 (the idempotency
    scope the store is queried with) nor the key."""
    response = await bridge.send({"to": "+4915752982212", "body": "hello"}, headers={"Idempotency-Key": "k1"})
    assert response.status == 202
    await bridge.settled((await response.json())["id"])
    logged = capsys.readouterr().err
    assert logged, "debug logging produced nothing: the test would prove nothing"
    assert hashlib.sha256(API_KEY.encode()).hexdigest() not in logged
    assert API_KEY not in logged


async def test_a_request_aiohttp_cannot_parse_is_one_warning_line(
        bridge: Bridge, debug_logging: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A header with a byte HTTP forbids is logged as one WARNING line naming the client, with no traceback, so
    a client cannot fill the log with them."""
    reader, writer = await asyncio.open_connection(bridge.client.host, bridge.client.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: bridge\r\nX-Bad: a\x01b\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(65536), 5)
    writer.close()
    assert answer.split(b" ", 2)[1] == b"400", answer
    logged = [line for line in capsys.readouterr().err.splitlines() if "aiohttp.server" in line]
    assert len(logged) == 1, logged
    assert " WARNING " in logged[0] and "127.0.0.1" in logged[0] and "answered 400" in logged[0]
