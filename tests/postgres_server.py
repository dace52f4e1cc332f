"""A real, throwaway PostgreSQL server for the tests: Debian's `postgresql` binaries, a data folder in a
temporary directory, a free port on 127.0.0.1 and a private unix-socket folder; stopped and deleted at
the end. `initdb` refuses to run as root, so as root the server runs as the `postgres` system user.

Without the binaries the fixture skips, naming the package, except under CI (`CI` set, not false), where a missing
server is a broken set-up and fails (`.ci/run` installs the package)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER, PASSWORD, DATABASE = "metaspider", "s3cret-pw", "agents"


@dataclass(frozen=True)
class PostgresServer:
    """A running server and the URL of a password-protected user's own database on it."""

    port: int
    url: str
    data_dir: Path
    bin_dir: Path
    run_as: str | None

    def stop(self) -> None:
        """Stop the server at once (as a crash or an outage would); stopping a stopped server is a no-op."""
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"]
        subprocess.run(_as_server_user(command, self.run_as), check=False, capture_output=True)


def find_bin_dir() -> Path | None:
    """The newest /usr/lib/postgresql/N/bin holding initdb, or the folder of an initdb on PATH."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if dirs:
        return Path(dirs[-1]).parent
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def server_binaries() -> Path:
    """The server's bin folder; skips the test without one, or fails it under CI."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found: apt-get install -y postgresql (.ci/run does)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(message + " -- CI is set, so this is a broken set-up, not a skip")
        pytest.skip(message)
    return bin_dir


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _as_server_user(command: list[str], run_as: str | None) -> list[str]:
    return ["runuser", "-u", run_as, "--", *command] if run_as else command


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """Start a server, yield it, stop it and delete its files (the body of a test module's fixture)."""
    bin_dir = server_binaries()
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="metaspider-pg-"))
    data_dir, socket_dir, log = base / "data", base / "sock", base / "server.log"
    socket_dir.mkdir()
    pwfile = base / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if run_as:
        entry = pwd.getpwnam(run_as)
        for path in (base, socket_dir, pwfile):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    subprocess.run(
        _as_server_user(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                USER,
                f"--pwfile={pwfile}",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            run_as,
        ),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {socket_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = str(bin_dir / "pg_ctl")
    subprocess.run(
        _as_server_user(
            [pg_ctl, "-D", str(data_dir), "-l", str(log), "-o", options, "-w", "-t", "60", "start"], run_as
        ),
        check=True,
        capture_output=True,
    )
    server = PostgresServer(
        port, f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}", data_dir, bin_dir, run_as
    )
    try:
        subprocess.run(
            _as_server_user(
                [str(bin_dir / "createdb"), "-h", str(socket_dir), "-p", str(port), "-U", USER, DATABASE], run_as
            ),
            check=True,
            capture_output=True,
        )
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
