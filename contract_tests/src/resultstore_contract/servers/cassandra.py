"""Apache Cassandra nodes and a three-node cluster on loopback, assembled from Maven Central jars.

``bash scripts/install-servers.sh cassandra`` puts ``cassandra-all`` and its
runtime dependencies in ``$RESULTSTORE_CASSANDRA_HOME/lib`` (default
``~/.cache/resultstore/cassandra-<version>``); this module writes a minimal
``cassandra.yaml`` per node, runs ``CassandraDaemon`` on the system Java 17
with C1 only (about half the start-up CPU), and probes readiness with raw
CQL frames, so the contract suite needs no client library. Node ``i`` of a
cluster listens on ``127.0.0.i`` (Linux answers all of 127/8 on ``lo``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ._process import (
    LOOPBACK,
    Server,
    ServerError,
    ServerNotInstalledError,
    ServerProcess,
    ServerStartError,
    new_password,
)

__all__ = [
    "CASSANDRA_VERSION",
    "CassandraCluster",
    "CassandraNode",
    "CqlError",
    "cassandra_auth_server",
    "cassandra_cluster",
    "cassandra_home",
    "cassandra_server",
    "cql_query",
    "start_cassandra",
    "start_cassandra_cluster",
    "start_cassandra_node",
]

#: the version scripts/install-cassandra.sh assembles.
CASSANDRA_VERSION = "5.0.9"
#: the default superuser PasswordAuthenticator creates on a fresh node.
DEFAULT_SUPERUSER = ("cassandra", "cassandra")

_OPCODES = {"ERROR": 0x00, "STARTUP": 0x01, "READY": 0x02, "AUTHENTICATE": 0x03}
_OPTIONS, _SUPPORTED, _QUERY, _RESULT = 0x05, 0x06, 0x07, 0x08
_ROWS = 0x0002
_AUTH_RESPONSE, _AUTH_SUCCESS = 0x0F, 0x10
_CONSISTENCY = {"ONE": 0x0001, "QUORUM": 0x0004, "ALL": 0x0005, "LOCAL_QUORUM": 0x0006}


class CqlError(ServerError):
    """A raw CQL request to a test node failed; the message is the server's."""


def cassandra_home() -> Path:
    """The folder scripts/install-cassandra.sh fills (``lib/`` and ``.installed``)."""
    configured = os.environ.get("RESULTSTORE_CASSANDRA_HOME")
    if configured:
        return Path(configured)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "resultstore" / f"cassandra-{CASSANDRA_VERSION}"


def _installed_lib() -> Path:
    home = cassandra_home()
    if not (home / ".installed").is_file() or not (home / "lib").is_dir():
        raise ServerNotInstalledError(
            f"Apache Cassandra {CASSANDRA_VERSION} is not assembled in {home} (set "
            f"RESULTSTORE_CASSANDRA_HOME to use another folder). Install it with: "
            f"bash scripts/install-servers.sh cassandra"
        )
    return home / "lib"


def _java() -> str:
    java = os.environ.get("JAVA") or shutil.which("java")
    if not java:
        raise ServerNotInstalledError(
            "java is not installed; Cassandra 5.0 needs Java 17 (Debian package "
            "openjdk-17-jre-headless). Install it with: bash scripts/install-servers.sh cassandra"
        )
    return java


# -- raw CQL (protocol v4), enough to probe and set up a node ---------------------------


def _short_string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def _frame(opcode: int, body: bytes, stream: int = 0) -> bytes:
    return struct.pack(">BBhBi", 0x04, 0, stream, opcode, len(body)) + body


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("the node closed the connection mid-frame")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _request(sock: socket.socket, opcode: int, body: bytes = b"") -> tuple[int, bytes]:
    sock.sendall(_frame(opcode, body))
    header = _recv_exactly(sock, 9)
    _, _, _, reply, length = struct.unpack(">BBhBi", header)
    return reply, _recv_exactly(sock, length)


def _error_text(body: bytes) -> str:
    (code,) = struct.unpack_from(">i", body)
    (length,) = struct.unpack_from(">H", body, 4)
    return f"error {code:#06x}: {body[6 : 6 + length].decode(errors='replace')}"


