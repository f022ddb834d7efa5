"""The gateway client against the simulator over real HTTP: every method, token handling, errors, quirks."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from gateway_support import EMAIL, PASSWORD, make_client
from ports import free_port
from simulator_control import MakeSimulator, SimulatorControl
from waiting import eventually

from bridge.config import Secret
from bridge.gateway.client import ApiError, AuthError, GatewayClient, MalformedResponse, UpstreamUnavailable
from bridge.gateway.models import OutgoingSms, Status

GERMAN = "+4915752982212"


def outgoing(to: str = GERMAN, **options: object) -> OutgoingSms:
    """An outgoing SMS from device 1576 unless `options` say otherwise."""
    options.setdefault("device_id", 1576)
    return OutgoingSms(to, "Hello! Thank you for Order!", **options)  # type: ignore[arg-type]


# --- each method ----------------------------------------------------------------------------------


async def test_add_sms_returns_the_id_of_the_stored_message(client: GatewayClient, simulator: SimulatorControl) -> None:
    """addsms answers the new message's id, and the simulator lists it as sent."""
    sms_id = await client.add_sms(outgoing(customer_id=77, sim=1, urgent=True))
    (sent,) = await simulator.get("sent")
    assert sent["sms_id"] == sms_id and sms_id > 62050000
    assert (sent["customerid"], sent["sim"], sent["urgent"], sent["method"]) == (77, 1, True, "addsms")


async def test_plus_in_the_number_survives(client: GatewayClient, simulator: SimulatorControl) -> None:
    """A `+` in sendto reaches the upstream intact and comes back in getallsms."""
    sms_id = await client.add_sms(outgoing(GERMAN))
    (sent,) = await simulator.get("sent")
    assert sent["sendto"] == GERMAN
    assert [(s.id, s.number) for s in await client.get_all_sms()] == [(sms_id, GERMAN)]


async def test_time_to_send_is_written_in_the_account_zone(client: GatewayClient, simulator: SimulatorControl) -> None:
    """An aware timetosend reaches the upstream as the account zone's wall time."""
    when = datetime(2030, 1, 12, 1, 3, 39, tzinfo=timezone.utc)
    await client.add_sms(outgoing(time_to_send=when))
    (sent,) = await simulator.get("sent")
    assert sent["timetosend"] == "2030-01-12 02:03:39"
    (sms,) = await client.get_all_sms()
    assert sms.time_to_send == when and sms.status is Status.PENDING


async def test_sms_to_send_logs_in_without_a_token(client: GatewayClient, simulator: SimulatorControl) -> None:
    """smstosend authenticates with email and password and fetches no token."""
    sms_id = await client.sms_to_send(outgoing())
    (sent,) = await simulator.get("sent")
    assert (sent["sms_id"], sent["method"]) == (sms_id, "smstosend")
    assert (await simulator.stats())["tokens_issued"] == 0


async def test_sms_to_send_with_a_wrong_password_is_an_auth_error(
    session: aiohttp.ClientSession, simulator: SimulatorControl
) -> None:
    """smstosend with a wrong password raises AuthError."""
    with pytest.raises(AuthError, match="Login or password incorrect"):
        await make_client(session, simulator, password="wrong").sms_to_send(outgoing())


async def test_add_many_sms_lands_every_message_with_its_customer_id(
    client: GatewayClient, simulator: SimulatorControl
) -> None:
    """One addalotofsms call stores every message with its customerid, device, SIM and urgency."""
    batch = [outgoing(f"+49157{i:07d}", customer_id=1000 + i, sim=i % 2, urgent=i == 3) for i in range(5)]
    assert await client.add_many_sms(batch) is None
    sent = await simulator.get("sent")
    assert [(s["sendto"], s["customerid"], s["sim"], s["urgent"]) for s in sent] == [
        (m.to, m.customer_id, m.sim, m.urgent) for m in batch]
    assert {s["method"] for s in sent} == {"addalotofsms"}
    assert (await simulator.stats())["calls"]["addalotofsms"] == 1


async def test_add_many_sms_with_nothing_makes_no_call(client: GatewayClient, simulator: SimulatorControl) -> None:
    """An empty batch sends nothing upstream."""
    await client.add_many_sms([])
    assert (await simulator.stats())["calls"] == {}


