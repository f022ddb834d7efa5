"""The whole bridge as users run it, next to bare aiohttp baselines measured in the same run (figures, not a test).

Every part runs in a process of its own: `sms-bridge run` (poller, sender, delivery worker and HTTP API
all on, a fresh SQLite file per measurement), the upstream (the bridge's SmsGateway24 simulator, plus a
bench route that stores many inbound SMS at once and a log of the getallsms calls it answered; a fresh one
per measurement, so a poll's window holds that measurement's traffic only), a
webhook sink that answers 204 and notes when each signed webhook arrived, a bare aiohttp server that
only answers 202, and this process, the load generator.

1. API: 64 keep-alive clients POST 4,000 sends to /v1/messages (a 100-number rota), then the same to
   the bare 202 handler: requests/s, their ratio, p99 latency. The bridge's sender hands every accepted
   recipient upstream; the run checks that the upstream got each exactly once.
2. Pipeline: 2,000 inbound SMS appear upstream at once; a rule forwards each to the sink as a signed
   webhook. Events/s counts from the start of the poll that fetched them to the arrival of the last
   webhook; the sink must see 2,000 distinct webhook ids (one event per SMS). The baseline is a bare
   aiohttp POST loop sending the same number of signed bodies, with the webhook's concurrency, to the
   same sink.
3. API on a device pool: the same load as 1, with 50 phones in the account and a `pool:` of SIM 0 of each
   (sticky placement, no limits), next to figure 1 of the same round and its bare 202 rate: what the
   device count costs a send. The run checks that the upstream got each send exactly once and each number's
   sends on the member sticky placement names for it, and reports the fewest and most sends a member took,
   and the sender's own getallsms lookups (it looks ids up per device when no poll taught them).
4. API sustained: the load of 1 five times over (20,000 sends), so that the upstream's window and the sends
   in flight grow as under hours of traffic: a cost that grows with them shows here, not in figure 1.

    python bench/whole_bridge.py [--rounds 3] [--requests 4000] [--clients 64] [--inbound 2000] [--json]
                                 [--stored N] [--loop auto|asyncio|uvloop] [--poll-interval 2s] [--profile DIR]
                                 [--devices 50] [--sustained 5]

`--stored N` starts each bridge with N old messages in its store (the scale figures); `--loop` is the bridge's
`run --loop` (auto, the default, takes uvloop where it is installed, as `sms-bridge run` does), to weigh it;
`--profile DIR` records py-spy profiles of the bridge under load; `--devices N` sizes the pool of figure 3 and
`--sustained K` the load of figure 4, in figure 1's (0 leaves either out).

The API figures and the pipeline's also give the bridge process's CPU time per send, from the first request
until the upstream has every send, and per event, from the inbound SMS appearing until the last webhook: a
cost that other work on the machine moves far less than it moves the rates. `cpu` counts every thread,
`loop_cpu` the event loop's alone (HTTP, JSON, rules, the sender, the poller; SQLite's statements run in a
thread of their own). Everything but SQLite's statements waits for that one thread, so `loop_bound_ratio`,
(1 / loop_cpu) over the bare rate, is the most the ratio could be with that thread busy all the time.

Each round measures every figure once, baselines and bridge back to back; the figures are the medians over
the rounds, and each row's `spread` gives the lowest and highest round.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.eventloop import EVENT_LOOPS, loop_factory
from bridge.gateway.simulator import SIMULATOR, build_simulator_app
from bridge.pool import Member, sticky_order
from deliver import _bodies, run_bare
from http_api import API_KEY, ON_CALL, TEXT, _response_status, _split, bare_202, percentile, stdin_closed
from poll import fill_store

from bridge.store import SqliteStore

EMAIL, PASSWORD, ZONE = "demo@example.com", "demo", "Europe/Paris"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
DEVICE = 1576
CONCURRENCY = 16  # the webhook's deliveries in flight (the config default)
SUSTAINED = 5  # figure 4's load, in figure 1's
POOL_DEVICES = 50  # phones in the account of figure 3, each SIM a pool member
POLL_INTERVAL = "2s"
TARGET_API_RATIO = 0.40
TARGET_P99_MS = 40.0
TARGET_PIPELINE_RATIO = 0.50
READY_WITHIN = 30.0  # seconds a child process may take to start
DRAIN_WITHIN = 120.0  # seconds the bridge may take to hand every accepted send upstream, or to deliver every event
CHECK_EVERY = 0.05
CONFIG_YAML = """\
gateway:
  url: {upstream}
  email: {email}
  password: {password}
  device_id: {device}
  timezone: {zone}
  default_region: DE
