"""The whole bridge renders rule replies and inbound hooks with one template engine: the same filters, the same
account settings."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from running_bridge import API_KEY, running_bridge, write_bridge_config
from simulator_control import SimulatorControl
from waiting import eventually

from bridge.appkeys import STORE

HOOK_AND_RULE = """\
inbound:
  page:
    to: ["+4915752982212"]
    template: "call {{ payload.number | e164 }}"
rules:
  - name: call-back
    match: {event: inbound, keyword: CALL}
    actions: [{reply: "call {{ sms.body.split()[1] | e164 }}"}]
"""


async def test_hook_and_rule_templates_read_national_numbers_in_the_default_region(
        tmp_path: Path, sim: SimulatorControl, session: aiohttp.ClientSession) -> None:
    """With default_region DE, `e164` turns 015752982212 into +4915752982212 in a hook's text and in a reply."""
    config = write_bridge_config(tmp_path, sim.url, extra=HOOK_AND_RULE)
    async with running_bridge(config, session) as bridge:
        async with session.post(f"{bridge.url}/v1/hooks/page", json={"number": "015752982212"},
                                headers={"Authorization": f"Bearer {API_KEY}"}) as answer:
            assert answer.status == 202, await answer.text()
        await sim.inbound("+4917642111111", "CALL 015752982212")

        async def texts() -> dict[str, str] | None:
            rows = await bridge.app[STORE].fetch_all("SELECT source, body FROM sends")
            return dict(rows) if len(rows) == 2 else None

        assert await eventually(texts, what="the hook's send and the reply") == {
            "hook:page": "call +4915752982212", "rule:call-back": "call +4915752982212"}
