"""The simulator over raw HTTP: the reference's shapes and quirks, the status walk, and the control endpoints."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from gateway_support import EMAIL, PASSWORD
from simulator_control import MakeSimulator, SimulatorControl
from test_gateway_parse import ADDALOTOFSMS_DATAJSON, ADDALOTOFSMS_REQUEST
from waiting import eventually

from bridge.gateway.simulator import FIRST_SMS_ID

SMS_KEYS = ["id", "sendto", "body", "customerid", "status", "statustitle", "deviceid", "urgent", "created",
            "senttime", "timetosend", "paketid", "pakettitle", "paketbody"]
DEVICE_KEYS = {"id", "title", "number", "imei", "created", "createdhumanformat", "lastseen", "lastseenhumanformat",
               "serialnumber", "siminfo", "appversion", "isappversionactual", "delaybetweeneachsms",
               "delaybetweenrequest", "subscription"}


async def call(sim: SimulatorControl, method: str, **fields: Any) -> Any:
    """POST a form to /getdata/METHOD and return the JSON answer (asserting HTTP 200)."""
    async with sim.session.post(f"{sim.url}/getdata/{method}", data={k: str(v) for k, v in fields.items()}) as resp:
        assert resp.status == 200
        return await resp.json()


async def token_of(sim: SimulatorControl) -> str:
    """A fresh token from gettoken."""
    return (await call(sim, "gettoken", email=EMAIL, **{"pass": PASSWORD}))["token"]


async def add(sim: SimulatorControl, token: str, **fields: Any) -> int:
    """addsms with defaults for the required fields; returns the id."""
    fields.setdefault("sendto", "+4915752982212")
    fields.setdefault("body", "hi")
    fields.setdefault("device_id", 1576)
    return (await call(sim, "addsms", token=token, **fields))["sms_id"]


async def test_empty_smss_is_an_empty_list(simulator: SimulatorControl) -> None:
    """getallsms with no messages answers `smss: []`, as the upstream does."""
    answer = await call(simulator, "getallsms", token=await token_of(simulator))
    assert answer["smss"] == [] and answer["error"] == 0


async def test_messages_are_keyed_by_id_string_with_the_reference_fields(simulator: SimulatorControl) -> None:
    """`smss` is an object keyed by the id as a string; each message has exactly the reference's fields."""
    token = await token_of(simulator)
    sms_id = await add(simulator, token)
    smss = (await call(simulator, "getallsms", token=token))["smss"]
    assert list(smss) == [str(sms_id)]
    message = smss[str(sms_id)]
    assert list(message) == SMS_KEYS
    assert message["created"]["timezone_type"] == 3 and message["created"]["timezone"] == "Europe/Paris"
    assert message["created"]["date"].endswith(".000000")


async def test_bad_tokens_and_missing_parameters_are_error_1_with_http_200(simulator: SimulatorControl) -> None:
    """Refusals are HTTP 200 with `error: 1` and a message."""
    assert await call(simulator, "getallsms", token="nope") == {"error": 1, "message": "Login or password incorrect"}
    missing = await call(simulator, "addsms", token=await token_of(simulator), body="hi", device_id=1576)
    assert missing["error"] == 1 and "sendto" in missing["message"]


async def test_get_with_query_parameters_works_and_plus_needs_escaping(simulator: SimulatorControl) -> None:
    """GET is accepted; a `+` escaped as %2B survives while a bare `+` turns into a space, as upstream."""
    token = await token_of(simulator)
    url = f"{simulator.url}/getdata/addsms?token={token}&body=hi&device_id=1576&sendto="
    for number in ("%2B4915752982212", "+4915752982212"):
        async with simulator.session.get(url + number) as resp:
            assert (await resp.json())["error"] == 0
    sent = await simulator.get("sent")
    assert [s["sendto"] for s in sent] == ["+4915752982212", "4915752982212"]


