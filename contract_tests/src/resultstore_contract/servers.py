"""Throwaway real servers on free loopback ports, and the session fixtures that start them.

Each ``start_*`` function is a context manager: it starts the server in a
fresh folder, waits until it answers a protocol-level hello, yields a
:class:`Server` and stops every process it started, by PID, however the block
ends. A missing binary fails with the package and the install command.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import importlib.util
import io
import ipaddress
import os
import secrets
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

import attrs
import pytest

__all__ = [
    "LOOPBACK",
    "Server",
    "ServerError",
    "ServerNotInstalledError",
    "ServerProcess",
    "ServerStartError",
    "TLSFiles",
    "free_port",
    "make_tls_files",
    "memcached_server",
    "mongodb_auth_server",
    "mongodb_command",
    "mongodb_server",
    "mongodb_standalone_server",
    "opensearch_server",
    "rabbitmq_server",
    "redis_auth_server",
    "redis_cluster_server",
    "redis_command",
    "redis_sentinel_server",
    "redis_server",
    "redis_tls_server",
    "start_memcached",
    "start_mongodb",
    "start_opensearch",
    "start_rabbitmq",
    "start_redis",
    "start_redis_cluster",
    "start_redis_sentinel",
]

LOOPBACK = "127.0.0.1"
INSTALL_SCRIPT = "bash scripts/install-servers.sh"
# SecantusDB publishes betas only; the pin matches scripts/install-servers.sh.
SECANTUS_SPEC = "SecantusDB==0.7.0b3"
OSMEM_SPEC = "osmem-server==0.1.6"


class ServerError(RuntimeError):
    """A test server could not be provided."""


class ServerNotInstalledError(ServerError):
    """The server's program is not installed; the message says how to install it."""


class ServerStartError(ServerError):
    """The server exited or did not answer in time; the message holds its log."""


def free_port(host: str = LOOPBACK) -> int:
    """A port that was free on ``host`` a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _missing(program: str, package: str, name: str) -> ServerNotInstalledError:
    return ServerNotInstalledError(
        f"{program} is not installed; it comes with {package}. "
        f"Install it with: {INSTALL_SCRIPT} {name}"
    )


def _which(program: str, package: str, name: str, *candidates: str) -> str:
    """The path of ``program`` (on PATH, else one of ``candidates``) or a loud failure."""
    found = shutil.which(program)
    if found:
        return found
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise _missing(program, f"the Debian package {package}", name)


def _python_module_path(module: str, spec: str, name: str) -> Path:
    """The folder of an installed module, found without importing it."""
    found = importlib.util.find_spec(module)
    if found is None or found.origin is None:
        raise _missing(f"the Python package {module}", f"PyPI {spec}", name)
    return Path(found.origin).parent


class ServerProcess:
    """One server process, started in a session of its own and stopped by its PID.

    Output goes to ``<workdir>/<name>.log``, which :class:`ServerStartError`
    quotes when the server dies or never gets ready.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        workdir: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.env = dict(env) if env is not None else None
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise ServerError(f"{self.name} was not started")
        return self._proc.pid

    def start(self) -> ServerProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        env = {**os.environ, **self.env} if self.env is not None else None
        try:
            # A session of its own makes the PID a process-group id, so helpers
            # the server forks can be killed with it and never outlive a test.
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except OSError as exc:
            self._log.close()
            raise ServerStartError(f"cannot run {self.argv[0]}: {exc}") from exc
        return self

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def failure(self, why: str) -> ServerStartError:
        return ServerStartError(
            f"{self.name} {why}\n  command: {' '.join(self.argv)}\n"
            f"  log {self.log_path} (last lines):\n{self.log_tail()}"
        )

    def wait_ready(self, probe: Callable[[], bool], timeout: float) -> None:
        """Call ``probe`` until it returns true; fail if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        last: BaseException | None = None
        while True:
            if not self.running():
                code = self._proc.returncode if self._proc is not None else None
                raise self.failure(f"exited with status {code} before it was ready")
            try:
                if probe():
                    return
            except (OSError, ValueError) as exc:
                last = exc
            if time.monotonic() > deadline:
                why = f" (last probe error: {last})" if last is not None else ""
                raise self.failure(f"was not ready after {timeout:g} s{why}")
            time.sleep(0.05)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the PID, SIGKILL its process group after ``grace`` seconds."""
        proc = self._proc
        if proc is None:
            return
        try:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(grace)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid)
                    proc.wait(grace)
            # The group id stays reserved while any member lives, so this can
            # only reach helpers this server forked.
            _kill_group(proc.pid)
        finally:
            if self._log is not None:
                self._log.close()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@attrs.frozen
