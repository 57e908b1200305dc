"""The load loop: channels, account setup, the workers (closed loop or ``--rate``), warmup and
the measured window, and the progress line."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import math
import random
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import click
import grpc
import grpc.aio

from ledger.cli.bench.config import OP_KINDS, BenchConfig, batch_max
from ledger.cli.bench.report import BenchResult
from ledger.cli.bench.stats import LatencyStats, item_code_name, transfer_outcome
from ledger.cli.client import ClientSecurity, api_stub, open_aio_channel, unreachable_error
from ledger.client import AsyncLedgerClient, ItemResult, LedgerError, NewTransaction
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

__all__ = ["Progress", "run_bench"]

# --- Limits and defaults, with units.
call_timeout_s = 5.0  # deadline of every call (the gateway's default)
connect_timeout_s = 5.0  # wait for the first channel to become READY before giving up
progress_interval_s = 1.0  # live progress line period on stderr
pending_ids_max = 10_000  # pending transaction ids remembered for settle/cancel
seed_topup_amount = 10**15  # minor units per account: ~10^14 purchases of at most 10
purchase_amount_min = 1  # minor units; purchases are -min..-max
purchase_amount_max = 10
setup_calls_max = 4  # batch calls in flight while creating and seeding accounts

assert 0 < purchase_amount_min <= purchase_amount_max
assert seed_topup_amount + purchase_amount_max < 2**63  # the seed must not overflow a balance


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

        Through the client library, so every item carries an idempotency key and a transient
        failure (a fresh cluster still electing, a busy machine) is retried exactly once
        instead of failing the run; ``setup_calls_max`` chunks of ``batch_max`` in flight.
        """
        client = AsyncLedgerClient.from_channel(self.channels[0], security=self.security)
        limit = asyncio.Semaphore(setup_calls_max)

        def refuse(step: str, results: Sequence[ItemResult[Any]]) -> click.ClickException:
            failures = [result.error for result in results if result.error is not None]
            return click.ClickException(
                f"account setup failed: {failures[0].code.name}: {failures[0].message} "
                f"({len(failures)} of {len(results)} {step} items failed)"
            )

        async def create_and_seed(count: int) -> list[str]:
            async with limit:
                created = await client.create_accounts(count)
                if not all(result.ok for result in created):
                    raise refuse("CreateAccounts", created)
                account_ids = [result.unwrap().id for result in created]
                seeded = await client.create_transactions(
                    NewTransaction(
                        account_id,
                        seed_topup_amount,
                        description="bench seed top-up",
                        settled=True,
                    )
                    for account_id in account_ids
                )
                if not all(result.ok for result in seeded):
                    raise refuse("seed top-up", seeded)
                return account_ids

        total = self.config.accounts
        chunks = [min(batch_max, total - start) for start in range(0, total, batch_max)]
        try:
            created = await asyncio.gather(*(create_and_seed(count) for count in chunks))
        except LedgerError as error:
            raise click.ClickException(
                f"account setup failed: {error.code.name}: {error.message}"
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
