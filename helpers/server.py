"""A real Milvus standalone server on this machine, without Docker.

The PyPI package ``milvus`` (2.3.5) ships the Milvus server binary. This module
unpacks it into a base directory, writes its configuration, starts it in its own
session, waits until it answers, and always stops what it started.

    with local_server(Path("data/milvus_server")) as server:
        client = MilvusClient(server.uri)

From a shell (the server outlives the command; a pidfile in the base directory
lets a later command stop it)::

    python -m helpers.server start  --base-dir data/milvus_server [--port N]
    python -m helpers.server status --base-dir data/milvus_server
    python -m helpers.server stop   --base-dir data/milvus_server

Network exposure: Milvus 2.3 has no setting for the address its gRPC and metrics
servers bind; they listen on every interface. Only the embedded etcd is bound to
127.0.0.1 here, and every component advertises 127.0.0.1. Run it on a trusted
machine, or firewall the ports, if that matters.
"""

from __future__ import annotations

import argparse
import base64
import json
import lzma
import os
import platform
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import psutil

from helpers.errors import KitError

DEFAULT_PORT = 19530
DEFAULT_BASE_DIR = Path("data/milvus_server")
PIDFILE_NAME = "milvus-server.json"
INSTALL_HINT = 'pip install "milvus==2.3.5"'
HOST = "127.0.0.1"
STOP_TIMEOUT = 15.0  # graceful stop takes ~2 s with the settings below; then it is killed

# Components whose advertised address is pinned to loopback (else Milvus picks the
# first network interface, and a laptop that changes network cannot restart it).
_COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode")
# ELF e_machine values of the CPUs the wheel's binaries may be built for.
_ELF_MACHINES = {62: ("x86_64", "amd64"), 183: ("aarch64", "arm64")}


class ServerError(KitError, RuntimeError):
    """The local Milvus server cannot be started, reached or stopped."""


class _PortClash(ServerError):
    """The server exited at start-up because a port it chose was taken meanwhile."""


@dataclass
class LocalServer:
    """A running Milvus server process and the addresses it serves."""

    pid: int
    port: int
    metrics_port: int
    base_dir: Path
    process: psutil.Process
    popen: subprocess.Popen | None = field(default=None, repr=False)  # set when this process started it

    @property
    def uri(self) -> str:
        """gRPC URI for ``MilvusClient``."""
        return f"http://{HOST}:{self.port}"

    @property
    def health_url(self) -> str:
        """HTTP endpoint that answers ``OK`` once the server is ready."""
        return f"http://{HOST}:{self.metrics_port}/healthz"

    @property
    def metrics_url(self) -> str:
        """Prometheus metrics endpoint."""
        return f"http://{HOST}:{self.metrics_port}/metrics"

    def is_running(self) -> bool:
        """Whether the server process still exists (and is not a zombie)."""
        try:
            return self.process.is_running() and self.process.status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    def is_healthy(self) -> bool:
        """Whether ``/healthz`` answers OK right now."""
        try:
            with urllib.request.urlopen(self.health_url, timeout=2) as resp:
                return resp.status == 200 and b"OK" in resp.read()
        except (OSError, urllib.error.URLError):
            return False

    def rss_bytes(self) -> int:
        """Resident memory of the server process and its children, in bytes (0 once stopped)."""
        total = 0
        try:
            procs = [self.process, *self.process.children(recursive=True)]
        except psutil.Error:
            return 0
        for proc in procs:
            with suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Terminate the server's process tree, wait up to ``timeout`` s, then kill what is left."""
        _terminate_tree(self.process, timeout)
        if self.popen is not None:
            self.popen.wait(timeout=5)  # reap our child
        pidfile = self.base_dir / PIDFILE_NAME
        if _read_pidfile(pidfile).get("pid") == self.pid:
            pidfile.unlink(missing_ok=True)
        # The binary always records its id in /tmp/milvus/server_id_<pid>; it is useless once stopped.
        Path("/tmp/milvus", f"server_id_{self.pid}").unlink(missing_ok=True)


