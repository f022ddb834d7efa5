"""Replicas on PostgreSQL next to one process on SQLite: sends/s and deliveries/s, in one run (figures, not a test).

Each setup runs `sms-bridge run` processes as users run them against the same upstream and sink child
processes as bench/whole_bridge.py: one replica on SQLite, one on PostgreSQL, two on one PostgreSQL.

1. Sends: 64 keep-alive clients (split over the replicas) POST 2,000 sends; sends/s counts from the first
   request to the upstream holding every one of them, each exactly once.
2. Deliveries: 1,000 inbound SMS appear upstream at once; deliveries/s counts from the poll that fetched them
   to the last signed webhook at the sink, which must see 1,000 distinct webhook ids.

PostgreSQL is a throwaway cluster (initdb, pg_ctl; as the `postgres` user when run as root), as in the tests.

    python bench/replicas.py [--requests 2000] [--inbound 1000] [--clients 64] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pg_support import PostgresCluster  # noqa: E402  (the tests' throwaway cluster)
from whole_bridge import DRAIN_WITHIN, Bridge, Child, Setup, get_json, post_load, wait_for  # noqa: E402

SETUPS = (("SQLite, 1 process", None, 1), ("PostgreSQL, 1 replica", "pg", 1), ("PostgreSQL, 2 replicas", "pg", 2))


async def start(directory: Path, upstream: Child, sink: Child, database: str | None, count: int,
                session: aiohttp.ClientSession) -> list[Bridge]:
    """`count` bridges on `database` (None: one on a fresh SQLite file), ready."""
    bridges = []
    for n in range(count):
        place = directory / f"replica-{n}-{time.monotonic_ns()}"
        place.mkdir()
        bridges.append(Bridge(place, upstream.url, sink.url, Setup(database_url=database), None))
    for bridge in bridges:
        await bridge.ready(session)
    return bridges


async def sends_per_second(session: aiohttp.ClientSession, upstream: Child, bridges: list[Bridge], clients: int,
                           requests: int) -> float:
    """Sends accepted over the replicas and handed upstream, per second, first request to last handed over."""
    before = (await get_json(session, f"{upstream.url}/bench/sent"))["sent"]
    sent_url = f"{upstream.url}/bench/sent?since={before}"
    began = time.monotonic()
    share = requests // len(bridges)
    await asyncio.gather(*(post_load(b.url, clients // len(bridges), share) for b in bridges))

    async def all_sent() -> bool:
        return (await get_json(session, sent_url))["sent"] >= share * len(bridges)

    await wait_for(all_sent, DRAIN_WITHIN, "every accepted send upstream")
    elapsed = time.monotonic() - began
    got = await get_json(session, sent_url)
    # Each replica's clients send the same texts: `share` distinct ones, each once per replica.
    if got["sent"] != share * len(bridges) or got["distinct"] != share:
        raise SystemExit(f"bench: {share * len(bridges)} sends accepted, the upstream got {got}")
    return got["sent"] / elapsed


async def deliveries_per_second(session: aiohttp.ClientSession, upstream: Child, sink: Child, inbound: int) -> float:
    """Inbound SMS turned into signed webhooks at the sink per second, from the poll that fetched them."""
    async with session.post(f"{upstream.url}/bench/inbound", json={"count": inbound}) as response:
        stored_at = (await response.json())["at"]

    async def delivered() -> bool:
        return (await get_json(session, f"{sink.url}/bench/received?since={stored_at}"))["count"] >= inbound

    await wait_for(delivered, DRAIN_WITHIN, f"{inbound} webhooks at the sink")
    got = await get_json(session, f"{sink.url}/bench/received?since={stored_at}")
    if got["count"] != inbound or got["distinct"] != inbound:
        raise SystemExit(f"bench: {inbound} inbound SMS, the sink got {got}")
    polls = await get_json(session, f"{upstream.url}/bench/polls")
    fetched_at = min(at for at in polls if at >= stored_at)
    return inbound / (got["last"] - fetched_at)


async def measure(requests: int, inbound: int, clients: int) -> list[dict[str, object]]:
    """Every setup's two figures."""
    cluster = PostgresCluster.start()
    upstream, sink = Child("upstream"), Child("sink")
    rows = []
    try:
        with tempfile.TemporaryDirectory() as directory:
            async with aiohttp.ClientSession() as session:
                for name, engine, count in SETUPS:
                    database = None if engine is None else cluster.create_database()
                    bridges = await start(Path(directory), upstream, sink, database, count, session)
                    try:
                        sends = await sends_per_second(session, upstream, bridges, clients, requests)
                        deliveries = await deliveries_per_second(session, upstream, sink, inbound)
                    finally:
                        for bridge in bridges:
                            bridge.stop()
                    rows.append({"setup": name, "sends_per_s": round(sends, 1),
                                 "deliveries_per_s": round(deliveries, 1)})
    finally:
        upstream.stop()
        sink.stop()
        cluster.stop()
    return rows


def figures(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """The rows as bench/run.py's figures, each PostgreSQL figure next to SQLite's as its baseline."""
    keys = ("sqlite_1", "postgresql_1", "postgresql_2")
    out = []
    for measure, unit in (("sends_per_s", "sends/s"), ("deliveries_per_s", "deliveries/s")):
        sqlite = rows[0][measure]
        for key, row in zip(keys, rows):
            out.append({"figure": f"{key}_{measure}", "value": row[measure], "unit": unit,
                        "baseline": None if key == "sqlite_1" else sqlite})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every setup and print the table (or JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--inbound", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = asyncio.run(measure(args.requests, args.inbound, args.clients))
    if args.json:
        print(json.dumps(figures(rows)))
    else:
        print(f"{'setup':<26}{'sends/s':>10}{'deliveries/s':>14}")
        for row in rows:
            print(f"{row['setup']:<26}{row['sends_per_s']:>10}{row['deliveries_per_s']:>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
