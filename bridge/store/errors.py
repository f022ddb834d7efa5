"""What can go wrong with the database, as types that say what the caller should do."""

from __future__ import annotations


class StoreError(Exception):
    """The database cannot be used; the message says why and what to do."""


class SchemaTooNew(StoreError):
    """The database was written by a newer bridge: upgrade the bridge, do not downgrade the database."""


class StoreCorrupt(StoreError):
    """The file is not a usable SQLite database: restore a backup; the bridge never resets it."""


class StoreUnavailable(StoreError):
    """A write failed for a passing reason (locked, disk full, connection lost): retry later, nothing was changed."""


class StoreRejected(StoreError):
    """A value the database cannot hold (an integer past 64 bits, text that is not valid Unicode): nothing was
    changed, and the same value will be refused again; drop or repair it."""


class StoreInUse(StoreError):
    """Another bridge runs on this database file: stop it, or give this one a storage.path of its own."""


class StoreFileLost(StoreError):
    """The database file was deleted or replaced under the running bridge: nothing more is stored until the
    bridge is restarted on the file that should hold its data."""