@contextlib.contextmanager
def _cql_connection(
    address: tuple[str, int], credentials: tuple[str, str] | None, timeout: float
) -> Iterator[socket.socket]:
    """A connection past STARTUP (and SASL PLAIN login when the node asks for it)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        body = struct.pack(">H", 1) + _short_string("CQL_VERSION") + _short_string("3.0.0")
        reply, data = _request(sock, _OPCODES["STARTUP"], body)
        if reply == _OPCODES["AUTHENTICATE"]:
            if credentials is None:
                raise CqlError("the node asks for a login and none was given")
            user, password = credentials
            token = b"\x00" + user.encode() + b"\x00" + password.encode()
            reply, data = _request(sock, _AUTH_RESPONSE, struct.pack(">i", len(token)) + token)
            if reply != _AUTH_SUCCESS:
                raise CqlError(f"login as {user!r} failed ({_error_text(data)})")
        elif reply != _OPCODES["READY"]:
            raise CqlError(f"STARTUP was answered with opcode {reply:#x}")
        yield sock


def cql_query(
    address: tuple[str, int],
    query: str,
    *,
    credentials: tuple[str, str] | None = None,
    consistency: str = "ONE",
    timeout: float = 10.0,
) -> int:
    """Run one CQL statement on a fresh connection; the number of rows it returned.

    Raises :class:`CqlError` if it fails. Only for setting up and probing test
    nodes (the node that is connected to coordinates the request): a client
    library is what a backend uses. Rows are counted, not decoded.
    """
    with _cql_connection(address, credentials, timeout) as sock:
        text = query.encode()
        # Flag 0x02 (skip_metadata): a Rows result carries no column specs to parse.
        level = struct.pack(">HB", _CONSISTENCY[consistency], 0x02)
        body = struct.pack(">i", len(text)) + text + level
        reply, data = _request(sock, _QUERY, body)
        if reply != _RESULT:
            raise CqlError(f"{query!r} at {consistency} on {address}: {_error_text(data)}")
        (kind,) = struct.unpack_from(">i", data)
        if kind != _ROWS:
            return 0
        flags, _ = struct.unpack_from(">ii", data, 4)
        position = 12
        if flags & 0x0002:  # has_more_pages: a paging state comes first
            (length,) = struct.unpack_from(">i", data, position)
            position += 4 + max(length, 0)
        (count,) = struct.unpack_from(">i", data, position)
        return int(count)


def _cql_ready(address: tuple[str, int], login: tuple[str, str] | None) -> bool:
    """The node answers OPTIONS (and, with ``login``, lets that user in)."""
    try:
        with socket.create_connection(address, timeout=3) as sock:
            reply, _ = _request(sock, _OPTIONS)
            if reply != _SUPPORTED:
                return False
        if login is not None:
            with _cql_connection(address, login, 5):
                pass
    except (OSError, CqlError):
        return False
    return True


# -- one node ---------------------------------------------------------------------------

#: JPMS flags from Cassandra 5.0's conf/jvm17-server.options.
_JPMS = [
    "-Djdk.attach.allowAttachSelf=true",
    *(
        f"--add-exports={target}=ALL-UNNAMED"
        for target in (
            "java.base/jdk.internal.misc",
            "java.management.rmi/com.sun.jmx.remote.internal.rmi",
            "java.rmi/sun.rmi.registry",
            "java.rmi/sun.rmi.server",
            "java.sql/java.sql",
            "java.base/java.lang.ref",
            "jdk.unsupported/sun.misc",
            "jdk.compiler/com.sun.tools.javac.file",
            "jdk.attach/sun.tools.attach",
        )
    ),
    *(
        f"--add-opens={target}=ALL-UNNAMED"
        for target in (
            "java.base/java.lang.module",
            "java.base/jdk.internal.loader",
            "java.base/jdk.internal.ref",
            "java.base/jdk.internal.reflect",
            "java.base/jdk.internal.math",
            "java.base/jdk.internal.module",
            "java.base/jdk.internal.util.jar",
            "jdk.management/com.sun.management.internal",
            "java.base/sun.nio.ch",
            "java.base/java.io",
            "java.base/java.lang.reflect",
            "jdk.compiler/com.sun.tools.javac",
            "java.base/java.lang",
            "java.base/java.util",
            "java.base/java.nio",
        )
    ),
]


def _free_port_on(hosts: Sequence[str]) -> int:
    """A port free on every one of ``hosts`` a moment ago."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((hosts[0], 0))
            port: int = probe.getsockname()[1]
        try:
            for host in hosts[1:]:
                with socket.socket() as other:
                    other.bind((host, port))
        except OSError:
            continue
        return port
    raise ServerStartError(f"no port was free on all of {', '.join(hosts)}")


