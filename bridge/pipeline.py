"""What the poller and the push path observe -> stored state, events and their actions, exactly once.

`Pipeline.record` runs one transaction per batch of observations. Inside it, each observation is
compared with the stored message or device row (so two sources racing each other — a push and a
poll — are judged against the same, current state); the row changes, each new event (its dedupe key
is unique: an event recorded before is skipped), the actions the rules plan for it (outbox rows,
queued sends, opt-outs, cooldowns) and the poll cursors covering the batch are written together.
A crash at any instant leaves either all of it or none of it: an event is never both lost and
emitted, and never emitted twice.

Choices where the upstream leaves room:
- A status only moves forward (1 -> 3 -> 2 -> 6 -> final); a stale report of an earlier status, or
  any change after a final status, is ignored. A jump (1 -> 7 seen in one poll) is ONE `sms.status`
  event whose previous_status is the last status the bridge saw: the bridge reports what it
  observed and never invents intermediate steps.
- An outgoing message first seen already past pending (sent by another tool) gets one `sms.status`
  event with previous_status null; first seen pending, it is only recorded.
- A device first seen offline gives `device.offline` (a current condition, not history); each
  outage episode (keyed by the last-seen time it started with) gives one offline and one online.
- `occurred_at` is the message's `created` for `sms.received`, and the time the bridge noticed the
  change for every other event (the upstream does not say when a status changed).
- Safety: the opt-out/opt-in keywords act on every inbound SMS, rule or no rule. A send planned by
  a rule to an alphanumeric sender id or to one of the account's own SIM numbers is refused unless
  the action allows it; a reply is refused within `safety.reply_cooldown` of the same rule's last
  reply to the same sender. The opt-out list and the loop guard are applied by the sender. Numbers
  are compared as numbers (`bridge.numbers.number_readings`): opt-outs and cooldowns are kept under every
  E.164 number a spelling may stand for, so `+4915…`, `004915…`, `015…` and `4915…` are one sender.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple


from bridge import device_identity
from bridge import safety as checks
from bridge.config import SafetyConfig
from bridge.events import DeviceFacts, Event, EventType, SmsFacts, device_event, sms_event
from bridge.gateway.models import Device, Sms, Status
from bridge.metrics import Metrics
from bridge.numbers import is_alphanumeric_sender, number_readings
from bridge.rules import AddTag, Deliver, OptIn, OptOut, PlannedAction, Router, SendSms
from bridge.store import DeviceRecord, EventAction, NewDelivery, NewSend, Row, Store, Tx
from bridge.templating import to_json

log = logging.getLogger(__name__)

# Progress of an outgoing message; every final status ranks above every open one.
_RANK = {Status.UNKNOWN: 0, Status.PENDING: 1, Status.QUEUED: 2, Status.TAKEN: 3, Status.SENT: 4}
_FINAL_RANK = 5


# --- observations ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsSeen:
    """A message as getallsms or the push path reported it.

    `history` marks a message that existed before the bridge's first start: the first sighting is
    recorded without an event (later status changes of it are events).
    """

    sms: Sms
    history: bool = False


@dataclass(frozen=True, slots=True)
class StatusSeen:
    """A status reported for a message by id alone (getsmsstatus, the delivery-status push)."""

    sms_id: int
    status: Status


@dataclass(frozen=True, slots=True)
class StuckSuspected:
    """An outgoing message the poller found waiting past `poll.stuck_after`; confirmed in the transaction."""

    sms_id: int


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    """A device as getalldevices reported it, and whether it counts as online now."""

    device: Device
    online: bool


Observation = SmsSeen | StatusSeen | StuckSuspected | DeviceSeen


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one `record` call committed: the new events (in order) and how many sends/deliveries they queued."""

    events: tuple[Event, ...]
    sends: int
    deliveries: int


# --- the batch: observations judged against stored rows ----------------------------------------


@dataclass(slots=True)
class _Message:
    """A message's stored state while a batch is judged (later observations see earlier ones' changes)."""

    id: int
    direction: str
    number: str
    body: str
    device_id: int | None
    sim: int | None
    status: Status
    customer_id: int | None
    created: datetime
    due_ts: float | None
    stuck_reported: bool

    @classmethod
    def of_row(cls, row: Row) -> _Message:
        """The state of a stored `messages` row."""
        return cls(row["id"], row["direction"], row["number"], row["body"], row["device_id"], row["sim"],
                   Status.from_code(row["status"]), row["customer_id"], datetime.fromisoformat(row["created"]),
                   row["due_ts"], bool(row["stuck_reported"]))


