"""Send correlation: a send is matched only to its own upstream SMS, whoever else uses the account."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from api_support import Bridge, write_config
from simulator_control import SimulatorControl

from bridge.config import Config

TO = "+4915752777001"


async def test_reconciling_never_takes_another_bridges_sms(
        tmp_path: Path, make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]],
        sim: SimulatorControl) -> None:
    """A bridge with a fresh database whose addsms failed does not mistake another bridge's SMS to the same
    number for its own: its text is sent, under its own sms id."""
    first = await bridges(make_config())
    alpha = await first.settled((await (await first.send({"to": TO, "body": "alpha"})).json())["id"])
    (tmp_path / "other").mkdir()
    second = await bridges(write_config(tmp_path / "other", sim.url))
    await sim.fault("500", count=1, methods=["addsms"])
    beta = await second.settled((await (await second.send({"to": TO, "body": "beta"})).json())["id"])
    sent = {s["sms_id"]: s["body"] for s in await sim.sent()}
    assert sorted(sent.values()) == ["alpha", "beta"]
    assert sent[beta["recipients"][0]["sms_id"]] == "beta"
    assert beta["recipients"][0]["sms_id"] != alpha["recipients"][0]["sms_id"]


async def test_a_users_customer_id_is_matched_with_its_own_text_only(
        tmp_path: Path, make_config: Callable[..., Config], bridges: Callable[..., Awaitable[Bridge]],
        sim: SimulatorControl) -> None:
    """Two bridges sending with the same user customer_id to one number each keep their own SMS."""
    first = await bridges(make_config())
    body = {"to": TO, "customer_id": 4242}
    await first.settled((await (await first.send({**body, "body": "alpha"})).json())["id"])
    (tmp_path / "other").mkdir()
    second = await bridges(write_config(tmp_path / "other", sim.url))
    await sim.fault("500", count=1, methods=["addsms"])
    beta = await second.settled((await (await second.send({**body, "body": "beta"})).json())["id"])
    sent = {s["sms_id"]: s["body"] for s in await sim.sent()}
    assert sent[beta["recipients"][0]["sms_id"]] == "beta"