poll:
  interval: {interval}
storage:
  {storage}
server:
  listen: 127.0.0.1:{port}
  api_keys: ["{key}"]
webhooks:
  sink:
    url: {sink}/hook
    secret: {secret}
    concurrency: {concurrency}
rules:
  - name: forward
    match: {{event: inbound}}
    actions: [{{webhook: sink}}]
{pool}"""


# --- child processes: upstream, sink, bare 202 ----------------------------------------------------


def upstream_app() -> web.Application:
    """The simulator, with POST /bench/inbound {"count"} (stored at once), GET /bench/polls (the monotonic
    start of each getallsms window request without filters, as the poller makes them), GET /bench/calls (the
    calls answered: getallsms by its filter, getalldevices), POST /bench/devices {"count"} (phones added until
    the account has that many; answers the ids of that many) and GET /bench/sent (what the upstream took:
    counts, per member, and the members each number went out on)."""
    app = build_simulator_app(timezone=ZONE, email=EMAIL, password=PASSWORD, pace=1.0, seed=1)
    polls: list[float] = []
    calls: Counter[str] = Counter()

    @web.middleware
    async def note_polls(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        started = time.monotonic()
        if request.path == "/getdata/getallsms":
            fields = {**request.query, **(await request.post() if request.method == "POST" else {})}
            kind = next((f"getallsms_by_{name}" for name in ("customerid", "device_id") if name in fields), None)
            calls[kind or "getallsms_window"] += 1
            if kind is None:
                polls.append(started)
        elif request.path == "/getdata/getalldevices":
            calls["getalldevices"] += 1
        return await handler(request)

    async def inbound(request: web.Request) -> web.Response:
        count = int((await request.json())["count"])
        sim = request.app[SIMULATOR]
        for n in range(count):
            sim.add_inbound(f"+49176{n:08d}", f"INFO order {n} please", DEVICE)
        return web.json_response({"at": time.monotonic()})

    async def devices(request: web.Request) -> web.Response:
        count, sim = int((await request.json())["count"]), request.app[SIMULATOR]
        while len(sim.devices) < count:
            sim.add_device()
        return web.json_response(sorted(sim.devices)[:count])

    async def sent(request: web.Request) -> web.Response:
        listed = request.app[SIMULATOR].sent()[int(request.query.get("since", "0")):]
        places: dict[str, set[str]] = {}
        for s in listed:
            places.setdefault(s["sendto"], set()).add(f"{s['device_id']}:{s['sim']}")
        return web.json_response({"sent": len(listed), "distinct": len({(s["sendto"], s["body"]) for s in listed}),
                                  "members": Counter(f"{s['device_id']}:{s['sim']}" for s in listed),
                                  "places": {number: sorted(p) for number, p in places.items()}})

    app.middlewares.append(note_polls)
    app.router.add_post("/bench/inbound", inbound)
    app.router.add_post("/bench/devices", devices)
    app.router.add_get("/bench/polls", lambda request: web.json_response(polls))
    app.router.add_get("/bench/calls", lambda request: web.json_response(calls))
    app.router.add_get("/bench/sent", sent)
    return app


def sink_app() -> web.Application:
    """Answers every webhook 204 and keeps (arrival, webhook-id, signed) of each; GET /bench/received."""
    arrivals: list[tuple[float, str, bool]] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        arrivals.append((time.monotonic(), request.headers.get("webhook-id", ""),
                         request.headers.get("webhook-signature", "").startswith("v1,")))
        return web.Response(status=204)

    async def received(request: web.Request) -> web.Response:
        since = float(request.query.get("since", "0"))
        mine = [a for a in arrivals if a[0] >= since]
        return web.json_response({"count": len(mine), "distinct": len({a[1] for a in mine}),
                                  "signed": sum(a[2] for a in mine), "last": max((a[0] for a in mine), default=None)})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/bench/received", received)
    return app


def bare_app() -> web.Application:
    """Only answers 202: the floor any handler pays in aiohttp."""
    app = web.Application()
    app.router.add_post("/v1/messages", bare_202)
    return app


def serve(mode: str) -> None:
    """Serve `mode` on a free port, print the port, and serve until stdin closes."""
    app = {"upstream": upstream_app, "sink": sink_app, "bare": bare_app}[mode]()

    async def main() -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(runner.addresses[0][1], flush=True)
        await stdin_closed()
        await runner.cleanup()

    asyncio.run(main())


class Child:
    """A server child process of one mode: its URL while it runs."""

    def __init__(self, mode: str) -> None:
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", mode],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    def stop(self) -> None:
        """Close its stdin and wait for it to end."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(30)


