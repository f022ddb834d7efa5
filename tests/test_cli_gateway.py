"""The API commands of the command line against a simulator on a free port: output, exit codes, messages."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from command_line import cli
from ports import free_port
from simulator_control import MakeSimulator, SimulatorControl

Write = Callable[[str], Path]


@pytest.fixture
async def sim(make_simulator: MakeSimulator) -> SimulatorControl:
    """A standalone simulator (statuses frozen in practice: one step an hour)."""
    return await make_simulator(pace=3600)


def gateway_config(write_config: Write, url: str, password: str = "demo", device: str = "device_id: 1576") -> Path:
    """Write a config for the gateway at `url` (server off)."""
    return write_config(f"""
        gateway:
          url: {url}
          email: demo@example.com
          password: {password}
          {device}
        server:
          enabled: false
        """)


@pytest.fixture
def config(write_config: Write, sim: SimulatorControl) -> Path:
    """A config whose gateway.url points at the simulator, with the demo credentials and device 1576."""
    return gateway_config(write_config, sim.url)


async def test_send_prints_the_id_and_keeps_the_plus(
        config: Path, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """`send` prints the new SMS id, and the number reaches the API with its `+`."""
    assert await cli("send", "-c", config, "--to", "+4915752982212", "--body", "Hello") == 0
    (sent,) = sim.state.sent()
    assert capsys.readouterr().out.split() == [str(sent["sms_id"])]
    assert (sent["sendto"], sent["body"], sent["device_id"], sent["sim"]) == ("+4915752982212", "Hello", 1576, 0)


async def test_send_to_several_numbers_prints_one_id_each(config: Path, sim: SimulatorControl,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`send --to A,B` makes one SMS per number and prints both ids."""
    assert await cli("send", "-c", config, "--to", "+4915752982212,+33612345678", "--body", "Hi") == 0
    assert capsys.readouterr().out.split() == [str(s["sms_id"]) for s in sim.state.sent()]
    assert [s["sendto"] for s in sim.state.sent()] == ["+4915752982212", "+33612345678"]


async def test_send_options_reach_the_api(config: Path, sim: SimulatorControl) -> None:
    """--device-id, --sim, --at (account zone), --urgent and --customer-id are passed to addsms."""
    code = await cli("send", "-c", config, "--to", "+4915752982212", "--body", "Later", "--device-id", "1297",
                     "--sim", "1", "--at", "2030-01-12 02:03:39", "--urgent", "--customer-id", "55")
    assert code == 0
    (sent,) = sim.state.sent()
    assert (sent["device_id"], sent["sim"], sent["timetosend"], sent["urgent"], sent["customerid"]) == (
        1297, 1, "2030-01-12 02:03:39", True, 55)


async def test_send_without_a_device_is_bad_input(write_config: Write, sim: SimulatorControl,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Without --device-id or gateway.device_id, `send` exits 1 saying so."""
    config = gateway_config(write_config, sim.url, device="")
    assert await cli("send", "-c", config, "--to", "+4915752982212", "--body", "Hi") == 1
    assert "--device-id" in capsys.readouterr().err


async def test_send_with_a_bad_time_is_bad_input(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unreadable --at exits 1 with a hint."""
    assert await cli("send", "-c", config, "--to", "+4915752982212", "--body", "Hi", "--at", "tomorrowish") == 1
    assert "is not a time" in capsys.readouterr().err


async def test_devices_lists_phones_sims_and_state(
        config: Path, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """`devices` shows each phone with its SIM numbers, and a phone not seen for an hour as offline."""
    sim.state.set_device(1297, frozen=True, last_seen_ago=3600)
    assert await cli("devices", "-c", config) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "TITLE", "LAST", "SEEN", "STATE", "SIMS"]
    emulator, sdk = (next(line for line in lines if line.startswith(i)) for i in ("1576", "1297"))
    assert "online" in emulator and "+15555215554" in emulator and "Android (T-Mobile)" in emulator
    assert "offline" in sdk and "(1h ago)" in sdk


async def test_messages_lists_incoming_and_outgoing(
        config: Path, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """`messages` shows a table with the sender of an incoming SMS and an outgoing one's status."""
    in_id = sim.state.add_inbound("+33612345678", "INFO\nplease")
    assert await cli("send", "-c", config, "--to", "+4915752982212", "--body", "Hi") == 0
    capsys.readouterr()
    assert await cli("messages", "-c", config) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith(str(in_id)))
    assert row.split()[3:7] == ["in", "+33612345678", "received", "1576"] and row.endswith("INFO please")
    assert "pending" in out


async def test_table_times_carry_their_offset(
        config: Path, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """`messages` and `devices` print times in the account's zone with its UTC offset."""
    in_id = sim.state.add_inbound("+33612345678", "hello")
    assert await cli("messages", "-c", config) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith(str(in_id)))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+0[12]:00", " ".join(row.split()[1:3]))
    assert await cli("devices", "-c", config) == 0
    device = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("1576"))
    assert re.search(r"\d\d:\d\d:\d\d\+0[12]:00 \(", device)


