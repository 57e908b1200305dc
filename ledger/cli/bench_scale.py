"""``ledger-dev bench-scale``: how throughput, latency and node memory change as the ledger grows.

Why it exists: ``bench`` and ``bench-compare`` measure a nearly empty ledger. Whether single
calls, batches and node memory hold up at millions of stored transactions, and whether a
sustained batch load slows down while the data grows, needs its own rerunnable command that
measures every size side by side in one session (same machine state, same cluster).

Method (decisions written down here):

* **Target.** By default a fresh 3-node cluster and its gateway are started on free ports in a
  temporary directory (``--work-dir`` keeps it, with the node logs), and leaders are given up
  to ``leaders_balanced_timeout_s`` to settle on their preferred nodes, as in ``bench-compare``.
  With ``--gateway`` and ``--cluster-config`` an existing cluster is loaded instead; then node
  RSS and node logs cannot be read from here and are reported as unknown (Raft terms still come
  from the nodes' Status rpc), and the transactions it already stores are not counted. Such a
  gateway may need ``--tls-ca`` and ``--token`` (as every client, ``ledger.cli.client``); the
  measurement benches get the same options, the token through their environment.
* **Stages** (``--stages 0,1M,5M``): before stage N is measured, the ledger is grown until this
  command has *loaded* N transactions in all (earlier stages' loads count). Loading uses
  ``CreateTransactions`` calls of ``load_batch_items`` settled top-ups of ``top_up_amount``,
  spread round-robin over ``--accounts`` accounts created once at start (``CreateAccounts``
  chunks of 1,000, with the retries of ``seed-accounts``), ``--load-concurrency`` calls in
  flight. ``loaded`` counts items answered OK. A failed call is counted by status code and its
  items are sent again as new items (no idempotency keys: a call that failed with an unknown
  outcome may have stored its items, so the ledger can hold slightly more than ``loaded``).
  ``load_failures_in_a_row_max`` calls in a row without progress (failed, or every item
  failed) end the command: the cluster is gone or refuses the load.
* **Stored.** ``stored`` in the table is ``loaded`` plus the transactions the earlier stages'
  measurement benches reported (their seed top-ups and measured items). The benches' warmup
  calls are not reported by ``bench``, so ``stored`` is a lower bound, short by a few thousand.
* **Measurement** after each stage's growth: ``ledger-dev bench --json`` in its own process
  (the helper ``bench-compare`` uses), first single ``CreateTransaction`` calls
  (``--concurrency single_concurrency``), then ``CreateTransactions`` of ``batch_items``
  purchases (``--concurrency batch_concurrency``), each ``--warmup`` + ``--duration`` seconds.
* **Growth windows.** While loading, items answered OK are binned by completion time into
  ``--window`` second windows; each window also records failed calls, node RSS and the Raft
  terms sampled when it closes. Only complete windows enter the growth check; the trailing
  partial window of each stage is kept in the JSON, marked ``complete: false``. The check
  compares the last complete window of the whole run with the first (``last/first window
  ratio``): with stages 0 and 1M this is "the last window at ~1M vs the first at ~0".
* **Node RSS** is ``VmRSS`` from ``/proc/<pid>/status`` of each node process, in MiB.
* **Elections.** Each Status rpc reports every shard's term; per shard we keep the highest term
  any node reports. ``elections`` is the sum over shards of the term increase since the first
  stage started: every election (won or not) raises its shard's term by at least one, while the
  highest term over all shards would hide elections on shards below the maximum.
* **Logs.** At the end, node log lines containing ``CRITICAL`` (any critical record, e.g.
  PySyncObj's "truncating already-applied log entries") and ``truncating already-applied`` are
  counted.
* The command reports, it does not judge: exit status 0 whatever the figures, 1 only when it
  could not measure (unreachable gateway, failed bench, growth that keeps failing).
* Output: the table and the growth lines (or ``--json``) on stdout; progress on stderr.

A 0/1M/5M run loads 5M transactions at a few thousand per second: expect roughly half an hour
on the 2-vCPU reference machine, plus ~5 GB of disk for three replicas.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import pathlib
import re
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import click
import grpc
import grpc.aio

from ledger import limits
from ledger.cli.bench import Progress, item_code_name
from ledger.cli.bench_compare import bench_summary, run_bench_process, wait_balanced
from ledger.cli.client import (
    ClientSecurity,
    api_stub,
    client_security_options,
    gateway_client,
    open_aio_channel,
    unreachable_error,
)
from ledger.config import ClusterConfig, ConfigError, load_config
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc, ledger_node_pb2_grpc
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.tools.processes import ClusterService

__all__ = [
    "bench_scale_command",
    "count_log_lines",
    "parse_stages",
    "read_rss_mib",
]

# --- Limits and defaults, with units.
stages_max = 8  # stages per run
transactions_max = 50_000_000  # stored transactions a stage may ask for
accounts_max = 1_000_000  # load accounts (seed-accounts' bound)
load_concurrency_max = 64  # load calls in flight
load_batch_items = limits.batch_items_max  # items per load CreateTransactions call
top_up_amount = 1  # minor units per load item: 50M items stay far from 2**63
load_call_timeout_s = 10.0  # deadline of one load call (a 1,000-item call takes ~1 s)
load_failures_in_a_row_max = 20  # load calls in a row without progress, then give up
connect_timeout_s = 5.0  # wait for the load channel to be READY
status_timeout_s = 5.0  # one node Status rpc (no digest: cheap)
progress_interval_s = 1.0  # progress line period on stderr
window_min_s = 0.1
window_max_s = 3600.0
duration_max_s = 3600.0  # measured seconds per bench run
warmup_max_s = 600.0
single_concurrency = 64  # single-call bench: calls in flight
batch_items = 100  # batch bench: purchases per CreateTransactions call
batch_concurrency = 32  # batch bench: calls in flight
bytes_per_mib = 1024 * 1024
LOG_MARKERS = ("CRITICAL", "truncating already-applied")
STAGES_DEFAULT = "0,1000000"

assert top_up_amount * transactions_max < limits.int64_max
assert 0 < load_batch_items <= limits.batch_items_max

_SUFFIXES = {"": 1, "k": 1_000, "m": 1_000_000}
_STAGE = re.compile(r"^(\d+(?:_\d+)*)([kKmM]?)$")


def parse_stages(text: str) -> list[int]:
    """``0,1M,5000000`` into [0, 1000000, 5000000]: strictly increasing, k/M suffixes allowed."""
    stages: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = _STAGE.match(part)
        if not match:
            raise ValueError(f"{part!r} is not a count of transactions (e.g. 0, 1000000, 1M)")
        count = int(match.group(1).replace("_", "")) * _SUFFIXES[match.group(2).lower()]
        if count > transactions_max:
            raise ValueError(f"{part!r} is above transactions_max ({transactions_max:,})")
        if stages and count <= stages[-1]:
            raise ValueError("stages must increase")
        stages.append(count)
    if not 1 <= len(stages) <= stages_max:
        raise ValueError(f"give 1 to {stages_max} stages")
    return stages


def _stages_option(_ctx: click.Context, _param: click.Parameter, value: str) -> list[int]:
    try:
        return parse_stages(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


def read_rss_mib(pid: int) -> float | None:
    """A process's resident set (``VmRSS``) in MiB, or None when it is gone."""
    try:
        text = pathlib.Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024 / bytes_per_mib  # the kernel reports kB
    return None


