"""When the client retries a call, how long it waits, and when it gives up.

Retried failures: ``UNAVAILABLE``, ``DEADLINE_EXCEEDED`` (one attempt's timeout, or the
server's) and ``RESOURCE_EXHAUSTED`` (except a message over gRPC's size limit, which no retry
can fix). Nothing else is retried: the other codes are answers, and the same request would get
the same answer.

Which calls may be retried on those failures depends on what a repeat can do (``Safety``):

* reads (``Get*``, ``ListTransactions``): always; they have no effect.
* writes with an idempotency key (``CreateAccount(s)``, ``CreateTransaction(s)``,
  ``CreateTransfer``): always, with the same key on every attempt. The server returns the first
  attempt's result to a repeat, so the write is applied at most once whatever the failures.
* writes without one (``SettleTransaction``, ``CancelTransaction``: the API gives them no key
  field): only when the failure proves that nothing was applied, that is ``RESOURCE_EXHAUSTED``
  (the server refuses those before it runs anything) and ``UNAVAILABLE`` with reason
  ``SHARD_UNAVAILABLE`` (the gateway says so only when no attempt can have reached a shard
  leader). After an unknown outcome (a timeout, a lost connection) they are not resent: a
  second settle of a settled transaction would fail with ``TRANSACTION_NOT_PENDING`` and hide
  that the first one worked, and a caller racing another for the same transaction must learn
  who won. The caller gets the error and can read the transaction to see where it stands.

All attempts of one call fit in ``deadline_s``; each attempt has at most ``attempt_timeout_s``
(less when the deadline is closer). Between attempts the client sleeps a random pause in
[c/2, c], where c starts at ``backoff_initial_s`` and doubles up to ``backoff_max_s`` ("equal
jitter": never a burst of immediate retries, and callers that failed together spread out). It
gives up, raising the last error, when the next pause would reach the deadline, or after
``attempts_max`` attempts when that is set.
"""

from __future__ import annotations

import dataclasses
import enum
import random
import time
from collections.abc import Callable, Iterator

import grpc

from ledger.client.errors import LedgerError
from ledger.reasons import Reason

__all__ = [
    "DEFAULT_RETRY",
    "RETRIED_CODES",
    "Attempts",
    "RetryPolicy",
    "Safety",
    "may_retry",
]

RETRIED_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# Reasons that prove nothing was applied (ledger.gateway: a shard without a leader that no
# attempt reached; a full queue that refused the call at once).
_NOTHING_APPLIED_REASONS = frozenset({Reason.SHARD_UNAVAILABLE.value, Reason.OVERLOADED.value})
_TOO_LARGE = "larger than max"  # gRPC's own RESOURCE_EXHAUSTED for an oversized message


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """The named limits of the client's retries, in seconds.

    Defaults: ``deadline_s`` 30 covers a shard failover (measured 1.6-5.2 s) or a gateway
    restart several times over; ``attempt_timeout_s`` 10 lets an attempt ride out one failover
    inside the gateway (which follows the new leader itself) instead of timing out first, and
    stays far below the gateway's cap on one call (60 s, ``limits.deadline_ms_max``: a longer
    attempt is cut to that by the server); the backoff
    starts at 50 ms (a refused call is answered at once, so a short first pause costs little)
    and stops growing at 2 s so that a recovered server is noticed quickly.
    """

    deadline_s: float = 30.0  # every attempt and pause of one call
    attempt_timeout_s: float = 10.0  # one attempt
    backoff_initial_s: float = 0.05  # ceiling of the first pause
    backoff_max_s: float = 2.0  # the ceiling stops doubling here
    attempts_max: int | None = None  # None: as many as fit in deadline_s

    def __post_init__(self) -> None:
        if not self.deadline_s > 0 or not self.attempt_timeout_s > 0:
            raise ValueError("deadline_s and attempt_timeout_s must be positive")
        if not 0 <= self.backoff_initial_s <= self.backoff_max_s:
            raise ValueError("need 0 <= backoff_initial_s <= backoff_max_s")
        if self.attempts_max is not None and self.attempts_max < 1:
            raise ValueError("attempts_max must be at least 1")


DEFAULT_RETRY = RetryPolicy()


class Safety(enum.Enum):
    """What a repeat of a call can do, which decides which failures it is retried on."""

    READ = "read"  # no effect
    KEYED = "keyed"  # a write carrying an idempotency key, the same on every attempt
    UNKEYED = "unkeyed"  # a write without a key: retried only when nothing was applied


def may_retry(error: LedgerError, safety: Safety) -> bool:
    """Whether a call of this safety may be sent again after this failure."""
    if error.code not in RETRIED_CODES:
        return False
    if error.code is grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in error.message:
        return False
    if safety is Safety.UNKEYED:
        nothing_applied = error.code is grpc.StatusCode.RESOURCE_EXHAUSTED or (
            error.reason in _NOTHING_APPLIED_REASONS
        )
        return nothing_applied
    return True


class Attempts:
    """The retry state of one call: its deadline, the attempts made, the next pause.

    Created when the call starts; ``timeout_s()`` before each attempt, ``pause_s(error)`` after
    a failure (``None``: give up and raise it).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        safety: Safety,
        rng: random.Random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._safety = safety
        self._clock = clock
        self._deadline_s = clock() + policy.deadline_s
        self._pauses = _pauses(policy, rng)
        self.count = 0

    def timeout_s(self) -> float:
        """The timeout of the next attempt (and counts it)."""
        self.count += 1
        remaining_s = self._deadline_s - self._clock()
        return max(min(self._policy.attempt_timeout_s, remaining_s), 0.001)

    def may_retry(self, error: LedgerError) -> bool:
        """Whether this failure may be retried at all (``may_retry`` for this call)."""
        return may_retry(error, self._safety)

    def pause_s(self, error: LedgerError) -> float | None:
        """How long to wait before the next attempt, or None if there is none."""
        if not self.may_retry(error):
            return None
        attempts_max = self._policy.attempts_max
        if attempts_max is not None and self.count >= attempts_max:
            return None
        pause_s = next(self._pauses)
        if self._clock() + pause_s >= self._deadline_s:
            return None
        return pause_s


def _pauses(policy: RetryPolicy, rng: random.Random) -> Iterator[float]:
    ceiling_s = policy.backoff_initial_s
    while True:
        yield rng.uniform(ceiling_s / 2, ceiling_s)
        ceiling_s = min(ceiling_s * 2, policy.backoff_max_s)