async def test_messages_as_json_with_filters(
        config: Path, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """`messages --json --status received` prints a JSON list of the matching messages only."""
    in_id = sim.state.add_inbound("+33612345678", "hello", device_id=1297)
    assert await cli("send", "-c", config, "--to", "+4915752982212", "--body", "Hi") == 0
    capsys.readouterr()
    assert await cli("messages", "-c", config, "--json", "--status", "received", "--device-id", "1297") == 0
    (only,) = json.loads(capsys.readouterr().out)
    assert (only["id"], only["direction"], only["number"], only["status"], only["status_name"]) == (
        in_id, "in", "+33612345678", 5, "received")
    assert only["created_at"].endswith(("+01:00", "+02:00"))


async def test_messages_count_prints_a_number(
        config: Path, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """`messages --count` prints how many messages match."""
    sim.state.add_inbound("+33612345678", "a")
    sim.state.add_inbound("+33612345678", "b", created_ago=3 * 86400)
    assert await cli("messages", "-c", config, "--count") == 0
    assert await cli("messages", "-c", config, "--count", "--all") == 0
    assert capsys.readouterr().out.split() == ["1", "2"]


async def test_an_unknown_status_name_is_bad_input(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`messages --status` with a name that does not exist exits 1 listing the names."""
    assert await cli("messages", "-c", config, "--status", "lost") == 1
    assert "delivered" in capsys.readouterr().err


async def test_status_prints_name_and_code(
        config: Path, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """`status SMS_ID` prints the status name, code and description."""
    sms_id = sim.state.add_inbound("+33612345678", "x")
    sim.state.pin_status(sms_id, 7)
    assert await cli("status", "-c", config, str(sms_id)) == 0
    assert capsys.readouterr().out.strip() == f"{sms_id} delivered (7): delivered"


async def test_tag_contact_and_newsletter_print_their_ids(config: Path, sim: SimulatorControl,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`tag add`, `contact add` and `newsletter create` print the ids the API gives."""
    assert await cli("tag", "add", "-c", config, "Employees") == 0
    tag_id = capsys.readouterr().out.strip()
    assert await cli("contact", "add", "-c", config, "--tag", tag_id, "--phone", "+4917642111111",
                     "--name", "Ann Example") == 0
    assert int(capsys.readouterr().out) > 0
    assert await cli("newsletter", "create", "-c", config, "--title", "News", "--tags", tag_id,
                     "--body", "Meeting at 10", "--at", "1h") == 0
    assert int(capsys.readouterr().out) > 0
    assert [m.body for m in sim.state.query(begin=None, end=None, device_id=None, status=None, sim=None,
                                            customer_id=None, phone="+4917642111111")] == ["Meeting at 10"]


@pytest.fixture
def de_config(write_config: Write, sim: SimulatorControl) -> Path:
    """The simulator's config with `default_region: DE`."""
    return gateway_config(write_config, sim.url, device="device_id: 1576\n          default_region: DE")


@pytest.mark.parametrize("bad", ["notanumber", "+49 123", "+4915752982212,12"])
async def test_send_refuses_a_bad_number_and_sends_nothing(bad: str, de_config: Path, sim: SimulatorControl,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`send --to` with a number the API would refuse exits 1 naming --to, and nothing reaches the upstream."""
    assert await cli("send", "-c", de_config, "--to", bad, "--body", "Hello") == 1
    err = capsys.readouterr().err
    assert err.startswith("sms-bridge: --to: ") and "is not a valid phone number" in err
    assert sim.state.sent() == []


async def test_send_reads_national_numbers_in_the_default_region(de_config: Path, sim: SimulatorControl) -> None:
    """`send --to 015752982212` with default_region DE goes out as +4915752982212, like the API's sends."""
    assert await cli("send", "-c", de_config, "--to", "015752982212, 0049 1575 2982213", "--body", "Hi") == 0
    assert [row["sendto"] for row in sim.state.sent()] == ["+4915752982212", "+4915752982213"]


async def test_contact_phone_is_validated_and_normalised(de_config: Path, sim: SimulatorControl,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """`contact add --phone` refuses a bad number and stores a national one in E.164, so newsletters reach it."""
    assert await cli("tag", "add", "-c", de_config, "Staff") == 0
    tag_id = capsys.readouterr().out.strip()
    assert await cli("contact", "add", "-c", de_config, "--tag", tag_id, "--phone", "hello", "--name", "X") == 1
    assert capsys.readouterr().err.startswith("sms-bridge: --phone: 'hello' is not a valid phone number")
    assert await cli("contact", "add", "-c", de_config, "--tag", tag_id, "--phone", "015752982212",
                     "--name", "Ann") == 0
    assert await cli("newsletter", "create", "-c", de_config, "--title", "News", "--tags", tag_id,
                     "--body", "Meeting") == 0
    assert [m.sendto for m in sim.state.query(begin=None, end=None, device_id=None, status=None, sim=None,
                                              customer_id=None, phone=None) if m.body == "Meeting"] == [
        "+4915752982212"]


async def test_an_upstream_failure_exits_2_with_the_message(config: Path, sim: SimulatorControl,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """An HTTP 500 from the API exits 2 with the reason on stderr and no traceback."""
    sim.state.add_fault("500", 1, ["getalldevices"], 0)
    assert await cli("devices", "-c", config) == 2
    err = capsys.readouterr().err
    assert "sms-bridge: upstream: getalldevices: the gateway answered HTTP 500" in err
    assert "Traceback" not in err


async def test_a_refusal_exits_2_with_the_upstream_message(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An `error: 1` answer exits 2 with the upstream's own message."""
    assert await cli("status", "-c", config, "1") == 2
    assert "Sms not found" in capsys.readouterr().err


async def test_wrong_credentials_exit_2(
        write_config: Write, sim: SimulatorControl, capsys: pytest.CaptureFixture[str]) -> None:
    """A refused password exits 2 with the upstream's message and never prints the password."""
    config = gateway_config(write_config, sim.url, password="hunter2-wrong")
    assert await cli("devices", "-c", config) == 2
    err = capsys.readouterr().err
    assert "Login or password incorrect" in err and "hunter2" not in err


async def test_an_unreachable_gateway_exits_2(write_config: Write, capsys: pytest.CaptureFixture[str]) -> None:
    """A gateway nobody listens on exits 2 saying it cannot connect."""
    port = free_port()
    config = gateway_config(write_config, f"http://127.0.0.1:{port}")
    assert await cli("devices", "-c", config) == 2
    assert "cannot connect" in capsys.readouterr().err


async def test_simulate_serves_the_api_until_interrupted() -> None:
    """`sms-bridge simulate` answers gettoken on its port and exits 0 on Ctrl-C."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "simulate", "--port", str(port), "--timezone", "Asia/Kolkata",
        "--email", "me@example.com", "--password", "pw", "--pace", "500ms",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        banner = await asyncio.wait_for(process.stdout.readline(), 20)  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{port}" in banner.decode()
        async with aiohttp.ClientSession() as session:
            form = {"email": "me@example.com", "pass": "pw"}
            async with session.post(f"http://127.0.0.1:{port}/getdata/gettoken", data=form) as response:
                assert (await response.json())["error"] == 0
    finally:
        process.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, err.decode()
