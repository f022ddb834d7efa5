"""Authentication, limits and error answers: every error is JSON with the right status."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable

from api_support import API_KEY, OTHER_KEY, Bridge

from bridge.config import Config

MESSAGE = {"to": "+4915752982212", "body": "hi"}


async def test_missing_key_is_401_json(bridge: Bridge) -> None:
    """A request without Authorization is a JSON 401 with a WWW-Authenticate challenge."""
    response = await bridge.send(MESSAGE, key=None)
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["error"]


async def test_wrong_key_is_401(bridge: Bridge) -> None:
    """An unknown bearer key is a 401."""
    response = await bridge.send(MESSAGE, key="k-test-0123456789abcdeX")
    assert response.status == 401


async def test_non_bearer_scheme_is_401(bridge: Bridge) -> None:
    """A key given with another scheme (Basic) is a 401."""
    response = await bridge.client.post("/v1/messages", json=MESSAGE, headers={"Authorization": f"Basic {API_KEY}"})
    assert response.status == 401


async def test_every_configured_key_works(bridge: Bridge) -> None:
    """Each key of server.api_keys is accepted, and the scheme is case-insensitive."""
    first = await bridge.send(MESSAGE, key=OTHER_KEY)
    second = await bridge.client.post("/v1/messages", json=MESSAGE, headers={"Authorization": f"bearer {API_KEY}"})
    assert (first.status, second.status) == (202, 202)


async def test_hooks_and_reads_need_a_key_too(bridge: Bridge) -> None:
    """GET /v1/messages/{id} and POST /v1/hooks/{name} are 401 without a key."""
    read = await bridge.client.get("/v1/messages/msg_x")
    hook = await bridge.client.post("/v1/hooks/alertmanager", json={})
    assert (read.status, hook.status) == (401, 401)


async def test_public_endpoints_need_no_key(bridge: Bridge) -> None:
    """/healthz, /metrics and /openapi.json answer without a key."""
    statuses = [(await bridge.client.get(path)).status for path in ("/healthz", "/metrics", "/openapi.json")]
    assert statuses == [200, 200, 200]


async def test_body_over_the_limit_is_413_json(make_config: Callable[..., Config],
                                              bridges: Callable[..., Awaitable[Bridge]]) -> None:
    """A body larger than server.max_request_bytes is a JSON 413."""
    bridge = await bridges(make_config(server="max_request_bytes: 1000"))
    response = await bridge.send({"to": "+4915752982212", "body": "x" * 1200})
    assert response.status == 413
    assert "1000" in (await response.json())["error"]


async def test_chunked_body_over_the_limit_is_413(make_config: Callable[..., Config],
                                                 bridges: Callable[..., Awaitable[Bridge]]) -> None:
    """A chunked body without Content-Length is cut off at the limit with a 413."""
    bridge = await bridges(make_config(server="max_request_bytes: 1000"))

    async def chunks():
        for _ in range(20):
            yield b"x" * 100

    response = await bridge.client.post("/v1/messages", data=chunks(), headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status == 413


async def test_over_the_rate_limit_is_429_with_retry_after(make_config: Callable[..., Config],
                                                          bridges: Callable[..., Awaitable[Bridge]]) -> None:
    """Beyond server.rate_limit a key gets a JSON 429 with Retry-After; another key is not affected."""
    bridge = await bridges(make_config(server="rate_limit: 3/1m"))
    statuses = [(await bridge.send(MESSAGE)).status for _ in range(3)]
    limited = await bridge.send(MESSAGE)
    other = await bridge.send(MESSAGE, key=OTHER_KEY)
    assert statuses == [202, 202, 202]
    assert limited.status == 429 and 1 <= int(limited.headers["Retry-After"]) <= 20
    assert (await limited.json())["error"]
    assert other.status == 202


async def test_wrong_method_is_405_json(bridge: Bridge) -> None:
    """A wrong method on a known route is a JSON 405 with Allow."""
    response = await bridge.client.put("/v1/messages", headers={"Authorization": f"Bearer {API_KEY}"})
    assert response.status == 405
    assert "POST" in response.headers["Allow"]
    assert (await response.json())["error"]


async def test_unknown_route_is_404_json(bridge: Bridge) -> None:
    """An unknown route is a JSON 404."""
    response = await bridge.client.get("/nowhere")
    assert response.status == 404
    assert response.content_type == "application/json"


async def test_requests_are_counted_by_route_and_status(bridge: Bridge) -> None:
    """Each answer increments bridge_http_requests_total for its route template and status."""
    await bridge.send(MESSAGE)
    await bridge.send(MESSAGE, key=None)
    text = await (await bridge.client.get("/metrics")).text()
    assert 'bridge_http_requests_total{route="/v1/messages",status="202"} 1.0' in text
    assert 'bridge_http_requests_total{route="/v1/messages",status="401"} 1.0' in text


async def test_store_that_cannot_write_answers_503(bridge: Bridge) -> None:
    """When SQLite is locked by another writer past the busy timeout, a send is a JSON 503, not a 500."""
    await bridge.store.fetch_one("PRAGMA busy_timeout = 50")
    other = sqlite3.connect(bridge.config.storage.path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        response = await asyncio.wait_for(bridge.send(MESSAGE), 10)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert response.status == 503
    assert response.headers["Retry-After"]
