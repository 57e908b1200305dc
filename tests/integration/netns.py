"""Real test hosts in Linux network namespaces, and a cluster running on them, for partition tests.

Topology (``Topology``): a bridge in the root namespace with the address ``10.77.X.1/24`` (X is
chosen free per run) and one network namespace per host, each attached to the bridge by a veth
pair (``eth0`` inside, ``lo`` up): nodes ``n1..n3`` at ``.11-.13`` and gateways ``g1, g2`` at
``.21-.22``. The test client stays in the root namespace and reaches every host over the bridge.

Links are cut with nftables *inside* the host namespaces (input and output rules dropping the
peer's address, optionally one TCP port only), on both ends of a cut. That is independent of the
bridge, so it works whatever ``br_netfilter`` does with bridged frames in the root namespace;
``check_connectivity`` makes sure the root namespace does not filter them either. Dropping (not
rejecting) is what a real partition looks like: connections hang until their timeouts.

Names are ``lgp<pid><host>`` (namespaces, veths, ``lgp<pid>br`` the bridge), so parallel runs do
not collide; ``create`` first removes what earlier runs of a dead pid (or of this one) left.
Everything here needs root; ``requirements_missing`` says exactly what is missing instead.

``NetnsCluster`` is ``ClusterService`` on these hosts: a config whose node ``address`` and
``raftHost`` are the namespace addresses, each ``ledger-node`` and ``ledger-gateway`` started with
``ip netns exec NS ... --host <its address>``.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from harness import ClusterService, ServiceProcess, wait_until

from ledger.config import generate_config

__all__ = ["Host", "NetnsCluster", "Topology", "requirements_missing"]

PREFIX = "lgp"
NFT_TABLE = "lgcut"
node_grpc_port = 7000
node_raft_port_base = 17000  # shard S: 17000 + S on every node (each node has its own address)
gateway_port = 8000
_command_timeout_s = 20.0
_NAME = re.compile(rf"^{PREFIX}(\d+)[a-z]")


class NetnsError(RuntimeError):
    """A command building or changing the topology failed; the message has its output."""


def _run(args: Sequence[str], stdin: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        list(args),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=_command_timeout_s,
        check=False,
    )
    if check and result.returncode != 0:
        raise NetnsError(
            f"`{' '.join(args)}` failed ({result.returncode}): "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return result.stdout


# -- requirements ---------------------------------------------------------------------------

_requirements: list[str | None] = []


def requirements_missing() -> str | None:
    """None when namespaces, veth pairs, a bridge and nftables work here; else why not."""
    if not _requirements:
        _requirements.append(_probe())
    return _requirements[0]


def _probe() -> str | None:
    if not sys.platform.startswith("linux"):
        return f"network namespaces need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return (
            f"needs root (euid {os.geteuid()}): creating network namespaces, veth pairs, "
            "a bridge and nftables rules needs CAP_NET_ADMIN"
        )
    if shutil.which("ip") is None:
        return "`ip` (Debian package iproute2) is not on PATH; tests/system_packages.sh installs it"
    if shutil.which("nft") is None:
        return (
            "`nft` (Debian package nftables) is not on PATH; tests/system_packages.sh installs it"
        )
    tag = f"{PREFIX}{os.getpid()}"
    netns, bridge, veth = f"{tag}x", f"{tag}xb", f"{tag}xv"
    steps = [
        ("a network namespace (ip netns add)", ["ip", "netns", "add", netns]),
        ("a bridge (ip link add type bridge)", ["ip", "link", "add", bridge, "type", "bridge"]),
        (
            "a veth pair (ip link add type veth)",
            ["ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p"],
        ),
        ("moving a veth end into a namespace", ["ip", "link", "set", f"{veth}p", "netns", netns]),
        ("attaching a veth end to a bridge", ["ip", "link", "set", veth, "master", bridge]),
        (
            "nftables in a namespace (nft add table)",
            ["ip", "netns", "exec", netns, "nft", "add", "table", "inet", NFT_TABLE],
        ),
    ]
    try:
        for what, command in steps:
            try:
                _run(command)
            except (NetnsError, OSError, subprocess.TimeoutExpired) as error:
                return f"cannot create {what}: {error}"
        return None
    finally:
        _run(["ip", "link", "del", veth], check=False)
        _run(["ip", "link", "del", bridge], check=False)
        _run(["ip", "netns", "del", netns], check=False)


# -- leftovers ------------------------------------------------------------------------------


def _pid_alive(pid: int) -> bool:
    """Running (a zombie, killed but not yet reaped, is not)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _stale(name: str) -> bool:
    """A name of ours made by a process that is gone, or by this process (a previous topology)."""
    match = _NAME.match(name)
    if match is None:
        return False
    pid = int(match.group(1))
    return pid == os.getpid() or not _pid_alive(pid)


