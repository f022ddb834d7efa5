"""Helpers of the reliability suites: processes that hold or starve the database, and a whole
bridge (build_app) polling a simulator on 127.0.0.1.

Nothing here sleeps to paper over a race: every wait is for a condition, with a bound (waiting.eventually).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web
from ports import free_port
from waiting import eventually

from bridge.app import app_runner, build_app
from bridge.appkeys import POLLER, STORE
from bridge.config import load_config
from bridge.store import SqliteStore

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


# --- other processes on the database file ---------------------------------------------------------

_HOLD_LOCK = textwrap.dedent("""
    import sqlite3, sys
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    print("locked", flush=True)
    sys.stdin.readline()
    db.execute("ROLLBACK")
    db.close()
""")


@contextlib.contextmanager
def database_locked(path: Path) -> Iterator[None]:
    """Another process holds `BEGIN EXCLUSIVE` on the database at `path` for the duration of the block."""
    with subprocess.Popen([PYTHON, "-c", _HOLD_LOCK, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as holder:
        assert holder.stdout is not None and holder.stdin is not None
        try:
            assert holder.stdout.readline() == "locked\n", "the lock holder did not take the lock"
            yield
        finally:
            holder.stdin.write("\n")
            holder.stdin.flush()
            assert holder.wait(timeout=10) == 0


def run_python(script: str, *args: str, timeout: float = 60.0) -> dict[str, Any]:
    """Run `script` in a fresh interpreter (the project importable) and return the JSON object it prints last."""
    done = subprocess.run([PYTHON, "-c", textwrap.dedent(script), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=REPO)
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def read_db(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query on the database file, through a connection of its own (read-only)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


# --- simulator control over HTTP -----------------------------------------------------------------


class RequestLog:
    """Counts the API calls a simulator app started and finished, per method (its middleware does)."""

    def __init__(self) -> None:
        self.started: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        method = request.match_info.get("method", "") if request.path.startswith("/getdata/") else ""
        self.started[method] += 1
        try:
            return await handler(request)
        finally:
            self.finished[method] += 1

    def settled(self, *methods: str) -> bool:
        """True when every call of `methods` that started has finished (a hung call has run to its end)."""
        return all(self.started[m] == self.finished[m] for m in methods)


@dataclass
class SimulatorControl:
    """The control endpoints of a running simulator (and, when it was built here, its request log)."""

    url: str
    session: aiohttp.ClientSession
    requests: RequestLog = field(default_factory=RequestLog)

    async def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST JSON to /simulator/PATH and return the JSON answer (asserting 200)."""
        async with self.session.post(f"{self.url}/simulator/{path}", json=body or {}) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def get(self, path: str) -> Any:
        """GET /simulator/PATH as JSON (asserting 200)."""
        async with self.session.get(f"{self.url}/simulator/{path}") as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def inbound(self, sender: str, body: str, **extra: Any) -> int:
        """An SMS the phone receives; returns its upstream id."""
        return (await self.post("inbound", {"from": sender, "body": body, **extra}))["sms_id"]

    async def fault(self, mode: str, count: int = 1, methods: list[str] | None = None,
                    hang_seconds: float = 30.0) -> None:
        """Make the next `count` calls (of `methods`) fail in `mode`."""
        await self.post("faults", {"mode": mode, "count": count, "methods": methods, "hang_seconds": hang_seconds})

    async def sent(self) -> list[dict[str, Any]]:
        """What the upstream accepted for sending."""
        return await self.get("sent")

    async def stats(self) -> dict[str, Any]:
        """Calls per method, tokens, pending faults."""
        return await self.get("stats")


# --- a whole bridge polling a simulator -------------------------------------------------------------

API_KEY = "k-reliability-0123456789"
EMAIL, PASSWORD, DEVICE = "demo@example.com", "demo", 1576

_CONFIG = """\
gateway:
  url: {sim_url}
  email: {email}
  password: {password}
  device_id: {device}
  default_region: DE
  timezone: Europe/Paris
  timeout: 500ms
poll:
  interval: 200ms
  overlap: {overlap}
  devices_interval: 2s
  stuck_after: 1h
storage:
  path: {db}
server:
  listen: 127.0.0.1:{port}
  api_keys: ["{key}"]
safety:
  reply_cooldown: 0s
  loop_limit: 1000/1m
"""