@lru_cache(maxsize=1)
def server_available() -> bool:
    """Whether the ``milvus`` package is installed and its server binary suits this OS and CPU."""
    try:
        binary = _package_dir() / "data" / "bin" / "milvus.lzma"
        with lzma.open(binary) as fp:
            header = fp.read(20)
    except (ServerError, OSError, lzma.LZMAError):
        return False
    if header[:4] != b"\x7fELF" or not sys.platform.startswith("linux"):
        return header[:4] in (b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe") and sys.platform == "darwin"
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return platform.machine().lower() in _ELF_MACHINES.get(machine, ())


def running_server(base_dir: Path) -> LocalServer | None:
    """The live server recorded in ``base_dir``'s pidfile, or None (a stale pidfile is removed)."""
    pidfile = Path(base_dir) / PIDFILE_NAME
    info = _read_pidfile(pidfile)
    if not info:
        return None
    try:
        process = psutil.Process(info["pid"])
        alive = abs(process.create_time() - info["create_time"]) < 1 and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        alive = False
    if not alive:
        pidfile.unlink(missing_ok=True)
        return None
    return LocalServer(info["pid"], info["port"], info["metrics_port"], Path(base_dir), process)


def start_local_server(base_dir: Path, port: int = DEFAULT_PORT, timeout: float = 120) -> LocalServer:
    """Start Milvus with its data in ``base_dir`` and return once a client can list collections.

    The server runs in its own session, so it survives the caller unless stopped:
    call ``.stop()`` or use ``local_server()``.
    """
    _package_dir()  # raises with the pip command when the package is missing
    if not server_available():
        raise ServerError(
            f"The Milvus server binaries of the `milvus` package do not run on {platform.system()} "
            f"{platform.machine()}; use Docker, or Milvus Lite (a local file URI), instead."
        )
    base_dir = Path(base_dir).resolve()
    existing = running_server(base_dir)
    if existing is not None:
        raise ServerError(
            f"A Milvus server (pid {existing.pid}, {existing.uri}) already uses {base_dir}; "
            f"stop it with `python -m helpers.server stop --base-dir {base_dir}` or `make milvus-local-stop`."
        )
    if not _port_free(port):
        raise ServerError(
            f"Port {port} is already in use (another Milvus server?); stop it with `make milvus-local-stop` "
            f"or choose another port (--port / port=)."
        )
    for _ in range(3):  # another server starting at the same moment may grab an internal port
        env, metrics_port, etcd_port = _prepare(base_dir, port)
        logs = base_dir / "logs"
        with open(logs / "milvus-stdout.log", "wb") as out, open(logs / "milvus-stderr.log", "wb") as err:
            popen = subprocess.Popen(
                [str(base_dir / "bin" / "milvus"), "run", "standalone"],
                cwd=base_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        server = LocalServer(popen.pid, port, metrics_port, base_dir, psutil.Process(popen.pid), popen)
        try:
            _write_pidfile(server)
            _wait_ready(server, etcd_port, timeout)
            return server
        except _PortClash:
            server.stop()
        except BaseException:
            server.stop()
            raise
    raise ServerError(
        f"Milvus could not bind its internal ports (see {base_dir / 'logs'}); stop other servers and retry."
    )


@contextmanager
def local_server(base_dir: Path, port: int = DEFAULT_PORT, timeout: float = 120) -> Iterator[LocalServer]:
    """Run a Milvus server for the duration of a ``with`` block; it is stopped on any exit."""
    server = start_local_server(base_dir, port=port, timeout=timeout)
    try:
        yield server
    finally:
        server.stop()


def stop_server(base_dir: Path, timeout: float = STOP_TIMEOUT) -> LocalServer | None:
    """Stop the server recorded in ``base_dir``'s pidfile; return it, or None if none was running."""
    server = running_server(base_dir)
    if server is not None:
        server.stop(timeout)
    return server


def _package_dir() -> Path:
    try:
        import milvus  # the PyPI package "milvus": Milvus server binaries, not a client
    except ImportError as exc:
        raise ServerError(f"The `milvus` package is not installed; run `{INSTALL_HINT}`.") from exc
    return Path(milvus.__file__).parent


def _port_free(port: int) -> bool:
    """Whether ``port`` can be bound on all interfaces (Milvus binds it that way)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Go does: ignore TIME_WAIT
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def _free_port(start: int, taken: set[int]) -> int:
    for port in range(start, start + 1000):
        if port not in taken and _port_free(port):
            taken.add(port)
            return port
    raise ServerError(f"No free TCP port found in {start}-{start + 999}; stop other servers and retry.")


def _prepare(base_dir: Path, port: int) -> tuple[dict[str, str], int, int]:
    """Unpack the binaries and write the configs; return the environment, metrics and etcd ports."""
    from milvus import MilvusServerConfig, _initialize_data_files

    taken = {port}
    ports = {
        "proxy_port": port,
        "etcd_port": _free_port(2379, taken),
        "proxy_internal_port": _free_port(19529, taken),
        "root_coord_port": _free_port(53100, taken),
        "query_coord_port": _free_port(19531, taken),
        "query_node_port": _free_port(21123, taken),
        "index_coord_port": _free_port(22930, taken),
        "index_node_port": _free_port(21121, taken),
        "data_coord_port": _free_port(13333, taken),
        "data_node_port": _free_port(21124, taken),
    }
    etcd_peer_port = _free_port(2380, taken)
    metrics_port = _free_port(9091, taken)

    # Render the package's template ourselves: its resolve() re-binds every port without
    # SO_REUSEADDR and so fails for a minute after a restart (TIME_WAIT).
    config = MilvusServerConfig(data_dir=str(base_dir))
    for key, value in ports.items():
        config.set(key, value)
    for component in _COMPONENTS:
        config.set(f"{component}.ip", HOST)
    config.resolve_storage()  # creates configs/, logs/, data/ and sets their paths
    config.write_config()  # configs/milvus.yaml
    _initialize_data_files(str(base_dir))  # unpacks bin/ (skipped when already current)

    etcd_config = base_dir / "configs" / "embedEtcd.yaml"
    client_url = f"http://{HOST}:{ports['etcd_port']}"
    peer_url = f"http://{HOST}:{etcd_peer_port}"
    etcd_config.write_text(
        f"listen-client-urls: {client_url}\n"
        f"advertise-client-urls: {client_url}\n"
        f"listen-peer-urls: {peer_url}\n"
        f"initial-advertise-peer-urls: {peer_url}\n"
        f"initial-cluster: default={peer_url}\n",
        encoding="utf-8",
    )
    bin_dir = str(base_dir / "bin")
    library_var = "DYLD_LIBRARY_PATH" if sys.platform == "darwin" else "LD_LIBRARY_PATH"
    env = {
        **os.environ,
        "DEPLOY_MODE": "STANDALONE",
        "METRICS_PORT": str(metrics_port),
        "ETCD_CONFIG_PATH": str(etcd_config),
        # Milvus reads any config key from the environment (queryNode.gracefulStopTimeout ->
        # QUERYNODE_GRACEFULSTOPTIMEOUT). A standalone query node has nowhere to hand its
        # segments to, so its graceful stop would wait out the default 30 min.
        "QUERYNODE_GRACEFULSTOPTIMEOUT": "2",
        "COMMON_GRACEFULSTOPTIMEOUT": "8",
        # Sessions of the previous run linger in etcd for this many seconds after a restart and
        # make loads fail meanwhile ("node not match"); start-up waits for them to expire.
        "COMMON_SESSION_TTL": "10",
        library_var: os.pathsep.join(p for p in (bin_dir, os.environ.get(library_var)) if p),
    }
    return env, metrics_port, ports["etcd_port"]


def _stale_sessions(etcd_port: int) -> bool:
    """Whether etcd still holds a previous run's session for some component (or cannot tell)."""

    def b64(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    body = json.dumps({"key": b64("by-dev/meta/session/"), "range_end": b64("by-dev/meta/session0")})
    request = urllib.request.Request(f"http://{HOST}:{etcd_port}/v3/kv/range", data=body.encode())
    try:
        with urllib.request.urlopen(request, timeout=2) as resp:
            kvs = json.loads(resp.read()).get("kvs", [])
    except (OSError, ValueError):
        return True
    names = []
    for kv in kvs:
        try:
            session = json.loads(base64.b64decode(kv["value"]))
        except (KeyError, ValueError):
            continue
        if isinstance(session, dict):
            names.append(session.get("ServerName"))
    return len(names) != len(set(names))


def _wait_ready(server: LocalServer, etcd_port: int, timeout: float) -> None:
    """Wait until /healthz says OK, no stale session is left and a client can list collections."""
    from pymilvus import MilvusClient

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.is_running():
            log = (server.base_dir / "logs" / "milvus-stdout.log").read_text(encoding="utf-8", errors="replace")
            if "bind: address already in use" in log:
                raise _PortClash(f"A port was taken while Milvus started; see {server.base_dir / 'logs'}.")
            raise ServerError(
                f"The Milvus server exited during start-up; see {server.base_dir / 'logs'} (milvus-stderr.log)."
            )
        if server.is_healthy() and not _stale_sessions(etcd_port):
            try:
                client = MilvusClient(server.uri, timeout=5)
                try:
                    client.list_collections(timeout=5)
                    return
                finally:
                    client.close()
            except Exception:  # pymilvus raises several types while the proxy warms up
                pass
        time.sleep(0.25)
    raise ServerError(f"The Milvus server did not become ready within {timeout:.0f} s; see {server.base_dir / 'logs'}.")


def _terminate_tree(process: psutil.Process, timeout: float) -> None:
    try:
        procs = [process, *process.children(recursive=True)]
    except psutil.Error:
        return
    for proc in procs:
        with suppress(psutil.Error):
            proc.terminate()
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def _write_pidfile(server: LocalServer) -> None:
    info = {
        "pid": server.pid,
        "create_time": server.process.create_time(),
        "port": server.port,
        "metrics_port": server.metrics_port,
        "uri": server.uri,
    }
    (server.base_dir / PIDFILE_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _read_pidfile(pidfile: Path) -> dict:
    """The pidfile's content, or {} when it is missing or unreadable."""
    try:
        info = json.loads(pidfile.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    required = {"pid", "create_time", "port", "metrics_port"}
    return info if isinstance(info, dict) and required <= info.keys() else {}


def main(argv: list[str] | None = None) -> int:
    """Start (detached), stop, or report on the local Milvus server recorded in --base-dir."""
    parser = argparse.ArgumentParser(prog="python -m helpers.server", description=main.__doc__)
    parser.add_argument(
        "command",
        choices=("start", "stop", "status"),
        help="start: detached, prints MILVUS_URI=...; stop: via the pidfile; status: exit 1 if not running",
    )
    parser.add_argument("--base-dir", type=Path, default=DEFAULT_BASE_DIR, help="server data directory")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="gRPC port (start only)")
    parser.add_argument("--timeout", type=float, default=120, help="seconds to wait for start-up")
    args = parser.parse_args(argv)

    if args.command == "stop":
        stopped = stop_server(args.base_dir)
        if stopped is None:
            print(f"No Milvus server running in {args.base_dir}.")
        else:
            print(f"Stopped Milvus server (pid {stopped.pid}).")
        return 0
    server = running_server(args.base_dir)
    if args.command == "status":
        if server is None:
            print(f"No Milvus server running in {args.base_dir}.")
            return 1
        state = "healthy" if server.is_healthy() else "NOT healthy"
        print(f"Milvus server pid {server.pid} is {state}, RSS {server.rss_bytes() / 2**20:.0f} MiB.")
        print(f"MILVUS_URI={server.uri}")
        return 0
    if server is not None:
        print(f"Milvus server already running (pid {server.pid}).", file=sys.stderr)
    else:
        started = time.monotonic()
        try:
            server = start_local_server(args.base_dir, port=args.port, timeout=args.timeout)
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"Milvus server pid {server.pid} ready in {time.monotonic() - started:.1f} s.", file=sys.stderr)
    print(f"MILVUS_URI={server.uri}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
