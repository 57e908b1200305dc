"""Network partitions between real hosts: a nemesis cuts links under load through two gateways.

Goal: under partitions no acknowledged write is lost or applied twice, no read through either
gateway is stale, the minority side only ever says UNAVAILABLE or DEADLINE_EXCEEDED, and after
healing every shard has one leader and identical replicas.

Method: the hosts are network namespaces on a bridge (``tests/integration/netns.py``): 3 nodes
and 2 gateways, each process bound to its namespace address; the test client runs in the root
namespace. Writers and readers run through both gateways while the nemesis repeats, for about
``nemesis_s`` seconds:

1. isolate the leader of one shard from the two other replicas: on odd cycles only that shard's
   Raft port, on even cycles the leader's whole node (both gateways still reach every node);
2. partition the cluster: the node leading most shards and one gateway on one side, the two
   other nodes and the other gateway on the other (the root namespace reaches everything);
3. heal, and wait until every shard takes writes again through both gateways.

Checks, beyond ``load.resolve_and_check`` (nothing acknowledged lost, nothing doubled):

* a read that starts after a write was acknowledged sees it: a balance is at least the sum of
  the top-ups acknowledged before the read started (and at most the sum of those sent before it
  ended), a listing holds every one of them; direct node reads on an isolated node likewise;
* a call through the minority gateway that starts after the partition and ends before the heal
  fails with UNAVAILABLE or DEADLINE_EXCEEDED; no call anywhere gets another error;
* a write refused with UNAVAILABLE ("nothing applied", ``ledger.stubs.cluster``) is not in the
  history (checked for calls without an idempotency key, which nobody retries);
* after the last heal: exactly one leader per shard known to all nodes, and identical digests.

What the nemesis did, with timestamps, and recovery times are printed (``pytest -s``); timings
are not asserted, except that the cluster recovers within ``recover_timeout_s``.
"""

from __future__ import annotations

import pathlib
import random
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from harness import wait_until

from integration.load import Issued, list_all, resolve_and_check
from integration.netns import NetnsCluster, Topology, node_raft_port_base, requirements_missing
from ledger import ids
from ledger.config import ClusterConfig
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc, ledger_node_pb2_grpc
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb

nemesis_s = 60.0
cycle_s_estimate = 10.0  # a cycle starts only if it should end within nemesis_s (roughly)
write_timeout_s = 4.0
read_timeout_s = 2.0
isolate_hold_s = 3.0  # step 1 lasts at least this, and until the shard takes writes
partition_hold_s = 6.0  # step 2: longer than write_timeout_s, so minority calls end inside
recover_timeout_s = 30.0
write_pause_s = 0.1  # between one writer's calls
readers_per_gateway = 2
accounts_per_shard = 3
allowed_failures = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


def _shard_of(account_id: str) -> int:
    return ids.shard_index(ids.parse_account_id(account_id))


# -- recording load through both gateways ---------------------------------------------------


@dataclass
class Write(Issued):
    gateway: str = ""
    shard: int = 0
    started_at: float = 0.0
    ended_at: float = 0.0
    code: str = ""  # "" while running; OK or the status code name


@dataclass
class Read:
    gateway: str
    kind: str
    account_id: str
    started_at: float
    ended_at: float = 0.0
    code: str = ""


