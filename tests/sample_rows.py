"""Rows as the bridge stores them, for the storage tests: sends queued through the API and recorded messages."""

from __future__ import annotations

from bridge.store import NewSend

NOW = 1_800_000_000.0  # the stores' clock in these tests


def a_send(send_id: str, *numbers: str, body: str = "hello") -> NewSend:
    """A send queued through the API to `numbers` (+4915752982212 if none) on device 1576, SIM 0."""
    return NewSend(send_id, "api", numbers or ("+4915752982212",), body, 1576, 0)


def a_message(sms_id: int, direction: str = "in", status: int = 5, created_ts: float = NOW, *,
              body: str | None = None) -> tuple:
    """A messages row of +4915752982212 on device 1576, SIM 0, its text `text SMS_ID` unless `body` is given."""
    return (sms_id, direction, "+4915752982212", f"text {sms_id}" if body is None else body, 1576, 0, status, None,
            "2027-01-15T08:00:00+00:00", created_ts, created_ts, None)