class CassandraNode:
    """One Cassandra JVM with all its state in ``workdir``; it can be killed and restarted.

    A restart keeps the data, the address and the ports. ``unsafe_system``
    (fast first start) keeps schema changes out of the commit log, so a node
    that may be SIGKILLed must run without it.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        host: str = LOOPBACK,
        native_port: int | None = None,
        storage_port: int | None = None,
        seeds: str | None = None,
        auth: bool = False,
        cluster: bool = False,
        token: int | None = None,
        unsafe_system: bool | None = None,
        heap: str = "768M",
    ) -> None:
        self.workdir = workdir
        self.host = host
        self.native_port = native_port or _free_port_on([host])
        self.storage_port = storage_port or _free_port_on([host])
        self.seeds = seeds or f"{host}:{self.storage_port}"
        self.auth = auth
        self.cluster = cluster
        self.token = token
        self.unsafe_system = (not cluster) if unsafe_system is None else unsafe_system
        self.heap = heap
        self.process: ServerProcess | None = None
        #: seconds the last start took until the node answered CQL.
        self.start_seconds = 0.0

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.native_port)

    @property
    def pid(self) -> int:
        if self.process is None:
            raise ServerError("the node was not started")
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def _write_conf(self) -> Path:
        conf, data = self.workdir / "conf", self.workdir / "data"
        for sub in (conf / "triggers", self.workdir / "logs", data, self.workdir / "tmp"):
            sub.mkdir(parents=True, exist_ok=True)
        authn, authz = (
            ("PasswordAuthenticator", "CassandraAuthorizer")
            if self.auth
            else ("AllowAllAuthenticator", "AllowAllAuthorizer")
        )
        lines = [
            "cluster_name: resultstore-test",
            "num_tokens: 1",
            "partitioner: org.apache.cassandra.dht.Murmur3Partitioner",
            f"endpoint_snitch: {'GossipingPropertyFileSnitch' if self.cluster else 'SimpleSnitch'}",
            "seed_provider:",
            "  - class_name: org.apache.cassandra.locator.SimpleSeedProvider",
            "    parameters:",
            f'      - seeds: "{self.seeds}"',
            f"listen_address: {self.host}",
            f"rpc_address: {self.host}",
            f"storage_port: {self.storage_port}",
            f"native_transport_port: {self.native_port}",
            "start_native_transport: true",
            f"data_file_directories: [{data}/data]",
            f"commitlog_directory: {data}/commitlog",
            f"saved_caches_directory: {data}/saved_caches",
            f"hints_directory: {data}/hints",
            f"cdc_raw_directory: {data}/cdc_raw",
            "commitlog_sync: periodic",
            "commitlog_sync_period: 10000ms",
            f"authenticator: {authn}",
            f"authorizer: {authz}",
            "role_manager: CassandraRoleManager",
            "auto_snapshot: false",
            "memtable_heap_space: 64MiB",
            "memtable_offheap_space: 64MiB",
            "key_cache_size: 0MiB",
            "counter_cache_size: 0MiB",
            "prepared_statements_cache_size: 8MiB",
            "concurrent_reads: 8",
            "concurrent_writes: 8",
            "concurrent_counter_writes: 8",
            "native_transport_max_threads: 32",
            "compaction_throughput: 0MiB/s",
        ]
        if self.cluster:
            # A node of a brand-new cluster has nothing to stream; fixed tokens make
            # ownership even, and without the dynamic snitch a coordinator reads
            # from itself first.
            lines += ["auto_bootstrap: false", f"initial_token: {self.token}"]
            lines += ["dynamic_snitch: false"]
            (conf / "cassandra-rackdc.properties").write_text("dc=datacenter1\nrack=rack1\n")
        (conf / "cassandra.yaml").write_text("\n".join(lines) + "\n")
        (conf / "logback.xml").write_text(
            '<configuration scan="false">\n'
            '  <appender name="FILE" class="ch.qos.logback.core.FileAppender">\n'
            f"    <file>{self.workdir}/logs/system.log</file>\n"
            "    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n"
            "</pattern></encoder>\n"
            "  </appender>\n"
            '  <root level="INFO"><appender-ref ref="FILE"/></root>\n'
            "</configuration>\n"
        )
        return conf

    def _argv(self) -> list[str]:
        lib = _installed_lib()
        jars = sorted(lib.glob("*.jar"))
        jamm = [jar for jar in jars if jar.name.startswith("jamm-")]
        if not jamm:
            raise ServerNotInstalledError(f"no jamm agent jar in {lib}; reinstall Cassandra")
        conf = self._write_conf()
        options = [
            "-ea",
            "-Xms256M",
            f"-Xmx{self.heap}",
            "-Xss256k",
            "-XX:+UseG1GC",
            "-XX:+ParallelRefProcEnabled",
            "-XX:MaxTenuringThreshold=1",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:+PerfDisableSharedMem",
            # C1 only: about half the start-up CPU, which matters on small CI machines.
            "-XX:TieredStopAtLevel=1",
            "-Djava.net.preferIPv4Stack=true",
            f"-Djava.io.tmpdir={self.workdir}/tmp",
            *_JPMS,
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Dio.netty.allocator.useCacheForAllThreads=true",
            "-Dio.netty.allocator.maxOrder=11",
            f"-javaagent:{jamm[0]}",
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.config=file://{conf}/cassandra.yaml",
            f"-Dlogback.configurationFile=file://{conf}/logback.xml",
            f"-Dcassandra.logdir={self.workdir}/logs",
            f"-Dcassandra.storagedir={self.workdir}/data",
            f"-Dcassandra.triggers_dir={conf}/triggers",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            # In a cluster the default-role setup is retried while a node is down;
            # with no delay it spins hot.
            f"-Dcassandra.superuser_setup_delay_ms={1000 if self.cluster else 0}",
        ]
        if self.unsafe_system:
            options.append("-Dcassandra.unsafesystem=true")
        if self.cluster:
            options += [
                f"-Dcassandra-rackdc.properties=file://{conf}/cassandra-rackdc.properties",
                "-Dcassandra.ring_delay_ms=5000",
            ]
        classpath = ":".join(str(jar) for jar in jars)
        return [_java(), *options, "-cp", classpath, "org.apache.cassandra.service.CassandraDaemon"]

    def start(self, timeout: float = 240.0) -> None:
        """Start the JVM (again, with the same data and ports); wait until it answers CQL."""
        if self.running():
            raise ServerError(f"the node in {self.workdir} is already running")
        argv = self._argv()
        # As root, Cassandra mlockall()s its whole heap; without CAP_IPC_LOCK that
        # fails harmlessly and RSS stays low.
        setpriv = shutil.which("setpriv")
        if setpriv and os.geteuid() == 0:
            argv = [setpriv, "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", *argv]
        name = f"cassandra-{self.host}"
        process = ServerProcess(name, argv, workdir=self.workdir)
        began = time.monotonic()
        process.start()
        self.process = process
        login = DEFAULT_SUPERUSER if self.auth else None
        try:
            # With auth, the default superuser appears just after CQL opens.
            process.wait_ready(lambda: _cql_ready(self.address, login), timeout)
        except ServerStartError as exc:
            process.stop(grace=0.1)
            log = self.workdir / "logs" / "system.log"
            raise ServerStartError(f"{exc}\n  Cassandra's own log: {log}") from None
        self.start_seconds = time.monotonic() - began

    def kill(self) -> None:
        """SIGKILL the node (a crash: its data stays for a restart)."""
        if self.process is not None and self.process.running():
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.stop(grace=10)

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM (Cassandra drains: memtables flushed), SIGKILL after ``grace``.

        A throwaway node need not finish its drain; pass a longer grace to keep it whole.
        """
        if self.process is not None:
            self.process.stop(grace=grace)