def remove_leftovers() -> list[str]:
    """Delete namespaces, veths and bridges that earlier runs left; returns what was removed.

    Processes still running in a leftover namespace were started by such a run (its nodes and
    gateways) and are killed by pid, so that the namespace really goes away."""
    removed = []
    for line in _run(["ip", "netns", "list"], check=False).splitlines():
        name = line.split()[0] if line.split() else ""
        if not _stale(name):
            continue
        for pid in _run(["ip", "netns", "pids", name], check=False).split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _run(["ip", "netns", "del", name], check=False)
        removed.append(f"netns {name}")
    for line in _run(["ip", "-o", "link", "show"], check=False).splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        if _stale(name):
            _run(["ip", "link", "del", name], check=False)
            removed.append(f"link {name}")
    return removed


def _free_subnet() -> str:
    """``10.77.X`` with no address or route of the root namespace inside it."""
    used = _run(["ip", "-o", "-4", "addr", "show"], check=False) + _run(
        ["ip", "-4", "route", "show"], check=False
    )
    start = os.getpid() % 250
    for step in range(250):
        subnet = f"10.77.{(start + step) % 250 + 1}"
        if f"{subnet}." not in used:
            return subnet
    raise NetnsError("no free 10.77.X.0/24 subnet in the root namespace")


# -- topology -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Host:
    name: str  # n1, n2, n3, g1, g2
    netns: str
    address: str  # its IPv4 address on the bridge
    veth: str  # the veth end on the bridge (root namespace)

    @property
    def exec_prefix(self) -> list[str]:
        """Run a command inside this host: ``[*exec_prefix, command, ...]`` (execs it)."""
        return ["ip", "netns", "exec", self.netns]


@dataclass(frozen=True, slots=True)
class Cut:
    a: str
    b: str
    port: int | None = None  # TCP port (either end of the connection), None: everything

    def __str__(self) -> str:
        return f"{self.a}-x-{self.b}" + ("" if self.port is None else f" (tcp port {self.port})")


