"""The `deliveries` and `replay` commands, on a database seeded with deliveries in every state."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from bridge.cli import EXIT_BAD_INPUT, EXIT_OK, main
from bridge.store import NewDelivery, SqliteStore

CONFIG = """
gateway:
  token: t0ken
storage:
  path: ./bridge.db
server:
  api_keys: ["k3y"]
webhooks:
  crm:
    url: http://127.0.0.1:9/hook
  old:
    url: http://127.0.0.1:9/gone
"""
NOW = 1_790_000_000.0


@dataclass(frozen=True)
class Seeded:
    """The config file and the outbox ids of each state."""

    config: Path
    delivered: int
    retrying: int
    dead: int
    held: int


async def _seed(db_path: Path) -> tuple[int, int, int, int]:
    store = await SqliteStore.open(db_path)
    try:
        async with store.transaction() as db:
            for n, (target, state, error, status) in enumerate([
                ("crm", "delivered", None, 200),
                ("crm", "pending", "HTTP 500: upstream down", 500),
                ("crm", "dead", "no answer within 10s", None),
                ("old", "pending", "HTTP 410 Gone", 410),
            ], start=1):
                event_id = f"evt_{n:026d}"
                await db.execute("INSERT INTO events (id, dedupe_key, type, payload, created_ts) "
                                 "VALUES (?, ?, 'sms.received', '{}', ?)", (event_id, f"sms:{n}:5", NOW))
                await db.insert_delivery(NewDelivery(event_id, "webhook", target, "info"), NOW)
                await db.record_attempts([(n, state, NOW + 300, error, status)], NOW)
            await db.disable_target("old", "HTTP 410 Gone", NOW)
    finally:
        await store.close()
    return 1, 2, 3, 4


@pytest.fixture
def seeded(write_config: Callable[[str], Path]) -> Seeded:
    """A config whose database holds one delivered, one retrying, one dead and one held delivery."""
    config = write_config(CONFIG)
    return Seeded(config, *asyncio.run(_seed(config.parent / "bridge.db")))


def _rows(config: Path) -> dict[int, tuple[str, int]]:
    async def read() -> list:
        store = await SqliteStore.open(config.parent / "bridge.db")
        try:
            return await store.fetch_all("SELECT id, state, attempts FROM outbox")
        finally:
            await store.close()

    return {row["id"]: (row["state"], row["attempts"]) for row in asyncio.run(read())}


def _next_attempt(config: Path, delivery_id: int) -> float:
    async def read() -> float:
        store = await SqliteStore.open(config.parent / "bridge.db")
        try:
            return (await store.fetch_one("SELECT next_attempt_ts FROM outbox WHERE id = ?", (delivery_id,)))[0]
        finally:
            await store.close()

    return asyncio.run(read())


def test_deliveries_prints_a_table_of_the_outbox(seeded, capsys):
    """Every row is listed with its target, state, attempts and last error."""
    assert main(["deliveries", "-c", str(seeded.config)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["ID", "EVENT", "TYPE", "TARGET"]
    dead = next(line for line in lines if line.startswith(f"{seeded.dead} "))
    assert "dead" in dead and "no answer within 10s" in dead and "evt_" in dead


def test_deliveries_failed_leaves_out_what_was_delivered(seeded, capsys):
    """`--failed` shows dead rows and pending rows that failed, not delivered ones."""
    assert main(["deliveries", "-c", str(seeded.config), "--failed", "--json"]) == EXIT_OK
    listed = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in listed] == [seeded.retrying, seeded.dead, seeded.held]


def test_deliveries_json_gives_every_field(seeded, capsys):
    """`--json` prints each row as an object, with the next attempt only for pending rows."""
    assert main(["deliveries", "-c", str(seeded.config), "--json"]) == EXIT_OK
    listed = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    retrying = listed[seeded.retrying]
    assert (retrying["state"], retrying["attempts"], retrying["last_status"]) == ("pending", 1, 500)
    assert retrying["next_attempt_at"] is not None
    assert listed[seeded.dead]["next_attempt_at"] is None
    assert listed[seeded.held]["target_disabled"] is True


def test_deliveries_names_disabled_targets(seeded, capsys):
    """The table is followed by each disabled target and how to re-enable it."""
    main(["deliveries", "-c", str(seeded.config)])
    out = capsys.readouterr().out
    assert "webhook target old is disabled (HTTP 410 Gone)" in out
    assert "--target old" in out


def test_replay_requeues_a_dead_delivery(seeded, capsys):
    """`replay ID` makes a dead row pending again with its attempts reset."""
    assert main(["replay", "-c", str(seeded.config), str(seeded.dead)]) == EXIT_OK
    assert f"re-queued 1 delivery: {seeded.dead}" in capsys.readouterr().out
    assert _rows(seeded.config)[seeded.dead] == ("pending", 0)


def test_replay_all_failed_requeues_what_deliveries_failed_lists(seeded, capsys):
    """`replay --all-failed` re-queues exactly the rows `deliveries --failed` lists, and leaves delivered ones."""
    assert main(["deliveries", "-c", str(seeded.config), "--failed", "--json"]) == EXIT_OK
    listed = [row["id"] for row in json.loads(capsys.readouterr().out)]
    assert main(["replay", "-c", str(seeded.config), "--all-failed"]) == EXIT_OK
    assert f"re-queued {len(listed)} deliveries: {', '.join(map(str, listed))}" in capsys.readouterr().out
    rows = _rows(seeded.config)
    assert all(rows[i] == ("pending", 0) for i in listed)
    assert rows[seeded.delivered] == ("delivered", 1)


def test_replay_retries_a_waiting_delivery_now(seeded, capsys):
    """`replay ID` of a pending delivery waiting to retry after a failure makes it due now, attempts reset."""
    before = time.time()
    assert main(["replay", "-c", str(seeded.config), str(seeded.retrying)]) == EXIT_OK
    assert f"re-queued 1 delivery: {seeded.retrying}" in capsys.readouterr().out
    assert _rows(seeded.config)[seeded.retrying] == ("pending", 0)
    assert before <= _next_attempt(seeded.config, seeded.retrying) <= time.time()


def test_replay_of_a_delivery_that_is_not_dead_is_refused(seeded, capsys):
    """An id that is not dead (or does not exist) is reported and the exit code is 1."""
    assert main(["replay", "-c", str(seeded.config), str(seeded.delivered), "999"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert f"delivery {seeded.delivered} not re-queued: it is delivered and has not failed" in err
    assert "delivery 999 not re-queued: there is no such delivery" in err
    assert _rows(seeded.config)[seeded.delivered] == ("delivered", 1)


def test_replay_target_re_enables_a_disabled_target(seeded, capsys):
    """`replay --target NAME` re-enables a target disabled by a 410."""
    assert main(["replay", "-c", str(seeded.config), "--target", "old"]) == EXIT_OK
    assert "re-enabled webhook target old" in capsys.readouterr().out
    main(["deliveries", "-c", str(seeded.config)])
    assert "disabled" not in capsys.readouterr().out


def test_replay_needs_something_to_replay(seeded, capsys):
    """`replay` without ids, --all-failed or --target is bad input."""
    assert main(["replay", "-c", str(seeded.config)]) == EXIT_BAD_INPUT
    assert "nothing to replay" in capsys.readouterr().err


def test_a_missing_database_is_bad_input(write_config, capsys):
    """Without a database (the bridge never ran) the commands exit 1 and create nothing."""
    config = write_config(CONFIG)
    assert main(["deliveries", "-c", str(config)]) == EXIT_BAD_INPUT
    assert "no database" in capsys.readouterr().err
    assert not (config.parent / "bridge.db").exists()
