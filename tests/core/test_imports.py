"""The core stays pure: ledger/core imports only itself, ledger.limits, ledger.ids,
ledger.reasons and a small allow-list of stdlib modules; those three obey the same rules.

Goal: determinism (the state machine never reads a clock, never draws randomness, does
no I/O) is kept by construction: no module under ledger/core can reach time, random, uuid, os,
threading, grpc, plyvel, pysyncobj, the protobuf layer or the storage layer, and none imports
dynamically.

Method: parse the AST of every ``.py`` file in ledger/core (imports anywhere in the file, also
inside functions or ``if TYPE_CHECKING`` blocks), resolve relative imports and ``from ledger
import x`` to full module names, and check each against the allow-list. The checker itself is
tested on synthetic sources, forbidden as many as allowed.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

import ledger.core

CORE_DIR = pathlib.Path(ledger.core.__file__).parent
CORE_FILES = sorted(CORE_DIR.glob("*.py"))
ALLOWED_LEDGER = {"ledger.limits", "ledger.ids", "ledger.reasons"}
# The ledger modules the core may import are held to the core's rules too.
CHECKED_FILES = CORE_FILES + [
    CORE_DIR.parent / (name.split(".")[-1] + ".py") for name in sorted(ALLOWED_LEDGER)
]

ALLOWED_STDLIB = {
    "__future__",
    "enum",
    "dataclasses",
    "struct",
    "typing",
    "collections.abc",
    "base64",
    "binascii",
    "hashlib",
    "re",
}
FORBIDDEN = [
    "grpc",
    "plyvel",
    "pysyncobj",
    "time",
    "random",
    "uuid",
    "threading",
    "os",
    "ledger.pb",
    "ledger.storage",
]
FORBIDDEN_CALLS = {"__import__", "open", "input", "eval", "exec", "hash", "id"}


def imported_modules(source: str, package: str = "ledger.core") -> list[str]:
    """Full names of every module a source imports, ``from a import b`` giving ``a.b``."""
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
            else:
                assert node.module is not None
                module = node.module
            if module == "ledger" or (node.level and not node.module):
                names.extend(f"{module}.{alias.name}" for alias in node.names)
            else:
                names.append(module)
    return names


def forbidden_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in FORBIDDEN_CALLS
        ):
            found.append(node.func.id)
    return found


def is_allowed(module: str) -> bool:
    if any(module == bad or module.startswith(bad + ".") for bad in FORBIDDEN):
        return False
    return module in ALLOWED_STDLIB or module in ALLOWED_LEDGER or module.startswith("ledger.core.")


def test_core_files_are_all_found() -> None:
    names = {path.name for path in CORE_FILES}
    assert {
        "__init__.py",
        "accounts.py",
        "records.py",
        "pages.py",
        "outcomes.py",
        "commands.py",
    } <= names


@pytest.mark.parametrize("path", CHECKED_FILES, ids=lambda path: path.name)
def test_core_module_imports_only_allowed_modules(path: pathlib.Path) -> None:
    source = path.read_text(encoding="utf-8")
    modules = imported_modules(source)
    assert modules, f"{path.name} imports nothing? the parser is broken"
    bad = [module for module in modules if not is_allowed(module)]
    assert bad == [], f"{path.name} imports {bad}"
    assert forbidden_calls(source) == [], path.name
    assert "importlib" not in source, path.name


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "from time import monotonic_ns",
        "import random",
        "import uuid",
        "import os.path",
        "from os import urandom",
        "import threading",
        "import grpc",
        "import plyvel",
        "from pysyncobj import SyncObj",
        "from ledger.pb import ledger_internal_pb2",
        "from ledger import pb",
        "from ledger.storage.memory import MemoryShardStore",
        "from ledger import storage",
        "from .. import storage",
        "from ..storage import base",
        "import datetime",
        "import secrets",
        "def f():\n    import time\n",
        "if False:\n    import random\n",
        "import ledger.config",
        "import json",
    ],
)
def test_checker_refuses_forbidden_imports(source: str) -> None:
    modules = imported_modules(source)
    assert modules and not all(is_allowed(module) for module in modules), modules


@pytest.mark.parametrize(
    "source",
    [
        "from __future__ import annotations",
        "import enum",
        "from dataclasses import dataclass, replace",
        "import struct",
        "from typing import Protocol",
        "from collections.abc import Sequence",
        "import base64, binascii",
        "import hashlib",
        "import re",
        "from ledger import limits",
        "from ledger import ids, limits",
        "from ledger.reasons import Reason",
        "from ledger.core.records import Account",
        "from .records import Account",
        "from . import pages",
    ],
)
def test_checker_accepts_allowed_imports(source: str) -> None:
    modules = imported_modules(source)
    assert modules and all(is_allowed(module) for module in modules), modules


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("x = hash('a')", ["hash"]),
        ("f = open('x')", ["open"]),
        ("m = __import__('time')", ["__import__"]),
        ("y = max(1, 2)", []),
    ],
)
def test_checker_finds_forbidden_calls(source: str, found: list[str]) -> None:
    assert forbidden_calls(source) == found
