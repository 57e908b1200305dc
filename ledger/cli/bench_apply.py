"""``ledger-dev bench-apply``: the cost of applying one item on one replica, in-process.

Every command is applied on all three replicas, so the apply path bounds the cluster's item
rate on a shared machine. This measures exactly that path, nothing else:
``ShardStateMachine.apply_encoded`` (decode the entry, dedup request ids, run the core, one
LevelDB WriteBatch) over a fresh LevelDB shard in a temp dir.

Method: ``--accounts`` accounts are created and funded, then optionally ``--preload``
transactions are applied (the ledger's size must not change the per-item cost). Then, for
each ``--items-per-entry`` value, ``--items`` purchases are applied in entries of that size,
each with a fresh request id and idempotency key (as the gateway sends them). The entries are
encoded before the clock starts. The figure is CPU time of the applying thread per item
(``time.thread_time``: other processes on a shared 2-core machine do not count, and neither does
LevelDB's background compaction, which is amortized disk work, not apply), best of
``--repeat`` rounds.
The same entries are applied to a second replica, whose data digest must equal the first's
(replicas stay byte-identical), and each entry is applied twice there (the replay is a no-op).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import random
import tempfile
import time

import click

from ledger import limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage.base import digest_items
from ledger.storage.leveldb import LevelDBShardStore

__all__ = ["ApplyFigures", "bench_apply_command", "measure_apply"]

start_ns = 1_700_000_000_000_000_000
entry_spacing_ns = 1_000_000  # 1 ms of shard clock per entry
funding_amount = 10**15
accounts_max = 100_000
items_max = 1_000_000
preload_max = 10_000_000


@dataclasses.dataclass(frozen=True)
class ApplyFigures:
    items_per_entry: int
    items: int
    best_us_per_item: float
    median_us_per_item: float


class _Shard:
    def __init__(self, path: pathlib.Path) -> None:
        self.store = LevelDBShardStore(path)
        self.machine = ShardStateMachine(self.store)
        self.index = 0

    def apply(self, entry: bytes) -> None:
        self.index += 1
        result = self.machine.apply_encoded(entry, self.index)
        assert result is not None


class _Workload:
    def __init__(self, accounts: int, seed: int) -> None:
        self._rng = random.Random(seed)
        self.accounts = list(range(1, accounts + 1))
        self._serial = 0
        self.now_ns = start_ns

    def setup_entries(self) -> list[bytes]:
        entries = []
        for start in range(0, len(self.accounts), limits.batch_items_max):
            chunk = self.accounts[start : start + limits.batch_items_max]
            entries.append(self._entry([
                pb.Command(now_ns=self.now_ns, create_account=pb.CreateAccount(account_id=a))
                for a in chunk
            ]))
            entries.append(self._entry([
                pb.Command(now_ns=self.now_ns, create_transaction=pb.CreateTransaction(
                    account_id=a, amount=funding_amount, settled=True))
                for a in chunk
            ]))
        return entries

    def purchases(self, items: int, per_entry: int) -> list[bytes]:
        entries = []
        for start in range(0, items, per_entry):
            self.now_ns += entry_spacing_ns
            entries.append(self._entry([self._purchase() for _ in range(min(per_entry, items - start))]))
        return entries

    def _purchase(self) -> pb.Command:
        self._serial += 1
        body = pb.CreateTransaction(
            account_id=self._rng.choice(self.accounts), amount=-self._rng.randint(1, 100),
            description="bench purchase", settled=self._rng.random() < 0.5,
            idempotency_key=b"k%015d" % self._serial,
        )
        return pb.Command(request_id=self._serial.to_bytes(16, "big"), now_ns=self.now_ns,
                          create_transaction=body)

    @staticmethod
    def _entry(commands: list[pb.Command]) -> bytes:
        return pb.CommandBatch(commands=commands).SerializeToString()


def measure_apply(root: pathlib.Path, *, accounts: int, preload: int, items: int,
                  per_entry_sizes: list[int], repeat: int, seed: int = 1) -> list[ApplyFigures]:
    """Figures per entry size; raises AssertionError if the two replicas diverge."""
    workload = _Workload(accounts, seed)
    measured, twin = _Shard(root / "a"), _Shard(root / "b")
    try:
        for entry in workload.setup_entries() + workload.purchases(preload, limits.batch_items_max):
            measured.apply(entry)
            twin.apply(entry)
        figures = []
        for per_entry in per_entry_sizes:
            rounds = []
            for _ in range(repeat):
                entries = workload.purchases(items, per_entry)
                started = time.thread_time()
                for entry in entries:
                    measured.apply(entry)
                rounds.append((time.thread_time() - started) / items * 1e6)
                for entry in entries:
                    twin.apply(entry)
                    assert twin.machine.apply_encoded(entry, twin.index) is None  # a replay
            rounds.sort()
            figures.append(ApplyFigures(per_entry, items, rounds[0], rounds[len(rounds) // 2]))
        assert digest_items(measured.store.items()) == digest_items(twin.store.items()), \
            "replicas diverged"
        return figures
    finally:
        measured.store.close()
        twin.store.close()


@click.command("bench-apply")
@click.option("--accounts", type=click.IntRange(1, accounts_max), default=1_000, show_default=True)
@click.option("--preload", type=click.IntRange(0, preload_max), default=0, show_default=True,
              help="Transactions applied before measuring (a grown ledger).")
@click.option("--items", type=click.IntRange(1, items_max), default=20_000, show_default=True,
              help="Items applied per round.")
@click.option("--items-per-entry", "per_entry", default="1,10,100,1000", show_default=True,
              help="Comma-separated entry sizes (1..1000).")
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_apply_command(accounts: int, preload: int, items: int, per_entry: str, repeat: int,
                        as_json: bool) -> None:
    """Microseconds to apply one item on one replica (ShardStateMachine over LevelDB)."""
    try:
        sizes = [int(part) for part in per_entry.split(",")]
    except ValueError:
        raise click.BadParameter("a comma-separated list of integers",
                                 param_hint="--items-per-entry") from None
    if not sizes or not all(1 <= size <= limits.batch_items_max for size in sizes):
        raise click.BadParameter(f"sizes must be 1..{limits.batch_items_max}",
                                 param_hint="--items-per-entry")
    with tempfile.TemporaryDirectory(prefix="ledger-bench-apply-") as root:
        figures = measure_apply(pathlib.Path(root), accounts=accounts, preload=preload,
                                items=items, per_entry_sizes=sizes, repeat=repeat)
    if as_json:
        click.echo(json.dumps({"accounts": accounts, "preload": preload,
                               "figures": [dataclasses.asdict(f) for f in figures]}))
        return
    click.echo(f"accounts {accounts}, preloaded transactions {preload}, best of {repeat}")
    click.echo(f"{'items/entry':>12} {'us/item best':>13} {'us/item median':>15}")
    for figure in figures:
        click.echo(f"{figure.items_per_entry:12d} {figure.best_us_per_item:13.1f} "
                   f"{figure.median_us_per_item:15.1f}")
