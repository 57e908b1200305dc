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

Layout: ``config`` (op kinds, ``--mix``, option bounds, ``BenchConfig``), ``stats``
(percentiles, code and outcome names), ``runner`` (the load loop), ``report`` (the result, its
JSON and table), ``command`` (the click command). This module re-exports what other commands
and the tests use.
"""

from ledger.cli.bench.command import bench_command
from ledger.cli.bench.config import OP_KINDS, BenchConfig, parse_mix
from ledger.cli.bench.report import BenchResult, format_table
from ledger.cli.bench.runner import Progress, run_bench
from ledger.cli.bench.stats import (
    TRANSFER_OUTCOMES,
    LatencyStats,
    item_code_name,
    transfer_outcome,
)

__all__ = [
    "OP_KINDS",
    "TRANSFER_OUTCOMES",
    "BenchConfig",
    "BenchResult",
    "LatencyStats",
    "Progress",
    "bench_command",
    "format_table",
    "item_code_name",
    "parse_mix",
    "run_bench",
    "transfer_outcome",
]
