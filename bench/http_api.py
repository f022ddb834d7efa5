"""Throughput and latency of POST /v1/messages against the durable send queue, next to a bare aiohttp handler.

Each server runs in a process of its own; this process is the load generator (64 concurrent keep-alive
connections for a fixed time). The bridge server is the real API (auth, validation, E.164, group commit into
a SQLite file in WAL mode); the sender is not started, so what is measured is the durable enqueue. The
bare server only answers 202. Requests go to the numbers of a 100-number rota (alerting traffic repeats
its recipients); a third run sends every request to a number never seen before (informational: each one
pays the full phone-number validation). After a run the bridge server counts its queued recipients,
which must equal the 202s the clients saw.

    python bench/http_api.py [--seconds 5] [--clients 64] [--repeat 3] [--json]

Each server is measured `--repeat` times, the runs interleaved, and the median of each figure is reported.

Prints `name<TAB>value<TAB>unit` lines, or with --json a list of
{"figure", "value", "unit", "baseline", "target", "met"}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bridge.appkeys import CONFIG, METRICS, SENDER, STORE, TEMPLATES
from bridge.config import load_config
from bridge.gateway.client import GatewayClient
from bridge.metrics import Metrics
from bridge.sender import Sender
from bridge.server import setup_api
from bridge.store import SqliteStore
from bridge.templating import TemplateEngine

API_KEY = "bench-key-0123456789abcdef"
TEXT = "Disk 91% full on db1"
ON_CALL = [f"+4915752{i:06d}" for i in range(100)]  # an on-call rota: the usual traffic repeats its numbers
TARGET_RATE = 3600.0
TARGET_P99_MS = 40.0
TARGET_RATIO = 0.25
CONFIG_YAML = """\
gateway:
  url: http://127.0.0.1:9
  token: unused
  device_id: 1576
  default_region: DE
storage:
  path: {db}
server:
  api_keys: ["{key}"]
"""


# --- servers (child processes) --------------------------------------------------------------------


async def bare_202(request: web.Request) -> web.Response:
    """Read the body and answer 202: the floor any handler pays in aiohttp."""
    await request.read()
    return web.json_response({"id": "msg_0", "status": "queued"}, status=202)


async def serve(mode: str, directory: Path) -> None:
    """Serve one mode on a free port; print the port, then, when stdin closes, the recipients stored."""
    closers: list[Any] = []
    if mode == "bare":
        app = web.Application()
        app.router.add_post("/v1/messages", bare_202)
    else:
        app, closers = await bridge_app(directory)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(runner.addresses[0][1], flush=True)
    await stdin_closed()
    await runner.cleanup()
    stored = 0
    if mode == "bridge":
        store = app[STORE]
        stored = (await store.fetch_one("SELECT count(*) FROM recipients"))[0]
    for close in reversed(closers):
        await close()
    print(stored, flush=True)


async def bridge_app(directory: Path) -> tuple[web.Application, list[Any]]:
    """The bridge's real API over a fresh SQLite file, its sender not draining."""
    path = directory / "rules.yaml"
    path.write_text(CONFIG_YAML.format(db=directory / "bench.db", key=API_KEY), encoding="utf-8")
    config = load_config(path, env={})
    store = await SqliteStore.open(config.storage.path, config.storage.synchronous)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=config.gateway.timeout))
    gateway = GatewayClient(session, config.gateway.url, token=config.gateway.token)
    metrics = Metrics()
    app = web.Application(client_max_size=config.server.max_request_bytes)
    app[CONFIG], app[STORE], app[METRICS] = config, store, metrics
    app[SENDER] = Sender(config, store, gateway, metrics)
    app[TEMPLATES] = TemplateEngine(config.templates_dir, default_region=config.gateway.default_region)
    setup_api(app)
    return app, [store.close, session.close]


async def stdin_closed() -> None:
    """Wait until the parent closes our stdin."""
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()

    def read() -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(closed.set)

    threading.Thread(target=read, daemon=True).start()
    await closed.wait()


# --- load generator -------------------------------------------------------------------------------


