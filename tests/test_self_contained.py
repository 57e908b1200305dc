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
# Each pattern is assembled from pieces, so that this file does not match itself.
_PARENT = r"\.\./"
_SECTION = "\u00a7"
FORBIDDEN = [
    _PARENT + "sha" + "red",  # a sibling workspace folder
    "SP" + "EC " + _SECTION,  # sections of an outside spec
    "SP" + r"EC\.md",
    "no" + "tes/(pysyncobj|throughput|style|anchors|reference)",  # design notes kept elsewhere
    r"\b[Ii]ssue #?[0-9]+",  # tracker numbers
]


def test_no_reference_to_documents_outside_the_repository() -> None:
    if shutil.which("git") is None or not (REPOSITORY / ".git").exists():
        pytest.skip("not a git checkout: nothing to grep")
    pattern = "|".join(f"({part})" for part in FORBIDDEN)
    found = subprocess.run(
        ["git", "grep", "-n", "-I", "-E", pattern, "--", "."],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert found.returncode in (0, 1), found.stderr
    assert found.stdout == "", f"references to outside documents:\n{found.stdout}"
