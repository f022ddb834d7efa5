"""The dashboard over plain HTTP: sign-in, sessions, CSRF, escaping, secrets, pages and keyset pagination; every
test runs on SQLite, then on PostgreSQL."""

from __future__ import annotations

import html
import re
import time

from typing import Any

import aiohttp
from dashboard_support import HOOK_PATH, HOOK_SECRET, XSS, Dashboard, csrf_of
from running_bridge import API_KEY, RunningBridge
from simulator_control import SimulatorControl
from waiting import eventually
from webhook_sink import Reply, Sink

from bridge.appkeys import STORE

BOTH_ENGINES = True


PAGES = ("/ui/", "/ui/messages", "/ui/deliveries", "/ui/sends", "/ui/devices", "/ui/opt-outs", "/ui/rules")


async def test_signed_out_pages_lead_to_the_sign_in_form(bridge: RunningBridge, session: aiohttp.ClientSession):
    """Signed out, every page redirects to /ui/login, a form with one password field named `key`."""
    ui = Dashboard(bridge.url, session)
    for path in PAGES:
        async with session.get(bridge.url + path, allow_redirects=False) as response:
            assert (response.status, response.headers["Location"]) == (302, "/ui/login"), path
    status, page = await ui.get("/ui/login")
    assert status == 200
    assert page.count("<input") == 2 and 'type="password" id="key" name="key"' in page


async def test_a_wrong_key_is_refused_and_a_right_one_opens_a_strict_http_only_session(
        bridge: RunningBridge, session: aiohttp.ClientSession):
    """An unknown key gets 401 and no session; a configured key gets an HttpOnly SameSite=Strict cookie."""
    ui = Dashboard(bridge.url, session)
    refused = await ui.sign_in("not-a-key")
    assert refused.status == 401 and "bridge_session" not in refused.cookies
    accepted = await ui.sign_in()
    assert (accepted.status, accepted.headers["Location"]) == (303, "/ui/")
    cookie = accepted.cookies["bridge_session"]
    assert cookie["httponly"] and cookie["samesite"] == "Strict" and not cookie["secure"]
    assert (await ui.get("/ui/"))[0] == 200


async def test_the_session_cookie_is_secure_behind_an_https_public_url(start_bridge, session):
    """With server.public_url on https the session cookie carries Secure."""
    async with start_bridge(server="public_url: https://sms.example.com") as bridge:
        async with session.get(bridge.url + "/ui/login") as form:
            login = form.cookies["bridge_login"]  # Secure: the jar keeps it for https only, so it is sent by hand
            fields = {"csrf_token": csrf_of(await form.text()), "key": API_KEY}
        assert login["secure"]
        async with session.post(bridge.url + "/ui/login", data=fields, allow_redirects=False,
                                headers={"Cookie": f"bridge_login={login.value}"}) as response:
            assert response.status == 303 and response.cookies["bridge_session"]["secure"]


async def test_sign_in_attempts_are_limited_per_address(bridge: RunningBridge, session: aiohttp.ClientSession):
    """After ten attempts in a minute from one address the next is answered 429, even with the right key."""
    ui = Dashboard(bridge.url, session)
    statuses = [(await ui.sign_in("wrong")).status for _ in range(10)]
    assert statuses == [401] * 10
    assert (await ui.sign_in()).status == 429


async def test_a_post_without_its_csrf_token_is_refused_and_changes_nothing(ui: Dashboard, bridge: RunningBridge):
    """An opt-out POSTed without (or with a wrong) CSRF token is a 403 and the list stays empty."""
    for fields in ({"number": "+4915111111111"}, {"number": "+4915111111111", "csrf_token": "forged"}):
        async with ui.session.post(ui.url + "/ui/opt-outs", data=fields) as response:
            assert response.status == 403
    assert await bridge.app[STORE].fetch_all("SELECT number FROM opt_outs") == []


async def test_opt_outs_are_added_and_removed_as_the_keywords_do(ui: Dashboard, bridge: RunningBridge):
    """Adding a number from the form stores it as STOP would (normalized); Remove takes it off."""
    status, page = await ui.post("/ui/opt-outs", {"number": "+49 151 1111-1111", "action": "add"})
    assert status == 200 and "+4915111111111 opted out" in page
    assert [r[0] for r in await bridge.app[STORE].fetch_all("SELECT number FROM opt_outs")] == ["+4915111111111"]
    await ui.post("/ui/opt-outs", {"number": "+4915111111111", "action": "remove"})
    assert await bridge.app[STORE].fetch_all("SELECT number FROM opt_outs") == []


