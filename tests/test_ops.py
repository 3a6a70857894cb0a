"""Operations helpers: endpoints, metrics parsing, ports, feature probes, server sessions."""

from __future__ import annotations

import socket
from contextlib import ExitStack

import psutil
import pytest

from helpers import ops
from helpers.server import server_available
from helpers.stores import connect_milvus

METRICS = """# HELP milvus_num_node number of nodes
# TYPE milvus_num_node gauge
milvus_num_node{node_id="1",role_name="proxy"} 1
process_resident_memory_bytes 2.5e+08
milvus_proxy_req_count{function_name="Search",status="success"} 12
"""


def test_metric_samples_parse_prometheus_text():
    samples = ops.metric_samples(METRICS)
    assert [s["name"] for s in samples] == ["milvus_num_node", "process_resident_memory_bytes",
                                             "milvus_proxy_req_count"]
    assert samples[1]["value"] == 2.5e8 and samples[0]["labels"] == 'node_id="1",role_name="proxy"'
    assert [s["value"] for s in ops.metric_samples(METRICS, "milvus_proxy")] == [12.0]


def test_pick_port_falls_back_when_taken():
    with socket.socket() as sock:
        sock.bind(("", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        port = ops.pick_port(taken)
    assert port != taken and port > 0


def test_unreachable_health_endpoint_reports_zero():
    status, body = ops.healthz("http://127.0.0.1:1/healthz", timeout=1)
    assert status == 0 and body


def test_no_server_wanted_says_why(tmp_path):
    session, why = ops.ServerSession.open(str(tmp_path / "m.db"), use_local=False)
    assert session is None and "skipped" in why


def test_remote_uri_uses_the_guides_metrics_port():
    session, why = ops.ServerSession.open("http://milvus.example:19530")
    assert session.health_url == "http://milvus.example:9091/healthz" and session.local is None
    assert "MILVUS_URI" in why


def test_notebook_milvus_uses_a_chosen_lite_file_or_falls_back_to_one(tmp_path, monkeypatch):
    monkeypatch.delenv("MILVUS_URI", raising=False)
    monkeypatch.delenv("MILVUS_LITE_PATH", raising=False)
    with ExitStack() as stack:
        uri, server, why = ops.notebook_milvus(stack, str(tmp_path / "mine.db"), True, tmp_path / "s",
                                               tmp_path / "fallback.db")
        assert uri == str(tmp_path / "mine.db") and server is None and "named by MILVUS_URI" in why
        uri, server, why = ops.notebook_milvus(stack, None, False, tmp_path / "s", tmp_path / "fallback.db")
        assert uri == str(tmp_path / "fallback.db") and server is None
        assert why.startswith("Milvus Lite (fallback.db) instead: USE_LOCAL_SERVER is False")


def test_lite_features(tmp_path):
    client = connect_milvus(str(tmp_path / "m.db"))
    try:
        found = ops.probe_features(client)
    finally:
        client.close()
    assert found["nullable fields"] == "yes"
    assert found["IVF_PQ index"].startswith("no:")
    assert found["300 inserts on 4 primary keys"].startswith("overwritten: 4")


@pytest.mark.skipif(not server_available(), reason='needs the local Milvus server (pip install "milvus==2.3.5")')
def test_local_session_serves_probes_and_leaves_nothing_behind(tmp_path):
    session, why = ops.ServerSession.open(str(tmp_path / "m.db"), port=ops.pick_port(0))
    assert session is not None, why
    pid, folder = session.local.pid, session.owned_dir
    try:
        assert ops.healthz(session.health_url) == (200, "OK")
        assert session.local.port in ops.listening_ports(pid)
        assert ops.metric_samples(ops.scrape_metrics(session.metrics_url), "milvus_")
        client = connect_milvus(session.uri)
        try:
            found = ops.probe_features(client)
        finally:
            client.close()
        assert found["IVF_PQ index"] == "yes" and found["nullable fields"].startswith("no:")
        assert found["300 inserts on 4 primary keys"].startswith("all 300")
    finally:
        session.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert not folder.exists()
    session.close()  # idempotent