def count_log_lines(paths: Sequence[pathlib.Path], markers: Sequence[str]) -> dict[str, int]:
    """Lines containing each marker, summed over the files (missing files count nothing)."""
    counts = dict.fromkeys(markers, 0)
    encoded = [(marker, marker.encode()) for marker in markers]
    for path in paths:
        with contextlib.suppress(FileNotFoundError), open(path, "rb") as handle:
            for line in handle:
                for marker, needle in encoded:
                    if needle in line:
                        counts[marker] += 1
    return counts


class _Target:
    """The gateway under load and what can be observed of its nodes from here."""

    def __init__(self, gateway: str, config: ClusterConfig, cluster: ClusterService | None) -> None:
        self.gateway = gateway
        self.config = config
        self.node_addresses = [node.address for node in config.nodes]
        self.cluster = cluster  # None: an existing cluster, no pids and no logs

    def rss_mib(self) -> list[float | None] | None:
        """VmRSS per node (None for a node that is not running); None without process access."""
        if self.cluster is None:
            return None
        return [None if node.pid is None else read_rss_mib(node.pid) for node in self.cluster.nodes]

    def shard_terms(self) -> dict[int, int]:
        """shard -> the highest Raft term any reachable node reports for it."""
        terms: dict[int, int] = {}
        for address in self.node_addresses:
            with self.config.node_channel(address) as channel:
                stub = ledger_node_pb2_grpc.LedgerNodeStub(channel)
                try:
                    response = stub.Status(node_pb.StatusRequest(), timeout=status_timeout_s)
                except grpc.RpcError:
                    continue  # a node that does not answer now; the next sample will see it
            for shard in response.shards:
                terms[shard.shard] = max(terms.get(shard.shard, 0), shard.term)
        return terms

    def log_counts(self) -> dict[str, int] | None:
        if self.cluster is None:
            return None
        return count_log_lines([node.log_path for node in self.cluster.nodes], LOG_MARKERS)


