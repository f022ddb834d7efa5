"""One bridge per SQLite file: an exclusive lock on `FILE.lock` beside the database while `run` uses it.

Commands that only read or re-queue (deliveries, replay) share the database with the running bridge and take
no lock. The lock goes with the process: an exit or a crash releases it, so a stale lock file is harmless.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from bridge.store.errors import StoreError, StoreInUse


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Hold the database at `path` for this process; StoreInUse when another process holds it."""
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"{path}: cannot create the lock file {lock_path.name} beside it: "
                         f"{exc.strerror or exc}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreInUse(f"{path}: the database is in use by another sms-bridge run; stop that one, "
                             "or give this one its own storage.path") from None
        yield
    finally:
        os.close(fd)
