"""The bridge's storage: one interface (`Store`, `Tx`) split by concern, one backend per engine.

SQLite (`storage.path`) is the embedded default; PostgreSQL (`storage.url`) serves any number of replicas.
`open_store` opens the engine the configuration names.
"""

from __future__ import annotations

from bridge.config import StorageConfig
from bridge.store.base import Store, Tx
from bridge.store.errors import SchemaTooNew, StoreCorrupt, StoreError, StoreRejected, StoreUnavailable
from bridge.store.migrations import MIGRATIONS, SCHEMA_VERSION
from bridge.store.postgres import PostgresStore
from bridge.store.records import MESSAGE_COLUMNS, AttemptLog, EventAction, NewDelivery, NewSend, Row
from bridge.store.sqlite import SqliteStore

__all__ = [
    "MESSAGE_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION", "AttemptLog", "EventAction", "NewDelivery", "NewSend",
    "PostgresStore", "Row", "SchemaTooNew",
    "SqliteStore", "Store", "StoreCorrupt", "StoreError", "StoreRejected", "StoreUnavailable", "Tx", "open_store",
]


async def open_store(storage: StorageConfig, *, default_region: str | None = None) -> Store:
    """Open (creating and migrating if needed) the database `storage` names; `default_region` reads numbers
    stored without a country code (gateway.default_region)."""
    if storage.url is not None:
        return await PostgresStore.open(storage.url.reveal(), default_region=default_region)
    return await SqliteStore.open(storage.path, storage.synchronous, default_region=default_region)
