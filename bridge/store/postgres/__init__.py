"""The PostgreSQL backend of the store."""

from bridge.store.postgres.backend import PostgresStore, PostgresTx

__all__ = ["PostgresStore", "PostgresTx"]