@dataclasses.dataclass
class _Sample:
    """Node RSS and Raft terms at one moment."""

    at_s: float
    rss_mib: list[float | None] | None
    terms: dict[int, int]

    @staticmethod
    async def take(target: _Target, origin_s: float) -> _Sample:
        # Status rpcs are blocking calls: a thread keeps the load's event loop running.
        terms = await asyncio.to_thread(target.shard_terms)
        return _Sample(time.perf_counter() - origin_s, target.rss_mib(), terms)

    def as_json(self, base_terms: dict[int, int]) -> dict[str, Any]:
        return {
            "at_s": self.at_s,
            "rss_mib": self.rss_mib,
            "max_term": max(self.terms.values(), default=None),
            "elections": _elections(base_terms, self.terms),
        }


def _elections(before: dict[int, int], after: dict[int, int]) -> int:
    """Summed per-shard term increase (see the module docstring)."""
    return sum(max(0, term - before[shard]) for shard, term in after.items() if shard in before)


@dataclasses.dataclass
class _Window:
    stage: int
    start_s: float  # since the run's origin
    duration_s: float
    items: int  # items answered OK in the window
    failed_calls: int
    failed_items: int
    complete: bool
    sample: _Sample

    @property
    def items_per_s(self) -> float:
        return self.items / self.duration_s if self.duration_s > 0 else 0.0

    def as_json(self, base_terms: dict[int, int]) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "start_s": self.start_s,
            "duration_s": self.duration_s,
            "items": self.items,
            "items_per_s": self.items_per_s,
            "failed_calls": self.failed_calls,
            "failed_items": self.failed_items,
            "complete": self.complete,
            **self.sample.as_json(base_terms),
        }