class Server:
    """A running server: where to reach it and how to log in.

    ``url`` may hold the password, so neither it nor ``password`` is in the repr.
    """

    #: what it is: "redis", "memcached", "rabbitmq", "mongodb", "opensearch".
    kind: str
    host: str
    port: int
    url: str = attrs.field(repr=False)
    #: every process behind this server, in start order.
    pids: tuple[int, ...]
    workdir: Path
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=False)
    #: the CA certificate to trust when the server speaks TLS.
    ca_file: Path | None = None
    #: every node's (host, port), for servers made of several (cluster, sentinel).
    nodes: tuple[tuple[str, int], ...] = ()
    #: anything else a client needs (replica-set name, sentinel master name...).
    extra: Mapping[str, str] = attrs.field(factory=dict)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


def _connect(address: tuple[str, int], timeout: float = 2.0) -> socket.socket:
    return socket.create_connection(address, timeout=timeout)


# -- TLS -----------------------------------------------------------------------


@attrs.frozen
class TLSFiles:
    """A throwaway CA and a server certificate it signed, valid for 127.0.0.1 and localhost."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def make_tls_files(directory: Path, *, days: int = 2) -> TLSFiles:
    """Write ``ca.pem``, ``server.pem`` and ``server.key`` into ``directory``."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError as exc:
        raise ServerNotInstalledError(
            f"TLS test servers need the cryptography package ({exc}): "
            "pip install 'resultstore-contract[servers]'"
        ) from exc

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    # Backdated a little so that clock skew between processes cannot matter.
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "resultstore test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address(LOOPBACK)),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )

    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    files.key_file.chmod(0o600)
    return files


# -- Redis ---------------------------------------------------------------------


