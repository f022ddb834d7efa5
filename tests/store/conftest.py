"""The storage contract's fixture: every test runs once on each backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bridge.store import PostgresStore, SqliteStore, Store


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """An empty, migrated store on SQLite, then on PostgreSQL."""
    if request.param == "sqlite":
        opened: Store = await SqliteStore.open(tmp_path / "bridge.db")
    else:
        opened = await PostgresStore.open(request.getfixturevalue("postgres_url"))
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Awaitable[Store]]:
    """Opens (and migrates) one database, SQLite then PostgreSQL, as often as called; the caller closes it."""
    if request.param == "sqlite":
        return lambda: SqliteStore.open(tmp_path / "bridge.db")
    url = request.getfixturevalue("postgres_url")
    return lambda: PostgresStore.open(url)


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two replicas' stores on one PostgreSQL database."""
    first, second = await PostgresStore.open(postgres_url), await PostgresStore.open(postgres_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