async def test_a_number_opted_out_from_the_form_in_any_spelling_refuses_sends_to_it(ui: Dashboard,
                                                                                      bridge: RunningBridge):
    """A number the form opts out as 0049… is refused when the API sends to it as +49…, as after STOP."""
    status, page = await ui.post("/ui/opt-outs", {"number": "0049 151 1111-1111", "action": "add"})
    assert status == 200 and "+4915111111111 opted out" in page
    status, answer = await bridge.send("+4915111111111", "hello", key=API_KEY)
    assert status == 202

    async def refused() -> bool:
        message = await bridge.message(answer["id"], key=API_KEY)
        return [(r["state"], r.get("reason")) for r in message["recipients"]] == [("refused", "opted_out")]
    await eventually(refused, what="the send to be refused as opted out")


async def test_pages_forbid_inline_script(ui: Dashboard):
    """Every page is served with a Content-Security-Policy that allows no inline script or style."""
    for path in PAGES:
        async with ui.session.get(ui.url + path) as response:
            policy = response.headers["Content-Security-Policy"]
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy, path


async def test_sms_text_is_shown_as_text(ui: Dashboard, sim: SimulatorControl, bridge: RunningBridge):
    """An SMS whose body is markup appears escaped on the list, the SMS page and the thread."""
    sms_id = await sim.inbound("+4915222222222", XSS)
    await eventually(lambda: bridge.received_ids(), what="the SMS to be recorded")
    for path in ("/ui/messages", f"/ui/messages/{sms_id}", "/ui/threads/%2B4915222222222"):
        _, page = await ui.get(path)
        assert "&lt;img src=x onerror=alert(1)&gt;" in page and XSS not in page, path


async def test_no_page_shows_a_secret(ui: Dashboard, sink: Sink, sim: SimulatorControl, bridge: RunningBridge):
    """Neither the API key, nor the webhook secret, nor the token in the webhook URL's path is on any page."""
    await sim.inbound("+4915222222222", "hello")
    await eventually(lambda: sink.delivered(), what="the webhook")
    for path in PAGES:
        _, page = await ui.get(path)
        for secret in (API_KEY, HOOK_SECRET, "t0ken-in-path"):
            assert secret not in page, (path, secret)


async def _stored(bridge: RunningBridge, count: int, number: str = "+4915333333333", first_id: int = 900_000
                  ) -> list[int]:
    """Store `count` inbound messages, one second apart, the newest last; their ids."""
    base = time.time() - count
    rows = [(first_id + i, "in", number, f"message {i}", 1576, 0, 5, None, "2026-01-01T00:00:00+00:00",
             base + i, base + i, None) for i in range(count)]
    async with bridge.app[STORE].transaction() as db:
        await db.insert_messages(rows)
    return [row[0] for row in rows]


