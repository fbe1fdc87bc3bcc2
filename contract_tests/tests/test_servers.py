"""The throwaway servers start for real, answer their own protocol, and are gone afterwards."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from resultstore_contract import servers
from resultstore_contract.servers import (
    Server,
    ServerNotInstalledError,
    ServerProcess,
    ServerStartError,
    mongodb_command,
    redis_command,
)

# The fixture test runs an inner pytest session to see the servers stop at its end.
pytest_plugins = ["pytester"]


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    # A killed orphan stays a zombie until PID 1 reaps it; it is dead all the same.
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _dies(pid: int, within: float = 30.0) -> bool:
    """Whether ``pid`` is gone within ``within`` seconds (SIGKILL is delivered asynchronously)."""
    deadline = time.monotonic() + within
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _refused(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def assert_stopped(server: Server) -> None:
    assert all(_gone(pid) for pid in server.pids), server.pids
    assert all(_refused(node) for node in server.nodes), server.nodes


# -- the process machinery -------------------------------------------------------


def test_free_port_can_be_bound() -> None:
    port = servers.free_port()
    with socket.socket() as sock:
        sock.bind((servers.LOOPBACK, port))


def _python(tmp_path: Path, name: str, code: str) -> ServerProcess:
    return ServerProcess(name, [sys.executable, "-c", code], workdir=tmp_path)


def test_stop_kills_a_process_that_ignores_sigterm_and_its_children(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    code = (
        "import signal, subprocess, sys, time, pathlib\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        f"pathlib.Path({str(ready)!r}).write_text(str(child.pid))\n"
        "time.sleep(600)\n"
    )
    process = _python(tmp_path, "stubborn", code).start()
    process.wait_ready(ready.exists, timeout=30)
    child = int(ready.read_text())
    process.stop(grace=0.5)
    assert not process.running()
    assert _gone(process.pid)
    # Not our child, so stop() cannot reap it: it is killed with the process group.
    assert _dies(child)


def test_a_server_that_exits_early_fails_with_its_log(tmp_path: Path) -> None:
    code = "import sys; print('listen failed: port taken', flush=True); sys.exit(3)"
    with _python(tmp_path, "early", code) as process, pytest.raises(ServerStartError) as info:
        process.wait_ready(lambda: False, timeout=30)
    message = str(info.value)
    assert "exited with status 3" in message
    assert "listen failed: port taken" in message
    assert str(tmp_path / "early.log") in message


def test_a_server_that_never_answers_fails_after_the_timeout(tmp_path: Path) -> None:
    code = "import time; print('still booting', flush=True); time.sleep(600)"
    with _python(tmp_path, "slow", code) as process:
        with pytest.raises(ServerStartError, match=r"was not ready after 0\.3 s"):
            process.wait_ready(lambda: False, timeout=0.3)
        pid = process.pid
    assert _gone(pid)


def test_probe_errors_are_retried_then_reported(tmp_path: Path) -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionRefusedError("not yet")
        return True

    with _python(tmp_path, "sleeper", "import time; time.sleep(600)") as process:
        process.wait_ready(probe, timeout=30)
        with pytest.raises(ServerStartError, match="last probe error: nope"):
            process.wait_ready(_raises(OSError("nope")), timeout=0.2)
    assert len(calls) == 3


def _raises(exc: Exception) -> Callable[[], bool]:
    def probe() -> bool:
        raise exc

    return probe


def test_a_missing_binary_names_the_package_and_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ServerNotInstalledError) as info, servers.start_memcached(tmp_path):
        pass
    assert "memcached is not installed" in str(info.value)
    assert "bash scripts/install-servers.sh memcached" in str(info.value)


def test_a_missing_python_server_names_the_pypi_pin() -> None:
    with pytest.raises(ServerNotInstalledError) as info:
        servers.python_module_path("no_such_server_module", "SecantusDB==0.7.0b3", "mongodb")
    assert "SecantusDB==0.7.0b3" in str(info.value)
    assert "bash scripts/install-servers.sh mongodb" in str(info.value)


def test_tls_files_make_a_chain_that_verifies(tmp_path: Path) -> None:
    files = servers.make_tls_files(tmp_path)
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain(files.cert_file, files.key_file)
    client_side = files.client_context()
    with socket.socket() as listener:
        listener.bind((servers.LOOPBACK, 0))
        listener.listen()
        client = socket.create_connection(listener.getsockname(), timeout=5)
        accepted, _ = listener.accept()
        client.setblocking(False)
        accepted.setblocking(False)
        tls_client = client_side.wrap_socket(
            client, server_hostname=servers.LOOPBACK, do_handshake_on_connect=False
        )
        tls_server = server_side.wrap_socket(
            accepted, server_side=True, do_handshake_on_connect=False
        )
        done = {"client": False, "server": False}
        for _ in range(1000):
            for name, end in (("client", tls_client), ("server", tls_server)):
                if not done[name]:
                    try:
                        end.do_handshake()
                        done[name] = True
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                        pass
            if all(done.values()):
                break
        assert all(done.values())
        assert tls_client.getpeercert() is not None
        tls_client.close()
        tls_server.close()


# -- Redis -------------------------------------------------------------------------


def test_redis_starts_answers_and_stops(tmp_path: Path) -> None:
    with servers.start_redis(tmp_path) as server:
        assert redis_command(server.address, "PING") == b"+PONG"
        assert redis_command(server.address, "SET", "k", "v") == b"+OK"
        assert redis_command(server.address, "GET", "k") == b"v"
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert_stopped(server)


def test_redis_with_a_password_refuses_anonymous_clients(tmp_path: Path) -> None:
    with servers.start_redis(tmp_path, password="s3cret-pw") as server:
        reply = redis_command(server.address, "PING")
        assert isinstance(reply, bytes)
        assert reply.startswith(b"-NOAUTH")
        assert redis_command(server.address, "PING", password="s3cret-pw") == b"+PONG"
        assert "s3cret-pw" not in repr(server)
        assert server.url == f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
    assert_stopped(server)


def test_redis_tls_speaks_only_tls_with_the_made_ca(tmp_path: Path) -> None:
    with servers.start_redis(tmp_path, tls=True) as server:
        assert server.ca_file is not None
        assert server.url.startswith("rediss://")
        context = ssl.create_default_context(cafile=str(server.ca_file))
        assert redis_command(server.address, "PING", ssl_context=context) == b"+PONG"
        with pytest.raises((ConnectionError, OSError)):
            redis_command(server.address, "PING", timeout=2)
        untrusting = ssl.create_default_context()
        with pytest.raises(ssl.SSLCertVerificationError):
            redis_command(server.address, "PING", ssl_context=untrusting)
    assert_stopped(server)


def test_redis_sentinel_knows_its_master(tmp_path: Path) -> None:
    with servers.start_redis_sentinel(tmp_path, master_name="rs") as server:
        host, port = server.extra["master"].split(":")
        reply = redis_command(server.address, "SENTINEL", "get-master-addr-by-name", "rs")
        assert reply == [host.encode(), port.encode()]
        assert redis_command((host, int(port)), "ROLE") is not None
        assert len(server.pids) == 2
    assert_stopped(server)
    assert _refused((host, int(port)))


def test_redis_cluster_serves_every_slot(tmp_path: Path) -> None:
    with servers.start_redis_cluster(tmp_path, masters=3) as server:
        assert len(server.nodes) == 3
        info = redis_command(server.address, "CLUSTER", "INFO")
        assert isinstance(info, bytes)
        assert b"cluster_state:ok" in info
        assert b"cluster_known_nodes:3" in info
        assert b"cluster_slots_assigned:16384" in info
        replies = [redis_command(node, "SET", "k", "v") for node in server.nodes]
        # Exactly one node owns the key; the others redirect to it.
        assert replies.count(b"+OK") == 1
        assert sum(1 for r in replies if isinstance(r, bytes) and r.startswith(b"-MOVED")) == 2
    assert_stopped(server)


# -- memcached ---------------------------------------------------------------------


def test_memcached_starts_stores_and_stops(tmp_path: Path) -> None:
    with servers.start_memcached(tmp_path) as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            stream = sock.makefile("rwb")
            stream.write(b"set k 0 0 5\r\nhello\r\nget k\r\n")
            stream.flush()
            assert stream.readline() == b"STORED\r\n"
            assert stream.readline() == b"VALUE k 0 5\r\n"
            assert stream.readline() == b"hello\r\n"
            assert stream.readline() == b"END\r\n"
        assert server.url == f"memcached://127.0.0.1:{server.port}"
    assert_stopped(server)


# -- RabbitMQ ----------------------------------------------------------------------


def test_rabbitmq_starts_in_its_folder_and_stops_with_epmd(tmp_path: Path) -> None:
    with servers.start_rabbitmq(tmp_path) as server:
        with socket.create_connection(server.address, timeout=5) as sock:
            sock.sendall(servers.AMQP_HEADER)
            start = sock.recv(4096)
        # Connection.Start lists the SASL mechanisms; PLAIN is what guest uses.
        assert start[7:11] == b"\x00\x0a\x00\x0a"
        assert b"PLAIN" in start
        assert (tmp_path / "mnesia").is_dir()
        epmd = (servers.LOOPBACK, int(server.extra["epmd_port"]))
        assert not _refused(epmd)
    assert_stopped(server)
    assert _refused(epmd)


# -- MongoDB wire protocol (SecantusDB) ----------------------------------------------


def test_mongodb_replica_set_is_primary_and_stores(tmp_path: Path) -> None:
    with servers.start_mongodb(tmp_path) as server:
        hello = mongodb_command(server.address, {"hello": 1})
        assert hello["isWritablePrimary"] is True
        assert hello["setName"] == "secantus"
        assert server.url.endswith("/?replicaSet=secantus")
        inserted = mongodb_command(
            server.address, {"insert": "c", "documents": [{"_id": "a", "v": 7}]}, db="t"
        )
        assert inserted["ok"] == 1.0
        assert inserted["n"] == 1
        found = mongodb_command(server.address, {"find": "c", "filter": {"_id": "a"}}, db="t")
        cursor = found["cursor"]
        assert isinstance(cursor, dict)
        assert cursor["firstBatch"] == [{"_id": "a", "v": 7}]
    assert_stopped(server)


def test_mongodb_standalone_has_no_replica_set(tmp_path: Path) -> None:
    with servers.start_mongodb(tmp_path, standalone=True) as server:
        hello = mongodb_command(server.address, {"hello": 1})
        assert hello["ok"] == 1.0
        assert "setName" not in hello
        assert "replicaSet" not in server.url
    assert_stopped(server)


def _scram_login(
    sock: socket.socket, address: tuple[str, int], user: str, password: str
) -> dict[str, object]:
    """SCRAM-SHA-256 (RFC 7677) as a client does it; return the last server reply."""
    client_first = f"n={user},r={base64.b64encode(os.urandom(18)).decode()}"
    reply = mongodb_command(
        address,
        {"saslStart": 1, "mechanism": "SCRAM-SHA-256", "payload": f"n,,{client_first}".encode()},
        sock=sock,
    )
    assert reply["ok"] == 1.0, reply
    payload = reply["payload"]
    assert isinstance(payload, bytes)
    server_first = payload.decode()
    fields = dict(item.split("=", 1) for item in server_first.split(","))
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(fields["s"]), int(fields["i"])
    )
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    without_proof = f"c=biws,r={fields['r']}"
    auth_message = f"{client_first},{server_first},{without_proof}".encode()
    signature = hmac.digest(hashlib.sha256(client_key).digest(), auth_message, "sha256")
    proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
    final = f"{without_proof},p={base64.b64encode(proof).decode()}"
    conversation = reply["conversationId"]
    assert isinstance(conversation, int)
    reply = mongodb_command(
        address,
        {"saslContinue": 1, "conversationId": conversation, "payload": final.encode()},
        sock=sock,
    )
    while reply["ok"] == 1.0 and not reply["done"]:
        reply = mongodb_command(
            address,
            {"saslContinue": 1, "conversationId": conversation, "payload": b""},
            sock=sock,
        )
    return reply


def test_mongodb_with_auth_refuses_anonymous_commands_and_knows_the_user(
    tmp_path: Path,
) -> None:
    with servers.start_mongodb(tmp_path, auth=("alice", "pw-123")) as server:
        refused = mongodb_command(server.address, {"find": "c"}, db="t")
        assert refused["ok"] == 0.0
        assert refused["code"] == 13
        assert "pw-123" not in repr(server)
        assert server.url.startswith("mongodb://alice:pw-123@")

        with socket.create_connection(server.address, timeout=10) as sock:
            assert _scram_login(sock, server.address, "alice", "wrong")["code"] == 18
        with socket.create_connection(server.address, timeout=10) as sock:
            assert _scram_login(sock, server.address, "alice", "pw-123")["ok"] == 1.0
            found = mongodb_command(server.address, {"find": "c"}, db="t", sock=sock)
            assert found["ok"] == 1.0
    assert_stopped(server)


# -- OpenSearch API (osmem-server) ---------------------------------------------------


def _http(method: str, url: str, body: object = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_osmem_indexes_and_returns_a_document(tmp_path: Path) -> None:
    with servers.start_osmem(tmp_path) as server:
        root = _http("GET", server.url + "/")
        assert isinstance(root, dict)
        assert "version" in root
        _http("PUT", server.url + "/results/_doc/t1", {"state": "SUCCESS"})
        doc = _http("GET", server.url + "/results/_doc/t1")
        assert isinstance(doc, dict)
        assert doc["_source"] == {"state": "SUCCESS"}
    assert_stopped(server)


# -- the session fixtures ------------------------------------------------------------


def test_session_fixtures_start_once_and_stop_at_session_end(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_inner="""
        import socket

        def test_first(memcached_server, redis_server, pytestconfig):
            pytestconfig.cache.set("inner/pids", [*memcached_server.pids, *redis_server.pids])
            pytestconfig.cache.set("inner/nodes", [memcached_server.nodes, redis_server.nodes])
            with socket.create_connection(memcached_server.address, timeout=5) as sock:
                sock.sendall(b"version\\r\\n")
                assert sock.recv(64).startswith(b"VERSION")

        def test_second(memcached_server, redis_server, pytestconfig):
            pids = [*memcached_server.pids, *redis_server.pids]
            assert pytestconfig.cache.get("inner/pids", None) == pids
        """
    )
    result = pytester.runpytest_inprocess(
        "-p", "resultstore_contract.servers", "-p", "cacheprovider"
    )
    result.assert_outcomes(passed=2)
    cache = pytester.path / ".pytest_cache" / "v" / "inner"
    pids = json.loads((cache / "pids").read_text())
    nodes = json.loads((cache / "nodes").read_text())
    assert len(pids) == 2
    assert all(_gone(pid) for pid in pids)
    assert all(_refused((host, port)) for group in nodes for host, port in group)
