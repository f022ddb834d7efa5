"""Slow clients: a connection that sends its request slowly is cut off after server.read_timeout."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
from running_bridge import running_bridge, simulated_config
from slow_clients import trickle
from yarl import URL


async def test_a_client_sending_headers_slowly_is_cut_off(tmp_path: Path) -> None:
    """A connection that never finishes its headers (one header line every 0.2 s) is closed after
    server.read_timeout, and the bridge goes on answering others."""
    async with aiohttp.ClientSession() as session, \
            running_bridge(simulated_config(tmp_path, "bridge", server="read_timeout: 1s"), session) as bridge:
        url = URL(bridge.url)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(b"POST /v1/messages HTTP/1.1\r\nHost: bridge\r\n")
        started = time.monotonic()
        sending = asyncio.create_task(trickle(writer, lambda i: f"X-Slow-{i}: a\r\n".encode()))
        try:
            closed = await asyncio.wait_for(reader.read(65536), 8)
        finally:
            sending.cancel()
            writer.close()
        assert closed == b"" and time.monotonic() - started < 4
        async with session.get(f"{bridge.url}/healthz") as health:
            assert health.status == 200
