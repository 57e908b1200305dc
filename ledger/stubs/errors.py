"""The exception tree stubs raise when a shard cannot answer (domain outcomes are values).

Each class names the reason (``ledger.reasons``, which gives its status code) that the gateway
answers it with::

    LedgerError
     ├── ShardUnavailable   no quorum / no leader / node unreachable   SHARD_UNAVAILABLE
     │    └── NotLeader     not the leader; carries a hint             (retried by stubs first)
     ├── Overloaded         a bounded queue is full; refused at once   OVERLOADED
     └── DeadlineExceeded   the outcome is unknown; retry with the key OUTCOME_UNKNOWN
"""

from __future__ import annotations

from typing import ClassVar

from ledger.reasons import Reason

__all__ = ["DeadlineExceeded", "LedgerError", "NotLeader", "Overloaded", "ShardUnavailable"]


class LedgerError(Exception):
    """Base of every stub failure that is not a domain outcome."""

    reason: ClassVar[Reason]


class ShardUnavailable(LedgerError):
    """The shard cannot serve now (no quorum, no leader, node down); safe to retry."""

    reason = Reason.SHARD_UNAVAILABLE


class NotLeader(ShardUnavailable):
    def __init__(self, message: str, leader_hint: str = "") -> None:
        super().__init__(message)
        self.leader_hint = leader_hint


class Overloaded(LedgerError):
    """A bounded queue was full: refused immediately rather than waiting."""

    reason = Reason.OVERLOADED


class DeadlineExceeded(LedgerError):
    """The deadline passed; the command may or may not have been applied."""

    reason = Reason.OUTCOME_UNKNOWN