def _ids_on(page: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-sms-id="(\d+)"', page)]


def _link(page: str, rel: str) -> str | None:
    found = re.search(rf'<a href="([^"]*)" rel="{rel}">', page)
    return html.unescape(found.group(1)) if found else None


async def test_messages_are_paged_newest_first_without_gaps_or_repeats(ui: Dashboard, bridge: RunningBridge):
    """120 messages come as pages of 50, 50 and 20, newest first; Older and Newer walk them both ways."""
    ids = await _stored(bridge, 120)
    _, first = await ui.get("/ui/messages")
    assert _ids_on(first) == ids[::-1][:50] and _link(first, "prev") is None
    _, second = await ui.get("/ui/messages" + _link(first, "next"))
    _, third = await ui.get("/ui/messages" + _link(second, "next"))
    assert _ids_on(second) + _ids_on(third) == ids[::-1][50:]
    assert _link(third, "next") is None
    _, back = await ui.get("/ui/messages" + _link(third, "prev"))
    assert _ids_on(back) == _ids_on(second)


async def test_messages_are_found_by_number_and_by_text(ui: Dashboard, bridge: RunningBridge):
    """A number (as typed, with spaces) finds that sender's messages; a word finds the texts containing it."""
    await _stored(bridge, 3, number="+4915444444444")
    await _stored(bridge, 2, number="+4915555555555", first_id=910_000)
    _, page = await ui.get("/ui/messages", q="+49 1544 4444 444")
    assert len(_ids_on(page)) == 3
    _, page = await ui.get("/ui/messages", q="MESSAGE 1")
    assert len(_ids_on(page)) == 2  # "message 1" of each batch
    _, page = await ui.get("/ui/messages", q="50%_off")
    assert _ids_on(page) == []


async def test_a_bad_filter_value_is_named_and_lists_everything_else(ui: Dashboard, bridge: RunningBridge):
    """An unreadable date or device is reported by field name; the page still answers 200."""
    status, page = await ui.get("/ui/messages", device="abc", **{"from": "yesterday"})
    assert status == 200 and "device: a device id is a number" in page and "from: a date is YYYY-MM-DD" in page


async def test_a_dead_delivery_is_replayed_from_its_row(ui: Dashboard, sink: Sink, sim: SimulatorControl,
                                                       bridge: RunningBridge):
    """A delivery dead after its two tries shows its attempts; Replay re-queues it and the sink gets it."""
    sink.answer(HOOK_PATH, Reply(500), Reply(500))
    await sim.inbound("+4915666666666", "hello")
    await eventually(lambda: bridge.app[STORE].fetch_all("SELECT id FROM outbox WHERE state = 'dead'"),
                     what="the delivery to be dead")
    _, page = await ui.get("/ui/deliveries", state="dead")
    assert page.count("<td>retry</td>") == 1 and page.count("<td>dead</td>") == 1 and "<td>500</td>" in page
    (row,) = await bridge.app[STORE].fetch_all("SELECT id FROM outbox")
    status, page = await ui.post(f"/ui/deliveries/{row[0]}/replay", {"back": "/ui/deliveries"},
                                 form_page="/ui/deliveries")
    assert status == 200 and f"Delivery {row[0]} re-queued." in page
    await eventually(lambda: sink.delivered(), what="the replayed delivery")


async def test_the_dry_run_form_shows_what_the_rules_would_do(ui: Dashboard):
    """Routing an inbound SMS in the form lists the matching rule and its webhook, escaped."""
    status, page = await ui.post("/ui/rules", {"event": "inbound", "from": "+4915777777777", "body": XSS})
    assert status == 200 and "rule every-inbound" in page and "webhook sink" in page
    assert XSS not in page


async def test_an_unknown_sms_is_a_404_page(ui: Dashboard):
    """An SMS id that is not stored answers 404 with a page saying so."""
    status, page = await ui.get("/ui/messages/424242")
    assert status == 404 and "No SMS with that id" in page



async def test_a_short_search_term_says_how_far_it_looked_and_goes_on(ui: Dashboard, bridge: RunningBridge):
    """A two-character term no recent message holds answers at once, saying it looked through the newest
    10,000 messages; Older goes on from there and finds the one old message holding it."""
    async with bridge.app[STORE].transaction() as db:
        await db.insert_messages([(99_999, "in", "+4915333333333", "zz top", 1576, 0, 5, None,
                                   "2026-01-01T00:00:00+00:00", 1.0, 1.0, None)])
    await _stored(bridge, 10_040, first_id=100_000)
    status, page = await ui.get("/ui/messages", q="zz")
    assert status == 200 and _ids_on(page) == [] and "Looked through 10,000 messages" in page
    _, older = await ui.get("/ui/messages" + _link(page, "next"))
    assert _ids_on(older) == [99_999]


async def test_devices_page_shows_pool_members_with_today_s_count_against_the_limit(
        start_bridge: Any, session: aiohttp.ClientSession) -> None:
    """With a pool, the devices page lists each member, its state and today's SMS against its daily limit."""
    pool = "pool:\n  members:\n    - {device_id: 1576, sim: 0, daily_limit: 1}\n    - {device_id: 1297, sim: 0}\n"
    async with start_bridge(extra=pool) as running:
        ui = Dashboard(running.url, session)
        await ui.sign_in()
        for to in ("+4915752982212", "+4915752982213"):
            async with session.post(f"{running.url}/v1/messages", json={"to": to, "body": "pooled"},
                                    headers={"Authorization": f"Bearer {API_KEY}"}) as response:
                assert response.status == 202

        async def both_counted() -> bool:
            status, page = await ui.get("/ui/devices")
            cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td>(.*?)</td>", page.split(
                'id="pool-members"')[1], re.S)]
            return status == 200 and cells == ["1576", "0", "daily_limit", "1 / 1", "1", "1297", "0", "usable", "1",
                                               "1"]

        await eventually(both_counted, what="both members counted on the devices page")
