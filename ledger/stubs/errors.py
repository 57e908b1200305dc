"""The exception tree stubs raise when a shard cannot answer (domain outcomes are values).

::

    LedgerError
     ├── ShardUnavailable      no quorum / no leader / node unreachable      -> UNAVAILABLE
     │    └── NotLeader        this node is not the leader; carries a hint   -> retried by stubs
     ├── Overloaded            a bounded queue is full; refused at once      -> RESOURCE_EXHAUSTED
     └── DeadlineExceeded      the outcome is unknown; retry with the key    -> DEADLINE_EXCEEDED
"""

from __future__ import annotations

__all__ = ["DeadlineExceeded", "LedgerError", "NotLeader", "Overloaded", "ShardUnavailable"]


class LedgerError(Exception):
    """Base of every stub failure that is not a domain outcome."""


class ShardUnavailable(LedgerError):
    """The shard cannot serve now (no quorum, no leader, node down); safe to retry."""


class NotLeader(ShardUnavailable):
    def __init__(self, message: str, leader_hint: str = "") -> None:
        super().__init__(message)
        self.leader_hint = leader_hint


class Overloaded(LedgerError):
    """A bounded queue was full: refused immediately rather than waiting."""


class DeadlineExceeded(LedgerError):
    """The deadline passed; the command may or may not have been applied."""
