"""The local Milvus server: start, use, refuse a taken port, always clean up, CLI round trip.

Each test starts a real server (about 7 s) on a free non-default port, so these
tests run beside a server a learner already has on 19530. Skipped where the
``milvus`` package or its binaries are unusable.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from helpers.server import PIDFILE_NAME, LocalServer, ServerError, local_server, server_available, start_local_server

pytestmark = pytest.mark.skipif(
    not server_available(), reason='Milvus server binaries unusable here (pip install "milvus==2.3.5")'
)

REPO_ROOT = Path(__file__).resolve().parents[1]
DIM = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    with local_server(tmp_path_factory.mktemp("milvus"), port=free_port()) as running:
        yield running


def test_server_stores_indexes_and_searches(server: LocalServer) -> None:
    from pymilvus import DataType, MilvusClient

    with urllib.request.urlopen(server.health_url, timeout=5) as resp:
        assert resp.read().decode().strip() == "OK"
    assert server.uri == f"http://127.0.0.1:{server.port}"
    assert server.rss_bytes() > 50 * 2**20

    client = MilvusClient(server.uri)
    try:
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=DIM)
        client.create_collection("server_test", schema=schema)
        vectors = [[float(i)] + [float((i * j) % 5) for j in range(1, DIM)] for i in range(40)]
        client.insert("server_test", [{"id": i, "vec": v} for i, v in enumerate(vectors)])
        index = client.prepare_index_params()
        index.add_index("vec", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 64})
        client.create_index("server_test", index, timeout=30)
        client.load_collection("server_test", timeout=30)
        hits = client.search("server_test", [vectors[5]], limit=3, search_params={"ef": 32}, timeout=10)
        assert hits[0][0]["id"] == 5
        assert client.describe_index("server_test", "vec")["index_type"] == "HNSW"
    finally:
        client.close()


def test_taken_port_and_base_dir_are_refused(server: LocalServer, tmp_path: Path) -> None:
    with pytest.raises(ServerError, match=rf"Port {server.port} is already in use.*make milvus-local-stop"):
        start_local_server(tmp_path, port=server.port)
    with pytest.raises(ServerError, match="already uses"):
        start_local_server(server.base_dir, port=free_port())
    assert server.is_healthy()


def test_context_manager_stops_server_when_body_raises(tmp_path: Path) -> None:
    port = free_port()
    with pytest.raises(KeyboardInterrupt), local_server(tmp_path, port=port) as running:
        pids = [running.pid, *(child.pid for child in running.process.children(recursive=True))]
        raise KeyboardInterrupt
    assert all(gone(pid) for pid in pids)
    assert not (tmp_path / PIDFILE_NAME).exists()
    with socket.socket() as sock:  # the port is free again
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("", port))


def test_cli_start_status_stop(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "helpers.server", *args, "--base-dir", str(tmp_path)]
        return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=150)

    started = cli("start", "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert f"MILVUS_URI=http://127.0.0.1:{port}" in started.stdout
        pid = json.loads((tmp_path / PIDFILE_NAME).read_text())["pid"]
        assert not gone(pid)  # outlived the command that started it

        status = cli("status")
        assert status.returncode == 0 and f"MILVUS_URI=http://127.0.0.1:{port}" in status.stdout
        again = cli("start")  # idempotent: reports the running server
        assert again.returncode == 0 and f"MILVUS_URI=http://127.0.0.1:{port}" in again.stdout
    finally:
        stopped = cli("stop")
    assert stopped.returncode == 0 and "Stopped" in stopped.stdout
    assert gone(pid)
    assert cli("status").returncode == 1
    assert "No Milvus server" in cli("stop").stdout
