"""Helpers of the reliability suites: processes that hold or starve the database, the traffic a bridge serves
while it comes and goes, and the promises checked once that traffic has stopped.

Nothing here sleeps to paper over a race: every wait is for a condition, with a bound (waiting.eventually).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
import subprocess
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from repo_paths import REPO
from running_bridge import API_KEY, PYTHON
from simulator_control import SimulatorControl
from waiting import eventually
from webhook_sink import Sink

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


def count_sent(sent: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """How many times the upstream accepted each (number, text)."""
    return Counter((row["to"], row["body"]) for row in sent)


# --- the traffic a bridge serves while it comes and goes -------------------------------------------------

SENDERS = ("+4917642111111", "+33612345678", "+14155550123")
RECIPIENTS = ("+4915752982212", "+4915752982213")


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


# --- the promises checked once the traffic has stopped ----------------------------------------------------


async def caught_up(traffic: Traffic, sink: Sink, events: Callable[[], Awaitable[dict[int, list[str]]]],
                    pending: Callable[[], Awaitable[list[str]]], timeout: float) -> None:
    """Wait (bounded) until every incoming SMS of `traffic` has its events (`events`: their ids by SMS id), each
    delivered to the sink, every accepted send and PING reply went upstream, and nothing waits (`pending`: what
    still waits in the database); the failure names what is still missing."""
    wanted = {(n, body) for _, numbers, body in traffic.accepted for n in numbers} | set(traffic.pings)
    missing: dict[str, set[str]] = {}

    async def done() -> bool:
        received = await events()
        sent = {(row["to"], row["body"]) for row in await traffic.sim.sent()}
        missing.clear()
        missing.update({
            "inbound events": set(map(str, set(traffic.inbound) - set(received))),
            "webhook deliveries": {i for ids in received.values() for i in ids} - set(sink.delivered()),
            "pending work": set(await pending()),
            "upstream sends": set(map(str, wanted - sent)),
        })
        return not any(missing.values())

    def what() -> str:
        still = "; ".join(f"{kind}: {sorted(items)[:5]}" for kind, items in missing.items() if items)
        return f"the bridge to catch up with its traffic (still missing: {still or 'nothing yet'})"

    await eventually(done, timeout=timeout, what=what, interval=0.2)


def check_promises(traffic: Traffic, sink: Sink, events: dict[int, list[str]],
                   sent: list[dict[str, Any]]) -> Counter[tuple[str, str]]:
    """Every incoming SMS gave exactly one event (`events`: their ids by SMS id), which the sink got exactly once
    by webhook-id; no SMS went out twice; every accepted send and PING reply went out. Returns how many times
    each (number, text) went out."""
    assert {sms_id: len(ids) for sms_id, ids in events.items() if len(ids) != 1} == {}, "an SMS gave two events"
    assert set(events) == set(traffic.inbound)
    expected_ids = {ids[0] for ids in events.values()}
    assert set(sink.delivered()) == expected_ids, "the receiver got events it should not, or missed some"
    per_text = count_sent(sent)
    assert {key: n for key, n in per_text.items() if n > 1} == {}, "an SMS went out twice"
    for _, numbers, body in traffic.accepted:
        assert all(per_text[(number, body)] == 1 for number in numbers), f"an accepted send did not go out: {body}"
    assert all(per_text[reply] == 1 for reply in traffic.pings), "a PING got no reply"
    return per_text