HOOK_PATH = "/events"  # where on the sink the bridge posts its webhooks

_WEBHOOK = """\
webhooks:
  sink:
    url: {sink_url}{path}
    timeout: 2s
    retry: [0s, 200ms, 500ms, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]
rules:
  - name: every-inbound
    match: {{event: inbound}}
    actions: [{{webhook: sink}}]
  - name: pong
    match: {{event: inbound, keyword: PING}}
    actions:
      - reply: "pong {{{{ sms.body }}}}"
"""


def write_bridge_config(directory: Path, sim_url: str, *, port: int = 0, overlap: str = "5m",
                        sink_url: str | None = None) -> Path:
    """A rules.yaml in `directory` for a bridge polling `sim_url` every 200 ms with a 500 ms gateway timeout (with a
    sink webhook and a PING reply rule when `sink_url` is given); returns its path."""
    text = _CONFIG.format(sim_url=sim_url, email=EMAIL, password=PASSWORD, device=DEVICE, overlap=overlap,
                          db=directory / "bridge.db", port=port, key=API_KEY)
    if sink_url is not None:
        text += _WEBHOOK.format(sink_url=sink_url, path=HOOK_PATH)
    path = directory / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class RunningBridge:
    """A bridge built by build_app, serving its API on 127.0.0.1."""

    app: web.Application
    url: str
    session: aiohttp.ClientSession

    async def send(self, to: str | list[str], body: str, key: str = API_KEY) -> tuple[int, dict[str, Any]]:
        """POST /v1/messages with API key `key`; returns the status and the JSON answer."""
        async with self.session.post(f"{self.url}/v1/messages", json={"to": to, "body": body},
                                     headers={"Authorization": f"Bearer {key}"}) as response:
            return response.status, await response.json()

    async def message(self, message_id: str, key: str = API_KEY) -> dict[str, Any]:
        """GET /v1/messages/{id} with API key `key`."""
        async with self.session.get(f"{self.url}/v1/messages/{message_id}",
                                    headers={"Authorization": f"Bearer {key}"}) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def received_events(self) -> list[dict[str, Any]]:
        """The JSON of every `sms.received` event, in the order they were recorded (on PostgreSQL, whose rows
        have no rowid: their order on disk, which is insertion order in a table rows are only appended to)."""
        store = self.app[STORE]
        order = "rowid" if isinstance(store, SqliteStore) else "created_ts, ctid"
        rows = await store.fetch_all(f"SELECT payload FROM events WHERE type = 'sms.received' ORDER BY {order}")
        return [json.loads(row[0]) for row in rows]

    async def received_ids(self) -> list[int]:
        """The sms ids of every `sms.received` event, in the order they were recorded (repeats kept)."""
        return [event["sms"]["id"] for event in await self.received_events()]

    def poller_ok_since(self, moment: float) -> bool:
        """True once a poll succeeded at or after `moment` (the bridge's clock)."""
        last = self.app[POLLER].health().last_success_ts
        return last is not None and last >= moment


def simulated_config(directory: Path, name: str, server: str = "") -> Path:
    """A config NAME.yaml of its own (ports, in-process simulator) over the shared ./bridge.db in `directory`;
    `server` adds lines under server:."""
    config = directory / f"{name}.yaml"
    extra = "".join(f"  {line}\n" for line in server.splitlines())
    config.write_text(
        f"gateway:\n  device_id: 1576\n  simulator: {{inbound_every: 0, listen: '127.0.0.1:{free_port()}'}}\n"
        f"server:\n  listen: 127.0.0.1:{free_port()}\n  api_keys: [{API_KEY}]\n{extra}"
        "storage:\n  path: ./bridge.db\n", encoding="utf-8")
    return config


