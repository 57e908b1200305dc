"""``ledger-dev bench``: a closed-loop gRPC load generator against a gateway.

Why it exists: performance claims must come from a command anyone can rerun, not
from timed unit tests. This command is that command.

Method (decisions written down here):

* **Closed loop by default.** ``--concurrency`` worker coroutines each keep exactly one call in
  flight, so the offered load adapts to the server: the figures are throughput at that
  concurrency and the latency seen by those callers.
* **Open loop with ``--rate R``.** Calls are scheduled at R per second (one shared timetable,
  at most ``--concurrency`` in flight), and latency is measured from each call's *scheduled*
  start, so a server that falls behind shows its queueing delay instead of hiding it
  (coordinated omission).
* **Setup, then warmup, then the measured window.** ``--accounts`` accounts are created through
  ``CreateAccounts`` (chunks of ``batch_items_max``, ``setup_calls_max`` chunks in flight) and each
  gets one settled top-up of ``seed_topup_amount`` through ``CreateTransactions``, so that the
  small purchases and transfers of the run (``purchase_amount_min..max``) normally stay
  SETTLED/PENDING and COMPLETED (transfers only move money between bench accounts). A
  setup item that fails ends the command with one line: the figures would be about another
  load. Warmup calls run like measured ones but are not recorded (connections, caches and
  LevelDB get warm).
* **What is counted.** An op belongs to the measured window when it *starts* in it; workers stop
  starting ops when the window ends and the calls in flight are drained and still recorded, so
  no slow tail is silently dropped. Rates divide by the time from the start of the window to the
  end of that drain. ``count`` and latencies are for calls that returned OK; failed calls are
  counted by gRPC status code name. A purchase answered with status INSUFFICIENT_FUNDS is an OK
  call (the server stored it).
* **Batches** (``--batch N``, 1..``batch_items_max``). ``create_settled`` / ``create_pending``
  ops become one ``CreateTransactions`` call of N purchases, each on its own random bench
  account; every in-flight slot (``--concurrency``) carries one such call. A *call* is still the
  unit of ``ops``, ``ops_per_s`` and the latency percentiles (latency is per call, not per item).
  ``items`` / ``items_per_s`` count the transactions created OK: the OK items of a batch call, or
  1 for each OK single call (so without ``--batch`` items equal ops, and a mixed run's total
  stays meaningful). An item that fails inside an OK call is counted in ``item_errors`` by the
  ``grpc.StatusCode`` name of its ``ItemStatus.code``, apart from ``errors`` (whole calls that
  failed; their items are not counted at all).
* **Op kinds** (``--mix`` weights): ``create_settled`` / ``create_pending`` create a purchase
  (settled / pending) on a random bench account; ``settle`` / ``cancel`` act on a pending
  transaction this bench created earlier (a bounded deque, each id used once), and when none is
  available they run (and are counted as) ``create_pending``; ``get`` is ``GetAccount`` and
  ``list`` is ``ListTransactions`` (first page, default page size) on a random bench account;
  ``transfer`` is one ``CreateTransfer`` of ``purchase_amount_min..max`` between two different
  random bench accounts (so mostly across shards: 15 in 16 pairs), without an idempotency key;
  it needs ``--accounts`` 2 or more and is never batched.
* **Transfer outcomes.** A transfer call that returns OK is counted in ``ops`` and latency like
  any op, whatever the transfer's status; its status is counted apart, in ``by_op.transfer.
  transfers`` (``completed``, ``insufficient_funds``, ``failed``; any other status under its
  own lower-case name) and the same counts in the top-level ``transfers`` (only when the mix has
  transfers). A call that fails (e.g. DEADLINE_EXCEEDED: the transfer finishes on its own) is an
  error by code, like any failed call.
* **Latency** is wall time around each awaited call, ``time.perf_counter()``, all samples kept;
  percentiles are nearest-rank.
* **Channels.** ``--channels`` separate ``grpc.aio`` channels, calls spread round-robin. Each
  channel uses a local subchannel pool, otherwise gRPC would share one TCP connection between
  channels to the same target and the flag would change nothing. Channels are built by
  ``ledger.cli.client`` like every client's: ``--tls-ca`` (TLS), ``--tls-cert/--tls-key``
  (mTLS), ``--token`` / ``$LEDGER_TOKEN`` (bearer token on every call).
* Every call has a deadline of ``call_timeout_s``. A gateway that cannot be reached ends the
  command with one line and a non-zero exit, no traceback. Errors during the run do not change
  the exit status: they are part of the result. Ctrl-C aborts without a result (click's
  "Aborted!", exit 1).
* Output: the table (or ``--json``) on stdout; setup notes and the progress line on stderr, so
  ``--json > file`` stays one clean JSON document.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import json
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import click
import grpc
import grpc.aio

from ledger import limits
from ledger.cli.client import (
    ClientSecurity,
    api_stub,
    client_security_options,
    open_aio_channel,
    unreachable_error,
)
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

__all__ = [
    "OP_KINDS",
    "TRANSFER_OUTCOMES",
    "BenchConfig",
    "BenchResult",
    "LatencyStats",
    "Progress",
    "bench_command",
    "item_code_name",
    "parse_mix",
    "run_bench",
    "transfer_outcome",
]

# --- Limits and defaults, with units.
call_timeout_s = 5.0  # deadline of every call (the gateway's default)
connect_timeout_s = 5.0  # wait for the first channel to become READY before giving up
progress_interval_s = 1.0  # live progress line period on stderr
pending_ids_max = 10_000  # pending transaction ids remembered for settle/cancel
seed_topup_amount = 10**15  # minor units per account: ~10^14 purchases of at most 10
purchase_amount_min = 1  # minor units; purchases are -min..-max
purchase_amount_max = 10
rate_max = 1_000_000.0  # calls/s; far above what one client process can offer
concurrency_max = 10_000  # in-flight calls; more only measures the client's event loop
channels_max = 256
accounts_max = 1_000_000
duration_max_s = 24 * 3600.0
setup_calls_max = 4  # batch calls in flight while creating and seeding accounts
batch_max = limits.batch_items_max  # items per CreateTransactions / CreateAccounts call

GATEWAY_DEFAULT = "localhost:8000"
MIX_DEFAULT = "create_settled=100"
OP_KINDS = ("create_settled", "create_pending", "settle", "cancel", "get", "list", "transfer")
TRANSFER_OUTCOMES = ("completed", "insufficient_funds", "failed")  # always in the JSON, in order
BATCHED_KINDS = ("create_settled", "create_pending")  # the ops that --batch turns into batches
_CODE_NAMES: dict[int, str] = {code.value[0]: code.name for code in grpc.StatusCode}

assert 0 < purchase_amount_min <= purchase_amount_max
assert seed_topup_amount + purchase_amount_max < 2**63  # the seed must not overflow a balance


class LatencyStats:
    """Latency samples (seconds) of one op kind, with nearest-rank percentiles in milliseconds.

    All samples are kept (a float each, ~1M samples is ~8 MB): exact percentiles, no sketch to
    explain. Nearest-rank returns a latency that some call actually had.
    """

    def __init__(self, samples: Sequence[float] = ()) -> None:
        self.samples: list[float] = list(samples)
        self._sorted: list[float] | None = None

    def add(self, seconds: float) -> None:
        self.samples.append(seconds)
        self._sorted = None

    def __len__(self) -> int:
        return len(self.samples)

    @classmethod
    def merged(cls, parts: Sequence[LatencyStats]) -> LatencyStats:
        return cls(list(itertools.chain.from_iterable(part.samples for part in parts)))

    def percentile_ms(self, percent: float) -> float | None:
        """The nearest-rank percentile in ms (rank ceil(p/100 * n), 1-based); None if empty."""
        if not 0 < percent <= 100:
            raise ValueError(f"percentile must be in (0, 100], got {percent}")
        if not self.samples:
            return None
        if self._sorted is None:
            self._sorted = sorted(self.samples)
        rank = max(1, math.ceil(percent / 100 * len(self._sorted)))
        return self._sorted[rank - 1] * 1000.0

    def summary(self, elapsed_s: float, items: int | None = None) -> dict[str, Any]:
        """calls and items (default: one per call) with their rates over ``elapsed_s``, and
        the per-call p50/p95/p99/max in ms (None without samples)."""
        items = len(self.samples) if items is None else items
        return {
            "ops": len(self.samples),
            "ops_per_s": len(self.samples) / elapsed_s if elapsed_s > 0 else 0.0,
            "items": items,
            "items_per_s": items / elapsed_s if elapsed_s > 0 else 0.0,
            "p50_ms": self.percentile_ms(50),
            "p95_ms": self.percentile_ms(95),
            "p99_ms": self.percentile_ms(99),
            "max_ms": self.percentile_ms(100),
        }


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """The command's parameters, validated by click before they get here."""

    gateway: str = GATEWAY_DEFAULT
    concurrency: int = 64
    duration_s: float = 10.0
    warmup_s: float = 2.0
    accounts: int = 64
    mix: dict[str, int] = dataclasses.field(default_factory=lambda: {"create_settled": 100})
    channels: int = 1
    batch: int = 0
    seed: int = 1
    rate: float = 0.0  # calls/s offered; 0 = closed loop
    tls: bool = False  # what the channels used (set from the client options; the token itself
    token: bool = False  # is never part of the config or its JSON)

    def as_json(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["mix"] = dict(self.mix)
        return document


@dataclasses.dataclass
class BenchResult:
    """What the measured window produced: latencies of OK calls and error counts, per op kind."""

    config: BenchConfig
    elapsed_s: float
    latencies: dict[str, LatencyStats]
    errors: dict[str, collections.Counter[str]]
    client_cpu_s: float
    items: dict[str, int] = dataclasses.field(default_factory=dict)
    item_errors: dict[str, collections.Counter[str]] = dataclasses.field(default_factory=dict)
    transfers: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def transfer_outcomes(self) -> dict[str, int]:
        """Transfers by final status: the TRANSFER_OUTCOMES (0 if none), then any other."""
        counts = {outcome: self.transfers.get(outcome, 0) for outcome in TRANSFER_OUTCOMES}
        return counts | dict(
            sorted(
                (outcome, count)
                for outcome, count in self.transfers.items()
                if outcome not in counts
            )
        )

    def as_json(self) -> dict[str, Any]:
        """{params, total, by_op, errors, item_errors[, transfers]}: the ``--json`` document."""
        by_op: dict[str, Any] = {}
        empty: collections.Counter[str] = collections.Counter()
        for kind in OP_KINDS:
            stats = self.latencies[kind]
            errors = self.errors[kind]
            item_errors = self.item_errors.get(kind, empty)
            if len(stats) == 0 and not errors:
                continue
            by_op[kind] = stats.summary(self.elapsed_s, self.items.get(kind)) | {
                "errors": dict(sorted(errors.items())),
                "item_errors": dict(sorted(item_errors.items())),
            }
            if kind == "transfer":
                by_op[kind]["transfers"] = self.transfer_outcomes()
        total_errors: collections.Counter[str] = collections.Counter()
        for errors in self.errors.values():
            total_errors.update(errors)
        total_item_errors: collections.Counter[str] = collections.Counter()
        for errors in self.item_errors.values():
            total_item_errors.update(errors)
        total_items = sum(self.items.get(kind, len(self.latencies[kind])) for kind in OP_KINDS)
        total = LatencyStats.merged(list(self.latencies.values())).summary(
            self.elapsed_s, total_items
        )
        document = {
            "params": self.config.as_json(),
            "elapsed_s": self.elapsed_s,
            "client_cpu_s": self.client_cpu_s,
            "latency_per": "call",
            "total": total,
            "by_op": by_op,
            "errors": dict(sorted(total_errors.items())),
            "item_errors": dict(sorted(total_item_errors.items())),
        }
        if self.config.mix.get("transfer", 0) > 0 or self.transfers:
            document["transfers"] = self.transfer_outcomes()
        return document


def item_code_name(code: int) -> str:
    """The grpc.StatusCode name of an ItemStatus code (``CODE_<n>`` for an unknown number)."""
    return _CODE_NAMES.get(code, f"CODE_{code}")


def transfer_outcome(status: int) -> str:
    """``completed``, ``insufficient_funds``, ``failed`` (or ``in_flight``, ``invalid``,
    ``status_<n>``): a TransferStatus as counted in the result."""
    try:
        name = api.TransferStatus.Name(status)
    except ValueError:
        return f"status_{status}"
    return name.removeprefix("TRANSFER_STATUS_").lower()


def parse_mix(text: str) -> dict[str, int]:
    """``name=weight,...`` into {name: weight}; names from OP_KINDS, weights ints >= 0, sum > 0."""
    mix: dict[str, int] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, weight_text = item.partition("=")
        name = name.strip()
        if not sep:
            raise ValueError(f"{item!r} is not name=weight")
        if name not in OP_KINDS:
            raise ValueError(f"unknown op {name!r}; known: {', '.join(OP_KINDS)}")
        if name in mix:
            raise ValueError(f"op {name!r} given twice")
        try:
            weight = int(weight_text.strip())
        except ValueError:
            raise ValueError(f"weight of {name!r} is not an integer: {weight_text!r}") from None
        if weight < 0:
            raise ValueError(f"weight of {name!r} is negative")
        mix[name] = weight
    if sum(mix.values()) <= 0:
        raise ValueError("the weights must add up to more than 0")
    return mix


def _mix_option(_ctx: click.Context, _param: click.Parameter, value: str) -> dict[str, int]:
    try:
        return parse_mix(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


class Progress:
    """The live progress line on stderr: rewritten in place on a TTY, else one line a second."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.width = 0

    def show(self, text: str) -> None:
        if self.tty:
            padding = " " * max(0, self.width - len(text))
            self.width = len(text)
            click.echo(f"\r{text}{padding}", err=True, nl=False)
        else:
            click.echo(text, err=True)

    def done(self) -> None:
        if self.tty and self.width:
            click.echo(err=True)


@dataclasses.dataclass(frozen=True)
class _Items:
    """What one OK batch call did: items created OK, and the code names of the failed ones."""

    ok: int
    failed: list[str]


@dataclasses.dataclass(frozen=True)
class _TransferDone:
    """What one OK CreateTransfer call did: the transfer's status, as ``transfer_outcome``."""

    outcome: str


class _Bench:
    """One run: channels, accounts, pending ids, the workers and what they record."""

    def __init__(self, config: BenchConfig, security: ClientSecurity | None = None) -> None:
        self.config = config
        self.security = security
        self.rng = random.Random(config.seed)
        self.kinds = [kind for kind in OP_KINDS if config.mix.get(kind, 0) > 0]
        self.weights = [config.mix[kind] for kind in self.kinds]
        self.channels: list[grpc.aio.Channel] = []
        self.stubs: list[ledger_api_pb2_grpc.LedgerServiceApiStub] = []
        self.next_stub = itertools.cycle(range(config.channels))
        self.account_ids: list[str] = []
        self.pending_ids: collections.deque[str] = collections.deque(maxlen=pending_ids_max)
        self.latencies = {kind: LatencyStats() for kind in OP_KINDS}
        self.errors: dict[str, collections.Counter[str]] = {
            kind: collections.Counter() for kind in OP_KINDS
        }
        self.items = {kind: 0 for kind in OP_KINDS}
        self.item_errors: dict[str, collections.Counter[str]] = {
            kind: collections.Counter() for kind in OP_KINDS
        }
        self.transfers: collections.Counter[str] = collections.Counter()
        self.recording = False
        self.next_start_s = 0.0  # --rate: the timetable's next slot (perf_counter seconds)
        self.phase_ops = 0  # OK calls in the current phase (progress line only)
        self.phase_items = 0  # OK items in the current phase (progress line only)
        self.phase_errors = 0  # failed calls and failed items in the current phase

    # --- connection and setup

    async def connect(self) -> None:
        """Open the channels and wait until the first is READY, or fail in one line."""
        # A local subchannel pool gives each channel its own connection (see module docstring).
        options = [("grpc.use_local_subchannel_pool", 1)]
        for _ in range(self.config.channels):
            channel = open_aio_channel(self.config.gateway, self.security, options=options)
            self.channels.append(channel)
            self.stubs.append(api_stub(channel, self.security))
        await _wait_ready(self.channels[0], self.config.gateway, self.security)

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    def stub(self) -> ledger_api_pb2_grpc.LedgerServiceApiStub:
        return self.stubs[next(self.next_stub)]

    async def setup_accounts(self) -> None:
        """Create the accounts and seed each with one big settled top-up (not measured).

        Both steps are batch calls of up to ``batch_max`` items, ``setup_calls_max`` in flight.
        """
        limit = asyncio.Semaphore(setup_calls_max)

        def first_failure(results: Sequence[Any]) -> api.ItemStatus | None:
            return next((r.status for r in results if r.status.code != 0), None)

        def refuse(step: str, status: api.ItemStatus, failed: int) -> click.ClickException:
            return click.ClickException(
                f"account setup failed: {failed} {step} items failed, first: "
                f"{item_code_name(status.code)}: {status.message}"
            )

        async def create_and_seed(count: int) -> list[str]:
            async with limit:
                created = await self.stub().CreateAccounts(
                    api.CreateAccountsRequest(
                        accounts=[api.CreateAccountRequest() for _ in range(count)]
                    ),
                    timeout=call_timeout_s,
                )
                failure = first_failure(created.results)
                if failure is not None:
                    failed = sum(r.status.code != 0 for r in created.results)
                    raise refuse("CreateAccounts", failure, failed)
                account_ids = [result.account.id for result in created.results]
                seeded = await self.stub().CreateTransactions(
                    api.CreateTransactionsRequest(
                        transactions=[
                            api.CreateTransactionRequest(
                                account_id=account_id,
                                amount=seed_topup_amount,
                                description="bench seed top-up",
                                settled=True,
                            )
                            for account_id in account_ids
                        ]
                    ),
                    timeout=call_timeout_s,
                )
                failure = first_failure(seeded.results)
                if failure is not None:
                    failed = sum(r.status.code != 0 for r in seeded.results)
                    raise refuse("seed top-up", failure, failed)
                return account_ids

        total = self.config.accounts
        chunks = [min(batch_max, total - start) for start in range(0, total, batch_max)]
        try:
            created = await asyncio.gather(*(create_and_seed(count) for count in chunks))
        except grpc.aio.AioRpcError as error:
            raise click.ClickException(
                f"account setup failed: {error.code().name}: {error.details()}"
            ) from None
        self.account_ids = list(itertools.chain.from_iterable(created))

    # --- the ops

    def choose_kind(self) -> str:
        return self.rng.choices(self.kinds, weights=self.weights)[0]

    def purchase_amount(self) -> int:
        return -self.rng.randint(purchase_amount_min, purchase_amount_max)

    def random_account(self) -> str:
        return self.account_ids[self.rng.randrange(len(self.account_ids))]

    def purchase(self, settled: bool) -> api.CreateTransactionRequest:
        return api.CreateTransactionRequest(
            account_id=self.random_account(),
            amount=self.purchase_amount(),
            description="bench",
            settled=settled,
        )

    async def create(self, settled: bool) -> _Items | None:
        if self.config.batch > 0:
            return await self.create_batch(settled)
        response = await self.stub().CreateTransaction(
            self.purchase(settled), timeout=call_timeout_s
        )
        if response.transaction.status == api.TRANSACTION_STATUS_PENDING:
            self.pending_ids.append(response.transaction.id)
        return None

    async def create_batch(self, settled: bool) -> _Items:
        """One CreateTransactions call of ``--batch`` purchases: its OK items and failed codes."""
        request = api.CreateTransactionsRequest(
            transactions=[self.purchase(settled) for _ in range(self.config.batch)]
        )
        response = await self.stub().CreateTransactions(request, timeout=call_timeout_s)
        ok = 0
        failed: list[str] = []
        for result in response.results:
            if result.status.code != 0:
                failed.append(item_code_name(result.status.code))
                continue
            ok += 1
            if result.transaction.status == api.TRANSACTION_STATUS_PENDING:
                self.pending_ids.append(result.transaction.id)
        return _Items(ok=ok, failed=failed)

    def transfer_pair(self) -> tuple[str, str]:
        """Two different random bench accounts: (from, to)."""
        source, target = self.rng.sample(range(len(self.account_ids)), 2)
        return self.account_ids[source], self.account_ids[target]

    async def transfer(self) -> _TransferDone:
        source, target = self.transfer_pair()
        response = await self.stub().CreateTransfer(
            api.CreateTransferRequest(
                from_account_id=source,
                to_account_id=target,
                amount=self.rng.randint(purchase_amount_min, purchase_amount_max),
                description="bench transfer",
            ),
            timeout=call_timeout_s,
        )
        return _TransferDone(transfer_outcome(response.transfer.status))

    async def settle(self, transaction_id: str) -> None:
        await self.stub().SettleTransaction(
            api.SettleTransactionRequest(transaction_id=transaction_id), timeout=call_timeout_s
        )

    async def cancel(self, transaction_id: str) -> None:
        await self.stub().CancelTransaction(
            api.CancelTransactionRequest(transaction_id=transaction_id), timeout=call_timeout_s
        )

    async def get(self) -> None:
        await self.stub().GetAccount(
            api.GetAccountRequest(account_id=self.random_account()), timeout=call_timeout_s
        )

    async def list(self) -> None:
        await self.stub().ListTransactions(
            api.ListTransactionsRequest(account_id=self.random_account()), timeout=call_timeout_s
        )

    def prepare(
        self, kind: str
    ) -> tuple[str, Callable[[], Awaitable[_Items | _TransferDone | None]]]:
        """The op to run for ``kind``: settle/cancel without a pending id become create_pending."""
        if kind in ("settle", "cancel"):
            if not self.pending_ids:
                return "create_pending", lambda: self.create(settled=False)
            transaction_id = self.pending_ids.popleft()
            if kind == "settle":
                return kind, lambda: self.settle(transaction_id)
            return kind, lambda: self.cancel(transaction_id)
        if kind == "create_settled":
            return kind, lambda: self.create(settled=True)
        if kind == "create_pending":
            return kind, lambda: self.create(settled=False)
        if kind == "get":
            return kind, self.get
        if kind == "transfer":
            return kind, self.transfer
        return kind, self.list

    async def worker(self, stop_at: float) -> None:
        """Keep one call in flight until ``stop_at`` (perf_counter seconds)."""
        while time.perf_counter() < stop_at:
            started = await self.wait_for_slot()
            if started >= stop_at:
                return
            kind, call = self.prepare(self.choose_kind())
            record = self.recording  # decided at the start: an op belongs to the phase it began in
            try:
                done = await call()
            except grpc.aio.AioRpcError as error:
                self.phase_errors += 1
                if record:
                    self.errors[kind][error.code().name] += 1
                continue
            elapsed = time.perf_counter() - started
            items = done if isinstance(done, _Items) else None
            if record and isinstance(done, _TransferDone):
                self.transfers[done.outcome] += 1
            ok = 1 if items is None else items.ok
            self.phase_ops += 1
            self.phase_items += ok
            if items is not None:
                self.phase_errors += len(items.failed)
            if record:
                self.latencies[kind].add(elapsed)
                self.items[kind] += ok
                if items is not None:
                    self.item_errors[kind].update(items.failed)

    async def wait_for_slot(self) -> float:
        """When this call counts as started: now (closed loop) or its timetable slot (--rate)."""
        if not self.config.rate:
            return time.perf_counter()
        slot = self.next_start_s
        self.next_start_s = slot + 1.0 / self.config.rate
        delay_s = slot - time.perf_counter()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        return slot

    # --- the run

    async def run(self) -> BenchResult:
        """Warmup, then the measured window with a 1 Hz progress line; returns the result."""
        progress = Progress()
        run_start = time.perf_counter()
        warmup_end = run_start + self.config.warmup_s
        measure_end = warmup_end + self.config.duration_s
        self.next_start_s = run_start
        workers = [
            asyncio.ensure_future(self.worker(measure_end)) for _ in range(self.config.concurrency)
        ]
        phase_start = run_start
        cpu_start = time.process_time()
        measuring = False
        try:
            while not all(worker.done() for worker in workers):
                now = time.perf_counter()
                if not measuring and now >= warmup_end:
                    measuring = True
                    self.recording = True
                    self.phase_ops = self.phase_items = self.phase_errors = 0
                    phase_start = now
                    cpu_start = time.process_time()
                phase = "measure" if measuring else "warmup"
                phase_elapsed = max(now - phase_start, 1e-9)
                if now - phase_start > 0.05:  # a rate over the first instant is noise
                    items = (
                        f"items/s {self.phase_items / phase_elapsed:9.1f}  "
                        if self.config.batch
                        else ""
                    )
                    progress.show(
                        f"{phase} {now - run_start:6.1f}s  ops {self.phase_ops}  "
                        f"ops/s {self.phase_ops / phase_elapsed:9.1f}  {items}"
                        f"errors {self.phase_errors}"
                    )
                phase_end = warmup_end if not measuring else math.inf
                next_tick = min(now + progress_interval_s, phase_end)
                await asyncio.wait(workers, timeout=max(next_tick - time.perf_counter(), 0.001))
            for worker in workers:
                worker.result()  # re-raise anything unexpected
        finally:
            progress.done()
            for worker in workers:
                worker.cancel()
        if not measuring:  # every worker ended before the window (cannot happen with duration > 0)
            phase_start = time.perf_counter()
        elapsed = time.perf_counter() - phase_start
        return BenchResult(
            config=self.config,
            elapsed_s=elapsed,
            latencies=self.latencies,
            errors=self.errors,
            client_cpu_s=time.process_time() - cpu_start,
            items=self.items,
            item_errors=self.item_errors,
            transfers=self.transfers,
        )


async def _wait_ready(
    channel: grpc.aio.Channel, address: str, security: ClientSecurity | None = None
) -> None:
    """Wait for READY; a refused connection fails at once, anything else after connect_timeout_s."""
    unreachable = unreachable_error(address, security)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + connect_timeout_s
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.READY:
        if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            raise unreachable
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise unreachable
        try:
            await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
        except TimeoutError:
            raise unreachable from None
        state = channel.get_state(try_to_connect=True)


async def run_bench(config: BenchConfig, security: ClientSecurity | None = None) -> BenchResult:
    """Connect, set up the accounts, run warmup and the measured window; always close channels."""
    bench = _Bench(config, security)
    try:
        await bench.connect()
        click.echo(f"creating and seeding {config.accounts} accounts", err=True)
        await bench.setup_accounts()
        click.echo(
            f"running {config.warmup_s:g}s warmup, then {config.duration_s:g}s measured", err=True
        )
        return await bench.run()
    finally:
        await bench.close()


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _format_errors(errors: dict[str, int]) -> str:
    return ", ".join(f"{code}={count}" for code, count in errors.items()) or "none"


def format_table(document: dict[str, Any]) -> str:
    """The human-readable result: parameters, one row per op kind and a total, then errors."""
    params = document["params"]
    lines = [
        "bench: gateway={gateway} concurrency={concurrency} duration={duration_s}s "
        "warmup={warmup_s}s accounts={accounts} channels={channels} batch={batch} "
        "seed={seed} rate={rate}".format(**params)
        + f" tls={params.get('tls', False)} token={params.get('token', False)}",
        "mix: " + ",".join(f"{kind}={weight}" for kind, weight in params["mix"].items()),
        f"measured {document['elapsed_s']:.2f}s, client CPU {document['client_cpu_s']:.2f}s",
        "",
    ]
    header = (
        "op",
        "calls",
        "calls/s",
        "items",
        "items/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "errors",
        "item errors",
    )
    rows: list[tuple[str, ...]] = [header]

    def row(
        name: str, stats: dict[str, Any], errors: dict[str, int], item_errors: dict[str, int]
    ) -> tuple[str, ...]:
        return (
            name,
            str(stats["ops"]),
            f"{stats['ops_per_s']:.1f}",
            str(stats["items"]),
            f"{stats['items_per_s']:.1f}",
            _fmt_ms(stats["p50_ms"]),
            _fmt_ms(stats["p95_ms"]),
            _fmt_ms(stats["p99_ms"]),
            _fmt_ms(stats["max_ms"]),
            str(sum(errors.values())),
            str(sum(item_errors.values())),
        )

    for kind, stats in document["by_op"].items():
        rows.append(row(kind, stats, stats["errors"], stats["item_errors"]))
    rows.append(row("total", document["total"], document["errors"], document["item_errors"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for r in rows:
        lines.append(
            "  ".join(
                cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
                for i, cell in enumerate(r)
            )
        )
    lines.append("")
    lines.append("latency is per call; items are transactions created OK")
    lines.append(f"errors: {_format_errors(document['errors'])}")
    lines.append(f"item errors: {_format_errors(document['item_errors'])}")
    if "transfers" in document:
        lines.append(
            "transfers: "
            + ", ".join(f"{outcome}={count}" for outcome, count in document["transfers"].items())
        )
    return "\n".join(lines)


@click.command("bench", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--gateway", default=GATEWAY_DEFAULT, show_default=True)
@click.option(
    "--concurrency",
    type=click.IntRange(1, concurrency_max),
    default=64,
    show_default=True,
    help="Calls in flight.",
)
@click.option(
    "--duration",
    type=click.FloatRange(0, duration_max_s, min_open=True),
    default=10.0,
    show_default=True,
    help="Measured seconds.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(0, duration_max_s),
    default=2.0,
    show_default=True,
    help="Seconds of load before measuring (not recorded).",
)
@click.option(
    "--accounts",
    type=click.IntRange(1, accounts_max),
    default=64,
    show_default=True,
    help="Accounts created and seeded at start.",
)
@click.option(
    "--mix",
    default=MIX_DEFAULT,
    show_default=True,
    callback=_mix_option,
    help=f"Weights, name=int comma list; names: {', '.join(OP_KINDS)}.",
)
@click.option(
    "--channels",
    type=click.IntRange(1, channels_max),
    default=1,
    show_default=True,
    help="grpc.aio channels (connections); calls go round-robin.",
)
@click.option(
    "--batch",
    type=click.IntRange(0, batch_max),
    default=0,
    show_default=True,
    help="Purchases per CreateTransactions call for the create ops; 0 = single "
    "CreateTransaction calls.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--seed", type=int, default=1, show_default=True, help="Seed of the op choice RNG.")
@click.option(
    "--rate",
    type=click.FloatRange(0, rate_max),
    default=0.0,
    show_default=True,
    help="Offered calls/s (open loop, latency from the scheduled start); 0 = closed loop.",
)
@client_security_options
def bench_command(
    gateway: str,
    concurrency: int,
    duration: float,
    warmup: float,
    accounts: int,
    mix: dict[str, int],
    channels: int,
    batch: int,
    as_json: bool,
    seed: int,
    rate: float,
    security: ClientSecurity,
) -> None:
    """Load the gateway with a mix of calls and print throughput and latency percentiles."""
    if mix.get("transfer", 0) > 0 and accounts < 2:
        raise click.BadParameter(
            "a mix with transfer needs 2 accounts or more", param_hint="--accounts"
        )
    config = BenchConfig(
        gateway=gateway,
        concurrency=concurrency,
        duration_s=duration,
        warmup_s=warmup,
        accounts=accounts,
        mix=mix,
        channels=channels,
        batch=batch,
        seed=seed,
        rate=rate,
        tls=security.tls,
        token=security.token is not None,
    )
    result = asyncio.run(run_bench(config, security))
    document = result.as_json()
    if as_json:
        click.echo(json.dumps(document))
    else:
        click.echo(format_table(document))
