"""Fault tests on a real cluster: SIGKILL, restart, wipe and SIGSTOP nodes under load.

Goal: no acknowledged write is lost or applied twice, writes resume after failover, lagging or
wiped replicas catch up (by log or snapshot), reads are never stale, and replicas converge.
Method: 3 ``ledger-node`` processes and a ``ledger-gateway`` on free ports in a temporary dir
(tests/harness.py), a recording load (tests/integration/load.py), faults through signals, then
the history checks of ``load.resolve_and_check`` and a digest comparison of every shard on every
node. Timings are printed for the record, never asserted.
"""

from __future__ import annotations

import pathlib
import shutil
import signal
import time

import grpc
import pytest
from harness import ClusterService, wait_until

from integration.load import LoadRecorder, resolve_and_check
from ledger import ids
from ledger.config import ClusterConfig
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc, ledger_node_pb2_grpc
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb

accounts_per_test = 24


@pytest.fixture
def cluster(tmp_path: pathlib.Path):  # type: ignore[no-untyped-def]
    service = ClusterService(tmp_path, node_args=["--compaction-entries", "50"])
    try:
        service.start()
        yield service
    except BaseException:
        for process in [*service.nodes, service.gateway]:
            print(f"--- {process.name} ---\n{process.tail_log()}")
        raise
    finally:
        service.stop()


def _stub(address: str) -> ledger_api_pb2_grpc.LedgerServiceApiStub:
    return ledger_api_pb2_grpc.LedgerServiceApiStub(grpc.insecure_channel(address))


def _accounts(address: str, count: int) -> list[str]:
    stub = _stub(address)
    return [
        stub.CreateAccount(api.CreateAccountRequest(), timeout=10).account.id for _ in range(count)
    ]


def _shard_of(account_id: str) -> int:
    return ids.shard_index(ids.parse_account_id(account_id))


def _run_load(
    cluster: ClusterService,
    accounts: list[str],
    seconds: float,
    previous: LoadRecorder | None = None,
) -> LoadRecorder:
    recorder = LoadRecorder(cluster.address, accounts)
    if previous is not None:
        recorder.issued = previous.issued  # one history across load phases
    recorder.start()
    time.sleep(seconds)
    return recorder


def test_leader_sigkill_under_load(cluster: ClusterService) -> None:
    accounts = _accounts(cluster.address, accounts_per_test)
    shard = _shard_of(accounts[0])
    recorder = _run_load(cluster, accounts, 1.5)
    leader = cluster.leaders()[shard]
    killed_at = time.monotonic()
    cluster.nodes[leader].kill9()
    resumed = wait_until(
        lambda: recorder.acked_after(killed_at, shard),
        30,
        what=f"an acknowledged write on shard {shard} after the leader died",
    )
    print(
        f"\nleader SIGKILL -> next ack on shard {shard}: "
        f"{min(i.acked_at for i in resumed) - killed_at:.2f} s"
    )
    time.sleep(1.0)
    recorder.stop()
    assert recorder.acked_after(killed_at)
    restarted_at = time.monotonic()
    cluster.nodes[leader].start()
    resolve_and_check(cluster.address, recorder)
    cluster.wait_converged()
    print(f"restarted node caught up in {time.monotonic() - restarted_at:.2f} s")


def test_follower_restart_and_wipe_restore_by_snapshot(cluster: ClusterService) -> None:
    accounts = _accounts(cluster.address, accounts_per_test)
    follower = 2
    recorder = _run_load(cluster, accounts, 1.0)
    cluster.nodes[follower].kill9()
    time.sleep(2.0)
    cluster.nodes[follower].start()
    time.sleep(1.0)
    recorder.stop()
    resolve_and_check(cluster.address, recorder)
    cluster.wait_converged()

    cluster.nodes[follower].kill9()
    shutil.rmtree(cluster.node_data_dir(follower))
    recorder = _run_load(cluster, accounts, 3.0, previous=recorder)  # > 50 entries: compacted
    recorder.stop()
    restarted_at = time.monotonic()
    cluster.nodes[follower].start()
    resolve_and_check(cluster.address, recorder)
    cluster.wait_converged()
    print(f"\nwiped follower restored and converged in {time.monotonic() - restarted_at:.2f} s")
    log_text = cluster.nodes[follower].log_path.read_text()
    assert "restored snapshot" in log_text


def test_kill_all_nodes_and_restart_changes_nothing(cluster: ClusterService) -> None:
    accounts = _accounts(cluster.address, accounts_per_test)
    recorder = _run_load(cluster, accounts, 2.0)
    recorder.stop()
    before = resolve_and_check(cluster.address, recorder)
    digests_before = cluster.wait_converged()
    stub = _stub(cluster.address)
    histories_before = {
        a: stub.ListTransactions(
            api.ListTransactionsRequest(account_id=a, page_size=1000), timeout=10
        )
        for a in accounts
    }
    cluster.kill9()
    cluster.start()
    after = resolve_and_check(cluster.address, recorder)
    assert after == before
    assert cluster.wait_converged() == digests_before
    for account_id, history in histories_before.items():
        again = stub.ListTransactions(
            api.ListTransactionsRequest(account_id=account_id, page_size=1000), timeout=10
        )
        assert again == history


def _direct_read(
    config: ClusterConfig, address: str, shard: int, account_id: int
) -> node_pb.ReadResponse | None:
    with config.node_channel(address) as channel:
        stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
        request = node_pb.ReadRequest(
            shard=shard,
            queries=[pb.Query(get_account=pb.GetAccount(account_id=account_id))],
            timeout_ms=1000,
        )
        try:
            return stub.Read(request, timeout=3)
        except grpc.RpcError:
            return None


def test_paused_leader_serves_no_stale_read(cluster: ClusterService) -> None:
    stub = _stub(cluster.address)
    account = _accounts(cluster.address, 1)[0]
    shard = _shard_of(account)
    numeric_id = ids.parse_account_id(account)
    stub.CreateTransaction(
        api.CreateTransactionRequest(account_id=account, amount=5, settled=True), timeout=10
    )
    old_leader = cluster.leaders()[shard]
    old_address = cluster.config.nodes[old_leader].address
    cluster.nodes[old_leader].signal(signal.SIGSTOP)
    try:
        paused_at = time.monotonic()
        stub.CreateTransaction(
            api.CreateTransactionRequest(account_id=account, amount=7, settled=True), timeout=30
        )
        print(
            f"\nSIGSTOP leader -> next ack on shard {shard}: {time.monotonic() - paused_at:.2f} s"
        )
        balance = stub.GetAccount(api.GetAccountRequest(account_id=account), timeout=10).account
        assert balance.settled_balance == 12
    finally:
        cluster.nodes[old_leader].signal(signal.SIGCONT)
    # The resumed old leader may still believe it leads: it must refuse, never answer 5.
    answers = 0
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        response = _direct_read(cluster.config, old_address, shard, numeric_id)
        if response is not None and response.outcome.refusal == node_pb.REFUSAL_NONE:
            answers += 1
            assert response.outcome.results[0].account.settled_balance == 12
    balance = stub.GetAccount(api.GetAccountRequest(account_id=account), timeout=10).account
    assert balance.settled_balance == 12
    cluster.wait_all_shards_led()
    cluster.wait_converged()
