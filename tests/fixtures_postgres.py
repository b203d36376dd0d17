"""A throw-away PostgreSQL server on 127.0.0.1 for tests: the binaries of the `pgserver` wheel (dev extra), or
$PG_BIN, or Debian's postgresql; started and stopped by the test itself.

Why not pgserver's own Python layer: it listens on a unix socket only, and as root it adds a user and opens the
permissions of every parent folder up to `/`. PostgreSQL refuses to run as root, so a root test runs it as
`nobody` (setpriv), from a copy of the binaries and with a data folder that user can reach (not under pytest's
tmp_path: /tmp/pytest-of-root is 0700).
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from fixtures_servers import free_port

SUPERUSER = "mlflow"


def postgres_install() -> Path | None:
    """The folder holding bin/postgres: $PG_BIN's parent, the pgserver wheel's, or Debian's; None if none."""
    if os.environ.get("PG_BIN"):
        return Path(os.environ["PG_BIN"]).parent
    spec = importlib.util.find_spec("pgserver")  # found, not imported: importing it writes lock files
    if spec and spec.submodule_search_locations:
        wheel = Path(list(spec.submodule_search_locations)[0]) / "pginstall"
        if (wheel / "bin" / "postgres").exists():
            return wheel
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), reverse=True)
    return Path(debian[0]).parents[1] if debian else None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *cmd] if os.geteuid() == 0 \
        else cmd


@dataclass
class Postgres:
    install: Path
    password: str = "pg-test-password-123"
    port: int = field(default_factory=free_port)
    root: Path | None = None
    process: subprocess.Popen | None = None

    def url(self, database: str) -> str:
        """SQLAlchemy URL with the driver named (SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3)."""
        return f"postgresql+psycopg2://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 60) -> "Postgres":
        """initdb and the server; on any failure nothing is left running or on disk."""
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> "Postgres":
        self.root = Path(tempfile.mkdtemp(prefix="anipop-pg-", dir="/tmp"))
        self.root.chmod(0o755)
        binaries = self.install
        wheel_libs = self.install.parents[1] / "pgserver.libs"  # the wheel's binaries find their libraries there
        if os.geteuid() == 0 and wheel_libs.is_dir():  # a copy `nobody` can surely reach, wherever the venv lives
            binaries = self.root / "site" / "pgserver" / "pginstall"
            shutil.copytree(wheel_libs, self.root / "site" / "pgserver.libs", symlinks=True)
            for part in ("bin", "lib", "share"):
                shutil.copytree(self.install / part, binaries / part, symlinks=True)
        data, secret = self.root / "data", self.root / "pw"
        data.mkdir()
        secret.write_text(self.password + "\n")
        if os.geteuid() == 0:
            user = pwd.getpwnam("nobody")
            for path in (data, secret):
                os.chown(path, user.pw_uid, user.pw_gid)
        data.chmod(0o700)
        env = {**os.environ, "LC_ALL": "C", "LANG": "C", "TZ": "UTC"}
        subprocess.run(_as_postgres_user([str(binaries / "bin" / "initdb"), "-D", str(data), "-U", SUPERUSER,
                                          f"--pwfile={secret}", "--auth-host=scram-sha-256", "--auth-local=trust",
                                          "-E", "UTF8", "--no-locale", "--no-sync"]),
                       check=True, capture_output=True, env=env, cwd="/")
        self.log = self.root / "postgres.log"
        self.process = subprocess.Popen(
            _as_postgres_user([str(binaries / "bin" / "postgres"), "-D", str(data), "-c", "listen_addresses=127.0.0.1",
                               "-c", f"port={self.port}", "-c", f"unix_socket_directories={data}",
                               "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]),
            stdout=self.log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd="/", start_new_session=True)
        self._wait(timeout_s)
        return self

    def _connect(self, database: str = "postgres"):
        import psycopg2

        return psycopg2.connect(host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password,
                                dbname=database, connect_timeout=2)

    def _wait(self, timeout_s: float) -> None:
        import psycopg2

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                self._connect().close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def create_database(self, name: str) -> str:
        connection = self._connect()
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT to the postmaster stops its own children), then the folder is removed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