def advances(old: Status, new: Status) -> bool:
    """True when `new` is later in an outgoing message's life than `old` (nothing follows a final status)."""
    if old.is_final or new is Status.RECEIVED:
        return False
    return _RANK.get(new, _FINAL_RANK) > _RANK.get(old, _FINAL_RANK)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _due_ts(sms: Sms) -> float | None:
    return sms.time_to_send.timestamp() if sms.time_to_send is not None else None


class _Batch:
    """The changes one `record` call makes, decided before any is written."""

    def __init__(self, known: dict[int, _Message], devices: dict[int, Row], now: float) -> None:
        self.known = known
        self.devices = devices
        self.numbers = {i: json.loads(row["numbers"]) for i, row in devices.items()}
        self.now = now
        self.now_dt = _utc(now)
        self.new_rows: list[tuple[Any, ...]] = []
        self.status_changes: list[tuple[int, int, float]] = []
        self.due_changes: list[tuple[int, float]] = []
        self.stuck: list[int] = []
        self.device_rows: list[DeviceRecord] = []
        self.device_moves: list[tuple[int, int]] = []
        self.events: list[Event] = []

    def own_number(self, device_id: int | None, sim: int | None) -> str | None:
        """The number of the SIM a message went through; with the slot unknown, the device's only number."""
        numbers = self.numbers.get(device_id) if device_id is not None else None
        if not numbers:
            return None
        if sim is None:
            known = [n for n in numbers if n]
            return known[0] if len(known) == 1 else None
        return numbers[sim] if 0 <= sim < len(numbers) else None

    def see(self, observation: Observation) -> None:
        """Judge one observation against the current state."""
        if isinstance(observation, SmsSeen):
            self._sms(observation.sms, observation.history)
        elif isinstance(observation, StatusSeen):
            self._status(observation.sms_id, observation.status)
        elif isinstance(observation, StuckSuspected):
            self._stuck(observation.sms_id)
        else:
            self._device(observation.device, observation.online)

    def _sms(self, sms: Sms, history: bool) -> None:
        message = self.known.get(sms.id)
        if message is not None:
            if sms.time_to_send is not None and message.due_ts is None and message.direction == "out":
                message.due_ts = _due_ts(sms)
                self.due_changes.append((sms.id, message.due_ts))
            self._status(sms.id, sms.status)
            return
        incoming = sms.is_incoming
        message = _Message(sms.id, "in" if incoming else "out", sms.number, sms.body, sms.device_id, sms.sim,
                           sms.status, sms.customer_id, sms.created, _due_ts(sms), False)
        self.known[sms.id] = message
        self.new_rows.append((sms.id, message.direction, sms.number, sms.body, sms.device_id, sms.sim,
                              int(sms.status), sms.customer_id, sms.created.isoformat(), sms.created.timestamp(),
                              self.now, message.due_ts))
        if history:
            return
        own = self.own_number(sms.device_id, sms.sim)
        if incoming:
            self.events.append(sms_event(EventType.RECEIVED, SmsFacts.incoming(sms, own), sms.created))
        elif sms.status not in (Status.PENDING, Status.UNKNOWN):
            self.events.append(sms_event(EventType.STATUS, SmsFacts.outgoing(sms, own, None), self.now_dt))

    def _status(self, sms_id: int, status: Status) -> None:
        message = self.known.get(sms_id)
        # A status for a message never stored (another tool's, not polled yet) waits for the poll to bring it.
        if message is None or message.direction != "out" or not advances(message.status, status):
            return
        previous, message.status = message.status, status
        self.status_changes.append((sms_id, int(status), self.now))
        self.events.append(sms_event(EventType.STATUS, self._facts(message, previous), self.now_dt))

    def _stuck(self, sms_id: int) -> None:
        message = self.known.get(sms_id)
        if message is None or message.stuck_reported or not message.status.is_waiting:
            return
        message.stuck_reported = True
        self.stuck.append(sms_id)
        self.events.append(sms_event(EventType.STUCK, self._facts(message, None), self.now_dt))

    def _facts(self, message: _Message, previous: Status | None) -> SmsFacts:
        return SmsFacts(message.id, self.own_number(message.device_id, message.sim), message.number, message.body,
                        message.device_id, message.sim, message.status, previous, message.created,
                        message.customer_id)

    def _device(self, device: Device, online: bool) -> None:
        """Store the device; an online/offline flip is an event whose episode is the last-seen time it went quiet."""
        row = self.devices.get(device.id)
        numbers = _numbers_by_slot(device)
        self.numbers[device.id] = numbers
        seen = device.last_seen.timestamp() if device.last_seen is not None else None
        was_online = bool(row["online"]) if row is not None else True
        if was_online and not online:
            self.events.append(device_event(False, DeviceFacts.of(device), self.now_dt, _episode(seen)))
        elif not was_online and online:
            self.events.append(device_event(True, DeviceFacts.of(device), self.now_dt, _episode(row["last_seen_ts"])))
        elif not online and row is not None:
            seen = row["last_seen_ts"]  # keep the time the episode started while it lasts
        self.device_rows.append(DeviceRecord(device.id, device.title, online, seen, json.dumps(numbers), device.imei,
                                             device.serial_number, device.sms_delay))


