"""A client that sends its request slowly: for the tests that the bridge cuts such clients off."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def trickle(writer: asyncio.StreamWriter, chunk: Callable[[int], bytes], every: float = 0.2,
                  times: int = 200) -> None:
    """Send `chunk(i)` every `every` seconds, `times` times at most, until the connection breaks."""
    try:
        for i in range(times):
            writer.write(chunk(i))
            await writer.drain()
            await asyncio.sleep(every)
    except ConnectionError:
        pass
