import json
import subprocess
import sys

from helpers import health
from helpers.kb import build_stores


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "helpers.health", *args],
                          capture_output=True, text=True, timeout=120)


def test_healthy_after_building(tmp_path, small_kb, milvus_uri, collection_name):
    _, milvus = build_stores(small_kb, tmp_path / "chroma", milvus_uri, collection_name)
    milvus.close()
    run = _cli("--milvus-uri", milvus_uri, "--chroma-path", str(tmp_path / "chroma"),
               "--collection", collection_name)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["status"] == "healthy"
    assert report["milvus"] == {"status": "connected", "count": len(small_kb.chunks),
                                "mode": "lite" if milvus_uri.endswith(".db") else "server",
                                "uri": milvus_uri}
    assert report["chroma"]["count"] == len(small_kb.chunks)


def test_unhealthy_says_why(tmp_path):
    run = _cli("--milvus-uri", "http://127.0.0.1:1", "--chroma-path", str(tmp_path / "none"))
    assert run.returncode == 1
    report = json.loads(run.stdout)
    assert report["status"] == "unhealthy" and report["milvus"]["mode"] == "server"
    assert "Cannot reach a Milvus server" in run.stderr and "no Chroma database" in run.stderr


def test_bad_uri_is_reported_not_raised():
    run = _cli("--milvus-uri", "ftp://x")
    assert run.returncode == 1 and "unknown scheme" in json.loads(run.stdout)["error"]


def test_versions_and_missing_packages(monkeypatch):
    versions = health.package_versions()
    assert versions["pymilvus"] == "3.0.2" and versions["chromadb"] == "1.5.9"
    assert health.missing_packages() is None
    monkeypatch.setattr(health, "PACKAGES", ("pymilvus", "no-such-package-xyz"))
    assert "no-such-package-xyz" in health.missing_packages() and "make install" in health.missing_packages()
