"""NodeLink's adaptive linger (ledger.stubs.node_link).

Goal: a lone caller never waits; under concurrency the wait follows the recent Submit round
trip (a fraction of it) and never exceeds the configured cap; a link idle for a while stops
waiting. Method: the link's state is set directly and ``linger_s`` read; no timing is measured.
"""

from __future__ import annotations

import time

import pytest

from ledger import limits
from ledger.stubs.node_link import NodeLink

CAP_S = limits.group_commit_linger_max_ms / 1000


def link(batches: int, rtt_s: float, since_last_s: float = 0.0) -> NodeLink:
    node_link = NodeLink(stub=None)  # type: ignore[arg-type] - linger_s never calls the node
    node_link._last_send_batches = batches
    node_link._rtt_ewma_s = rtt_s
    node_link._last_send_s = time.monotonic() - since_last_s
    return node_link


def test_a_lone_caller_never_waits() -> None:
    assert link(batches=1, rtt_s=0.5).linger_s() == 0.0


@pytest.mark.parametrize("rtt_s", [0.001, 0.004, 0.012])
def test_under_load_the_wait_follows_the_round_trip(rtt_s: float) -> None:
    wait_s = link(batches=6, rtt_s=rtt_s).linger_s()
    assert 0 < wait_s <= limits.group_commit_linger_rtt_fraction * rtt_s


def test_the_wait_is_capped() -> None:
    assert link(batches=6, rtt_s=10.0).linger_s() <= CAP_S


def test_time_since_the_last_submit_counts_and_an_idle_link_does_not_wait() -> None:
    assert link(batches=6, rtt_s=10.0, since_last_s=CAP_S / 2).linger_s() <= CAP_S / 2
    assert link(batches=6, rtt_s=10.0, since_last_s=CAP_S * 3).linger_s() == 0.0