async def test_incoming_sms_have_the_sender_as_number(client: GatewayClient, simulator: SimulatorControl) -> None:
    """An SMS the phone received comes back with status 5 and the sender in `number`."""
    sms_id = await simulator.inbound("+33612345678", "INFO please", device_id=1297)
    (sms,) = await client.get_all_sms()
    assert (sms.id, sms.number, sms.body, sms.device_id) == (sms_id, "+33612345678", "INFO please", 1297)
    assert sms.status is Status.RECEIVED and sms.is_incoming


async def test_an_empty_account_has_no_messages(client: GatewayClient) -> None:
    """getallsms answering `smss: []` gives an empty list and count 0."""
    assert await client.get_all_sms() == []
    assert await client.count_sms() == 0


async def test_an_answer_without_smss_has_no_messages(client: GatewayClient, simulator: SimulatorControl) -> None:
    """getallsms answering without a `smss` field at all gives an empty list."""
    await simulator.inbound("+33612345678", "hello")
    await simulator.fault("empty_smss", methods=["getallsms"])
    assert await client.get_all_sms() == []


async def test_numbers_as_strings_are_read(client: GatewayClient, simulator: SimulatorControl) -> None:
    """Answers whose every number is a string still give typed messages and devices."""
    sms_id = await client.add_sms(outgoing(customer_id=5))
    await simulator.fault("stringly", count=2, methods=["getallsms", "getalldevices"])
    (sms,) = await client.get_all_sms()
    assert (sms.id, sms.customer_id, sms.device_id, sms.status) == (sms_id, 5, 1576, Status.PENDING)
    devices = await client.get_all_devices()
    assert [d.id for d in devices] == [1576, 1297]


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Sao_Paulo", "Asia/Kolkata"])
async def test_dates_are_in_the_account_zone(
    session: aiohttp.ClientSession, make_simulator: MakeSimulator, zone: str
) -> None:
    """Creation times come back in the account's zone and denote the right instant."""
    sim = await make_simulator(timezone=zone)
    before = datetime.now(timezone.utc).replace(microsecond=0)
    await sim.inbound("+33612345678", "hello")
    (sms,) = await make_client(session, sim, account_tz=zone).get_all_sms()
    assert sms.created.tzinfo == ZoneInfo(zone)
    assert before <= sms.created <= datetime.now(timezone.utc)


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/Sao_Paulo", "Asia/Kolkata"])
async def test_begin_is_read_in_the_account_zone(
    session: aiohttp.ClientSession, make_simulator: MakeSimulator, zone: str
) -> None:
    """A message created 10 minutes ago is found from 15 minutes ago, not from 5 minutes ago, in every zone."""
    sim = await make_simulator(timezone=zone)
    client = make_client(session, sim, account_tz=zone)
    sms_id = await sim.inbound("+33612345678", "ten minutes old", created_ago=600)
    now = datetime.now(timezone.utc)
    assert [s.id for s in await client.get_all_sms(begin=now - timedelta(minutes=15))] == [sms_id]
    assert await client.get_all_sms(begin=now - timedelta(minutes=5)) == []
    assert await client.count_sms(begin=now - timedelta(minutes=15), end=now - timedelta(minutes=9)) == 1


async def test_the_timezone_parameter_answers_in_that_zone(client: GatewayClient, simulator: SimulatorControl) -> None:
    """getallsms with `timezone` reads the window and renders dates in that zone."""
    sms_id = await simulator.inbound("+33612345678", "hello", created_ago=600)
    now = datetime.now(timezone.utc)
    (sms,) = await client.get_all_sms(begin=now - timedelta(minutes=15), timezone="Asia/Kolkata")
    assert sms.id == sms_id and sms.created.tzinfo == ZoneInfo("Asia/Kolkata")
    assert await client.get_all_sms(begin=now - timedelta(minutes=5), timezone="Asia/Kolkata") == []


