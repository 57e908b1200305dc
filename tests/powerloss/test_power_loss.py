"""Power loss of the whole cluster at once: every acknowledged write must survive.

Goal: an acknowledged write is on stable storage on a majority of replicas, so that losing power
on all three nodes at the same moment loses none of them, applies none twice, and the replicas
still converge; and the test itself can fail: with ``--unsafe-no-fsync`` (the journal never
fsync'd) the same scenario must lose acknowledged writes.

Method: the nodes' data dirs live on a lazyfs mount (tests/powerloss/lazyfs.py), a filesystem
that keeps every file's data in its daemon's memory until the file is fsync'd. The cluster
(tests/harness.py) keeps its config and logs outside the mount; ``ROOT/data`` is a symlink to the
mount point, so ``node_data_dir`` is on it. A recording load (tests/integration/load.py) runs,
then the power goes: SIGKILL of every node and the gateway, then of the lazyfs daemon (all data
not fsync'd is gone, the dead mount is detached). A fresh lazyfs serves the same backing dir, the
cluster restarts, and ``resolve_and_check`` checks the history of every account, then the shard
digests of the three nodes are compared. The standalone server gets the same two tests (its
LevelDBs are synced per group commit). Timings are printed, never asserted.
"""

from __future__ import annotations

import pathlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from harness import ClusterService, StandaloneService
from integration.load import LoadRecorder, resolve_and_check

from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc
from powerloss.lazyfs import LazyFS, fuse_unavailable_reason

accounts_per_test = 24
load_seconds = 12.0
# Small enough that every shard compacts (synced LevelDB, journal cut) a few times under load,
# so restarts start from a snapshot marker plus a journal tail, not from the first entry.
compaction_entries = 100
restart_timeout_s = 30.0
UNSAFE_FLAG = "--unsafe-no-fsync"
# How lost data can show after the restart: the history check fails (AssertionError), an
# account is gone (grpc NOT_FOUND), a node refuses its damaged data and exits (RuntimeError from
# ServiceProcess.start) or never gets a leader or converges (TimeoutError).
LOSS_SHOWS_AS = (AssertionError, grpc.RpcError, RuntimeError, TimeoutError)


@dataclass
class PoweredCluster:
    cluster: ClusterService
    fs: LazyFS

    def logs(self) -> str:
        parts = [
            f"--- {p.name} ---\n{p.tail_log()}" for p in [*self.cluster.nodes, self.cluster.gateway]
        ]
        return "\n".join([*parts, f"--- lazyfs ---\n{self.fs.tail_log()}"])