def _resp_encode(args: Sequence[str | bytes]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_line(stream: io.BufferedIOBase) -> bytes:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("the server closed the connection mid-reply")
    return line[:-2]


def _resp_read(stream: io.BufferedIOBase) -> bytes | int | list[object] | None:
    line = _read_line(stream)
    kind, rest = line[:1], line[1:]
    if kind in (b"+", b"-"):
        # Errors come back as their text so that a caller can assert on them.
        return line
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = stream.read(size + 2)
        return data[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_resp_read(stream) for _ in range(count)]
    raise ValueError(f"not a RESP reply: {line[:60]!r}")


def redis_command(
    address: tuple[str, int],
    *args: str | bytes,
    password: str | None = None,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 2.0,
) -> bytes | int | list[object] | None:
    """Send one command over a fresh raw connection and return the decoded reply.

    Status and error replies come back as their line (``b"+PONG"``, ``b"-NOAUTH ..."``).
    """
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(_connect(address, timeout))
        if ssl_context is not None:
            sock = stack.enter_context(ssl_context.wrap_socket(sock, server_hostname=address[0]))
        stream = stack.enter_context(sock.makefile("rwb"))
        if password is not None:
            stream.write(_resp_encode(["AUTH", password]))
            stream.flush()
            reply = _resp_read(stream)
            if reply != b"+OK":
                raise ServerError(f"AUTH was refused: {reply!r}")
        stream.write(_resp_encode(args))
        stream.flush()
        return _resp_read(stream)


def _redis_pong(address: tuple[str, int]) -> bool:
    return redis_command(address, "PING") == b"+PONG"


def _cluster_ok(address: tuple[str, int]) -> bool:
    reply = redis_command(address, "CLUSTER", "INFO")
    return isinstance(reply, bytes) and b"cluster_state:ok" in reply


def _redis_binary() -> str:
    return _which("redis-server", "redis-server", "redis")


def _redis_process(
    workdir: Path,
    name: str,
    port: int,
    extra: Sequence[str] = (),
    *,
    binary: str | None = None,
) -> ServerProcess:
    argv = [
        binary or _redis_binary(),
        "--bind",
        LOOPBACK,
        "--port",
        str(port),
        "--dir",
        str(workdir),
        # Test data is throwaway: snapshots and the append-only file only cost time.
        "--save",
        "",
        "--appendonly",
        "no",
        *extra,
    ]
    return ServerProcess(name, argv, workdir=workdir)


@contextlib.contextmanager
def start_redis(
    workdir: Path,
    *,
    password: str | None = None,
    tls: bool = False,
    args: Sequence[str] = (),
    timeout: float = 15.0,
) -> Iterator[Server]:
    """One redis-server; with ``password`` it requires AUTH, with ``tls`` it speaks only TLS."""
    port = free_port()
    extra = list(args)
    context: ssl.SSLContext | None = None
    tls_files: TLSFiles | None = None
    if password is not None:
        extra += ["--requirepass", password]
    if tls:
        tls_files = make_tls_files(workdir / "tls")
        context = tls_files.client_context()
        # The plain port is closed so that a client that forgot TLS fails loudly.
        extra += [
            "--tls-port",
            str(port),
            "--tls-cert-file",
            str(tls_files.cert_file),
            "--tls-key-file",
            str(tls_files.key_file),
            "--tls-ca-cert-file",
            str(tls_files.ca_file),
            "--tls-auth-clients",
            "no",
        ]
    process = _redis_process(workdir, "redis", 0 if tls else port, extra)
    with process:
        process.wait_ready(
            lambda: (
                redis_command((LOOPBACK, port), "PING", password=password, ssl_context=context)
                == b"+PONG"
            ),
            timeout,
        )
        scheme = "rediss" if tls else "redis"
        auth = f":{password}@" if password is not None else ""
        yield Server(
            kind="redis",
            host=LOOPBACK,
            port=port,
            url=f"{scheme}://{auth}{LOOPBACK}:{port}/0",
            pids=(process.pid,),
            workdir=workdir,
            password=password,
            ca_file=tls_files.ca_file if tls_files is not None else None,
            nodes=((LOOPBACK, port),),
        )


@contextlib.contextmanager
def start_redis_sentinel(
    workdir: Path, *, master_name: str = "resultstore", timeout: float = 20.0
) -> Iterator[Server]:
    """A redis master watched by one sentinel; the Server's address is the sentinel's."""
    sentinel_binary = _which("redis-sentinel", "redis-sentinel", "redis")
    with contextlib.ExitStack() as stack:
        master = stack.enter_context(start_redis(workdir / "master"))
        port = free_port()
        sentinel_dir = workdir / "sentinel"
        sentinel_dir.mkdir(parents=True, exist_ok=True)
        # Sentinel rewrites its config file, so it gets its own copy.
        config = sentinel_dir / "sentinel.conf"
        config.write_text(
            f"bind {LOOPBACK}\nport {port}\nprotected-mode no\ndir {sentinel_dir}\n"
            f"sentinel monitor {master_name} {LOOPBACK} {master.port} 1\n"
            f"sentinel down-after-milliseconds {master_name} 2000\n"
        )
        process = stack.enter_context(
            ServerProcess("sentinel", [sentinel_binary, str(config)], workdir=sentinel_dir)
        )

        def knows_master() -> bool:
            reply = redis_command(
                (LOOPBACK, port), "SENTINEL", "get-master-addr-by-name", master_name
            )
            return reply == [LOOPBACK.encode(), str(master.port).encode()]

        process.wait_ready(knows_master, timeout)
        yield Server(
            kind="redis-sentinel",
            host=LOOPBACK,
            port=port,
            url=f"redis+sentinel://{LOOPBACK}:{port}/{master_name}/0",
            pids=(*master.pids, process.pid),
            workdir=workdir,
            nodes=((LOOPBACK, port),),
            extra={"master_name": master_name, "master": f"{LOOPBACK}:{master.port}"},
        )


@contextlib.contextmanager
def start_redis_cluster(
    workdir: Path, *, masters: int = 3, timeout: float = 30.0
) -> Iterator[Server]:
    """A redis cluster of ``masters`` nodes, no replicas; the Server's address is the first."""
    binary = _redis_binary()
    cli = _which("redis-cli", "redis-tools", "redis")
    with contextlib.ExitStack() as stack:
        ports = [free_port() for _ in range(masters)]
        processes = []
        for index, port in enumerate(ports):
            node_dir = workdir / f"node{index}"
            node_dir.mkdir(parents=True, exist_ok=True)
            process = _redis_process(
                node_dir,
                f"redis-node{index}",
                port,
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node_dir / "nodes.conf"),
                    # The default bus port is port + 10000, which may be taken or
                    # past 65535 for a kernel-chosen port.
                    "--cluster-port",
                    str(free_port()),
                ],
                binary=binary,
            )
            processes.append(stack.enter_context(process))
        for process, port in zip(processes, ports, strict=True):
            process.wait_ready(functools.partial(_redis_pong, (LOOPBACK, port)), timeout)
        create = subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(f"{LOOPBACK}:{port}" for port in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if create.returncode != 0:
            raise ServerStartError(
                f"redis-cli --cluster create failed:\n{create.stdout}{create.stderr}"
            )

        for process, port in zip(processes, ports, strict=True):
            process.wait_ready(functools.partial(_cluster_ok, (LOOPBACK, port)), timeout)
        nodes = tuple((LOOPBACK, port) for port in ports)
        yield Server(
            kind="redis-cluster",
            host=LOOPBACK,
            port=ports[0],
            url=f"redis+cluster://{','.join(f'{h}:{p}' for h, p in nodes)}/0",
            pids=tuple(process.pid for process in processes),
            workdir=workdir,
            nodes=nodes,
        )


# -- memcached -----------------------------------------------------------------


def _memcached_version(address: tuple[str, int]) -> bool:
    with _connect(address) as sock:
        sock.sendall(b"version\r\n")
        return sock.recv(128).startswith(b"VERSION ")


@contextlib.contextmanager
def start_memcached(
    workdir: Path, *, memory_mb: int = 64, timeout: float = 10.0
) -> Iterator[Server]:
    """One memcached, TCP only."""
    binary = _which("memcached", "memcached", "memcached")
    port = free_port()
    argv = [binary, "-l", LOOPBACK, "-p", str(port), "-U", "0", "-m", str(memory_mb)]
    if os.geteuid() == 0:
        # memcached refuses to run as root unless told which user to be.
        argv += ["-u", "root"]
    with ServerProcess("memcached", argv, workdir=workdir) as process:
        process.wait_ready(lambda: _memcached_version((LOOPBACK, port)), timeout)
        yield Server(
            kind="memcached",
            host=LOOPBACK,
            port=port,
            url=f"memcached://{LOOPBACK}:{port}",
            pids=(process.pid,),
            workdir=workdir,
            nodes=((LOOPBACK, port),),
        )


# -- RabbitMQ ------------------------------------------------------------------

#: AMQP 0-9-1 protocol header; a ready broker answers with a Connection.Start frame.
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def _amqp_hello(address: tuple[str, int]) -> bool:
    with _connect(address) as sock:
        sock.sendall(AMQP_HEADER)
        frame = sock.recv(11)
        # frame type 1 (method) on channel 0, then class 10 method 10: Connection.Start.
        return (
            len(frame) >= 11
            and frame[0] == 1
            and frame[1:3] == b"\x00\x00"
            and frame[7:11] == b"\x00\x0a\x00\x0a"
        )


@contextlib.contextmanager
def start_rabbitmq(workdir: Path, *, timeout: float = 90.0) -> Iterator[Server]:
    """One RabbitMQ node whose files, Erlang cookie and epmd all stay in ``workdir``.

    It runs the direct server script, not Debian's wrapper, which would switch
    user and use /var/lib; it is stopped with ``rabbitmqctl stop`` and its
    epmd with ``epmd -kill``, then by PID if either is left.
    """
    lib = "/usr/lib/rabbitmq/bin"
    server = _which("rabbitmq-server", "rabbitmq-server", "rabbitmq", f"{lib}/rabbitmq-server")
    # The direct script lives beside its tools; PATH may only hold the wrapper.
    server = f"{lib}/rabbitmq-server" if os.access(f"{lib}/rabbitmq-server", os.X_OK) else server
    ctl = f"{lib}/rabbitmqctl" if os.access(f"{lib}/rabbitmqctl", os.X_OK) else None
    ctl = ctl or _which("rabbitmqctl", "rabbitmq-server", "rabbitmq")
    epmd = _which("epmd", "erlang-base", "rabbitmq")
    port, dist_port, epmd_port = free_port(), free_port(), free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "rabbitmq.conf"
    config.write_text(
        f"listeners.tcp.default = {LOOPBACK}:{port}\n"
        "loopback_users.guest = true\n"
        "log.console = true\nlog.file = false\n"
    )
    plugins = workdir / "enabled_plugins"
    plugins.write_text("[].\n")
    env = {
        "HOME": str(workdir),
        "RABBITMQ_NODENAME": f"rabbit{port}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": LOOPBACK,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
        "RABBITMQ_LOG_BASE": str(workdir / "log"),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_PID_FILE": str(workdir / "rabbit.pid"),
        "ERL_EPMD_ADDRESS": LOOPBACK,
        "ERL_EPMD_PORT": str(epmd_port),
    }
    process = ServerProcess("rabbitmq", [server], workdir=workdir, env=env)
    try:
        process.start()
        process.wait_ready(lambda: _amqp_hello((LOOPBACK, port)), timeout)
        yield Server(
            kind="rabbitmq",
            host=LOOPBACK,
            port=port,
            url=f"amqp://guest:guest@{LOOPBACK}:{port}//",
            pids=(process.pid,),
            workdir=workdir,
            username="guest",
            password="guest",
            nodes=((LOOPBACK, port),),
            extra={"nodename": env["RABBITMQ_NODENAME"], "epmd_port": str(epmd_port)},
        )
    finally:
        full_env = {**os.environ, **env}
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [ctl, "-n", env["RABBITMQ_NODENAME"], "stop"],
                env=full_env,
                capture_output=True,
                timeout=60,
                check=False,
            )
        process.stop()
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(
                [epmd, "-kill"], env=full_env, capture_output=True, timeout=30, check=False
            )