class _Loader:
    """Grows the ledger with top-up batches; keeps the counts of the whole run."""

    def __init__(
        self,
        stub: ledger_api_pb2_grpc.LedgerServiceApiStub,
        account_ids: Sequence[str],
        concurrency: int,
        window_s: float,
        target: _Target,
        origin_s: float,
    ) -> None:
        self.stub = stub
        self.account_ids = list(account_ids)
        self.concurrency = concurrency
        self.window_s = window_s
        self.target = target
        self.origin_s = origin_s
        self.cursor = 0  # next account (round-robin)
        self.loaded = 0  # items answered OK, whole run
        self.growth_s = 0.0  # seconds spent loading, whole run
        self.errors: collections.Counter[str] = collections.Counter()  # calls, by code
        self.item_errors: collections.Counter[str] = collections.Counter()  # items, by code
        self.windows: list[_Window] = []
        self._requests: dict[tuple[int, int], api.CreateTransactionsRequest] = {}

    def request(self, count: int) -> api.CreateTransactionsRequest:
        """The next ``count`` top-ups, round-robin over the accounts (requests are reused:
        with 10,000 accounts there are only 10 distinct 1,000-item calls)."""
        key = (self.cursor, count)
        self.cursor = (self.cursor + count) % len(self.account_ids)
        request = self._requests.get(key)
        if request is None:
            if len(self._requests) >= 1024:  # bounded: odd account counts make many keys
                self._requests.clear()
            start = key[0]
            request = api.CreateTransactionsRequest(
                transactions=[
                    api.CreateTransactionRequest(
                        account_id=self.account_ids[(start + i) % len(self.account_ids)],
                        amount=top_up_amount,
                        description="bench-scale load",
                        settled=True,
                    )
                    for i in range(count)
                ]
            )
            self._requests[key] = request
        return request

    async def grow(self, stage: int, goal: int, progress: Progress) -> dict[str, Any]:
        """Load until ``self.loaded`` reaches ``goal``; returns this stage's growth figures."""
        todo = goal - self.loaded
        if todo <= 0:
            return {
                "items": 0,
                "elapsed_s": 0.0,
                "items_per_s": 0.0,
                "failed_calls": 0,
                "failed_items": 0,
            }
        in_flight = 0
        window = {"items": 0, "calls": 0, "failed_items": 0}
        stage_ok = stage_failed_calls = stage_failed_items = 0
        failures_in_a_row = 0

        def give_up_after(failure: str) -> None:
            """Count a call without progress; raise after too many in a row."""
            nonlocal failures_in_a_row
            failures_in_a_row += 1
            if failures_in_a_row >= load_failures_in_a_row_max:
                raise click.ClickException(
                    f"growth gave up after {failures_in_a_row} load calls in a row without "
                    f"progress; last: {failure}"
                )

        async def worker() -> None:
            nonlocal in_flight, stage_ok, stage_failed_calls, stage_failed_items
            nonlocal failures_in_a_row
            last_item_failure = ""
            while True:
                count = min(load_batch_items, goal - self.loaded - in_flight)
                if count <= 0:
                    return  # the rest is in flight; a worker whose call fails sends it again
                in_flight += count
                try:
                    response = await self.stub.CreateTransactions(
                        self.request(count), timeout=load_call_timeout_s
                    )
                except grpc.aio.AioRpcError as error:
                    in_flight -= count
                    self.errors[error.code().name] += 1
                    stage_failed_calls += 1
                    window["calls"] += 1
                    give_up_after(f"{error.code().name}: {error.details()}")
                    continue
                in_flight -= count
                ok = 0
                for result in response.results:
                    if result.status.code == 0:
                        ok += 1
                    else:
                        self.item_errors[item_code_name(result.status.code)] += 1
                        last_item_failure = (
                            f"item {item_code_name(result.status.code)}: {result.status.message}"
                        )
                if ok == 0:  # every item failed: no progress, as bad as a failed call
                    give_up_after(last_item_failure)
                else:
                    failures_in_a_row = 0
                self.loaded += ok
                stage_ok += ok
                stage_failed_items += count - ok
                window["items"] += ok
                window["failed_items"] += count - ok

        async def close_window(start: float, now: float, complete: bool) -> None:
            counts = dict(window)  # taken before sampling: the workers go on meanwhile
            window.update(items=0, calls=0, failed_items=0)
            sample = await _Sample.take(self.target, self.origin_s)
            self.windows.append(
                _Window(
                    stage=stage,
                    start_s=start - self.origin_s,
                    duration_s=now - start,
                    items=counts["items"],
                    failed_calls=counts["calls"],
                    failed_items=counts["failed_items"],
                    complete=complete,
                    sample=sample,
                )
            )

        def failed(task: asyncio.Future[None]) -> bool:
            return task.done() and not task.cancelled() and task.exception() is not None

        started = window_start = time.perf_counter()
        workers = [asyncio.ensure_future(worker()) for _ in range(self.concurrency)]
        try:
            while not all(task.done() for task in workers):
                window_end = window_start + self.window_s
                timeout = min(progress_interval_s, window_end - time.perf_counter())
                await asyncio.wait(workers, timeout=max(timeout, 0.001))
                if any(failed(task) for task in workers):
                    break  # a worker gave up: the result() below raises its exception
                now = time.perf_counter()
                if now >= window_end and not all(task.done() for task in workers):
                    await close_window(window_start, now, complete=True)
                    window_start = now
                elapsed_s = now - window_start
                rate = f"{window['items'] / elapsed_s:8.1f}" if elapsed_s >= 1.0 else "       -"
                progress.show(
                    f"stage {stage}: loaded {self.loaded:,}/{goal:,}  "
                    f"items/s (window) {rate}  failed calls {stage_failed_calls}  "
                    f"failed items {stage_failed_items}"
                )
            for task in workers:
                if task.done():
                    task.result()  # re-raise a give-up or anything unexpected
        finally:
            progress.done()
            for task in workers:
                task.cancel()
        now = time.perf_counter()
        if now > window_start:
            await close_window(window_start, now, complete=False)
        elapsed = now - started
        self.growth_s += elapsed
        return {
            "items": stage_ok,
            "elapsed_s": elapsed,
            "items_per_s": stage_ok / elapsed,
            "failed_calls": stage_failed_calls,
            "failed_items": stage_failed_items,
        }