def _node_flag_exists(flag: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli.node", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return flag in result.stdout


@pytest.fixture
def powered(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Iterator[PoweredCluster]:
    """A cluster whose data dirs are on lazyfs; ``request.param``: extra ledger-node args."""
    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    extra_args: list[str] = list(getattr(request, "param", []))
    if UNSAFE_FLAG in extra_args and not _node_flag_exists(UNSAFE_FLAG):
        pytest.skip(f"ledger-node has no {UNSAFE_FLAG} option yet")
    fs = LazyFS(tmp_path / "backing", tmp_path / "mnt")
    root = tmp_path / "cluster"
    root.mkdir()
    (root / "data").symlink_to(fs.mountpoint, target_is_directory=True)
    fs.start()
    cluster = ClusterService(
        root, node_args=["--compaction-entries", str(compaction_entries), *extra_args]
    )
    setup = PoweredCluster(cluster, fs)
    try:
        cluster.start()
        yield setup
    except BaseException:
        print(setup.logs())
        raise
    finally:
        cluster.stop()
        fs.stop()


def _accounts(address: str, count: int) -> list[str]:
    with grpc.insecure_channel(address) as channel:
        stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)
        return [
            stub.CreateAccount(api.CreateAccountRequest(), timeout=10).account.id
            for _ in range(count)
        ]


def _load_then_lose_power(powered: PoweredCluster) -> LoadRecorder:
    """Load for ``load_seconds``, then SIGKILL every process and the filesystem, mid-load."""
    cluster = powered.cluster
    recorder = LoadRecorder(cluster.address, _accounts(cluster.address, accounts_per_test))
    recorder.start()
    time.sleep(load_seconds)
    processes = [*cluster.nodes, cluster.gateway]
    for process in processes:  # all at once, then reap
        process.signal(signal.SIGKILL)
    for process in processes:
        process.kill9()
    powered.fs.power_loss()
    recorder.stop()
    acked = recorder.acked()
    print(f"\n{len(acked)} acknowledged of {len(recorder.issued)} issued before the power loss")
    assert len(acked) > 100, "too little load to prove anything"
    return recorder


def _restart_and_check(powered: PoweredCluster, recorder: LoadRecorder) -> None:
    cluster = powered.cluster
    started_at = time.monotonic()
    powered.fs.start()
    for process in [*cluster.nodes, cluster.gateway]:
        process.start()
    cluster.wait_all_shards_led(timeout_s=restart_timeout_s)
    print(f"every shard led {time.monotonic() - started_at:.1f} s after the power came back")
    resolve_and_check(cluster.address, recorder)
    cluster.wait_converged(timeout_s=restart_timeout_s)
    print(
        f"history checked and replicas converged "
        f"{time.monotonic() - started_at:.1f} s after the power came back"
    )


def test_power_loss_of_every_node_loses_no_acknowledged_write(powered: PoweredCluster) -> None:
    recorder = _load_then_lose_power(powered)
    _restart_and_check(powered, recorder)


@pytest.mark.parametrize("powered", [[UNSAFE_FLAG]], indirect=True, ids=["unsafe-no-fsync"])
def test_without_fsync_a_power_loss_loses_acknowledged_writes(powered: PoweredCluster) -> None:
    """The proof that the test above can fail: the same scenario without journal syncs."""
    recorder = _load_then_lose_power(powered)
    with pytest.raises(LOSS_SHOWS_AS) as failure:
        _restart_and_check(powered, recorder)
    print(f"as expected, the loss was detected: {_describe(failure.value)}")


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.RpcError):
        return f"{error.code()}: {error.details()}"
    lines = str(error).splitlines() or [""]
    return f"{type(error).__name__}: " + lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else "")


# -- the standalone server: the same promise, one process, no journal ----------------------------


@pytest.fixture
def powered_standalone(
    request: pytest.FixtureRequest, tmp_path: pathlib.Path
) -> Iterator[tuple[StandaloneService, LazyFS]]:
    """``ledger-standalone`` whose data dir is on lazyfs; ``request.param``: extra args."""
    reason = fuse_unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    fs = LazyFS(tmp_path / "backing", tmp_path / "mnt")
    root = tmp_path / "standalone"
    root.mkdir()
    (root / "standalone-data").symlink_to(fs.mountpoint, target_is_directory=True)
    fs.start()
    server = StandaloneService(root, server_args=list(getattr(request, "param", [])))
    try:
        server.start()
        yield server, fs
    except BaseException:
        print(f"--- standalone ---\n{server.process.tail_log()}\n--- lazyfs ---\n{fs.tail_log()}")
        raise
    finally:
        server.stop()
        fs.stop()


def _standalone_power_cycle(server: StandaloneService, fs: LazyFS) -> None:
    recorder = LoadRecorder(server.address, _accounts(server.address, accounts_per_test))
    recorder.start()
    time.sleep(load_seconds / 2)
    server.kill9()
    fs.power_loss()
    recorder.stop()
    print(f"\n{len(recorder.acked())} acknowledged of {len(recorder.issued)} issued")
    assert len(recorder.acked()) > 100, "too little load to prove anything"
    fs.start()
    server.start()
    resolve_and_check(server.address, recorder)


def test_power_loss_of_the_standalone_server_loses_no_acknowledged_write(
    powered_standalone: tuple[StandaloneService, LazyFS],
) -> None:
    _standalone_power_cycle(*powered_standalone)


@pytest.mark.parametrize(
    "powered_standalone", [[UNSAFE_FLAG]], indirect=True, ids=["unsafe-no-fsync"]
)
def test_without_fsync_the_standalone_server_loses_acknowledged_writes(
    powered_standalone: tuple[StandaloneService, LazyFS],
) -> None:
    with pytest.raises(LOSS_SHOWS_AS) as failure:
        _standalone_power_cycle(*powered_standalone)
    print(f"as expected, the loss was detected: {_describe(failure.value)}")
