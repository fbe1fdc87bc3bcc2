"""What the real Elasticsearch and OpenSearch test nodes share: a folder the server user
owns, the JVM launch as that user, the readiness probe, and restarts on the same port.

Both products refuse to run as root, so as root the node runs as the system
user that ``scripts/install-search-server.sh`` creates (``setpriv``), in a
folder under the system temp dir that user owns (pytest's own temp folders
are private to root). Each node is one process group, stopped by its PID.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pwd
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import attrs

from ._process import (
    INSTALL_SCRIPT,
    LOOPBACK,
    Server,
    ServerError,
    ServerNotInstalledError,
    ServerProcess,
    free_port,
)

#: where scripts/install-search-server.sh puts the servers.
SERVERS_DIR_ENV = "RESULTSTORE_SERVERS_DIR"
DEFAULT_SERVERS_DIR = "/opt/resultstore-servers"
RUN_USER_ENV = "RESULTSTORE_SERVER_USER"
#: where nodes keep their data (default: /dev/shm when it has room, else the temp dir).
DATA_DIR_ENV = "RESULTSTORE_SEARCH_DATA"
DEFAULT_RUN_USER = "resultstore-search"
#: heap of every node; both products run a single node well in 512 MiB.
HEAP = "512m"
JAVA_17 = "/usr/lib/jvm/java-17-openjdk-amd64"


@attrs.frozen
class Product:
    """How one product is laid out and configured."""

    #: "elasticsearch" or "opensearch" (also the install-servers.sh name).
    name: str
    version_env: str
    default_version: str
    #: the launcher under bin/ and the settings file under config/.
    program: str
    settings_file: str
    #: environment variable names of the launcher: conf dir, tmp dir, JVM options, Java home.
    env_names: tuple[str, str, str, str]
    #: settings every node gets beyond host, ports and paths.
    base_settings: Mapping[str, str]


def servers_dir() -> Path:
    return Path(os.environ.get(SERVERS_DIR_ENV, DEFAULT_SERVERS_DIR))


def home_of(product: Product) -> Path:
    version = os.environ.get(product.version_env, product.default_version)
    home = servers_dir() / f"{product.name}-{version}"
    if not os.access(home / "bin" / product.program, os.X_OK):
        raise ServerNotInstalledError(
            f"{product.name} {version} is not installed in {home} (Maven Central's "
            f"integration-test zip); install it with: {INSTALL_SCRIPT} {product.name} "
            f"(or point {SERVERS_DIR_ENV} at the folder that holds it)"
        )
    return home


def _base_dir() -> str | None:
    """Where nodes keep their data: $RESULTSTORE_SEARCH_DATA, else /dev/shm, else the temp dir."""
    chosen = os.environ.get(DATA_DIR_ENV)
    if chosen:
        return chosen
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * 1024**3:
        return str(shm)
    return None


def _java_home() -> str:
    if os.access(f"{JAVA_17}/bin/java", os.X_OK):
        return JAVA_17
    java = shutil.which("java")
    if java is None:
        raise ServerNotInstalledError(
            "java is not installed; Elasticsearch 8 and OpenSearch 2 need Java 17: "
            "apt-get install -y openjdk-17-jdk-headless"
        )
    return str(Path(java).resolve().parent.parent)


def _run_as() -> tuple[list[str], tuple[int, int] | None]:
    """The argv prefix that drops root, and the (uid, gid) to own the node's folder."""
    # The parent-death signal stops the node when the test process dies without
    # its teardown (SIGKILL, a crash): no orphan JVM outlives its session.
    if os.geteuid() != 0:
        return ["setpriv", "--pdeathsig=TERM", "--"], None
    user = os.environ.get(RUN_USER_ENV, DEFAULT_RUN_USER)
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ServerNotInstalledError(
            f"Elasticsearch and OpenSearch refuse to run as root and the system user "
            f"{user!r} does not exist; create it with: {INSTALL_SCRIPT} elasticsearch "
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


def _chown_tree(root: Path, owner: tuple[int, int] | None) -> None:
    if owner is None:
        return
    for folder, dirs, files in os.walk(root):
        os.chown(folder, *owner)
        for name in (*dirs, *files):
            os.chown(os.path.join(folder, name), *owner, follow_symlinks=False)


def http_json(
    url: str,
    method: str = "GET",
    body: object = None,
    *,
    auth: tuple[str, str] | None = None,
    context: ssl.SSLContext | None = None,
    timeout: float = 10.0,
) -> object:
    """One JSON request (for probes and test set-up), the decoded answer."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
        return json.loads(response.read() or b"null")


class SearchNode:
    """One single-node cluster in its own folder, on fixed free ports for its life,
    so that :meth:`restart` brings the same data back on the same address."""

    def __init__(
        self,
        product: Product,
        *,
        settings: Mapping[str, str] | None = None,
        scheme: str = "http",
        auth: tuple[str, str] | None = None,
        context: ssl.SSLContext | None = None,
        prepare: Callable[[Path, dict[str, str]], None] | None = None,
    ) -> None:
        self.product = product
        self.home = home_of(product)
        self.java_home = _java_home()
        self.prefix, self.owner = _run_as()
        self.port = free_port()
        self.transport_port = free_port()
        while self.transport_port == self.port:
            self.transport_port = free_port()
        self.scheme = scheme
        self.auth = auth
        self.context = context
        #: the CA to trust when the node speaks HTTPS.
        self.ca_file: Path | None = None
        # pytest's temp folders are private to root: the node gets one of its own,
        # in memory where there is a tmpfs (fsync costs nothing there: the translog
        # is still written per request, but tests stop waiting for the disk).
        self.root = Path(tempfile.mkdtemp(prefix=f"resultstore-{product.name}-", dir=_base_dir()))
        self.config = self.root / "config"
        shutil.copytree(self.home / "config", self.config)
        for folder in ("data", "logs", "tmp"):
            (self.root / folder).mkdir()
        self._absolute_jvm_paths()
        values = {
            "cluster.name": f"resultstore-{self.port}",
            "node.name": f"node-{self.port}",
            "network.host": LOOPBACK,
            "http.port": str(self.port),
            "transport.port": str(self.transport_port),
            "discovery.type": "single-node",
            "path.data": str(self.root / "data"),
            "path.logs": str(self.root / "logs"),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            **product.base_settings,
            **(settings or {}),
        }
        env = self._env()
        if prepare is not None:
            prepare(self.config, env)
        (self.config / product.settings_file).write_text(
            "".join(f"{key}: {json.dumps(value)}\n" for key, value in values.items())
        )
        _chown_tree(self.root, self.owner)
        self.process: ServerProcess | None = None
        self.started_in: float | None = None
        self._began = 0.0

    def _absolute_jvm_paths(self) -> None:
        """jvm.options names logs/ and data relative to the launcher's folder (the
        install, which the server user cannot write): point them into the node's."""
        options = self.config / "jvm.options"
        text = options.read_text()
        for old, new in (
            ("HeapDumpPath=data", f"HeapDumpPath={self.root}/data"),
            ("ErrorFile=logs/", f"ErrorFile={self.root}/logs/"),
            ("Xloggc:logs/", f"Xloggc:{self.root}/logs/"),
            ("file=logs/", f"file={self.root}/logs/"),
        ):
            text = text.replace(old, new)
        options.write_text(text)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    def _env(self) -> dict[str, str]:
        conf, tmp, opts, java = self.product.env_names
        return {
            conf: str(self.config),
            tmp: str(self.root / "tmp"),
            opts: f"-Xms{HEAP} -Xmx{HEAP}",
            java: self.java_home,
        }

    def tool(self, name: str, *args: str) -> None:
        """Run one of the product's bin/ tools on this node's config (as the server user)."""
        env = {**os.environ, **self._env()}
        process = ServerProcess(
            name, [*self.prefix, str(self.home / "bin" / name), *args], workdir=self.root, env=env
        )
        with process:
            deadline = time.monotonic() + 120
            while process.running() and time.monotonic() < deadline:
                time.sleep(0.1)
            if process.running():
                raise process.failure("did not finish in 120 s")

    def _ready(self) -> bool:
        url = f"{self.url}/_cluster/health?wait_for_status=yellow&timeout=1s"
        try:
            http_json(url, auth=self.auth, context=self.context, timeout=5)
        except urllib.error.HTTPError:
            return False
        return True

    def launch(self) -> None:
        """Start the JVM and return at once (see :meth:`wait`): two nodes can boot together."""
        argv = [*self.prefix, str(self.home / "bin" / self.product.program)]
        process = ServerProcess(self.product.name, argv, workdir=self.root, env=self._env())
        self._began = time.monotonic()
        process.start()
        self.process = process

    def wait(self, timeout: float = 240.0) -> None:
        """Wait until the launched node answers (cluster health yellow or green)."""
        if self.process is None:
            raise ServerError(f"{self.product.name} was not launched")
        if self.started_in is not None:
            return
        try:
            self.process.wait_ready(self._ready, timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - self._began

    def start(self, timeout: float = 240.0) -> None:
        self.launch()
        self.wait(timeout)

    def stop(self) -> None:
        self.started_in = None
        if self.process is not None:
            # The node flushes on SIGTERM; 60 s leaves it time on a loaded machine.
            self.process.stop(grace=60.0)
            self.process = None

    def kill(self) -> None:
        """SIGKILL the node (a crash: no flush)."""
        self.started_in = None
        if self.process is not None:
            self.process.stop(grace=0.0)
            self.process = None

    def restart(self, timeout: float = 240.0) -> None:
        self.stop()
        self.start(timeout)

    @property
    def pids(self) -> tuple[int, ...]:
        return (self.process.pid,) if self.process is not None else ()

    def server(self, kind: str) -> Server:
        username, password = self.auth if self.auth is not None else (None, None)
        return Server(
            kind=kind,
            host=LOOPBACK,
            port=self.port,
            url=self.url,
            pids=self.pids,
            workdir=self.root,
            username=username,
            password=password,
            ca_file=self.ca_file,
            nodes=((LOOPBACK, self.port),),
            extra={"started_in": f"{self.started_in or 0.0:.1f}", "heap": HEAP},
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running(node: SearchNode, kind: str, timeout: float) -> Iterator[Server]:
    """Start ``node``, yield it as a :class:`Server`, stop it and remove its folder."""
    try:
        node.start(timeout)
        yield node.server(kind)
    finally:
        node.remove()