@contextlib.contextmanager
def start_cassandra_node(
    workdir: Path, *, auth: bool = False, unsafe_system: bool = True, timeout: float = 240.0
) -> Iterator[CassandraNode]:
    """A single node in ``workdir`` as a handle that can be killed and restarted.

    Pass ``unsafe_system=False`` when the test SIGKILLs it (see CassandraNode).
    """
    node = CassandraNode(workdir, auth=auth, unsafe_system=unsafe_system)
    try:
        node.start(timeout)
        yield node
    finally:
        node.stop()


def _node_server(node: CassandraNode, credentials: tuple[str, str] | None) -> Server:
    userinfo = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
    return Server(
        kind="cassandra",
        host=node.host,
        port=node.native_port,
        url=f"cassandra://{userinfo}{node.host}:{node.native_port}",
        pids=(node.pid,),
        workdir=node.workdir,
        username=credentials[0] if credentials else None,
        password=credentials[1] if credentials else None,
        nodes=(node.address,),
        extra={"start_seconds": f"{node.start_seconds:.1f}"},
    )


def _create_login(address: tuple[str, int], user: str, password: str) -> None:
    """A superuser of our own with a fresh password (the default one is well known)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            cql_query(
                address,
                f"CREATE ROLE IF NOT EXISTS {user} WITH PASSWORD = '{password}' "
                "AND LOGIN = true AND SUPERUSER = true",
                credentials=DEFAULT_SUPERUSER,
                consistency="QUORUM",
            )
            return
        except (CqlError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@contextlib.contextmanager
def start_cassandra(
    workdir: Path, *, auth: bool = False, unsafe_system: bool = True, timeout: float = 240.0
) -> Iterator[Server]:
    """A single Cassandra node on a free loopback port.

    With ``auth``, PasswordAuthenticator is on and the Server carries a
    superuser ``resultstore`` with a fresh random password.
    """
    with start_cassandra_node(
        workdir, auth=auth, unsafe_system=unsafe_system, timeout=timeout
    ) as node:
        credentials = None
        if auth:
            credentials = ("resultstore", new_password())
            _create_login(node.address, *credentials)
        yield _node_server(node, credentials)


# -- a cluster --------------------------------------------------------------------------

#: the keyspace the cluster's readiness probe reads at consistency ALL.
PROBE_KEYSPACE = "resultstore_probe"


class CassandraCluster:
    """``size`` nodes on 127.0.0.1 .. 127.0.0.<size>, one CQL and one storage port for all.

    Node ``i`` (1-based) has token ``i`` of ``size`` evenly spaced ones and
    node 1 is the seed. ``kill(i)`` crashes a node, ``start(i)`` brings it
    back with its data and waits until every running node sees it up.
    """

    def __init__(self, workdir: Path, size: int = 3) -> None:
        if not 1 <= size <= 9:
            raise ValueError("a test cluster has 1 to 9 nodes")
        hosts = [f"127.0.0.{i}" for i in range(1, size + 1)]
        native, storage = _free_port_on(hosts), _free_port_on(hosts)
        while storage == native:
            storage = _free_port_on(hosts)
        step = (2**64) // size
        self.workdir = workdir
        self.nodes = [
            CassandraNode(
                workdir / f"node{i}",
                host=host,
                native_port=native,
                storage_port=storage,
                seeds=f"127.0.0.1:{storage}",
                cluster=True,
                token=-(2**63) + (i - 1) * step,
            )
            for i, host in enumerate(hosts, start=1)
        ]
        #: seconds the first start of the whole cluster took.
        self.start_seconds = 0.0

    @property
    def port(self) -> int:
        return self.nodes[0].native_port

    @property
    def url(self) -> str:
        return "cassandra://" + ",".join(f"{node.host}:{node.native_port}" for node in self.nodes)

    @property
    def server(self) -> Server:
        return Server(
            kind="cassandra-cluster",
            host=self.nodes[0].host,
            port=self.port,
            url=self.url,
            pids=tuple(node.pid for node in self.nodes if node.running()),
            workdir=self.workdir,
            nodes=tuple(node.address for node in self.nodes),
            extra={"start_seconds": f"{self.start_seconds:.1f}"},
        )

    def node(self, index: int) -> CassandraNode:
        if not 1 <= index <= len(self.nodes):
            raise ValueError(f"node index must be 1..{len(self.nodes)}, got {index}")
        return self.nodes[index - 1]

    def _all_up(self, timeout: float) -> None:
        """Wait until each running node, as coordinator, reaches every running replica."""
        running = [node for node in self.nodes if node.running()]
        probe = f"SELECT k FROM {PROBE_KEYSPACE}.probe WHERE k = 0"
        deadline = time.monotonic() + timeout
        for node in running:
            # ALL succeeds only when the coordinator believes every replica is up;
            # a node that is down is left out by reading at the running count.
            level = "ALL" if len(running) == len(self.nodes) else "QUORUM"
            while True:
                try:
                    cql_query(node.address, probe, consistency=level)
                    break
                except (CqlError, OSError) as exc:
                    if not node.running():
                        raise ServerStartError(f"node {node.host} died") from exc
                    if time.monotonic() > deadline:
                        raise ServerStartError(
                            f"node {node.host} did not see the cluster up after {timeout:g} s: "
                            f"{exc}; see {node.workdir}/logs/system.log"
                        ) from None
                    time.sleep(0.5)

    def start_all(self, timeout: float = 300.0) -> None:
        began = time.monotonic()
        for node in self.nodes:
            node.start(timeout)
        cql_query(
            self.nodes[0].address,
            f"CREATE KEYSPACE IF NOT EXISTS {PROBE_KEYSPACE} WITH replication = "
            f"{{'class': 'NetworkTopologyStrategy', 'datacenter1': {len(self.nodes)}}}",
            timeout=60,
        )
        cql_query(
            self.nodes[0].address,
            f"CREATE TABLE IF NOT EXISTS {PROBE_KEYSPACE}.probe (k int PRIMARY KEY)",
            timeout=60,
        )
        self._all_up(timeout)
        self.start_seconds = time.monotonic() - began

    def kill(self, index: int) -> None:
        """SIGKILL node ``index`` (a crash; its data stays)."""
        self.node(index).kill()

    def start(self, index: int, timeout: float = 240.0) -> float:
        """Restart node ``index``; wait until every running node reaches it. Returns seconds."""
        began = time.monotonic()
        self.node(index).start(timeout)
        self._all_up(timeout)
        return time.monotonic() - began

    def stop_all(self) -> None:
        for node in self.nodes:
            if node.process is not None and node.running():
                with contextlib.suppress(OSError):
                    os.kill(node.pid, signal.SIGTERM)
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def start_cassandra_cluster(
    workdir: Path, size: int = 3, *, timeout: float = 300.0
) -> Iterator[CassandraCluster]:
    """A cluster of ``size`` nodes on 127.0.0.1 .. 127.0.0.<size>, all up and seeing each other.

    The probe keyspace ``resultstore_probe`` (replication factor ``size``)
    exists afterwards. Nodes run without ``unsafesystem``, so kill tests are safe.
    """
    cluster = CassandraCluster(workdir, size)
    try:
        cluster.start_all(timeout)
        yield cluster
    finally:
        cluster.stop_all()


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def cassandra_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One Cassandra 5.0 node, no authentication (about 10 s to start, 400 MiB)."""
    with start_cassandra(tmp_path_factory.mktemp("cassandra")) as server:
        yield server


@pytest.fixture(scope="session")
def cassandra_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One node with PasswordAuthenticator; ``server.username``/``password`` is a superuser."""
    with start_cassandra(tmp_path_factory.mktemp("cassandra-auth"), auth=True) as server:
        yield server


@pytest.fixture(scope="session")
def cassandra_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CassandraCluster]:
    """Three nodes on 127.0.0.1-3 (about 30 s to start, 1.3 GiB); ``.server`` describes it,
    ``.kill(i)`` and ``.start(i)`` crash and restart node ``i``."""
    workdir = tmp_path_factory.mktemp(f"cassandra-cluster-{uuid.uuid4().hex[:6]}")
    with start_cassandra_cluster(workdir) as cluster:
        yield cluster