def _create_accounts(gateway: str, count: int, security: ClientSecurity) -> list[str]:
    """The load accounts, through seed-accounts' chunked, retried CreateAccounts calls."""
    # Imported here: ledger.cli.dev imports this module to register the command.
    from ledger.cli.dev import seed_accounts_in_chunks, seed_attempts_max, seed_retry_policy

    account_ids: list[str] = []
    with gateway_client(gateway, security, retry=seed_retry_policy()) as client:
        outcome = seed_accounts_in_chunks(client, count, account_ids.extend)
    if outcome.failed:
        raise click.ClickException(
            f"{outcome.failed} of {count} load accounts not created after {seed_attempts_max} "
            f"attempts; last error {outcome.failure}"
        )
    return account_ids


async def _open_stub(
    gateway: str,
    security: ClientSecurity,
) -> tuple[grpc.aio.Channel, ledger_api_pb2_grpc.LedgerServiceApiStub]:
    """An aio channel known to be READY, or a one-line error."""
    channel = open_aio_channel(gateway, security)
    try:
        await asyncio.wait_for(channel.channel_ready(), connect_timeout_s)
    except TimeoutError:
        await channel.close()
        raise unreachable_error(gateway, security) from None
    return channel, api_stub(channel, security)


def _measure(
    gateway: str, duration_s: float, warmup_s: float, security: ClientSecurity
) -> dict[str, Any]:
    """The single-call and the batch bench, each in its own ``ledger-dev bench`` process."""
    common = ["--duration", str(duration_s), "--warmup", str(warmup_s)]
    runs = {
        "single": ["--concurrency", str(single_concurrency), *common],
        "batch": ["--batch", str(batch_items), "--concurrency", str(batch_concurrency), *common],
    }
    figures: dict[str, Any] = {}
    for name, options in runs.items():
        click.echo(f"  bench {name}: {' '.join(options)}", err=True)
        document = run_bench_process(gateway, options, duration_s + warmup_s, security)
        figures[name] = bench_summary(document) | {
            # transactions the run stored and reported: seed top-ups and measured items
            "created": int(document["params"]["accounts"]) + int(document["total"]["items"]),
        }
    return figures


