"""Webhook delivery throughput from the outbox, next to a bare aiohttp POST loop (figures, not a test).

Queues N signed webhook deliveries in a fresh store and times the DeliveryWorker sending them all to a local
aiohttp sink (in its own process, so the sink's CPU is not the bridge's), then times a bare aiohttp loop
POSTing the same bodies with the same concurrency to the same sink. The target is a ratio of at least 0.7.

    python bench/deliver.py [--rows 5000] [--concurrency 16] [--rounds 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
from aiohttp import web

from bridge.config import Config, Secret, WebhookConfig
from bridge.delivery import DeliveryWorker
from bridge.events import EventType, SmsFacts, sms_event
from bridge.gateway.client import GatewayClient
from bridge.gateway.models import Status
from bridge.metrics import Metrics
from bridge.signing import signing_key, webhook_headers
from bridge.store import NewDelivery, SqliteStore, Store
from bridge.templating import TemplateEngine, to_json

TARGET_RATIO = 0.7
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
POLL = 0.02  # how often the benchmark looks whether the worker is done


def _serve_sink(sock: socket.socket) -> None:
    """The sink process: answers every POST with 204."""

    async def ok(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/{tail:.*}", ok)
    web.run_app(app, sock=sock, print=None, access_log=None, handle_signals=True)


def _bodies(rows: int) -> list[tuple[str, str, dict]]:
    """(event id, dedupe key, event JSON) for `rows` distinct inbound SMS."""
    created = datetime(2026, 11, 24, 10, 0, tzinfo=timezone.utc)
    out = []
    for n in range(rows):
        facts = SmsFacts(70_000_000 + n, "+4912312312332", "+4915700000000", f"INFO order {n} please",
                         11231, 0, Status.RECEIVED, None, created, None)
        event = sms_event(EventType.RECEIVED, facts, created)
        out.append((event.id, event.dedupe_key, event.to_json()))
    return out


async def _fill(store: Store, bodies: list[tuple[str, str, dict]], target: str) -> None:
    now = time.time()
    async with store.transaction() as db:
        await db.insert_events([(eid, key, "sms.received", json.dumps(payload), now, None)
                                for eid, key, payload in bodies])
        for eid, _, _ in bodies:
            await db.insert_delivery(NewDelivery(eid, "webhook", target, "bench"), now)


async def _wait(done: Callable[[], bool]) -> None:
    while not done():
        await asyncio.sleep(POLL)


async def run_worker(url: str, bodies: list[tuple[str, str, dict]], concurrency: int, workdir: Path) -> float:
    """Seconds for the worker to deliver every row (the store filled beforehand, outside the timing)."""
    store = await SqliteStore.open(workdir / f"bench-{time.monotonic_ns()}.db")
    try:
        await _fill(store, bodies, "sink")
        hook = WebhookConfig(name="sink", url=url, secret=Secret(SECRET), concurrency=concurrency)
        metrics = Metrics()
        async with aiohttp.ClientSession() as session:
            gateway = GatewayClient(session, "http://127.0.0.1:9", token="unused")
            worker = DeliveryWorker(Config(webhooks={"sink": hook}), store, session, TemplateEngine(None),
                                    gateway, metrics)

            def delivered() -> bool:
                value = metrics.registry.get_sample_value(
                    "bridge_deliveries_total", {"target": "sink", "outcome": "delivered"})
                return (value or 0) >= len(bodies)

            started = time.perf_counter()
            await worker.start()
            await _wait(delivered)
            elapsed = time.perf_counter() - started
            await worker.stop()
        return elapsed
    finally:
        await store.close()


async def run_bare(url: str, bodies: list[tuple[str, str, dict]], concurrency: int) -> float:
    """Seconds for `concurrency` plain aiohttp loops to POST every body (signed alike) to the sink."""
    key = signing_key(SECRET)
    timeout = aiohttp.ClientTimeout(total=10)
    queue = list(reversed(bodies))
    async with aiohttp.ClientSession() as session:

        async def loop() -> None:
            while queue:
                eid, _, payload = queue.pop()
                body = to_json({**payload, "rule": "bench"}).encode()
                headers = {"Content-Type": "application/json",
                           **webhook_headers(eid, int(time.time()), body, key)}
                async with session.post(url, data=body, headers=headers, timeout=timeout) as response:
                    await response.read()
                    if response.status >= 300:
                        raise RuntimeError(f"sink answered {response.status}")

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        return time.perf_counter() - started


async def measure(url: str, rows: int, concurrency: int, rounds: int) -> tuple[float, float]:
    """Deliveries/s of the worker and of the bare loop in the round whose ratio is the median.

    Each round runs both back to back after a warm-up, so a slow moment of the machine weighs on both."""
    bodies = _bodies(rows)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        await run_bare(url, bodies[:200], concurrency)
        await run_worker(url, bodies[:200], concurrency, workdir)
        for _ in range(rounds):
            bare = rows / await run_bare(url, bodies, concurrency)
            worker = rows / await run_worker(url, bodies, concurrency, workdir)
            results.append((worker / bare, worker, bare))
    _, worker, bare = sorted(results)[len(results) // 2]
    return worker, bare


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print a JSON array of figures")
    args = parser.parse_args(argv)

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sink = multiprocessing.get_context("fork").Process(target=_serve_sink, args=(sock,), daemon=True)
    sink.start()
    sock.close()
    try:
        worker_rate, bare_rate = asyncio.run(measure(url, args.rows, args.concurrency, args.rounds))
    finally:
        sink.terminate()
        sink.join()

    ratio = worker_rate / bare_rate
    figures = [
        {"figure": "webhook_deliveries_per_s", "value": round(worker_rate, 1), "unit": "deliveries/s",
         "baseline": round(bare_rate, 1), "target": round(TARGET_RATIO * bare_rate, 1),
         "met": ratio >= TARGET_RATIO},
        {"figure": "bare_aiohttp_posts_per_s", "value": round(bare_rate, 1), "unit": "requests/s",
         "baseline": None, "target": None, "met": None},
        {"figure": "delivery_to_bare_ratio", "value": round(ratio, 3), "unit": "ratio",
         "baseline": 1.0, "target": TARGET_RATIO, "met": ratio >= TARGET_RATIO},
    ]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for f in figures:
            print(f"{f['figure']}\t{f['value']}\t{f['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
