"""A stateful SmsGateway24 simulator: the `/getdata/` API with the upstream's quirks, plus control endpoints.

Answers keep the reference's shapes: `error: 1` with HTTP 200 for every refusal, `smss` and
`device` as objects keyed by the id as a string (`smss: []` when empty), dates as PHP DateTime
objects in the account's zone. Outgoing messages walk 1 -> 3 -> 2 -> 6 -> 7, one step every
`pace` seconds, computed from their creation time when read (no background work), and end in 8
or 9 instead for a seeded `failure_rate` share. Control endpoints under `/simulator/` inject
incoming SMS, pin statuses, list what was accepted, inject faults and receive demo webhooks (DESIGN section 6).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import random
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bridge.gateway.models import Status

__all__ = ["SIMULATOR", "Simulator", "build_simulator_app", "serve_simulator"]

FIRST_SMS_ID = 62050000
FIRST_TAG_ID = 8303
FIRST_CONTACT_ID = 15954765
FIRST_PAKET_ID = 40100
BAD_CREDENTIALS = "Login or password incorrect"
OUTGOING_PATH = (1, 3, 2, 6, 7)
FAULT_MODES = frozenset(
    {"500", "502", "503", "500_applied", "hang", "malformed", "html", "not_object", "empty", "empty_smss",
     "auth", "stringly"}
)
_TITLES = {1: "new", 2: "sending", 3: "queued", 5: "incoming", 6: "sent", 7: "delivered", 8: "not delivered",
           9: "failed", 10: "no service", 11: "null pdu", 12: "radio off", 100: "not allowed",
           101: "not allowed"}
_INBOUND_SENDERS = ("+4917642111111", "+33612345678", "+5511987654321", "+919876543210", "+14155550123")
_INBOUND_TEXTS = ("INFO", "info please", "PRICE 42", "STOP", "START", "HELP", "hello", "{{ 7*7 }}",
                  "Order 12345: where is it?", "Ok, thanks!")


class _Refused(Exception):
    """An API refusal: answered as HTTP 200 `{"error": 1, "message": ...}`."""


@dataclass(slots=True)
class _Message:
    id: int
    sendto: str
    body: str
    device_id: int
    sim: int
    created: float  # whole Unix seconds, as the API shows and filters it
    walk_from: float  # when the status walk starts: creation, or the scheduled send time
    path: tuple[int, ...]  # the statuses it walks through; (5,) for an incoming SMS
    customer_id: int | None = None
    urgent: bool = False
    time_to_send: float | None = None
    paket: _Paket | None = None
    pinned: int | None = None
    method: str | None = None  # the API method that accepted it, for /simulator/sent


@dataclass(slots=True)
class _Paket:
    id: int
    title: str
    body: str


@dataclass(slots=True)
class _Device:
    id: int
    title: str
    imei: str
    serial: str
    created: float
    sims: list[dict[str, str]]
    delay_between_requests: int
    frozen_at: float | None = None
    lag: float = 0.0
    delay_between_sms: int | None = None


@dataclass(slots=True)
class _Fault:
    mode: str
    remaining: int
    methods: frozenset[str] | None
    hang_seconds: float


@dataclass(slots=True)
class _Tag:
    id: int
    title: str
    contacts: dict[str, str] = field(default_factory=dict)  # phone -> full name


class Simulator:
    """The state of one simulated account and its API; `build_simulator_app` serves it."""

    def __init__(
        self,
        *,
        timezone: str = "Europe/Paris",
        email: str = "demo@example.com",
        password: str = "demo",
        pace: float = 2.0,
        failure_rate: float = 0.0,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        ids_after: int | None = None,
    ) -> None:
        self.zone_name = timezone
        self.zone = ZoneInfo(timezone)
        self.email = email
        self.password = password
        self.pace = pace
        self.failure_rate = failure_rate
        self._clock = clock
        self._offset = 0.0
        self._fates = random.Random(seed)
        self._rng = random.Random(None if seed is None else seed + 1)
        self._tokens: set[str] = set()
        self._messages: list[_Message] = []  # sorted by (created, id)
        self._created: list[float] = []  # the messages' `created`, for bisect
        self._by_id: dict[int, _Message] = {}
        self._by_customer: dict[int, list[_Message]] = {}
        self._sent: list[_Message] = []
        self._next_id = max(FIRST_SMS_ID, ids_after or 0)  # ids continue above any a previous run handed out
        # The reference's example tag exists from the start, so example configs can tag into it.
        self._tags: dict[int, _Tag] = {FIRST_TAG_ID: _Tag(FIRST_TAG_ID, "Customers")}
        self._next_contact = FIRST_CONTACT_ID
        self._pakets: dict[int, _Paket] = {}
        self._faults: list[_Fault] = []
        self.calls: Counter[str] = Counter()
        self.webhooks: list[dict[str, Any]] = []  # what the demo webhook sink received, oldest first
        self.tokens_issued = 0
        self.shutting_down = asyncio.Event()
        self.devices = _default_devices(self.now())
        self._sim_failures: dict[tuple[int, int], int] = {}  # (device, sim) -> the status its new SMS end in

    # --- time and ids ---------------------------------------------------------------------------

    def now(self) -> float:
        """The simulator's Unix time (wall clock plus any `/simulator/clock` advance)."""
        return self._clock() + self._offset

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward (statuses walk, devices age)."""
        self._offset += seconds

    def _new_id(self) -> int:
        # Upstream ids are global to the service, so an account sees gaps between its own.
        self._next_id += self._rng.randint(1, 3)
        return self._next_id

    # --- messages -------------------------------------------------------------------------------

    def _store(self, message: _Message) -> _Message:
        if not self._messages or self._created[-1] <= message.created:
            index = len(self._messages)
        else:
            index = bisect.bisect_right(self._created, message.created)
        self._messages.insert(index, message)
        self._created.insert(index, message.created)
        self._by_id[message.id] = message
        if message.customer_id is not None:
            self._by_customer.setdefault(message.customer_id, []).append(message)
        return message

    def add_inbound(self, sender: str, body: str, device_id: int | None = None, sim: int = 0,
                    created_ago: float = 0.0) -> int:
        """Store an SMS the phone received (status 5; `sendto` is the sender); returns its id."""
        device = self._device(device_id)
        moment = self.now() - created_ago
        message = _Message(self._new_id(), sender, body, device.id, sim, float(int(moment)), moment, (5,))
        return self._store(message).id

    def _add_outgoing(self, item: Mapping[str, Any], method: str, paket: _Paket | None = None) -> list[int]:
        """Validate one addsms-like item and store one message per number of its `sendto`."""
        numbers = [n.strip() for n in _text(item, "sendto").split(",") if n.strip()]
        body = _text(item, "body")
        device = self._device(_int(item, "device_id", required=True))
        sim = _int(item, "sim") or 0
        if sim not in (0, 1):
            raise _Refused("Wrong sim: use 0 or 1")
        send_at = _date(item.get("timetosend"), self.zone, "timetosend")
        customer_id = _int(item, "customerid")
        urgent = bool(_int(item, "urgent"))
        if not numbers:
            raise _Refused("Parameter sendto is required")
        moment = self.now()
        ids = []
        for number in numbers:
            message = _Message(self._new_id(), number, body, device.id, sim, float(int(moment)),
                               max(moment, send_at or moment), self._fate(device.id, sim), customer_id, urgent,
                               send_at, paket, method=method)
            self._store(message)
            if paket is None:
                self._sent.append(message)
            ids.append(message.id)
        return ids

    def _fate(self, device_id: int, sim: int) -> tuple[int, ...]:
        failure = self._sim_failures.get((device_id, sim))
        if failure is not None:
            return (1, 3, 2, failure)
        if self._fates.random() >= self.failure_rate:
            return OUTGOING_PATH
        return (1, 3, 2, 6, 8) if self._fates.random() < 0.5 else (1, 3, 2, 9)

    def status_of(self, message: _Message, now: float) -> int:
        """A message's status at `now`: pinned, or how far it walked (not past its device's freeze)."""
        if message.pinned is not None:
            return message.pinned
        path = message.path
        if len(path) == 1:
            return path[0]
        device = self.devices.get(message.device_id)
        if device is not None and device.frozen_at is not None:
            now = min(now, device.frozen_at)
        elapsed = now - message.walk_from
        if elapsed < 0:
            return path[0]
        if self.pace <= 0:
            return path[-1]
        return path[min(int(elapsed // self.pace), len(path) - 1)]

    def pin_status(self, sms_id: int, status: int) -> None:
        """Fix a message's status from now on (KeyError when there is no such message)."""
        self._by_id[sms_id].pinned = status

    def add_history(self, count: int, *, days: float = 7.0, end_ago: float = 60.0,
                    inbound_ratio: float = 0.25, device_id: int | None = None) -> tuple[int, int]:
        """Add `count` old messages (final statuses) spread over `days` ending `end_ago` seconds ago."""
        device = self._device(device_id)
        end = self.now() - end_ago
        step = days * 86400 / max(count, 1)
        batch = []
        for index in range(count):
            moment = float(int(end - (count - 1 - index) * step))
            inbound = self._rng.random() < inbound_ratio
            path = (5,) if inbound else (self._fate(device.id, 0)[-1],)
            number = _INBOUND_SENDERS[index % len(_INBOUND_SENDERS)]
            batch.append(_Message(self._new_id(), number, f"History message {index}", device.id, 0, moment,
                                  moment, path))
        self._messages = sorted(self._messages + batch, key=lambda m: (m.created, m.id))
        self._created = [m.created for m in self._messages]
        self._by_id.update((m.id, m) for m in batch)
        return (batch[0].id, batch[-1].id) if batch else (0, 0)

    def query(self, *, begin: float | None, end: float | None, device_id: int | None, status: int | None,
              sim: int | None, customer_id: int | None, phone: str | None) -> list[_Message]:
        """Messages created in [begin, end] matching the filters, oldest first (O(log n + k) for a window)."""
        if customer_id is not None:
            candidates: list[_Message] = self._by_customer.get(customer_id, [])
        else:
            low = 0 if begin is None else bisect.bisect_left(self._created, begin)
            high = len(self._created) if end is None else bisect.bisect_right(self._created, end)
            candidates = self._messages[low:high]
        now = self.now()
        return [
            m for m in candidates
            if (begin is None or m.created >= begin) and (end is None or m.created <= end)
            and (device_id is None or m.device_id == device_id) and (sim is None or m.sim == sim)
            and (phone is None or m.sendto == phone)
            and (status is None or self.status_of(m, now) == status)
        ]

    # --- rendering ------------------------------------------------------------------------------

    def render_sms(self, message: _Message, now: float, zone: ZoneInfo, zone_name: str) -> dict[str, Any]:
        """A message exactly as getallsms shows it."""
        code = self.status_of(message, now)
        paket = message.paket
        return {
            "id": message.id,
            "sendto": message.sendto,
            "body": message.body,
            "customerid": message.customer_id,
            "status": code,
            "statustitle": _TITLES.get(code, "unknown"),
            "deviceid": message.device_id,
            "urgent": 1 if message.urgent else None,
            "created": _date_object(message.created, zone, zone_name),
            "senttime": None,
            "timetosend": None if message.time_to_send is None
            else _date_object(message.time_to_send, zone, zone_name),
            "paketid": paket.id if paket else None,
            "pakettitle": paket.title if paket else None,
            "paketbody": paket.body if paket else None,
        }

    def render_device(self, device: _Device, now: float) -> dict[str, Any]:
        """A device exactly as getalldevices shows it."""
        last_seen = device.frozen_at if device.frozen_at is not None else now - device.lag
        return {
            "id": device.id,
            "title": device.title,
            "number": None,
            "imei": device.imei,
            "created": _date_object(device.created, self.zone, self.zone_name),
            "createdhumanformat": _human(device.created, self.zone),
            "lastseen": _date_object(last_seen, self.zone, self.zone_name),
            "lastseenhumanformat": _human(last_seen, self.zone),
            "serialnumber": device.serial,
            "siminfo": [dict(sim) for sim in device.sims],
            "appversion": "12.1.21",
            "isappversionactual": False,
            "delaybetweeneachsms": device.delay_between_sms,
            "delaybetweenrequest": device.delay_between_requests,
            "subscription": True,
        }

    def sent(self) -> list[dict[str, Any]]:
        """What addsms, smstosend and addalotofsms accepted, in order."""
        now = self.now()
        return [
            {
                "sms_id": m.id, "to": m.sendto, "sendto": m.sendto, "body": m.body, "device_id": m.device_id,
                "sim": m.sim, "customerid": m.customer_id, "urgent": m.urgent,
                "timetosend": None if m.time_to_send is None else _plain(m.time_to_send, self.zone),
                "method": m.method, "status": self.status_of(m, now),
            }
            for m in self._sent
        ]

    # --- the API --------------------------------------------------------------------------------

    def _device(self, device_id: int | None) -> _Device:
        if device_id is None:
            return next(iter(self.devices.values()))
        device = self.devices.get(device_id)
        if device is None:
            raise _Refused("Device not found")
        return device

    def _check_token(self, token: object) -> None:
        if token not in self._tokens:
            raise _Refused(BAD_CREDENTIALS)

    def _check_login(self, params: Mapping[str, str]) -> None:
        if params.get("email") != self.email or params.get("pass") != self.password:
            raise _Refused(BAD_CREDENTIALS)

    def gettoken(self, params: Mapping[str, str]) -> dict[str, Any]:
        """gettoken: a new token for email + pass (older tokens stay valid until revoked)."""
        self._check_login(params)
        token = secrets.token_hex(16)
        self._tokens.add(token)
        self.tokens_issued += 1
        return {"error": 0, "message": "OK", "token": token}

    def accept_token(self, token: str) -> None:
        """Treat `token` as issued (an account's long-lived token)."""
        self._tokens.add(token)

    def revoke_tokens(self) -> int:
        """Make every issued token invalid; returns how many there were."""
        count = len(self._tokens)
        self._tokens.clear()
        return count

    def addsms(self, params: Mapping[str, str]) -> dict[str, Any]:
        """addsms: store an outgoing SMS (one per comma-separated number; the first id is answered)."""
        self._check_token(params.get("token"))
        ids = self._add_outgoing(params, "addsms")
        return {"error": 0, "sms_id": ids[0], "message": "Sms has been saved successfully"}

    def smstosend(self, params: Mapping[str, str]) -> dict[str, Any]:
        """smstosend: addsms authenticated with email and pass."""
        self._check_login(params)
        ids = self._add_outgoing(params, "smstosend")
        return {"error": 0, "sms_id": ids[0], "message": "Sms has been saved successfully"}

    def addalotofsms(self, params: Mapping[str, str]) -> dict[str, Any]:
        """addalotofsms: `datajson` = {"token", "smsdata": [...]}; all items are checked before any is stored."""
        try:
            data = json.loads(_text(params, "datajson"))
        except ValueError:
            raise _Refused("datajson is not valid JSON") from None
        if not isinstance(data, dict):
            raise _Refused("datajson must be an object")
        self._check_token(data.get("token", params.get("token")))
        items = data.get("smsdata")
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            raise _Refused("smsdata must be a non-empty list of objects")
        for item in items:
            self._validate_outgoing(item)
        for item in items:
            self._add_outgoing(item, "addalotofsms")
        return {"error": 0, "message": "OK"}

    def _validate_outgoing(self, item: Mapping[str, Any]) -> None:
        _text(item, "sendto")
        _text(item, "body")
        self._device(_int(item, "device_id", required=True))
        _date(item.get("timetosend"), self.zone, "timetosend")
        _int(item, "customerid")
        _int(item, "urgent")
        if (_int(item, "sim") or 0) not in (0, 1):
            raise _Refused("Wrong sim: use 0 or 1")

    def getallsms(self, params: Mapping[str, str]) -> dict[str, Any]:
        """getallsms with every filter; `timezone` renders and reads dates in that zone."""
        self._check_token(params.get("token"))
        zone_name = params.get("timezone") or self.zone_name
        zone = _zone(zone_name)
        found = self.query(
            begin=_date(params.get("begindate"), zone, "begindate"),
            end=_date(params.get("enddate"), zone, "enddate"),
            device_id=_int(params, "device_id"),
            status=_int(params, "status"),
            sim=_int(params, "sim"),
            customer_id=_int(params, "customerid"),
            phone=_phone(params.get("phone")),
        )
        if _int(params, "onlycount"):
            return {"error": 0, "message": "OK", "count": len(found)}
        if _int(params, "orderbydesc"):
            found.reverse()
        now = self.now()
        smss = {str(m.id): self.render_sms(m, now, zone, zone_name) for m in found}
        return {"error": 0, "message": "OK", "count": len(found), "smss": smss or []}

    def savetag(self, params: Mapping[str, str]) -> dict[str, Any]:
        """savetag: a new tag (contact list)."""
        self._check_token(params.get("token"))
        tag = _Tag(FIRST_TAG_ID + len(self._tags), _text(params, "title"))
        self._tags[tag.id] = tag
        return {"error": 0, "tag_id": tag.id, "message": "OK"}

    def savecontact(self, params: Mapping[str, str]) -> dict[str, Any]:
        """savecontact: a contact in an existing tag."""
        self._check_token(params.get("token"))
        phone, name = _text(params, "phone"), _text(params, "fullname")
        tag = self._tags.get(_int(params, "ctag_id", required=True))  # type: ignore[arg-type]
        if tag is None:
            raise _Refused("Tag not found")
        tag.contacts[phone.strip()] = name
        self._next_contact += 1
        return {"error": 0, "contact_id": self._next_contact, "message": "ok"}

    def savepaket(self, params: Mapping[str, str]) -> dict[str, Any]:
        """savepaket: a newsletter; one message per distinct contact of its tags."""
        self._check_token(params.get("token"))
        title, body = _text(params, "title"), _text(params, "body")
        device = self._device(_int(params, "device_id", required=True))
        tags = self._paket_tags(_text(params, "tags"))
        send_at = _paket_time(params.get("time_to_send"), self.zone)
        paket = _Paket(FIRST_PAKET_ID + len(self._pakets), title, body)
        self._pakets[paket.id] = paket
        phones = dict.fromkeys(phone for tag in tags for phone in tag.contacts)
        item = {"body": body, "device_id": device.id, "sim": params.get("sim") or 0,
                "timetosend": None if send_at is None else _plain(send_at, self.zone)}
        for phone in phones:
            self._add_outgoing({**item, "sendto": phone}, "savepaket", paket)
        return {"error": 0, "message": "OK", "paket_id": paket.id}

    def _paket_tags(self, text: str) -> list[_Tag]:
        try:
            ids = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            raise _Refused("tags must be tag ids separated by commas") from None
        missing = [tag_id for tag_id in ids if tag_id not in self._tags]
        if missing or not ids:
            raise _Refused(f"Tag not found: {missing[0] if missing else text}")
        return [self._tags[tag_id] for tag_id in ids]

    def getalldevices(self, params: Mapping[str, str]) -> dict[str, Any]:
        """getalldevices: the two simulated phones."""
        self._check_token(params.get("token"))
        now = self.now()
        devices = {str(d.id): self.render_device(d, now) for d in self.devices.values()}
        return {"error": 0, "message": "OK", "count": len(devices), "device": devices or []}

    def getsmsstatus(self, params: Mapping[str, str]) -> dict[str, Any]:
        """getsmsstatus: one message's status."""
        self._check_token(params.get("token"))
        message = self._by_id.get(_int(params, "sms_id", required=True))  # type: ignore[arg-type]
        if message is None:
            raise _Refused("Sms not found")
        code = self.status_of(message, self.now())
        return {"error": 0, "message": "OK", "sms_id": message.id, "status": code,
                "status_description": _TITLES.get(code, "unknown")}

    # --- faults and devices ---------------------------------------------------------------------

    def add_fault(self, mode: str, count: int, methods: list[str] | None, hang_seconds: float) -> None:
        """Make the next `count` calls (of `methods`, or any) fail in `mode`."""
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; one of {', '.join(sorted(FAULT_MODES))}")
        self._faults.append(_Fault(mode, count, frozenset(methods) if methods else None, hang_seconds))

    def clear_faults(self) -> None:
        """Forget every pending fault."""
        self._faults.clear()

    def take_fault(self, method: str) -> _Fault | None:
        """The fault that applies to this call of `method`, if any (it is used up)."""
        for fault in self._faults:
            if fault.remaining > 0 and (fault.methods is None or method in fault.methods):
                fault.remaining -= 1
                return fault
        return None

    def set_device(self, device_id: int, frozen: bool | None, last_seen_ago: float | None) -> _Device:
        """Freeze a device (last seen stops, its messages stop walking) or thaw it; set how long ago it was seen."""
        device = self._device(device_id)
        stays_frozen = device.frozen_at is not None if frozen is None else frozen
        if not stays_frozen:
            device.frozen_at = None
            if last_seen_ago is not None:
                device.lag = last_seen_ago
        elif frozen or last_seen_ago is not None:
            device.frozen_at = self.now() - (last_seen_ago or 0.0)
        return device

    def fail_sim(self, device_id: int, sim: int, status: int | None) -> None:
        """Make every SMS sent from now on through a device's SIM end in `status` (a failed one such as 10), or
        walk normally again with None."""
        self._device(device_id)
        if status is None:
            self._sim_failures.pop((device_id, sim), None)
        else:
            self._sim_failures[(device_id, sim)] = status

    def add_device(self, device_id: int | None = None, sims: int = 1, *, imei: str | None = None,
                   serial: str | None = None, delay_between_sms: int | None = None) -> _Device:
        """Add a phone with `sims` SIM slots (1 or 2); ids, IMEI and serial are made up when not given."""
        device_id = device_id if device_id is not None else max(self.devices, default=1000) + 1
        if device_id in self.devices:
            raise _Refused(f"device {device_id} exists")
        cards = [{"Slot": str(slot), "IccId": f"8949{device_id:08d}{slot:04d}", "Number": f"+49151{device_id:06d}{slot}",
                  "Roaming": "0", "CountryIso": "de", "CarrierName": "Telekom.de"} for slot in range(sims)]
        device = _Device(device_id, f"Phone {device_id}", imei or f"35{device_id:013d}", serial or f"SN{device_id}",
                         self.now(), cards, 1, lag=1.0, delay_between_sms=delay_between_sms)
        self.devices[device_id] = device
        return device

    def reauthenticate(self, device_id: int) -> _Device:
        """The upstream's quirk: a phone whose app signs in again shows up under a new id (same IMEI and serial);
        the old id is gone from getalldevices."""
        device = self.devices.pop(self._device(device_id).id)
        device.id = max([*self.devices, device.id]) + 1
        self.devices[device.id] = device
        return device

    def stats(self) -> dict[str, Any]:
        """Counters for tests: calls per method, tokens issued, stored messages, pending faults."""
        return {
            "calls": dict(self.calls),
            "tokens_issued": self.tokens_issued,
            "tokens_valid": len(self._tokens),
            "messages": len(self._messages),
            "faults_pending": sum(f.remaining for f in self._faults),
            "now": datetime.fromtimestamp(self.now(), timezone.utc).isoformat(),
        }

    async def generate_inbound(self, every: float) -> None:
        """Forever: every `every` seconds, an incoming SMS from one of a few numbers with a varied text."""
        while True:
            await asyncio.sleep(every)
            device = self._rng.choice(list(self.devices))
            self.add_inbound(self._rng.choice(_INBOUND_SENDERS), self._rng.choice(_INBOUND_TEXTS), device)


