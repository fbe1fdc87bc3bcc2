"""PostgreSQL on a free loopback port: ``initdb`` into a fresh folder, run as a non-root user.

PostgreSQL refuses to run as root, so as root the cluster is initialised and
run as the ``postgres`` system user that Debian's package creates (``setpriv``),
in a folder under the system temp dir that user owns (pytest's temp folders
are private to root). Stopped with ``pg_ctl stop -m fast``, then by PID.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from ._process import (
    INSTALL_SCRIPT,
    LOOPBACK,
    Server,
    ServerNotInstalledError,
    ServerProcess,
    ServerStartError,
    free_port,
    new_password,
)

#: the system user the server runs as when the tests run as root.
RUN_USER_ENV = "RESULTSTORE_POSTGRES_USER"
DEFAULT_RUN_USER = "postgres"
#: the superuser the test cluster is made with.
SUPERUSER = "resultstore"
DATABASE = "postgres"

# Test data needs no durability across power loss: without fsync a start and
# every commit cost no disk flush (a clean stop still writes everything).
_SETTINGS = {
    "listen_addresses": LOOPBACK,
    "unix_socket_directories": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
    "shared_buffers": "32MB",
}


def _bin_dir() -> Path:
    """Debian keeps the server programs in /usr/lib/postgresql/<major>/bin; take the newest."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).parent
    raise ServerNotInstalledError(
        "initdb is not installed; it comes with the Debian package postgresql. "
        f"Install it with: {INSTALL_SCRIPT} postgresql"
    )


def _run_as() -> tuple[list[str], tuple[int, int] | None]:
    """The argv prefix that drops root, and the (uid, gid) to own the cluster's folder."""
    # The parent-death signal stops the server if the test process dies
    # without its teardown: no orphan postmaster outlives its session.
    if os.geteuid() != 0:
        return ["setpriv", "--pdeathsig=TERM", "--"], None
    user = os.environ.get(RUN_USER_ENV, DEFAULT_RUN_USER)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ServerNotInstalledError(
            f"PostgreSQL refuses to run as root and the system user {user!r} does not "
            f"exist; the Debian package postgresql creates it: {INSTALL_SCRIPT} postgresql "
            f"(or set {RUN_USER_ENV} to an existing user)"
        ) from None
    prefix = [
        "setpriv",
        "--pdeathsig=TERM",
        f"--reuid={entry.pw_uid}",
        f"--regid={entry.pw_gid}",
        "--init-groups",
    ]
    return [*prefix, "--"], (entry.pw_uid, entry.pw_gid)


def _base_dir() -> str | None:
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 1024**3:
        return str(shm)
    return None


class PostgresNode:
    """One cluster in its own folder, on one free port for its whole life, so that
    :meth:`restart` brings the same data back on the same address."""

    def __init__(self, *, timeout: float = 60.0) -> None:
        self.bin = _bin_dir()
        self.prefix, self.owner = _run_as()
        self.timeout = timeout
        self.port = free_port()
        self.password = new_password()
        self.root = Path(tempfile.mkdtemp(prefix="resultstore-postgresql-", dir=_base_dir()))
        self.data = self.root / "data"
        if self.owner is not None:
            os.chown(self.root, *self.owner)
        self.process: ServerProcess | None = None
        self._initdb()

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}:{self.password}@{LOOPBACK}:{self.port}/{DATABASE}"

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            [*self.prefix, *argv],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
            check=False,
        )
        if done.returncode != 0:
            raise ServerStartError(
                f"{Path(argv[0]).name} failed with status {done.returncode}\n"
                f"  command: {' '.join(argv)}\n{done.stdout}{done.stderr}"
            )

    def _initdb(self) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner is not None:
            os.chown(pwfile, *self.owner)
        pwfile.chmod(0o600)
        try:
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                f"--pwfile={pwfile}",
                "--auth-host=scram-sha-256",
                "--auth-local=peer",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def start(self) -> None:
        """Start the server (again). The parent-death signal is tied to the calling
        *thread*: call it from one that lives as long as the server should."""
        argv = [*self.prefix, str(self.bin / "postgres"), "-D", str(self.data)]
        argv += ["-p", str(self.port)]
        for key, value in _SETTINGS.items():
            argv += ["-c", f"{key}={value}"]
        process = ServerProcess("postgres", argv, workdir=self.root)
        self.process = process.start()
        if self.owner is not None:
            os.chown(process.log_path, *self.owner)
        isready = [str(self.bin / "pg_isready"), "-q", "-h", LOOPBACK, "-p", str(self.port)]

        def ready() -> bool:
            return subprocess.run(isready, check=False, timeout=10).returncode == 0

        try:
            process.wait_ready(ready, self.timeout)
        except BaseException:
            process.stop()
            raise

    def stop(self) -> None:
        """``pg_ctl stop -m fast`` (clients are cut, data written), then the PID."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            if process.running():
                with contextlib.suppress(ServerStartError, subprocess.TimeoutExpired):
                    self._run(
                        str(self.bin / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w"
                    )
        finally:
            process.stop()

    def kill(self) -> None:
        """Stop at once, without a shutdown checkpoint (SIGKILL to the process group)."""
        process, self.process = self.process, None
        if process is not None:
            process.stop(grace=0.0)

    def restart(self) -> None:
        self.stop()
        self.start()

    def server(self) -> Server:
        pid = self.process.pid if self.process is not None else 0
        return Server(
            kind="postgresql",
            host=LOOPBACK,
            port=self.port,
            url=self.url,
            pids=(pid,),
            workdir=self.root,
            username=SUPERUSER,
            password=self.password,
            extra={"database": DATABASE, "data": str(self.data)},
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def start_postgresql_node(*, timeout: float = 60.0) -> Iterator[PostgresNode]:
    """A running :class:`PostgresNode` (for tests that stop and restart it)."""
    node = PostgresNode(timeout=timeout)
    try:
        node.start()
        yield node
    finally:
        node.remove()


@contextlib.contextmanager
def start_postgresql(*, timeout: float = 60.0) -> Iterator[Server]:
    """One PostgreSQL with password (SCRAM) logins on a free loopback port."""
    with start_postgresql_node(timeout=timeout) as node:
        yield node.server()


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[Server]:
    """A PostgreSQL on a free loopback port; ``server.url`` logs in as a superuser."""
    with start_postgresql() as server:
        yield server