def _numbers_by_slot(device: Device) -> list[str | None]:
    """The device's SIM numbers indexed by slot (None where a slot's number is unknown)."""
    slots = [sim.slot for sim in device.sims if 0 <= sim.slot < 16]
    numbers: list[str | None] = [None] * (max(slots) + 1 if slots else 0)
    for sim in device.sims:
        if 0 <= sim.slot < len(numbers):
            numbers[sim.slot] = sim.number
    return numbers


def _episode(last_seen_ts: float | None) -> str:
    return "never" if last_seen_ts is None else str(int(last_seen_ts))


# --- the pipeline ------------------------------------------------------------------------------


class Pipeline:
    """Records observations as state, events and routed actions, one transaction per batch."""

    def __init__(self, store: Store, router: Router, safety: SafetyConfig, metrics: Metrics,
                 clock: Callable[[], float] = time.time, *, default_region: str | None = None) -> None:
        self.store = store
        self.region = default_region
        self.router = router
        self.safety = safety
        self.metrics = metrics
        self.clock = clock
        self.on_sends: Callable[[], None] | None = None
        self.on_deliveries: Callable[[], None] | None = None
        # The sender learns the ids of SMS it handed over from what the batch lists, before the batch is judged.
        self.learn_ids: Callable[[Tx, Sequence[Sms], float], Awaitable[int]] | None = None
        # Folded once: every inbound SMS is checked against them.
        self._opt_out = frozenset(checks.keyword_of(k) for k in safety.opt_out_keywords) - {""}
        self._opt_in = frozenset(checks.keyword_of(k) for k in safety.opt_in_keywords) - {""}

    async def record(self, observations: Sequence[Observation], cursors: Mapping[str, str] | None = None,
                     fence: Callable[[Tx], Awaitable[None]] | None = None) -> Recorded:
        """Write the state changes, new events and actions of `observations` (and `cursors`) in one transaction;
        `fence`, awaited first inside it, may refuse the whole batch by raising (a poll by a replaced leader)."""
        now = self.clock()
        async with self.store.transaction() as db:
            if fence is not None:
                await fence(db)
            if self.learn_ids is not None:
                await self.learn_ids(db, [o.sms for o in observations if isinstance(o, SmsSeen)], now)
            batch = await self._judge(db, observations, now)
            await self._write_state(db, batch)
            events = await self._new_events(db, batch.events, now)
            sends, deliveries, routed = await self._act(db, events, batch, now)
            for name, value in (cursors or {}).items():
                await db.set_cursor(name, value)
        self._after_commit(events, routed, sends, deliveries, batch.device_moves)
        return Recorded(tuple(events), sends, deliveries)

    async def _judge(self, db: Tx, observations: Sequence[Observation], now: float) -> _Batch:
        ids = {o.sms.id if isinstance(o, SmsSeen) else o.sms_id
               for o in observations if not isinstance(o, DeviceSeen)}
        rows = await db.messages_by_id(ids) if ids else {}
        batch = _Batch({i: _Message.of_row(row) for i, row in rows.items()}, await db.device_rows(), now)
        # Devices first: messages in the same batch then name the SIM numbers just reported.
        for observation in sorted(observations, key=lambda o: not isinstance(o, DeviceSeen)):
            batch.see(observation)
        if batch.device_rows:
            batch.device_moves = device_identity.moves(batch.devices, batch.device_rows)
        return batch

    @staticmethod
    async def _write_state(db: Tx, batch: _Batch) -> None:
        if batch.new_rows:
            await db.insert_messages(batch.new_rows)
        if batch.status_changes:
            await db.update_message_statuses(batch.status_changes)
        for sms_id, due_ts in batch.due_changes:
            await db.set_message_due(sms_id, due_ts)
        if batch.stuck:
            await db.mark_stuck_reported(batch.stuck)
        if batch.device_rows:
            await db.upsert_devices(batch.device_rows, batch.now)
        if batch.device_moves:
            await db.move_devices(batch.device_moves, batch.now)

    @staticmethod
    async def _new_events(db: Tx, candidates: list[Event], now: float) -> list[Event]:
        """Insert the events not recorded before; returns them in order."""
        if not candidates:
            return []
        known = await db.known_event_keys([e.dedupe_key for e in candidates])
        fresh: list[Event] = []
        for event in candidates:
            if event.dedupe_key not in known:
                known.add(event.dedupe_key)
                fresh.append(event)
        await db.insert_events([(e.id, e.dedupe_key, str(e.type), to_json(e.to_json()), now,
                                 e.sms.id if e.sms else None) for e in fresh])
        return fresh

    async def _act(self, db: Tx, events: list[Event], batch: _Batch,
                   now: float) -> tuple[int, int, list[_Routed]]:
        """Apply the keyword safety and the routed actions of each new event.

        Returns the sends and deliveries queued, and each event with its planned actions.
        """
        sends = 0
        outbox: list[NewDelivery] = []  # written together after the loop: one statement for the batch
        routed: list[_Routed] = []
        taken: list[EventAction] = []
        own_numbers = [n for numbers in batch.numbers.values() for n in numbers if n]
        for event in events:
            notes: list[str] = []
            if event.type is EventType.RECEIVED and event.sms is not None and event.sms.sender:
                keyword = await self._keywords(db, event.id, event.sms, now, notes)
                if keyword is not None:
                    taken.append(keyword)
            try:
                actions = self.router.route(event, batch.now_dt)
            except Exception:  # a routing bug must not block every later event behind this one
                log.exception("routing failed; the event is recorded without actions", extra={"event_id": event.id})
                actions = ()
            routed.append(_Routed(event, actions, notes))
            for index, action in enumerate(actions):
                done = await self._apply(db, event, index, action, own_numbers, now, notes, outbox)
                taken.append(done)
                sends += done.outcome == "queued" and done.action in ("reply", "send")
        if outbox:
            await db.insert_deliveries(outbox, now)
        await db.insert_event_actions(taken)
        return sends, len(outbox), routed

    async def _keywords(self, db: Tx, event_id: str, sms: SmsFacts, now: float,
                        notes: list[str]) -> EventAction | None:
        """The opt-out / opt-in keywords of `safety` (as checks.is_opt_out / is_opt_in read them)."""
        word = checks.keyword_of(sms.body)
        if not word or (word not in self._opt_out and word not in self._opt_in):
            return None
        opted_out = word in self._opt_out
        sender = await set_opted_out(db, sms.sender or "", opted_out, "keyword", now, self.region)
        notes.append(_opt_note(sender, opted_out, f"keyword {word.upper()}"))
        # Position -1: before the rules' actions, which are numbered from 0.
        return EventAction(event_id, -1, None, "opt_out" if opted_out else "opt_in", sender, "done",
                           f"safety keyword {word.upper()}")

    async def _apply(self, db: Tx, event: Event, index: int, action: PlannedAction,
                     own_numbers: list[str], now: float, notes: list[str], outbox: list[NewDelivery]) -> EventAction:
        """Write one planned action (a delivery is added to `outbox`, for the caller to write for the whole
        batch); returns what became of it.

        What safety did or refused is added to `notes`, logged after the event's own line.
        """
        if isinstance(action, SendSms):
            verb = "reply" if action.is_reply else "send"
            refusal = await self._refusal(db, action, own_numbers, now)
            if refusal is not None:
                notes.append(f"safety: rule {action.rule}: no {verb} to {action.to}: {refusal.message}")
                self.metrics.sends.labels(outcome=f"refused_{refusal.value}").inc()
                return EventAction(event.id, index, action.rule, verb, action.to, "refused", refusal.value)
            await db.insert_send(NewSend(
                id=_send_id(event, index), source=f"rule:{action.rule}", recipients=(action.to,), body=action.text,
                device_id=action.device_id, sim=action.sim, event_id=event.id, is_reply=action.is_reply,
            ), now)
            return EventAction(event.id, index, action.rule, verb, action.to, "queued")
        if isinstance(action, Deliver):
            spec: dict[str, object] = {"match": dict(action.match)}
            if action.template is not None:
                spec["template"] = action.template
            outbox.append(NewDelivery(event.id, "webhook", action.webhook, action.rule, spec))
            return EventAction(event.id, index, action.rule, "webhook", action.webhook, "queued")
        if isinstance(action, AddTag):
            spec = {"phone": action.phone, "name": action.name}
            outbox.append(NewDelivery(event.id, "tag", str(action.tag_id), action.rule, spec))
            return EventAction(event.id, index, action.rule, "tag", str(action.tag_id), "queued")
        if isinstance(action, (OptOut, OptIn)):
            opted_out = isinstance(action, OptOut)
            number = await set_opted_out(db, action.number, opted_out, f"rule:{action.rule}", now,
                                         self.region)
            notes.append(_opt_note(number, opted_out, f"rule {action.rule}"))
            return EventAction(event.id, index, action.rule, "opt_out" if opted_out else "opt_in", number, "done")
        log.warning("rule %s: action %d could not be planned: %s", action.rule, action.action_index,
                    action.message, extra={"event_id": event.id})
        return EventAction(event.id, index, action.rule, "failed", None, "failed", action.message)

    async def _refusal(self, db: Tx, action: SendSms, own_numbers: list[str],
                       now: float) -> checks.Refusal | None:
        """Why a rule's send must not go out (alphanumeric, own number, reply cooldown), or None."""
        if not action.allow_alphanumeric and is_alphanumeric_sender(action.to):
            return checks.Refusal.ALPHANUMERIC
        if not action.allow_own_numbers and checks.is_own_number(action.to, own_numbers, self.region):
            return checks.Refusal.OWN_NUMBER
        if action.is_reply:
            readings = number_readings(action.to, self.region)
            replies = [ts for number in readings if (ts := await db.last_reply_ts(action.rule, number)) is not None]
            if not checks.cooldown_allows(_utc(max(replies)) if replies else None, _utc(now),
                                          self.safety.reply_cooldown):
                return checks.Refusal.COOLDOWN
            for number in readings:
                await db.note_reply(action.rule, number, now)
        return None

    def _after_commit(self, events: Iterable[Event], routed: list[_Routed], sends: int, deliveries: int,
                      moves: Iterable[tuple[int, int]]) -> None:
        for old, new in moves:
            log.warning("device %d signed in again and is listed as device %d now; pool members on it follow it",
                        old, new)
        for event, actions, notes in routed:
            log.info("%s: %s", event.type, describe(event, actions), extra={"event_id": event.id})
            for note in notes:
                log.info("%s", note, extra={"event_id": event.id})
        for kind, count in Counter(event.type for event in events).items():
            self.metrics.events.labels(type=str(kind)).inc(count)
        if sends and self.on_sends is not None:
            self.on_sends()
        if deliveries and self.on_deliveries is not None:
            self.on_deliveries()


