"""The demo's in-process simulator: across restarts of the bridge that runs it no SMS id comes back and no event
is lost; the API commands given the same config talk to it."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import aiohttp
import pytest
from command_line import cli
from ports import free_port
from running_bridge import API_KEY, RunningBridge, interrupted_run, run_to_exit, running_bridge, stderr_until
from waiting import eventually

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
        done = run_to_exit(config)
    lines = [line for line in done.stderr.splitlines() if line.strip() and " INFO " not in line]
    assert done.returncode == 1
    assert lines == [f"sms-bridge: cannot listen on 127.0.0.1:{port} (gateway.simulator.listen): "
                     "Address already in use"], done.stderr


async def test_api_commands_reach_the_running_demo(tmp_path: Path, session: aiohttp.ClientSession,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """devices, send, status, messages, tag, contact and newsletter given the demo's config talk to its simulator."""
    config, sim_url = write_demo(tmp_path)
    async with running_bridge(config, session):
        assert await cli("devices", "-c", config) == 0
        assert "1576" in capsys.readouterr().out
        assert await cli("send", "-c", config, "--to", "+4915752982212", "--body", "Hello demo") == 0
        sms_id = capsys.readouterr().out.strip()
        async with session.get(f"{sim_url}/simulator/sent") as answer:
            assert [(row["sms_id"], row["body"]) for row in await answer.json()] == [(int(sms_id), "Hello demo")]
        assert await cli("status", "-c", config, sms_id) == 0
        assert capsys.readouterr().out.startswith(f"{sms_id} ")
        assert await cli("messages", "-c", config) == 0
        assert "Hello demo" in capsys.readouterr().out
        assert await cli("tag", "add", "-c", config, "Demo list") == 0
        tag = capsys.readouterr().out.strip()
        assert await cli("contact", "add", "-c", config, "--tag", tag, "--phone", "+4915752982212",
                         "--name", "Ann") == 0
        assert capsys.readouterr().out.strip().isdigit()
        assert await cli("newsletter", "create", "-c", config, "--title", "News", "--tags", tag,
                         "--body", "Hi all") == 0
        assert capsys.readouterr().out.strip().isdigit()


async def test_api_commands_without_a_running_demo_say_so(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """With no bridge running the demo's config, an API command exits 2 with one line saying so."""
    config, sim_url = write_demo(tmp_path)
    assert await cli("devices", "-c", config) == 2
    assert capsys.readouterr().err == (
        f"sms-bridge: no bridge is running with {config}: nothing listens on {sim_url} "
        f"(gateway.simulator.listen); start one with `sms-bridge run -c {config}`\n")


async def test_example_key_on_a_reachable_address_is_warned_about(tmp_path: Path) -> None:
    """`run` listening on 0.0.0.0 with the example key logs one WARNING saying so, without the key itself."""
    config, _ = write_demo(tmp_path)
    config.write_text(config.read_text().replace(f'server: {{api_keys: ["{API_KEY}"]}}',
                                                 f'server: {{listen: "0.0.0.0:{free_port()}", api_keys: [change-me]}}'))
    async with interrupted_run(config, stderr=asyncio.subprocess.PIPE) as process:
        lines = await stderr_until(process, "http: listening")
        lines.append((await asyncio.wait_for(process.stderr.readline(), 30)).decode())  # type: ignore[union-attr]
    warning = lines[-1]
    assert " WARNING bridge.app: http: the API accepts the example key" in warning and "BRIDGE_API_KEY" in warning
    assert "change-me" not in "".join(lines)


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_run_serves_on_the_event_loop_it_names(loop: str, tmp_path: Path,
                                                     session: aiohttp.ClientSession) -> None:
    """`run --loop LOOP` logs which event loop it runs on before it listens, and a send it accepts reaches the
    upstream."""
    config, sim_url = write_demo(tmp_path)
    port = free_port()
    config.write_text(config.read_text().replace(f'server: {{api_keys: ["{API_KEY}"]}}',
                                                 f'server: {{listen: "127.0.0.1:{port}", api_keys: ["{API_KEY}"]}}'))
    async with interrupted_run(config, "--loop", loop, stderr=asyncio.subprocess.PIPE) as process:
        lines = await stderr_until(process, "http: listening")
        async with session.post(f"http://127.0.0.1:{port}/v1/messages", json={"to": "+4915752982212", "body": "Hi"},
                                headers={"Authorization": f"Bearer {API_KEY}"}) as answer:
            assert answer.status == 202

        async def sent() -> list[str]:
            async with session.get(f"{sim_url}/simulator/sent") as listed:
                return [row["body"] for row in await listed.json()]

        assert await eventually(sent, what="the send at the simulator") == ["Hi"]
    assert any(f"bridge: running on the {loop} event loop" in line for line in lines), "".join(lines)
