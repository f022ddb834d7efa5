"""Live updates: server-sent events telling open pages that an SMS, a status or a delivery outcome is new.

One feed per process reads the store (new events, new delivery attempts) while at least one page listens,
so it sees what any replica wrote, and fans each change out to every open stream. A change says only what
changed (`sms` with its id, `delivery` with its target); the page fetches itself again for the details,
so nothing on the wire needs escaping and the pages stay the one place that renders.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from bridge.appkeys import STORE
from bridge.store.dashboard import DashboardReads
from bridge.store import StoreError

log = logging.getLogger(__name__)

FEED_INTERVAL = 0.5    # seconds between reads of the store while a page listens
HEARTBEAT = 15.0       # seconds between comments that keep idle connections open
QUEUE_LIMIT = 256      # changes kept for a slow page; past that it is told to reload


class LiveFeed:
    """Reads new changes from the store and hands them to every subscriber's queue."""

    def __init__(self, reads: DashboardReads) -> None:
        self._reads = reads
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[dict[str, Any] | None]]:
        """A queue of changes for one stream (None: the feed is closing), for the duration of the block."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_LIMIT)
        if self._closed:
            queue.put_nowait(None)
        self._subscribers.add(queue)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="dashboard-live")
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def close(self) -> None:
        """End every stream and stop reading."""
        self._closed = True
        for queue in list(self._subscribers):
            _offer(queue, None)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        since = time.time()
        seen: dict[str, float] = {}
        last_attempt = await self._reads.last_attempt_id()
        while self._subscribers and not self._closed:
            await asyncio.sleep(FEED_INTERVAL)
            try:
                changes, since, last_attempt = await self._changes(since, seen, last_attempt)
            except StoreError as exc:
                log.warning("dashboard: live updates cannot read the store: %s", exc)
                continue
            for change in changes:
                for queue in list(self._subscribers):
                    _offer(queue, change)

    async def _changes(self, since: float, seen: dict[str, float],
                       last_attempt: int) -> tuple[list[dict[str, Any]], float, int]:
        """The changes after the last read, and where the next read starts."""
        changes: list[dict[str, Any]] = []
        for row in await self._reads.events_since(since):
            if row["id"] in seen:
                continue
            seen[row["id"]] = row["created_ts"]
            since = max(since, row["created_ts"])
            changes.append({"kind": "sms" if row["sms_id"] is not None else "device", "type": row["type"],
                            "sms_id": row["sms_id"]})
        for event_id in [e for e, ts in seen.items() if ts < since - 60]:
            del seen[event_id]
        for row in await self._reads.attempts_after(last_attempt):
            last_attempt = row["id"]
            changes.append({"kind": "delivery", "outcome": row["outcome"], "target": row["target"],
                            "delivery_id": row["outbox_id"]})
        return changes, since, last_attempt


def _offer(queue: asyncio.Queue[dict[str, Any] | None], change: dict[str, Any] | None) -> None:
    """Put a change on a stream's queue; a full queue is told to reload instead."""
    try:
        queue.put_nowait(change)
    except asyncio.QueueFull:
        while not queue.empty():
            queue.get_nowait()
        queue.put_nowait({"kind": "reload"} if change is not None else None)


FEED = web.AppKey("dashboard_live_feed", LiveFeed)


def setup_live(app: web.Application) -> None:
    """Build the feed when the store is open; end the streams when the server shuts down."""

    async def feed_ctx(app: web.Application) -> AsyncIterator[None]:
        app[FEED] = LiveFeed(DashboardReads(app[STORE]))
        yield
        await app[FEED].close()

    async def end_streams(app: web.Application) -> None:
        if FEED in app:
            await app[FEED].close()

    app.cleanup_ctx.append(feed_ctx)
    app.on_shutdown.append(end_streams)


async def stream(request: web.Request) -> web.StreamResponse:
    """`GET /ui/live`: a text/event-stream of changes until the page goes away or the bridge stops."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    async with request.app[FEED].subscribe() as queue:
        with contextlib.suppress(ConnectionResetError):  # the page went away
            while True:
                try:
                    change = await asyncio.wait_for(queue.get(), HEARTBEAT)
                except TimeoutError:
                    await response.write(b": heartbeat\n\n")
                    continue
                if change is None:
                    break
                await response.write(f"event: change\ndata: {json.dumps(change)}\n\n".encode())
    return response
