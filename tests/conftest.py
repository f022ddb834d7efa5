"""Shared fixtures."""

from __future__ import annotations

import os
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from pg_support import PostgresCluster, Unavailable
from webhook_sink import Sink, serve_sink


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Writes YAML text (dedented, so line 1 is the first line after the opening quotes) to tmp_path/rules.yaml."""

    def write(text: str) -> Path:
        path = tmp_path / "rules.yaml"
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """A throwaway PostgreSQL server for the whole session; tests needing one skip, saying why, where none starts
    (with BRIDGE_REQUIRE_POSTGRES=1, as CI sets it, they fail instead)."""
    try:
        cluster = PostgresCluster.start()
    except Unavailable as exc:
        if os.environ.get("BRIDGE_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL is required here but cannot start: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> str:
    """The URL of a fresh, empty database on the session's PostgreSQL server."""
    return postgres_cluster.create_database()


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A webhook sink on a free port of 127.0.0.1, answering 200 unless told otherwise."""
    async with serve_sink() as running:
        yield running