@dataclass
class Load:
    """Writers and readers through each gateway; every call is recorded with its gateway, start,
    end and status. ``issued``/``account_ids`` make it a recorder for ``resolve_and_check``."""

    gateways: dict[str, str]  # name -> address
    account_ids: list[str]
    issued: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    acks: list[Write] = field(default_factory=list)  # in acknowledgement order
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _acked_sum: dict[str, int] = field(default_factory=dict)
    _issued_sum: dict[str, int] = field(default_factory=dict)
    _acked_descriptions: dict[str, list[str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        for account_id in self.account_ids:
            self._acked_sum[account_id] = 0
            self._issued_sum[account_id] = 0
            self._acked_descriptions[account_id] = []

    def start(self) -> None:
        """One writer per shard and gateway (a shard's recovery is seen as soon as it happens,
        not when some random writer gets to it), and a few readers per gateway."""
        for name, address in self.gateways.items():
            for shard in range(16):
                self._spawn(self._write_loop, name, address, shard)
            for worker in range(readers_per_gateway):
                self._spawn(self._read_loop, name, address, worker)

    def _spawn(self, target, name: str, address: str, worker: int) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(target=target, args=(name, address, worker), daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(write_timeout_s * 3)
            assert not thread.is_alive()

    def violation(self, message: str) -> None:
        with self.lock:
            self.violations.append(message)

    # bounds for stale-read checks
    def lower_bound(self, account_id: str) -> tuple[int, list[str]]:
        with self.lock:
            return self._acked_sum[account_id], list(self._acked_descriptions[account_id])

    def upper_bound(self, account_id: str) -> int:
        with self.lock:
            return self._issued_sum[account_id]

    def first_ack(
        self, after: float, shards: set[int] | None = None, gateway: str | None = None
    ) -> float | None:
        """When the first write *started* after ``after`` was acknowledged (on these shards,
        through this gateway), or None."""
        with self.lock:
            acks = list(self.acks)
        times = [
            w.acked_at
            for w in acks
            if w.started_at > after
            and (shards is None or w.shard in shards)
            and (gateway is None or w.gateway == gateway)
        ]
        return min(times) if times else None

    def shards_acked(self, after: float, gateway: str) -> set[int]:
        with self.lock:
            acks = list(self.acks)
        return {w.shard for w in acks if w.started_at > after and w.gateway == gateway}

    def _write_loop(self, gateway: str, address: str, shard: int) -> None:
        rng = random.Random(f"{gateway}-{shard}")
        accounts = [a for a in self.account_ids if _shard_of(a) == shard]
        with grpc.insecure_channel(address) as channel:
            stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
            sequence = 0
            while not self._stop.wait(write_pause_s):
                sequence += 1
                account_id = rng.choice(accounts)
                item = Write(
                    account_id=account_id,
                    amount=rng.randint(1, 1000),
                    description=f"{gateway}-s{shard}-{sequence}",
                    keyed=sequence % 2 == 0,
                    gateway=gateway,
                    shard=shard,
                )
                request = api.CreateTransactionRequest(
                    account_id=item.account_id,
                    amount=item.amount,
                    description=item.description,
                    settled=True,
                    idempotency_key=item.description if item.keyed else "",
                )
                with self.lock:
                    self.issued.append(item)
                    self._issued_sum[account_id] += item.amount
                    item.started_at = time.monotonic()
                try:
                    response = stub.CreateTransaction(request, timeout=write_timeout_s)
                except grpc.RpcError as error:
                    item.ended_at = time.monotonic()
                    item.code = error.code().name
                    if error.code() not in allowed_failures:
                        self.violation(
                            f"write {item.description} via {gateway}: "
                            f"{error.code().name} {error.details()}"
                        )
                    continue
                ended = time.monotonic()
                if (
                    response.transaction.description != item.description
                    or response.transaction.amount != item.amount
                ):
                    self.violation(
                        f"write {item.description} via {gateway}: wrong answer "
                        f"{response.transaction}"
                    )
                with self.lock:
                    item.ended_at = item.acked_at = ended
                    item.code = "OK"
                    item.transaction_id = response.transaction.id
                    self.acks.append(item)
                    self._acked_sum[account_id] += item.amount
                    self._acked_descriptions[account_id].append(item.description)

    def _read_loop(self, gateway: str, address: str, worker: int) -> None:
        rng = random.Random(f"{gateway}-r{worker}")
        with grpc.insecure_channel(address) as channel:
            stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
            count = 0
            while not self._stop.is_set():
                count += 1
                account_id = self._pick_account(rng, gateway)
                kind = "GetAccount" if count % 2 else "ListTransactions"
                lower, acked = self.lower_bound(account_id)
                read = Read(gateway, kind, account_id, time.monotonic())
                try:
                    if kind == "GetAccount":
                        account = stub.GetAccount(
                            api.GetAccountRequest(account_id=account_id), timeout=read_timeout_s
                        ).account
                        listed: list[api.Transaction] = []
                    else:
                        listed = self._list(stub, account_id)
                except grpc.RpcError as error:
                    read.ended_at = time.monotonic()
                    read.code = error.code().name
                    if error.code() not in allowed_failures:
                        self.violation(
                            f"{kind} {account_id} via {gateway}: "
                            f"{error.code().name} {error.details()}"
                        )
                    with self.lock:
                        self.reads.append(read)
                    time.sleep(0.05)
                    continue
                read.ended_at = time.monotonic()
                read.code = "OK"
                upper = self.upper_bound(account_id)
                with self.lock:
                    self.reads.append(read)
                where = f"{kind} {account_id} via {gateway} at {read.started_at:.3f}"
                if kind == "GetAccount":
                    balance = account.settled_balance
                    if not lower <= balance <= upper or account.available_balance != balance:
                        self.violation(
                            f"stale or wrong {where}: settled {balance}, available "
                            f"{account.available_balance}, expected {lower}..{upper}"
                        )
                else:
                    descriptions = [t.description for t in listed]
                    missing = sorted(set(acked) - set(descriptions))
                    if missing:
                        self.violation(
                            f"stale {where}: {len(missing)} acknowledged writes "
                            f"missing, e.g. {missing[:3]}"
                        )
                    if len(set(descriptions)) != len(descriptions):
                        self.violation(f"{where}: a description listed twice")
                    if not lower <= sum(t.amount for t in listed) <= upper:
                        self.violation(
                            f"stale or wrong {where}: listed sum outside {lower}..{upper}"
                        )

    def _pick_account(self, rng: random.Random, gateway: str) -> str:
        """Every other read: the account of the latest write acknowledged through another
        gateway (the read most likely to be stale if anything is), else a random account."""
        if rng.random() < 0.5:
            with self.lock:
                for item in reversed(self.acks[-50:]):
                    if item.gateway != gateway:
                        return item.account_id
        return rng.choice(self.account_ids)

    @staticmethod
    def _list(
        stub: ledger_api_pb2_grpc.LedgerServiceApiStub, account_id: str
    ) -> list[api.Transaction]:
        transactions: list[api.Transaction] = []
        token = ""
        while True:
            page = stub.ListTransactions(
                api.ListTransactionsRequest(
                    account_id=account_id, page_size=1000, page_token=token
                ),
                timeout=read_timeout_s,
            )
            transactions.extend(page.transactions)
            token = page.next_page_token
            if not token:
                return transactions


# -- direct reads on an isolated node (like the SIGSTOP test) -------------------------------


class IsolatedReader:
    """While a node is cut off, read its shards' accounts straight from its node API (from the
    root namespace, which still reaches it). A read started after the cut must be refused or,
    if answered, must not be stale."""

    def __init__(self, load: Load, account_ids: list[str], config: ClusterConfig) -> None:
        self.load = load
        self.config = config
        self.by_shard: dict[int, list[str]] = {}
        for account_id in account_ids:
            self.by_shard.setdefault(_shard_of(account_id), []).append(account_id)
        self.answered = 0
        self.refused = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self, address: str, shards: list[int]) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, args=(address, shards), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive()
            self._thread = None

    def _run(self, address: str, shards: list[int]) -> None:
        rng = random.Random(address)
        with self.config.node_channel(address) as channel:
            stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
            while not self._stop.is_set() and shards:
                shard = rng.choice(shards)
                account_id = rng.choice(self.by_shard[shard])
                lower, _ = self.load.lower_bound(account_id)
                request = node_pb.ReadRequest(
                    shard=shard,
                    queries=[
                        pb.Query(
                            get_account=pb.GetAccount(account_id=ids.parse_account_id(account_id))
                        )
                    ],
                    timeout_ms=1000,
                )
                try:
                    response = stub.Read(request, timeout=2)
                except grpc.RpcError:
                    self.refused += 1
                    continue
                if response.outcome.refusal != node_pb.REFUSAL_NONE:
                    self.refused += 1
                    time.sleep(0.05)
                    continue
                self.answered += 1
                balance = response.outcome.results[0].account.settled_balance
                if balance < lower:
                    self.load.violation(
                        f"stale direct read on isolated {address} shard {shard}:"
                        f" {account_id} settled {balance} < acknowledged {lower}"
                    )


# -- the nemesis ----------------------------------------------------------------------------


@dataclass
class Nemesis:
    cluster: NetnsCluster
    topology: Topology
    load: Load
    isolated_reader: IsolatedReader
    start: float = field(default_factory=time.monotonic)
    cycles: int = 0
    minority_windows: list[tuple[str, float, float]] = field(default_factory=list)
    recoveries: dict[str, list[float]] = field(default_factory=dict)

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.2f}s] {message}", flush=True)

    def record(self, what: str, seconds: float) -> None:
        self.recoveries.setdefault(what, []).append(seconds)

    def node_name(self, position: int) -> str:
        return self.topology.nodes[position].name

    def leaders(self) -> dict[int, int]:
        """shard -> position of its leader with quorum (only shards with exactly one)."""
        view = self.cluster.leader_view()
        return {
            shard: found[0][0]
            for shard, found in view.items()
            if len([f for f in found if f[2]]) == 1 and len(found) == 1
        }

    def wait_writes(
        self, after: float, shards: set[int], gateway: str | None, what: str
    ) -> dict[int, float]:
        """Per shard, seconds from ``after`` to the first acknowledged write started after it
        (through ``gateway`` if given); raises if some shard takes over recover_timeout_s."""

        def all_acked() -> dict[int, float] | None:
            times = {shard: self.load.first_ack(after, {shard}, gateway) for shard in shards}
            if any(t is None for t in times.values()):
                return None
            return {shard: t - after for shard, t in times.items() if t is not None}

        return wait_until(all_acked, recover_timeout_s, interval_s=0.05, what=what)  # type: ignore[no-any-return]

    @staticmethod
    def spread(times: dict[int, float]) -> str:
        slowest = max(times, key=lambda shard: times[shard])
        return (
            f"{min(times.values()):.2f}..{times[slowest]:.2f} s (slowest: shard {slowest}, "
            f"median {statistics.median(times.values()):.2f} s)"
        )

    def run(self, duration_s: float) -> None:
        self.start = time.monotonic()
        self.say(f"nemesis starts: {duration_s:.0f} s of partition cycles")
        while self.cycles == 0 or time.monotonic() - self.start + cycle_s_estimate <= duration_s:
            self.cycle(self.cycles + 1)
            self.cycles += 1
            self.say(f"cycle {self.cycles} survived")

    def cycle(self, number: int) -> None:
        gateways = list(self.load.gateways)
        # (1) isolate the leader of one shard from the two other replicas
        leaders = wait_until(
            lambda: self.leaders() or None, recover_timeout_s, what="a shard with a single leader"
        )
        shard = sorted(leaders)[(number * 5) % len(leaders)]
        leader = leaders[shard]
        others = [p for p in range(len(self.cluster.nodes)) if p != leader]
        name = self.node_name(leader)
        if number % 2:
            port = node_raft_port_base + shard
            self.topology.cut([(name, self.node_name(p)) for p in others], port=port)
            affected = {shard}
            how = f"cut shard {shard}'s raft port {port} between its leader {name} and the others"
        else:
            self.topology.partition([name], [self.node_name(p) for p in others])
            affected = {s for s, p in leaders.items() if p == leader}
            how = (
                f"cut node {name} (leader of shard {shard}, and of shards "
                f"{sorted(affected)}) from the other nodes; gateways reach all nodes"
            )
        cut_at = time.monotonic()
        self.say(f"cycle {number} step 1: {how}")
        self.isolated_reader.start(self.cluster.nodes[leader].address, sorted(affected))
        recovered = self.wait_writes(cut_at, affected, None, f"writes on shards {affected}")
        self.record(
            "step 1: cut -> writes on the isolated leader's shards (slowest shard)",
            max(recovered.values()),
        )
        self.say(
            f"  shards {sorted(affected)} take writes again {self.spread(recovered)} after the cut"
        )
        time.sleep(max(0.0, cut_at + isolate_hold_s - time.monotonic()))
        self.isolated_reader.stop()

        # (2) partition: one node and one gateway against the rest
        leaders = self.leaders()
        counts = {
            p: sum(1 for q in leaders.values() if q == p) for p in range(len(self.cluster.nodes))
        }
        isolated = max(counts, key=lambda p: (counts[p], (p - number) % len(counts)))
        minority_gateway = gateways[number % len(gateways)]
        majority_gateway = gateways[(number + 1) % len(gateways)]
        rest = [self.node_name(p) for p in range(len(self.cluster.nodes)) if p != isolated]
        self.topology.heal()
        self.topology.partition(
            [self.node_name(isolated), minority_gateway], [*rest, majority_gateway]
        )
        cut_at = time.monotonic()
        affected = {s for s, p in leaders.items() if p == isolated}
        self.say(
            f"cycle {number} step 2: healed step 1; partition "
            f"{{{self.node_name(isolated)}, {minority_gateway}}} | "
            f"{{{', '.join(rest)}, {majority_gateway}}}; {self.node_name(isolated)} led "
            f"shards {sorted(affected)}"
        )
        self.isolated_reader.start(self.cluster.nodes[isolated].address, list(range(16)))
        if affected:
            recovered = self.wait_writes(
                cut_at,
                affected,
                majority_gateway,
                f"writes on shards {affected} via {majority_gateway}",
            )
            self.record(
                "step 2: partition -> writes via the majority gateway (slowest shard)",
                max(recovered.values()),
            )
            self.say(
                f"  shards {sorted(affected)} take writes via {majority_gateway} again "
                f"{self.spread(recovered)} after the partition"
            )
        time.sleep(max(0.0, cut_at + partition_hold_s - time.monotonic()))
        self.isolated_reader.stop()
        heal_at = time.monotonic()
        self.minority_windows.append((minority_gateway, cut_at, heal_at))

        # (3) heal
        self.topology.heal()
        self.say(f"cycle {number} step 3: healed (minority window {heal_at - cut_at:.2f} s)")
        for gateway in (minority_gateway, majority_gateway):
            recovered = self.wait_writes(
                heal_at,
                set(range(16)),
                gateway,
                f"writes on every shard via {gateway} after the heal",
            )
            first = self.load.first_ack(heal_at, None, gateway)
            assert first is not None
            side = "minority" if gateway == minority_gateway else "majority"
            slowest = max(recovered.values())
            self.record(f"step 3: heal -> first write via the {side} gateway", first - heal_at)
            self.record(f"step 3: heal -> every shard written via the {side} gateway", slowest)
            self.say(
                f"  via {gateway} ({side}): writes on every shard {self.spread(recovered)}"
                " after the heal"
            )


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def topology() -> Iterator[Topology]:
    missing = requirements_missing()
    if missing is not None:
        pytest.skip(f"partition test needs network namespaces: {missing}")
    hosts = Topology()
    try:
        hosts.create()
        hosts.check_connectivity()
        yield hosts
    finally:
        hosts.destroy()


