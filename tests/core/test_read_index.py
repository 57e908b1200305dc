"""ReadIndex bookkeeping (ledger.replication.read_index): when a read may run, and when not.

Goal: a read runs only after a majority acknowledged, in the leader's term, a probe sent after
the read was requested, and only once the applied index reached the commit index noted when
that probe left; a new leader serves no read before it committed an entry of its own term;
acknowledgements of another term, of an unknown probe, or repeated by one follower never count;
leadership lost, a new term or a probe unanswered for too long fail its readers.
Method: the pure tracker with a fake clock; callbacks record their fates.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.replication import read_index
from ledger.replication.fates import EntryFate
from ledger.replication.read_index import ReadIndex

TERM = 7


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


class Reads:
    """Callbacks that record what they were told."""

    def __init__(self) -> None:
        self.fates: dict[str, list[EntryFate]] = {}

    def callback(self, name: str) -> Any:
        self.fates[name] = []
        return lambda result, fate: self.fates[name].append(fate)

    def fate(self, name: str) -> EntryFate | None:
        told = self.fates[name]
        assert len(told) <= 1, f"{name} was answered twice: {told}"
        return told[0] if told else None


@pytest.fixture
def clock() -> Clock:
    return Clock()


def tracker(clock: Clock, group_size: int = 3) -> ReadIndex:
    return ReadIndex(group_size, clock)


def probe(index: ReadIndex, commit_index: int = 10, term_committed: bool = True) -> Any:
    return index.start_probe(
        is_leader=True, term=TERM, commit_index=commit_index, term_committed=term_committed
    )


def test_a_read_runs_after_a_majority_ack_and_the_applied_index(clock: Clock) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("a"))
    sent = probe(index, commit_index=10)
    assert sent is not None and sent.term == TERM and sent.commit_index == 10
    index.release(applied_index=10, is_leader=True, term=TERM)
    assert reads.fate("a") is None  # no acknowledgement yet
    index.on_ack("n2", sent.probe_id, TERM, current_term=TERM)
    index.release(applied_index=9, is_leader=True, term=TERM)
    assert reads.fate("a") is None  # proven, but the state is not there yet
    index.release(applied_index=10, is_leader=True, term=TERM)
    assert reads.fate("a") is EntryFate.APPLIED
    index.release(applied_index=11, is_leader=True, term=TERM)
    assert reads.fate("a") is EntryFate.APPLIED  # answered once


def test_a_five_node_group_needs_two_acks_and_one_follower_counts_once(clock: Clock) -> None:
    index, reads = tracker(clock, group_size=5), Reads()
    index.request(reads.callback("a"))
    sent = probe(index)
    index.on_ack("n2", sent.probe_id, TERM, current_term=TERM)
    index.on_ack("n2", sent.probe_id, TERM, current_term=TERM)
    index.release(applied_index=99, is_leader=True, term=TERM)
    assert reads.fate("a") is None
    index.on_ack("n3", sent.probe_id, TERM, current_term=TERM)
    index.release(applied_index=99, is_leader=True, term=TERM)
    assert reads.fate("a") is EntryFate.APPLIED


def test_acks_of_another_term_or_an_unknown_probe_never_count(clock: Clock) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("a"))
    sent = probe(index)
    index.on_ack("n2", sent.probe_id, TERM - 1, current_term=TERM)  # a follower of the past
    index.on_ack("n2", sent.probe_id + 1, TERM, current_term=TERM)  # never sent
    index.on_ack("n3", sent.probe_id, TERM, current_term=TERM + 1)  # this leader moved on
    index.release(applied_index=99, is_leader=True, term=TERM)
    assert reads.fate("a") is None
    assert index.probes_out == 1


def test_only_reads_requested_before_the_probe_ride_on_it(clock: Clock) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("early"))
    first = probe(index, commit_index=10)
    index.request(reads.callback("late"))  # arrived after the first probe left
    index.on_ack("n2", first.probe_id, TERM, current_term=TERM)
    index.release(applied_index=50, is_leader=True, term=TERM)
    assert reads.fate("early") is EntryFate.APPLIED
    assert reads.fate("late") is None  # the first probe proves nothing about it
    second = probe(index, commit_index=12)
    assert second.probe_id > first.probe_id
    index.on_ack("n3", second.probe_id, TERM, current_term=TERM)
    index.release(applied_index=50, is_leader=True, term=TERM)
    assert reads.fate("late") is EntryFate.APPLIED


def test_a_later_probe_proves_the_earlier_ones_but_each_waits_for_its_own_index(
    clock: Clock,
) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("a"))
    first = probe(index, commit_index=10)
    index.request(reads.callback("b"))
    second = probe(index, commit_index=20)
    index.on_ack("n2", second.probe_id, TERM, current_term=TERM)  # the first ack was lost
    index.release(applied_index=15, is_leader=True, term=TERM)
    assert reads.fate("a") is EntryFate.APPLIED
    assert reads.fate("b") is None
    index.on_ack("n2", first.probe_id, TERM, current_term=TERM)  # late: nothing left to prove
    index.release(applied_index=20, is_leader=True, term=TERM)
    assert reads.fate("b") is EntryFate.APPLIED


def test_a_new_leader_probes_only_once_an_entry_of_its_term_is_committed(clock: Clock) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("a"))
    assert probe(index, term_committed=False) is None
    assert reads.fate("a") is None  # still waiting, not failed
    sent = probe(index, term_committed=True)
    assert sent is not None and len(sent.callbacks) == 1


def test_a_follower_fails_its_reads_at_once(clock: Clock) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("a"))
    assert (
        index.start_probe(is_leader=False, term=TERM, commit_index=10, term_committed=True) is None
    )
    assert reads.fate("a") is EntryFate.NOT_LEADER


@pytest.mark.parametrize("change", ["deposed", "new term"])
def test_leadership_lost_fails_the_probes_out(clock: Clock, change: str) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("a"))
    sent = probe(index)
    if change == "deposed":
        index.release(applied_index=99, is_leader=False, term=TERM)
    else:
        index.release(applied_index=99, is_leader=True, term=TERM + 1)
    assert reads.fate("a") is EntryFate.NOT_LEADER
    index.on_ack("n2", sent.probe_id, TERM, current_term=TERM)  # too late to matter
    index.release(applied_index=99, is_leader=True, term=TERM)
    assert reads.fate("a") is EntryFate.NOT_LEADER
    assert index.probes_out == 0


def test_an_unanswered_probe_fails_after_its_timeout(clock: Clock) -> None:
    index, reads = tracker(clock), Reads()
    index.request(reads.callback("a"))
    probe(index)
    clock.now_s += read_index.probe_timeout_s / 2
    index.release(applied_index=99, is_leader=True, term=TERM)
    assert reads.fate("a") is None
    clock.now_s += read_index.probe_timeout_s
    index.release(applied_index=99, is_leader=True, term=TERM)
    assert reads.fate("a") is EntryFate.UNKNOWN
    assert index.probes_out == 0


def test_a_group_of_one_needs_no_ack(clock: Clock) -> None:
    index, reads = tracker(clock, group_size=1), Reads()
    index.request(reads.callback("a"))
    probe(index, commit_index=3)
    index.release(applied_index=3, is_leader=True, term=TERM)
    assert reads.fate("a") is EntryFate.APPLIED


def test_too_many_waiting_reads_are_refused(clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read_index, "reads_requested_max", 2)
    index, reads = tracker(clock), Reads()
    for name in ("a", "b", "c"):
        index.request(reads.callback(name))
    assert reads.fate("c") is EntryFate.OVERLOADED
    assert reads.fate("a") is None and reads.fate("b") is None