API_METHODS: dict[str, Callable[[Simulator, Mapping[str, str]], dict[str, Any]]] = {
    "gettoken": Simulator.gettoken,
    "addsms": Simulator.addsms,
    "smstosend": Simulator.smstosend,
    "addalotofsms": Simulator.addalotofsms,
    "getallsms": Simulator.getallsms,
    "savetag": Simulator.savetag,
    "savecontact": Simulator.savecontact,
    "savepaket": Simulator.savepaket,
    "getalldevices": Simulator.getalldevices,
    "getsmsstatus": Simulator.getsmsstatus,
}

SIMULATOR = web.AppKey("simulator", Simulator)


# --- helpers of the API -----------------------------------------------------------------------


def _default_devices(now: float) -> dict[int, _Device]:
    """Two phones shaped like the reference's getalldevices example (one SIM number has the lost `+`)."""
    emulator = _Device(1576, "AOSP_on_IA_Emulator", "358240051111110", "EMULATOR30X0X5X0", now - 90 * 86400, [
        {"Slot": "0", "IccId": "89014103211118510720", "Number": " 15555215554", "Roaming": "0",
         "CountryIso": "us", "CarrierName": "Android (T-Mobile)"},
        {"Slot": "1", "IccId": "89490200001234567890", "Number": "+4915100000001", "Roaming": "0",
         "CountryIso": "de", "CarrierName": "Telekom.de"},
    ], 1, lag=1.0)
    sdk = _Device(1297, "Android_SDK_built_for_x86", "null", "unknown", now - 120 * 86400, [
        {"Slot": "0", "IccId": "8949226172233934327", "Number": "+4915900000002", "Roaming": "1",
         "CountryIso": "de", "CarrierName": "Drillisch (o2)"},
    ], 10, lag=4.0)
    return {emulator.id: emulator, sdk.id: sdk}