async def test_devices_have_the_reference_shape(simulator: SimulatorControl) -> None:
    """getalldevices answers two devices keyed by id with the reference's fields and the space-for-plus quirk."""
    answer = await call(simulator, "getalldevices", token=await token_of(simulator))
    assert answer["count"] == 2 and list(answer["device"]) == ["1576", "1297"]
    emulator = answer["device"]["1576"]
    assert set(emulator) == DEVICE_KEYS
    assert emulator["siminfo"][0]["Number"] == " 15555215554" and emulator["siminfo"][0]["Slot"] == "0"


async def test_outgoing_status_walks_1_3_2_6_7_one_step_per_pace(make_simulator: MakeSimulator) -> None:
    """Each `pace` seconds of simulator time moves an outgoing SMS one step along 1, 3, 2, 6, 7."""
    sim = await make_simulator(pace=60)
    token = await token_of(sim)
    sms_id = await add(sim, token)
    walked = []
    for _ in range(6):
        walked.append((await call(sim, "getsmsstatus", token=token, sms_id=sms_id))["status"])
        await sim.post("clock", {"advance": 60})
    assert walked == [1, 3, 2, 6, 7, 7]


async def test_failures_are_seeded_and_reproducible(make_simulator: MakeSimulator) -> None:
    """The same seed and failure rate give the same final statuses."""
    finals = []
    for _ in range(2):
        sim = await make_simulator(pace=0, failure_rate=0.5, seed=42)
        token = await token_of(sim)
        for i in range(30):
            await add(sim, token, sendto=f"+4915{i:07d}")
        finals.append([s["status"] for s in await sim.get("sent")])
    assert finals[0] == finals[1] and {7, 8, 9} == set(finals[0])


async def test_a_pinned_status_stays(make_simulator: MakeSimulator) -> None:
    """POST /simulator/status fixes a status (by code or name) whatever the walk says."""
    sim = await make_simulator(pace=0)
    token = await token_of(sim)
    sms_id = await add(sim, token)
    assert await sim.post("status", {"sms_id": sms_id, "status": "radio_off"}) == {
        "sms_id": sms_id, "status": 12}
    assert (await call(sim, "getsmsstatus", token=token, sms_id=sms_id))["status"] == 12


async def test_pinning_an_unknown_sms_is_404(simulator: SimulatorControl) -> None:
    """Pinning a status of a message that does not exist answers 404."""
    async with simulator.session.post(simulator.url + "/simulator/status", json={"sms_id": 1, "status": 7}) as resp:
        assert resp.status == 404


async def test_inbound_sms_have_status_5_and_the_sender_as_sendto(simulator: SimulatorControl) -> None:
    """An injected incoming SMS is status 5 with sendto = the sender, on the chosen device."""
    sms_id = await simulator.inbound("+33612345678", "PRICE 42", device_id=1297)
    assert sms_id > FIRST_SMS_ID
    message = (await call(simulator, "getallsms", token=await token_of(simulator)))["smss"][str(sms_id)]
    assert (message["status"], message["sendto"], message["body"], message["deviceid"]) == (
        5, "+33612345678", "PRICE 42", 1297)


async def test_ids_increase(simulator: SimulatorControl) -> None:
    """Every new message gets a larger id than the one before."""
    ids = [await simulator.inbound("+33612345678", str(i)) for i in range(10)]
    assert ids == sorted(set(ids))


async def test_a_frozen_device_stops_being_seen_and_sending(make_simulator: MakeSimulator) -> None:
    """A frozen device keeps its last-seen time and its outgoing SMS stay pending."""
    sim = await make_simulator(pace=0)
    token = await token_of(sim)
    await sim.post("device", {"device_id": 1576, "frozen": True, "last_seen_ago": 3600})
    sms_id = await add(sim, token)
    await sim.post("clock", {"advance": 120})
    seen = (await call(sim, "getalldevices", token=token))["device"]["1576"]["lastseen"]["date"]
    assert (await call(sim, "getsmsstatus", token=token, sms_id=sms_id))["status"] == 1
    await sim.post("clock", {"advance": 120})
    assert (await call(sim, "getalldevices", token=token))["device"]["1576"]["lastseen"]["date"] == seen
    await sim.post("device", {"device_id": 1576, "frozen": False})
    assert (await call(sim, "getsmsstatus", token=token, sms_id=sms_id))["status"] == 7


