"""Retries: which failures, which calls, the same idempotency key every time, backoff inside
one deadline.

Goal: a keyed write is resent with byte-identical requests (so the server applies it once);
reads are retried; settle and cancel (no key) are resent only when the server says nothing
was applied; nothing else is retried; the attempts stop at the overall deadline, each attempt
within its own timeout. Method: the scripted server, on both clients; timings are measured
with generous margins (the machine is shared), the backoff itself is checked with a seeded
random generator.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import grpc
import pytest

from client.conftest import Ledger
from client.fake_server import Fail, FakeLedger, unavailable
from ledger.client import (
    DeadlineExceeded,
    FailedPrecondition,
    LedgerError,
    RetryPolicy,
    Unavailable,
)
from ledger.client.errors import error_for
from ledger.client.retry import Attempts, Safety, may_retry
from ledger.pb import ledger_api_pb2 as api

ACCOUNT = "0123456789abcdef"
OTHER = "fedcba9876543210"
TX = ACCOUNT + "0000000000000002"
TRANSACTION = api.Transaction(id=TX, amount=5, status=api.TRANSACTION_STATUS_SETTLED)
CLOCK_SLACK_S = 0.02  # gRPC rounds deadlines on the way; the server reads its own clock
SLOW_MACHINE_S = 1.0  # how late a loaded machine may finish a timed call


def _slow(
    seconds: float, response: api.CreateTransactionResponse
) -> Callable[[object], api.CreateTransactionResponse]:
    def handle(request: object) -> api.CreateTransactionResponse:
        time.sleep(seconds)
        return response

    return handle


@pytest.mark.parametrize(
    "failure",
    [
        unavailable(),  # the gateway: a shard without a leader
        unavailable(reason=None),  # gRPC: the connection broke (outcome unknown)
        Fail(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded", "OUTCOME_UNKNOWN"),
        Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue is full", "OVERLOADED"),
    ],
    ids=["shard-unavailable", "no-connection", "outcome-unknown", "overloaded"],
)
def test_a_keyed_write_is_resent_with_the_same_key(
    fake: FakeLedger, ledger: Ledger, failure: Fail
) -> None:
    answer = api.CreateTransactionResponse(transaction=TRANSACTION)
    fake.on("CreateTransaction", failure, failure, answer)
    assert ledger("create_transaction", ACCOUNT, 5, settled=True) == TRANSACTION
    sent = fake.requests("CreateTransaction")
    assert len(sent) == 3
    assert sent[0].idempotency_key and sent[0] == sent[1] == sent[2]
    assert len({request.SerializeToString() for request in sent}) == 1  # the same bytes


def test_every_keyed_write_is_retried(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("CreateAccount", unavailable(), api.CreateAccountResponse())
    fake.on("CreateTransfer", unavailable(), api.CreateTransferResponse())
    in_flight = Fail(
        grpc.StatusCode.DEADLINE_EXCEEDED, "in flight, finishes on its own", "TRANSFER_IN_FLIGHT"
    )
    ledger("create_account")
    fake.on("CreateTransfer", in_flight, api.CreateTransferResponse())
    ledger("create_transfer", ACCOUNT, OTHER, 5, idempotency_key="rent-2031-01")
    for method in ("CreateAccount", "CreateTransfer"):
        first, second = fake.requests(method)
        assert first == second and first.idempotency_key


def test_an_attempt_that_times_out_is_resent(fake: FakeLedger, ledger: Ledger) -> None:
    answer = api.CreateTransactionResponse(transaction=TRANSACTION)
    fake.on("CreateTransaction", _slow(1.0, answer), answer)
    policy = RetryPolicy(deadline_s=5.0, attempt_timeout_s=0.3, backoff_initial_s=0.01)
    assert ledger("create_transaction", ACCOUNT, 5, retry=policy) == TRANSACTION
    first, second = fake.calls("CreateTransaction")
    assert first.request == second.request
    assert first.timeout_s is not None and first.timeout_s <= 0.3 + CLOCK_SLACK_S


def test_reads_are_retried_on_every_transient_failure(fake: FakeLedger, ledger: Ledger) -> None:
    account = api.Account(id=ACCOUNT)
    fake.on(
        "GetAccount",
        unavailable(reason=None),
        Fail(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded", "OUTCOME_UNKNOWN"),
        Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue is full", "OVERLOADED"),
        api.GetAccountResponse(account=account),
    )
    assert ledger("get_account", ACCOUNT) == account
    assert len(fake.calls("GetAccount")) == 4


@pytest.mark.parametrize("method", ["SettleTransaction", "CancelTransaction"])
@pytest.mark.parametrize(
    ("failure", "retried"),
    [
        (unavailable(), True),  # SHARD_UNAVAILABLE: no attempt reached a leader
        (Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "queue is full", "OVERLOADED"), True),
        (Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many calls"), True),  # gRPC's limit
        (unavailable(reason=None), False),  # the connection broke: outcome unknown
        (Fail(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline exceeded", "OUTCOME_UNKNOWN"), False),
        (Fail(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), False),
    ],
    ids=[
        "shard-unavailable",
        "overloaded",
        "grpc-limit",
        "no-connection",
        "outcome-unknown",
        "timeout",
    ],
)
def test_keyless_writes_are_resent_only_when_nothing_was_applied(
    fake: FakeLedger, ledger: Ledger, method: str, failure: Fail, retried: bool
) -> None:
    response = getattr(api, f"{method}Response")(transaction=TRANSACTION)
    fake.on(method, failure, response)
    snake = "settle_transaction" if method.startswith("Settle") else "cancel_transaction"
    if retried:
        assert ledger(snake, TX) == TRANSACTION
        assert len(fake.calls(method)) == 2
    else:
        with pytest.raises((Unavailable, DeadlineExceeded)) as caught:
            ledger(snake, TX)
        assert caught.value.code == failure.code and caught.value.attempts == 1
        assert len(fake.calls(method)) == 1


@pytest.mark.parametrize(
    "failure",
    [
        Fail(grpc.StatusCode.FAILED_PRECONDITION, "not pending", "TRANSACTION_NOT_PENDING"),
        Fail(grpc.StatusCode.INVALID_ARGUMENT, "amount must not be zero", "INVALID_AMOUNT"),
        Fail(grpc.StatusCode.UNAUTHENTICATED, "no token", "TOKEN_MISSING"),
        Fail(grpc.StatusCode.INTERNAL, "internal error", "INTERNAL"),
        Fail(grpc.StatusCode.RESOURCE_EXHAUSTED, "Sent message larger than max (5 vs. 4)"),
    ],
    ids=lambda failure: failure.code.name,
)
def test_other_failures_are_never_retried(fake: FakeLedger, ledger: Ledger, failure: Fail) -> None:
    fake.on("CreateTransaction", failure, api.CreateTransactionResponse(transaction=TRANSACTION))
    with pytest.raises(type(error_for(failure.code, ""))):
        ledger("create_transaction", ACCOUNT, 5)
    assert len(fake.calls("CreateTransaction")) == 1


def test_a_non_retryable_answer_after_retries_is_raised(fake: FakeLedger, ledger: Ledger) -> None:
    not_pending = Fail(
        grpc.StatusCode.FAILED_PRECONDITION, "not pending", "TRANSACTION_NOT_PENDING"
    )
    fake.on("SettleTransaction", unavailable(), not_pending)
    with pytest.raises(FailedPrecondition) as caught:
        ledger("settle_transaction", TX)
    assert caught.value.attempts == 2 and caught.value.reason == "TRANSACTION_NOT_PENDING"


def test_backoff_stops_at_the_deadline(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("CreateTransaction", unavailable())
    policy = RetryPolicy(
        deadline_s=1.0, attempt_timeout_s=0.5, backoff_initial_s=0.02, backoff_max_s=0.1
    )
    started = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        ledger("create_transaction", ACCOUNT, 5, retry=policy)
    elapsed = time.monotonic() - started
    calls = fake.calls("CreateTransaction")
    # Pauses of 10-20, 20-40, 40-80 ms, then 50-100 ms each: about 10-20 attempts in 1 s.
    assert 5 <= len(calls) <= 60, len(calls)
    assert caught.value.attempts == len(calls)
    assert caught.value.reason == "SHARD_UNAVAILABLE"
    assert caught.value.idempotency_key == calls[0].request.idempotency_key
    assert len({seen.request.idempotency_key for seen in calls}) == 1
    # It used the deadline, and gave up instead of sleeping past it (slack for a slow start).
    assert 0.85 <= elapsed <= 1.0 + SLOW_MACHINE_S, elapsed


def test_each_attempt_gets_what_is_left_of_the_deadline(fake: FakeLedger, ledger: Ledger) -> None:
    never = _slow(5.0, api.CreateTransactionResponse(transaction=TRANSACTION))
    fake.on("CreateTransaction", never)
    policy = RetryPolicy(
        deadline_s=1.0, attempt_timeout_s=0.7, backoff_initial_s=0.01, backoff_max_s=0.01
    )
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        ledger("create_transaction", ACCOUNT, 5, retry=policy)
    elapsed = time.monotonic() - started
    timeouts = [seen.timeout_s for seen in fake.calls("CreateTransaction")]
    assert caught.value.attempts == len(timeouts) >= 2
    assert timeouts[0] is not None and timeouts[0] <= 0.7 + CLOCK_SLACK_S
    assert timeouts[1] is not None and timeouts[1] <= 0.3 + CLOCK_SLACK_S  # the rest of 1 s
    assert elapsed <= 1.0 + SLOW_MACHINE_S, elapsed


def test_attempts_max_bounds_the_attempts(fake: FakeLedger, ledger: Ledger) -> None:
    fake.on("GetAccount", unavailable())
    policy = RetryPolicy(backoff_initial_s=0.0, backoff_max_s=0.0, attempts_max=3)
    with pytest.raises(Unavailable) as caught:
        ledger("get_account", ACCOUNT, retry=policy)
    assert caught.value.attempts == 3 == len(fake.calls("GetAccount"))


def test_pauses_double_with_jitter_up_to_the_maximum() -> None:
    clock = [0.0]
    policy = RetryPolicy(deadline_s=1e9, backoff_initial_s=0.1, backoff_max_s=0.8)
    attempts = Attempts(policy, Safety.KEYED, random.Random(7), clock=lambda: clock[0])
    failure = error_for(grpc.StatusCode.UNAVAILABLE, "down")
    pauses = []
    for _ in range(8):
        attempts.timeout_s()
        pause = attempts.pause_s(failure)
        assert pause is not None
        pauses.append(pause)
    ceilings = [0.1, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8, 0.8]
    for pause, ceiling in zip(pauses, ceilings, strict=True):
        assert ceiling / 2 <= pause <= ceiling
    assert len(set(pauses)) == len(pauses)  # jittered, not a fixed schedule


def test_no_pause_may_reach_the_deadline() -> None:
    clock = [0.0]
    policy = RetryPolicy(deadline_s=1.0, backoff_initial_s=0.4, backoff_max_s=0.4)
    attempts = Attempts(policy, Safety.READ, random.Random(1), clock=lambda: clock[0])
    failure = error_for(grpc.StatusCode.UNAVAILABLE, "down")
    assert attempts.timeout_s() == 1.0  # attempt_timeout_s (10 s) cut to the deadline
    clock[0] = 0.5
    assert attempts.pause_s(failure) is not None  # at most 0.4: ends before 1.0
    clock[0] = 0.7
    assert attempts.timeout_s() == pytest.approx(0.3)
    clock[0] = 0.8
    assert attempts.pause_s(failure) is None  # at least 0.2: would reach the deadline


def test_which_failures_each_kind_of_call_retries() -> None:
    def error(code: grpc.StatusCode, reason: str = "", message: str = "x") -> LedgerError:
        return error_for(code, message, reason)

    shard = error(grpc.StatusCode.UNAVAILABLE, "SHARD_UNAVAILABLE")
    broken = error(grpc.StatusCode.UNAVAILABLE)
    timeout = error(grpc.StatusCode.DEADLINE_EXCEEDED)
    full = error(grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED")
    too_big = error(grpc.StatusCode.RESOURCE_EXHAUSTED, message="Received message larger than max")
    missing = error(grpc.StatusCode.NOT_FOUND, "ACCOUNT_NOT_FOUND")
    table = {
        Safety.READ: [True, True, True, True, False, False],
        Safety.KEYED: [True, True, True, True, False, False],
        Safety.UNKEYED: [True, False, False, True, False, False],
    }
    for safety, expected in table.items():
        found = [may_retry(e, safety) for e in (shard, broken, timeout, full, too_big, missing)]
        assert found == expected, safety


@pytest.mark.parametrize(
    "fields",
    [
        {"deadline_s": 0},
        {"attempt_timeout_s": -1},
        {"backoff_initial_s": 2.0, "backoff_max_s": 1.0},
        {"backoff_initial_s": -0.1},
        {"attempts_max": 0},
    ],
)
def test_a_policy_refuses_nonsense(fields: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**fields)
