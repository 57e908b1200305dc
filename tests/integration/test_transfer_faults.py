"""Transfers under faults on a real cluster: gateways and a shard leader SIGKILLed under load.

Goal: a transfer is atomic and exactly-once whatever dies while it runs. Every transfer ends
COMPLETED, FAILED or INSUFFICIENT_FUNDS (the resolvers finish the ones whose driver died), a
COMPLETED one shows exactly once on each side, the others moved nothing, a client's retries with
one idempotency key never make two transfers, no hold is left behind, money is conserved, and
``0 <= available <= settled`` holds on every account at every moment we look.

Method: 3 ``ledger-node`` processes and two ``ledger-gateway`` processes over the same config
(tests/harness.py; the second gateway is started here). Twelve accounts over several shards
(some pairs share a shard) are topped up from outside with recorded amounts. Worker threads
send random transfers through either gateway, each call with its own idempotency key (also its
description), and record every attempt; a call that fails UNAVAILABLE or DEADLINE_EXCEEDED is
retried with the same key through the other gateway, like a careful client, except that one
client in three gives up after the first failure (so that only a resolver finishes what its
dead gateway began). Some amounts exceed all the money there is. A sampler reads every account
throughout. The nemesis SIGKILLs and restarts gateway 1, then the node leading the most
shards, then gateway 2 together with another leading node, then gateway 1 again late in the
load (its orphans are still IN_FLIGHT when the load stops). Afterwards: wait until no transfer
is IN_FLIGHT (found through the PENDING debits in the histories, then GetTransfer), learn the
outcome of the calls that never got one by retrying them with their key, then check the
histories, the balances and the replica digests.
Timings are printed for the record, never asserted.
"""

from __future__ import annotations

import pathlib
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from harness import ClusterService, ServiceProcess, free_port

from integration.load import list_all
from ledger import ids
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

Stub = ledger_api_pb2_grpc.LedgerServiceApiStub

