"""The in-process simulator across restarts of the bridge that runs it: no SMS id comes back, no event is lost."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import aiohttp
from reliability_support import API_KEY, PYTHON, REPO, RunningBridge, eventually, free_port, running_bridge

from bridge.appkeys import STORE

DEMO = """\
gateway:
  device_id: 1576
  default_region: DE
  simulator: {{inbound_every: 0, pace: 50ms, listen: "127.0.0.1:{sim_port}"}}
poll: {{interval: 200ms}}
storage: {{path: ./bridge.db}}
server: {{api_keys: ["{key}"]}}
safety: {{reply_cooldown: 0s}}
rules:
  - name: pong
    match: {{event: inbound, keyword: PING}}
    actions: [{{reply: "pong"}}]
"""


def write_demo(directory: Path) -> tuple[Path, str]:
    """A config running the in-process simulator on a free port; returns it and the simulator's URL."""
    port = free_port()
    path = directory / "rules.yaml"
    path.write_text(DEMO.format(sim_port=port, key=API_KEY), encoding="utf-8")
    return path, f"http://127.0.0.1:{port}"


async def submitted_sms_ids(bridge: RunningBridge) -> list[int]:
    """The upstream ids of the replies the bridge handed to the simulator."""
    rows = await bridge.app[STORE].fetch_all("SELECT sms_id FROM recipients WHERE sms_id IS NOT NULL ORDER BY id")
    return [row[0] for row in rows]


async def test_restarted_demo_loses_no_inbound_sms(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    """Three runs on one database: every SMS the simulator receives in each run becomes its own event."""
    config, sim_url = write_demo(tmp_path)
    injected: list[int] = []
    for run in range(3):
        async with running_bridge(config, session) as bridge:
            for n in range(3):
                async with session.post(f"{sim_url}/simulator/inbound",
                                        json={"from": "+4917642111111", "body": f"PING {run}.{n}"}) as answer:
                    injected.append((await answer.json())["sms_id"])

            async def all_received() -> bool:
                return await bridge.received_ids() == injected

            async def all_replied() -> bool:
                return len(await submitted_sms_ids(bridge)) == len(injected)

            await eventually(all_received, what=f"the events of run {run}")
            await eventually(all_replied, what=f"the replies of run {run}")
    async with running_bridge(config, session) as bridge:
        every_id = injected + await submitted_sms_ids(bridge)
    assert len(set(every_id)) == len(every_id) == 18


def test_busy_simulator_port_is_one_line(tmp_path: Path) -> None:
    """`run` whose gateway.simulator.listen port is taken exits 1 with one line naming that key."""
    config, sim_url = write_demo(tmp_path)
    port = int(sim_url.rsplit(":", 1)[1])
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = subprocess.run([PYTHON, "-m", "bridge", "run", "-c", str(config)], capture_output=True, text=True,
                              timeout=60, cwd=REPO)
    lines = [line for line in done.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert done.returncode == 1
    assert lines == [f"sms-bridge: cannot listen on 127.0.0.1:{port} (gateway.simulator.listen): "
                     "Address already in use"], done.stderr
