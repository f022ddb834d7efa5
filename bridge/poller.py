"""The poller: windows of getallsms and getalldevices -> observations for the pipeline, on a schedule.

One poll (`poll_once`):
1. The window starts at the cursor `poll.begin`: the newest `created` seen minus `poll.overlap`, so a
   message stored upstream late, with a `created` up to `overlap` behind the newest one seen, is
   still picked up. Dates travel as aware datetimes; the client writes them in the account's zone.
2. Outgoing messages still in flight (1, 3, 2, 6) and younger than `poll.lookback` are followed: those
   created before the window are asked for one by one with getsmsstatus when there are at most
   `FEW_STATUS_CHECKS`, else the one getallsms window is widened back to the oldest of them. The cost
   of a poll follows new and in-flight messages, never the total history. A message getsmsstatus
   refuses (deleted upstream) is no longer asked for, so it cannot block every poll.
   A row of the answer without a usable id or date is skipped: logged once and counted in
   `bridge_upstream_unreadable_rows_total`, while every other row goes on.
3. Everything seen, the waiting messages past `poll.stuck_after`, and the advanced cursor go to
   `Pipeline.record` (an SMS listed just as the last recorded poll of this process listed it has nothing new
   and is left out) in transactions of at most `RECORD_BATCH` observations, the cursor with the last: it
   only moves together with the events it covers, and a poll cut short between two is polled again (what
   was recorded is not emitted twice). Webhooks of the first batches go out while the next are recorded.

First start (no cursor): the first window starts `poll.backfill` (default 0) before the bridge's first
start (`mark_start`, stored once), minus the overlap. Messages of that first window created before that
instant are recorded as seen without events (no flood of old messages); every message that first appears in a later poll is new, whatever
its `created` says. Outgoing messages in flight before the first start are not followed unless the
bridge submitted them. The bridge's clock must agree with the upstream's within `poll.overlap`.

Any failure of a poll (the upstream's, the database's, or one nobody expected) backs off exponentially from
`poll.interval` up to `BACKOFF_INTERVALS` intervals, and never beyond `BACKOFF_CAP` (nor below one interval); scheduled runs are skipped meanwhile. An outage is logged once
when it starts and once when it ends; `health()` turns degraded after `poll.unhealthy_after`, and at once when
the upstream refuses the credentials (they do not fix themselves).

A message dated in the future (a phone with a wrong clock) is news like any other, but the cursor never
moves past the poll's own `now`: a later message with a true date is still in the next window. A cursor
found in the future (stored before this rule) is read as `now - poll.lookback`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bridge.config import Config
from bridge.gateway.client import GatewayClient
from bridge.gateway.errors import ApiError, AuthError, GatewayError
from bridge.gateway.models import Sms, Status, UnreadableRow
from bridge.leadership import Leadership, NotLeader
from bridge.metrics import Metrics
from bridge.pipeline import DeviceSeen, Observation, Pipeline, SmsSeen, StatusSeen, StuckSuspected
from bridge.store import Row, Store, StoreError

log = logging.getLogger(__name__)

CURSOR = "poll.begin"
START = "poll.start"  # the first start's "now - backfill": older messages are history, newer ones are news
FEW_STATUS_CHECKS = 5
BACKOFF_CAP = 120.0
STOP_GRACE = 5.0  # seconds a poll in progress may take to finish when the bridge stops
RECORD_BATCH = 250  # observations per transaction: a big poll never holds the store (and the API) for long
BACKOFF_INTERVALS = 8  # a fast poller recovers fast: its backoff grows to 8 intervals, not to the cap
UNREADABLE_REMEMBERED = 10_000  # unreadable rows told apart (so each is logged once); then they may be again

_WAITING = frozenset({int(Status.PENDING), int(Status.QUEUED), int(Status.TAKEN)})


@dataclass(frozen=True, slots=True)
class PollerHealth:
    """How the polling goes: last success, since when it fails (None: it does not), the last error, degraded."""

    last_success_ts: float | None
    failing_since: float | None
    last_error: str | None
    degraded: bool


@dataclass(frozen=True, slots=True)
class PollResult:
    """What one poll or device check did: ok, messages or devices fetched, new events recorded."""

    ok: bool
    fetched: int = 0
    events: int = 0


@dataclass(slots=True)
class _Outage:
    """Failures of one job in a row: when they started, when the next run is allowed, the last error."""

    failures: int = 0
    since: float | None = None
    retry_at: float = 0.0
    last_error: str | None = None
    refused: bool = False  # the last failure was refused credentials


class Poller:
    """Polls the upstream for new messages, status changes and device health, and records them."""

    def __init__(self, config: Config, store: Store, gateway: GatewayClient, pipeline: Pipeline,
                 metrics: Metrics, clock: Callable[[], float] = time.time,
                 leadership: Leadership | None = None) -> None:
        self.config = config
        self.leadership = leadership or Leadership(store, config.storage.lease)
        self.poll = config.poll
        self.store = store
        self.gateway = gateway
        self.pipeline = pipeline
        self.metrics = metrics
        self.clock = clock
        self._last_success: float | None = None
        self._outages = {"poll": _Outage(), "devices": _Outage()}
        self._runs: set[asyncio.Task[object]] = set()  # scheduled runs in progress
        self._stopping = False
        self._devices_checked = False
        self._unknown_upstream: set[int] = set()  # ids getsmsstatus refused: not asked again
        self._recorded: dict[int, tuple[int, float | None]] = {}  # the last recorded poll's SMS: id -> state
        self._unreadable: set[str] = set()  # fingerprints of the unreadable rows already reported
        self._scheduler: AsyncIOScheduler | None = None

    # --- one poll ---------------------------------------------------------------------------

    async def poll_once(self) -> PollResult:
        """Fetch new messages and in-flight statuses once and record them; upstream failures are absorbed."""
        started = time.monotonic()
        now = self.clock()
        try:
            result = await self._poll(now)
        except NotLeader as exc:  # replaced while polling: the new leader polls the same window
            log.warning("poll: not recorded, %s; the leader polls this window", exc)
            return PollResult(ok=False)
        except Exception as exc:  # any failure is an outage: counted, backed off, reported by health()
            self._failed("poll", "getallsms", exc, now)
            return PollResult(ok=False)
        finally:
            self.metrics.poll_seconds.observe(time.monotonic() - started)
        self._succeeded("poll", now)
        return result

    async def mark_start(self) -> float:
        """Record, once in the database's life, the instant before which messages are history; returns it.

        Called when the bridge starts, before any upstream call, so an SMS that arrives while the first poll
        is still failing (or before a crash ends the first run) is news, not history.
        """
        stored = await self.store.get_cursor(START)
        if stored is not None:
            return float(stored)
        # The upstream's dates have whole seconds: an SMS of the start's own second is news, not history.
        start = float(math.floor(self.clock() - self.poll.backfill))
        async with self.store.transaction() as db:
            await db.set_cursor(START, repr(start))
        return start

    async def _poll(self, now: float) -> PollResult:
        stored = await self.store.get_cursor(CURSOR)
        # Until a poll is recorded, messages older than the bridge's first start are history, not news.
        history_before = await self.mark_start() if stored is None else -math.inf
        begin = history_before - self.poll.overlap if stored is None else float(stored)
        if begin > now:  # left ahead by a bridge that followed a future-dated SMS: look back again from now
            begin = now - self.poll.lookback
        in_flight = await self.store.open_outgoing(now - self.poll.lookback)
        behind = [row for row in in_flight if row["created_ts"] < begin and row["id"] not in self._unknown_upstream]
        window = begin
        if len(behind) > FEW_STATUS_CHECKS:
            window, behind = min(row["created_ts"] for row in behind), []
        listing = await self.gateway.list_sms(begin=_utc(window))
        self._report_unreadable(listing.unreadable)
        messages = [unfold(sms, window) for sms in listing.messages]
        # An SMS listed exactly as the last recorded poll listed it has nothing new: its row already says so.
        observations: list[Observation] = [
            SmsSeen(sms, history=sms.created.timestamp() < history_before)
            for sms in messages if self._recorded.get(sms.id) != _listed_state(sms)
        ]
        for row in behind:
            status = await self._status_of(row["id"])
            if status is not None:
                observations.append(status)
        observations += [StuckSuspected(row["id"]) for row in in_flight if self._stuck(row, now)]
        newest = max((sms.created.timestamp() for sms in messages), default=None)
        cursor = begin if newest is None else max(begin, min(newest, now) - self.poll.overlap)
        if not observations and repr(cursor) == stored:
            return PollResult(ok=True)  # idle: nothing to write
        batches = [observations[i:i + RECORD_BATCH] for i in range(0, len(observations), RECORD_BATCH)] or [[]]
        events = 0
        for number, batch in enumerate(batches, 1):
            last = number == len(batches)
            events += len((await self.pipeline.record(
                batch, cursors={CURSOR: repr(cursor)} if last else None, fence=self.leadership.fence)).events)
        self._recorded = {sms.id: _listed_state(sms) for sms in messages}
        if events:
            log.info("poll: %d messages fetched, %d new events", len(messages), events)
        return PollResult(ok=True, fetched=len(messages), events=events)

    def _report_unreadable(self, rows: tuple[UnreadableRow, ...]) -> None:
        """Log and count each unreadable row the first time it is seen (it comes back in every window)."""
        for row in rows:
            if row.fingerprint in self._unreadable:
                continue
            if len(self._unreadable) >= UNREADABLE_REMEMBERED:
                self._unreadable.clear()
            self._unreadable.add(row.fingerprint)
            self.metrics.unreadable_rows.labels(method="getallsms").inc()
            log.warning("getallsms: skipping a message the bridge cannot read (%s); row %s", row.reason,
                        row.fingerprint)

    async def _status_of(self, sms_id: int) -> StatusSeen | None:
        """The status of one message; one the upstream refuses to know (deleted) is not asked for again."""
        try:
            info = await self.gateway.get_sms_status(sms_id)
        except ApiError as exc:
            # One such message must not fail every poll until it leaves the lookback.
            log.warning("getsmsstatus refused message %d (%s); no longer following its status", sms_id, exc)
            self._unknown_upstream.add(sms_id)
            return None
        return StatusSeen(info.sms_id, info.status)

    def _stuck(self, row: Row, now: float) -> bool:
        """True when an in-flight message is still waiting (1, 3, 2) `stuck_after` past when it was due."""
        if row["status"] not in _WAITING or row["stuck_reported"]:
            return False
        due = max(row["created_ts"], row["due_ts"] or 0.0)
        return now - due >= self.poll.stuck_after

    # --- devices ------------------------------------------------------------------------------

    async def check_devices(self) -> PollResult:
        """Fetch the devices once: store them (titles, SIM numbers) and record online/offline changes."""
        now = self.clock()
        try:
            devices = await self.gateway.get_all_devices()
            limit = self.poll.device_offline_after
            observations = [
                DeviceSeen(d, d.last_seen is not None and now - d.last_seen.timestamp() <= limit) for d in devices
            ]
            recorded = await self.pipeline.record(observations, fence=self.leadership.fence)
        except NotLeader as exc:
            log.warning("devices: not recorded, %s", exc)
            return PollResult(ok=False)
        except Exception as exc:  # as for polls
            self._failed("devices", "getalldevices", exc, now)
            return PollResult(ok=False)
        self._devices_checked = True
        self._succeeded("devices", now)
        return PollResult(ok=True, fetched=len(devices), events=len(recorded.events))

    # --- health and backoff -------------------------------------------------------------------

    def health(self) -> PollerHealth:
        """The poller's health; degraded once polling has failed for `poll.unhealthy_after`, or at once when the
        upstream refuses the credentials."""
        outage = self._outages["poll"]
        refused = any(o.refused for o in self._outages.values())
        degraded = refused or (outage.since is not None and self.clock() - outage.since >= self.poll.unhealthy_after)
        return PollerHealth(self._last_success, outage.since, outage.last_error, degraded)

    def backing_off(self, job: str = "poll") -> bool:
        """True while `job` ("poll" or "devices") waits out its backoff after failures."""
        return self.clock() < self._outages[job].retry_at

    def _failed(self, job: str, method: str, exc: Exception, now: float) -> None:
        outage = self._outages[job]
        quiet = self._failing_since() is None
        outage.failures += 1
        outage.last_error = _describe(exc)
        outage.refused = isinstance(exc, AuthError)
        if outage.since is None:
            outage.since = now
        interval = self.poll.interval if job == "poll" else self.poll.devices_interval
        longest = max(interval, min(BACKOFF_CAP, BACKOFF_INTERVALS * interval))
        delay = min(longest, interval * 2 ** min(outage.failures - 1, 16))
        # Runs come every `interval`: half an interval of slack lets the run due at `delay` go ahead.
        outage.retry_at = now + delay - interval / 2
        if isinstance(exc, GatewayError):
            self.metrics.upstream_errors.labels(method=method, kind=type(exc).__name__).inc()
        if quiet:
            expected = isinstance(exc, (GatewayError, StoreError))
            what = "the database" if isinstance(exc, StoreError) else f"upstream {method}" if expected else job
            log.warning("%s failed; %s retries with backoff until it works again: %s", what, job, outage.last_error,
                        exc_info=None if expected else exc)

    def _succeeded(self, job: str, now: float) -> None:
        outage = self._outages[job]
        if job == "poll":
            self._last_success = now
        if outage.since is None:
            return
        since = self._failing_since()
        self._outages[job] = _Outage()
        if self._failing_since() is None and since is not None:
            log.info("upstream works again after %.0f s; polling resumes where it stopped, nothing is missed",
                     now - since)

    def _failing_since(self) -> float | None:
        """When the current outage began (the earliest failing job), or None when nothing fails."""
        return min((o.since for o in self._outages.values() if o.since is not None), default=None)

    # --- schedule -----------------------------------------------------------------------------

    def schedule(self, scheduler: AsyncIOScheduler) -> None:
        """Add the poll job (every poll.interval, first run now; it checks the devices first) and the device
        check job (every poll.devices_interval); each runs one at a time and late runs coalesce."""
        self._scheduler = scheduler
        for job_id, run, every, first in (
            ("poll", self.run_scheduled_poll, self.poll.interval, datetime.now(timezone.utc)),
            ("devices", self.run_scheduled_devices, self.poll.devices_interval, None),
        ):
            options = {"next_run_time": first} if first is not None else {}
            scheduler.add_job(
                run, "interval", seconds=every, id=f"bridge-{job_id}", name=f"bridge {job_id}",
                max_instances=1, coalesce=True, misfire_grace_time=max(1, math.ceil(every)),
                replace_existing=True, **options,
            )

    def poll_soon(self) -> None:
        """Run the scheduled poll now rather than at its next tick (a replica just became the leader)."""
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.modify_job("bridge-poll", next_run_time=datetime.now(timezone.utc))

    async def run_scheduled_poll(self) -> None:
        """The scheduled poll: only on the leader, skipped while backing off; the first one learns the devices'
        numbers first."""
        if self.backing_off("poll") or not self.leadership.is_leader:
            return
        async with self._scheduled_run():
            if not self._devices_checked and not self.backing_off("devices"):
                await self.check_devices()
            await self.poll_once()

    async def run_scheduled_devices(self) -> None:
        """The scheduled device check: only on the leader, skipped while backing off."""
        if not self.backing_off("devices") and self.leadership.is_leader:
            async with self._scheduled_run():
                await self.check_devices()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Let a scheduled run in progress finish within `grace` seconds, then cut it short (it ends quietly)."""
        self._stopping = True
        if not self._runs:
            return
        _, late = await asyncio.wait(self._runs, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)

    @asynccontextmanager
    async def _scheduled_run(self) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        self._runs.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cut short by the stop: its transaction rolled back, and the next start polls the same window.
            log.info("poll: stopped before it finished; the next start polls the same window again")
        finally:
            self._runs.discard(task)


def unfold(sms: Sms, not_before: float) -> Sms:
    """`sms`, its `created` read as the later instant when it names a repeated hour and the earlier is too early.

    The upstream gives a zone name but no offset, so 02:10 on the night clocks go back is two instants; an
    answer to "created since `not_before`" cannot mean the one before `not_before`.
    """
    if sms.created.timestamp() >= not_before:  # the common case, and the cheap test first
        return sms
    later = sms.created.replace(fold=1)
    if later.utcoffset() == sms.created.utcoffset():
        return sms
    return replace(sms, created=later)


def _listed_state(sms: Sms) -> tuple[int, float | None]:
    """What a sighting of an SMS can change in its stored row: its status and when it is due."""
    return int(sms.status), None if sms.time_to_send is None else sms.time_to_send.timestamp()


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _describe(exc: Exception) -> str:
    """An error for logs and health: its kind and message (the client's messages carry no secrets)."""
    if isinstance(exc, AuthError):
        return f"credentials refused: {exc}"
    return f"{type(exc).__name__}: {exc}"

