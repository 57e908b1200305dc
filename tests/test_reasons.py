"""The single table of error reasons (ledger.reasons) and how the gateway uses it.

Goal: every reason keeps its wire string and status code (clients match on them); the table is
the only place a reason string is spelled in the service's code, so core, gateway, token check and
stubs cannot drift apart; a reason the gateway does not know (a newer node) becomes INTERNAL
with the reason passed on. Method: the table against a pinned copy, an AST scan of the package
for string constants equal to a reason, and the gateway's error mapping called directly.
"""

from __future__ import annotations

import ast
import pathlib

import grpc
import pytest

import ledger
from ledger.gateway.errors import ApiError, grpc_code, to_grpc_status
from ledger.gateway.servicer import as_api_error
from ledger.reasons import Code, Reason
from ledger.stubs import DeadlineExceeded, NotLeader, Overloaded, ShardUnavailable

PACKAGE = pathlib.Path(ledger.__file__).parent

# Wire string -> status code name, as clients have seen them: change nothing here, only add.
PINNED = {
    "INVALID_AMOUNT": "INVALID_ARGUMENT",
    "DESCRIPTION_TOO_LONG": "INVALID_ARGUMENT",
    "IDEMPOTENCY_KEY_TOO_LONG": "INVALID_ARGUMENT",
    "INVALID_PAGE_SIZE": "INVALID_ARGUMENT",
    "INVALID_PAGE_TOKEN": "INVALID_ARGUMENT",
    "INVALID_COMMAND": "INVALID_ARGUMENT",
    "SAME_ACCOUNT": "INVALID_ARGUMENT",
    "INVALID_HOLD_TIMEOUT": "INVALID_ARGUMENT",
    "MALFORMED_REQUEST": "INVALID_ARGUMENT",
    "INVALID_ACCOUNT_ID": "INVALID_ARGUMENT",
    "INVALID_TRANSACTION_ID": "INVALID_ARGUMENT",
    "INVALID_BATCH_SIZE": "INVALID_ARGUMENT",
    "ACCOUNT_NOT_FOUND": "NOT_FOUND",
    "TRANSACTION_NOT_FOUND": "NOT_FOUND",
    "TRANSFER_NOT_FOUND": "NOT_FOUND",
    "ACCOUNT_ALREADY_EXISTS": "ALREADY_EXISTS",
    "IDEMPOTENCY_KEY_REUSED": "ALREADY_EXISTS",
    "TRANSACTION_NOT_PENDING": "FAILED_PRECONDITION",
    "BALANCE_OVERFLOW": "FAILED_PRECONDITION",
    "TRANSACTION_LIMIT_REACHED": "FAILED_PRECONDITION",
    "TRANSACTION_IN_TRANSFER": "FAILED_PRECONDITION",
    "ACCOUNT_ID_EXHAUSTED": "UNAVAILABLE",
    "SHARD_UNAVAILABLE": "UNAVAILABLE",
    "OVERLOADED": "RESOURCE_EXHAUSTED",
    "OUTCOME_UNKNOWN": "DEADLINE_EXCEEDED",
    "TRANSFER_IN_FLIGHT": "DEADLINE_EXCEEDED",
    "INTERNAL": "INTERNAL",
    "TOKEN_MISSING": "UNAUTHENTICATED",
    "TOKEN_UNKNOWN": "UNAUTHENTICATED",
    "INSUFFICIENT_SCOPE": "PERMISSION_DENIED",
}


def test_every_reason_keeps_its_wire_string_and_code() -> None:
    assert {reason.value: reason.code.name for reason in Reason} == PINNED
    assert all(grpc_code(reason).name == PINNED[reason.value] for reason in Reason)
    assert all(grpc.StatusCode[code.name].value[0] == code.value for code in Code)


def reason_literals(source: str) -> list[tuple[int, str]]:
    """(line, string) of every string constant in ``source`` that is a reason's wire string."""
    return [
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in PINNED
    ]


# Generated code is not ours; the client library uses the table like the service does.
NOT_SCANNED = {"pb"}


def test_no_module_spells_a_reason_outside_the_table() -> None:
    sources = [
        path
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "reasons.py"
        and not NOT_SCANNED.intersection(path.relative_to(PACKAGE).parts[:-1])
    ]
    assert len(sources) > 20
    found = [
        f"{path.relative_to(PACKAGE)}:{line} {text}"
        for path in sources
        for line, text in reason_literals(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "use ledger.reasons.Reason instead of a string"


def test_the_scan_finds_a_spelled_reason() -> None:
    source = 'refusal = ("OVERLOADED", "OVERLOADED queue")\nx = f"{y}INTERNAL"\n'
    assert reason_literals(source) == [(1, "OVERLOADED"), (2, "INTERNAL")]


@pytest.mark.parametrize("reason", list(Reason), ids=lambda reason: reason.value)
def test_an_api_error_carries_the_code_of_its_reason(reason: Reason) -> None:
    error = ApiError(reason, "message", {"account_id": "00"})
    assert (error.code.name, error.reason) == (PINNED[reason.value], reason.value)
    assert to_grpc_status(error).code == error.code


def test_a_reason_from_a_node_keeps_its_code_and_an_unknown_one_is_internal() -> None:
    known = ApiError.from_wire("TRANSACTION_NOT_PENDING", "not pending", {"status": "SETTLED"})
    assert (known.code, known.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "TRANSACTION_NOT_PENDING",
    )
    assert known.metadata == {"status": "SETTLED"}
    newer = ApiError.from_wire("SOMETHING_NEWER", "from a newer node")
    assert (newer.code, newer.reason) == (grpc.StatusCode.INTERNAL, "SOMETHING_NEWER")


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (ShardUnavailable("no quorum"), grpc.StatusCode.UNAVAILABLE, "SHARD_UNAVAILABLE"),
        (NotLeader("not the leader", "n2:7001"), grpc.StatusCode.UNAVAILABLE, "SHARD_UNAVAILABLE"),
        (Overloaded("queue full"), grpc.StatusCode.RESOURCE_EXHAUSTED, "OVERLOADED"),
        (DeadlineExceeded("too late"), grpc.StatusCode.DEADLINE_EXCEEDED, "OUTCOME_UNKNOWN"),
        (RuntimeError("a bug"), grpc.StatusCode.INTERNAL, "INTERNAL"),
    ],
)
def test_stub_failures_map_to_their_reasons(
    error: Exception, code: grpc.StatusCode, reason: str
) -> None:
    mapped = as_api_error(error, "test")
    assert (mapped.code, mapped.reason) == (code, reason)
