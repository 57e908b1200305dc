"""What became of a proposed entry (or a read's proof of leadership), for the node layer."""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

__all__ = ["EntryCallback", "EntryFate"]


class EntryFate(enum.Enum):
    """What became of a proposed entry, as far as the caller needs to know."""

    APPLIED = "applied"  # committed and applied here; the callback's value is apply's result
    OVERLOADED = "overloaded"  # PySyncObj's command queue was full: never proposed
    NOT_LEADER = "not leader"  # not committed and never will be: no leader, or not this one
    UNKNOWN = "outcome unknown"  # leadership changed while it was in flight: it may yet commit


EntryCallback = Callable[[Any, EntryFate], None]
"""Called once per proposed entry, on the replica's tick thread (or the caller's, when the
entry is refused at once): apply's return value (None unless APPLIED) and the entry's fate."""