@dataclasses.dataclass(frozen=True)
class _Params:
    stages: list[int]
    accounts: int
    load_concurrency: int
    window_s: float
    duration_s: float
    warmup_s: float


async def _run(
    target: _Target, params: _Params, account_ids: Sequence[str], security: ClientSecurity
) -> dict[str, Any]:
    """Grow and measure every stage; returns the JSON document."""
    progress = Progress()
    origin = time.perf_counter()
    channel, stub = await _open_stub(target.gateway, security)
    try:
        loader = _Loader(
            stub, account_ids, params.load_concurrency, params.window_s, target, origin
        )
        base = await _Sample.take(target, origin)
        stages: list[dict[str, Any]] = []
        stage_samples: list[_Sample] = []
        bench_created = 0
        for index, goal in enumerate(params.stages):
            click.echo(f"stage {index}: growing to {goal:,} loaded transactions", err=True)
            growth = await loader.grow(index, goal, progress)
            after_growth = await _Sample.take(target, origin)
            stored = loader.loaded + bench_created
            click.echo(f"stage {index}: measuring at {stored:,} stored transactions", err=True)
            figures = await asyncio.to_thread(
                _measure, target.gateway, params.duration_s, params.warmup_s, security
            )
            after_bench = await _Sample.take(target, origin)
            stage_samples += [after_growth, after_bench]
            bench_created += sum(figure["created"] for figure in figures.values())
            stages.append(
                {
                    "target": goal,
                    "loaded": loader.loaded,
                    "stored": stored,
                    "growth": growth,
                    **figures,
                    "after_growth": after_growth.as_json(base.terms),
                    "after_bench": after_bench.as_json(base.terms),
                }
            )
        end = await _Sample.take(target, origin)
    finally:
        await channel.close()
    return {
        "stages": stages,
        "growth": _growth_summary(loader, base, end, stage_samples, target.log_counts()),
    }


def _growth_summary(
    loader: _Loader,
    base: _Sample,
    end: _Sample,
    stage_samples: list[_Sample],
    logs: dict[str, int] | None,
) -> dict[str, Any]:
    """The growth check's figures; RSS peaks are over every sample of the run."""
    complete = [window for window in loader.windows if window.complete]
    first = complete[0] if complete else None
    last = complete[-1] if complete else None
    ratio = (
        last.items_per_s / first.items_per_s
        if first is not None and last is not None and first.items_per_s > 0
        else None
    )
    samples = [base, *stage_samples, *(window.sample for window in loader.windows), end]
    peaks: list[float | None] | None = None
    if base.rss_mib is not None:
        peaks = []
        for node in range(len(base.rss_mib)):
            seen = [
                value
                for sample in samples
                if sample.rss_mib is not None and (value := sample.rss_mib[node]) is not None
            ]
            peaks.append(max(seen, default=None))
    return {
        "loaded": loader.loaded,
        "elapsed_s": loader.growth_s,
        "items_per_s": loader.loaded / loader.growth_s if loader.growth_s > 0 else 0.0,
        "complete_windows": len(complete),
        "first_window_items_per_s": None if first is None else first.items_per_s,
        "last_window_items_per_s": None if last is None else last.items_per_s,
        "last_first_ratio": ratio,
        "errors": dict(sorted(loader.errors.items())),
        "item_errors": dict(sorted(loader.item_errors.items())),
        "elections": _elections(base.terms, end.terms),
        "max_term_start": max(base.terms.values(), default=None),
        "max_term_end": max(end.terms.values(), default=None),
        "critical_lines": None if logs is None else logs["CRITICAL"],
        "truncating_lines": None if logs is None else logs["truncating already-applied"],
        "rss_start_mib": base.rss_mib,
        "rss_first_window_mib": None if first is None else first.sample.rss_mib,
        "rss_last_window_mib": None if last is None else last.sample.rss_mib,
        "rss_end_mib": end.rss_mib,
        "rss_peak_mib": peaks,
        "windows": [window.as_json(base.terms) for window in loader.windows],
    }


