"""The two clients are one API: a method per rpc, the same signatures, typed and shipped typed.

Goal: the sync and async clients cannot drift apart (both are made from the same operations,
and this pins it), every rpc of ``LedgerServiceApi`` has its method, and the package ships
``py.typed`` so that users' type checkers read the hints.
"""

from __future__ import annotations

import inspect
import pathlib
import re
import tomllib

import ledger
from ledger.client import AsyncLedgerClient, LedgerClient
from ledger.pb import ledger_api_pb2 as api

REPO = pathlib.Path(__file__).resolve().parents[2]
RPCS = list(api.DESCRIPTOR.services_by_name["LedgerServiceApi"].methods_by_name)


def snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def public_methods(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in vars(cls).items()
        if not name.startswith("_") and callable(member) and name != "from_channel"
    }


def test_every_rpc_has_a_method_on_both_clients() -> None:
    for rpc in RPCS:
        assert callable(getattr(LedgerClient, snake(rpc))), rpc
        assert inspect.iscoroutinefunction(getattr(AsyncLedgerClient, snake(rpc))), rpc
    assert inspect.isasyncgenfunction(AsyncLedgerClient.iter_transactions)
    assert inspect.isgeneratorfunction(LedgerClient.iter_transactions)


def test_the_clients_have_the_same_methods_and_signatures() -> None:
    sync_methods = public_methods(LedgerClient)
    async_methods = public_methods(AsyncLedgerClient)
    assert set(sync_methods) == set(async_methods)
    for name, method in sync_methods.items():
        if name in {"close", "wait_for_ready", "iter_transactions"}:
            continue  # written for each (I/O), compared below by parameters only
        assert inspect.signature(method) == inspect.signature(async_methods[name]), name
        assert method.__doc__ and method.__doc__ == async_methods[name].__doc__, name
    for name in ("wait_for_ready", "iter_transactions"):
        sync_parameters = inspect.signature(sync_methods[name]).parameters
        async_parameters = inspect.signature(async_methods[name]).parameters
        assert list(sync_parameters) == list(async_parameters), name


def test_signatures_show_what_the_methods_return() -> None:
    signature = inspect.signature(LedgerClient.create_transaction)
    assert signature.return_annotation == "api.Transaction"
    assert list(signature.parameters)[:3] == ["self", "account_id", "amount"]
    assert LedgerClient.create_transaction.__qualname__ == "LedgerClient.create_transaction"


def test_the_package_ships_its_type_hints() -> None:
    assert (pathlib.Path(ledger.__file__).parent / "py.typed").is_file()
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "py.typed" in setuptools["package-data"]["ledger"]