class Topology:
    """The bridge and host namespaces of the module docstring; ``create``/``destroy`` them."""

    def __init__(self, node_count: int = 3, gateway_count: int = 2) -> None:
        self.tag = f"{PREFIX}{os.getpid()}"
        self.bridge = f"{self.tag}br"
        self.subnet = ""
        self.bridge_address = ""
        self._names = [f"n{i + 1}" for i in range(node_count)] + [
            f"g{i + 1}" for i in range(gateway_count)
        ]
        self.hosts: dict[str, Host] = {}
        self.cuts: list[Cut] = []

    @property
    def nodes(self) -> list[Host]:
        return [host for name, host in self.hosts.items() if name.startswith("n")]

    @property
    def gateways(self) -> list[Host]:
        return [host for name, host in self.hosts.items() if name.startswith("g")]

    def create(self) -> None:
        remove_leftovers()
        self.subnet = _free_subnet()
        self.bridge_address = f"{self.subnet}.1"
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.bridge_address}/24", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for name in self._names:
                number = int(name[1:])
                last = 10 + number if name.startswith("n") else 20 + number
                host = Host(name, f"{self.tag}{name}", f"{self.subnet}.{last}", f"{self.tag}{name}")
                self._add_host(host)
                self.hosts[name] = host
        except BaseException:
            self.destroy()
            raise

    def _add_host(self, host: Host) -> None:
        inner = f"{host.veth}p"
        _run(["ip", "netns", "add", host.netns])
        _run(["ip", "link", "add", host.veth, "type", "veth", "peer", "name", inner])
        _run(["ip", "link", "set", inner, "netns", host.netns])
        _run(["ip", "link", "set", host.veth, "master", self.bridge])
        _run(["ip", "link", "set", host.veth, "up"])
        ns = ["ip", "-n", host.netns]
        _run([*ns, "link", "set", inner, "name", "eth0"])
        _run([*ns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
        _run([*ns, "link", "set", "eth0", "up"])
        _run([*ns, "link", "set", "lo", "up"])
        _run(
            [*host.exec_prefix, "nft", "-f", "-"],
            stdin=(
                f"table inet {NFT_TABLE} {{\n"
                "  chain input { type filter hook input priority 0; policy accept; }\n"
                "  chain output { type filter hook output priority 0; policy accept; }\n"
                "}\n"
            ),
        )

    def destroy(self) -> None:
        """Remove every namespace, veth and the bridge (processes inside must be stopped first;
        any left over are killed). Safe to call twice or after a failed ``create``."""
        for host in self.hosts.values():
            for pid in _run(["ip", "netns", "pids", host.netns], check=False).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        for name in self._names:
            _run(["ip", "netns", "del", f"{self.tag}{name}"], check=False)  # takes its veth too
            _run(["ip", "link", "del", f"{self.tag}{name}"], check=False)
        _run(["ip", "link", "del", self.bridge], check=False)
        self.hosts.clear()
        self.cuts.clear()

    def __enter__(self) -> Self:
        self.create()
        return self

    def __exit__(self, *exc: object) -> None:
        self.destroy()

    # -- cutting links ----------------------------------------------------------------------

    def cut(self, pairs: Iterable[tuple[str, str]], port: int | None = None) -> list[Cut]:
        """Drop all traffic (or TCP traffic on ``port``, at either end) between each pair of
        hosts, in both directions, with rules on both hosts."""
        new = [Cut(a, b, port) for a, b in pairs]
        scripts: dict[str, list[str]] = {}
        for cut in new:
            for here, there in ((cut.a, cut.b), (cut.b, cut.a)):
                peer = self.hosts[there].address
                matches = [""] if port is None else [f" tcp dport {port}", f" tcp sport {port}"]
                lines = scripts.setdefault(here, [])
                for match in matches:
                    lines.append(f"add rule inet {NFT_TABLE} input ip saddr {peer}{match} drop")
                    lines.append(f"add rule inet {NFT_TABLE} output ip daddr {peer}{match} drop")
        for here, lines in scripts.items():
            _run([*self.hosts[here].exec_prefix, "nft", "-f", "-"], stdin="\n".join(lines) + "\n")
        self.cuts.extend(new)
        return new

    def partition(self, *sides: Iterable[str]) -> list[Cut]:
        """Cut every host of each side from every host of the other sides (hosts in no side,
        and the root namespace, keep all their links)."""
        groups = [list(side) for side in sides]
        pairs = [
            (a, b)
            for i, side in enumerate(groups)
            for other in groups[i + 1 :]
            for a in side
            for b in other
        ]
        return self.cut(pairs)

    def heal(self) -> None:
        """Remove every cut."""
        for host in self.hosts.values():
            _run([*host.exec_prefix, "nft", "flush", "table", "inet", NFT_TABLE])
        self.cuts.clear()

    def rules(self, name: str) -> str:
        return _run([*self.hosts[name].exec_prefix, "nft", "list", "table", "inet", NFT_TABLE])

    def listening(self, name: str) -> str:
        """``ss -ltn`` inside a host: which addresses its processes listen on."""
        return _run([*self.hosts[name].exec_prefix, "ss", "-ltnH"])

    # -- checks -----------------------------------------------------------------------------

    def check_connectivity(self, timeout_s: float = 2.0) -> None:
        """Every host reaches every other host and the bridge address over TCP (a refused
        connection counts: the packet got there); raises NetnsError saying which did not."""
        probe = (
            "import socket, sys\n"
            "for address in sys.argv[2:]:\n"
            "    s = socket.socket()\n"
            "    s.settimeout(float(sys.argv[1]))\n"
            "    try:\n"
            "        s.connect((address, 9))\n"
            "    except ConnectionRefusedError:\n"
            "        pass\n"
            "    except OSError as error:\n"
            "        print(address, error)\n"
            "    finally:\n"
            "        s.close()\n"
        )
        failures = []
        for host in self.hosts.values():
            targets = [h.address for h in self.hosts.values() if h is not host]
            output = _run(
                [
                    *host.exec_prefix,
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    probe,
                    str(timeout_s),
                    *targets,
                    self.bridge_address,
                ]
            )
            failures += [f"{host.name} -> {line}" for line in output.splitlines()]
        if failures:
            nf = pathlib.Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
            setting = nf.read_text().strip() if nf.exists() else "absent"
            raise NetnsError(
                "hosts on the test bridge cannot reach each other: "
                + "; ".join(failures)
                + f" (bridge-nf-call-iptables={setting}: with 1, bridged frames pass the root "
                "namespace's iptables/nftables forward rules, which may drop them)"
            )


# -- the cluster on the topology ------------------------------------------------------------


class NetnsCluster(ClusterService):
    """3 ``ledger-node`` and N ``ledger-gateway`` processes, each in its host's namespace, bound
    to its namespace address only. ``gateway`` is the first gateway (``ClusterService``'s
    observation methods, which call the nodes' Status rpc from the root namespace, apply)."""

    def __init__(
        self, root: pathlib.Path, topology: Topology, node_args: Sequence[str] = ()
    ) -> None:
        self.root = root
        self.topology = topology
        # One address per node: the node certificates name those addresses.
        document: dict[str, Any] = generate_config(
            node_count=len(topology.nodes),
            hosts=[host.address for host in topology.nodes],
            grpc_port_base=node_grpc_port,
            raft_port_base=node_raft_port_base,
        )
        self._use_config(document)
        self.nodes = [
            self._node_process(
                position,
                ["--host", host.address, *node_args],
                command_prefix=host.exec_prefix,
                host=host.address,
            )
            for position, host in enumerate(topology.nodes)
        ]
        self.gateways = [
            ServiceProcess(
                f"gateway{position + 1}",
                "ledger.cli.gateway",
                [
                    "--host",
                    host.address,
                    "--port",
                    str(gateway_port),
                    "--cluster-config",
                    str(self.config_path),
                ],
                root,
                command_prefix=host.exec_prefix,
                host=host.address,
            )
            for position, host in enumerate(topology.gateways)
        ]
        self.gateway = self.gateways[0]

    def host_of(self, position: int) -> Host:
        """The namespace host of node ``position``."""
        return self.topology.nodes[position]

    def start(self) -> None:
        for process in [*self.nodes, *self.gateways]:
            if not process.alive():
                process.start()
        self.wait_all_shards_led()

    def stop(self) -> None:
        for process in [*self.gateways, *self.nodes]:
            process.stop()

    def processes(self) -> list[ServiceProcess]:
        return [*self.nodes, *self.gateways]

    def logs(self, lines: int = 60) -> str:
        return "\n".join(
            f"----- {p.name} ({p.log_path}) -----\n{p.tail_log(lines)}" for p in self.processes()
        )

    def leader_view(self, timeout_s: float = 2.0) -> dict[int, list[tuple[int, int, bool]]]:
        """shard -> [(node position, term, has_quorum)] of every reachable node that says it
        leads the shard (more than one during a partition: an isolated old leader)."""
        view: dict[int, list[tuple[int, int, bool]]] = {shard: [] for shard in range(16)}
        for position in range(len(self.nodes)):
            response = self._status_or_none(position, timeout_s)
            for shard in [] if response is None else response.shards:
                if shard.role == "leader":
                    view[shard.shard].append((position, shard.term, shard.has_quorum))
        return view

    def _status_or_none(self, position: int, timeout_s: float) -> Any:
        try:
            return self.status(position, timeout_s=timeout_s)
        except Exception:  # noqa: BLE001 - a node that does not answer leads nothing
            return None

    def wait_single_leaders(self, timeout_s: float = 30.0) -> dict[int, int]:
        """Every shard: exactly one node says it leads, with quorum, and the two others name it
        as their leader. Returns shard -> position."""

        def settled() -> dict[int, int] | None:
            statuses = [self._status_or_none(p, 2.0) for p in range(len(self.nodes))]
            if any(status is None for status in statuses):
                return None  # not settled while a node does not answer
            by_shard = [{s.shard: s for s in status.shards} for status in statuses]
            result = {}
            for shard in range(len(self.config.shards)):
                leaders = [
                    p
                    for p, shards in enumerate(by_shard)
                    if shards[shard].role == "leader" and shards[shard].has_quorum
                ]
                if len(leaders) != 1:
                    return None
                address = self.config.nodes[leaders[0]].address
                if any(shards[shard].leader_address != address for shards in by_shard):
                    return None
                result[shard] = leaders[0]
            return result

        return wait_until(
            settled,
            timeout_s,
            interval_s=0.25,
            what="exactly one leader per shard, known to all nodes",
        )


def now_s(start: float) -> str:
    """A timestamp for the nemesis log: seconds since ``start`` (monotonic)."""
    return f"[{time.monotonic() - start:6.2f}s]"
