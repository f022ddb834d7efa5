"""Idempotency-Key: a retried request is answered the first answer and sends nothing again."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from api_support import API_KEY, OTHER_KEY, Bridge, Clock, write_config
from simulator_control import SimulatorControl

from bridge.config import Config
from bridge.leadership import Leadership

MESSAGE = {"to": "+4915752982212", "body": "disk full on db1"}


async def test_same_key_and_body_returns_the_first_answer_and_sends_once(bridge: Bridge, sim: SimulatorControl) -> None:
    """A retry with the same key and body gets the stored 202 (marked replayed) and nothing is sent again."""
    first = await bridge.send(MESSAGE, headers={"Idempotency-Key": "alert-1"})
    first_body = await first.json()
    await bridge.settled(first_body["id"])
    again = await bridge.send(MESSAGE, headers={"Idempotency-Key": "alert-1"})
    assert (again.status, await again.json()) == (202, first_body)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    await bridge.sender.drain_once()
    assert len(await sim.sent()) == 1


async def test_same_key_with_another_body_is_422(bridge: Bridge) -> None:
    """Reusing a key for a different request is a 422 naming the header."""
    await bridge.send(MESSAGE, headers={"Idempotency-Key": "alert-2"})
    response = await bridge.send({**MESSAGE, "body": "other"}, headers={"Idempotency-Key": "alert-2"})
    assert response.status == 422
    assert (await response.json())["field"] == "Idempotency-Key"


async def test_quoted_and_bare_keys_are_the_same_key(bridge: Bridge, sim: SimulatorControl) -> None:
    """`"abc"` (a structured-field string) and `abc` name the same key."""
    first = await bridge.send(MESSAGE, headers={"Idempotency-Key": '"8e03978e-40d5"'})
    again = await bridge.send(MESSAGE, headers={"Idempotency-Key": "8e03978e-40d5"})
    assert (await again.json())["id"] == (await first.json())["id"]


async def test_concurrent_duplicates_send_once(bridge: Bridge, sim: SimulatorControl) -> None:
    """Twenty simultaneous requests with one key: one send; the others are 409 or the replayed 202."""
    responses = await asyncio.gather(*(bridge.send(MESSAGE, headers={"Idempotency-Key": "burst"})
                                       for _ in range(20)))
    accepted = {(await r.json())["id"] for r in responses if r.status == 202}
    conflicts = [r for r in responses if r.status == 409]
    assert len(accepted) == 1 and {r.status for r in responses} <= {202, 409}
    assert conflicts and all(r.headers["Retry-After"] for r in conflicts)
    await bridge.settled(accepted.pop())
    assert len(await sim.sent()) == 1


async def test_one_key_sent_to_two_replicas_at_once_sends_once(
        tmp_path: Path, sim: SimulatorControl, bridges: Callable[..., Awaitable[Bridge]], postgres_url: str) -> None:
    """The same key to two replicas on one PostgreSQL at once: one 202, the others 409 (or the replayed 202),
    then the stored answer from either replica, and one SMS sent."""
    replicas = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        replicas.append(await bridges(write_config(tmp_path / name, sim.url, postgres_url=postgres_url)))
        await Leadership(replicas[-1].store, 60.0).renew()  # alive, as its leadership loop announces it
    responses = await asyncio.gather(*(replicas[i % 2].send(MESSAGE, headers={"Idempotency-Key": "ha"})
                                       for i in range(20)))
    fresh = [r for r in responses if r.status == 202 and "Idempotent-Replayed" not in r.headers]
    assert len(fresh) == 1 and {r.status for r in responses} <= {202, 409}
    first = await fresh[0].json()
    for replica in replicas:
        again = await replica.send(MESSAGE, headers={"Idempotency-Key": "ha"})
        assert (again.status, await again.json(), again.headers["Idempotent-Replayed"]) == (202, first, "true")
    await replicas[0].settled(first["id"])
    assert len(await sim.sent()) == 1


async def test_keys_are_scoped_per_api_key(bridge: Bridge, sim: SimulatorControl) -> None:
    """The same key under two API keys is two requests."""
    first = await bridge.send(MESSAGE, headers={"Idempotency-Key": "shared"})
    second = await bridge.send(MESSAGE, headers={"Idempotency-Key": "shared"}, key=OTHER_KEY)
    assert (await first.json())["id"] != (await second.json())["id"]


async def test_scope_is_a_hash_never_the_key(bridge: Bridge) -> None:
    """The stored scope is the SHA-256 of the API key, so the database never holds a key."""
    await bridge.send(MESSAGE, headers={"Idempotency-Key": "scoped"})
    row = await bridge.store.fetch_one("SELECT scope FROM idempotency WHERE key = 'scoped'")
    assert row[0] == hashlib.sha256(API_KEY.encode()).hexdigest()


async def test_errors_are_not_stored(bridge: Bridge) -> None:
    """A 400 is not kept: the corrected request with the same key is accepted."""
    bad = await bridge.send({"to": "12", "body": "x"}, headers={"Idempotency-Key": "fix-me"})
    good = await bridge.send(MESSAGE, headers={"Idempotency-Key": "fix-me"})
    assert (bad.status, good.status) == (400, 202)


async def test_keys_expire_after_a_day(make_config: Callable[..., Config],
                                       bridges: Callable[..., Awaitable[Bridge]]) -> None:
    """After 24 hours a key is forgotten: the same request is a new send."""
    clock = Clock()
    bridge = await bridges(make_config(), clock=clock, start_sender=False)
    first = await bridge.send(MESSAGE, headers={"Idempotency-Key": "daily"})
    clock.advance(86400 + 1)
    await bridge.sender.drain_once()
    assert (await bridge.store.fetch_one("SELECT count(*) FROM idempotency"))[0] == 0
    again = await bridge.send(MESSAGE, headers={"Idempotency-Key": "daily"})
    assert (await again.json())["id"] != (await first.json())["id"]


async def test_hooks_honour_the_key_too(bridge: Bridge, sim: SimulatorControl) -> None:
    """An inbound hook retried with the same key queues one send."""
    payload = {"build": 7, "result": "failed"}
    first = await bridge.send(payload, path="/v1/hooks/ci", headers={"Idempotency-Key": "ci-7"})
    again = await bridge.send(payload, path="/v1/hooks/ci", headers={"Idempotency-Key": "ci-7"})
    assert (await again.json())["id"] == (await first.json())["id"]


@pytest.mark.parametrize("key", ["", '"', '"a"b"', "x" * 256, "caf\u00e9"])
async def test_malformed_keys_are_400(bridge: Bridge, key: str) -> None:
    """An empty, badly quoted, too long or non-ASCII key is a 400 naming the header."""
    response = await bridge.send(MESSAGE, headers={"Idempotency-Key": key})
    assert response.status == 400
    assert (await response.json())["field"] == "Idempotency-Key"