def _rss_range(rss: Sequence[float | None] | None) -> str:
    values = [value for value in rss or () if value is not None]
    return f"{min(values):.0f}-{max(values):.0f}" if values else "unknown"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _codes(counts: dict[str, int]) -> str:
    return ", ".join(f"{code}={count}" for code, count in counts.items()) or "none"


def format_report(document: dict[str, Any]) -> str:
    """The stage table, then the growth lines."""
    params = document["params"]
    header_line = (
        f"bench-scale: {document['target']}, accounts={params['accounts']} "
        f"load-concurrency={params['load_concurrency']} window={params['window_s']:g}s "
        f"bench duration={params['duration_s']:g}s warmup={params['warmup_s']:g}s"
    )
    header = (
        "stored txns",
        "single ops/s",
        "single p99 ms",
        "batch items/s",
        "batch p99 ms",
        "bench errors",
        "node RSS MiB",
    )
    rows: list[tuple[str, ...]] = [header]
    for stage in document["stages"]:
        single, batch = stage["single"], stage["batch"]
        errors = sum(int(run["errors"] + run["item_errors"]) for run in (single, batch))
        rows.append(
            (
                f"{stage['stored']:,}",
                _num(single["ops_per_s"]),
                _num(single["p99_ms"]),
                _num(batch["items_per_s"]),
                _num(batch["p99_ms"]),
                str(errors),
                _rss_range(stage["after_bench"]["rss_mib"]),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    table = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]

    growth = document["growth"]
    critical = growth["critical_lines"]
    if critical is None:
        critical_text = "unknown (existing cluster: node logs are not readable from here)"
    else:
        critical_text = f"{critical} (truncating already-applied: {growth['truncating_lines']})"
    loaded = (
        f"growth: {growth['loaded']:,} transactions loaded in {growth['elapsed_s']:.1f}s "
        f"({growth['items_per_s']:.1f} items/s), {growth['complete_windows']} complete "
        f"{params['window_s']:g}s windows"
    )
    elections = (
        f"elections: {growth['elections']} "
        f"(max term {growth['max_term_start']} -> {growth['max_term_end']})"
    )
    rss = (
        f"node RSS MiB: start {_rss_range(growth['rss_start_mib'])}, "
        f"first window {_rss_range(growth['rss_first_window_mib'])}, "
        f"last window {_rss_range(growth['rss_last_window_mib'])}, "
        f"end {_rss_range(growth['rss_end_mib'])}, peak {_rss_range(growth['rss_peak_mib'])}"
    )
    return "\n".join(
        [
            header_line,
            "",
            *table,
            "",
            loaded,
            f"first window items/s: {_num(growth['first_window_items_per_s'])}",
            f"last window items/s: {_num(growth['last_window_items_per_s'])}",
            f"last/first window ratio: {_num(growth['last_first_ratio'], '.3f')}",
            f"errors: calls {_codes(growth['errors'])}; items {_codes(growth['item_errors'])}",
            elections,
            f"critical lines: {critical_text}",
            rss,
        ]
    )


@contextlib.contextmanager
def _fresh_cluster(work_dir: pathlib.Path | None) -> Iterator[_Target]:
    """A started, balanced cluster in ``work_dir`` (kept) or a temporary directory (removed)."""
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            root = pathlib.Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="ledger-scale-"))
            )
        else:
            if work_dir.exists() and any(work_dir.iterdir()):
                raise click.ClickException(f"--work-dir {work_dir} is not empty")
            work_dir.mkdir(parents=True, exist_ok=True)
            root = work_dir
        cluster = ClusterService(root)
        click.echo(f"starting a 3-node cluster and its gateway in {root} ...", err=True)
        try:
            cluster.start()
            wait_balanced(cluster)
            yield _Target(cluster.address, cluster.config, cluster)
        finally:
            cluster.stop()