@contextlib.asynccontextmanager
async def running_bridge(config_path: Path, session: aiohttp.ClientSession,
                         clock: Callable[[], float] | None = None) -> AsyncIterator[RunningBridge]:
    """Load the config, build the bridge with build_app and serve it on a free port until the block ends."""
    config = load_config(config_path, env={})
    app = build_app(config, clock=clock or time.time)
    runner = app_runner(app, config, shutdown_timeout=1.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield RunningBridge(app, f"http://127.0.0.1:{runner.addresses[0][1]}", session)
    finally:
        await runner.cleanup()


def count_sent(sent: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many times the upstream accepted each (number, text)."""
    return Counter((row["to"], row["body"]) for row in sent)


# --- `sms-bridge run` processes and the traffic they serve ------------------------------------------------

SENDERS = ("+4917642111111", "+33612345678", "+14155550123")
RECIPIENTS = ("+4915752982212", "+4915752982213")


@dataclass
class BridgeProcess:
    """`python -m bridge run -c CONFIG` as a child process, its output appended to a log file."""

    config: Path
    url: str
    log: IO[bytes]
    process: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        """Start the bridge process (it is not serving yet)."""
        self.process = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "bridge", "run", "-c", str(self.config), "--log-level", "warning",
            stdout=self.log, stderr=asyncio.subprocess.STDOUT, cwd=REPO)

    async def start(self, session: aiohttp.ClientSession) -> None:
        """Start the bridge and wait (bounded) until /healthz answers."""
        await self.spawn()

        async def answers() -> bool:
            assert self.process is not None and self.process.returncode is None, "the bridge exited on start"
            try:
                async with session.get(f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as response:
                    return response.status in (200, 503)
            except (aiohttp.ClientError, TimeoutError):
                return False

        await eventually(answers, timeout=30, what="/healthz of the restarted bridge", interval=0.05)

    async def kill(self) -> None:
        """SIGKILL: no cleanup of any kind runs."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        self.process = None

    async def stop(self) -> None:
        """SIGTERM and wait (bounded); SIGKILL if it does not exit."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.process.wait(), 20)
        except TimeoutError:
            await self.kill()
        self.process = None


@dataclass
class Traffic:
    """Incoming SMS and API sends made while the bridge comes and goes, and what was accepted."""

    sim: SimulatorControl
    session: aiohttp.ClientSession
    url: str
    rng: random.Random
    inbound: list[int] = field(default_factory=list)
    pings: list[tuple[str, str]] = field(default_factory=list)
    accepted: list[tuple[str, tuple[str, ...], str]] = field(default_factory=list)
    in_flight: set[asyncio.Task[None]] = field(default_factory=set)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: every few tens of ms an incoming SMS (every third a PING) and an API send, not awaited."""
        n = 0
        while not stop.is_set():
            n += 1
            sender = SENDERS[n % len(SENDERS)]
            body = f"PING {n}" if n % 3 == 0 else f"hello {n}"
            self.inbound.append(await self.sim.inbound(sender, body))
            if body.startswith("PING"):
                self.pings.append((sender, f"pong {body}"))
            task = asyncio.create_task(self.send(n))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
            await asyncio.sleep(self.rng.uniform(0.03, 0.12))  # traffic pacing, not a wait for anything
        await asyncio.gather(*self.in_flight)

    async def send(self, n: int) -> None:
        """One API send with a unique text; recorded only when answered 202."""
        numbers = RECIPIENTS[: 1 + n % 2]
        body = f"api send {n}"
        try:
            async with self.session.post(f"{self.url}/v1/messages", json={"to": list(numbers), "body": body},
                                         headers={"Authorization": f"Bearer {API_KEY}"},
                                         timeout=aiohttp.ClientTimeout(total=5)) as response:
                if response.status == 202:
                    self.accepted.append(((await response.json())["id"], numbers, body))
        except (aiohttp.ClientError, TimeoutError):
            pass  # the bridge was down or died mid-request: not accepted, so nothing is promised


@asynccontextmanager
async def traffic_running(traffic: Traffic) -> AsyncIterator[None]:
    """Run `traffic` in the background for the duration of the block."""
    stop = asyncio.Event()
    task = asyncio.create_task(traffic.run(stop))
    try:
        yield
    finally:
        stop.set()
        await task