def _text(params: Mapping[str, Any], name: str) -> str:
    value = params.get(name)
    if value is None or str(value).strip() == "":
        raise _Refused(f"Parameter {name} is required")
    return str(value)


def _int(params: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None or str(value).strip() in ("", "null"):
        if required:
            raise _Refused(f"Parameter {name} is required")
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        raise _Refused(f"Parameter {name} must be a number") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):
        raise _Refused(f"Unknown timezone {name}") from None


def _date(value: object, zone: ZoneInfo, name: str) -> float | None:
    """`YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS` read in `zone`, as Unix seconds."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    for pattern in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=zone).timestamp()
        except ValueError:
            continue
    raise _Refused(f"Wrong {name} format: use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS")


def _paket_time(value: object, zone: ZoneInfo) -> float | None:
    """savepaket's time_to_send: `DD.MM.YYYY H:i:s` (or `0`/absent for none)."""
    if value is None or str(value).strip() in ("", "0"):
        return None
    try:
        return datetime.strptime(str(value).strip(), "%d.%m.%Y %H:%M:%S").replace(tzinfo=zone).timestamp()
    except ValueError:
        raise _Refused("Wrong time_to_send format: use DD.MM.YYYY H:i:s") from None


def _phone(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    return "+" + value.strip() if value.startswith(" ") else value.strip()


def _date_object(moment: float, zone: ZoneInfo, zone_name: str) -> dict[str, Any]:
    local = datetime.fromtimestamp(moment, zone)
    return {"date": local.strftime("%Y-%m-%d %H:%M:%S.000000"), "timezone_type": 3, "timezone": zone_name}


def _human(moment: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(moment, zone).strftime("%d.%m.%Y %H:%M:%S")


def _plain(moment: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(moment, zone).strftime("%Y-%m-%d %H:%M:%S")


def _stringly(value: Any) -> Any:
    """Every number as a string, recursively (the upstream sometimes answers "15" for 15)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {key: _stringly(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_stringly(item) for item in value]
    return value


# --- HTTP -------------------------------------------------------------------------------------


async def _params(request: web.Request) -> dict[str, str]:
    """GET query and POST form fields together."""
    params = dict(request.query)
    if request.method == "POST" and request.content_type in (
        "application/x-www-form-urlencoded", "multipart/form-data"
    ):
        form = await request.post()
        params.update((key, value) for key, value in form.items() if isinstance(value, str))
    return params


async def _getdata(request: web.Request) -> web.StreamResponse:
    """One API call: faults first, then the method; refusals are HTTP 200 `error: 1`."""
    simulator = request.app[SIMULATOR]
    method = request.match_info["method"]
    handler = API_METHODS.get(method)
    if handler is None:
        raise web.HTTPNotFound(text="Not found")
    simulator.calls[method] += 1
    params = await _params(request)
    fault = simulator.take_fault(method)
    if fault is not None:
        early = await _early_fault(simulator, fault)
        if early is not None:
            return early
    try:
        answer = handler(simulator, params)
    except _Refused as refused:
        answer = {"error": 1, "message": str(refused)}
    return _late_fault(fault, answer)


async def _early_fault(simulator: Simulator, fault: _Fault) -> web.StreamResponse | None:
    """The answer of a fault that replaces the call (None: the call runs, perhaps after a hang)."""
    mode = fault.mode
    if mode.isdigit():
        return web.Response(status=int(mode), text="Internal Server Error")
    if mode == "hang":
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(simulator.shutting_down.wait(), fault.hang_seconds)
        return None
    canned = {
        "malformed": ('{"error":0,"message":"OK","smss":{"62050971":{"id":6205', "application/json"),
        "html": ("<html><body><h1>502 Bad Gateway</h1></body></html>", "text/html"),
        "not_object": ("[]", "application/json"),
        "empty": ("", "application/json"),
        "auth": (json.dumps({"error": 1, "message": BAD_CREDENTIALS}), "application/json"),
    }.get(mode)
    if canned is not None:
        return web.Response(text=canned[0], content_type=canned[1])
    return None


def _late_fault(fault: _Fault | None, answer: dict[str, Any]) -> web.Response:
    """The answer after the call ran: as is, or altered by the fault."""
    mode = fault.mode if fault is not None else None
    if mode == "500_applied":
        return web.Response(status=500, text="Internal Server Error")
    if mode == "empty_smss":
        answer.pop("smss", None)
    if mode == "stringly":
        answer = _stringly(answer)
    return web.json_response(answer)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be JSON"}),
                                 content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps({"error": "the body must be a JSON object"}),
                                 content_type="application/json")
    return body


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _control_inbound(request: web.Request) -> web.Response:
    """POST /simulator/inbound {"from", "body", "device_id"?, "sim"?, "created_ago"?} -> {"sms_id"}."""
    body = await _json(request)
    sender, text = body.get("from"), body.get("body")
    if not isinstance(sender, str) or not sender.strip() or not isinstance(text, str):
        return _bad('"from" and "body" must be strings')
    try:
        sms_id = request.app[SIMULATOR].add_inbound(
            sender.strip(), text, _opt_int(body.get("device_id")), _opt_int(body.get("sim")) or 0,
            float(body.get("created_ago") or 0),
        )
    except (_Refused, TypeError, ValueError) as exc:
        return _bad(str(exc))
    return web.json_response({"sms_id": sms_id})


async def _control_status(request: web.Request) -> web.Response:
    """POST /simulator/status {"sms_id", "status": code or name} pins a message's status."""
    body = await _json(request)
    try:
        sms_id = int(body["sms_id"])
        status = body["status"]
        code = Status.from_name(status)[0].value if isinstance(status, str) and not status.isdigit() else int(status)
    except (KeyError, TypeError, ValueError) as exc:
        return _bad(f"need an integer sms_id and a status code or name: {exc}")
    try:
        request.app[SIMULATOR].pin_status(sms_id, code)
    except KeyError:
        return _bad(f"no message {sms_id}", 404)
    return web.json_response({"sms_id": sms_id, "status": code})


async def _control_sent(request: web.Request) -> web.Response:
    """GET /simulator/sent: a list of what addsms/smstosend/addalotofsms accepted."""
    return web.json_response(request.app[SIMULATOR].sent())


_SINK_KEPT = 100  # the sink keeps the newest webhooks only: a demo runs for hours


async def _control_webhook_sink(request: web.Request) -> web.Response:
    """POST /simulator/webhooks: a webhook target for demos, answering 204; GET lists what it received."""
    simulator = request.app[SIMULATOR]
    if request.method == "GET":
        return web.json_response(simulator.webhooks)
    text = await request.text()
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = text
    simulator.webhooks.append({"webhook_id": request.headers.get("webhook-id"),
                               "content_type": request.content_type, "body": body})
    del simulator.webhooks[:-_SINK_KEPT]
    return web.Response(status=204)


async def _control_faults(request: web.Request) -> web.Response:
    """POST /simulator/faults {"count", "mode", "methods"?, "hang_seconds"?}; DELETE clears them."""
    simulator = request.app[SIMULATOR]
    if request.method == "DELETE":
        simulator.clear_faults()
        return web.json_response({"faults_pending": 0})
    body = await _json(request)
    try:
        count = int(body.get("count", body.get("fail", 1)))
        methods = body.get("methods")
        if methods is not None and not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
            raise ValueError("methods must be a list of method names")
        simulator.add_fault(str(body.get("mode", "500")), count, methods, float(body.get("hang_seconds", 30)))
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return web.json_response({"faults_pending": simulator.stats()["faults_pending"]})


async def _control_revoke(request: web.Request) -> web.Response:
    """POST /simulator/revoke_token: every issued token stops working."""
    return web.json_response({"revoked": request.app[SIMULATOR].revoke_tokens()})


async def _control_device(request: web.Request) -> web.Response:
    """POST /simulator/device {"device_id", "frozen"?, "last_seen_ago"?}."""
    body = await _json(request)
    try:
        frozen = body.get("frozen")
        ago = body.get("last_seen_ago")
        device = request.app[SIMULATOR].set_device(
            int(body["device_id"]), None if frozen is None else bool(frozen), None if ago is None else float(ago)
        )
    except (KeyError, TypeError, ValueError, _Refused) as exc:
        return _bad(f"need an existing device_id: {exc}")
    return web.json_response({"device_id": device.id, "frozen": device.frozen_at is not None})


async def _control_sim(request: web.Request) -> web.Response:
    """POST /simulator/sim {"device_id", "sim", "fail_with": status or null}: failures of one SIM."""
    body = await _json(request)
    try:
        status = body.get("fail_with")
        request.app[SIMULATOR].fail_sim(int(body["device_id"]), int(body.get("sim", 0)),
                                        None if status is None else int(status))
    except (KeyError, TypeError, ValueError, _Refused) as exc:
        return _bad(f"need an existing device_id, a sim and fail_with: {exc}")
    return web.json_response({"device_id": int(body["device_id"]), "sim": int(body.get("sim", 0)),
                              "fail_with": body.get("fail_with")})


async def _control_add_device(request: web.Request) -> web.Response:
    """POST /simulator/devices {"device_id"?, "sims"?, "imei"?, "serial"?, "delay_between_sms"?}: a new phone."""
    body = await _json(request)
    try:
        sims = int(body.get("sims", 1))
        if sims not in (1, 2):
            raise ValueError("sims must be 1 or 2")
        device = request.app[SIMULATOR].add_device(
            _opt_int(body.get("device_id")), sims, imei=body.get("imei"), serial=body.get("serial"),
            delay_between_sms=_opt_int(body.get("delay_between_sms")))
    except (TypeError, ValueError, _Refused) as exc:
        return _bad(str(exc))
    return web.json_response({"device_id": device.id})


async def _control_reauth(request: web.Request) -> web.Response:
    """POST /simulator/reauth {"device_id"}: the phone signs in again and gets a new id."""
    body = await _json(request)
    try:
        device = request.app[SIMULATOR].reauthenticate(int(body["device_id"]))
    except (KeyError, TypeError, ValueError, _Refused) as exc:
        return _bad(f"need an existing device_id: {exc}")
    return web.json_response({"device_id": device.id})


async def _control_clock(request: web.Request) -> web.Response:
    """POST /simulator/clock {"advance": seconds}: move the simulator's time forward."""
    body = await _json(request)
    try:
        request.app[SIMULATOR].advance(float(body.get("advance", 0)))
    except (TypeError, ValueError) as exc:
        return _bad(str(exc))
    return web.json_response({"now": request.app[SIMULATOR].stats()["now"]})


async def _control_stats(request: web.Request) -> web.Response:
    """GET /simulator/stats: calls per method, tokens issued, messages, pending faults."""
    return web.json_response(request.app[SIMULATOR].stats())


async def _control_history(request: web.Request) -> web.Response:
    """POST /simulator/bulk_history {"count", "days"?, "end_ago"?, "inbound_ratio"?, "device_id"?}."""
    body = await _json(request)
    try:
        first, last = request.app[SIMULATOR].add_history(
            int(body["count"]), days=float(body.get("days", 7)), end_ago=float(body.get("end_ago", 60)),
            inbound_ratio=float(body.get("inbound_ratio", 0.25)), device_id=_opt_int(body.get("device_id")),
        )
    except (KeyError, TypeError, ValueError, _Refused) as exc:
        return _bad(f"need an integer count: {exc}")
    return web.json_response({"count": int(body["count"]), "first_id": first, "last_id": last})


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def build_simulator_app(
    *,
    timezone: str = "Europe/Paris",
    email: str = "demo@example.com",
    password: str = "demo",
    pace: float = 2.0,
    failure_rate: float = 0.0,
    inbound_every: float | None = None,
    seed: int | None = None,
    token: str | None = None,
    ids_after: int | None = None,
) -> web.Application:
    """The simulator as an aiohttp application; its state is `app[SIMULATOR]`.

    `token`, when given, is accepted from the start, like a fixed token of a real account. Every SMS id it
    hands out is above `ids_after` (the largest id a previous run handed out), so no id is ever reused.
    """
    simulator = Simulator(timezone=timezone, email=email, password=password, pace=pace,
                          failure_rate=failure_rate, seed=seed, ids_after=ids_after)
    if token:
        simulator.accept_token(token)
    app = web.Application()
    app[SIMULATOR] = simulator
    app.router.add_route("GET", "/getdata/{method}", _getdata)
    app.router.add_route("POST", "/getdata/{method}", _getdata)
    app.router.add_post("/simulator/inbound", _control_inbound)
    app.router.add_post("/simulator/status", _control_status)
    app.router.add_get("/simulator/sent", _control_sent)
    app.router.add_post("/simulator/webhooks", _control_webhook_sink)
    app.router.add_get("/simulator/webhooks", _control_webhook_sink)
    app.router.add_post("/simulator/faults", _control_faults)
    app.router.add_delete("/simulator/faults", _control_faults)
    app.router.add_post("/simulator/revoke_token", _control_revoke)
    app.router.add_post("/simulator/device", _control_device)
    app.router.add_post("/simulator/clock", _control_clock)
    app.router.add_post("/simulator/sim", _control_sim)
    app.router.add_post("/simulator/devices", _control_add_device)
    app.router.add_post("/simulator/reauth", _control_reauth)
    app.router.add_get("/simulator/stats", _control_stats)
    app.router.add_post("/simulator/bulk_history", _control_history)
    app.on_shutdown.append(_release_hangs)
    if inbound_every:
        app.cleanup_ctx.append(_inbound_generator(inbound_every))
    return app


async def _release_hangs(app: web.Application) -> None:
    app[SIMULATOR].shutting_down.set()


def _inbound_generator(every: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(app[SIMULATOR].generate_inbound(every))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


@contextlib.asynccontextmanager
async def serve_simulator(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve a simulator app on host:port (0: a free port) and yield its base URL; stops on exit."""
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        yield f"http://{bound_host}:{bound_port}"
    finally:
        await runner.cleanup()
