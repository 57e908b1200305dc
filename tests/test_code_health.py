"""The code-health gate: lint, formatting and strict typing, as CI enforces them.

Each check runs the tool the ``test`` extra installs, with the configuration in
``pyproject.toml``, over the whole repository (ruff) or the ``ledger`` package (mypy, generated
stubs excluded). Run them directly while working: ``ruff check .``, ``ruff format .``, ``mypy``.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import tomllib

import pytest

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TOOL_TIMEOUT_S = 240


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ruff", "check", "--no-cache", "."),
        ("ruff", "format", "--check", "--no-cache", "."),
        ("mypy", "--no-incremental"),
    ],
    ids=["ruff-check", "ruff-format", "mypy-strict"],
)
def test_the_tree_passes(command: tuple[str, ...]) -> None:
    result = _run(*command)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}"


def test_the_gates_keep_their_scope() -> None:
    """The checks above mean nothing if the configuration quietly loses its rules or scope."""
    tool = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]
    assert tool["mypy"]["strict"] is True
    assert tool["mypy"]["files"] == ["ledger"]
    assert {"E", "F", "I", "B", "UP", "SIM", "RUF", "BLE"} <= set(tool["ruff"]["lint"]["select"])