# -- MongoDB wire protocol (SecantusDB) -----------------------------------------

_OP_MSG = 2013
BsonValue = int | str | bool | float | bytes | Mapping[str, "BsonValue"] | list["BsonValue"]


def _cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


def _bson_element(name: str, value: BsonValue) -> bytes:
    if isinstance(value, bool):
        return b"\x08" + _cstring(name) + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return b"\x12" + _cstring(name) + struct.pack("<q", value)
    if isinstance(value, float):
        return b"\x01" + _cstring(name) + struct.pack("<d", value)
    if isinstance(value, str):
        data = value.encode()
        return b"\x02" + _cstring(name) + struct.pack("<i", len(data) + 1) + data + b"\x00"
    if isinstance(value, bytes):
        return b"\x05" + _cstring(name) + struct.pack("<i", len(value)) + b"\x00" + value
    if isinstance(value, list):
        return b"\x04" + _cstring(name) + _bson({str(i): v for i, v in enumerate(value)})
    return b"\x03" + _cstring(name) + _bson(value)


def _bson(document: Mapping[str, BsonValue]) -> bytes:
    body = b"".join(_bson_element(name, value) for name, value in document.items())
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _bson_decode(data: bytes) -> dict[str, object]:
    """Decode the BSON types a command reply uses; others come back as raw bytes."""
    (size,) = struct.unpack_from("<i", data)
    out: dict[str, object] = {}
    pos = 4
    while pos < size - 1:
        kind = data[pos]
        end = data.index(b"\x00", pos + 1)
        name = data[pos + 1 : end].decode()
        pos = end + 1
        value: object
        if kind == 0x01:
            (value,) = struct.unpack_from("<d", data, pos)
            pos += 8
        elif kind == 0x02:
            (length,) = struct.unpack_from("<i", data, pos)
            value = data[pos + 4 : pos + 3 + length].decode()
            pos += 4 + length
        elif kind in (0x03, 0x04):
            (length,) = struct.unpack_from("<i", data, pos)
            inner = _bson_decode(data[pos : pos + length])
            value = inner if kind == 0x03 else list(inner.values())
            pos += length
        elif kind == 0x05:
            (length,) = struct.unpack_from("<i", data, pos)
            value = data[pos + 5 : pos + 5 + length]
            pos += 5 + length
        elif kind == 0x07:
            value, pos = data[pos : pos + 12], pos + 12
        elif kind == 0x08:
            value, pos = data[pos] == 1, pos + 1
        elif kind in (0x09, 0x11, 0x12):
            (value,) = struct.unpack_from("<q", data, pos)
            pos += 8
        elif kind == 0x0A:
            value = None
        elif kind == 0x10:
            (value,) = struct.unpack_from("<i", data, pos)
            pos += 4
        else:
            raise ValueError(f"BSON type {kind:#x} of field {name!r} is not decoded here")
        out[name] = value
    return out


