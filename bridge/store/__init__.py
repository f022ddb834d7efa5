"""The bridge's storage: one interface (`Store`, `Tx`) split by concern, one backend per engine.

SQLite (`storage.path`) is the embedded default; PostgreSQL (`storage.url`) serves any number of replicas.
`open_store` opens the engine the configuration names.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from bridge.config import StorageConfig
from bridge.store.base import Store, Tx
from bridge.store.errors import (
    SchemaTooNew,
    StoreCorrupt,
    StoreError,
    StoreFileLost,
    StoreInUse,
    StoreRejected,
    StoreUnavailable,
)
from bridge.store.migrations import MIGRATIONS, SCHEMA_VERSION
from bridge.store.postgres import PostgresStore, postgres_where
from bridge.store.records import (
    MESSAGE_COLUMNS,
    AttemptLog,
    DeviceRecord,
    EventAction,
    NewDelivery,
    NewSend,
    Row,
)
from bridge.store.sqlite import SqliteStore
from bridge.store.sqlite.lock import exclusive

__all__ = [
    "MESSAGE_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "AttemptLog", "DeviceRecord", "EventAction", "NewDelivery",
    "NewSend", "PostgresStore", "Row", "SchemaTooNew", "SqliteStore", "Store", "StoreCorrupt", "StoreError",
    "StoreFileLost", "StoreInUse", "StoreRejected", "StoreUnavailable", "Tx", "held", "open_store", "postgres_where",
]


async def open_store(storage: StorageConfig, *, default_region: str | None = None) -> Store:
    """Open (creating and migrating if needed) the database `storage` names; `default_region` reads numbers
    stored without a country code (gateway.default_region)."""
    if storage.url is not None:
        return await PostgresStore.open(storage.url.reveal(), lease=storage.lease, default_region=default_region)
    return await SqliteStore.open(storage.path, storage.synchronous, default_region=default_region)


def held(storage: StorageConfig) -> AbstractContextManager[None]:
    """The database kept for one `sms-bridge run` while the block lasts: a SQLite file serves one bridge
    (StoreInUse when another holds it); PostgreSQL serves any number of replicas."""
    return exclusive(storage.path) if storage.url is None else nullcontext()
