"""The SQLite backend of the store."""

from bridge.store.sqlite.backend import SqliteStore, SqliteTx

__all__ = ["SqliteStore", "SqliteTx"]
