"""``ledger-dev bench-apply`` end to end, on a tiny load.

Goal: the command applies real entries to two LevelDB replicas, reports a per-item figure for
every entry size asked for, and checks that the replicas ended identical (it fails otherwise).
No timing assertions: the figures are for the README, not for the test.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable

import pytest
from harness import run_dev

from ledger.cli import bench_apply


def test_bench_apply_reports_every_entry_size() -> None:
    completed = run_dev(
        "bench-apply",
        "--accounts",
        "20",
        "--items",
        "200",
        "--items-per-entry",
        "1,50",
        "--repeat",
        "2",
        "--preload",
        "100",
        "--json",
        timeout_s=120,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert [f["items_per_entry"] for f in result["figures"]] == [1, 50]
    for figure in result["figures"]:
        for kind in ("reexecute_us", "leader_us", "follower_us"):
            best, median = figure[kind]
            assert 0 < best <= median


def test_bench_apply_refuses_bad_entry_sizes() -> None:
    completed = run_dev("bench-apply", "--items-per-entry", "0,5000", timeout_s=60)
    assert completed.returncode == 2 and "sizes must be" in completed.stderr


def test_diverging_replicas_fail_the_measurement(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench_apply, "digest_items", _digests_that_differ())
    with pytest.raises(AssertionError, match="diverged"):
        bench_apply.measure_apply(
            tmp_path, accounts=5, preload=0, items=10, per_entry_sizes=[5], repeat=1
        )


def _digests_that_differ() -> Callable[[object], str]:
    answers = iter(["one", "two", "three"])
    return lambda _items: next(answers)
