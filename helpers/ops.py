"""Operating Milvus: which server to use, its health and metrics endpoints, ports, disk, features.

``ServerSession.open`` is the one place that picks the server a notebook talks to: the one
``MILVUS_URI`` names when it is a server address, else a local Milvus 2.3.5 server started
for the session (``helpers.server``), else none, with the reason. A server the session
started is always stopped by ``close()``, also at interpreter exit. ``notebook_milvus`` is
the same choice for chapters that run on any Milvus: that server, else a Lite file.
"""

from __future__ import annotations

import atexit
import re
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import psutil

from . import config
from .server import DEFAULT_PORT, LocalServer, ServerError, server_available, start_local_server

GUIDE_METRICS_PORT = 9091  # /healthz and /metrics on a Milvus server (docker-compose, Kubernetes)


def pick_port(preferred: int = DEFAULT_PORT) -> int:
    """``preferred`` if it can be bound, else (or for 0) a free port the OS chooses."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", preferred))  # 0: any free port
        except OSError:
            sock.bind(("", 0))
        return sock.getsockname()[1]


@dataclass
class ServerSession:
    """A Milvus server for a notebook's operations cells."""

    uri: str
    health_url: str
    metrics_url: str
    local: LocalServer | None = None
    owned_dir: Path | None = None  # a temporary base folder this session created (removed on close)

    @classmethod
    def open(cls, milvus_uri: str | None, use_local: bool = True, base_dir: str | Path | None = None,
             port: int = DEFAULT_PORT) -> tuple["ServerSession | None", str]:
        """The server to use and a sentence saying which, or (None, why there is none)."""
        uri = config.milvus_uri(milvus_uri)
        if not config.is_lite(uri):
            host = urlparse(uri).hostname or "localhost"
            base = f"http://{host}:{GUIDE_METRICS_PORT}"
            return cls(uri, f"{base}/healthz", f"{base}/metrics"), f"the server MILVUS_URI names: {uri}"
        if not use_local:
            return None, "USE_LOCAL_SERVER is False and MILVUS_URI names no server: server cells are skipped."
        if not server_available():
            return None, ("no Milvus server here: the `milvus` package's binaries cannot run on this "
                          "machine and MILVUS_URI names no server (`make milvus-up` with Docker); "
                          "server cells are skipped.")
        owned = None if base_dir else Path(tempfile.mkdtemp(prefix="kit_milvus_"))
        folder = Path(base_dir) if base_dir else owned
        try:
            local = start_local_server(folder, port=pick_port(port))
        except ServerError as exc:
            if owned:
                shutil.rmtree(owned, ignore_errors=True)
            return None, f"the local Milvus server did not start ({exc}); server cells are skipped."
        session = cls(local.uri, local.health_url, local.metrics_url, local, owned)
        atexit.register(session.close)
        return session, f"a local Milvus 2.3.5 server started for this notebook at {local.uri}"

    @property
    def base_dir(self) -> Path | None:
        """The local server's data folder (None for a remote server)."""
        return self.local.base_dir if self.local else None

    def rss_bytes(self) -> int | None:
        """Resident memory of the local server's processes (None for a remote server)."""
        return self.local.rss_bytes() if self.local else None

    def restart(self) -> float:
        """Stop the local server and start it again on the same data; return the seconds taken."""
        if self.local is None:
            raise ServerError("Only a server this notebook started can be restarted here.")
        start = time.perf_counter()
        base, port = self.local.base_dir, self.local.port
        self.local.stop()
        self.local = start_local_server(base, port=port)
        self.uri, self.health_url, self.metrics_url = (self.local.uri, self.local.health_url,
                                                       self.local.metrics_url)
        return time.perf_counter() - start

    def close(self) -> None:
        """Stop the server this session started and remove its temporary folder (idempotent)."""
        if self.local is not None:
            self.local.stop()
            self.local = None
        if self.owned_dir is not None:
            shutil.rmtree(self.owned_dir, ignore_errors=True)
            self.owned_dir = None


