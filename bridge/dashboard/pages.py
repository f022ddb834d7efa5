"""The dashboard's pages and actions: read through DashboardReads, act through the code the CLI uses."""

from __future__ import annotations

import json
import re
import time
from datetime import date, datetime
from datetime import time as day_time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from bridge import delivery, dryrun, pipeline
from bridge.appkeys import CONFIG, DELIVERY, POLLER, STORE
from bridge.dashboard import auth
from bridge.dashboard.render import Renderer
from bridge.store.dashboard import Cursor, DashboardReads, MessageFilter
from bridge.events import RULE_EVENT_NAMES
from bridge.gateway import parse
from bridge.gateway.models import STATUS_NAMES, Status
from bridge.numbers import normalize_number
from bridge.placement import member_reports
from bridge.rules import RuleError
from bridge.server import RateLimiter
from bridge.store import Store

RENDERER = web.AppKey("dashboard_renderer", Renderer)
KEYS = web.AppKey("dashboard_keys", tuple)
SIGN_IN_LIMITER = web.AppKey("dashboard_sign_in_limiter", RateLimiter)
SECURE_COOKIE = web.AppKey("dashboard_secure_cookie", bool)
SESSION = web.RequestKey("dashboard_session", auth.Session)

_NUMBER_QUERY = re.compile(r"\+?[\d\s().-]{4,}")
_DIRECTIONS = {"in": "inbound", "out": "outbound"}
_DELIVERY_STATES = tuple(str(state) for state in delivery.DeliveryState)


# --- rendering -------------------------------------------------------------------------------------


