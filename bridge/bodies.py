"""Reading a request's body within server.read_timeout, and the JSON error answer of a request refused."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import TypeVar

from aiohttp import web

from bridge.config import ServerConfig

T = TypeVar("T")


class ApiProblem(Exception):
    """A request the API answers with an error: the status, a message for people and the field at fault."""

    def __init__(self, status: int, message: str, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        """The JSON error answer."""
        return error_response(self.status, self.message, self.field, self.headers)


def error_response(status: int, message: str, field: str | None = None,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    """`{"error": message, "field": field}` with `status`."""
    return web.json_response({"error": message, "field": field}, status=status, headers=headers)


async def within_read_timeout(reading: Awaitable[T], server: ServerConfig) -> T:
    """What `reading` (of a request's body) gives; a 408 ApiProblem when it has not finished within
    server.read_timeout."""
    try:
        async with asyncio.timeout(server.read_timeout):
            return await reading
    except TimeoutError:
        raise ApiProblem(408, f"the request body did not arrive within {server.read_timeout:g}s") from None