async def test_last_seen_follows_the_clock(simulator: SimulatorControl) -> None:
    """An unfrozen device's last-seen time advances with the simulator's clock."""
    token = await token_of(simulator)
    before = (await call(simulator, "getalldevices", token=token))["device"]["1297"]["lastseen"]["date"]
    await simulator.post("clock", {"advance": 3600})
    after = (await call(simulator, "getalldevices", token=token))["device"]["1297"]["lastseen"]["date"]
    assert after > before


async def test_the_timezone_parameter_renders_in_that_zone(simulator: SimulatorControl) -> None:
    """getallsms with `timezone` renders dates naming that zone."""
    sms_id = await simulator.inbound("+33612345678", "hello")
    answer = await call(simulator, "getallsms", token=await token_of(simulator), timezone="America/Sao_Paulo")
    assert answer["smss"][str(sms_id)]["created"]["timezone"] == "America/Sao_Paulo"
    bad = await call(simulator, "getallsms", token=await token_of(simulator), timezone="Mars/Base")
    assert bad["error"] == 1


async def test_begindate_and_enddate_window_the_messages(make_simulator: MakeSimulator) -> None:
    """begindate/enddate, read in the account zone, select the messages created between them (inclusive)."""
    sim = await make_simulator(timezone="Asia/Kolkata")
    old = await sim.inbound("+33612345678", "old", created_ago=7200)
    new = await sim.inbound("+33612345678", "new", created_ago=60)
    token = await token_of(sim)
    shown = (await call(sim, "getallsms", token=token))["smss"][str(old)]["created"]["date"][:19]
    just_after = (datetime.fromisoformat(shown) + timedelta(seconds=1)).strftime("%Y-%m-%d %H:%M:%S")
    assert list((await call(sim, "getallsms", token=token, begindate=shown, enddate=shown))["smss"]) == [str(old)]
    assert list((await call(sim, "getallsms", token=token, begindate=just_after))["smss"]) == [str(new)]


async def test_onlycount_answers_only_the_count(simulator: SimulatorControl) -> None:
    """onlycount=1 answers the count without messages."""
    await simulator.inbound("+33612345678", "hello")
    answer = await call(simulator, "getallsms", token=await token_of(simulator), onlycount=1)
    assert answer == {"error": 0, "message": "OK", "count": 1}


@pytest.mark.parametrize("example", [ADDALOTOFSMS_DATAJSON, ADDALOTOFSMS_REQUEST])
async def test_the_reference_addalotofsms_examples_are_accepted(make_simulator: MakeSimulator, example: str) -> None:
    """Both datajson examples of the reference are stored (with the token swapped and the device existing)."""
    sim = await make_simulator()
    data = json.loads(example)
    data["token"] = await token_of(sim)
    for item in data["smsdata"]:
        item["device_id"] = 1576
    assert await call(sim, "addalotofsms", datajson=json.dumps(data)) == {"error": 0, "message": "OK"}
    sent = await sim.get("sent")
    assert [(s["sendto"], s["body"], s["sim"]) for s in sent] == [
        (i["sendto"], i["body"], i["sim"]) for i in data["smsdata"]]
    assert sent[0]["timetosend"] == "2019-07-01 23:50:00"


async def test_a_bad_batch_stores_nothing(simulator: SimulatorControl) -> None:
    """An addalotofsms batch with one invalid item is refused whole."""
    data = {"token": await token_of(simulator), "smsdata": [
        {"sendto": "+331", "body": "ok", "device_id": 1576}, {"sendto": "+332", "body": "bad", "device_id": 5}]}
    assert (await call(simulator, "addalotofsms", datajson=json.dumps(data)))["error"] == 1
    assert await simulator.get("sent") == []


