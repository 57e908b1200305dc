"""Test-side name for the process launcher, which lives in ``ledger.tools.processes``."""

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
    "wait_until",
]