def mongodb_command(
    address: tuple[str, int],
    command: Mapping[str, BsonValue],
    *,
    db: str = "admin",
    sock: socket.socket | None = None,
    timeout: float = 5.0,
) -> dict[str, object]:
    """Run one command with an OP_MSG over ``sock`` (else a fresh connection); return the reply.

    Only for probing test servers: a client library is what a backend uses.
    """
    with contextlib.ExitStack() as stack:
        if sock is None:
            sock = stack.enter_context(_connect(address, timeout))
        body = struct.pack("<I", 0) + b"\x00" + _bson({**command, "$db": db})
        request_id = secrets.randbits(31)
        sock.sendall(struct.pack("<iiii", 16 + len(body), request_id, 0, _OP_MSG) + body)
        header = _recv_exactly(sock, 16)
        length, _, response_to, opcode = struct.unpack("<iiii", header)
        payload = _recv_exactly(sock, length - 16)
        if opcode != _OP_MSG or response_to != request_id or payload[4] != 0:
            raise ValueError(f"unexpected reply (opcode {opcode}) to {next(iter(command))}")
        return _bson_decode(payload[5:])


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("the server closed the connection mid-reply")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _mongodb_ready(address: tuple[str, int], standalone: bool) -> bool:
    reply = mongodb_command(address, {"hello": 1})
    # A replica-set member is only usable once it reports itself primary.
    return reply.get("ok") == 1.0 and (standalone or reply.get("isWritablePrimary") is True)