@dataclass(frozen=True, slots=True)
class Setup:
    """How each bridge of a run is started: its event loop, the store it starts from, its poll interval, and
    the PostgreSQL database it shares with other replicas instead of an SQLite file of its own."""

    loop: str = "auto"
    seed: Path | None = None
    interval: str = POLL_INTERVAL
    database_url: str | None = None


@contextlib.contextmanager
def fresh_upstream() -> Iterator[Child]:
    """An upstream process of its own for one measurement."""
    upstream = Child("upstream")
    try:
        yield upstream
    finally:
        upstream.stop()


class Bridge:
    """`sms-bridge run` in its own process, on a fresh database, against the upstream and the sink."""

    def __init__(self, directory: Path, upstream: str, sink: str, setup: Setup, profile: Path | None,
                 pool: Sequence[int] = ()) -> None:
        port = _free_port()
        config = directory / "rules.yaml"
        db = directory / f"bridge-{time.monotonic_ns()}.db"
        if setup.seed is not None:
            shutil.copyfile(setup.seed, db)
        config.write_text(CONFIG_YAML.format(
            upstream=upstream, email=EMAIL, password=PASSWORD, device=DEVICE, zone=ZONE, interval=setup.interval,
            storage=f"path: {db}" if setup.database_url is None else f"url: {setup.database_url}",
            port=port, key=API_KEY, sink=sink, secret=SECRET,
            concurrency=CONCURRENCY, pool=pool_yaml(pool)), encoding="utf-8")
        self.log = open(directory / "bridge.log", "ab")
        self.process = subprocess.Popen([sys.executable, "-m", "bridge", "run", "-c", str(config),
                                         "--loop", setup.loop],
                                        stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{port}"
        self.profile = profile
        self.profiler: subprocess.Popen[bytes] | None = None

    async def ready(self, session: aiohttp.ClientSession) -> None:
        """Wait until /healthz answers 200 (the first poll went through)."""

        async def healthy() -> bool:
            if self.process.poll() is not None:
                raise SystemExit(f"bench: the bridge exited with status {self.process.returncode}")
            try:
                async with session.get(f"{self.url}/healthz") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await wait_for(healthy, READY_WITHIN, "the bridge to answer /healthz")
        if self.profile is not None:  # from here on: the load, not the start
            self.profiler = subprocess.Popen(
                ["py-spy", "record", "--pid", str(self.process.pid), "--rate", "250", "--format", "raw",
                 "--output", str(self.profile), "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            await asyncio.sleep(0.5)  # py-spy attaches

    def cpu_seconds(self) -> tuple[float, float]:
        """The CPU time (user and system) the bridge process has used so far: in all its threads, and in its
        event loop's thread alone (the main thread; SQLite's statements run in a thread of their own)."""
        return _cpu_seconds(Path(f"/proc/{self.process.pid}")), _cpu_seconds(
            Path(f"/proc/{self.process.pid}/task/{self.process.pid}"))

    def stop(self) -> None:
        """SIGTERM, as a user stops it; it must end on its own."""
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(60)
        self.log.close()
        if self.profiler is not None:
            self.profiler.wait(60)


def pool_yaml(devices: Sequence[int]) -> str:
    """The `pool:` section placing sends (sticky, no limits) on SIM 0 of each of `devices`; none without any."""
    if not devices:
        return ""
    members = "".join(f"    - {{device_id: {device}}}\n" for device in devices)
    return f"pool:\n  strategy: sticky\n  members:\n{members}"


def _cpu_seconds(proc: Path) -> float:
    fields = (proc / "stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_figures(before: tuple[float, float], after: tuple[float, float], count: int) -> dict[str, float]:
    """CPU microseconds per item between two `Bridge.cpu_seconds`: in all threads, and in the event loop's."""
    return {"cpu_us": (after[0] - before[0]) / count * 1e6, "loop_us": (after[1] - before[1]) / count * 1e6}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def wait_for(condition: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    """Wait until `condition()` holds, checking every CHECK_EVERY seconds; give up after `within` seconds."""
    give_up = time.monotonic() + within
    while not await condition():
        if time.monotonic() > give_up:
            raise SystemExit(f"bench: gave up waiting for {what} after {within:g}s")
        await asyncio.sleep(CHECK_EVERY)


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    """GET `url` and return its JSON."""
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


# --- 1. the API ------------------------------------------------------------------------------------


async def post_load(url: str, clients: int, requests: int) -> tuple[float, list[float]]:
    """`clients` keep-alive connections POSTing `requests` sends in all; (requests/s, latencies in ms).

    Raw HTTP/1.1 over asyncio streams: a general-purpose client costs more CPU per request than the server
    under test and would measure itself."""
    host, port, path = _split(url + "/v1/messages")
    head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n"
            "Content-Type: application/json\r\n")
    numbers = iter(range(requests))
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for n in numbers:
                payload = json.dumps({"to": ON_CALL[n % len(ON_CALL)], "body": f"{TEXT} #{n}"}).encode()
                started = time.perf_counter()
                writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                status = await _response_status(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 202:
                    raise SystemExit(f"bench: POST /v1/messages answered HTTP {status}")
        finally:
            writer.close()
            await writer.wait_closed()

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return requests / (time.perf_counter() - began), latencies


async def api_round(session: aiohttp.ClientSession, bare: Child, upstream: Child, sink: Child, clients: int,
                    requests: int, directory: Path, setup: Setup, profile: Path | None) -> dict[str, float]:
    """One bare-202 load and one bridge load of the same shape (no pool: every send on gateway.device_id); the
    bridge must hand each send upstream once."""
    await post_load(bare.url, clients, requests // 10)  # warm-up
    bare_rate, bare_latencies = await post_load(bare.url, clients, requests)
    got = await bridge_load(session, upstream, sink, clients, requests, directory, setup, profile)
    return {**got, "bare_rate": bare_rate, "bare_p99": percentile(bare_latencies, 99),
            "ratio": got["rate"] / bare_rate, "loop_bound": 1e6 / got["loop_us"] / bare_rate}


async def pool_round(session: aiohttp.ClientSession, one_device: dict[str, float], upstream: Child, sink: Child,
                     clients: int, requests: int, devices: int, directory: Path, setup: Setup,
                     profile: Path | None) -> dict[str, float]:
    """The load of `api_round` on a bridge placing sends on a pool of `devices` phones (SIM 0 of each), next to
    `one_device` (that round's figures, and its bare 202 rate)."""
    async with session.post(f"{upstream.url}/bench/devices", json={"count": devices}) as response:
        pool = await response.json()
    got = await bridge_load(session, upstream, sink, clients, requests, directory, setup, profile, pool)
    return {**got, "ratio": got["rate"] / one_device["bare_rate"], "even_share": requests / len(pool),
            "devices": len(pool),
            **{f"one_{key}": one_device[key] for key in ("rate", "p99", "cpu_us", "lookups")}}


async def bridge_load(session: aiohttp.ClientSession, upstream: Child, sink: Child, clients: int, requests: int,
                      directory: Path, setup: Setup, profile: Path | None,
                      pool: Sequence[int] = ()) -> dict[str, float]:
    """A bridge (on a pool of SIM 0 of the devices `pool`, when given) under `post_load` until the upstream has
    every send: requests/s, p99, CPU per send, the sender's own getallsms lookups, and the fewest and most sends
    a pool member took, and how many took any. Stops the bench when the upstream did not get each send exactly
    once, or when a number's sends did not all go out on the member sticky placement names for it."""
    before = (await get_json(session, f"{upstream.url}/bench/sent"))["sent"]
    sent_url = f"{upstream.url}/bench/sent?since={before}"
    bridge = Bridge(directory, upstream.url, sink.url, setup, profile, pool)
    try:
        await bridge.ready(session)
        calls = await get_json(session, f"{upstream.url}/bench/calls")
        cpu = bridge.cpu_seconds()
        rate, latencies = await post_load(bridge.url, clients, requests)

        async def all_sent() -> bool:
            return (await get_json(session, sent_url))["sent"] >= requests

        await wait_for(all_sent, DRAIN_WITHIN, "the sender to hand every accepted send upstream")
        cpu = _cpu_figures(cpu, bridge.cpu_seconds(), requests)
        upstream_sent = await get_json(session, sent_url)
        calls = Counter(await get_json(session, f"{upstream.url}/bench/calls")) - Counter(calls)
    finally:
        bridge.stop()
    if upstream_sent["sent"] != requests or upstream_sent["sent"] != upstream_sent["distinct"]:
        raise SystemExit(f"bench: {requests} sends accepted, the upstream got {upstream_sent}")
    members = [Member(device) for device in pool]
    misplaced = {number: places for number, places in upstream_sent["places"].items()
                 if pool and places != [f"{sticky_order(number, members)[0].device_id}:0"]}
    if misplaced:
        raise SystemExit(f"bench: sends off the member sticky placement names for their number: {misplaced}")
    per_member = [upstream_sent["members"].get(f"{device}:0", 0) for device in pool]
    return {"rate": rate, "p99": percentile(latencies, 99), **cpu,
            "lookups": calls["getallsms_by_customerid"] + calls["getallsms_by_device_id"],
            "member_min": min(per_member, default=requests), "member_max": max(per_member, default=requests),
            "members_used": sum(n > 0 for n in per_member)}


# --- 2. the pipeline -------------------------------------------------------------------------------


async def pipeline_round(session: aiohttp.ClientSession, upstream: Child, sink: Child, inbound: int,
                         directory: Path, setup: Setup, profile: Path | None) -> dict[str, float]:
    """One bare POST loop to the sink and one poll of `inbound` new SMS through the bridge to the sink."""
    bodies = _bodies(inbound)
    await run_bare(f"{sink.url}/hook", bodies[: inbound // 10], CONCURRENCY)  # warm-up
    bare_rate = inbound / await run_bare(f"{sink.url}/hook", bodies, CONCURRENCY)
    bridge = Bridge(directory, upstream.url, sink.url, setup, profile)
    try:
        await bridge.ready(session)
        cpu = bridge.cpu_seconds()
        async with session.post(f"{upstream.url}/bench/inbound", json={"count": inbound}) as response:
            stored_at = (await response.json())["at"]

        async def delivered() -> bool:
            got = await get_json(session, f"{sink.url}/bench/received?since={stored_at}")
            return got["count"] >= inbound

        await wait_for(delivered, DRAIN_WITHIN, f"{inbound} webhooks at the sink")
        cpu = _cpu_figures(cpu, bridge.cpu_seconds(), inbound)
        got = await get_json(session, f"{sink.url}/bench/received?since={stored_at}")
        polls = await get_json(session, f"{upstream.url}/bench/polls")
    finally:
        bridge.stop()
    if got["count"] != inbound or got["distinct"] != inbound or got["signed"] != inbound:
        raise SystemExit(f"bench: {inbound} inbound SMS, the sink got {got}")
    fetched_at = min(at for at in polls if at >= stored_at)
    rate = inbound / (got["last"] - fetched_at)
    return {"bare_rate": bare_rate, "rate": rate, "ratio": rate / bare_rate, **cpu,
            "loop_bound": 1e6 / cpu["loop_us"] / bare_rate}


# --- report ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    """A figure's name, unit, the key of its value and of its baseline in a round, its target, and the test."""

    name: str
    unit: str
    key: str
    baseline: str | None = None
    target: str | None = None
    meets: Callable[[float], bool] | None = None


def api_figures(name: str = "bridge_api") -> tuple[Figure, ...]:
    """Figure 1's figures (or figure 4's, under `name`)."""
    return (
        Figure(f"{name}_sends_per_s", "1/s", "rate", "bare_rate"),
        Figure(f"{name}_to_bare_ratio", "ratio", "ratio", None, f">= {TARGET_API_RATIO:g}",
               lambda v: v >= TARGET_API_RATIO),
        Figure(f"{name}_p99_latency", "ms", "p99", "bare_p99", f"< {TARGET_P99_MS:g}", lambda v: v < TARGET_P99_MS),
        Figure(f"{name}_cpu_per_send", "us", "cpu_us"),
        Figure(f"{name}_loop_cpu_per_send", "us", "loop_us"),
        Figure(f"{name}_loop_bound_ratio", "ratio", "loop_bound"),
    )


API_FIGURES = api_figures()[:3] + (Figure("bare_202_sends_per_s", "1/s", "bare_rate"),) + api_figures()[3:]


def pool_figures(devices: int) -> tuple[Figure, ...]:
    """Figure 3's figures for a pool of `devices` phones; their baselines are figure 1's of the same round."""
    name = f"bridge_api_{devices}_devices"
    return (
        Figure(f"{name}_sends_per_s", "1/s", "rate", "one_rate"),
        Figure(f"{name}_to_bare_ratio", "ratio", "ratio", None, f">= {TARGET_API_RATIO:g}",
               lambda v: v >= TARGET_API_RATIO),
        Figure(f"{name}_p99_latency", "ms", "p99", "one_p99", f"< {TARGET_P99_MS:g}", lambda v: v < TARGET_P99_MS),
        Figure(f"{name}_cpu_per_send", "us", "cpu_us", "one_cpu_us"),
        Figure(f"{name}_fewest_sends_on_a_member", "sends", "member_min", "even_share"),
        Figure(f"{name}_most_sends_on_a_member", "sends", "member_max", "even_share"),
        Figure(f"{name}_members_with_sends", "members", "members_used", "devices"),
        Figure(f"{name}_sender_getallsms_lookups", "calls", "lookups", "one_lookups"),
    )


PIPELINE_FIGURES = (
    Figure("bridge_poll_to_webhooks_per_s", "events/s", "rate", "bare_rate"),
    Figure("bridge_pipeline_to_bare_ratio", "ratio", "ratio", None, f">= {TARGET_PIPELINE_RATIO:g}",
           lambda v: v >= TARGET_PIPELINE_RATIO),
    Figure("bare_aiohttp_posts_per_s", "posts/s", "bare_rate"),
    Figure("bridge_pipeline_cpu_per_event", "us", "cpu_us"),
    Figure("bridge_pipeline_loop_cpu_per_event", "us", "loop_us"),
    Figure("bridge_pipeline_loop_bound_ratio", "ratio", "loop_bound"),
)


def rows(figures: tuple[Figure, ...], rounds: list[dict[str, float]]) -> list[dict[str, Any]]:
    """The figures' rows: median over the rounds, with the lowest and highest round as `spread`."""
    out = []
    for f in figures:
        values = [r[f.key] for r in rounds]
        value = statistics.median(values)
        baseline = None if f.baseline is None else round(statistics.median(r[f.baseline] for r in rounds), 3)
        if f.unit == "ratio":
            baseline = 1.0
        out.append({"figure": f.name, "value": round(value, 3), "unit": f.unit, "baseline": baseline,
                    "target": f.target, "met": None if f.meets is None else f.meets(value),
                    "spread": [round(min(values), 3), round(max(values), 3)]})
    return out


async def seeded_store(path: Path, stored: int) -> Path | None:
    """A database file holding `stored` old messages (seven days' worth, before now), copied for each bridge."""
    if not stored:
        return None
    store = await SqliteStore.open(path)
    try:
        await fill_store(store, stored, time.time() - 3600)
    finally:
        await store.close()
    return path


async def measure(rounds: int, clients: int, requests: int, inbound: int,
                  profiles: Path | None = None, loop: str = "auto", stored: int = 0,
                  interval: str = POLL_INTERVAL, devices: int = POOL_DEVICES,
                  sustained: int = SUSTAINED) -> list[dict[str, Any]]:
    """Start the sink and bare server, run the rounds, and return the figures' rows (with py-spy profiles of
    the bridge in `profiles`, when given; each bridge starts with `stored` old messages; the pool figures with
    `devices` phones, none when 0; the sustained figures with `sustained` times `requests`, none when 0).

    Each bridge gets an upstream of its own, so its poll window holds its own traffic only, not that of the
    measurements before it."""
    children = {mode: Child(mode) for mode in ("sink", "bare")}
    api: list[dict[str, float]] = []
    pooled: list[dict[str, float]] = []
    long: list[dict[str, float]] = []
    pipeline: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            setup = Setup(loop, await seeded_store(Path(tmp) / "seed.db", stored), interval)
            async with aiohttp.ClientSession() as session:
                for n in range(rounds):
                    directory = Path(tmp) / f"round{n}"
                    directory.mkdir()
                    with fresh_upstream() as upstream:
                        api.append(await api_round(session, children["bare"], upstream, children["sink"], clients,
                                                   requests, directory, setup, _profile(profiles, "api", n)))
                    if devices:
                        with fresh_upstream() as upstream:
                            pooled.append(await pool_round(session, api[-1], upstream, children["sink"], clients,
                                                           requests, devices, directory, setup,
                                                           _profile(profiles, f"api-{devices}-devices", n)))
                    if sustained:
                        with fresh_upstream() as upstream:
                            long.append(await api_round(session, children["bare"], upstream, children["sink"],
                                                        clients, requests * sustained, directory, setup,
                                                        _profile(profiles, "api-sustained", n)))
                    with fresh_upstream() as upstream:
                        pipeline.append(await pipeline_round(session, upstream, children["sink"], inbound,
                                                             directory, setup, _profile(profiles, "pipeline", n)))
                    print(f"round {n + 1}: api {api[-1]}, {devices} devices {pooled[-1] if pooled else '-'}, "
                          f"sustained {long[-1] if long else '-'}, pipeline {pipeline[-1]}", file=sys.stderr,
                          flush=True)
    finally:
        for child in children.values():
            child.stop()
    return (rows(API_FIGURES, api) + (rows(pool_figures(devices), pooled) if devices else [])
            + (rows(api_figures("bridge_api_sustained"), long) if sustained else [])
            + rows(PIPELINE_FIGURES, pipeline))


def _profile(directory: Path | None, figure: str, round_: int) -> Path | None:
    return None if directory is None else directory / f"{figure}-{round_ + 1}.txt"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--inbound", type=int, default=2000)
    parser.add_argument("--json", action="store_true", help="print a JSON array of figures")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record py-spy profiles (collapsed stacks) of the bridge in DIR")
    parser.add_argument("--stored", type=int, default=0, metavar="N",
                        help="messages already in each bridge's store (scale figures: 100000, 1000000)")
    parser.add_argument("--poll-interval", default=POLL_INTERVAL, metavar="DURATION",
                        help=f"the bridge's poll.interval (default {POLL_INTERVAL})")
    parser.add_argument("--loop", choices=EVENT_LOOPS, default="auto",
                        help="the bridge's `run --loop` (auto, the default: uvloop where it is installed)")
    parser.add_argument("--devices", type=int, default=POOL_DEVICES, metavar="N",
                        help=f"phones in the pool of the pool figures (default {POOL_DEVICES}; 0: no pool figures)")
    parser.add_argument("--sustained", type=int, default=SUSTAINED, metavar="K",
                        help=f"figure 4's load in --requests (default {SUSTAINED}; 0: no figure 4)")
    parser.add_argument("--serve", choices=("upstream", "sink", "bare"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve)
        return 0
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"bench: the bridge runs on {'uvloop' if loop_factory(args.loop) else 'asyncio'}'s event loop",
          file=sys.stderr)
    figures = asyncio.run(measure(args.rounds, args.clients, args.requests, args.inbound, args.profile,
                                  args.loop, args.stored, args.poll_interval, args.devices, args.sustained))
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for f in figures:
            print(f"{f['figure']}\t{f['value']}\t{f['unit']}\t(rounds {f['spread'][0]}-{f['spread'][1]})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