def notebook_milvus(stack: ExitStack, milvus_uri: str | None, use_local: bool, base_dir: Path,
                    lite_file: Path) -> tuple[str, ServerSession | None, str]:
    """The Milvus a notebook runs on: (its URI, the local server's session or None, a sentence
    saying which). A Lite file someone chose (``milvus_uri``, ``$MILVUS_LITE_PATH``) is used as
    is; otherwise the server ``ServerSession.open`` picks (stopped when ``stack`` closes), or
    ``lite_file`` when there is none."""
    chosen = config.chosen_milvus_uri(milvus_uri)
    if chosen and config.is_lite(chosen):
        return chosen, None, f"the Milvus Lite file named by MILVUS_URI: {chosen}"
    session, why = ServerSession.open(chosen, use_local, base_dir)
    if session is None:
        return str(lite_file), None, f"Milvus Lite ({Path(lite_file).name}) instead: {why}"
    stack.callback(session.close)
    return session.uri, session if session.local is not None else None, why


def healthz(url: str, timeout: float = 5.0) -> tuple[int, str]:
    """HTTP status and body of a ``/healthz`` endpoint (status 0 and the error when unreachable)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read().decode("utf-8", "replace").strip()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace").strip()
    except OSError as exc:
        return 0, str(exc)


def scrape_metrics(url: str, timeout: float = 10.0) -> str:
    """The Prometheus text a ``/metrics`` endpoint serves."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode("utf-8", "replace")


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def metric_samples(text: str, prefix: str = "") -> list[dict[str, Any]]:
    """Parse Prometheus text into samples (name, labels, value), keeping names starting ``prefix``."""
    out = []
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match and match.group(1).startswith(prefix):
            try:
                value = float(match.group(3))
            except ValueError:
                continue
            out.append({"name": match.group(1), "labels": (match.group(2) or "").strip("{}"),
                        "value": value})
    return out


def listening_ports(pid: int) -> list[int]:
    """TCP ports the process ``pid`` and its children listen on, sorted."""
    ports: set[int] = set()
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        ports |= {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN}
    return sorted(ports)


def probe_features(client: Any, prefix: str = "probe") -> dict[str, str]:
    """Try, on this Milvus, features that differ between Milvus Lite 3.x and 2.3/2.6 servers.

    Each probe builds a tiny collection and drops it; the answer says what happened.
    """
    from pymilvus import DataType

    from .rag import quiet_pymilvus

    def collection(name: str, nullable: bool = False, index: bool = False) -> str:
        col = f"{prefix}_{name}"
        if client.has_collection(col):
            client.drop_collection(col)
        schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("v", DataType.FLOAT_VECTOR, dim=8)
        schema.add_field("note", DataType.VARCHAR, max_length=64, nullable=nullable)
        params = None
        if index:  # an index at creation: the collection is loaded at once
            params = client.prepare_index_params()
            params.add_index("v", index_type="FLAT", metric_type="L2")
        client.create_collection(col, schema=schema, index_params=params, consistency_level="Strong")
        return col

    def rows(n: int, keys: int | None = None) -> list[dict[str, Any]]:
        return [{"id": i % keys if keys else i, "v": [float((i + j) % 7) for j in range(8)],
                 "note": "x"} for i in range(n)]

    def nullable() -> str:
        col = collection("nullable", nullable=True)
        client.insert(col, [{"id": 1, "v": [0.0] * 8, "note": None}])
        return "yes"

    def ivf_pq() -> str:
        col = collection("ivfpq")
        client.insert(col, rows(300))
        client.flush(col)
        index = client.prepare_index_params()
        index.add_index("v", index_type="IVF_PQ", metric_type="L2", params={"nlist": 4, "m": 4, "nbits": 8})
        client.create_index(col, index, timeout=60)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = client.describe_index(col, "v").get("state")
            if state in ("Finished", "Failed"):
                return "yes" if state == "Finished" else "no: the index build failed"
            time.sleep(0.2)
        return "no: not built within 60 s"

    def duplicates() -> str:
        col = collection("dup", index=True)
        client.insert(col, rows(300, keys=4))
        n = client.query(col, filter="", output_fields=["count(*)"])[0]["count(*)"]
        return f"all {n} rows kept (duplicate keys)" if n == 300 else f"overwritten: {n} rows left"

    out = {}
    with quiet_pymilvus():
        for label, probe in (("nullable fields", nullable), ("IVF_PQ index", ivf_pq),
                             ("300 inserts on 4 primary keys", duplicates)):
            try:
                out[label] = probe()
            except Exception as exc:  # pymilvus raises several types; the message is the answer
                out[label] = "no: " + (getattr(exc, "message", "") or str(exc)).splitlines()[0][:80]
            finally:
                for name in ("nullable", "ivfpq", "dup"):
                    if client.has_collection(f"{prefix}_{name}"):
                        client.drop_collection(f"{prefix}_{name}")
    return out
