"""Fixtures for integration tests: a real service process per test module, and clients for it.

``service`` is module-scoped and parametrized over ``SERVICE_KINDS``, so every test that uses it
runs once per kind of deployment (standalone and a 3-node cluster) through the public gRPC API
only. The service lives in a temporary directory, is always stopped, and when a test fails its
process logs are attached to the failure report.
"""

from __future__ import annotations

import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from harness import ClusterService, ServiceProcess, StandaloneService

from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

call_timeout_s = 10.0

SERVICE_KINDS: dict[str, Any] = {"standalone": StandaloneService, "cluster": ClusterService}


def service_processes(service: Any) -> list[ServiceProcess]:
    """Every ServiceProcess a service object owns (standalone: one; cluster: nodes + gateway)."""
    found: list[ServiceProcess] = []
    for name in ("process", "gateway"):
        candidate = getattr(service, name, None)
        if isinstance(candidate, ServiceProcess):
            found.append(candidate)
    found.extend(node for node in getattr(service, "nodes", ()) if isinstance(node, ServiceProcess))
    return found


def service_logs(service: Any, lines: int = 60) -> str:
    return "\n".join(
        f"----- {process.name} ({process.log_path}) -----\n{process.tail_log(lines)}"
        for process in service_processes(service)
    )


@pytest.fixture(scope="module", params=sorted(SERVICE_KINDS))
def service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    kind = request.param
    root: pathlib.Path = tmp_path_factory.mktemp(f"{kind}-service")
    instance = SERVICE_KINDS[kind](root)
    try:
        try:
            instance.start()
        except BaseException:
            print(f"{kind} service failed to start:\n{service_logs(instance)}")
            raise
        yield instance
    finally:
        instance.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Attach the service's process logs to the report of a failed test that used one."""
    report = yield
    if report.failed:
        funcargs = getattr(item, "funcargs", {})
        for value in funcargs.values():
            if service_processes(value):
                report.sections.append((f"service logs ({report.when})", service_logs(value)))
                break
    return report


@pytest.fixture(scope="module")
def channel(service: Any) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(service.address) as chan:
        yield chan


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> ledger_api_pb2_grpc.LedgerServiceApiStub:
    return ledger_api_pb2_grpc.LedgerServiceApiStub(channel)


@pytest.fixture
def new_account(stub: ledger_api_pb2_grpc.LedgerServiceApiStub) -> api.Account:
    return stub.CreateAccount(api.CreateAccountRequest(), timeout=call_timeout_s).account


@pytest.fixture
def unique() -> str:
    """A fresh string for idempotency keys and descriptions: module-shared state never clashes."""
    return uuid.uuid4().hex