async def test_old_tokens_stay_valid_until_revoked(simulator: SimulatorControl) -> None:
    """A new gettoken does not invalidate older tokens; revoke_token invalidates them all."""
    first, second = await token_of(simulator), await token_of(simulator)
    assert (await call(simulator, "getalldevices", token=first))["count"] == 2
    assert await simulator.post("revoke_token") == {"revoked": 2}
    assert (await call(simulator, "getalldevices", token=second))["error"] == 1


async def test_faults_hit_only_the_named_methods_and_are_used_up(simulator: SimulatorControl) -> None:
    """A fault limited to getallsms leaves other methods alone and ends after its count."""
    token = await token_of(simulator)
    await simulator.fault("500", count=1, methods=["getallsms"])
    assert (await call(simulator, "getalldevices", token=token))["count"] == 2
    async with simulator.session.post(f"{simulator.url}/getdata/getallsms", data={"token": token}) as resp:
        assert resp.status == 500
    assert (await call(simulator, "getallsms", token=token))["error"] == 0


async def test_deleting_faults_clears_them(simulator: SimulatorControl) -> None:
    """DELETE /simulator/faults forgets pending faults."""
    await simulator.fault("500", count=5)
    async with simulator.session.delete(simulator.url + "/simulator/faults") as resp:
        assert await resp.json() == {"faults_pending": 0}
    assert (await call(simulator, "gettoken", email=EMAIL, **{"pass": PASSWORD}))["error"] == 0


async def test_an_unknown_fault_mode_is_refused(simulator: SimulatorControl) -> None:
    """POST /simulator/faults with an unknown mode answers 400."""
    async with simulator.session.post(simulator.url + "/simulator/faults", json={"mode": "explode"}) as resp:
        assert resp.status == 400


async def test_stats_count_calls_and_tokens(simulator: SimulatorControl) -> None:
    """GET /simulator/stats counts calls per method and tokens issued."""
    token = await token_of(simulator)
    await call(simulator, "getallsms", token=token)
    await call(simulator, "getallsms", token=token)
    stats = await simulator.stats()
    assert stats["calls"] == {"gettoken": 1, "getallsms": 2} and stats["tokens_issued"] == 1


async def test_bulk_history_of_100000_keeps_windowed_reads_cheap(simulator: SimulatorControl) -> None:
    """After 100,000 historical messages a one-hour window is answered from an index, in milliseconds."""
    answer = await simulator.post("bulk_history", {"count": 100_000, "days": 30})
    assert answer["count"] == 100_000 and answer["last_id"] > answer["first_id"]
    state = simulator.state
    now = state.now()
    best = float("inf")
    for _ in range(3):
        started = time.process_time()  # CPU time: other processes on the machine do not count
        found = state.query(begin=now - 7200, end=now - 3600, device_id=None, status=None, sim=None,
                            customer_id=None, phone=None)
        best = min(best, time.process_time() - started)
    assert 100 < len(found) < 300
    assert best < 0.005


async def test_the_inbound_generator_produces_varied_messages(make_simulator: MakeSimulator) -> None:
    """With inbound_every set, incoming SMS appear on their own from several numbers."""
    sim = await make_simulator(inbound_every=0.005)
    token = await token_of(sim)

    async def enough() -> bool:
        return (await call(sim, "getallsms", token=token, onlycount=1))["count"] >= 20

    await eventually(enough, what="20 generated incoming SMS")
    smss = (await call(sim, "getallsms", token=token, status=5))["smss"].values()
    assert len({m["sendto"] for m in smss}) > 1 and len({m["body"] for m in smss}) > 1


async def test_control_inbound_validates_its_body(simulator: SimulatorControl) -> None:
    """POST /simulator/inbound without a sender answers 400."""
    async with simulator.session.post(simulator.url + "/simulator/inbound", json={"body": "x"}) as resp:
        assert resp.status == 400


