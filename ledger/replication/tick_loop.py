"""One thread drives every Raft group of a node: one poll over all their sockets.

PySyncObj gives each ``SyncObj`` its own tick thread and its own poller. A node hosts 16 groups,
so 16 threads take turns on one GIL: each message wakes its group's thread, which has to win the
GIL from the others and from the gRPC loop, and each of them wakes every ``autoTickPeriod`` to
look at its timers. ``TickLoop`` replaces those threads with one:

* every group of the node gets a ``GroupPoller`` (through PySyncObj's ``createPoller``, which
  ``install`` points here), a thin view that registers the group's descriptors in one shared
  ``select.poll`` and remembers which group each belongs to;
* the loop thread polls once, runs the callbacks of the descriptors that are ready (PySyncObj's
  reads, writes and wake-up pipes), then ticks the groups that had an event, plus every group
  whose ``tick_period_s`` has come (elections, heartbeats and timers);
* a group's tick ends with a poll of its own poller; a ``GroupPoller`` answers it without
  waiting, the loop thread does the waiting for all of them.

A group's code runs on the loop thread only, as it ran on its own tick thread before: PySyncObj's
threading rules are unchanged (other threads only enqueue commands and wake the poll), and a
group's descriptors join the poll only once it is started (PySyncObj subscribes them inside
``SyncObj.__init__``, on the building thread). The cost is that one group's long step delays
the others, so:

* after a tick or a round of callbacks longer than ``long_step_s``, the loop polls again before
  the next group's tick: that group reads the heartbeat that arrived meanwhile before it checks
  its election deadline (the loop was busy, its leader was not silent);
* the steps that grow with a shard (a snapshot restore, an outgoing snapshot stream) call
  ``serve_others`` as they go, which lets the other groups read and tick; the busy group is
  never re-entered (its own descriptors wait for the end of its step).

Compaction is O(1) here, and election timeouts (seconds) are far longer than any other step.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pysyncobj.syncobj
from pysyncobj.poller import POLL_EVENT_TYPE, Poller

__all__ = ["GroupPoller", "TickLoop", "building_with", "install"]

log = logging.getLogger(__name__)

long_step_s = 0.05  # a tick or a round of callbacks this long: poll again before going on
dispatch_rounds_max = 4  # polls in a row while callbacks keep taking long
stop_check_s = 1.0  # stop_group checks this often that the loop thread is still alive

_Callback = Callable[[int, int], None]
_Tick = Callable[[float], None]

_POLL_MASKS = (
    (POLL_EVENT_TYPE.READ, select.POLLIN),
    (POLL_EVENT_TYPE.WRITE, select.POLLOUT),
    (POLL_EVENT_TYPE.ERROR, select.POLLERR),
)


def _to_poll_mask(event_mask: int) -> int:
    return sum(poll_bit for ours, poll_bit in _POLL_MASKS if event_mask & ours)


def _from_poll_events(events: int) -> int:
    mask = 0
    if events & select.POLLIN:
        mask |= POLL_EVENT_TYPE.READ
    if events & select.POLLOUT:
        mask |= POLL_EVENT_TYPE.WRITE
    if events & (select.POLLERR | select.POLLHUP):
        mask |= POLL_EVENT_TYPE.ERROR
    return mask


def _thread_alive(thread: threading.Thread | None) -> bool:
    return thread is not None and thread.is_alive()


class _Group:
    """The loop's record of one group: its tick and whether it has an event to look at.
    Until the group is started, its subscriptions wait in ``pending``: the loop must not run a
    callback of a group that is still being built on another thread."""

    __slots__ = ("due_s", "pending", "ready", "tick")

    def __init__(self) -> None:
        self.tick: _Tick | None = None
        self.ready = True
        self.due_s = 0.0
        self.pending: dict[int, tuple[_Callback, int]] | None = {}


class GroupPoller(Poller):  # type: ignore[misc]
    """What one group sees as its poller: its descriptors go into the loop's shared poll."""

    def __init__(self, loop: TickLoop, group: _Group) -> None:
        self._loop = loop
        self._group = group

    def subscribe(self, descr: int, callback: _Callback, eventMask: int) -> None:
        if self._group.pending is not None:  # not started yet
            self._group.pending[descr] = (callback, eventMask)
        else:
            self._loop._subscribe(descr, callback, eventMask, self._group)

    def unsubscribe(self, descr: int) -> None:
        if self._group.pending is not None:
            self._group.pending.pop(descr, None)
        else:
            self._loop._unsubscribe(descr)

    def poll(self, timeout: float) -> None:
        """The end of a group's tick: the loop thread waits for everyone, not here."""


