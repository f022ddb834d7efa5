"""Property-based tests from /openapi.json (schemathesis): no 5xx, and every answer conforms to the document."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import schemathesis
from api_support import API_KEY, start_bridge, write_config
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bridge.gateway.simulator import build_simulator_app, serve_simulator

STARTUP = 30.0


class LiveBridge:
    """A simulator and the bridge's API served from a thread of their own, for a synchronous HTTP client."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.url = ""
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="live-bridge", daemon=True)

    def __enter__(self) -> LiveBridge:
        self._thread.start()
        assert self._ready.wait(STARTUP), "the live bridge did not start"
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STARTUP)
        assert not self._thread.is_alive(), "the live bridge did not stop"

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the test thread
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve_simulator(build_simulator_app(pace=1.0, seed=7)) as sim_url:
            config = write_config(self.directory, sim_url, gateway="webhook_secret: push-secret-123")
            bridge = await start_bridge(config)
            try:
                self.url = bridge.url
                self._ready.set()
                await self._stop.wait()
            finally:
                await bridge.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBridge]:
    """The bridge served from a background thread for the whole module."""
    with LiveBridge(tmp_path_factory.mktemp("live")) as bridge:
        yield bridge


@pytest.fixture(scope="module")
def api_schema(live: LiveBridge) -> schemathesis.BaseSchema:
    """The bridge's own /openapi.json, loaded over HTTP."""
    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    schema.config.update(base_url=live.url)
    return schema


WITH_INPUT = [("POST", "/v1/messages"), ("GET", "/v1/messages/{id}"), ("POST", "/v1/hooks/{name}"),
              ("POST", "/v1/gateway/{secret}")]
WITHOUT_INPUT = [("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/openapi.json")]
CASES = [(*op, GenerationMode.POSITIVE) for op in WITH_INPUT + WITHOUT_INPUT] + [
    (*op, GenerationMode.NEGATIVE) for op in WITH_INPUT  # an operation without inputs has no invalid request
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=lambda v: str(v))
def test_api_conforms_to_its_openapi_document(api_schema: schemathesis.BaseSchema, method: str, path: str,
                                              mode: GenerationMode) -> None:
    """Generated valid and invalid requests never get a 5xx and every answer matches the document.

    positive_data_acceptance is left out: the schema cannot say which strings are real phone numbers, so a
    schema-valid `to` may rightly be refused with 400.
    """
    strategy = api_schema[path][method].as_strategy(mode)
    if mode is GenerationMode.POSITIVE and path == "/v1/messages":
        strategy = strategy.map(with_real_number)

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {API_KEY}"},
                               excluded_checks=[positive_data_acceptance])

    check()


def with_real_number(case: schemathesis.Case) -> schemathesis.Case:
    """The case with a real phone number in `to`, so valid messages reach the queue (202), not only 400s."""
    if isinstance(case.body, dict) and "to" in case.body:
        case.body["to"] = "+4915752982212" if isinstance(case.body["to"], str) else ["+4915752982212"]
    return case


async def test_openapi_document_is_valid_openapi(tmp_path: Path) -> None:
    """The served document loads as a valid OpenAPI 3 schema with every operation."""
    async with serve_simulator(build_simulator_app()) as sim_url:
        bridge = await start_bridge(write_config(tmp_path, sim_url), start_sender=False)
        try:
            async with aiohttp.ClientSession() as session, session.get(bridge.url + "/openapi.json") as response:
                document = await response.json()
        finally:
            await bridge.close()
    loaded = schemathesis.openapi.from_dict(document)
    labels = sorted(result.ok().label for result in loaded.get_all_operations())
    assert labels == ["GET /healthz", "GET /metrics", "GET /openapi.json", "GET /v1/messages/{id}",
                      "POST /v1/gateway/{secret}", "POST /v1/hooks/{name}", "POST /v1/messages"]
