"""ReadIndex: proof of leadership for linearizable reads without a log entry.

A leader may answer a read from its own state once two things hold (Raft, section 6.4):

1. **It was still the leader after the read arrived.** It sends a probe, carrying its term and
   a fresh probe id, to every follower *after* the read arrived; a follower acknowledges only
   while it is in that same term and follows this leader. A majority (the leader counts
   itself) acknowledging a probe in term ``t`` means no other leader of a later term had been
   elected when the read arrived: that leader would have needed the vote of a majority, and a
   voter moves to the later term for good, so it could not acknowledge term ``t`` afterwards.
2. **Its state includes every write acknowledged before the read arrived.** The leader notes its
   commit index when it sends the probe. It counts only once it has committed an entry of its
   own term (PySyncObj's no-op at election): from then on, its commit index covers every entry
   committed by any earlier leader. The read is answered once the applied index reaches it.

So no clock is trusted (no lease): a paused or partitioned old leader gets no majority for its
probes, and its readers fail after ``probe_timeout_s`` instead of reading stale data. Reads that
arrive while a probe is out wait for the next one: one probe round serves a whole batch.

This module is the bookkeeping only, with no I/O and no PySyncObj: ``ShardReplica`` calls it on
its tick thread (``start_probe``, ``on_ack``, ``release``) and from any thread (``request``),
and sends the probes. Every callback gets ``(None, EntryFate.APPLIED)`` when its read may run,
or a failure fate; it runs on the tick thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ledger.replication.fates import EntryCallback, EntryFate

__all__ = ["Probe", "ReadIndex", "probe_timeout_s", "reads_requested_max"]

probe_timeout_s = 2.0  # an unanswered probe fails its readers (the gateway retries elsewhere)
reads_requested_max = 10_000  # callbacks waiting for the next probe; beyond: OVERLOADED


@dataclass
class Probe:
    """One round of acknowledgements: who answered, what its readers wait for."""

    probe_id: int
    term: int
    commit_index: int  # the leader's commit index when the probe left
    sent_s: float
    callbacks: list[EntryCallback]
    acks: set[Any] = field(default_factory=set)  # the followers (PySyncObj nodes) that answered


class ReadIndex:
    def __init__(self, group_size: int, now_s: Callable[[], float]) -> None:
        assert group_size >= 1
        self._group_size = group_size
        self._now_s = now_s
        self._lock = threading.Lock()  # guards _requested: the only state shared across threads
        self._requested: list[EntryCallback] = []
        self._probes: dict[int, Probe] = {}  # tick thread only, as below
        self._confirmed: list[Probe] = []  # proven; waiting for the applied index
        self._last_probe_id = 0

    # -- any thread ------------------------------------------------------------------------

    def request(self, callback: EntryCallback) -> None:
        """Ask for a proof; ``callback`` runs on the tick thread once the read may run."""
        with self._lock:
            if len(self._requested) < reads_requested_max:
                self._requested.append(callback)
                return
        callback(None, EntryFate.OVERLOADED)

    # -- tick thread -----------------------------------------------------------------------

    def start_probe(
        self, *, is_leader: bool, term: int, commit_index: int, term_committed: bool
    ) -> Probe | None:
        """The probe to send now for the reads requested so far, if any.

        Not the leader: those reads fail. Leader, but nothing of its term committed yet (just
        elected): they wait for a later tick, since the commit index does not yet cover every
        earlier leader's entries.
        """
        if not is_leader:
            self._fail(self._take_requested(), EntryFate.NOT_LEADER)
            return None
        if not term_committed:
            return None
        callbacks = self._take_requested()
        if not callbacks:
            return None
        self._last_probe_id += 1
        probe = Probe(self._last_probe_id, term, commit_index, self._now_s(), callbacks)
        self._probes[probe.probe_id] = probe
        if self._majority(probe):  # a group of one needs no one else
            self._confirm_up_to(probe.probe_id)
        return probe

    def on_ack(self, node: Any, probe_id: int, ack_term: int, *, current_term: int) -> None:
        """A follower acknowledged ``probe_id`` in ``ack_term``; counts only in this term."""
        probe = self._probes.get(probe_id)
        if probe is None or ack_term != probe.term or current_term != probe.term:
            return
        probe.acks.add(node)
        if self._majority(probe):
            self._confirm_up_to(probe_id)

    def release(self, *, applied_index: int, is_leader: bool, term: int) -> None:
        """Run the callbacks whose proof is complete and whose state is applied; fail probes
        that can no longer succeed (leadership lost, a new term) or took too long. (Reads not
        yet probed are failed by ``start_probe`` when this replica is not the leader.)"""
        ready = [probe for probe in self._confirmed if probe.commit_index <= applied_index]
        if ready:
            self._confirmed = [p for p in self._confirmed if p.commit_index > applied_index]
            for probe in ready:
                self._succeed(probe.callbacks)
        deadline_s = self._now_s() - probe_timeout_s
        for probe_id, probe in list(self._probes.items()):
            if not is_leader or probe.term != term:
                del self._probes[probe_id]
                self._fail(probe.callbacks, EntryFate.NOT_LEADER)
            elif probe.sent_s < deadline_s:
                del self._probes[probe_id]
                self._fail(probe.callbacks, EntryFate.UNKNOWN)

    @property
    def probes_out(self) -> int:
        return len(self._probes)

    # -- internals -------------------------------------------------------------------------

    def _majority(self, probe: Probe) -> bool:
        return 2 * (1 + len(probe.acks)) > self._group_size

    def _confirm_up_to(self, probe_id: int) -> None:
        """A probe sent later proves leadership for the reads of every earlier probe too."""
        for earlier_id in sorted(i for i in self._probes if i <= probe_id):
            self._confirmed.append(self._probes.pop(earlier_id))

    def _take_requested(self) -> list[EntryCallback]:
        with self._lock:
            callbacks, self._requested = self._requested, []
        return callbacks

    @staticmethod
    def _succeed(callbacks: list[EntryCallback]) -> None:
        for callback in callbacks:
            callback(None, EntryFate.APPLIED)

    @staticmethod
    def _fail(callbacks: list[EntryCallback], fate: EntryFate) -> None:
        assert fate is not EntryFate.APPLIED
        for callback in callbacks:
            callback(None, fate)
