"""Builds the whole bridge from a config and runs it: the one place where the parts are wired together."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import aiohttp
from aiohttp import web
from aiohttp.web_runner import GracefulExit
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bridge import appkeys
from bridge.config import Config, GatewayConfig, Secret
from bridge.dashboard import setup_dashboard
from bridge.delivery import DeliveryWorker
from bridge.eventloop import LoopFactory, loop_name
from bridge.gateway.client import GatewayClient
from bridge.gateway.simulator import build_simulator_app, serve_simulator
from bridge.leadership import Leadership
from bridge.metrics import Metrics
from bridge.pipeline import Pipeline
from bridge.poller import Poller
from bridge.rules import Router
from bridge.sender import Sender
from bridge.server import setup_api
from bridge.store import StoreError, held, open_store
from bridge.templating import TemplateEngine

log = logging.getLogger(__name__)

class CannotStart(Exception):
    """Something the bridge needs at start is unavailable: `run` prints the message and exits 1."""


def build_app(config: Config, *, clock: Callable[[], float] = time.time) -> web.Application:
    """The bridge as an aiohttp application: HTTP API, poller, sender and delivery, started by its cleanup context."""
    app = web.Application(client_max_size=config.server.max_request_bytes)
    app[appkeys.CONFIG] = config
    app[appkeys.METRICS] = Metrics()
    app[appkeys.TEMPLATES] = TemplateEngine(config.templates_dir, default_region=config.gateway.default_region)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_http_ctx)
    app.cleanup_ctx.append(_upstream_ctx)
    app.cleanup_ctx.append(_workers_ctx(clock))
    setup_api(app)
    if config.server.dashboard:
        setup_dashboard(app)
    return app


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    """The database, held against a second bridge on it (before anything is written), open while the app runs."""
    config = app[appkeys.CONFIG]
    with held(config.storage):
        app[appkeys.STORE] = await open_store(config.storage, default_region=config.gateway.default_region)
        yield
        await app[appkeys.STORE].close()


async def _http_ctx(app: web.Application) -> AsyncIterator[None]:
    timeout = aiohttp.ClientTimeout(total=app[appkeys.CONFIG].gateway.timeout)
    app[appkeys.HTTP] = aiohttp.ClientSession(timeout=timeout)
    yield
    await app[appkeys.HTTP].close()


async def _upstream_ctx(app: web.Application) -> AsyncIterator[None]:
    """Point the client at SmsGateway24, or at an in-process simulator when `gateway.simulator` is set."""
    gateway = app[appkeys.CONFIG].gateway
    async with AsyncExitStack() as stack:
        url, email, password = gateway.url, gateway.email, gateway.password
        if gateway.simulator is not None:
            email, password = gateway.simulator_login()
            simulator = _simulator_for(gateway, email, password, await app[appkeys.STORE].highest_sms_id())
            try:
                url = await stack.enter_async_context(
                    serve_simulator(simulator, gateway.simulator.host, gateway.simulator.port))
            except OSError as exc:
                raise CannotStart(f"cannot listen on {gateway.simulator.host}:{gateway.simulator.port} "
                                  f"(gateway.simulator.listen): {os.strerror(exc.errno) if exc.errno else exc}") from None
            log.info("simulator: SmsGateway24 simulator running in-process at %s", url)
        app[appkeys.GATEWAY_URL] = url
        app[appkeys.GATEWAY] = GatewayClient(
            app[appkeys.HTTP], url, email=email, password=password, token=gateway.token,
            account_tz=gateway.timezone, timeout=gateway.timeout,
        )
        yield


def _simulator_for(gateway: GatewayConfig, email: str, password: Secret, ids_after: int | None
                   ) -> web.Application:
    """The in-process simulator: its ids continue above every SMS id the store already holds."""
    sim = gateway.simulator
    assert sim is not None
    return build_simulator_app(
        timezone=gateway.timezone, email=email, password=password.reveal(),
        token=gateway.token.reveal() if gateway.token else None,
        pace=sim.pace, failure_rate=sim.failure_rate, inbound_every=sim.inbound_every, ids_after=ids_after,
    )


def _workers_ctx(clock: Callable[[], float]) -> Callable[[web.Application], AsyncIterator[None]]:
    """The cleanup context of the poller, its scheduler, the sender and the delivery worker."""

    async def workers(app: web.Application) -> AsyncIterator[None]:
        config = app[appkeys.CONFIG]
        store, gateway, metrics = app[appkeys.STORE], app[appkeys.GATEWAY], app[appkeys.METRICS]
        engine = app[appkeys.TEMPLATES]
        router = Router.for_config(config, engine)
        sender = Sender(config, store, gateway, metrics, clock)
        delivery = DeliveryWorker(config, store, app[appkeys.HTTP], engine, gateway, metrics, clock)
        pipeline = Pipeline(store, router, config.safety, metrics, clock,
                            default_region=config.gateway.default_region)
        pipeline.on_sends = sender.wake
        pipeline.on_deliveries = delivery.wake
        pipeline.learn_ids = sender.learn_listed
        leadership = Leadership(store, config.storage.lease)
        poller = Poller(config, store, gateway, pipeline, metrics, clock, leadership)
        app[appkeys.SENDER], app[appkeys.DELIVERY], app[appkeys.POLLER] = sender, delivery, poller
        await poller.mark_start()
        scheduler = AsyncIOScheduler()
        poller.schedule(scheduler)
        await leadership.renew()
        leadership.on_elected = poller.poll_soon
        renewing = asyncio.create_task(leadership.run(), name="leadership")
        await sender.start()
        await delivery.start()
        scheduler.start()
        yield
        scheduler.pause()
        renewing.cancel()
        await asyncio.gather(renewing, return_exceptions=True)
        await poller.stop()
        scheduler.shutdown(wait=False)
        await sender.stop()
        await delivery.stop()
        await leadership.release()
    return workers


def run(config: Config, loop_factory: LoopFactory | None = None) -> int:
    """Run the bridge until SIGINT or SIGTERM, on the event loop `loop_factory` makes (asyncio's own when None);
    returns the process exit code (1 when it cannot start)."""
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(_serve(build_app(config), config))
    except (GracefulExit, KeyboardInterrupt):
        pass
    except (StoreError, CannotStart) as exc:
        print(f"sms-bridge: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        server = config.server
        print(f"sms-bridge: cannot listen on {server.host}:{server.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


def app_runner(app: web.Application, config: Config, *, handle_signals: bool = False,
               shutdown_timeout: float = 10.0) -> web.AppRunner:
    """The runner serving `app`: a connection must deliver a whole request's headers within server.read_timeout
    (from its start, or from the previous answer), so a client dribbling them is cut off (the body has its own
    bound, in the handlers that read it)."""
    return web.AppRunner(app, handle_signals=handle_signals, access_log=None, shutdown_timeout=shutdown_timeout,
                         keepalive_timeout=config.server.read_timeout)


async def _serve(app: web.Application, config: Config) -> None:
    """Start everything, listen when the server is enabled, and wait for a signal; then stop gracefully."""
    runner = app_runner(app, config, handle_signals=True)
    try:
        await runner.setup()
    except BaseException:
        await runner.cleanup()  # closes what started before the failure (the store's thread would keep us alive)
        raise
    log.info("bridge: running on the %s event loop", loop_name(asyncio.get_running_loop()))
    try:
        server = config.server
        if server.enabled:
            await web.TCPSite(runner, server.host, server.port).start()
            log.info("http: listening on http://%s:%s", server.host, server.port)
            if server.example_key_exposed:
                log.warning("http: the API accepts the example key of rules.yaml.example on %s, which other machines "
                            "can reach: anyone there can send SMS; set BRIDGE_API_KEY (server.api_keys) to a secret "
                            "of your own", server.host)
        await asyncio.Event().wait()
    finally:
        log.info("bridge: stopping")
        await runner.cleanup()