async def test_unknown_api_methods_are_404(session: aiohttp.ClientSession, simulator: SimulatorControl) -> None:
    """A method the API does not have answers 404."""
    async with session.get(simulator.url + "/getdata/nothing") as resp:
        assert resp.status == 404


async def test_webhook_sink_keeps_what_it_receives(simulator: SimulatorControl) -> None:
    """POST /simulator/webhooks answers 204 and GET lists each body with its webhook-id, newest last."""
    url = simulator.url + "/simulator/webhooks"
    for n in range(2):
        async with simulator.session.post(url, json={"n": n}, headers={"webhook-id": f"evt_{n}"}) as answer:
            assert answer.status == 204
    async with simulator.session.post(url, data="plain text", headers={"Content-Type": "text/plain"}) as answer:
        assert answer.status == 204
    listed = await simulator.get("webhooks")
    assert [(w["webhook_id"], w["body"]) for w in listed] == [("evt_0", {"n": 0}), ("evt_1", {"n": 1}),
                                                               (None, "plain text")]


async def add_on(simulator: SimulatorControl, token: str, device_id: int, slot: int) -> int:
    """addsms on one device and SIM slot; returns the id."""
    fields = {"token": token, "sendto": "+4915752982212", "body": "hi", "device_id": device_id, "sim": slot}
    async with simulator.session.post(f"{simulator.url}/getdata/addsms", data={k: str(v) for k, v in fields.items()}
                                      ) as response:
        return (await response.json())["sms_id"]


async def test_added_devices_and_their_sims_are_listed_and_take_sends(simulator: SimulatorControl) -> None:
    """A device added over /simulator/devices appears in getalldevices with its SIMs and its pacing, and takes
    SMS on either SIM."""
    added = (await simulator.post("devices", {"sims": 2, "delay_between_sms": 5}))["device_id"]
    token = await token_of(simulator)
    device = (await call(simulator, "getalldevices", token=token))["device"][str(added)]
    assert [sim["Slot"] for sim in device["siminfo"]] == ["0", "1"]
    assert device["delaybetweeneachsms"] == 5
    sms_id = await add_on(simulator, token, added, 1)
    assert [(s["sms_id"], s["device_id"], s["sim"]) for s in simulator.state.sent()] == [(sms_id, added, 1)]


async def test_a_failing_sim_ends_its_new_sms_in_the_given_status(simulator: SimulatorControl) -> None:
    """After /simulator/sim fail_with 10, SMS through that SIM walk to 10; the other SIM's still deliver."""
    simulator.state.pace = 0
    await simulator.post("sim", {"device_id": 1576, "sim": 1, "fail_with": 10})
    token = await token_of(simulator)
    failing, fine = await add_on(simulator, token, 1576, 1), await add_on(simulator, token, 1576, 0)
    statuses = {s["sms_id"]: s["status"] for s in simulator.state.sent()}
    assert (statuses[failing], statuses[fine]) == (10, 7)
    await simulator.post("sim", {"device_id": 1576, "sim": 1, "fail_with": None})
    again = await add_on(simulator, token, 1576, 1)
    assert {s["sms_id"]: s["status"] for s in simulator.state.sent()}[again] == 7


async def test_a_reauthenticated_device_shows_up_under_a_new_id(simulator: SimulatorControl) -> None:
    """/simulator/reauth gives a phone a new id with the same IMEI and serial; the old id is gone."""
    token = await token_of(simulator)
    before = (await call(simulator, "getalldevices", token=token))["device"]["1576"]
    new_id = (await simulator.post("reauth", {"device_id": 1576}))["device_id"]
    devices = (await call(simulator, "getalldevices", token=token))["device"]
    assert "1576" not in devices and new_id != 1576
    assert (devices[str(new_id)]["imei"], devices[str(new_id)]["serialnumber"]) == (before["imei"],
                                                                                  before["serialnumber"])
