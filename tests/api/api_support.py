"""Helpers of the HTTP API and sender tests: a config, and the bridge's API on a test server."""

from __future__ import annotations

import textwrap
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from waiting import WAIT, eventually

from bridge.appkeys import CONFIG, GATEWAY, HTTP, METRICS, POLLER, SENDER, STORE, TEMPLATES
from bridge.config import Config, load_config
from bridge.gateway.client import GatewayClient
from bridge.metrics import Metrics
from bridge.pipeline import Pipeline
from bridge.poller import Poller
from bridge.rules import Router
from bridge.sender import Sender
from bridge.server import setup_api
from bridge.store import Store, open_store
from bridge.templating import TemplateEngine

API_KEY = "k-test-0123456789abcdef"
OTHER_KEY = "k-other-fedcba9876543210"
DEVICE = 1576
ALERT_TO = "+4915752982212"


class Clock:
    """A clock the test can move forward; starts at the real time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.offset += seconds


CONFIG_YAML = """\
gateway:
  url: {url}
  email: demo@example.com
  password: demo
  device_id: {device}
  default_region: DE
  timezone: Europe/Paris
  timeout: {timeout}
{gateway_extra}
storage:
  {storage}
server:
  listen: 127.0.0.1:8080
  api_keys: ["{key}", "{other}"]
{server_extra}
inbound:
  alertmanager:
    to: ["{alert_to}"]
  grafana:
    to: ["{alert_to}"]
  ci:
    to: ["{alert_to}", "+4915752982213"]
    template: "Build {{{{ payload.build }}}} {{{{ payload.result | upper }}}}"
  plain:
    to: ["{alert_to}"]
"""


def write_config(directory: Path, sim_url: str, *, gateway: str = "", server: str = "", timeout: str = "1s",
                 extra: str = "", postgres_url: str | None = None) -> Config:
    """Write and load a config in `directory` pointing at the simulator (on PostgreSQL at `postgres_url` if
    given, else an SQLite file there); extra YAML for gateway: and server:."""
    storage = f"path: {directory / 'bridge.db'}" if postgres_url is None else f"url: {postgres_url}"
    text = CONFIG_YAML.format(
        url=sim_url, device=DEVICE, timeout=timeout, storage=storage, key=API_KEY, other=OTHER_KEY,
        alert_to=ALERT_TO, gateway_extra=textwrap.indent(gateway, "  "), server_extra=textwrap.indent(server, "  "),
    ) + extra
    path = directory / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env={})


@dataclass
class Bridge:
    """The API on a test server with a real store, gateway client, sender and poller."""

    config: Config
    store: Store
    sender: Sender
    poller: Poller
    client: TestClient
    metrics: Metrics
    session: aiohttp.ClientSession
    clock: Clock
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The server's base URL."""
        return str(self.client.make_url("")).rstrip("/")

    async def send(self, body: Any, *, key: str | None = API_KEY, headers: dict[str, str] | None = None,
                   path: str = "/v1/messages") -> aiohttp.ClientResponse:
        """POST a JSON body with a bearer key."""
        all_headers = dict(headers or {})
        if key is not None:
            all_headers["Authorization"] = f"Bearer {key}"
        return await self.client.post(path, json=body, headers=all_headers)

    async def message(self, message_id: str) -> dict[str, Any]:
        """GET /v1/messages/{id} as JSON (asserting 200)."""
        response = await self.client.get(f"/v1/messages/{message_id}",
                                         headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status == 200, await response.text()
        return await response.json()

    async def settled(self, message_id: str, timeout: float = WAIT) -> dict[str, Any]:
        """The message once no recipient is queued or in doubt and every submitted one knows its sms_id (polling
        meanwhile, as the bridge's poller does: its listings teach the ids of SMS sent in batches)."""
        seen: list[dict[str, Any]] = []

        async def settled_message() -> dict[str, Any] | None:
            message = await self.message(message_id)
            seen[:] = [message]
            states = [r["state"] for r in message["recipients"]]
            learning = any(r["state"] == "submitted" and r["sms_id"] is None for r in message["recipients"])
            if not {"queued", "in_doubt"} & set(states) and not learning:
                return message
            if learning:
                await self.poller.poll_once()
            return None

        return await eventually(settled_message, what=lambda: f"message {message_id} to settle: {seen}",
                                timeout=timeout, interval=0.05)

    async def close(self) -> None:
        """Stop everything, newest first."""
        while self.closers:
            await self.closers.pop()()


async def start_bridge(config: Config, *, start_sender: bool = True, in_doubt_after: float | None = None,
                       clock: Clock | None = None) -> Bridge:
    """Assemble the bridge's pieces around the API (as app.py does) and serve it on a free port."""
    clock = clock or Clock()
    closers: list[Callable[[], Awaitable[None]]] = []
    store = await open_store(config.storage, default_region=config.gateway.default_region)
    closers.append(store.close)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=config.gateway.timeout))
    closers.append(session.close)
    gateway = GatewayClient(session, config.gateway.url, email=config.gateway.email,
                            password=config.gateway.password, account_tz=config.gateway.timezone,
                            timeout=config.gateway.timeout)
    metrics = Metrics()
    sender = Sender(config, store, gateway, metrics, clock, in_doubt_after=in_doubt_after)
    engine = TemplateEngine(config.templates_dir, default_region=config.gateway.default_region)
    router = Router.for_config(config, engine)
    pipeline = Pipeline(store, router, config.safety, metrics, clock, default_region=config.gateway.default_region)
    pipeline.on_sends = sender.wake
    pipeline.learn_ids = sender.learn_listed
    poller = Poller(config, store, gateway, pipeline, metrics, clock)
    app = web.Application(client_max_size=config.server.max_request_bytes)
    app[CONFIG], app[STORE], app[HTTP], app[GATEWAY] = config, store, session, gateway
    app[METRICS], app[SENDER], app[POLLER], app[TEMPLATES] = metrics, sender, poller, engine
    setup_api(app)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    closers.append(client.close)
    if start_sender:
        await sender.start()
    closers.append(lambda: sender.stop(grace=0))
    return Bridge(config, store, sender, poller, client, metrics, session, clock, closers)
