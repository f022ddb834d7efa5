"""Dashboard list pages at a million stored messages (figures, not a test).

Fills a fresh store with N messages (half inbound; each with its event, a webhook delivery and one attempt;
each outgoing one with its send), serves the dashboard on 127.0.0.1, signs in, and times each list page over
HTTP (rendering included): the best of a few requests per page. The target is 100 ms a page.

    python bench/dashboard.py [--messages 1000000] [--repeat 5] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

from bridge.appkeys import CONFIG, STORE
from bridge.config import Config, Secret, ServerConfig, WebhookConfig
from bridge.dashboard import setup_dashboard
from bridge.store import SqliteStore

TARGET_MS = 100.0
KEY = "bench-key"
WORDS = "hello order info stop where is my parcel thanks code yes no please call me".split()


def fill(path: Path, count: int) -> None:
    """Write `count` messages over the last year, with their events, deliveries, attempts and sends."""
    rng = random.Random(1)
    start = time.time() - 365 * 86400
    step = 365 * 86400 / count

    def rows():
        for i in range(count):
            ts = start + i * step
            incoming = i % 2 == 1
            status = 5 if incoming else rng.choice((7, 7, 7, 7, 6, 8, 9, 1))
            body = " ".join(rng.choice(WORDS) for _ in range(6)) + f" {i}"
            yield (i + 1, "in" if incoming else "out", f"+4915{rng.randrange(10**7, 10**8)}", body,
                   rng.choice((1576, 1297)), i % 2, status, None, "2026-01-01T00:00:00+00:00", ts, ts, None)

    db = sqlite3.connect(path)
    db.execute("BEGIN")
    db.executemany("INSERT INTO messages (id, direction, number, body, device_id, sim, status, customer_id, created, "
                   "created_ts, updated_ts, due_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows())
    db.execute("INSERT INTO events (id, dedupe_key, type, payload, created_ts, sms_id) SELECT 'evt_' || id, "
               "'k' || id, 'sms.received', '{}', created_ts, id FROM messages")
    db.execute("INSERT INTO outbox (event_id, kind, target, rule, state, attempts, next_attempt_ts, created_ts, "
               "updated_ts) SELECT 'evt_' || id, 'webhook', CASE WHEN id % 3 = 0 THEN 'crm' ELSE 'slack' END, 'r', "
               "CASE WHEN id % 97 = 0 THEN 'dead' ELSE 'delivered' END, 1, created_ts, created_ts, created_ts "
               "FROM messages")
    db.execute("INSERT INTO delivery_attempts (outbox_id, ts, outcome, status, latency_ms) SELECT id, created_ts, "
               "CASE state WHEN 'dead' THEN 'dead' ELSE 'delivered' END, 200, 12.5 FROM outbox")
    db.execute("INSERT INTO sends (id, source, body, created_ts) SELECT printf('msg_%014x', id), 'api', body, "
               "created_ts FROM messages WHERE direction = 'out'")
    db.execute("INSERT INTO recipients (send_id, position, number, state, sms_id, next_attempt_ts, updated_ts) "
               "SELECT printf('msg_%014x', id), 0, number, 'submitted', id, created_ts, created_ts FROM messages "
               "WHERE direction = 'out'")
    db.execute("INSERT INTO opt_outs (number, source, created_ts) SELECT number, 'keyword', created_ts "
               "FROM messages WHERE id % 1000 = 0 ON CONFLICT DO NOTHING")
    db.commit()
    db.close()


async def measure(path: Path, repeat: int, middle: int) -> list[tuple[str, float]]:
    """(page, best milliseconds) for each list page."""
    store = await SqliteStore.open(path)
    hooks = {name: WebhookConfig(name=name, url=f"http://127.0.0.1:9/{name}") for name in ("crm", "slack")}
    app = web.Application()
    app[CONFIG] = Config(server=ServerConfig(api_keys=(Secret(KEY),)), webhooks=hooks)
    app[STORE] = store
    setup_dashboard(app)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    number = (await store.fetch_one("SELECT number FROM messages WHERE id = ?", (middle,)))[0]
    pages = [
        ("overview", "/ui/"),
        ("messages", "/ui/messages"),
        ("messages_older_page", None),
        ("messages_inbound", "/ui/messages?direction=in"),
        ("messages_status_failed", "/ui/messages?status=failed"),
        ("messages_device", "/ui/messages?device=1297"),
        ("messages_date_range", "/ui/messages?from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 200 * 86400))
         + "&to=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 199 * 86400))),
        ("messages_number_search", "/ui/messages?q=" + number.replace("+", "%2B")),
        ("messages_text_search_common", "/ui/messages?q=parcel"),
        ("messages_text_search_rare", "/ui/messages?q=zzqq"),
        ("messages_text_search_short", "/ui/messages?q=zq"),
        ("thread", "/ui/threads/" + number.replace("+", "%2B")),
        ("deliveries", "/ui/deliveries"),
        ("deliveries_dead_of_target", "/ui/deliveries?target=crm&state=dead"),
        ("sends", "/ui/sends"),
        ("devices", "/ui/devices"),
        ("opt_outs", "/ui/opt-outs"),
        ("sms", f"/ui/messages/{middle}"),
    ]
    results = []
    try:
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
            async with http.get(base + "/ui/login") as response:
                token = re.search(r'name="csrf_token" value="([^"]*)"', await response.text()).group(1)
            async with http.post(base + "/ui/login", data={"csrf_token": token, "key": KEY}) as response:
                assert response.status == 200, response.status
            older = None
            for name, path in pages:
                path = path or older
                best = float("inf")
                for _ in range(repeat):
                    began = time.perf_counter()
                    async with http.get(base + path) as response:
                        page = await response.text()
                        assert response.status == 200, (name, response.status)
                    best = min(best, (time.perf_counter() - began) * 1000)
                if name == "messages":
                    older = "/ui/messages" + re.search(r'<a href="([^"]*)" rel="next">', page).group(1).replace(
                        "&amp;", "&")
                results.append((name, best))
    finally:
        await runner.cleanup()
        await store.close()
    return results


def main(argv: list[str] | None = None) -> int:
    """Fill, measure and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print a JSON array of figures")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        asyncio.run(_create(path))
        fill(path, args.messages)
        results = asyncio.run(measure(path, args.repeat, args.messages // 2))
    figures = [{"figure": f"dashboard_{name}_ms", "value": round(ms, 1), "unit": "ms", "baseline": None,
                "target": TARGET_MS, "met": ms < TARGET_MS} for name, ms in results]
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        for f in figures:
            print(f"{f['figure']}\t{f['value']}\t{f['unit']}\t{'ok' if f['met'] else 'OVER TARGET'}")
    return 0


async def _create(path: Path) -> None:
    store = await SqliteStore.open(path)
    await store.close()


if __name__ == "__main__":
    sys.exit(main())
