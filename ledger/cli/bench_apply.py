"""``ledger-dev bench-apply``: the cost of applying one item on one replica, in-process.

The apply path runs on all three replicas, so it bounds the cluster's item rate on a shared
machine. This measures exactly that path, nothing else, three ways, each over its own fresh
LevelDB shard in a temp dir:

* **re-execute**: ``ShardStateMachine.apply_encoded`` (decode the entry, dedup request ids, run
  the core, one LevelDB WriteBatch), what every replica would do without write sets and what
  the standalone server does;
* **leader**: ``LeaderExecutor.prepare`` (the same execution, once) plus applying the
  resulting write set, what a shard leader does;
* **follower**: ``apply_write_set``, what the two other replicas do.

Method: ``--accounts`` accounts are created and funded, then optionally ``--preload``
transactions are applied (the ledger's size must not change the per-item cost). Then, for
each ``--items-per-entry`` value, ``--items`` purchases are applied in entries of that size,
each with a fresh request id and idempotency key (as the gateway sends them). The entries are
encoded before the clock starts. The figure is CPU time of the applying thread per item
(``time.thread_time``: other processes on a shared 2-core machine do not count, and neither does
LevelDB's background compaction, which is amortized disk work, not apply), best of
``--repeat`` rounds.
All three shards must end with the same data digest (replicas stay byte-identical whichever
way they applied), and a replayed write set is checked to be a no-op.
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
from ledger.replication.leader_executor import LeaderExecutor
from ledger.replication.state_machine import WRITE_SET_APPLIED, ShardStateMachine
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
    """Microseconds of CPU per item: best and median round, for each way of applying."""

    items_per_entry: int
    items: int
    reexecute_us: tuple[float, float]  # every replica runs the commands (standalone's path)
    leader_us: tuple[float, float]  # the leader executes once and applies its write set
    follower_us: tuple[float, float]  # a follower applies the write set


class _Shard:
    def __init__(self, path: pathlib.Path) -> None:
        self.store = LevelDBShardStore(path)
        self.machine = ShardStateMachine(self.store)
        self.executor = LeaderExecutor(self.machine)
        self.index = 0

    def apply(self, entry: bytes) -> None:
        self.index += 1
        assert self.machine.apply_encoded(entry, self.index) is not None

    def lead(self, entry: bytes) -> bytes:
        """Execute a CommandBatch entry once and apply its write set; returns the write set."""
        prepared = self.executor.prepare(pb.CommandBatch.FromString(entry).commands)
        self.apply_write_set(prepared.entry)
        self.executor.applied(prepared.write_set_id)
        return prepared.entry

    def apply_write_set(self, entry: bytes) -> None:
        self.index += 1
        assert self.machine.apply_write_set(entry, self.index) == WRITE_SET_APPLIED


def _best_and_median(rounds: list[float]) -> tuple[float, float]:
    ordered = sorted(rounds)
    return ordered[0], ordered[len(ordered) // 2]


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
            entries.append(
                self._entry(
                    [
                        pb.Command(
                            now_ns=self.now_ns, create_account=pb.CreateAccount(account_id=a)
                        )
                        for a in chunk
                    ]
                )
            )
            entries.append(
                self._entry(
                    [
                        pb.Command(
                            now_ns=self.now_ns,
                            create_transaction=pb.CreateTransaction(
                                account_id=a, amount=funding_amount, settled=True
                            ),
                        )
                        for a in chunk
                    ]
                )
            )
        return entries

    def purchases(self, items: int, per_entry: int) -> list[bytes]:
        entries = []
        for start in range(0, items, per_entry):
            self.now_ns += entry_spacing_ns
            count = min(per_entry, items - start)
            entries.append(self._entry([self._purchase() for _ in range(count)]))
        return entries

    def _purchase(self) -> pb.Command:
        self._serial += 1
        body = pb.CreateTransaction(
            account_id=self._rng.choice(self.accounts),
            amount=-self._rng.randint(1, 100),
            description="bench purchase",
            settled=self._rng.random() < 0.5,
            idempotency_key=b"k%015d" % self._serial,
        )
        return pb.Command(
            request_id=self._serial.to_bytes(16, "big"), now_ns=self.now_ns, create_transaction=body
        )

    @staticmethod
    def _entry(commands: list[pb.Command]) -> bytes:
        return pb.CommandBatch(commands=commands).SerializeToString()


def measure_apply(
    root: pathlib.Path,
    *,
    accounts: int,
    preload: int,
    items: int,
    per_entry_sizes: list[int],
    repeat: int,
    seed: int = 1,
) -> list[ApplyFigures]:
    """Figures per entry size; raises AssertionError if the replicas diverge."""
    workload = _Workload(accounts, seed)
    reexecuting, leader, follower = (_Shard(root / name) for name in ("a", "b", "c"))
    try:
        for entry in workload.setup_entries() + workload.purchases(preload, limits.batch_items_max):
            reexecuting.apply(entry)
            follower.apply_write_set(leader.lead(entry))
        figures = []
        for per_entry in per_entry_sizes:
            rounds: tuple[list[float], list[float], list[float]] = ([], [], [])
            for _ in range(repeat):
                entries = workload.purchases(items, per_entry)
                write_sets: list[bytes] = []
                started = time.thread_time()
                for entry in entries:
                    reexecuting.apply(entry)
                lead_started = time.thread_time()
                write_sets.extend(leader.lead(entry) for entry in entries)
                follow_started = time.thread_time()
                for write_set in write_sets:
                    follower.apply_write_set(write_set)
                ended = time.thread_time()
                rounds[0].append(lead_started - started)
                rounds[1].append(follow_started - lead_started)
                rounds[2].append(ended - follow_started)
                assert follower.machine.apply_write_set(write_sets[-1], follower.index) is None
            per_item = [[seconds / items * 1e6 for seconds in kind] for kind in rounds]
            figures.append(ApplyFigures(per_entry, items, *(_best_and_median(r) for r in per_item)))
        digests = {digest_items(shard.store.items()) for shard in (reexecuting, leader, follower)}
        assert len(digests) == 1, "replicas diverged"
        return figures
    finally:
        for shard in (reexecuting, leader, follower):
            shard.store.close()


@click.command("bench-apply")
@click.option("--accounts", type=click.IntRange(1, accounts_max), default=1_000, show_default=True)
@click.option(
    "--preload",
    type=click.IntRange(0, preload_max),
    default=0,
    show_default=True,
    help="Transactions applied before measuring (a grown ledger).",
)
@click.option(
    "--items",
    type=click.IntRange(1, items_max),
    default=20_000,
    show_default=True,
    help="Items applied per round.",
)
@click.option(
    "--items-per-entry",
    "per_entry",
    default="1,10,100,1000",
    show_default=True,
    help="Comma-separated entry sizes (1..1000).",
)
@click.option("--repeat", type=click.IntRange(1, 20), default=3, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def bench_apply_command(
    accounts: int, preload: int, items: int, per_entry: str, repeat: int, as_json: bool
) -> None:
    """Microseconds to apply one item on one replica (ShardStateMachine over LevelDB)."""
    try:
        sizes = [int(part) for part in per_entry.split(",")]
    except ValueError:
        raise click.BadParameter(
            "a comma-separated list of integers", param_hint="--items-per-entry"
        ) from None
    if not sizes or not all(1 <= size <= limits.batch_items_max for size in sizes):
        raise click.BadParameter(
            f"sizes must be 1..{limits.batch_items_max}", param_hint="--items-per-entry"
        )
    with tempfile.TemporaryDirectory(prefix="ledger-bench-apply-") as root:
        figures = measure_apply(
            pathlib.Path(root),
            accounts=accounts,
            preload=preload,
            items=items,
            per_entry_sizes=sizes,
            repeat=repeat,
        )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "accounts": accounts,
                    "preload": preload,
                    "figures": [dataclasses.asdict(f) for f in figures],
                }
            )
        )
        return
    click.echo(
        f"accounts {accounts}, preloaded transactions {preload}; "
        f"CPU us per item, best / median of {repeat}"
    )
    click.echo(f"{'items/entry':>12} {'re-execute':>14} {'leader':>14} {'follower':>14}")
    for figure in figures:
        cells = [
            f"{best:6.1f} /{median:6.1f}"
            for best, median in (figure.reexecute_us, figure.leader_us, figure.follower_us)
        ]
        click.echo(f"{figure.items_per_entry:12d} " + " ".join(f"{cell:>14}" for cell in cells))
