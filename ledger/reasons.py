"""Every error reason the service can put into a ``google.rpc.ErrorInfo``, with its status code.

This is the single table: the core refuses commands with these reasons (stored and replicated
as results), the gateway's checks, the stubs' failures and the token check use them too, and
``ledger.gateway.errors`` turns a reason into its gRPC status through ``Reason.code`` only.

A reason's value (equal to its name) is its wire string: clients match on it, so a reason is
never renamed or given another code, only added. ``Code`` holds the canonical gRPC status codes
by their standard numbers; this module imports neither grpc nor anything with I/O, so the pure
core can use it.
"""

from __future__ import annotations

import enum

__all__ = ["Code", "Reason"]


class Code(enum.Enum):
    """The gRPC status codes a reason can carry (numbers as in ``google.rpc.Code``)."""

    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    INTERNAL = 13
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


class Reason(enum.Enum):
    """Why a call, command or query was refused; the value is the ErrorInfo reason."""

    # -- from the core (stored as results, so also what a replayed request answers) ------------
    INVALID_AMOUNT = "INVALID_AMOUNT"
    DESCRIPTION_TOO_LONG = "DESCRIPTION_TOO_LONG"
    IDEMPOTENCY_KEY_TOO_LONG = "IDEMPOTENCY_KEY_TOO_LONG"
    INVALID_PAGE_SIZE = "INVALID_PAGE_SIZE"
    INVALID_PAGE_TOKEN = "INVALID_PAGE_TOKEN"
    INVALID_COMMAND = "INVALID_COMMAND"  # a malformed replicated command (never from a gateway)
    SAME_ACCOUNT = "SAME_ACCOUNT"  # a transfer from an account to itself
    INVALID_HOLD_TIMEOUT = "INVALID_HOLD_TIMEOUT"  # only pending, only in the future
    ACCOUNT_NOT_FOUND = "ACCOUNT_NOT_FOUND"
    TRANSACTION_NOT_FOUND = "TRANSACTION_NOT_FOUND"
    TRANSFER_NOT_FOUND = "TRANSFER_NOT_FOUND"
    ACCOUNT_ALREADY_EXISTS = "ACCOUNT_ALREADY_EXISTS"  # the gateway then tries another id
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    TRANSACTION_NOT_PENDING = "TRANSACTION_NOT_PENDING"
    BALANCE_OVERFLOW = "BALANCE_OVERFLOW"
    TRANSACTION_LIMIT_REACHED = "TRANSACTION_LIMIT_REACHED"
    # A transfer's own transaction: only the transfer settles or gives back its hold.
    TRANSACTION_IN_TRANSFER = "TRANSACTION_IN_TRANSFER"
    # -- from the gateway's own checks and its way to the shards --------------------------------
    MALFORMED_REQUEST = "MALFORMED_REQUEST"  # the bytes are not the rpc's request message
    INVALID_ACCOUNT_ID = "INVALID_ACCOUNT_ID"
    INVALID_TRANSACTION_ID = "INVALID_TRANSACTION_ID"
    INVALID_BATCH_SIZE = "INVALID_BATCH_SIZE"
    ACCOUNT_ID_EXHAUSTED = "ACCOUNT_ID_EXHAUSTED"  # every candidate account id was taken
    TRANSFER_IN_FLIGHT = "TRANSFER_IN_FLIGHT"  # the deadline passed; it finishes on its own
    SHARD_UNAVAILABLE = "SHARD_UNAVAILABLE"  # stubs: no quorum, no leader, node unreachable
    OVERLOADED = "OVERLOADED"  # stubs: a bounded queue is full
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"  # stubs: the deadline passed before an outcome
    INTERNAL = "INTERNAL"  # a bug (or a reason from a newer node); details go to the log only
    # -- from the token check, before any handler -----------------------------------------------
    TOKEN_MISSING = "TOKEN_MISSING"
    TOKEN_UNKNOWN = "TOKEN_UNKNOWN"
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"

    @property
    def code(self) -> Code:
        """The gRPC status code a client sees with this reason."""
        return _CODES[self]

    @classmethod
    def from_wire(cls, reason: str) -> Reason | None:
        """The reason a wire string names; None for one this version does not know."""
        return _BY_WIRE.get(reason)