def _secantus_process(
    workdir: Path, name: str, port: int, flags: Sequence[str], storage: str
) -> ServerProcess:
    _python_module_path("secantus", SECANTUS_SPEC, "mongodb")
    argv = [
        sys.executable,
        "-m",
        "secantus",
        "--host",
        LOOPBACK,
        "--port",
        str(port),
        "--storage-path",
        storage,
        "--log-level",
        "WARNING",
        *flags,
    ]
    return ServerProcess(name, argv, workdir=workdir)


@contextlib.contextmanager
def start_mongodb(
    workdir: Path,
    *,
    standalone: bool = False,
    auth: tuple[str, str] | None = None,
    timeout: float = 30.0,
) -> Iterator[Server]:
    """A SecantusDB server: a one-node replica set named ``secantus`` unless ``standalone``.

    With ``auth=(user, password)`` the user is created (role ``root``) on a
    first run without authentication, then the server restarts with
    ``--auth`` on the same files, as SecantusDB asks.
    """
    flags = ["--standalone"] if standalone else []
    storage = ":memory:"
    if auth is not None:
        storage = str(workdir / "data")
        setup_port = free_port()
        setup = _secantus_process(workdir, "mongodb-setup", setup_port, flags, storage)
        with setup:
            setup.wait_ready(lambda: _mongodb_ready((LOOPBACK, setup_port), standalone), timeout)
            user, password = auth
            reply = mongodb_command(
                (LOOPBACK, setup_port),
                {
                    "createUser": user,
                    "pwd": password,
                    "roles": [{"role": "root", "db": "admin"}],
                },
            )
            if reply.get("ok") != 1.0:
                raise ServerStartError(f"createUser failed on SecantusDB: {reply.get('errmsg')}")
        flags.append("--auth")
    port = free_port()
    with _secantus_process(workdir, "mongodb", port, flags, storage) as process:
        process.wait_ready(lambda: _mongodb_ready((LOOPBACK, port), standalone), timeout)
        query = "" if standalone else "?replicaSet=secantus"
        credentials = f"{auth[0]}:{auth[1]}@" if auth is not None else ""
        if auth is not None:
            query += ("&" if query else "?") + "authSource=admin"
        extra = {} if standalone else {"replica_set": "secantus"}
        yield Server(
            kind="mongodb",
            host=LOOPBACK,
            port=port,
            url=f"mongodb://{credentials}{LOOPBACK}:{port}/{query}",
            pids=(process.pid,),
            workdir=workdir,
            username=auth[0] if auth is not None else None,
            password=auth[1] if auth is not None else None,
            nodes=((LOOPBACK, port),),
            extra=extra,
        )


