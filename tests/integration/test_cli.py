"""The ``ledger-dev`` CLI against a running standalone service (SPEC §5).

Goal: ``seed-accounts`` and ``scenario-1`` print exactly the documented lines, and every failure
(bad input, unknown account, gateway down) is a non-zero exit with a one-line error, never a
traceback.

Method: run ``python -m ledger.cli.dev`` as a subprocess (as a user would) against a standalone
service started for this module, and cross-check what it printed through the public API.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from harness import StandaloneService, free_port
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

T = 10.0
cli_timeout_s = 60.0


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandaloneService]:
    service = StandaloneService(tmp_path_factory.mktemp("cli-standalone"))
    try:
        service.start()
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def stub(standalone: StandaloneService) -> Iterator[ledger_api_pb2_grpc.LedgerServiceApiStub]:
    with grpc.insecure_channel(standalone.address) as channel:
        yield ledger_api_pb2_grpc.LedgerServiceApiStub(channel)


def ledger_dev(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger.cli.dev", *args],
        capture_output=True,
        text=True,
        timeout=cli_timeout_s,
        cwd=pathlib.Path(__file__).parent,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str]) -> str:
    """Non-zero exit, exactly one line on stderr, no traceback anywhere; returns that line."""
    assert result.returncode != 0, result
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_seed_accounts(standalone: StandaloneService, stub: ledger_api_pb2_grpc.LedgerServiceApiStub) -> None:
    result = ledger_dev("seed-accounts", "--count", "3", "--gateway", standalone.address)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    ids = []
    for line in lines:
        match = re.fullmatch(r"created account ([0-9a-f]{16})", line)
        assert match, line
        ids.append(match.group(1))
    assert len(set(ids)) == 3
    for account_id in ids:
        account = stub.GetAccount(api.GetAccountRequest(account_id=account_id), timeout=T).account
        assert (account.available_balance, account.settled_balance) == (0, 0)


def test_scenario_1(standalone: StandaloneService, stub: ledger_api_pb2_grpc.LedgerServiceApiStub) -> None:
    account_id = stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account.id
    result = ledger_dev("scenario-1", "--account-id", account_id, "--gateway", standalone.address)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    tx = rf"({account_id}[0-9a-f]{{16}})"
    expected = [
        rf"account id: {account_id}",
        rf"Account {account_id} balance: 0 available, 0 settled",
        rf"Created transaction {tx} for amount 100: TRANSACTION_STATUS_SETTLED",
        rf"Created transaction {tx} for amount -10: TRANSACTION_STATUS_PENDING",
        rf"Account {account_id} balance: 90 available, 100 settled",
        rf"Settled transaction {tx} for amount -10: TRANSACTION_STATUS_SETTLED",
        rf"Account {account_id} balance: 90 available, 90 settled",
        rf"Created transaction {tx} for amount -1000: TRANSACTION_STATUS_INSUFFICIENT_FUNDS",
    ]
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected), result.stdout
    printed_ids = []
    for line, pattern in zip(lines, expected, strict=True):
        match = re.fullmatch(pattern, line)
        assert match, (line, pattern)
        printed_ids.extend(match.groups())
    top_up, purchase, settled, refused = printed_ids
    assert settled == purchase

    listed = stub.ListTransactions(
        api.ListTransactionsRequest(account_id=account_id), timeout=T
    ).transactions
    assert [(t.id, t.amount, t.status) for t in listed] == [
        (top_up, 100, api.TRANSACTION_STATUS_SETTLED),
        (purchase, -10, api.TRANSACTION_STATUS_SETTLED),
        (refused, -1000, api.TRANSACTION_STATUS_INSUFFICIENT_FUNDS),
    ]


@pytest.mark.parametrize(
    "bad_id", ["XYZ", "ABCDEF0123456789", "0123456789abcdef0", "0123456789abcde", ""]
)
def test_scenario_1_bad_account_id(standalone: StandaloneService, bad_id: str) -> None:
    result = ledger_dev("scenario-1", "--account-id", bad_id, "--gateway", standalone.address)
    line = assert_clean_failure(result)
    assert "invalid account id" in line
    assert result.stdout == ""


def test_scenario_1_unknown_account(standalone: StandaloneService) -> None:
    result = ledger_dev(
        "scenario-1", "--account-id", "00000000000000ff", "--gateway", standalone.address
    )
    line = assert_clean_failure(result)
    assert "NOT_FOUND" in line and "account not found" in line


def test_seed_accounts_bad_count(standalone: StandaloneService) -> None:
    for count in ("0", "-1", "many"):
        result = ledger_dev("seed-accounts", "--count", count, "--gateway", standalone.address)
        assert result.returncode != 0
        assert "Traceback" not in result.stdout + result.stderr
        assert result.stdout == ""


def test_gateway_down() -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    commands = [
        ["seed-accounts", "--count", "1"],
        ["scenario-1", "--account-id", "00000000000000ff"],
    ]
    # In parallel: each waits for its connect timeout before giving up.
    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(lambda args: ledger_dev(*args, "--gateway", address), commands))
    for result in results:
        line = assert_clean_failure(result)
        assert address in line
        assert "created account" not in result.stdout
