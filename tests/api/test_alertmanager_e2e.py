"""End to end with a real Prometheus Alertmanager: an alert added with amtool arrives as an SMS upstream."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from api_support import ALERT_TO, API_KEY, Bridge
from ports import free_port
from simulator_control import SimulatorControl
from waiting import eventually

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
AMTOOL = shutil.which("amtool")
DELIVERY_WAIT = 30.0
STARTUP_WAIT = 20.0

pytestmark = pytest.mark.skipif(
    ALERTMANAGER is None or AMTOOL is None,
    reason="Prometheus Alertmanager is not installed (apt-get install prometheus-alertmanager)",
)

CONFIG = """\
route:
  receiver: sms
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 1h
receivers:
- name: sms
  webhook_configs:
  - url: '{url}/v1/hooks/alertmanager'
    send_resolved: true
    http_config:
      authorization:
        credentials: '{key}'
"""


@contextlib.asynccontextmanager
async def alertmanager(tmp_path: Path, bridge_url: str) -> AsyncIterator[str]:
    """Run Alertmanager with a webhook receiver pointing at the bridge; yields its URL; stops it on exit."""
    config = tmp_path / "alertmanager.yml"
    config.write_text(CONFIG.format(url=bridge_url, key=API_KEY), encoding="utf-8")
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        ALERTMANAGER, f"--config.file={config}", f"--storage.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=debug",
        stdout=log, stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(url, process, tmp_path / "alertmanager.log")
        yield url
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        log.close()


async def wait_ready(url: str, process: asyncio.subprocess.Process, log: Path) -> None:
    """Wait until Alertmanager answers /-/ready."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:

        async def ready() -> bool:
            assert process.returncode is None, f"alertmanager exited: {log.read_text(errors='replace')[-2000:]}"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(url + "/-/ready") as response:
                    return response.status == 200
            return False

        await eventually(ready, what="alertmanager to answer /-/ready", timeout=STARTUP_WAIT, interval=0.1)


async def amtool(*args: str) -> str:
    """Run amtool and return its output (it must succeed)."""
    process = await asyncio.create_subprocess_exec(AMTOOL, *args, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, output.decode(errors="replace")
    return output.decode(errors="replace")


async def test_alert_added_with_amtool_is_sent_as_an_sms(bridge: Bridge, sim: SimulatorControl, tmp_path: Path) -> None:
    """Alertmanager posts the HighTemp alert to the hook with the bearer key and the upstream gets the SMS."""
    async with alertmanager(tmp_path, bridge.url) as url:
        await amtool("alert", "add", f"--alertmanager.url={url}", "HighTemp", "severity=critical", "instance=a",
                     "--annotation=summary=Temp high on a")
        sent = await eventually(sim.sent, what=lambda: "an SMS; alertmanager log:\n"
                                + (tmp_path / "alertmanager.log").read_text(errors="replace")[-3000:],
                                timeout=DELIVERY_WAIT, interval=0.2)
    [sms] = sent
    assert sms["to"] == ALERT_TO
    assert sms["body"].startswith("[FIRING:1] HighTemp") and "Temp high on a" in sms["body"]