class Server:
    """A server child process of one mode."""

    def __init__(self, mode: str, directory: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", mode, "--dir", str(directory)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}/v1/messages"

    def stop(self) -> int:
        """Stop the server; returns how many recipients it stored."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        stored = int(self.process.stdout.readline())
        self.process.wait(30)
        self.process.stdout.close()
        return stored


def body(i: int, unique: bool) -> bytes:
    """Request body number `i`: to a number of the rota, or to a number never seen before."""
    to = f"+49151{i:08d}" if unique else ON_CALL[i % len(ON_CALL)]
    return json.dumps({"to": to, "body": TEXT}).encode()


async def load(url: str, clients: int, seconds: float, unique: bool = False) -> tuple[float, list[float], int]:
    """Run `clients` keep-alive connections posting for `seconds` (after a 1 s warm-up).

    Returns (requests/s, latencies in ms, 202s). The client speaks HTTP/1.1 over raw asyncio streams: a
    general-purpose client costs more CPU per request than the server under test and would measure itself.
    """
    host, port, path = _split(url)
    head = f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {API_KEY}\r\n" \
           "Content-Type: application/json\r\n"
    sequence = iter(range(10**8))
    latencies: list[float] = []
    accepted = 0
    warm_until = time.perf_counter() + 1.0
    stop_at = warm_until + seconds

    async def client() -> None:
        nonlocal accepted
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while (started := time.perf_counter()) < stop_at:
                payload = body(next(sequence), unique)
                writer.write(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                status = await _response_status(reader)
                if status != 202:
                    raise RuntimeError(f"unexpected HTTP {status}")
                accepted += 1
                if started >= warm_until:
                    latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()
            await writer.wait_closed()

    await asyncio.gather(*(client() for _ in range(clients)))
    return len(latencies) / seconds, latencies, accepted


def _split(url: str) -> tuple[str, int, str]:
    rest = url.removeprefix("http://")
    authority, _, path = rest.partition("/")
    host, _, port = authority.partition(":")
    return host, int(port), "/" + path


async def _response_status(reader: asyncio.StreamReader) -> int:
    """Read one response (status line, headers, Content-Length body) and return its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(lines[0].split()[1])


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0-100) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def measure(mode: str, clients: int, seconds: float, unique: bool = False) -> dict[str, float]:
    """Serve `mode` in a child process and load it."""
    with tempfile.TemporaryDirectory() as directory:
        server = Server(mode, Path(directory))
        try:
            rate, latencies, accepted = asyncio.run(load(server.url, clients, seconds, unique))
        finally:
            stored = server.stop()
    if mode == "bridge" and stored != accepted:
        raise SystemExit(f"bench: {accepted} sends were answered 202 but {stored} are in the store")
    return {"rate": rate, "p50": statistics.median(latencies), "p99": percentile(latencies, 99)}


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over repeated runs (a neighbour's burst of CPU use spoils one run, not all)."""
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def figures(bare: dict[str, float], api: dict[str, float], fresh: dict[str, float]) -> list[dict[str, Any]]:
    """The figures with their baselines and targets."""
    ratio = api["rate"] / bare["rate"]
    rows = [
        ("bare_202_sends_per_s", bare["rate"], "1/s", None, None, None),
        ("bare_202_p50_latency", bare["p50"], "ms", None, None, None),
        ("bare_202_p99_latency", bare["p99"], "ms", None, None, None),
        ("api_sends_per_s", api["rate"], "1/s", bare["rate"], f">= {TARGET_RATE:g}", api["rate"] >= TARGET_RATE),
        ("api_p50_latency", api["p50"], "ms", bare["p50"], None, None),
        ("api_p99_latency", api["p99"], "ms", bare["p99"], f"< {TARGET_P99_MS:g}", api["p99"] < TARGET_P99_MS),
        ("api_to_bare_ratio", ratio, "ratio", 1.0, f">= {TARGET_RATIO:g}", ratio >= TARGET_RATIO),
        ("api_new_numbers_sends_per_s", fresh["rate"], "1/s", api["rate"], None, None),
        ("api_new_numbers_p99_latency", fresh["p99"], "ms", api["p99"], None, None),
    ]
    return [{"figure": name, "value": round(value, 3), "unit": unit, "baseline": None if base is None else
             round(base, 3), "target": target, "met": met} for name, value, unit, base, target, met in rows]


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each server, interleaved; medians reported")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--serve", choices=("bare", "bridge"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.dir))
        return 0
    runs: dict[str, list[dict[str, float]]] = {"bare": [], "api": [], "fresh": []}
    for _ in range(args.repeat):
        runs["bare"].append(measure("bare", args.clients, args.seconds))
        runs["api"].append(measure("bridge", args.clients, args.seconds))
        runs["fresh"].append(measure("bridge", args.clients, args.seconds, unique=True))
    rows = figures(*(median_run(runs[name]) for name in ("bare", "api", "fresh")))
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for row in rows:
            print(f"{row['figure']}\t{row['value']}\t{row['unit']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
