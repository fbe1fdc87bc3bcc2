"""redis-server on free loopback ports: plain, password, TLS, sentinel and cluster."""

from __future__ import annotations

import contextlib
import functools
import io
import ssl
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ._process import (
    LOOPBACK,
    Server,
    ServerError,
    ServerProcess,
    ServerStartError,
    connect,
    free_port,
    new_password,
    which,
)
from .tls import TLSFiles, make_tls_files


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
        sock = stack.enter_context(connect(address, timeout))
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
    return which("redis-server", "redis-server", "redis")


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
    sentinel_binary = which("redis-sentinel", "redis-sentinel", "redis")
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
    cli = which("redis-cli", "redis-tools", "redis")
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


# -- session fixtures (registered by the contract plugin) --------------------------


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A plain redis-server on a free loopback port, for the whole session."""
    with start_redis(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def redis_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A redis-server with ``requirepass`` (``server.password``; ``server.url`` carries it)."""
    with start_redis(tmp_path_factory.mktemp("redis-auth"), password=new_password()) as server:
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
