"""`sms-bridge pool`: each member's usability and counts, read from the bridge's database."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bridge.cli import EXIT_BAD_INPUT, EXIT_OK, main
from bridge.pool import day_of, month_of
from bridge.store import DeviceRecord, SqliteStore

CONFIG = """
gateway:
  token: t0ken
  timezone: Europe/Paris
storage:
  path: ./bridge.db
server:
  api_keys: ["k3y"]
pool:
  members:
    - {device_id: 1576, sim: 0, daily_limit: 2, monthly_recipients: 240}
    - {device_id: 1576, sim: 1}
    - {device_id: 1297, sim: 0, daily_limit: 400}
"""


async def _seed(db_path: Path) -> None:
    """Two SMS today on 1576/0 (its limit), one on 1576/1; device 1297 reported offline."""
    zone, now = ZoneInfo("Europe/Paris"), time.time()
    store = await SqliteStore.open(db_path)
    try:
        async with store.transaction() as db:
            await db.count_pool_sends([(1576, 0, "+4915700000001"), (1576, 0, "+4915700000002"),
                                       (1576, 1, "+4915700000001")], day_of(now, zone), month_of(now, zone))
            await db.upsert_devices([DeviceRecord(1297, "SDK", False, now - 7200)], now)
    finally:
        await store.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    asyncio.run(_seed(tmp_path / "bridge.db"))
    return path


def test_pool_lists_members_with_state_and_counts(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Each member shows why it is unusable, if it is, and today's and this month's counts against limits."""
    assert main(["pool", "-c", str(config)]) == EXIT_OK
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines[0][:4] == ["strategy", "sticky,", "failover", "off;"]
    assert lines[2:] == [["1576", "0", "daily_limit", "2/2", "2/240"], ["1576", "1", "usable", "1", "1"],
                         ["1297", "0", "offline", "0/400", "0"]]


def test_pool_json_has_every_member(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints the members with their limits and counts, and the sends waiting."""
    assert main(["pool", "-c", str(config), "--json"]) == EXIT_OK
    shown = json.loads(capsys.readouterr().out)
    assert shown["waiting"] == 0
    assert shown["members"][0] == {"device_id": 1576, "sim": 0, "state": "daily_limit", "online": True,
                                   "sent_today": 2, "daily_limit": 2, "recipients_this_month": 2,
                                   "monthly_recipients": 240}


def test_pool_without_a_pool_section_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config without pool: says so in one line and exits 1."""
    path = tmp_path / "rules.yaml"
    path.write_text(CONFIG.split("pool:")[0], encoding="utf-8")
    assert main(["pool", "-c", str(path)]) == EXIT_BAD_INPUT
    assert "has no pool section" in capsys.readouterr().err
