"""Stubs route commands and queries to shard cores: in-process (standalone) or over gRPC."""

from ledger.stubs.base import LedgerCore
from ledger.stubs.errors import (
    DeadlineExceeded,
    LedgerError,
    NotLeader,
    Overloaded,
    ShardUnavailable,
)

__all__ = [
    "DeadlineExceeded",
    "LedgerCore",
    "LedgerError",
    "NotLeader",
    "Overloaded",
    "ShardUnavailable",
]
