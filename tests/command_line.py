"""The command line as an async test runs it, next to servers on the test's own event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bridge.cli import main


async def cli(*argv: str | Path) -> int:
    """Run `sms-bridge ARGV` in a worker thread (it runs its own event loop) and return the exit code."""
    return await asyncio.to_thread(main, [str(a) for a in argv])
