"""Typed values of the SmsGateway24 API: statuses, messages, devices and SIM cards."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime


class Status(enum.IntEnum):
    """An SMS status code as the upstream numbers it (note the order 1, 3, 2)."""

    UNKNOWN = 0
    PENDING = 1
    QUEUED = 3
    TAKEN = 2
    RECEIVED = 5
    SENT = 6
    DELIVERED = 7
    NOT_DELIVERED = 8
    FAILED = 9
    NO_SERVICE = 10
    NULL_PDU = 11
    RADIO_OFF = 12
    NOT_ALLOWED = 100
    NOT_ALLOWED_APP = 101

    @classmethod
    def from_code(cls, code: int) -> Status:
        """Return the status for an upstream code; codes the reference does not list are UNKNOWN."""
        try:
            return cls(code)
        except ValueError:
            return cls.UNKNOWN

    @classmethod
    def from_name(cls, name: str) -> tuple[Status, ...]:
        """Return the statuses that carry a DESIGN name (`not_allowed` is both 100 and 101)."""
        found = tuple(s for s in cls if s.label == name)
        if not found:
            raise ValueError(f"unknown status name {name!r}")
        return found

    @property
    def label(self) -> str:
        """The status name used in events, rules and the HTTP API (`delivered`, `not_allowed`, …)."""
        if self in (Status.NOT_ALLOWED, Status.NOT_ALLOWED_APP):
            return "not_allowed"
        return self.name.lower()

    @property
    def is_final(self) -> bool:
        """True when the upstream will not change this message's status any more."""
        return self not in _OPEN

    @property
    def is_failure(self) -> bool:
        """True when the message was not sent or not delivered."""
        return self in _FAILURES

    @property
    def is_waiting(self) -> bool:
        """True while the phone has not sent the message yet (1, 3, 2): what `sms.stuck` watches."""
        return self in (Status.PENDING, Status.QUEUED, Status.TAKEN)


_OPEN = frozenset({Status.PENDING, Status.QUEUED, Status.TAKEN, Status.SENT, Status.UNKNOWN})
_FAILURES = frozenset(
    {
        Status.NOT_DELIVERED,
        Status.FAILED,
        Status.NO_SERVICE,
        Status.NULL_PDU,
        Status.RADIO_OFF,
        Status.NOT_ALLOWED,
        Status.NOT_ALLOWED_APP,
    }
)
STATUS_NAMES: tuple[str, ...] = tuple(dict.fromkeys(s.label for s in Status if s is not Status.UNKNOWN))


@dataclass(frozen=True, slots=True)
class Sms:
    """One message of `getallsms`: outgoing (1-3, 6-12, 100, 101) or incoming (status 5).

    For an incoming message `number` (the API's `sendto`) is the sender's number.
    """

    id: int
    number: str
    body: str
    status: Status
    status_code: int
    device_id: int | None
    created: datetime
    sim: int | None = None
    customer_id: int | None = None
    status_title: str | None = None
    urgent: bool = False
    sent_time: datetime | None = None
    time_to_send: datetime | None = None
    paket_id: int | None = None
    channel: int | None = None  # the push path's `channel_id` (SMS, WhatsApp, RCS); polling does not say
    media_url: str | None = None  # an incoming image's URL (the push path's `img_url`)

    @property
    def is_incoming(self) -> bool:
        """True for a message the phone received."""
        return self.status is Status.RECEIVED


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    """A row of a getallsms answer the bridge cannot use (no usable id or date, not an object).

    `fingerprint` is the same for the same row in every answer, so it is reported once, not once per poll.
    """

    reason: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class SmsListing:
    """A getallsms answer: the messages read, in the upstream's order, and the rows that could not be read."""

    messages: tuple[Sms, ...]
    unreadable: tuple[UnreadableRow, ...] = ()


@dataclass(frozen=True, slots=True)
class SimInfo:
    """One SIM card of a device, from `getalldevices`' `siminfo`."""

    slot: int
    number: str | None
    iccid: str | None = None
    carrier: str | None = None
    country_iso: str | None = None
    roaming: bool = False


@dataclass(frozen=True, slots=True)
class Device:
    """One phone of the account, from `getalldevices`."""

    id: int
    title: str
    last_seen: datetime | None
    sims: tuple[SimInfo, ...] = ()
    created: datetime | None = None
    number: str | None = None
    imei: str | None = None
    serial_number: str | None = None
    app_version: str | None = None
    subscription: bool = False
    sms_delay: float | None = None  # delaybetweeneachsms: seconds the phone waits between two SMS, when set

    def sim_number(self, slot: int | None) -> str | None:
        """The phone number of the SIM in `slot`, when the device reports it."""
        for sim in self.sims:
            if sim.slot == slot:
                return sim.number
        return None


@dataclass(frozen=True, slots=True)
class SmsStatusInfo:
    """The answer of `getsmsstatus`."""

    sms_id: int
    status: Status
    status_code: int
    description: str | None


@dataclass(frozen=True, slots=True)
class OutgoingSms:
    """One message to hand to `addsms` or to an `addalotofsms` batch."""

    to: str
    body: str
    device_id: int
    sim: int = 0
    time_to_send: datetime | None = None
    customer_id: int | None = None
    urgent: bool = False