async def test_filters_select_messages(client: GatewayClient, simulator: SimulatorControl) -> None:
    """device_id, status, customer_id, phone and order_by_desc each narrow or order getallsms."""
    out_id = await client.add_sms(outgoing(customer_id=42))
    in_id = await simulator.inbound("+33612345678", "hello", device_id=1297)
    assert [s.id for s in await client.get_all_sms(device_id=1297)] == [in_id]
    assert [s.id for s in await client.get_all_sms(status=Status.RECEIVED)] == [in_id]
    assert [s.id for s in await client.get_all_sms(customer_id=42)] == [out_id]
    assert [s.id for s in await client.get_all_sms(phone=GERMAN)] == [out_id]
    assert [s.id for s in await client.get_all_sms(order_by_desc=True)] == [in_id, out_id]
    assert await client.count_sms(status=Status.PENDING) == 1


async def test_tags_contacts_and_newsletters_are_saved(client: GatewayClient) -> None:
    """savetag, savecontact and savepaket answer ids, and the newsletter's messages carry its paket id."""
    tag_id = await client.save_tag("Employees")
    contact_id = await client.save_contact("+4917642111111", tag_id, "Ann Example")
    paket_id = await client.save_paket("Team news", 1576, "Meeting at 10", [tag_id])
    assert tag_id == 8304 and contact_id > 15954765 and paket_id is not None
    (sms,) = await client.get_all_sms()
    assert (sms.number, sms.body, sms.paket_id) == ("+4917642111111", "Meeting at 10", paket_id)


async def test_a_contact_of_an_unknown_tag_is_refused(client: GatewayClient) -> None:
    """savecontact for a tag that does not exist raises ApiError with the upstream's message."""
    with pytest.raises(ApiError, match="Tag not found"):
        await client.save_contact("+4917642111111", 1, "Ann")


async def test_devices_come_with_sims_and_recent_last_seen(client: GatewayClient) -> None:
    """getalldevices gives both phones, their SIMs (the lost `+` restored) and a current last-seen time."""
    emulator, sdk = await client.get_all_devices()
    assert (emulator.id, sdk.id) == (1576, 1297)
    assert emulator.sim_number(0) == "+15555215554" and emulator.sim_number(1) == "+4915100000001"
    assert emulator.last_seen is not None
    assert datetime.now(timezone.utc) - emulator.last_seen < timedelta(seconds=30)


async def test_sms_status_is_reported(client: GatewayClient, simulator: SimulatorControl) -> None:
    """getsmsstatus gives the message's status and its description."""
    sms_id = await client.add_sms(outgoing())
    await simulator.post("status", {"sms_id": sms_id, "status": 7})
    info = await client.get_sms_status(sms_id)
    assert (info.sms_id, info.status, info.status_code, info.description) == (sms_id, Status.DELIVERED, 7, "delivered")


async def test_status_of_an_unknown_sms_is_an_api_error(client: GatewayClient) -> None:
    """getsmsstatus for an id the account does not have raises ApiError."""
    with pytest.raises(ApiError, match="Sms not found"):
        await client.get_sms_status(1)


async def test_pinned_unknown_status_codes_keep_their_number(
        client: GatewayClient, simulator: SimulatorControl) -> None:
    """A status code outside the reference reads as UNKNOWN with its code kept."""
    sms_id = await client.add_sms(outgoing())
    await simulator.post("status", {"sms_id": sms_id, "status": 77})
    (sms,) = await client.get_all_sms()
    assert (sms.status, sms.status_code) == (Status.UNKNOWN, 77)


async def test_statuses_walk_to_delivered_at_a_tiny_pace(
    session: aiohttp.ClientSession, make_simulator: MakeSimulator
) -> None:
    """With a 20 ms pace an outgoing SMS reaches delivered (7) on its own, via 3, 2 and 6."""
    sim = await make_simulator(pace=0.02)
    client = make_client(session, sim)
    sms_id = await client.add_sms(outgoing())
    seen: list[int] = []

    async def delivered() -> bool:
        seen.append((await client.get_sms_status(sms_id)).status_code)
        return seen[-1] == 7

    await eventually(delivered, what="the SMS to reach delivered")
    walked = list(dict.fromkeys(seen))
    assert walked == [code for code in (1, 3, 2, 6, 7) if code in walked]


async def test_failure_rate_one_ends_every_message_in_a_failure(
    session: aiohttp.ClientSession, make_simulator: MakeSimulator
) -> None:
    """With failure_rate 1 and pace 0 every outgoing SMS ends not delivered (8) or failed (9)."""
    sim = await make_simulator(pace=0, failure_rate=1.0)
    client = make_client(session, sim)
    await client.add_many_sms([outgoing(f"+49157{i:07d}") for i in range(20)])
    statuses = {sms.status for sms in await client.get_all_sms()}
    assert statuses <= {Status.NOT_DELIVERED, Status.FAILED} and len(statuses) == 2


