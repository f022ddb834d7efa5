"""Shared fixtures."""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pg_support import PostgresCluster, Unavailable
from simulator_control import MakeSimulator, SimulatorControl, running_simulator
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


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module saying BOTH_ENGINES = True runs each of its tests that store anything on SQLite, then on
    PostgreSQL."""
    if "postgres_storage" in metafunc.fixturenames and getattr(metafunc.module, "BOTH_ENGINES", False):
        metafunc.parametrize("postgres_storage", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def postgres_storage(request: pytest.FixtureRequest) -> str | None:
    """The PostgreSQL database the test stores in, None for SQLite (the default; see BOTH_ENGINES)."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A webhook sink on a free port of 127.0.0.1, answering 200 unless told otherwise."""
    async with serve_sink() as running:
        yield running


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """One HTTP session for the test's own requests, closed at the end."""
    async with aiohttp.ClientSession() as http:
        yield http


@pytest.fixture
async def make_simulator(session: aiohttp.ClientSession) -> AsyncIterator[MakeSimulator]:
    """Starts simulators on free ports of 127.0.0.1 (build_simulator_app's keyword arguments, seed 1 unless
    given); all stop at the end of the test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**options: Any) -> SimulatorControl:
            options.setdefault("seed", 1)
            return await stack.enter_async_context(running_simulator(session, **options))

        yield make
