"""How the gateway's shard queue retries and follows leaders (ledger.stubs.cluster).

Goal: a NOT_LEADER refusal with a hint sends the next attempt to the hinted node; without a
usable hint attempts go round the shard's replicas; UNAVAILABLE is retried after pauses that
double up to their cap, until the deadline and never past it. UNAVAILABLE ("nothing was
applied") is the answer only when no attempt may have reached a leader; once one attempt's
outcome is unknown (a timeout on a leader that may have proposed the entry), later clean
refusals do not clear it: the answer is DEADLINE_EXCEEDED, so a client without an idempotency
key is never told it may safely retry a write that can still commit.

Method: a ``_ShardQueue`` over scripted attempts, or a ``ClusterStub`` whose node links are
fakes (no network); ``time.monotonic`` and the backoff's sleep run on a fake clock, so pauses
are checked as numbers and no test waits for them.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from ledger import limits
from ledger.config import generate_config, parse_config
from ledger.pb import ledger_internal_pb2 as pb
from ledger.pb import ledger_node_pb2 as node_pb
from ledger.stubs import cluster
from ledger.stubs.cluster import ClusterStub, _AttemptFailed, _Leaders, _ShardQueue
from ledger.stubs.errors import DeadlineExceeded, ShardUnavailable


class Clock:
    """``time.monotonic`` for the stub: moves only by fake attempts and backoff pauses."""

    def __init__(self) -> None:
        self.now_s = 500.0
        self.pauses: list[float] = []

    def monotonic(self) -> float:
        return self.now_s


_real_sleep = asyncio.sleep


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()

    async def sleep(delay_s: float) -> None:
        clock.pauses.append(delay_s)
        clock.now_s += delay_s
        await _real_sleep(0)

    monkeypatch.setattr(cluster, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(cluster.asyncio, "sleep", sleep)
    return clock


def queue_with(outcomes: list[bool]) -> tuple[_ShardQueue, list[str]]:
    """A queue whose n-th attempt fails, with ``outcome_unknown=outcomes[n]`` (the last one
    repeats until the deadline)."""
    config = parse_config(generate_config(), environ={})
    tried: list[str] = []

    async def attempt(address: str, prepared: Any, remaining_s: float) -> list[Any]:
        unknown = outcomes[min(len(tried), len(outcomes) - 1)]
        tried.append(address)
        raise _AttemptFailed(
            "timed out" if unknown else "REFUSAL_NOT_LEADER", outcome_unknown=unknown
        )

    return _ShardQueue(0, _Leaders(config), lambda payloads: payloads, attempt, reads=False), tried


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([False], ShardUnavailable),  # every attempt cleanly refused
        ([True], DeadlineExceeded),  # every attempt timed out
        ([True, False], DeadlineExceeded),  # a timeout, then clean refusals
        ([False, True, False], DeadlineExceeded),  # a timeout in the middle
    ],
)
def test_an_unknown_outcome_sticks(
    clock: Clock, outcomes: list[bool], expected: type[Exception]
) -> None:
    queue, tried = queue_with(outcomes)
    with pytest.raises(expected):
        asyncio.run(queue.call(["command"], timeout_s=0.5))
    assert len(tried) >= len(outcomes)  # the deadline allowed every scripted attempt
    assert clock.pauses  # retried after pauses, on the fake clock


def test_a_call_whose_deadline_passed_in_the_queue_is_not_sent() -> None:
    """It used to ride along with a newer call in the next batch, long after its client gave
    up (a write without an idempotency key could then apply after the client retried)."""
    config = parse_config(generate_config(), environ={})
    sent: list[Any] = []

    async def attempt(address: str, prepared: Any, remaining_s: float) -> list[Any]:
        sent.append(list(prepared))
        await asyncio.sleep(0.3)
        return list(prepared)

    async def scenario() -> None:
        queue = _ShardQueue(3, _Leaders(config), list, attempt, reads=False)
        slow = asyncio.ensure_future(queue.call(["slow"], timeout_s=5.0))
        await asyncio.sleep(0.05)  # "slow" is on the wire; the next two wait behind it
        late = asyncio.ensure_future(queue.call(["late"], timeout_s=0.1))
        fresh = asyncio.ensure_future(queue.call(["fresh"], timeout_s=5.0))
        with pytest.raises(DeadlineExceeded, match="before the call was sent"):
            await late
        assert await slow == ["slow"] and await fresh == ["fresh"]

    asyncio.run(scenario())
    assert sent == [["slow"], ["fresh"]]


# -- leader following and backoff ----------------------------------------------------------------


CONFIG = parse_config(generate_config(), environ={})
SHARD = 1
REPLICAS = [node.address for node in CONFIG.replicas(SHARD)]
PREFERRED = CONFIG.node(CONFIG.shards[SHARD].preferred_leader).address
ATTEMPT_S = 0.001  # fake time one attempt takes


class FakeLink:
    """A node's Submit for the ClusterStub: answers from a script shared by all nodes."""

    def __init__(self, address: str, script: list[node_pb.ShardOutcome], tried: list[str]):
        self.address = address
        self.script = script
        self.tried = tried

    async def wait_turn(self) -> None:
        """Never busy: every batch leaves at once."""

    async def submit(self, shard: int, batch: bytes, timeout_s: float) -> node_pb.ShardOutcome:
        self.tried.append(self.address)
        outcome = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if outcome.refusal == node_pb.REFUSAL_NONE:  # applied: one result per command
            commands = pb.CommandBatch.FromString(batch).commands
            results = [pb.Result(account=pb.AccountRecord()) for _ in commands]
            return node_pb.ShardOutcome(
                shard=shard, result_batch=pb.ResultBatch(results=results).SerializeToString()
            )
        return outcome