# --- tokens ---------------------------------------------------------------------------------------


async def test_one_token_serves_many_calls(client: GatewayClient, simulator: SimulatorControl) -> None:
    """The token is fetched once and reused."""
    for _ in range(3):
        await client.get_all_sms()
    assert (await simulator.stats())["tokens_issued"] == 1


async def test_a_revoked_token_is_renewed_once_and_the_call_retried(
    client: GatewayClient, simulator: SimulatorControl
) -> None:
    """After the token is revoked the next call fetches one new token and succeeds."""
    await client.get_all_sms()
    await simulator.post("revoke_token")
    assert await client.get_all_devices()
    stats = await simulator.stats()
    assert stats["tokens_issued"] == 2 and stats["calls"]["getalldevices"] == 2


async def test_a_token_error_on_a_data_call_is_retried_with_a_new_token(
    client: GatewayClient, simulator: SimulatorControl
) -> None:
    """A call answered with a credentials error gets a fresh token and one retry."""
    await client.get_all_sms()
    await simulator.fault("auth", methods=["getallsms"])
    assert await client.get_all_sms() == []
    assert (await simulator.stats())["tokens_issued"] == 2


async def test_fifty_calls_on_a_revoked_token_fetch_one_token(
    client: GatewayClient, simulator: SimulatorControl
) -> None:
    """Fifty concurrent calls meeting a revoked token cause exactly one gettoken."""
    await client.get_all_sms()
    await simulator.post("revoke_token")
    results = await asyncio.gather(*(client.get_all_sms() for _ in range(50)))
    assert results == [[]] * 50
    stats = await simulator.stats()
    assert stats["tokens_issued"] == 2 and stats["calls"]["gettoken"] == 2


async def test_fifty_first_calls_fetch_one_token(client: GatewayClient, simulator: SimulatorControl) -> None:
    """Fifty concurrent first calls share a single gettoken."""
    await asyncio.gather(*(client.get_all_devices() for _ in range(50)))
    assert (await simulator.stats())["calls"]["gettoken"] == 1


async def test_a_persistent_refusal_is_an_api_error_after_one_retry(
    client: GatewayClient, simulator: SimulatorControl
) -> None:
    """A refusal that is not about credentials survives the one token renewal and raises ApiError."""
    with pytest.raises(ApiError, match="Device not found") as caught:
        await client.add_sms(outgoing(device_id=999))
    assert not isinstance(caught.value, AuthError)
    stats = await simulator.stats()
    assert stats["calls"]["addsms"] == 2 and stats["tokens_issued"] == 2


async def test_a_wrong_password_is_an_auth_error(session: aiohttp.ClientSession, simulator: SimulatorControl) -> None:
    """gettoken refusing the email and password raises AuthError with the upstream's message."""
    client = make_client(session, simulator, password="wrong")
    with pytest.raises(AuthError, match="Login or password incorrect"):
        await client.get_all_sms()
    with pytest.raises(AuthError):
        await client.get_token()


async def test_a_secret_password_is_accepted(session: aiohttp.ClientSession, simulator: SimulatorControl) -> None:
    """The password may be a config Secret; the client reveals it only to send it."""
    client = make_client(session, simulator, password=Secret(PASSWORD))
    await client.get_token()
    assert (await simulator.stats())["tokens_issued"] == 1


async def test_a_fixed_token_is_used_without_gettoken(
    session: aiohttp.ClientSession, make_simulator: MakeSimulator
) -> None:
    """A configured token is sent as is and no gettoken happens."""
    sim = await make_simulator(token="fixed-token-123")
    assert await make_client(session, sim, token=Secret("fixed-token-123")).get_all_sms() == []
    assert (await sim.stats())["tokens_issued"] == 0


async def test_a_refused_fixed_token_is_an_auth_error(
        session: aiohttp.ClientSession, simulator: SimulatorControl) -> None:
    """A fixed token the upstream refuses raises AuthError saying so, without trying gettoken."""
    client = make_client(session, simulator, token="not-a-token")
    with pytest.raises(AuthError, match="refused the configured token"):
        await client.get_all_sms()
    assert (await simulator.stats())["calls"].get("gettoken") is None


