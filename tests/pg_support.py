"""A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, pg_ctl on a free local port.

PostgreSQL refuses to run as root: as root its binaries run as the `postgres` system user the Debian package
creates (`runuser -u postgres -- …`), with the data directory owned by it. Where no server binaries are
found, or they cannot start, `PostgresCluster.start` says why and the tests needing one skip with that reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from ports import free_port

BIN_GLOB = "/usr/lib/postgresql/*/bin"


class Unavailable(Exception):
    """No PostgreSQL server can be started here; the message says why."""


def _bin_dir() -> Path:
    dirs = sorted(glob.glob(BIN_GLOB), key=lambda d: int(Path(d).parent.name) if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise Unavailable("PostgreSQL server binaries not found (Debian: apt-get install postgresql)")


class PostgresCluster:
    """A running cluster; `url(db)` names a database on it, `create_database` makes a fresh one."""

    def __init__(self, bin_dir: Path, root: Path, port: int, user: str | None) -> None:
        self.bin_dir, self.root, self.port, self._user = bin_dir, root, port, user

    @classmethod
    def start(cls) -> PostgresCluster:
        """Init and start a cluster in a new temp dir; raises Unavailable with the reason it cannot."""
        bin_dir = _bin_dir()
        root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
        user = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise Unavailable("running as root and there is no `postgres` user to run the server") from None
            os.chown(root, owner.pw_uid, owner.pw_gid)
            user = "postgres"
        cluster = cls(bin_dir, root, free_port(), user)
        cluster._run("initdb", "-D", str(root / "data"), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        options = (f"-p {cluster.port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        cluster._run("pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-o", options, "-w", "start")
        return cluster

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if self._user is not None:
            command = ["runuser", "-u", self._user, "--", *command]
        try:
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            output = getattr(exc, "stderr", "") or ""
            raise Unavailable(f"{tool} failed: {exc} {output.strip()[-500:]}") from None

    def url(self, database: str = "postgres") -> str:
        """The URL of `database` on this cluster."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database's URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-qc", f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