def page(request: web.Request, template: str, status: int = 200, **context: Any) -> web.Response:
    """A full page, with what every page shows (navigation, the CSRF token of forms, the notice of an action)."""
    session = request.get(SESSION)
    html = request.app[RENDERER].render(
        template, csrf_field=auth.CSRF_FIELD, csrf=session.csrf_token if session else "",
        signed_in=session is not None, path=request.path, notice=request.query.get("notice", ""), **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def refusal(request: web.Request, status: int, message: str) -> web.Response:
    """An error page (403 for a missing session or CSRF token, 404 for an unknown row)."""
    return page(request, "error.html", status, status_code=status, message=message)


def _done(location: str, notice: str) -> web.HTTPSeeOther:
    """Back to a page after an action, saying what was done."""
    joiner = "&" if "?" in location else "?"
    return web.HTTPSeeOther(f"{location}{joiner}notice={quote(notice)}")


def _reads(request: web.Request) -> DashboardReads:
    return DashboardReads(request.app[STORE])


def _store(request: web.Request) -> Store:
    return request.app[STORE]


# --- sign-in ---------------------------------------------------------------------------------------


async def to_overview(request: web.Request) -> web.StreamResponse:
    """`/ui` without the slash."""
    raise web.HTTPFound("/ui/")


async def login_form(request: web.Request) -> web.Response:
    """The sign-in form: one password field, `key`."""
    return _login_page(request)


def _login_page(request: web.Request, status: int = 200, error: str = "") -> web.Response:
    token = auth.login_token()
    response = page(request, "login.html", status, login_csrf=token, error=error)
    response.set_cookie(auth.LOGIN_COOKIE, token, path="/ui/login", httponly=True, samesite="Strict",
                        secure=request.app[SECURE_COOKIE])
    return response


async def login(request: web.Request) -> web.Response:
    """Check the key; a known one opens a session (a cookie) and goes to the overview."""
    limiter = request.app[SIGN_IN_LIMITER]
    if limiter.retry_after(request.remote or "", time.monotonic()) is not None:
        return _login_page(request, 429, "Too many sign-in attempts from this address; wait a minute.")
    form = await request.post()
    if not auth.login_token_ok(request.cookies.get(auth.LOGIN_COOKIE), _text(form.get(auth.CSRF_FIELD))):
        return _login_page(request, 403, "The sign-in form expired; try again.")
    key = auth.key_matches(_text(form.get("key")) or "", request.app[KEYS])
    if key is None:
        return _login_page(request, 401, "That key is not one of server.api_keys.")
    session = auth.open_session(key, time.time())
    response = web.HTTPSeeOther("/ui/")
    response.set_cookie(auth.SESSION_COOKIE, session.cookie(), path="/ui", httponly=True, samesite="Strict",
                        secure=request.app[SECURE_COOKIE], max_age=int(auth.SESSION_LIFETIME))
    response.del_cookie(auth.LOGIN_COOKIE, path="/ui/login")
    raise response


async def logout(request: web.Request) -> web.Response:
    """Forget the session cookie."""
    response = web.HTTPSeeOther("/ui/login")
    response.del_cookie(auth.SESSION_COOKIE, path="/ui")
    raise response


# --- overview --------------------------------------------------------------------------------------


async def overview(request: web.Request) -> web.Response:
    """Health, poll lag, queue depths, devices and today's counts."""
    reads, now = _reads(request), time.time()
    poller = request.app.get(POLLER)
    health = poller.health() if poller is not None else None
    devices = await reads.devices()
    return page(
        request, "overview.html", health=health, now=now,
        lag=None if health is None or health.last_success_ts is None else now - health.last_success_ts,
        depths=await reads.queue_depths(), counts=await reads.counts_since(_midnight(request, now)),
        online=sum(1 for d in devices if d["online"]), offline=sum(1 for d in devices if not d["online"]),
        disabled=await reads.disabled_targets(),
    )


def _midnight(request: web.Request, now: float) -> float:
    """The last local midnight in the account's zone, as Unix seconds."""
    zone = request.app[RENDERER].zone
    today = datetime.fromtimestamp(now, zone).date()
    return datetime.combine(today, day_time(), zone).timestamp()


# --- messages, an SMS, a thread ----------------------------------------------------------------------


async def messages(request: web.Request) -> web.Response:
    """Inbound and outbound messages, newest first: search, filters, keyset pages."""
    params = {k: request.query.get(k, "").strip() for k in ("q", "direction", "status", "device", "from", "to")}
    where, problems = _message_filter(params, request.app[RENDERER])
    found = await _reads(request).messages(where, before=Cursor.parse(request.query.get("before")),
                                           after=Cursor.parse(request.query.get("after")))
    live = where.empty and "before" not in request.query and "after" not in request.query
    return page(request, "messages.html", params=params, found=found, problems=problems, live=live,
                directions=_DIRECTIONS, statuses=STATUS_NAMES)


def _message_filter(params: dict[str, str], renderer: Renderer) -> tuple[MessageFilter, list[str]]:
    """The filter the form's fields ask for, and a sentence for each field that could not be read."""
    problems: list[str] = []
    q = params["q"]
    numbers: tuple[str, ...] = ()
    text = None
    if q and _NUMBER_QUERY.fullmatch(q):
        numbers = _number_forms(q)
    elif q:
        text = q
    statuses: tuple[int, ...] = ()
    if params["status"]:
        try:
            statuses = tuple(int(s) for s in Status.from_name(params["status"]))
        except ValueError:
            statuses = ()
        if not statuses:
            problems.append(f"status: no status is called {params['status']!r}")
    device = None
    if params["device"]:
        device = _int(params["device"])
        if device is None:
            problems.append("device: a device id is a number")
    since, until = _day(params["from"], renderer, problems, "from"), _day(params["to"], renderer, problems, "to")
    direction = params["direction"] if params["direction"] in _DIRECTIONS else None
    return MessageFilter(direction, statuses, device, since, None if until is None else until + 86400,
                         numbers, text), problems


def _number_forms(text: str) -> tuple[str, ...]:
    """The ways a number the user typed may be stored: as the poller keeps it, and with separators dropped."""
    forms = {parse.normalize_number(text) or "", normalize_number(text)}
    return tuple(sorted(f for f in forms if f))


def _day(text: str, renderer: Renderer, problems: list[str], name: str) -> float | None:
    """A YYYY-MM-DD date field as the Unix time of that local midnight."""
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError:
        problems.append(f"{name}: a date is YYYY-MM-DD")
        return None
    return datetime.combine(day, day_time(), renderer.zone).timestamp()


async def message(request: web.Request) -> web.Response:
    """One SMS: its status timeline, events, what the rules did, its sends and webhook deliveries."""
    sms_id = _int(request.match_info["id"])
    reads = _reads(request)
    row = await reads.message(sms_id) if sms_id is not None else None
    if row is None:
        return refusal(request, 404, "No SMS with that id is stored.")
    events = await reads.events_of_sms(row["id"])
    event_ids = [e["id"] for e in events]
    deliveries = await reads.deliveries_of_events(event_ids)
    attempts = _grouped(await reads.attempts_of([d["id"] for d in deliveries]), "outbox_id")
    actions = _grouped(await reads.actions_of(event_ids), "event_id")
    return page(
        request, "message.html", sms=row, timeline=_timeline(row, events), events=events, actions=actions,
        deliveries=deliveries, attempts=attempts, sends=await reads.sends_of_events(event_ids),
        sent_for=await reads.send_of_sms(row["id"]),
    )


def _timeline(row: Any, events: list[Any]) -> list[tuple[float, str, str]]:
    """(time, status name, how the bridge learnt it) for every status the bridge saw, oldest first."""
    seen: list[tuple[float, str, str]] = []
    first_status = True
    for event in events:
        payload = json.loads(event["payload"])
        sms = payload.get("sms") or {}
        if event["type"] == "sms.status":
            if first_status and sms.get("previous_status") is not None:
                seen.append((row["created_ts"], sms.get("previous_status_name") or "", "first seen"))
            first_status = False
            seen.append((event["created_ts"], sms.get("status_name") or "", "status change"))
        elif event["type"] == "sms.received":
            seen.append((row["created_ts"], "received", "received by the phone"))
        elif event["type"] == "sms.stuck":
            seen.append((event["created_ts"], f"stuck ({sms.get('status_name')})", "no progress"))
    if not seen:
        seen.append((row["created_ts"], Status.from_code(row["status"]).label, "first seen"))
    return seen


async def thread(request: web.Request) -> web.Response:
    """Every message with one number, as a conversation (oldest at the top of each page)."""
    number = request.match_info["number"]
    found = await _reads(request).messages(MessageFilter(numbers=_number_forms(number) or (number,)),
                                           before=Cursor.parse(request.query.get("before")),
                                           after=Cursor.parse(request.query.get("after")))
    return page(request, "thread.html", number=number, found=found, conversation=list(reversed(found.rows)))


# --- deliveries ------------------------------------------------------------------------------------


async def deliveries(request: web.Request) -> web.Response:
    """Webhook targets and their deliveries, each attempt with status, latency and the answer's start."""
    reads = _reads(request)
    config = request.app[CONFIG]
    target = request.query.get("target") or None
    state = request.query.get("state") if request.query.get("state") in _DELIVERY_STATES else None
    rows = await reads.deliveries(target, state, _int(request.query.get("before", "")))
    counts: dict[str, dict[str, int]] = {}
    for row in await reads.delivery_counts():
        counts.setdefault(row["target"] if row["kind"] == "webhook" else f"tag {row['target']}", {})[row["state"]] \
            = row["count"]
    disabled = {row["name"]: row for row in await reads.disabled_targets()}
    names = sorted(set(config.webhooks) | set(disabled) | {n for n in counts if not n.startswith("tag ")})
    targets = [{"name": name, "origin": config.webhooks[name].url if name in config.webhooks else None,
                "pending": counts.get(name, {}).get("pending", 0), "dead": counts.get(name, {}).get("dead", 0),
                "disabled": disabled.get(name)} for name in names]
    return page(request, "deliveries.html", targets=targets, rows=rows,
                attempts=_grouped(await reads.attempts_of([r["id"] for r in rows]), "outbox_id"),
                target=target, state=state, states=_DELIVERY_STATES,
                older=rows[-1]["id"] if len(rows) == 50 else None,
                back=request.path_qs)


async def replay_one(request: web.Request) -> web.Response:
    """Replay one dead delivery (as `sms-bridge replay ID`)."""
    delivery_id = _int(request.match_info["id"])
    if delivery_id is None:
        return refusal(request, 404, "No delivery with that id.")
    done = await delivery.replay(_store(request), time.time(), ids=[delivery_id])
    _wake(request)
    if done.requeued:
        notice = f"Delivery {delivery_id} re-queued."
    else:
        state = done.skipped[0][1] if done.skipped else None
        notice = f"Delivery {delivery_id} not re-queued: " + (f"it is {state}." if state else "no such delivery.")
    raise _done(await _back(request), notice)


async def replay_target(request: web.Request) -> web.Response:
    """Replay every dead delivery of a target and re-enable it (as `sms-bridge replay --target NAME`)."""
    name = request.match_info["name"]
    done = await delivery.replay(_store(request), time.time(), target=name)
    _wake(request)
    notice = f"{len(done.requeued)} dead deliveries to {name} re-queued."
    if done.enabled:
        notice += f" {name} re-enabled."
    raise _done(await _back(request), notice)


async def enable_target(request: web.Request) -> web.Response:
    """Re-enable a target that answered 410 Gone; what it kept is then sent (its dead deliveries stay dead)."""
    name = request.match_info["name"]
    done = await delivery.replay(_store(request), time.time(), ids=[], target=name)
    _wake(request)
    raise _done(await _back(request), f"{name} re-enabled." if done.enabled else f"{name} was not disabled.")


def _wake(request: web.Request) -> None:
    worker = request.app.get(DELIVERY)
    if worker is not None:
        worker.wake()


async def _back(request: web.Request) -> str:
    """Where an action returns to: the form's `back` field when it is a dashboard page, else the deliveries."""
    back = _text((await request.post()).get("back")) or ""
    return back if back.startswith("/ui/") and not back.startswith("//") else "/ui/deliveries"


# --- sends, devices, opt-outs ----------------------------------------------------------------------


async def sends(request: web.Request) -> web.Response:
    """Sends from the API, hooks and rules: state, recipients, upstream ids and reasons."""
    reads = _reads(request)
    found = await reads.sends(before=Cursor.parse(request.query.get("before"), str),
                              after=Cursor.parse(request.query.get("after"), str))
    recipients = _grouped(await reads.recipients_of([s["id"] for s in found.rows]), "send_id")
    return page(request, "sends.html", found=found, recipients=recipients)


async def devices(request: web.Request) -> web.Response:
    """Devices: online, last seen, SIMs and numbers, SMS handed upstream today per SIM, and the pool's members
    with today's count against their daily limit."""
    reads, now = _reads(request), time.time()
    sent = await reads.sent_per_member(_midnight(request, now))
    rows = []
    for device in await reads.devices():
        numbers = json.loads(device["numbers"])
        sims = [{"slot": slot, "number": number, "sent_today": sent.get((device["id"], slot), 0)}
                for slot, number in enumerate(numbers)] or [{"slot": None, "number": None, "sent_today": 0}]
        rows.append({"device": device, "sims": sims,
                     "sent_today": sum(v for (d, _), v in sent.items() if d == device["id"])})
    pool = request.app[CONFIG].pool
    members = [] if pool is None else await member_reports(request.app[STORE], pool, request.app[RENDERER].zone, now)
    return page(request, "devices.html", devices=rows, pool=pool, members=members)


async def opt_outs(request: web.Request) -> web.Response:
    """The opt-out list in number order, with forms to add and remove numbers."""
    rows = await _reads(request).opt_outs(request.query.get("after") or None)
    return page(request, "opt_outs.html", rows=rows, older=rows[-1]["number"] if len(rows) == 50 else None)


async def change_opt_out(request: web.Request) -> web.Response:
    """Put a number on the opt-out list or take it off, as the STOP and START keywords do."""
    form = await request.post()
    number = (_text(form.get("number")) or "").strip()
    opted_out = _text(form.get("action")) != "remove"
    if not number or len(number) > 64:
        raise _done("/ui/opt-outs", "Give a number (up to 64 characters).")
    region = request.app[CONFIG].gateway.default_region
    async with _store(request).transaction() as db:
        normal = await pipeline.set_opted_out(db, number, opted_out, "dashboard", time.time(), region)
    raise _done("/ui/opt-outs", f"{normal} {'opted out' if opted_out else 'opted in again'}.")


# --- rules dry run ---------------------------------------------------------------------------------


async def rules_form(request: web.Request) -> web.Response:
    """The `route` command as a form."""
    return page(request, "rules.html", form={}, lines=None, error=None, events=RULE_EVENT_NAMES,
                statuses=STATUS_NAMES)


async def rules_dry_run(request: web.Request) -> web.Response:
    """Route the event the form describes through the rules and show what they would do; sends nothing."""
    form = {k: (_text(v) or "").strip() for k, v in (await request.post()).items() if k != auth.CSRF_FIELD}
    config = request.app[CONFIG]
    route = dryrun.RouteRequest(
        event=form.get("event") if form.get("event") in RULE_EVENT_NAMES else "inbound",
        sender=form.get("from") or None, to=form.get("to") or None, body=form.get("body"),
        status=form.get("status") if form.get("status") in STATUS_NAMES else None,
        sms_id=_int(form.get("sms_id", "")) or 1, device_id=_int(form.get("device_id", "")),
    )
    lines, error = None, None
    try:
        lines = dryrun.route_lines(config, route, datetime.now(request.app[RENDERER].zone))
    except (dryrun.RouteError, RuleError) as exc:
        error = str(exc)
    return page(request, "rules.html", form=form, lines=lines, error=error, events=RULE_EVENT_NAMES,
                statuses=STATUS_NAMES)


# --- small helpers ---------------------------------------------------------------------------------


def _grouped(rows: list[Any], column: str) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = {}
    for row in rows:
        out.setdefault(row[column], []).append(row)
    return out


def _int(text: str | None) -> int | None:
    """A decimal id from a URL or form, or None."""
    return int(text) if text and text.isascii() and text.isdigit() and len(text) < 19 else None


def _text(value: Any) -> str | None:
    """A form field's text (None for a file or an absent field)."""
    return value if isinstance(value, str) else None