# -- OpenSearch API (osmem-server) ----------------------------------------------


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as response:
        return bool(response.status == 200)


@contextlib.contextmanager
def start_opensearch(workdir: Path, *, timeout: float = 15.0) -> Iterator[Server]:
    """One in-memory osmem-server speaking the OpenSearch REST API."""
    binary = _python_module_path("osmem_server", OSMEM_SPEC, "opensearch") / "bin" / "osmem-server"
    if not os.access(binary, os.X_OK):
        raise _missing(str(binary), f"PyPI {OSMEM_SPEC} (a platform wheel)", "opensearch")
    port = free_port()
    argv = [str(binary), "-addr", f"{LOOPBACK}:{port}", "-no-stdin-watch", "-no-ja"]
    url = f"http://{LOOPBACK}:{port}"
    with ServerProcess("opensearch", argv, workdir=workdir) as process:
        process.wait_ready(lambda: _http_ok(url + "/"), timeout)
        yield Server(
            kind="opensearch",
            host=LOOPBACK,
            port=port,
            url=url,
            pids=(process.pid,),
            workdir=workdir,
            nodes=((LOOPBACK, port),),
        )


# -- pytest fixtures (session-scoped; registered by the contract plugin) ---------


def _password() -> str:
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A plain redis-server on a free loopback port, for the whole session."""
    with start_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A redis-server with ``requirepass`` (``server.password``; ``server.url`` carries it)."""
    with start_redis(tmp_path_factory.mktemp("redis-auth"), password=_password()) as server:
        yield server


@pytest.fixture(scope="session")
def redis_tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A TLS-only redis-server; trust ``server.ca_file`` (a CA made for this session)."""
    with start_redis(tmp_path_factory.mktemp("redis-tls"), tls=True) as server:
        yield server


@pytest.fixture(scope="session")
def redis_sentinel_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A sentinel watching one master (``server.extra["master_name"]``)."""
    with start_redis_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A three-master redis cluster (``server.nodes``)."""
    with start_redis_cluster(tmp_path_factory.mktemp("redis-cluster")) as server:
        yield server


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A memcached on a free loopback port."""
    with start_memcached(tmp_path_factory.mktemp("memcached")) as server:
        yield server


@pytest.fixture(scope="session")
def rabbitmq_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A RabbitMQ node (about 8 s to start), user guest/guest on loopback."""
    with start_rabbitmq(tmp_path_factory.mktemp("rabbitmq")) as server:
        yield server


@pytest.fixture(scope="session")
def mongodb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SecantusDB as a one-node replica set (transactions and change streams work)."""
    with start_mongodb(tmp_path_factory.mktemp("mongodb")) as server:
        yield server


@pytest.fixture(scope="session")
def mongodb_standalone_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SecantusDB presenting itself as a standalone server."""
    with start_mongodb(tmp_path_factory.mktemp("mongodb-standalone"), standalone=True) as server:
        yield server


@pytest.fixture(scope="session")
def mongodb_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """SecantusDB with ``--auth`` and one root user (``server.username``/``password``)."""
    auth = ("resultstore", _password())
    with start_mongodb(tmp_path_factory.mktemp("mongodb-auth"), auth=auth) as server:
        yield server


@pytest.fixture(scope="session")
def opensearch_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An in-memory OpenSearch-API server (osmem-server)."""
    with start_opensearch(tmp_path_factory.mktemp("opensearch")) as server:
        yield server
