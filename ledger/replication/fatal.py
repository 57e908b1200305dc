"""Stop the process when applying a committed entry fails: that is a bug, never an outcome.

Raising into PySyncObj would retry the entry for ever and wedge the group; carrying on in the
standalone server would leave callers waiting on a half-applied batch. A crash turns a
correctness bug into a visible liveness bug, and restart recovery is exactly-once.
"""

from __future__ import annotations

import logging
import os
from typing import NoReturn

__all__ = ["apply_failure_exit_code", "halt", "halt_on_apply_failure"]

log = logging.getLogger(__name__)
apply_failure_exit_code = 70


def halt(message: str) -> NoReturn:
    """Log ``message`` (with the exception being handled, if any) and exit without cleanup."""
    log.critical("%s; stopping the process", message, exc_info=True)
    logging.shutdown()
    os._exit(apply_failure_exit_code)


def halt_on_apply_failure(shard: int) -> NoReturn:
    """Call from an ``except`` block: logs the exception and exits without cleanup."""
    halt(f"shard {shard}: apply failed")
