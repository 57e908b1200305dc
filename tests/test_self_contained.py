"""The repository stands on its own: nothing in it points at documents outside it.

Goal: no file tracked by git refers to a private workspace, a spec section, design notes or
tracker issue numbers that a reader of the repository cannot open. Method: ``git grep`` over
every tracked text file (skipped, with the reason, when this is not a git checkout).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest

REPOSITORY = pathlib.Path(__file__).resolve().parents[1]
FORBIDDEN = [
    r"\.\./shared",
    r"SPEC §",
    r"SPEC\.md",
    r"notes/(pysyncobj|throughput|style|anchors|reference)",
    r"\b[Ii]ssue #?[0-9]+",
]


def test_no_reference_to_documents_outside_the_repository() -> None:
    if shutil.which("git") is None or not (REPOSITORY / ".git").exists():
        pytest.skip("not a git checkout: nothing to grep")
    pattern = "|".join(f"({part})" for part in FORBIDDEN)
    found = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", pattern, "--", ".", ":!tests/test_self_contained.py"],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=60, check=False)
    assert found.returncode in (0, 1), found.stderr
    assert found.stdout == "", f"references to outside documents:\n{found.stdout}"
