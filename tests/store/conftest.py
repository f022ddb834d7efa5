"""The storage contract's fixtures: a store on the test's engine (a module saying BOTH_ENGINES = True runs on
each), and two replicas' stores on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from bridge.store import PostgresStore, SqliteStore, Store


@pytest.fixture
def open_store(tmp_path: Path, postgres_storage: str | None) -> Callable[[], Awaitable[Store]]:
    """Opens (and migrates) the test's database, SQLite or PostgreSQL (see BOTH_ENGINES), as often as called; the
    caller closes it."""
    if postgres_storage is None:
        return lambda: SqliteStore.open(tmp_path / "bridge.db")
    return lambda: PostgresStore.open(postgres_storage)


@pytest.fixture
async def store(open_store: Callable[[], Awaitable[Store]]) -> AsyncIterator[Store]:
    """An empty, migrated store on the test's engine."""
    opened = await open_store()
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
async def replicas(postgres_url: str) -> AsyncIterator[tuple[Store, Store]]:
    """Two replicas' stores on one PostgreSQL database."""
    first, second = await PostgresStore.open(postgres_url), await PostgresStore.open(postgres_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()
