"""Poller figures: idle cost against history size, throughput of a big poll, memory with a big store.

    python bench/poll.py [--json]

1. idle poll time (median of many `poll_once` with nothing new) with 1,000 and with 100,000 messages in
   the simulator's history and the store; the ratio should stay <= 1.5 (a poll must not scan history);
2. one poll that finds 10,000 new inbound messages: store + events throughput of `Pipeline.record`
   (best of 3 on fresh stores; target >= 5,000 msg/s), and the whole poll including HTTP and JSON
   parsing, for reference;
3. resident memory (psutil RSS) of a fresh process polling with 1,000,000 messages in its store
   (target < 100 MB); the baseline is the same process with an empty store;
4. a poll with 10,000 outgoing SMS in flight (sent, not final: every poll lists them again), median of a
   few, next to an idle poll of the same bridge before they were sent;
5. with 50 phones in the account, next to the simulator's two: a device check (one getalldevices, every
   device stored, the default every 60 s) and a poll finding 1,000 new inbound SMS spread over the phones
   (one getallsms for the account, whatever the number of phones), medians of a few.

Prints `name<TAB>value<TAB>unit` per figure, or with --json a list of
{"figure", "value", "unit", "baseline", "target", "met"}. The simulator runs in-process on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import psutil

from bridge.config import Config, GatewayConfig, PollConfig, Secret
from bridge.gateway.client import GatewayClient
from bridge.gateway.models import OutgoingSms
from bridge.gateway.simulator import SIMULATOR, Simulator, build_simulator_app, serve_simulator
from bridge.metrics import Metrics
from bridge.pipeline import Pipeline, SmsSeen
from bridge.poller import Poller
from bridge.rules import Router
from bridge.store import SqliteStore, Store
from bridge.templating import TemplateEngine

EMAIL, PASSWORD, ZONE = "demo@example.com", "demo", "Europe/Paris"
IDLE_SIZES = (1_000, 100_000)
IDLE_POLLS = 300
NEW_INBOUND = 10_000
RECORD_RUNS = 3  # the store + events figure is the best of these (as timeit does), on fresh stores
RSS_MESSAGES = 1_000_000
TARGET_IDLE_RATIO = 1.5
TARGET_MSG_PER_S = 5_000
TARGET_RSS_MB = 100
HISTORY_DAYS = 7.0
IN_FLIGHT = 10_000
IN_FLIGHT_POLLS = 9
MANY_DEVICES = 50
DEVICE_CHECKS = 50
SPREAD_INBOUND = 1_000
SPREAD_POLLS = 5


@dataclass
class Bench:
    """An in-process simulator and a bridge polling it."""

    sim: Simulator
    store: Store
    gateway: GatewayClient
    pipeline: Pipeline
    poller: Poller


@asynccontextmanager
async def bench_bridge(db: Path, pace: float = 2.0) -> AsyncIterator[Bench]:
    """A simulator on 127.0.0.1 (statuses step every `pace` seconds) and a store, pipeline and poller on `db`
    (no rules)."""
    app = build_simulator_app(timezone=ZONE, email=EMAIL, password=PASSWORD, pace=pace, seed=1)
    sim = app[SIMULATOR]
    config = Config(gateway=GatewayConfig(email=EMAIL, password=Secret(PASSWORD), timezone=ZONE),
                    poll=PollConfig(interval=15))
    async with serve_simulator(app) as url, aiohttp.ClientSession() as session:
        store = await SqliteStore.open(db)
        try:
            metrics = Metrics()
            router = Router.compile((), TemplateEngine(None), ZONE)
            pipeline = Pipeline(store, router, config.safety, metrics, sim.now)
            gateway = GatewayClient(session, url, email=EMAIL, password=PASSWORD, account_tz=ZONE)
            yield Bench(sim, store, gateway, pipeline, Poller(config, store, gateway, pipeline, metrics, sim.now))
        finally:
            await store.close()


async def fill_store(store: Store, count: int, end: float, first_id: int = 1) -> None:
    """`count` final messages over HISTORY_DAYS ending at `end`, as if polled long ago (one transaction)."""
    step = HISTORY_DAYS * 86400 / count

    def rows():
        for i in range(count):
            created = end - (count - i) * step
            inbound = i % 4 == 0
            yield (first_id + i, "in" if inbound else "out", "+4917642111111", f"History message {i}", 1576, 0,
                   5 if inbound else 7, None, time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(created)),
                   created, created, None)

    async with store.transaction() as db:
        await db.insert_messages(rows())


# --- 1. idle poll against history size ----------------------------------------------------------


async def idle_poll_ms(workdir: Path) -> tuple[float, ...]:
    """Median wall time (ms) of an idle poll for each of IDLE_SIZES messages in the simulator's history and store.

    The bridges are polled in turn, so load from elsewhere on the machine weighs on each alike; the
    simulator's own objects are frozen out of the garbage collector, which is not the bridge's cost.
    """
    async with AsyncExitStack() as stack:
        benches = []
        for size in IDLE_SIZES:
            b = await stack.enter_async_context(bench_bridge(workdir / f"idle{size}.db"))
            b.sim.add_history(size, days=HISTORY_DAYS, end_ago=3600)
            await fill_store(b.store, size, b.sim.now() - 3600, first_id=1)
            await b.poller.poll_once()
            benches.append(b)
        gc.collect()
        gc.freeze()
        samples: list[list[float]] = [[] for _ in benches]
        for _ in range(IDLE_POLLS):
            for b, times in zip(benches, samples):
                started = time.perf_counter()
                result = await b.poller.poll_once()
                times.append(time.perf_counter() - started)
                assert result.ok and result.events == 0
        gc.unfreeze()
    return tuple(1000 * statistics.median(times) for times in samples)


# --- 2. one poll finding 10,000 new messages ----------------------------------------------------


async def big_poll(workdir: Path) -> tuple[float, float]:
    """(store + events msg/s of Pipeline.record, whole-poll msg/s) for one poll finding NEW_INBOUND messages."""
    async with bench_bridge(workdir / "big.db") as b:
        await b.poller.poll_once()
        for i in range(NEW_INBOUND):
            b.sim.add_inbound(f"+49176{i:08d}", f"Message number {i}", created_ago=1)
        started = time.perf_counter()
        result = await b.poller.poll_once()
        whole = time.perf_counter() - started
        assert result.events == NEW_INBOUND, result
    record = min([await record_seconds(workdir / f"record{i}.db") for i in range(RECORD_RUNS)])
    return NEW_INBOUND / record, NEW_INBOUND / whole


async def record_seconds(db: Path) -> float:
    """Seconds `Pipeline.record` takes to store NEW_INBOUND new inbound messages and their events (fresh store)."""
    async with bench_bridge(db) as b:
        await b.poller.poll_once()
        for i in range(NEW_INBOUND):
            b.sim.add_inbound(f"+49176{i:08d}", f"Message number {i}", created_ago=1)
        messages = await b.gateway.get_all_sms(begin=None)
        started = time.perf_counter()
        recorded = await b.pipeline.record([SmsSeen(sms) for sms in messages])
        elapsed = time.perf_counter() - started
        assert len(recorded.events) == NEW_INBOUND
        return elapsed


# --- 3. memory with a million stored messages ---------------------------------------------------


async def rss_child(db: Path) -> None:
    """In a fresh process: poll (idle, then 1,000 new messages) with the store at `db`; print RSS in MB."""
    async with bench_bridge(db) as b:
        await b.poller.check_devices()
        await b.poller.poll_once()
        for i in range(1_000):
            b.sim.add_inbound(f"+49176{i:08d}", f"Message number {i}", created_ago=1)
        for _ in range(10):
            await b.poller.poll_once()
        print(psutil.Process().memory_info().rss / 2**20)


def measure_rss(db: Path) -> float:
    """Resident MB of a fresh process running `rss_child` on `db`."""
    done = subprocess.run([sys.executable, __file__, "--rss-child", str(db)], check=True, capture_output=True,
                          text=True)
    return float(done.stdout.strip().splitlines()[-1])


async def make_big_store(db: Path) -> None:
    """A store holding RSS_MESSAGES messages ending a day ago."""
    store = await SqliteStore.open(db)
    try:
        await fill_store(store, RSS_MESSAGES, time.time() - 86400, first_id=1)
    finally:
        await store.close()


# --- 4. a poll with many SMS in flight -----------------------------------------------------------


async def in_flight_poll_ms(workdir: Path) -> tuple[float, float]:
    """(median ms of an idle poll, median ms of a poll with IN_FLIGHT outgoing SMS pending upstream)."""
    async with bench_bridge(workdir / "in_flight.db", pace=1e9) as b:
        await b.poller.poll_once()
        idle = [await _timed_poll(b) for _ in range(IN_FLIGHT_POLLS)]
        for first in range(0, IN_FLIGHT, 100):
            await b.gateway.add_many_sms(
                [OutgoingSms(f"+49151{n:08d}", f"alert {n}", 1576) for n in range(first, first + 100)])
        await b.poller.poll_once()  # records them (pending): every later poll follows them
        busy = [await _timed_poll(b) for _ in range(IN_FLIGHT_POLLS)]
    return 1000 * statistics.median(idle), 1000 * statistics.median(busy)


async def _timed_poll(b: Bench) -> float:
    started = time.perf_counter()
    assert (await b.poller.poll_once()).ok
    return time.perf_counter() - started


# --- 5. many devices -----------------------------------------------------------------------------


async def device_costs_ms(workdir: Path, phones: int) -> tuple[float, float]:
    """(median ms of a device check, median ms of a poll finding SPREAD_INBOUND new SMS spread over the
    phones) with `phones` phones in the account."""
    async with bench_bridge(workdir / f"devices{phones}.db") as b:
        while len(b.sim.devices) < phones:
            b.sim.add_device()
        await b.poller.check_devices()
        await b.poller.poll_once()
        checks = []
        for _ in range(DEVICE_CHECKS):
            started = time.perf_counter()
            result = await b.poller.check_devices()
            checks.append(time.perf_counter() - started)
            assert result.ok and result.fetched == phones, result
        devices = sorted(b.sim.devices)
        polls = []
        for poll in range(SPREAD_POLLS):
            for i in range(SPREAD_INBOUND):
                b.sim.add_inbound(f"+49176{i:08d}", f"Message {poll}-{i}", devices[i % phones], created_ago=1)
            started = time.perf_counter()
            result = await b.poller.poll_once()
            polls.append(time.perf_counter() - started)
            assert result.events == SPREAD_INBOUND, result
    return 1000 * statistics.median(checks), 1000 * statistics.median(polls)


# --- report -------------------------------------------------------------------------------------


def figure(name: str, value: float, unit: str, baseline: float | None, target: float | None,
           met: bool | None) -> dict[str, object]:
    """One figure of the report."""
    return {"figure": name, "value": round(value, 3), "unit": unit,
            "baseline": None if baseline is None else round(baseline, 3), "target": target, "met": met}


async def run() -> list[dict[str, object]]:
    """Measure every figure."""
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        small, large = await idle_poll_ms(workdir)
        record_rate, whole_rate = await big_poll(workdir)
        empty_rss = measure_rss(workdir / "empty.db")
        await make_big_store(workdir / "million.db")
        big_rss = measure_rss(workdir / "million.db")
        idle_ms, in_flight_ms = await in_flight_poll_ms(workdir)
        few_check, few_poll = await device_costs_ms(workdir, 2)
        many_check, many_poll = await device_costs_ms(workdir, MANY_DEVICES)
    ratio = large / small
    return [
        figure("idle_poll_1k_messages", small, "ms", None, None, None),
        figure("idle_poll_100k_messages", large, "ms", small, None, None),
        figure("idle_poll_ratio_100k_to_1k", ratio, "x", 1.0, TARGET_IDLE_RATIO, ratio <= TARGET_IDLE_RATIO),
        figure("poll_10k_new_store_events", record_rate, "msg/s", None, TARGET_MSG_PER_S,
               record_rate >= TARGET_MSG_PER_S),
        figure("poll_10k_new_whole_poll", whole_rate, "msg/s", None, None, None),
        figure("rss_1m_messages_in_store", big_rss, "MB", empty_rss, TARGET_RSS_MB, big_rss < TARGET_RSS_MB),
        figure("poll_10k_in_flight", in_flight_ms, "ms", idle_ms, None, None),
        figure(f"device_check_{MANY_DEVICES}_devices", many_check, "ms", few_check, None, None),
        figure(f"poll_1k_new_over_{MANY_DEVICES}_devices", many_poll, "ms", few_poll, None, None),
    ]


def main(argv: list[str] | None = None) -> int:
    """Run the bench and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print a JSON array of figures")
    parser.add_argument("--rss-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child is not None:
        asyncio.run(rss_child(args.rss_child))
        return 0
    figures = asyncio.run(run())
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for item in figures:
            print(f"{item['figure']}\t{item['value']}\t{item['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
