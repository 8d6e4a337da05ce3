"""A throwaway PostgreSQL server for the tests: Debian's binaries, a temporary data directory,
a unix socket in a temporary folder and no TCP port (as the postgres user when the tests run as
root, since PostgreSQL refuses to run as root)."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path


def binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _as_owner(command: list[str], user: str | None) -> list[str]:
    return ["runuser", "-u", user, "--", *command] if user else command


@contextlib.contextmanager
def temporary_postgres() -> Iterator[str]:
    """Start a server; yield a SQLAlchemy URL base ("postgresql+psycopg://..."), without the
    database name: ``fresh_database`` makes one per test."""
    bin_dir = binaries()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql")
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="cnn-lens-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if user:
        shutil.chown(root, user)
        shutil.chown(sockets, user)
    root.chmod(0o755)
    run = lambda *cmd: subprocess.run(_as_owner([str(c) for c in cmd], user), check=True,  # noqa: E731
                                      capture_output=True, text=True, timeout=120)
    run(bin_dir / "initdb", "-D", data, "--auth=trust", "--username=cnnlens", "--no-sync",
        "--encoding=UTF8", "--locale=C")
    run(bin_dir / "pg_ctl", "-D", data, "-l", root / "server.log", "-w", "-t", "60", "-o",
        f"-c listen_addresses='' -k {sockets} -c fsync=off -c max_connections=60", "start")
    try:
        yield f"postgresql+psycopg://cnnlens@/{{database}}?host={sockets}"
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            run(bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def fresh_database(base: str) -> str:
    """A new, empty database on the server of ``base``; its SQLAlchemy URL."""
    import psycopg

    name = f"cnn_lens_{uuid.uuid4().hex[:12]}"
    host = base.split("host=")[1]
    with psycopg.connect(dbname="postgres", user="cnnlens", host=host, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.format(database=name)
