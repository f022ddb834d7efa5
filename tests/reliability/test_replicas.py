"""Three `sms-bridge run` replicas on one PostgreSQL, the leader SIGKILLed or paused while SMS and sends flow.

The promises checked once the replicas have caught up: every incoming SMS gave exactly one `sms.received`
event, which reached the webhook receiver (exactly once by webhook-id); every send answered 202 (the clients
retry on another replica with the same Idempotency-Key) went out exactly once; no SMS went out twice; never
two replicas led at once, and a follower took over polling within `storage.lease` plus one poll interval (plus
the checks' own latency) each time; a leader paused past its lease (even inside a write transaction, holding
every replica's writes up) was replaced, and once resumed committed nothing of the poll it was in (the fencing
token).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from ports import free_port
from reliability_support import RECIPIENTS, Traffic, caught_up, check_promises, traffic_running
from running_bridge import API_KEY, BridgeProcess, write_bridge_config
from simulator_control import SimulatorControl
from waiting import eventually
from webhook_sink import Sink

from bridge.server import utc_iso

SEED = int(os.environ.get("REPLICA_SEED", "20261202"))
KILLS = 10
REPLICAS = ("r0", "r1", "r2")
LEASE, POLL_INTERVAL = 2.0, 0.2
CHECK_SLACK = 0.5  # the test's own polling of /healthz, and the first poll running late on a busy machine
# A leader paused inside a write transaction holds every replica's writes up until one ends its session, a lease
# later: the writes queued meanwhile go before the new leader's first poll.
HELD_UP_SLACK = 1.5
pytestmark = pytest.mark.slow


def replica_config(directory: Path, sim_url: str, sink_url: str, postgres_url: str) -> tuple[Path, str]:
    """A replica's rules.yaml on PostgreSQL with a short lease, and the URL it serves on."""
    directory.mkdir()
    port = free_port()
    path = write_bridge_config(directory, sim_url, port=port, overlap="5s", postgres_url=postgres_url,
                               storage=f"lease: {LEASE:g}s", sink_url=sink_url)
    return path, f"http://127.0.0.1:{port}"


async def role_of(session: aiohttp.ClientSession, url: str) -> str | None:
    """The role a replica's /healthz reports, or None while it does not answer."""
    try:
        async with session.get(f"{url}/healthz", timeout=aiohttp.ClientTimeout(total=1)) as response:
            return (await response.json()).get("role")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return None


@dataclass
class ReplicaTraffic(Traffic):
    """The crash loop's traffic, each send with an Idempotency-Key, retried on another replica on error."""

    urls: list[str] = field(default_factory=list)

    async def send(self, n: int) -> None:
        """One API send; retried (same key) on the next replica while it fails; recorded when answered 202."""
        numbers, body = RECIPIENTS[: 1 + n % 2], f"api send {n}"
        for attempt in range(6):
            url = self.urls[(n + attempt) % len(self.urls)]
            try:
                async with self.session.post(
                        f"{url}/v1/messages", json={"to": list(numbers), "body": body},
                        headers={"Authorization": f"Bearer {API_KEY}", "Idempotency-Key": f'"send-{n}"'},
                        timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 202:
                        self.accepted.append(((await response.json())["id"], numbers, body))
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)  # a client's back-off before its retry, not a wait for a condition


class Replicas:
    """The replica processes, the test's view of who leads, and the database they share."""

    def __init__(self, processes: list[BridgeProcess], session: aiohttp.ClientSession, postgres_url: str) -> None:
        self.processes, self.session, self.postgres_url = processes, session, postgres_url

    async def leader(self, timeout: float = 30.0) -> BridgeProcess:
        """The one replica reporting role leader (waited for, bounded)."""
        found: list[BridgeProcess] = []

        async def one_leads() -> bool:
            roles = [await role_of(self.session, p.url) if p.process else None for p in self.processes]
            found[:] = [p for p, role in zip(self.processes, roles) if role == "leader"]
            return len(found) == 1

        await eventually(one_leads, timeout=timeout, what="exactly one replica to lead", interval=0.05)
        return found[0]

    async def takeover_after(self, gone: BridgeProcess, since: float, slack: float = CHECK_SLACK) -> float:
        """Seconds from `since` (monotonic) until another replica leads and has polled since (bounded by the
        lease, a poll interval and `slack`)."""
        others = [p for p in self.processes if p is not gone]
        since_iso = utc_iso(math.floor(time.time() - (time.monotonic() - since)))

        async def taken_over() -> bool:
            leaders = []
            for replica in others:
                async with self.session.get(f"{replica.url}/healthz") as response:
                    health = await response.json()
                if health.get("role") == "leader":
                    leaders.append(health["poller"]["last_success"])
            assert len(leaders) <= 1, "two replicas led at once"
            return any(polled is not None and polled >= since_iso for polled in leaders)

        bound = LEASE + POLL_INTERVAL + slack
        await eventually(taken_over, timeout=bound, what="a follower to take over polling", interval=0.02)
        return time.monotonic() - since

    async def rows(self, sql: str) -> list[asyncpg.Record]:
        """Rows of one query on the shared database."""
        db = await asyncpg.connect(self.postgres_url)
        try:
            return list(await db.fetch(sql))
        finally:
            await db.close()

    async def received_events(self) -> dict[int, list[str]]:
        """The ids of the sms.received events recorded for each incoming SMS id."""
        events: dict[int, list[str]] = {}
        for row in await self.rows("SELECT id, payload FROM events WHERE type = 'sms.received'"):
            events.setdefault(json.loads(row["payload"])["sms"]["id"], []).append(row["id"])
        return events

    async def pending_work(self) -> list[str]:
        """Recipient and outbox states that still wait for something."""
        rows = await self.rows(
            "SELECT state FROM recipients WHERE state IN ('queued', 'submitting', 'in_doubt') "
            "UNION ALL SELECT 'outbox ' || state FROM outbox WHERE state = 'pending'")
        return [row[0] for row in rows]

    async def settled(self, sink: Sink, traffic: Traffic) -> None:
        """Wait (bounded) until the replicas have caught up with everything the traffic caused."""
        await caught_up(traffic, sink, self.received_events, self.pending_work, timeout=60)


