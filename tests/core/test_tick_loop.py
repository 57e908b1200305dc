"""``TickLoop``: one thread drives the ticks of every Raft group of a node.

Goal: a group's tick runs after a callback of one of its descriptors ran (and only that group is
woken by it), every group is ticked at least once a period without any event, a failing tick
does not stop the others, a long tick lets the messages that queued meanwhile reach the other
groups before their ticks, ``stop_group`` runs its ``destroy`` on the loop thread and ends the
group's ticks, PySyncObj's ``createPoller`` hands a group its ``GroupPoller`` only inside
``building_with``, and a real ``SyncObj`` group is driven by the loop.

Method: fake groups over socket pairs (no PySyncObj) whose ticks record what they saw; waits
are bounded by a generous timeout and never assert on durations.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator

import pysyncobj.serializer
import pysyncobj.syncobj
import pytest
from pysyncobj.poller import POLL_EVENT_TYPE, PollPoller

from ledger.replication import tick_loop
from ledger.replication.tick_loop import GroupPoller, TickLoop, building_with

PERIOD_S = 0.05
WAIT_S = 10.0


class FakeGroup:
    """A group with one socket: its callback reads what arrived, its tick records it."""

    def __init__(self, loop: TickLoop, name: str, tick_hook: object = None) -> None:
        self.name = name
        self.poller = loop.new_group()
        self.inside, self.outside = socket.socketpair()
        self.inside.setblocking(False)
        self.received = bytearray()
        self.ticks: list[bytes] = []  # what had been received at each tick
        self.ticked = threading.Condition()
        self.threads: set[str] = set()
        self.tick_hook = tick_hook
        self.poller.subscribe(self.inside.fileno(), self._on_readable, POLL_EVENT_TYPE.READ)
        loop.start_group(self.poller, self.tick)

    def _on_readable(self, _descr: int, event_mask: int) -> None:
        assert event_mask & POLL_EVENT_TYPE.READ
        self.received += self.inside.recv(4096)
        self.threads.add(threading.current_thread().name)

    def tick(self, time_to_wait_s: float) -> None:
        assert time_to_wait_s == 0.0  # the loop waits, never a group
        self.threads.add(threading.current_thread().name)
        if callable(self.tick_hook):
            self.tick_hook(self)
        with self.ticked:
            self.ticks.append(bytes(self.received))
            self.ticked.notify_all()

    def wait_for_tick(self, predicate: object) -> None:
        with self.ticked:
            assert self.ticked.wait_for(lambda: predicate(self.ticks), WAIT_S), self.name

    def close(self) -> None:
        self.inside.close()
        self.outside.close()


@pytest.fixture
def loop() -> Iterator[TickLoop]:
    ticks = TickLoop(PERIOD_S, name="test-ticks")
    yield ticks
    ticks.stop()


def test_an_event_runs_its_callback_then_ticks_its_group(loop: TickLoop) -> None:
    group = FakeGroup(loop, "a")
    group.outside.sendall(b"hello")
    group.wait_for_tick(lambda ticks: b"hello" in ticks)
    assert group.threads == {"test-ticks"}
    group.close()


def test_every_group_is_ticked_without_events(loop: TickLoop) -> None:
    groups = [FakeGroup(loop, name) for name in "abc"]
    for group in groups:
        group.wait_for_tick(lambda ticks: len(ticks) >= 3)
    for group in groups:
        group.close()


def test_an_event_wakes_only_its_own_group(loop: TickLoop) -> None:
    quiet, busy = FakeGroup(loop, "quiet"), FakeGroup(loop, "busy")
    quiet.wait_for_tick(lambda ticks: len(ticks) >= 1)
    busy.wait_for_tick(lambda ticks: len(ticks) >= 1)
    with quiet.ticked:
        before = len(quiet.ticks)
    for number in range(20):  # twenty wake-ups of "busy", each answered by a tick
        busy.outside.sendall(b"x")
        busy.wait_for_tick(lambda ticks, n=number: ticks.count(b"x" * (n + 1)) >= 1)
    with quiet.ticked:
        after = len(quiet.ticks)
    # "quiet" only got its periodic ticks meanwhile: far fewer than twenty.
    assert after - before < 20, (before, after)
    quiet.close()
    busy.close()


def test_a_failing_tick_does_not_stop_the_others(
    loop: TickLoop, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(_group: FakeGroup) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger=tick_loop.__name__):
        broken = FakeGroup(loop, "broken", tick_hook=fail)
        healthy = FakeGroup(loop, "healthy")
        healthy.outside.sendall(b"still here")
        healthy.wait_for_tick(lambda ticks: b"still here" in ticks)
        broken.outside.sendall(b"x")
        healthy.wait_for_tick(lambda ticks: len(ticks) >= 3)
    assert any("tick failed" in record.getMessage() for record in caplog.records)
    broken.close()
    healthy.close()


def test_after_a_long_tick_the_others_read_their_messages_before_ticking(
    loop: TickLoop,
) -> None:
    """The stand-in for an election check: once a long tick of another group ends, a group's
    next tick must already see the message that arrived meanwhile (its peer was not silent,
    the loop was busy)."""
    released = threading.Event()
    later: list[FakeGroup] = []
    seen_after_release: list[bytes] = []

    def hold_the_loop(group: FakeGroup) -> None:
        if group.received == b"go" and not released.is_set():
            later[0].outside.sendall(b"heartbeat")  # arrives while this tick runs
            time.sleep(max(tick_loop.long_step_s, PERIOD_S) * 2)  # "other" falls due meanwhile
            released.set()

    def note(group: FakeGroup) -> None:
        if released.is_set():
            seen_after_release.append(bytes(group.received))

    slow = FakeGroup(loop, "slow", tick_hook=hold_the_loop)
    other = FakeGroup(loop, "other", tick_hook=note)
    later.append(other)
    other.wait_for_tick(lambda ticks: len(ticks) >= 2)  # both are in the loop's rounds now
    slow.outside.sendall(b"go")
    assert released.wait(WAIT_S)
    other.wait_for_tick(lambda ticks: b"heartbeat" in ticks)
    assert seen_after_release[0] == b"heartbeat", seen_after_release
    slow.close()
    other.close()


def test_a_long_step_serves_the_other_groups_but_not_itself(loop: TickLoop) -> None:
    """A snapshot restore calls ``serve_others`` every so many records: the other groups read
    their messages and tick meanwhile; the restoring group is never re-entered."""
    others_saw: list[bytes] = []
    own_during: list[bytes] = []
    later: list[FakeGroup] = []

    def restore(group: FakeGroup) -> None:
        if group.received != b"restore":
            return
        other = later[0]
        other.outside.sendall(b"heartbeat")
        group.outside.sendall(b"own")  # for the restoring group itself: must wait
        for _ in range(1_000):
            loop.serve_others(group.poller)
            with other.ticked:
                if b"heartbeat" in other.ticks:
                    break
            time.sleep(0.005)
        with other.ticked:
            others_saw.extend(other.ticks)
        own_during.append(bytes(group.received))

    def slow_on_heartbeat(group: FakeGroup) -> None:
        if group.received == b"heartbeat":  # a long tick inside serve_others: the loop polls
            time.sleep(tick_loop.long_step_s * 2)  # again, and must still skip "restoring"

    restoring = FakeGroup(loop, "restoring", tick_hook=restore)
    other = FakeGroup(loop, "other", tick_hook=slow_on_heartbeat)
    later.append(other)
    other.wait_for_tick(lambda ticks: len(ticks) >= 2)
    restoring.outside.sendall(b"restore")
    restoring.wait_for_tick(lambda ticks: b"restoreown" in ticks)
    assert b"heartbeat" in others_saw  # served during the restoring group's step
    assert own_during == [b"restore"]  # its own message waited for the end of the step
    restoring.close()
    other.close()


def test_serve_others_outside_the_loop_thread_does_nothing(loop: TickLoop) -> None:
    group = FakeGroup(loop, "a")
    group.wait_for_tick(lambda ticks: len(ticks) >= 1)
    group.outside.sendall(b"x")
    loop.serve_others(loop.new_group())  # from the test thread: must not run any group
    assert group.threads == {"test-ticks"}
    group.close()


def test_stop_group_destroys_it_on_the_loop_thread_and_ends_its_ticks(loop: TickLoop) -> None:
    group = FakeGroup(loop, "a")
    group.wait_for_tick(lambda ticks: len(ticks) >= 1)
    destroyed_on: list[str] = []

    def destroy() -> None:
        destroyed_on.append(threading.current_thread().name)
        group.poller.unsubscribe(group.inside.fileno())

    loop.stop_group(group.poller, destroy)
    assert destroyed_on == ["test-ticks"]
    with group.ticked:
        count = len(group.ticks)
    group.outside.sendall(b"after")
    other = FakeGroup(loop, "b")  # proves the loop kept going for a few periods
    other.wait_for_tick(lambda ticks: len(ticks) >= 3)
    with group.ticked:
        assert len(group.ticks) == count
    group.close()
    other.close()


def test_a_group_being_built_gets_no_callbacks_until_it_is_started(loop: TickLoop) -> None:
    """PySyncObj binds and subscribes its sockets inside ``SyncObj.__init__``, on the building
    thread: the loop must not run their callbacks before the group is complete."""
    running = FakeGroup(loop, "running")  # the loop is up and polling
    running.wait_for_tick(lambda ticks: len(ticks) >= 1)
    poller = loop.new_group()
    inside, outside = socket.socketpair()
    calls: list[str] = []
    poller.subscribe(inside.fileno(), lambda _d, _m: calls.append("early"), POLL_EVENT_TYPE.READ)
    outside.sendall(b"x")  # readable at once
    running.wait_for_tick(lambda ticks: len(ticks) >= 4)  # several polls went by
    assert calls == []
    poller.unsubscribe(inside.fileno())  # an unsubscribe before the start is honoured too
    arrived = threading.Event()

    def on_readable(_descr: int, _mask: int) -> None:
        inside.recv(16)
        arrived.set()

    poller.subscribe(inside.fileno(), on_readable, POLL_EVENT_TYPE.READ)
    loop.start_group(poller, lambda _wait_s: None)
    assert arrived.wait(WAIT_S)
    assert calls == []
    running.close()
    inside.close()
    outside.close()


class _LoopKiller(BaseException):
    """Not an Exception: nothing in the loop catches it, so its thread dies."""


def test_stop_group_after_the_loop_thread_died_destroys_on_the_caller(
    loop: TickLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tick_loop, "stop_check_s", 0.01)
    monkeypatch.setattr(threading, "excepthook", lambda _args: None)  # expected death
    died = threading.Event()

    def kill(_group: FakeGroup) -> None:
        died.set()
        raise _LoopKiller

    victim = FakeGroup(loop, "victim", tick_hook=kill)
    assert died.wait(WAIT_S)
    destroyed_on: list[str] = []
    loop.stop_group(victim.poller, lambda: destroyed_on.append(threading.current_thread().name))
    assert destroyed_on == [threading.current_thread().name]
    victim.close()


def test_stop_group_before_the_loop_runs_destroys_at_once() -> None:
    ticks = TickLoop(PERIOD_S)
    poller = ticks.new_group()
    destroyed = []
    ticks.stop_group(poller, lambda: destroyed.append(True))
    assert destroyed == [True]
    ticks.stop()


def test_the_poll_of_a_group_never_waits(loop: TickLoop) -> None:
    poller = loop.new_group()
    started = time.monotonic()
    poller.poll(WAIT_S)  # PySyncObj ends every tick with this: it must return at once
    assert time.monotonic() - started < WAIT_S


def test_create_poller_hands_out_the_group_poller_only_while_building(loop: TickLoop) -> None:
    tick_loop.install()
    poller = loop.new_group()
    with building_with(poller):
        assert pysyncobj.syncobj.createPoller("auto") is poller
    assert isinstance(pysyncobj.syncobj.createPoller("auto"), PollPoller)
    assert isinstance(poller, GroupPoller)


def test_a_real_syncobj_group_is_driven_by_the_loop(
    loop: TickLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A one-member PySyncObj group on the loop elects itself and applies a command."""
    tick_loop.install()
    # A plain SyncObj: PySyncObj's own serializer, even if a ShardReplica built earlier in this
    # process installed ours (which only serves shard replicas).
    monkeypatch.setattr(pysyncobj.syncobj, "Serializer", pysyncobj.serializer.Serializer)

    class Counter(pysyncobj.SyncObj):  # type: ignore[misc]
        def __init__(self, address: str, poller: GroupPoller) -> None:
            self.value = 0
            conf = pysyncobj.SyncObjConf(autoTick=False, appendEntriesUseBatch=False)
            with building_with(poller):
                super().__init__(address, [], conf)

        @pysyncobj.replicated  # type: ignore[untyped-decorator]
        def add(self, amount: int) -> int:
            self.value += amount
            return self.value

    from ledger.tools.processes import free_port_range

    poller = loop.new_group()
    counter = Counter(f"127.0.0.1:{free_port_range(1)}", poller)
    loop.start_group(poller, counter._onTick)
    done = threading.Event()
    results: list[object] = []

    def on_done(result: object, error: object) -> None:
        results.append((result, error))
        done.set()

    deadline = time.monotonic() + WAIT_S
    while not counter._isLeader() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert counter._isLeader()
    counter.add(5, callback=on_done)
    assert done.wait(WAIT_S)
    assert results == [(5, pysyncobj.FAIL_REASON.SUCCESS)]
    loop.stop_group(poller, counter.destroy)
