"""Test-side name for the process launcher, which lives in ``ledger.tools.processes``, and a
runner for ``ledger-dev`` as a subprocess."""

import subprocess
import sys

from ledger.tools.processes import (
    ClusterService,
    ServiceProcess,
    StandaloneService,
    free_port,
    free_port_range,
    wait_until,
)

__all__ = [
    "ClusterService",
    "ServiceProcess",
    "StandaloneService",
    "free_port",
    "free_port_range",
    "run_dev",
    "wait_until",
]


def run_dev(*args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """``ledger-dev ARGS`` in its own process, output captured, exit status not checked."""
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli.dev", *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
