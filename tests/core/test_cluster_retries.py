"""How the gateway's shard queue answers when every attempt failed (ledger.stubs.cluster).

Goal: UNAVAILABLE ("nothing was applied") only when no attempt may have reached a leader;
once one attempt's outcome is unknown (a timeout on a leader that may have proposed the
entry), later clean refusals do not clear it: the answer is DEADLINE_EXCEEDED, so a client
without an idempotency key is never told it may safely retry a write that can still commit.
Method: a ``_ShardQueue`` over scripted attempts (no network); the deadline is short.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ledger.config import generate_config, parse_config
from ledger.stubs.cluster import _AttemptFailed, _Leaders, _ShardQueue
from ledger.stubs.errors import DeadlineExceeded, ShardUnavailable


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

    return _ShardQueue(0, _Leaders(config), lambda payloads: payloads, attempt), tried


@pytest.mark.parametrize(
    ("outcomes", "expected"),
    [
        ([False], ShardUnavailable),  # every attempt cleanly refused
        ([True], DeadlineExceeded),  # every attempt timed out
        ([True, False], DeadlineExceeded),  # a timeout, then clean refusals
        ([False, True, False], DeadlineExceeded),  # a timeout in the middle
    ],
)
def test_an_unknown_outcome_sticks(outcomes: list[bool], expected: type[Exception]) -> None:
    queue, tried = queue_with(outcomes)
    with pytest.raises(expected):
        asyncio.run(queue.call(["command"], timeout_s=0.5))
    assert len(tried) >= len(outcomes)  # the deadline allowed every scripted attempt


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
        queue = _ShardQueue(3, _Leaders(config), list, attempt)
        slow = asyncio.ensure_future(queue.call(["slow"], timeout_s=5.0))
        await asyncio.sleep(0.05)  # "slow" is on the wire; the next two wait behind it
        late = asyncio.ensure_future(queue.call(["late"], timeout_s=0.1))
        fresh = asyncio.ensure_future(queue.call(["fresh"], timeout_s=5.0))
        with pytest.raises(DeadlineExceeded, match="before the call was sent"):
            await late
        assert await slow == ["slow"] and await fresh == ["fresh"]

    asyncio.run(scenario())
    assert sent == [["slow"], ["fresh"]]