class TickLoop:
    """Drives the ticks of many ``SyncObj`` groups (``autoTick=False``) from one thread."""

    def __init__(self, tick_period_s: float, name: str = "raft-ticks") -> None:
        assert tick_period_s > 0
        self._tick_period_s = tick_period_s
        self._name = name
        self._poll = select.poll()
        self._callbacks: dict[int, tuple[_Callback, _Group | None]] = {}
        self._groups: list[_Group] = []  # replaced, never mutated: the loop iterates a snapshot
        self._lock = threading.Lock()  # guards _groups, _removals and _thread
        self._removals: list[tuple[_Group, Callable[[], None], threading.Event]] = []
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._serving_others = False
        self._waker_read, self._waker_write = os.pipe()
        os.set_blocking(self._waker_read, False)
        os.set_blocking(self._waker_write, False)
        self._subscribe(self._waker_read, self._drain_waker, POLL_EVENT_TYPE.READ, None)

    # -- groups (any thread) ----------------------------------------------------------------

    def new_group(self) -> GroupPoller:
        """A poller for a group about to be built; ``start_group`` hands the loop its tick."""
        return GroupPoller(self, _Group())

    def start_group(self, poller: GroupPoller, tick: _Tick) -> None:
        """Start ticking the group built with ``poller``."""
        group = poller._group
        assert group.tick is None and group.pending is not None, "a group is started once"
        group.tick = tick
        pending, group.pending = group.pending, None
        for descr, (callback, event_mask) in pending.items():
            self._subscribe(descr, callback, event_mask, group)
        with self._lock:
            assert not self._stopping.is_set(), "the loop was stopped"
            self._groups = [*self._groups, group]
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()

    def stop_group(self, poller: GroupPoller, destroy: Callable[[], None]) -> None:
        """Stop ticking a group and run ``destroy`` on the loop thread (PySyncObj is not
        thread-safe); returns once it ran."""
        assert threading.current_thread() is not self._thread, "would wait for itself"
        group, done = poller._group, threading.Event()
        with self._lock:
            running = _thread_alive(self._thread)
            if running:
                self._removals.append((group, destroy, done))
        if running:
            self.wake()
            while not done.wait(stop_check_s):
                if not _thread_alive(self._thread):  # the loop died: nobody else will run it
                    break
            else:
                return
        # The loop never ran or died: nothing else runs the group's code, destroy it here.
        with self._lock:
            self._removals = [r for r in self._removals if r[2] is not done]
            self._groups = [g for g in self._groups if g is not group]
        destroy()

    def stop(self) -> None:
        """Stop the thread; call it after ``stop_group`` for every group."""
        self._stopping.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            self.wake()
            thread.join()
        self._unsubscribe(self._waker_read)
        os.close(self._waker_read)
        os.close(self._waker_write)

    def wake(self) -> None:
        """Cut the loop's current wait short (removals and stop; a group wakes it through its
        own descriptors, PySyncObj's wake-up pipe among them)."""
        with contextlib.suppress(BlockingIOError):  # full: wake-ups enough are pending
            os.write(self._waker_write, b"\0")

    def _drain_waker(self, descr: int, _event_mask: int) -> None:
        try:
            while os.read(descr, 4096):
                pass
        except BlockingIOError:
            pass

    def serve_others(self, poller: GroupPoller) -> None:
        """Called by a group in the middle of a long step (a snapshot restore or stream): read
        the other groups' messages and tick those that are ready or due, once, so that their
        heartbeats and elections do not wait for it. The calling group's own descriptors wait
        for the end of its step, and a group is never re-entered: calls from a group served
        here (or from outside the loop thread) do nothing."""
        if self._serving_others or threading.current_thread() is not self._thread:
            return
        busy = poller._group
        self._serving_others = True
        try:
            self._dispatch(0.0, skip=busy)
            self._tick_due([g for g in self._groups if g is not busy], skip=busy)
        finally:
            self._serving_others = False

    # -- descriptors (the loop thread, or the thread building a group) -----------------------

    def _subscribe(
        self, descr: int, callback: _Callback, event_mask: int, group: _Group | None
    ) -> None:
        self._callbacks[descr] = (callback, group)
        self._poll.register(descr, _to_poll_mask(event_mask))

    def _unsubscribe(self, descr: int) -> None:
        self._callbacks.pop(descr, None)
        with contextlib.suppress(KeyError, ValueError):  # never registered, or closed
            self._poll.unregister(descr)

    # -- the thread ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except Exception:
                log.exception("the Raft tick loop failed a step")
                self._stopping.wait(self._tick_period_s)

    def _step(self) -> None:
        self._remove_requested()
        groups = self._groups
        self._dispatch(self._wait_s(groups, time.monotonic()))
        self._tick_due(groups)

    def _tick_due(self, groups: list[_Group], skip: _Group | None = None) -> None:
        for group in groups:
            now_s = time.monotonic()
            if not group.ready and group.due_s > now_s:
                continue
            group.ready = False
            group.due_s = now_s + self._tick_period_s
            assert group.tick is not None
            try:
                group.tick(0.0)
            except Exception:
                log.exception("a Raft group's tick failed")
            if time.monotonic() - now_s > long_step_s:
                # Messages queued meanwhile reach the other groups before their ticks check
                # election and leader deadlines: the loop was busy, their peers were not silent.
                self._dispatch(0.0, skip)

    def _wait_s(self, groups: list[_Group], now_s: float) -> float:
        wait_s = self._tick_period_s
        for group in groups:
            if group.ready:
                return 0.0
            wait_s = min(wait_s, group.due_s - now_s)
        return max(wait_s, 0.0)

    def _dispatch(self, wait_s: float, skip: _Group | None = None) -> None:
        """Poll every group's descriptors and run the callbacks of those that are ready (but
        ``skip``'s); poll again at once while callbacks take long (a snapshot restore), for the
        same reason as after a long tick."""
        for _ in range(dispatch_rounds_max):
            events = self._poll.poll(wait_s * 1000.0)
            started_s = time.monotonic()
            self._run_callbacks(events, skip)
            if time.monotonic() - started_s <= long_step_s:
                return
            wait_s = 0.0

    def _run_callbacks(self, events: list[tuple[int, int]], skip: _Group | None) -> None:
        """A callback may see a stale event (a nested ``serve_others`` handled it already):
        PySyncObj's handlers read non-blocking and take EAGAIN in their stride."""
        for descr, poll_events in events:
            entry = self._callbacks.get(descr)
            if entry is None:
                continue
            callback, group = entry
            if group is not None:
                if group is skip:
                    continue  # still readable at the next poll: the poll is level-triggered
                group.ready = True
            callback(descr, _from_poll_events(poll_events))

    def _remove_requested(self) -> None:
        with self._lock:
            removals, self._removals = self._removals, []
            removed = {id(group) for group, _destroy, _done in removals}
            if removed:
                self._groups = [g for g in self._groups if id(g) not in removed]
        for _group, destroy, done in removals:
            try:
                destroy()
            finally:
                done.set()


_building = threading.local()


def _create_poller(poller_type: str) -> Any:
    poller = getattr(_building, "poller", None)
    if poller is not None:
        return poller
    return _pysyncobj_create_poller(poller_type)


_pysyncobj_create_poller = pysyncobj.syncobj.createPoller


@contextlib.contextmanager
def building_with(poller: GroupPoller) -> Iterator[None]:
    """``with building_with(poller): SyncObj(...)``: the group built inside gets ``poller``
    (per thread, so groups may be built on several threads at once)."""
    _building.poller = poller
    try:
        yield
    finally:
        _building.poller = None


def install() -> None:
    """Make PySyncObj's ``createPoller`` honour ``building_with`` (idempotent)."""
    pysyncobj.syncobj.createPoller = _create_poller