@pytest.fixture
def cluster(topology: Topology, tmp_path: pathlib.Path) -> Iterator[NetnsCluster]:
    service = NetnsCluster(tmp_path, topology, node_args=["--compaction-entries", "200"])
    try:
        service.start()
        yield service
    except BaseException:
        print(service.logs())
        raise
    finally:
        service.stop()


def _accounts(address: str) -> list[str]:
    """At least ``accounts_per_shard`` accounts on every shard."""
    found: dict[int, list[str]] = {}
    with grpc.insecure_channel(address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        while min(len(found.get(s, [])) for s in range(16)) < accounts_per_shard:
            account_id = stub.CreateAccount(api.CreateAccountRequest(), timeout=10).account.id
            found.setdefault(_shard_of(account_id), []).append(account_id)
    return [a for shard in sorted(found) for a in found[shard]]


def _listen_host(socket: str) -> str:
    """``10.0.0.1:7000`` or ``[::ffff:10.0.0.1]:7000`` (gRPC's IPv4-mapped form) -> 10.0.0.1."""
    host = socket.rsplit(":", 1)[0].strip("[]")
    return host.removeprefix("::ffff:")


def _check_bindings(topology: Topology, cluster: NetnsCluster) -> None:
    """Every port (gRPC of nodes and gateways, the 16 Raft ports of a node) listens on its
    namespace address, never on a wildcard."""
    for host, process in zip(
        [*topology.nodes, *topology.gateways], cluster.processes(), strict=True
    ):
        sockets = [line.split()[3] for line in topology.listening(host.name).splitlines()]
        grpc_sockets = [s for s in sockets if s.endswith(f":{process.port}")]
        assert grpc_sockets, (host, sockets)
        stray = [s for s in sockets if _listen_host(s) != host.address]
        assert not stray, (host.name, stray)
        raft = [s for s in sockets if s not in grpc_sockets]
        assert len(raft) == (16 if host in topology.nodes else 0), (host.name, len(raft), raft)
        print(f"{host.name}: gRPC on {grpc_sockets}; {len(raft)} Raft ports on {host.address}")


# -- the test -------------------------------------------------------------------------------


def test_partition_nemesis(topology: Topology, cluster: NetnsCluster) -> None:
    began = time.monotonic()
    print(
        f"\ntopology: bridge {topology.bridge} {topology.bridge_address}/24; "
        + ", ".join(f"{h.name}={h.netns}@{h.address}" for h in topology.hosts.values())
    )
    _check_bindings(topology, cluster)
    gateways = {
        host.name: process.address
        for host, process in zip(topology.gateways, cluster.gateways, strict=True)
    }
    accounts = _accounts(cluster.gateways[0].address)
    load = Load(gateways, accounts)
    isolated_reader = IsolatedReader(load, accounts, cluster.config)
    nemesis = Nemesis(cluster, topology, load, isolated_reader)
    load.start()
    try:
        time.sleep(1.0)
        nemesis.run(nemesis_s)
    finally:
        isolated_reader.stop()
        topology.heal()
        load.stop()
    answered = {
        g: sum(1 for r in load.reads if r.gateway == g and r.code == "OK") for g in gateways
    }
    nemesis.say(
        f"nemesis done: {nemesis.cycles} cycles, {len(load.issued)} writes "
        f"({len(load.acks)} acknowledged), {len(load.reads)} gateway reads "
        f"(answered and checked: {answered}), "
        f"{isolated_reader.answered} direct reads answered / {isolated_reader.refused} "
        "refused on isolated nodes"
    )

    leaders = cluster.wait_single_leaders(recover_timeout_s)
    spread = {
        cluster.topology.nodes[p].name: list(leaders.values()).count(p)
        for p in range(len(cluster.nodes))
    }
    nemesis.say(f"one leader per shard, known to every node: {spread}")

    # The minority side: after the cut and before the heal, only UNAVAILABLE/DEADLINE_EXCEEDED.
    inside = {"writes": 0, "reads": 0}
    for gateway, cut_at, heal_at in nemesis.minority_windows:
        calls = [
            ("writes", w.code, w.description)
            for w in load.issued
            if w.gateway == gateway and w.started_at > cut_at and 0 < w.ended_at < heal_at
        ]
        calls += [
            ("reads", r.code, f"{r.kind} {r.account_id}")
            for r in load.reads
            if r.gateway == gateway and r.started_at > cut_at and r.ended_at < heal_at
        ]
        for kind, code, what in calls:
            inside[kind] += 1
            if code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                load.violation(
                    f"minority gateway {gateway} answered {code} to {what} "
                    f"({cut_at - nemesis.start:.2f}..{heal_at - nemesis.start:.2f} s)"
                )
    codes = {
        code: sum(1 for w in load.issued if w.code == code)
        for code in sorted({w.code for w in load.issued})
    }
    nemesis.say(
        f"minority calls started and ended inside a partition: {inside}; write outcomes: {codes}"
    )

    resolve_and_check(cluster.gateways[0].address, load)  # type: ignore[arg-type]
    with grpc.insecure_channel(cluster.gateways[1].address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        histories = {a: {t.description for t in list_all(stub, a)} for a in accounts}
    refused_but_applied = [
        w.description
        for w in load.issued
        if not w.keyed and w.code == "UNAVAILABLE" and w.description in histories[w.account_id]
    ]
    if refused_but_applied:
        load.violation(
            f"writes answered UNAVAILABLE (nothing applied) were applied: "
            f"{refused_but_applied[:5]} ({len(refused_but_applied)})"
        )
    digests = cluster.wait_converged()
    nemesis.say(f"replicas identical on all nodes ({len(digests)} shards)")

    print("recovery times (s): min / median / max over cycles")
    for what, times in nemesis.recoveries.items():
        print(f"  {what}: {min(times):.2f} / {statistics.median(times):.2f} / {max(times):.2f}")
    print(
        f"partition cycles survived: {nemesis.cycles}; wall clock "
        f"{time.monotonic() - began:.1f} s in the test body"
    )
    assert not load.violations, "\n".join(load.violations[:20])
    assert nemesis.cycles >= 2