account_count = 12
same_shard_pairs = 3  # accounts created on purpose on the shard of an earlier one
worker_count = 6
load_s = 26.0
call_timeout_s = 5.0
attempts_max = 5  # per call: the first try and up to 4 retries with the same key
impatient_share = 0.3  # calls whose client gives up after one failure: resolvers finish
quiesce_timeout_s = 30.0
sample_interval_s = 0.3
RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}
FINAL = {
    api.TRANSFER_STATUS_COMPLETED,
    api.TRANSFER_STATUS_FAILED,
    api.TRANSFER_STATUS_INSUFFICIENT_FUNDS,
}
CHANNEL_OPTIONS = [  # reconnect soon to a restarted gateway (the default backoff grows to 2 min)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


@dataclass
class Call:
    """One client call (a unique key), all its attempts, and the transfer it returned."""

    key: str
    source: str
    target: str
    amount: int
    patient: bool = True  # retries a retryable failure with the same key
    # (sent, answered: seconds from the load's start; gateway index; status code name)
    attempts: list[tuple[float, float, int, str]] = field(default_factory=list)
    transfer: api.Transfer | None = None

    def request(self) -> api.CreateTransferRequest:
        return api.CreateTransferRequest(
            from_account_id=self.source,
            to_account_id=self.target,
            amount=self.amount,
            description=self.key,
            idempotency_key=self.key,
        )


@dataclass
class Gateways:
    processes: list[ServiceProcess]
    channels: list[grpc.Channel]

    @property
    def stubs(self) -> list[Stub]:
        return [Stub(channel) for channel in self.channels]

    def call(self, method: str, request: object, timeout_s: float = 10.0, tries: int = 6) -> Any:
        """A read or a keyed write through whichever gateway answers (retryable codes only)."""
        stubs = self.stubs
        for attempt in range(tries):
            try:
                return getattr(stubs[attempt % len(stubs)], method)(request, timeout=timeout_s)
            except grpc.RpcError as error:
                if error.code() not in RETRYABLE or attempt == tries - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")


@pytest.fixture
def cluster(tmp_path: pathlib.Path) -> Iterator[tuple[ClusterService, Gateways]]:
    service = ClusterService(tmp_path)
    second = ServiceProcess(
        "gateway2",
        "ledger.cli.gateway",
        ["--port", str(free_port()), "--cluster-config", str(service.config_path)],
        tmp_path,
    )
    channels: list[grpc.Channel] = []
    try:
        service.start()
        second.start()
        channels = [
            grpc.insecure_channel(process.address, options=CHANNEL_OPTIONS)
            for process in (service.gateway, second)
        ]
        yield service, Gateways([service.gateway, second], channels)
    finally:
        for channel in channels:
            channel.close()
        second.stop()
        service.stop()


def _shard(account_id: str) -> int:
    return ids.shard_index(ids.parse_account_id(account_id))


def _status_name(transfer: api.Transfer) -> str:
    return api.TransferStatus.Name(transfer.status)


def _seconds(at_ns: int, t0_ns: int) -> float:
    return (at_ns - t0_ns) / 1e9


def _make_accounts(gateways: Gateways, rng: random.Random) -> tuple[list[str], dict[str, int]]:
    """Accounts over several shards, ``same_shard_pairs`` of them sharing a shard, topped up."""

    def create() -> str:
        return str(gateways.call("CreateAccount", api.CreateAccountRequest()).account.id)

    accounts = [create() for _ in range(account_count - same_shard_pairs)]
    for partner in accounts[:same_shard_pairs]:
        for _ in range(300):
            candidate = create()
            if _shard(candidate) == _shard(partner) and candidate not in accounts:
                accounts.append(candidate)
                break
        else:
            raise AssertionError("no account landed on the wanted shard")
    top_ups = {}
    for account in accounts:
        amount = rng.randint(500, 2000)
        created = gateways.call(
            "CreateTransaction",
            api.CreateTransactionRequest(
                account_id=account,
                amount=amount,
                settled=True,
                description=f"top-up {account}",
                idempotency_key=f"top-up {account}",
            ),
        )
        assert created.transaction.status == api.TRANSACTION_STATUS_SETTLED
        top_ups[account] = amount
    return accounts, top_ups


class Load:
    """The workers, the balance sampler and their records."""

    def __init__(self, gateways: Gateways, accounts: list[str], total: int, seed: int) -> None:
        self.gateways = gateways
        self.accounts = accounts
        self.total = total
        self.seed = seed
        self.calls: list[Call] = []
        self.samples = 0
        self.sample_errors = 0
        self.violations: list[str] = []
        self.t0 = time.monotonic()
        self.t0_ns = time.time_ns()
        self._lock = threading.Lock()
        self._stop_workers = threading.Event()
        self._stop_sampler = threading.Event()
        self._workers: list[threading.Thread] = []
        self._sampler: threading.Thread | None = None
        by_shard: dict[int, list[str]] = defaultdict(list)
        for account in accounts:
            by_shard[_shard(account)].append(account)
        self.same_shard = [
            (a, b) for group in by_shard.values() for a in group for b in group if a != b
        ]
        self.cross_shard = [(a, b) for a in accounts for b in accounts if _shard(a) != _shard(b)]
        assert self.same_shard and self.cross_shard

    def start(self) -> None:
        self.t0, self.t0_ns = time.monotonic(), time.time_ns()
        for worker in range(worker_count):
            thread = threading.Thread(target=self._work, args=(worker,), daemon=True)
            thread.start()
            self._workers.append(thread)
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def stop_workers(self) -> None:
        self._stop_workers.set()
        for thread in self._workers:
            thread.join(attempts_max * (call_timeout_s + 1.5))
            assert not thread.is_alive(), "a worker is stuck"

    def stop_sampler(self) -> None:
        self._stop_sampler.set()
        if self._sampler is not None:
            self._sampler.join(30)
            assert not self._sampler.is_alive()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def _work(self, worker: int) -> None:
        rng = random.Random(self.seed * 1000 + worker)
        stubs = self.gateways.stubs
        sequence = 0
        while not self._stop_workers.is_set():
            sequence += 1
            source, target = rng.choice(
                self.same_shard if rng.random() < 0.25 else self.cross_shard
            )
            # 1 in 10 asks for more than all the money there is: INSUFFICIENT_FUNDS for sure.
            amount = self.total + rng.randint(1, 100) if rng.random() < 0.1 else rng.randint(1, 400)
            call = Call(
                f"s{self.seed}-w{worker}-{sequence}",
                source,
                target,
                amount,
                patient=rng.random() >= impatient_share,
            )
            with self._lock:
                self.calls.append(call)
            gateway = rng.randrange(len(stubs))
            for attempt in range(attempts_max if call.patient else 1):
                sent = self.now()
                try:
                    response = stubs[gateway].CreateTransfer(call.request(), timeout=call_timeout_s)
                except grpc.RpcError as error:
                    call.attempts.append((sent, self.now(), gateway, error.code().name))
                    if error.code() not in RETRYABLE:
                        break
                    time.sleep(0.2 * (attempt + 1))
                    gateway = (gateway + 1) % len(stubs)  # a careful client tries another one
                    continue
                call.attempts.append((sent, self.now(), gateway, "OK"))
                call.transfer = response.transfer
                break

    def _sample(self) -> None:
        while not self._stop_sampler.is_set():
            for account in self.accounts:
                try:
                    found = self.gateways.call(
                        "GetAccount",
                        api.GetAccountRequest(account_id=account),
                        timeout_s=3.0,
                        tries=2,
                    ).account
                except grpc.RpcError:
                    self.sample_errors += 1
                    continue
                if not 0 <= found.available_balance <= found.settled_balance:
                    self.violations.append(
                        f"t={self.now():.2f} {account}: available "
                        f"{found.available_balance}, settled "
                        f"{found.settled_balance}"
                    )
            self.samples += 1
            self._stop_sampler.wait(sample_interval_s)


def _most_leading(cluster: ClusterService, exclude: int | None = None) -> int:
    counts = Counter(cluster.leaders().values())
    candidates = [(count, node) for node, count in counts.items() if node != exclude]
    assert candidates, "no node leads a shard"
    return max(candidates)[1]


def _nemesis(
    cluster: ClusterService, gateways: Gateways, load: Load, actions: list[tuple[float, str]]
) -> float:
    """The fault schedule (times from the load's start); returns when the faults stopped."""
    gateway1, gateway2 = gateways.processes

    def at(moment: float, what: str, action: Callable[[], object]) -> None:
        delay = moment - load.now()
        if delay > 0:
            time.sleep(delay)
        action()
        actions.append((load.now(), what))
        print(f"  nemesis t={load.now():6.2f}s  {what}")

    at(3.0, "SIGKILL gateway1", gateway1.kill9)
    at(5.5, "restart gateway1", gateway1.start)
    leader = _most_leading(cluster)
    led = sorted(s for s, n in cluster.leaders().items() if n == leader)
    at(8.0, f"SIGKILL node{leader + 1} (leads shards {led})", cluster.nodes[leader].kill9)
    at(11.0, f"restart node{leader + 1}", cluster.nodes[leader].start)
    at(11.0, "all shards led again", cluster.wait_all_shards_led)
    other = _most_leading(cluster, exclude=leader)
    led = sorted(s for s, n in cluster.leaders().items() if n == other)

    def both() -> None:
        gateway2.kill9()
        cluster.nodes[other].kill9()

    def both_back() -> None:
        cluster.nodes[other].start()
        gateway2.start()

    at(14.0, f"SIGKILL gateway2 and node{other + 1} (leads shards {led}) together", both)
    at(17.0, f"restart node{other + 1} and gateway2", both_back)
    at(17.0, "all shards led again", cluster.wait_all_shards_led)
    # Late, so that the transfers it orphans are still IN_FLIGHT when the load stops.
    at(21.0, "SIGKILL gateway1", gateway1.kill9)
    at(23.5, "restart gateway1", gateway1.start)
    return time.monotonic()


def _histories(gateways: Gateways, accounts: list[str]) -> dict[str, list[api.Transaction]]:
    stub = gateways.stubs[0]
    return {account: list_all(stub, account, page_size=100) for account in accounts}


def test_transfers_stay_atomic_when_gateways_and_leaders_die(
    cluster: tuple[ClusterService, Gateways],
) -> None:
    service, gateways = cluster
    try:
        _run(service, gateways)
    except BaseException:
        print(f"--- gateway2 ---\n{gateways.processes[1].tail_log()}")
        raise


def _run(service: ClusterService, gateways: Gateways) -> None:
    seed = random.randrange(1_000_000)
    print(f"\nseed {seed}")
    rng = random.Random(seed)
    accounts, top_ups = _make_accounts(gateways, rng)
    total = sum(top_ups.values())
    shards = Counter(_shard(a) for a in accounts)
    print(f"{len(accounts)} accounts on {len(shards)} shards, topped up with {total} in all")

    load = Load(gateways, accounts, total, seed)
    actions: list[tuple[float, str]] = []
    load.start()
    faults_stopped = _nemesis(service, gateways, load, actions)
    faults_stopped_ns = time.time_ns()
    time.sleep(max(0.0, load_s - load.now()))
    load.stop_workers()
    load_stopped = time.monotonic()
    print(f"load: {len(load.calls)} calls in {load.now():.1f} s")

    # -- quiescence: leaders everywhere, the resolvers finish what their drivers left --------
    service.wait_all_shards_led()
    assert all(process.alive() for process in gateways.processes)
    unknown = [call for call in load.calls if call.transfer is None]
    known = {call.transfer.id for call in load.calls if call.transfer}
    unknown_keys = {call.key for call in unknown}
    in_flight: dict[str, float] = {}  # transfer id -> when found final (monotonic)
    strangers: dict[str, str] = {}  # transfer id no call returned -> its key (description)
    for history in _histories(gateways, accounts).values():
        for transaction in history:
            if transaction.transfer_id and transaction.amount < 0:
                if transaction.status == api.TRANSACTION_STATUS_PENDING:
                    in_flight[transaction.transfer_id] = 0.0
                if transaction.transfer_id not in known:
                    strangers[transaction.transfer_id] = transaction.description
    assert set(strangers.values()) <= unknown_keys, (
        "a transfer whose key is no unknown-outcome call's: "
        f"{sorted(set(strangers.values()) - unknown_keys)[:5]}"
    )
    pending = set(in_flight)
    resolved_at: dict[str, api.Transfer] = {}
    deadline = time.monotonic() + quiesce_timeout_s
    while pending:
        for transfer_id in sorted(pending):
            found = gateways.call("GetTransfer", api.GetTransferRequest(transfer_id=transfer_id))
            if found.transfer.status in FINAL:
                pending.discard(transfer_id)
                in_flight[transfer_id] = time.monotonic()
                resolved_at[transfer_id] = found.transfer
        if pending:
            assert time.monotonic() < deadline, f"still IN_FLIGHT: {sorted(pending)}"
            time.sleep(0.5)
    for transfer in sorted(resolved_at.values(), key=lambda t: t.created_at):
        print(
            f"  IN_FLIGHT after the load: {transfer.id} (key {transfer.description}, shards "
            f"{_shard(transfer.from_account_id)} -> {_shard(transfer.to_account_id)}): begun "
            f"t={(transfer.created_at - load.t0_ns) / 1e9:.2f}s, final "
            f"t={(transfer.updated_at - load.t0_ns) / 1e9:.2f}s (stamps)"
        )
    if in_flight:
        last = max(in_flight.values())
        last_updated_ns = max(t.updated_at for t in resolved_at.values())
        print(
            f"{len(in_flight)} transfer(s) IN_FLIGHT after the load; the last one found final "
            f"{last - faults_stopped:.2f} s after the faults stopped "
            f"({last - load_stopped:.2f} s after the load); its last step was stamped "
            f"{(last_updated_ns - faults_stopped_ns) / 1e9:.2f} s after the faults stopped"
        )
    else:
        print("no transfer was IN_FLIGHT after the load")

    # -- the calls whose outcome the client never learned: retry with the same key ----------
    for call in unknown:
        call.transfer = gateways.call("CreateTransfer", call.request(), timeout_s=15.0).transfer
    by_key = {call.key: call for call in load.calls}
    for transfer_id, key in strangers.items():
        learned = by_key[key].transfer
        assert learned is not None and learned.id == transfer_id, (
            f"the retry of {key} did not return the transfer it had begun",
            transfer_id,
            learned,
        )

    # -- every transfer is final, and GetTransfer agrees with what the call returned ---------
    def fetch(call: Call) -> tuple[Call, api.Transfer]:
        assert call.transfer is not None
        got = gateways.call("GetTransfer", api.GetTransferRequest(transfer_id=call.transfer.id))
        return call, got.transfer

    with ThreadPoolExecutor(8) as pool:
        fetched = list(pool.map(fetch, load.calls))
    load.stop_sampler()
    for call, transfer in fetched:
        assert call.transfer is not None
        assert transfer.status in FINAL, transfer
        assert transfer == call.transfer, (call.key, call.transfer, transfer)
        assert (
            transfer.from_account_id,
            transfer.to_account_id,
            transfer.amount,
            transfer.description,
        ) == (call.source, call.target, call.amount, call.key)
    ids_by_call = Counter(call.transfer.id for call in load.calls if call.transfer)
    assert max(ids_by_call.values()) == 1, "two calls got the same transfer"
    by_id = {call.transfer.id: call for call in load.calls if call.transfer}

    # -- histories: each side exactly once, nothing unknown, nothing doubled -----------------
    histories = _histories(gateways, accounts)
    sides: dict[str, list[tuple[str, api.Transaction]]] = defaultdict(list)
    for account, history in histories.items():
        outside = [(t.amount, t.status, t.description) for t in history if not t.transfer_id]
        assert outside == [
            (top_ups[account], api.TRANSACTION_STATUS_SETTLED, f"top-up {account}")
        ], (account, outside)
        for transaction in history:
            if transaction.transfer_id:
                sides[transaction.transfer_id].append((account, transaction))
    foreign = sorted(set(sides) - set(by_id))
    assert not foreign, (
        "transactions of transfers no call returned: "
        f"{[(i, [t.description for _, t in sides[i]]) for i in foreign]}"
    )
    debit_keys = Counter(
        t.description for entries in sides.values() for _, t in entries if t.amount < 0
    )
    assert max(debit_keys.values(), default=1) == 1, "one key, two transfers"
    expected_settled = dict(top_ups)
    for transfer_id, call in by_id.items():
        final = call.transfer
        assert final is not None
        debits = [(a, t.id, t.amount, t.status) for a, t in sides[transfer_id] if t.amount < 0]
        credits = [(a, t.id, t.amount, t.status) for a, t in sides[transfer_id] if t.amount > 0]
        assert all(t.description == call.key for _, t in sides[transfer_id])
        if final.status == api.TRANSFER_STATUS_COMPLETED:
            assert debits == [
                (
                    call.source,
                    final.debit_transaction_id,
                    -call.amount,
                    api.TRANSACTION_STATUS_SETTLED,
                )
            ], (final, debits)
            assert credits == [
                (
                    call.target,
                    final.credit_transaction_id,
                    call.amount,
                    api.TRANSACTION_STATUS_SETTLED,
                )
            ], (final, credits)
            expected_settled[call.source] -= call.amount
            expected_settled[call.target] += call.amount
        else:
            debit_status = (
                api.TRANSACTION_STATUS_INSUFFICIENT_FUNDS
                if final.status == api.TRANSFER_STATUS_INSUFFICIENT_FUNDS
                else api.TRANSACTION_STATUS_CANCELLED
            )
            assert debits == [
                (call.source, final.debit_transaction_id, -call.amount, debit_status)
            ], (final, debits)
            assert credits == [] and not final.credit_transaction_id, (final, credits)

    # -- balances: conserved, no hold left, as the completed transfers say -------------------
    balances = {
        account: gateways.call("GetAccount", api.GetAccountRequest(account_id=account)).account
        for account in accounts
    }
    for account, found in balances.items():
        assert found.available_balance == found.settled_balance, (account, found)
        assert found.settled_balance == expected_settled[account], (account, found)
        assert found.settled_balance == sum(
            t.amount for t in histories[account] if t.status == api.TRANSACTION_STATUS_SETTLED
        )
    assert sum(found.settled_balance for found in balances.values()) == total
    assert not load.violations, f"0 <= available <= settled broken: {load.violations[:5]}"
    service.wait_converged()

    # -- the record ---------------------------------------------------------------------------
    statuses = Counter(
        api.TransferStatus.Name(call.transfer.status) for call in load.calls if call.transfer
    )
    codes = Counter(code for call in load.calls for *_, code in call.attempts)
    retried = sum(1 for call in load.calls if len(call.attempts) > 1)
    same = sum(1 for call in load.calls if _shard(call.source) == _shard(call.target))
    print(f"transfers by status: {dict(statuses)} ({same} on one shard)")
    print(
        f"attempts by outcome: {dict(codes)}; {retried} call(s) retried with their key; "
        f"{sum(not c.patient for c in load.calls)} impatient call(s); "
        f"{len(unknown)} outcome(s) unknown after the load, learned by a retry: "
        f"{dict(Counter(_status_name(c.transfer) for c in unknown if c.transfer))}"
    )
    slow = sorted(
        (
            c.transfer
            for c in load.calls
            if c.transfer and c.transfer.updated_at - c.transfer.created_at > 2e9
        ),
        key=lambda t: t.created_at,
    )
    if slow:
        print(
            f"{len(slow)} transfer(s) took over 2 s from begin to final (begun -> final, "
            "seconds from the load's start): "
            + ", ".join(
                f"{_seconds(t.created_at, load.t0_ns):.2f} -> "
                f"{_seconds(t.updated_at, load.t0_ns):.2f}"
                for t in slow
            )
        )
        print(
            f"the last of them became final "
            f"{(max(t.updated_at for t in slow) - faults_stopped_ns) / 1e9:+.2f} s from when "
            "the faults stopped"
        )
    resumed = [
        c
        for c in load.calls
        if c.transfer
        and len(c.attempts) > 1
        and c.transfer.created_at < load.t0_ns + c.attempts[0][1] * 1e9
    ]
    print(
        f"{len(resumed)} retried call(s) got back the transfer their failed first attempt had begun"
    )
    print(
        f"of the {len(unknown)} unknown outcomes, {len(strangers)} had begun during the load "
        f"(the others began with the retry after it)"
    )
    # On a healthy cluster a call should not take seconds; one that does is printed with its
    # transfer's stamps (begun, final) to tell which step waited.
    calm = faults_stopped - load.t0 + 1.0  # a second after the last restart
    late = [
        c
        for c in load.calls
        if c.attempts and c.attempts[0][0] > calm and c.attempts[-1][1] - c.attempts[0][0] > 2.0
    ]
    print(
        f"{len(late)} call(s) sent after t={calm:.2f}s (faults over) took over 2 s"
        + "".join(
            f"\n  {c.key} shards {_shard(c.source)}->{_shard(c.target)} attempts (sent, answered, "
            f"gateway, code) "
            f"{[(round(a, 2), round(b, 2), g, code) for a, b, g, code in c.attempts]}"
            f"; transfer begun t={(c.transfer.created_at - load.t0_ns) / 1e9:.2f}s, final "
            f"t={(c.transfer.updated_at - load.t0_ns) / 1e9:.2f}s"
            for c in late
            if c.transfer
        )
    )
    print(
        f"balance samples: {load.samples} rounds over {len(accounts)} accounts, "
        f"{load.sample_errors} read(s) failed, {len(load.violations)} violation(s)"
    )
    print("nemesis: " + "; ".join(f"t={t:.2f}s {what}" for t, what in actions))
    for moment, what in actions:
        if what.startswith("SIGKILL gateway"):
            cut = [
                c
                for c in load.calls
                for sent, answered, _, code in c.attempts
                if sent < moment <= answered + 0.05 and code == "UNAVAILABLE"
            ]
            print(f"  {what} at t={moment:.2f}s cut {len(cut)} call(s) mid-way")
    print(f"settled total {total} == top-ups {total}; replicas converged")
    assert statuses["TRANSFER_STATUS_COMPLETED"] and statuses["TRANSFER_STATUS_INSUFFICIENT_FUNDS"]
    assert not statuses["TRANSFER_STATUS_FAILED"], "a credit was refused: every account exists"
    unexpected = set(codes) - {"OK"} - {code.name for code in RETRYABLE}
    assert not unexpected, f"calls failed with {unexpected}"
