"""Stop the process when applying a committed entry fails: that is a bug, never an outcome.

Raising into PySyncObj would retry the entry for ever and wedge the group; carrying on in the
standalone server would leave callers waiting on a half-applied batch. A crash turns a
correctness bug into a visible liveness bug, and restart recovery is exactly-once.
"""

from __future__ import annotations

import logging
import os
from typing import NoReturn

__all__ = ["apply_failure_exit_code", "halt_on_apply_failure"]

log = logging.getLogger(__name__)
apply_failure_exit_code = 70


def halt_on_apply_failure(shard: int) -> NoReturn:
    """Call from an ``except`` block: logs the exception and exits without cleanup."""
    log.critical("shard %d: apply failed; stopping the process", shard, exc_info=True)
    logging.shutdown()
    os._exit(apply_failure_exit_code)
