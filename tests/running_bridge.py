"""The one whole bridge of the tests: its config (polling a simulator on 127.0.0.1), the bridge as build_app builds
it served in the test's own process, and `sms-bridge run` as a child process.

Nothing here sleeps to paper over a race: every wait is for a condition, with a bound (waiting.eventually).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web
from ports import free_port
from repo_paths import REPO
from waiting import eventually

from bridge.app import app_runner, build_app
from bridge.appkeys import POLLER, STORE
from bridge.config import load_config
from bridge.store import SqliteStore

PYTHON = sys.executable
API_KEY = "k-bridge-test-0123456789"
HOOK_PATH = "/events"  # where on the sink the bridge posts its webhooks, unless told otherwise
RETRY = "[0s, 200ms, 500ms, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]"

_CONFIG = """\
gateway:
  url: {sim_url}
  email: demo@example.com
  password: demo
  device_id: 1576
  default_region: DE
  timezone: Europe/Paris
  timeout: 500ms
poll:
  interval: 200ms
  overlap: {overlap}
  devices_interval: 2s
  stuck_after: 1h
storage:
{storage}
server:
  listen: 127.0.0.1:{port}
  api_keys: ["{key}"]
{server}
safety:
  reply_cooldown: 0s
  loop_limit: 1000/1m
"""

_WEBHOOK = """\
webhooks:
  sink:
    url: {sink_url}{hook_path}
{secret}
    timeout: 2s
    retry: {retry}
rules:
  - name: every-inbound
    match: {{event: inbound}}
    actions: [{{webhook: sink}}]
"""

_PONG = """\
  - name: pong
    match: {{event: inbound, keyword: PING}}
    actions:
      - reply: "pong {{{{ sms.body }}}}"
"""


def _lines(text: str, indent: str) -> str:
    """`text`'s lines, each indented by `indent` (nothing for no text)."""
    return "\n".join(indent + line for line in text.splitlines())


def write_bridge_config(directory: Path, sim_url: str, *, port: int = 0, overlap: str = "5m",
                        postgres_url: str | None = None, storage: str = "", server: str = "",
                        sink_url: str | None = None, hook_path: str = HOOK_PATH,
                        secret: str | None = None, retry: str = RETRY, replies: bool = True,
                        extra: str = "") -> Path:
    """A rules.yaml in `directory` for a bridge polling `sim_url` every 200 ms with a 500 ms gateway timeout, storing
    in directory/bridge.db or, given `postgres_url`, on that PostgreSQL database; `storage` and `server` add lines
    under those keys. Given `sink_url`, each inbound SMS goes to the sink's `hook_path` (signed with `secret`,
    retried on `retry`), with a PING reply rule unless `replies` is False. `extra` YAML is appended (top-level
    sections). Returns the file's path."""
    where = f"url: {postgres_url}" if postgres_url else f"path: {directory / 'bridge.db'}"
    text = _CONFIG.format(sim_url=sim_url, overlap=overlap, storage=_lines(f"{where}\n{storage}", "  "), port=port,
                          key=API_KEY, server=_lines(server, "  "))
    if sink_url is not None:
        text += _WEBHOOK.format(sink_url=sink_url, hook_path=hook_path, retry=retry,
                                secret=f"    secret: {secret}" if secret else "")
        if replies:
            text += _PONG.format()
    path = directory / "rules.yaml"
    path.write_text(text + extra, encoding="utf-8")
    return path


def simulated_config(directory: Path, name: str, server: str = "") -> Path:
    """A config NAME.yaml of its own (ports, in-process simulator) over the shared ./bridge.db in `directory`;
    `server` adds lines under server:."""
    config = directory / f"{name}.yaml"
    config.write_text(
        f"gateway:\n  device_id: 1576\n  simulator: {{inbound_every: 0, listen: '127.0.0.1:{free_port()}'}}\n"
        f"server:\n  listen: 127.0.0.1:{free_port()}\n  api_keys: [{API_KEY}]\n{_lines(server, '  ')}\n"
        "storage:\n  path: ./bridge.db\n", encoding="utf-8")
    return config


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


def run_to_exit(config: Path) -> subprocess.CompletedProcess[str]:
    """`sms-bridge run -c CONFIG` as a child process expected to exit by itself (bounded): its exit code and
    output."""
    return subprocess.run([PYTHON, "-m", "bridge", "run", "-c", str(config)], capture_output=True, text=True,
                          timeout=60, cwd=REPO)


async def spawn_run(config: Path, *options: str, **streams: Any) -> asyncio.subprocess.Process:
    """`sms-bridge run -c CONFIG OPTIONS` started as a child process (not serving yet), its output going to
    `streams` (asyncio.create_subprocess_exec's stdout and stderr)."""
    return await asyncio.create_subprocess_exec(PYTHON, "-m", "bridge", "run", "-c", str(config), *options,
                                                cwd=REPO, **streams)


@contextlib.asynccontextmanager
async def interrupted_run(config: Path, *options: str, **streams: Any) -> AsyncIterator[asyncio.subprocess.Process]:
    """`sms-bridge run -c CONFIG OPTIONS` as a child process for the duration of the block (spawn_run's `streams`),
    then Ctrl-C (SIGINT) and its exit waited for (bounded)."""
    process = await spawn_run(config, *options, **streams)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        await asyncio.wait_for(process.wait(), 30)


async def stderr_until(process: asyncio.subprocess.Process, text: str) -> list[str]:
    """The lines `process` writes to its stderr pipe up to the first that contains `text`, each waited for
    (bounded); the test fails, showing them, if the pipe closes first."""
    assert process.stderr is not None
    lines: list[str] = []
    while not any(text in line for line in lines):
        line = await asyncio.wait_for(process.stderr.readline(), 30)
        assert line, "".join(lines)
        lines.append(line.decode())
    return lines


@dataclass
class BridgeProcess:
    """`python -m bridge run -c CONFIG` as a child process, its output appended to a log file."""

    config: Path
    url: str
    log: IO[bytes]
    process: asyncio.subprocess.Process | None = None

    async def spawn(self) -> None:
        """Start the bridge process (it is not serving yet)."""
        self.process = await spawn_run(self.config, "--log-level", "warning", stdout=self.log,
                                       stderr=asyncio.subprocess.STDOUT)

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