async def test_a_client_needs_credentials(session: aiohttp.ClientSession) -> None:
    """A client with neither email and password nor token cannot be built."""
    with pytest.raises(ValueError, match="email and a password, or a token"):
        GatewayClient(session, "http://127.0.0.1:9", email=EMAIL)


async def test_secrets_never_show_in_reprs_or_errors(
    session: aiohttp.ClientSession, simulator: SimulatorControl
) -> None:
    """Neither the password nor the token appears in the client's repr or its error messages."""
    client = make_client(session, simulator, password="hunter2-secret")
    with pytest.raises(AuthError) as caught:
        await client.get_all_sms()
    assert "hunter2" not in repr(client) and "hunter2" not in str(caught.value)
    good = make_client(session, simulator)
    await good.get_all_sms()
    token = next(iter(simulator.state._tokens))
    assert token not in repr(good)


# --- transport failures ---------------------------------------------------------------------------


async def test_a_server_error_is_upstream_unavailable(client: GatewayClient, simulator: SimulatorControl) -> None:
    """HTTP 500 raises UpstreamUnavailable that may have applied."""
    await simulator.fault("500", methods=["getallsms"])
    with pytest.raises(UpstreamUnavailable, match="HTTP 500") as caught:
        await client.get_all_sms()
    assert caught.value.maybe_applied


async def test_a_hang_beyond_the_timeout_is_upstream_unavailable(
    session: aiohttp.ClientSession, simulator: SimulatorControl
) -> None:
    """An answer slower than the client's timeout raises UpstreamUnavailable that may have applied."""
    client = make_client(session, simulator, timeout=0.2)
    await client.get_token()
    await simulator.fault("hang", methods=["addsms"], hang_seconds=0.5)
    with pytest.raises(UpstreamUnavailable, match="within 0.2s") as caught:
        await client.add_sms(outgoing())
    assert caught.value.maybe_applied

    async def applied() -> bool:
        return len(await simulator.get("sent")) == 1

    await eventually(applied, what="the hung addsms to be applied upstream")


@pytest.mark.parametrize("mode", ["malformed", "html", "not_object", "empty"])
async def test_garbage_answers_are_upstream_unavailable(
    client: GatewayClient, simulator: SimulatorControl, mode: str
) -> None:
    """Truncated JSON, HTML, a JSON list or an empty body raise MalformedResponse, a kind of UpstreamUnavailable."""
    await simulator.fault(mode, methods=["getalldevices"])
    with pytest.raises(MalformedResponse, match="getalldevices") as caught:
        await client.get_all_devices()
    assert isinstance(caught.value, UpstreamUnavailable) and caught.value.maybe_applied


async def test_an_error_after_the_send_applied_is_reported_as_maybe_applied(
    client: GatewayClient, simulator: SimulatorControl
) -> None:
    """A 500 answered after the SMS was stored is UpstreamUnavailable with maybe_applied, and the SMS exists."""
    await simulator.fault("500_applied", methods=["addsms"])
    with pytest.raises(UpstreamUnavailable) as caught:
        await client.add_sms(outgoing(customer_id=9))
    assert caught.value.maybe_applied
    assert [s.customer_id for s in await client.get_all_sms(customer_id=9)] == [9]


async def test_connection_refused_was_never_applied(session: aiohttp.ClientSession) -> None:
    """A refused connection raises UpstreamUnavailable with maybe_applied False."""
    port = free_port()
    client = GatewayClient(session, f"http://127.0.0.1:{port}", token="t", timeout=2)
    with pytest.raises(UpstreamUnavailable, match="cannot connect") as caught:
        await client.add_sms(outgoing())
    assert caught.value.maybe_applied is False


async def test_a_wrong_path_is_an_api_error(session: aiohttp.ClientSession, simulator: SimulatorControl) -> None:
    """An HTTP 404 (a wrong base URL) raises ApiError: retrying will not help."""
    client = GatewayClient(session, simulator.url + "/nothing", token="t", timeout=2)
    with pytest.raises(ApiError, match="HTTP 404"):
        await client.get_all_sms()
