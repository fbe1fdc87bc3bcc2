"""SecantusDB (a MongoDB wire-protocol server) on free loopback ports, and a raw command probe."""

from __future__ import annotations

import contextlib
import secrets
import socket
import struct
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from ._process import (
    LOOPBACK,
    Server,
    ServerProcess,
    ServerStartError,
    connect,
    free_port,
    new_password,
    python_module_path,
)

# SecantusDB publishes betas only; the pin matches scripts/install-servers.sh.
SECANTUS_SPEC = "SecantusDB==0.7.0b3"
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
            sock = stack.enter_context(connect(address, timeout))
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
    python_module_path("secantus", SECANTUS_SPEC, "mongodb")
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


# -- session fixtures (registered by the contract plugin) --------------------------


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
    auth = ("resultstore", new_password())
    with start_mongodb(tmp_path_factory.mktemp("mongodb-auth"), auth=auth) as server:
        yield server