def stub_with(script: list[node_pb.ShardOutcome]) -> tuple[ClusterStub, list[str]]:
    stub = ClusterStub(CONFIG)
    tried: list[str] = []
    for node in CONFIG.nodes:  # cached links: no channel is ever opened
        stub._leaders._links[node.address, False] = FakeLink(node.address, script, tried)  # type: ignore[assignment]
    return stub, tried


def refused(refusal: int, hint: str = "") -> node_pb.ShardOutcome:
    return node_pb.ShardOutcome(shard=SHARD, refusal=refusal, leader_address=hint)  # type: ignore[arg-type]


APPLIED = node_pb.ShardOutcome(shard=SHARD)
COMMAND = pb.Command(create_account=pb.CreateAccount(account_id=1))


def test_a_not_leader_hint_sends_the_next_attempt_to_the_hinted_node(clock: Clock) -> None:
    hinted = REPLICAS[2]
    stub, tried = stub_with([refused(node_pb.REFUSAL_NOT_LEADER, hint=hinted), APPLIED])
    result = asyncio.run(stub.submit(SHARD, COMMAND, 5.0))
    assert result.WhichOneof("kind") == "account"
    assert tried == [PREFERRED, hinted]
    assert stub._leaders.leader(SHARD) == hinted  # the next call goes there first
    assert clock.pauses == [limits.leader_backoff_ms_min / 1000]


@pytest.mark.parametrize("hint", ["", "localhost:9999"], ids=["no-hint", "not-a-replica"])
def test_without_a_usable_hint_attempts_go_round_robin_over_the_replicas(
    clock: Clock, hint: str
) -> None:
    stub, tried = stub_with(
        [refused(node_pb.REFUSAL_NOT_LEADER, hint)] * 4 + [APPLIED]  # the 5th attempt succeeds
    )
    asyncio.run(stub.submit(SHARD, COMMAND, 5.0))
    start = REPLICAS.index(PREFERRED)
    assert tried == [REPLICAS[(start + n) % len(REPLICAS)] for n in range(5)]


def test_a_hint_naming_the_refusing_node_itself_moves_on_to_the_next_replica() -> None:
    leaders = _Leaders(CONFIG)
    start = REPLICAS.index(PREFERRED)
    leaders.follow(SHARD, PREFERRED, hint=PREFERRED)
    assert leaders.leader(SHARD) == REPLICAS[(start + 1) % len(REPLICAS)]


def test_a_failure_on_a_node_that_is_no_longer_the_guess_keeps_the_guess() -> None:
    """A late failure from the old leader must not move the cache off a newer hint."""
    leaders = _Leaders(CONFIG)
    hinted = REPLICAS[2]
    leaders.follow(SHARD, PREFERRED, hint=hinted)
    leaders.follow(SHARD, PREFERRED, hint="")
    assert leaders.leader(SHARD) == hinted


def test_unavailable_is_retried_with_doubling_pauses_until_the_deadline(clock: Clock) -> None:
    """UNAVAILABLE (nothing applied): retried on the next replica after a pause that doubles up
    to its cap; no pause reaches past the deadline; the answer is UNAVAILABLE, not unknown."""
    tried: list[str] = []

    async def attempt(address: str, prepared: Any, remaining_s: float) -> list[Any]:
        tried.append(address)
        clock.now_s += ATTEMPT_S
        raise _AttemptFailed("node call failed: UNAVAILABLE", outcome_unknown=False)

    queue = _ShardQueue(SHARD, _Leaders(CONFIG), list, attempt, reads=False)
    timeout_s = 1.0
    started_s = clock.now_s
    with pytest.raises(ShardUnavailable):
        asyncio.run(queue.call(["command"], timeout_s=timeout_s))
    low, high = limits.leader_backoff_ms_min / 1000, limits.leader_backoff_ms_max / 1000
    expected = [min(low * 2**n, high) for n in range(len(clock.pauses))]
    assert clock.pauses == pytest.approx(expected)
    assert len(tried) == len(clock.pauses) + 1 >= 6  # an attempt after every pause
    assert clock.now_s <= started_s + timeout_s - limits.deadline_margin_s  # never past it
    assert set(tried) == set(REPLICAS)  # unreachable nodes move the guess round the replicas


def test_an_applied_unknown_refusal_is_sticky_through_the_cluster_stub(clock: Clock) -> None:
    stub, tried = stub_with(
        [refused(node_pb.REFUSAL_APPLIED_UNKNOWN), refused(node_pb.REFUSAL_NOT_LEADER)]
    )
    with pytest.raises(DeadlineExceeded, match="outcome is unknown"):
        asyncio.run(stub.submit(SHARD, COMMAND, 0.5))
    assert len(tried) > 2  # later clean refusals did not clear it
