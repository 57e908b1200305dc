"""``ledger-dev bench-compare`` end to end.

Goal: the command starts standalone and a cluster in turn, benches both with the same options,
and reports both figures and their ratio, then leaves no process behind; ``--fsync both`` adds
the same pair with ``--unsafe-no-fsync`` and the durability ratios. Method: run it as a
subprocess with a tiny load (1 s, 4 calls in flight) and ``--json``; no timing assertions.
"""

from __future__ import annotations

import json

from harness import run_dev

compare_timeout_s = 300


def test_bench_compare_reports_both_and_the_ratio() -> None:
    completed = run_dev(
        "bench-compare",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--concurrency",
        "4",
        "--accounts",
        "4",
        "--json",
        timeout_s=compare_timeout_s,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    for kind in ("standalone", "cluster"):
        assert result[kind]["ops_per_s"] > 0
        assert result[kind]["errors"] == 0
        assert 0 < result[kind]["p50_ms"] <= result[kind]["p99_ms"]
    assert result["ratio"] == result["cluster"]["ops_per_s"] / result["standalone"]["ops_per_s"]
    assert "Traceback" not in completed.stderr


def test_bench_compare_measures_durability_both_ways() -> None:
    completed = run_dev(
        "bench-compare",
        "--duration",
        "1",
        "--warmup",
        "0",
        "--concurrency",
        "4",
        "--accounts",
        "4",
        "--fsync",
        "both",
        "--json",
        timeout_s=compare_timeout_s,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    kinds = ("standalone", "cluster", "standalone-nofsync", "cluster-nofsync")
    for kind in kinds:
        assert result[kind]["ops_per_s"] > 0 and result[kind]["errors"] == 0
    assert result["ratios"]["cluster / cluster-nofsync"] == (
        result["cluster"]["ops_per_s"] / result["cluster-nofsync"]["ops_per_s"]
    )
    assert "starting cluster-nofsync" in completed.stderr