_CODES: dict[Reason, Code] = {
    # INVALID_ARGUMENT: wrong whatever the state.
    Reason.MALFORMED_REQUEST: Code.INVALID_ARGUMENT,
    Reason.INVALID_ACCOUNT_ID: Code.INVALID_ARGUMENT,
    Reason.INVALID_TRANSACTION_ID: Code.INVALID_ARGUMENT,
    Reason.INVALID_BATCH_SIZE: Code.INVALID_ARGUMENT,
    Reason.INVALID_AMOUNT: Code.INVALID_ARGUMENT,
    Reason.DESCRIPTION_TOO_LONG: Code.INVALID_ARGUMENT,
    Reason.IDEMPOTENCY_KEY_TOO_LONG: Code.INVALID_ARGUMENT,
    Reason.INVALID_PAGE_SIZE: Code.INVALID_ARGUMENT,
    Reason.INVALID_PAGE_TOKEN: Code.INVALID_ARGUMENT,
    Reason.INVALID_COMMAND: Code.INVALID_ARGUMENT,
    Reason.SAME_ACCOUNT: Code.INVALID_ARGUMENT,
    Reason.INVALID_HOLD_TIMEOUT: Code.INVALID_ARGUMENT,
    # NOT_FOUND.
    Reason.ACCOUNT_NOT_FOUND: Code.NOT_FOUND,
    Reason.TRANSACTION_NOT_FOUND: Code.NOT_FOUND,
    Reason.TRANSFER_NOT_FOUND: Code.NOT_FOUND,
    # ALREADY_EXISTS.
    Reason.ACCOUNT_ALREADY_EXISTS: Code.ALREADY_EXISTS,
    Reason.IDEMPOTENCY_KEY_REUSED: Code.ALREADY_EXISTS,
    # FAILED_PRECONDITION: the state must change before a retry can succeed.
    Reason.TRANSACTION_NOT_PENDING: Code.FAILED_PRECONDITION,
    Reason.BALANCE_OVERFLOW: Code.FAILED_PRECONDITION,
    Reason.TRANSACTION_LIMIT_REACHED: Code.FAILED_PRECONDITION,
    Reason.TRANSACTION_IN_TRANSFER: Code.FAILED_PRECONDITION,
    # UNAVAILABLE: nothing was applied; a retry may succeed.
    Reason.SHARD_UNAVAILABLE: Code.UNAVAILABLE,
    Reason.ACCOUNT_ID_EXHAUSTED: Code.UNAVAILABLE,
    # RESOURCE_EXHAUSTED: refused at once; retry after a pause.
    Reason.OVERLOADED: Code.RESOURCE_EXHAUSTED,
    # DEADLINE_EXCEEDED: the outcome is not known yet.
    Reason.OUTCOME_UNKNOWN: Code.DEADLINE_EXCEEDED,
    Reason.TRANSFER_IN_FLIGHT: Code.DEADLINE_EXCEEDED,
    # INTERNAL.
    Reason.INTERNAL: Code.INTERNAL,
    # The token check.
    Reason.TOKEN_MISSING: Code.UNAUTHENTICATED,
    Reason.TOKEN_UNKNOWN: Code.UNAUTHENTICATED,
    Reason.INSUFFICIENT_SCOPE: Code.PERMISSION_DENIED,
}
assert set(_CODES) == set(Reason), "every reason needs a status code"
assert all(reason.value == reason.name for reason in Reason), "the name is the wire string"

_BY_WIRE: dict[str, Reason] = {reason.value: reason for reason in Reason}
