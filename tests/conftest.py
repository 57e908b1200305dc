"""Marks the slow tests: those that start clusters, inject faults or load servers for seconds.

The marker is given here, by place, so a new test in one of these places is slow without
anyone remembering to say so. ``pytest -m "not slow"`` is the contributor's fast loop (the core,
property, configuration and CLI unit tests: about a minute); CI runs everything.
"""

from __future__ import annotations

import pathlib

import pytest

TESTS_DIR = pathlib.Path(__file__).resolve().parent
SLOW_DIRECTORIES = frozenset({"integration", "powerloss"})  # real node/gateway processes
SLOW_MODULES = frozenset({"test_bench_compare.py", "test_bench_scale.py"})  # clusters under load


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        relative = pathlib.Path(item.path).resolve().relative_to(TESTS_DIR)
        if relative.parts[0] in SLOW_DIRECTORIES or relative.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)
