"""Start local service processes on free ports in a directory: for tests and benchmarks.

Why this ships in the package instead of living under ``tests/``: ``ledger-dev bench-compare``
and ``ledger-dev bench-scale`` are installed commands that start real servers (a standalone
server, three nodes and a gateway) with it, so it must be importable wherever ``ledger`` is
installed. The integration and fault tests use the same launcher through ``tests/harness.py``.

Processes print one ``... listening on HOST:PORT`` line when ready; ``ServiceProcess.start``
waits for it (bounded), so nobody sleeps to guess readiness. Output goes to a log file in the
given directory, which ``tail_log`` shows when something fails.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = [
    "ClusterService",
    "ServiceProcess",
    "StandaloneService",
    "free_port",
    "free_port_range",
    "wait_until",
]

start_timeout_s = 60.0
stop_timeout_s = 15.0
_LISTENING = re.compile(rb"listening on (\S+):(\d+)")


_handed_out: set[int] = set()


def free_port() -> int:
    """A currently free ephemeral port, never one this process handed out before."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_until(predicate, timeout_s: float, interval_s: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


class ServiceProcess:
    """One child process running a ``ledger.cli`` module.

    ``command_prefix`` runs it through another command that execs it (``ip netns exec NS``: the
    pid stays the module's, so signals reach it); ``host`` is where it is reached (``address``).
    """

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str],
        log_dir: pathlib.Path,
        *,
        command_prefix: Sequence[str] = (),
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.module = module
        self.args = list(args)
        self.command_prefix = list(command_prefix)
        self.host = host
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*self.command_prefix, sys.executable, "-m", self.module, *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        log.close()

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.tail_log()}")
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                match = _LISTENING.search(handle.read())
            if match:
                self.port = int(match.group(2))
            return match is not None

        wait_until(ready, start_timeout_s, what=f"{self.name} to listen")

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs (benchmarks read its /proc entry), else None."""
        return self.process.pid if self.process is not None and self.alive() else None

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill9(self) -> None:
        if self.alive():
            assert self.process is not None
            self.process.kill()
            self.process.wait(stop_timeout_s)

    def stop(self) -> int | None:
        """SIGTERM (after SIGCONT, in case it was paused), then SIGKILL if it does not exit."""
        if not self.alive():
            return None if self.process is None else self.process.returncode
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.process.terminate()
        try:
            return self.process.wait(stop_timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(stop_timeout_s)
            return None

    def tail_log(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


class StandaloneService:
    """``ledger-standalone`` on a free port over a data dir that survives restarts."""

    kind = "standalone"

    def __init__(self, root: pathlib.Path, server_args: Sequence[str] = ()) -> None:
        self.data_dir = root / "standalone-data"
        self.process = ServiceProcess(
            "standalone",
            "ledger.cli.standalone",
            ["--port", str(free_port()), "--data-dir", str(self.data_dir), *server_args],
            root,
        )

    @property
    def address(self) -> str:
        return self.process.address

    def start(self) -> None:
        self.process.start()

    def kill9(self) -> None:
        self.process.kill9()

    def stop(self) -> None:
        self.process.stop()


def free_port_range(count: int, attempts: int = 50) -> int:
    """A base port with ``count`` consecutive free ports (for a node's shard Raft ports)."""
    import random

    rng = random.Random()
    for _ in range(attempts):
        # Below the ephemeral range (32768+), so free_port() never lands inside a Raft range.
        base = rng.randrange(20_000, 32_000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no free port range")


class ClusterService:
    """3 ``ledger-node`` processes and one ``ledger-gateway`` on free ports, data in ``root``."""

    kind = "cluster"

    def __init__(
        self, root: pathlib.Path, node_args: Sequence[str] = (), gateway_args: Sequence[str] = ()
    ) -> None:
        from ledger.config import generate_config

        self.root = root
        document = generate_config(grpc_port_base=free_port(), raft_port_base=20_000)
        raft_base = free_port_range(16 * len(document["nodes"]))
        for position, node in enumerate(document["nodes"]):
            node["address"] = f"127.0.0.1:{free_port()}"
            node["raftPortBase"] = raft_base + 16 * position
        self._use_config(document)
        self.nodes = [
            self._node_process(position, node_args) for position in range(len(self.config.nodes))
        ]
        self.gateway = ServiceProcess(
            "gateway",
            "ledger.cli.gateway",
            ["--port", str(free_port()), "--cluster-config", str(self.config_path), *gateway_args],
            root,
        )

    def _use_config(self, document: dict[str, Any]) -> None:
        """Write ``document`` as this cluster's config file and parse it."""
        import json

        from ledger.config import parse_config

        self.config_path = self.root / "cluster_config.json"
        self.config_path.write_text(json.dumps(document, indent=2))
        self.config = parse_config(document, environ={})

    def _node_process(
        self, position: int, node_args: Sequence[str], **process_options: Any
    ) -> ServiceProcess:
        """The ``ledger-node`` process of the config's node ``position``."""
        node = self.config.nodes[position]
        return ServiceProcess(
            f"node{position + 1}",
            "ledger.cli.node",
            [
                "--node-id",
                node.node_id,
                "--port",
                str(node.grpc_port),
                "--data-dir",
                str(self.node_data_dir(position)),
                "--cluster-config",
                str(self.config_path),
                *node_args,
            ],
            self.root,
            **process_options,
        )

    def node_data_dir(self, position: int) -> pathlib.Path:
        return self.root / "data" / self.config.nodes[position].node_id

    @property
    def address(self) -> str:
        return self.gateway.address

    def start(self) -> None:
        for node in self.nodes:
            if not node.alive():
                node.start()
        if not self.gateway.alive():
            self.gateway.start()
        self.wait_all_shards_led()

    def stop(self) -> None:
        self.gateway.stop()
        for node in self.nodes:
            node.stop()

    def kill9(self) -> None:
        for node in self.nodes:
            node.kill9()

    # -- observation through the node API --------------------------------------------------

    def status(self, position: int, include_digest: bool = False, timeout_s: float = 5.0):  # type: ignore[no-untyped-def]
        from ledger.pb import ledger_node_pb2, ledger_node_pb2_grpc

        with self.config.node_channel(self.config.nodes[position].address) as channel:
            stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
            request = ledger_node_pb2.StatusRequest(include_digest=include_digest)
            return stub.Status(request, timeout=timeout_s)

    def leaders(self) -> dict[int, int]:
        """shard -> position of the node that says it leads it (live nodes only)."""
        found: dict[int, int] = {}
        for position, node in enumerate(self.nodes):
            if not node.alive():
                continue
            try:
                response = self.status(position, timeout_s=2.0)
            except Exception:  # noqa: BLE001 - a paused or starting node
                continue
            for shard in response.shards:
                if shard.role == "leader" and shard.has_quorum:
                    found[shard.shard] = position
        return found

    def wait_all_shards_led(self, timeout_s: float = 60.0) -> dict[int, int]:
        def all_led() -> dict[int, int] | None:
            leaders = self.leaders()
            return leaders if len(leaders) == len(self.config.shards) else None

        leaders: dict[int, int] = wait_until(
            all_led, timeout_s, interval_s=0.2, what="a leader for every shard"
        )
        return leaders

    def digests(self, position: int) -> dict[int, tuple[int, str]]:
        response = self.status(position, include_digest=True, timeout_s=30.0)
        return {s.shard: (s.store_applied_index, s.digest) for s in response.shards}

    def wait_converged(self, timeout_s: float = 60.0) -> dict[int, str]:
        """Every shard has the same data digest on all three nodes; returns shard -> digest."""

        def converged() -> dict[int, str] | None:
            per_node = [self.digests(position) for position in range(len(self.nodes))]
            result = {}
            for shard in range(16):
                digests = {node[shard][1] for node in per_node}
                if len(digests) != 1:
                    return None
                result[shard] = digests.pop()
            return result

        digests: dict[int, str] = wait_until(
            converged, timeout_s, interval_s=0.5, what="replicas to converge"
        )
        return digests
