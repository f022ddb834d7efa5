"""GET /healthz, /metrics and /openapi.json."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from api_support import API_KEY, Bridge, Clock, write_config
from simulator_control import SimulatorControl
from waiting import eventually

from bridge.app import build_app
from bridge.config import Config



async def test_healthz_is_200_with_queues_when_healthy(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]]) -> None:
    """A healthy bridge answers 200 with the poller's last success and the queue depths."""
    bridge = await bridges(make_config(), start_sender=False)
    await bridge.poller.poll_once()
    await bridge.send({"to": ["+4915752982212", "+4915752982213"], "body": "waiting"})
    response = await bridge.client.get("/healthz")
    body = await response.json()
    assert response.status == 200 and body["status"] == "ok"
    assert body["poller"]["last_success"].endswith("Z") and body["poller"]["degraded"] is False
    assert body["role"] == "leader"
    assert body["queues"] == {"sends_queued": 2, "sends_in_doubt": 0, "webhooks_pending": 0, "webhooks_dead": 0}
    assert body["disabled_webhooks"] == []


async def test_healthz_is_503_when_the_upstream_failed_for_long(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]], sim: SimulatorControl) -> None:
    """Once polling has failed for poll.unhealthy_after, /healthz is 503 with the error."""
    clock = Clock()
    bridge = await bridges(make_config(), start_sender=False, clock=clock)
    await sim.fault("503", count=100, methods=["getallsms"])
    await bridge.poller.poll_once()
    clock.advance(bridge.config.poll.unhealthy_after + 1)
    response = await bridge.client.get("/healthz")
    body = await response.json()
    assert response.status == 503 and body["status"] == "degraded"
    assert body["poller"]["failing_since"] and "503" in body["poller"]["last_error"]


async def test_healthz_lists_disabled_webhook_targets(bridge: Bridge) -> None:
    """A webhook target disabled by a 410 shows up with its reason."""
    async with bridge.store.transaction() as db:
        await db.disable_target("crm", "HTTP 410 Gone", 1_800_000_000.0)
    body = await (await bridge.client.get("/healthz")).json()
    assert body["disabled_webhooks"] == [{"name": "crm", "reason": "HTTP 410 Gone",
                                          "disabled_at": "2027-01-15T08:00:00Z"}]


async def test_metrics_are_prometheus_text_with_queue_depths(
        make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]]) -> None:
    """/metrics is Prometheus text; the queue-depth gauges are read from the store at scrape time."""
    bridge = await bridges(make_config(), start_sender=False)
    await bridge.send({"to": ["+4915752982212", "+4915752982213", "+4915752982214"], "body": "x"})
    response = await bridge.client.get("/metrics")
    text = await response.text()
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    assert 'bridge_queue_depth{queue="sends_queued"} 3.0' in text
    assert 'bridge_sends_total{outcome="accepted"} 3.0' in text
    assert "bridge_poller_leader 1.0" in text


async def test_openapi_describes_every_route(bridge: Bridge) -> None:
    """/openapi.json is an OpenAPI 3 document naming every route the server has, with the bearer scheme."""
    doc = await (await bridge.client.get("/openapi.json")).json()
    routes = {r.resource.canonical for r in bridge.client.app.router.routes() if r.method != "HEAD"}
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == routes
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "One of `server.api_keys`."}
    assert doc["components"]["schemas"]["MessageRequest"]["properties"]["body"]["maxLength"] == 1600


async def test_build_app_serves_the_api_end_to_end(tmp_path: Path, sim: SimulatorControl) -> None:
    """The app built by bridge.app.build_app accepts a send, hands it upstream and reports it healthy."""
    auth = {"Authorization": f"Bearer {API_KEY}"}
    async with TestClient(TestServer(build_app(write_config(tmp_path, sim.url)))) as client:
        response = await client.post("/v1/messages", json={"to": "+4915752982212", "body": "built"}, headers=auth)
        message_id = (await response.json())["id"]

        async def learned() -> bool:
            message = await (await client.get(f"/v1/messages/{message_id}", headers=auth)).json()
            return message["recipients"][0]["sms_id"] is not None

        await eventually(learned, what="the send to be submitted")
        health = await client.get("/healthz")
        assert health.status == 200
    assert [s["body"] for s in await sim.sent()] == ["built"]