@pytest.fixture
async def replicas(tmp_path: Path, sim: SimulatorControl, sink: Sink, session: aiohttp.ClientSession,
                   postgres_url: str):
    """Three replica processes on one fresh PostgreSQL database, posting to the webhook sink, started and stopped
    around the test."""
    processes = []
    logs = []
    for name in REPLICAS:
        config, url = replica_config(tmp_path / name, sim.url, sink.url, postgres_url)
        logs.append((tmp_path / f"{name}.log").open("ab"))
        processes.append(BridgeProcess(config, url, logs[-1]))
    try:
        for process in processes:
            await process.start(session)
        yield Replicas(processes, session, postgres_url)
    finally:
        for process in processes:
            if process.process is not None:
                process.process.send_signal(signal.SIGCONT)
            await process.stop()
        for log in logs:
            log.close()


async def test_sigkill_of_the_leader_loses_nothing_and_repeats_nothing(
        replicas: Replicas, sink: Sink, sim: SimulatorControl, session: aiohttp.ClientSession) -> None:
    """Ten SIGKILLs of the leading replica at random moments: a follower takes over within the lease plus a
    poll interval each time, every event is delivered once by id, every 202 is sent exactly once."""
    rng = random.Random(SEED)
    traffic = ReplicaTraffic(sim, session, replicas.processes[0].url, rng, urls=[p.url for p in replicas.processes])
    takeovers = []
    async with traffic_running(traffic):
        for _ in range(KILLS):
            leader = await replicas.leader()
            await asyncio.sleep(rng.uniform(0.0, 1.0))  # the random moment of the kill
            killed_at = time.monotonic()
            await leader.kill()
            takeovers.append(await replicas.takeover_after(leader, killed_at))
            await leader.start(session)
    print("takeover times after SIGKILL of the leader (s):", " ".join(f"{t:.2f}" for t in takeovers))
    await replicas.settled(sink, traffic)
    check_promises(traffic, sink, await replicas.received_events(), await sim.sent())
    assert len(traffic.accepted) > 20 and len(traffic.inbound) > 50, "too little traffic to prove anything"


async def test_a_paused_leader_commits_nothing_after_it_resumes(
        replicas: Replicas, sink: Sink, sim: SimulatorControl, session: aiohttp.ClientSession) -> None:
    """SIGSTOP the leader past its lease: a follower takes over; on SIGCONT the old leader is a follower and
    nothing is doubled (its interrupted poll is refused by the fencing token)."""
    traffic = ReplicaTraffic(sim, session, replicas.processes[0].url, random.Random(SEED),
                             urls=[p.url for p in replicas.processes])
    async with traffic_running(traffic):
        leader = await replicas.leader()
        assert leader.process is not None
        leader.process.send_signal(signal.SIGSTOP)
        paused_at = time.monotonic()
        await replicas.takeover_after(leader, paused_at, slack=HELD_UP_SLACK)
        await eventually(lambda: time.monotonic() - paused_at > 2 * LEASE, timeout=3 * LEASE, what="the pause")
        leader.process.send_signal(signal.SIGCONT)
        await eventually(lambda: role_of(session, leader.url), timeout=10, what="the resumed replica to answer")
        assert await role_of(session, leader.url) == "follower"
    await replicas.settled(sink, traffic)
    check_promises(traffic, sink, await replicas.received_events(), await sim.sent())
