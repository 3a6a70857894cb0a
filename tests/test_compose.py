"""docker-compose.yml: the standalone stack's structure, checked without Docker."""

from __future__ import annotations

import re

import pytest
import yaml

from helpers.config import ROOT


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def _ports(service: dict) -> set[str]:
    return {str(p) for p in service.get("ports", [])}


def test_the_stack_has_etcd_minio_and_milvus(compose):
    assert {"etcd", "minio", "standalone"} <= set(compose["services"])
    milvus = compose["services"]["standalone"]
    assert milvus["command"] == ["milvus", "run", "standalone"]
    assert milvus["environment"]["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus["environment"]["MINIO_ADDRESS"] == "minio:9000"
    assert set(milvus["depends_on"]) == {"etcd", "minio"}


def test_the_guides_ports(compose):
    services = compose["services"]
    assert {"19530:19530", "9091:9091"} <= _ports(services["standalone"])
    assert "9001:9001" in _ports(services["minio"])


def test_health_checks(compose):
    services = compose["services"]
    milvus = services["standalone"]["healthcheck"]
    assert "http://localhost:9091/healthz" in " ".join(milvus["test"])
    assert milvus["start_period"] == "90s"
    for name in ("etcd", "minio"):
        assert services[name]["healthcheck"]["test"], name
        assert services["standalone"]["depends_on"][name]["condition"] == "service_healthy"


def test_named_volumes_hold_the_data(compose):
    services, volumes = compose["services"], compose["volumes"]
    for name, mount in (("etcd", "/etcd"), ("minio", "/minio_data"), ("standalone", "/var/lib/milvus")):
        named = [v.split(":")[0] for v in services[name]["volumes"] if v.endswith(":" + mount)]
        assert named and named[0] in volumes, f"{name} keeps {mount} in a named volume"


def test_every_image_is_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image, f"{name} has no tag"
        tag = image.rsplit(":", 1)[1]
        assert tag != "latest" and re.search(r"\d", tag), f"{name} is not pinned: {image}"
    assert compose["services"]["standalone"]["image"].startswith("milvusdb/milvus:v2.6.")


def test_optional_tools_do_not_start_by_default(compose):
    for name in ("attu", "chroma"):
        assert compose["services"][name]["profiles"] == ["tools"]
    assert compose["services"]["chroma"]["image"].endswith(":1.5.9")  # the pinned chromadb client