@contextlib.contextmanager
def _existing_cluster(gateway: str, config_path: pathlib.Path) -> Iterator[_Target]:
    try:
        config = load_config(config_path)
    except ConfigError as error:
        raise click.ClickException(str(error)) from None
    click.echo("existing cluster: node RSS and node logs cannot be read from here", err=True)
    yield _Target(gateway, config, None)


@click.command("bench-scale", context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--stages",
    default=STAGES_DEFAULT,
    show_default=True,
    callback=_stages_option,
    help="Loaded transactions at which to measure, increasing; k/M suffixes allowed.",
)
@click.option(
    "--accounts",
    type=click.IntRange(1, accounts_max),
    default=10_000,
    show_default=True,
    help="Accounts the load top-ups are spread over.",
)
@click.option(
    "--load-concurrency",
    type=click.IntRange(1, load_concurrency_max),
    default=4,
    show_default=True,
    help="Load CreateTransactions calls in flight.",
)
@click.option(
    "--window",
    type=click.FloatRange(window_min_s, window_max_s),
    default=20.0,
    show_default=True,
    help="Seconds per growth window.",
)
@click.option(
    "--duration",
    type=click.FloatRange(1, duration_max_s),
    default=10.0,
    show_default=True,
    help="Measured seconds of each bench run.",
)
@click.option(
    "--warmup",
    type=click.FloatRange(0, warmup_max_s),
    default=2.0,
    show_default=True,
    help="Warmup seconds of each bench run.",
)
@click.option(
    "--gateway",
    default=None,
    help="Load an existing cluster through this gateway (needs --cluster-config).",
)
@click.option(
    "--cluster-config",
    type=click.Path(dir_okay=False, path_type=pathlib.Path),
    default=None,
    help="The existing cluster's config (node addresses for Status).",
)
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=pathlib.Path),
    default=None,
    help="Run the fresh cluster here and keep it (data and logs).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@client_security_options
def bench_scale_command(
    stages: list[int],
    accounts: int,
    load_concurrency: int,
    window: float,
    duration: float,
    warmup: float,
    gateway: str | None,
    cluster_config: pathlib.Path | None,
    work_dir: pathlib.Path | None,
    as_json: bool,
    security: ClientSecurity,
) -> None:
    """Grow the ledger stage by stage; bench at each stage and watch the growth windows."""
    if (gateway is None) != (cluster_config is None):
        raise click.UsageError("--gateway and --cluster-config go together")
    if gateway is not None and work_dir is not None:
        raise click.UsageError("--work-dir is for a fresh cluster, not with --gateway")
    if gateway is None:
        if security.tls:
            raise click.UsageError(
                "--tls-ca/--tls-cert/--tls-key are for --gateway: the fresh "
                "cluster's gateway is plaintext"
            )
        security = ClientSecurity()  # and open: a token (e.g. $LEDGER_TOKEN) is not sent
    params = _Params(
        stages=stages,
        accounts=accounts,
        load_concurrency=load_concurrency,
        window_s=window,
        duration_s=duration,
        warmup_s=warmup,
    )
    if gateway is not None and cluster_config is not None:
        context = _existing_cluster(gateway, cluster_config)
        described = f"existing cluster via {gateway}"
    else:
        context = _fresh_cluster(work_dir)
        described = "fresh 3-node cluster + gateway"
    with context as target:
        click.echo(f"creating {accounts:,} load accounts", err=True)
        account_ids = _create_accounts(target.gateway, accounts, security)
        result = asyncio.run(_run(target, params, account_ids, security))
    document = {
        "target": described,
        "params": dataclasses.asdict(params) | {"gateway": gateway},
        "observed": {"rss": target.cluster is not None, "logs": target.cluster is not None},
        **result,
    }
    if as_json:
        click.echo(json.dumps(document))
    else:
        click.echo(format_report(document))
