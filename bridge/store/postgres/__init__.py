"""The PostgreSQL backend of the store."""

from bridge.store.postgres.backend import PostgresStore, PostgresTx, postgres_where

__all__ = ["PostgresStore", "PostgresTx", "postgres_where"]