class _Routed(NamedTuple):
    """A new event, the actions its rules planned and what safety did about it (log lines, in order)."""

    event: Event
    actions: tuple[PlannedAction, ...]
    notes: list[str]


async def set_opted_out(db: Tx, number: str, opted_out: bool, source: str, now: float, region: str | None) -> str:
    """Put every number a spelling may stand for (read in `region`) on the opt-out list, or take them off;
    returns the likeliest one."""
    readings = number_readings(number, region)
    for reading in readings:
        await db.set_opted_out(reading, opted_out, source, now)
    return readings[0]


def _opt_note(number: str, opted_out: bool, why: str) -> str:
    """The log line of an opt-out or an opt-in."""
    if opted_out:
        return f"safety: {number} opted out ({why}): nothing is sent to it from now on"
    return f"safety: {number} opted in ({why}): sends to it are allowed again"


def describe(event: Event, actions: Sequence[PlannedAction]) -> str:
    """One log line's worth of an event and what the rules made of it."""
    if event.sms is not None:
        sms = event.sms
        parties = "".join(f" {word} {number}" for word, number in (("from", sms.sender), ("to", sms.recipient))
                          if number)
        what = f"sms {sms.id}{parties}: {sms.body[:60]!r} ({sms.status.label})"
    elif event.device is not None:
        what = f"device {event.device.id} {event.device.title!r}"
    else:
        what = event.id
    rules = sorted({a.rule for a in actions})
    return f"{what} -> rules: {', '.join(rules)}" if rules else f"{what} -> no rule"


def _send_id(event: Event, index: int) -> str:
    """A stable id for the send planned by action `index` of an event."""
    return "msg_" + hashlib.sha256(f"{event.id}/{index}".encode()).hexdigest()[:26]
