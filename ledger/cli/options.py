"""Click options shared by the server commands, so their flags read and behave the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = [
    "host_option",
    "log_level_option",
    "metrics_port_option",
    "port_option",
    "unsafe_no_fsync_option",
]

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def port_option(default: int | None, help_text: str) -> Decorator:
    return click.option("--port", type=click.IntRange(0, 65535), default=default,
                        show_default=default is not None, help=help_text)


host_option: Decorator = click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind."
)
metrics_port_option: Decorator = click.option(
    "--metrics-port", type=click.IntRange(0, 65535), default=0, show_default=True,
    help="Serve Prometheus metrics on this port (0: off).",
)
log_level_option: Decorator = click.option(
    "--log-level", default="info", show_default=True,
    type=click.Choice(["debug", "info", "warning", "error"]),
)
unsafe_no_fsync_option: Decorator = click.option(
    "--unsafe-no-fsync", is_flag=True, default=False,
    help="BENCHMARKS ONLY: acknowledge writes before they are on stable storage. A process "
         "crash still loses nothing; a power loss or kernel crash can lose acknowledged writes.",
)
