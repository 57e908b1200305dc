"""The ``ledger-dev`` CLI against a running standalone service (and a cluster for scenario-2).

Goal: ``seed-accounts``, ``scenario-1`` and ``scenario-2`` print exactly the documented lines,
and every failure (bad input, unknown account, gateway down) is a non-zero exit with a one-line
error, never a traceback.

Method: run ``python -m ledger.cli.dev`` as a subprocess (as a user would) against a standalone
service started for this module (``scenario-2`` also against the ``service`` fixture: standalone
and a 3-node cluster), and cross-check what it printed through the public API.
"""

from __future__ import annotations

import contextlib
import pathlib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
from client.fake_server import Fail, FakeLedger
from harness import StandaloneService, free_port

from ledger import ids as ledger_ids
from ledger.client import LedgerClient
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


def test_seed_accounts(
    standalone: StandaloneService, stub: ledger_api_pb2_grpc.LedgerServiceApiStub
) -> None:
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


def test_scenario_1(
    standalone: StandaloneService, stub: ledger_api_pb2_grpc.LedgerServiceApiStub
) -> None:
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


def test_scenario_2(service: Any) -> None:
    """Two accounts on different shards; the transfer completes, its retry returns it, a
    transfer of more than the balance is INSUFFICIENT_FUNDS; money is neither made nor lost."""
    result = ledger_dev("scenario-2", "--gateway", service.address)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    a = r"([0-9a-f]{16})"
    tx = r"([0-9a-f]{32})"
    key = "scenario-2-transfer-1"

    def balance(available: int, settled: int) -> str:
        return rf"Account {a} balance: {available} available, {settled} settled"

    expected = [
        rf"from account id: {a} \(shard (\d+)\)",
        rf"to account id: {a} \(shard (\d+)\)",
        balance(0, 0),
        balance(0, 0),
        rf"Created transaction {tx} for amount 100: TRANSACTION_STATUS_SETTLED",
        balance(100, 100),
        balance(0, 0),
        (
            rf"Created transfer {tx} for amount 30 from {a} to {a} with idempotency key {key}: "
            r"TRANSFER_STATUS_COMPLETED"
        ),
        rf"  debit transaction {tx} for amount -30: TRANSACTION_STATUS_SETTLED, transfer {tx}",
        rf"  credit transaction {tx} for amount 30: TRANSACTION_STATUS_SETTLED, transfer {tx}",
        balance(70, 70),
        balance(30, 30),
        (
            rf"Retried transfer with idempotency key {key}: transfer {tx}, "
            r"TRANSFER_STATUS_COMPLETED \(the same transfer\)"
        ),
        balance(70, 70),
        balance(30, 30),
        (
            rf"Created transfer {tx} for amount 1000 from {a} to {a}: "
            r"TRANSFER_STATUS_INSUFFICIENT_FUNDS"
        ),
        (
            rf"  debit transaction {tx} for amount -1000: TRANSACTION_STATUS_INSUFFICIENT_FUNDS, "
            rf"transfer {tx}"
        ),
        balance(70, 70),
        balance(30, 30),
    ]
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected), result.stdout
    groups = []
    for line, pattern in zip(lines, expected, strict=True):
        match = re.fullmatch(pattern, line)
        assert match, (line, pattern)
        groups.append(match.groups())
    (source, source_shard), (target, target_shard) = groups[0], groups[1]
    assert source != target and source_shard != target_shard
    for account_id, shard in ((source, source_shard), (target, target_shard)):
        assert ledger_ids.shard_index(ledger_ids.parse_account_id(account_id)) == int(shard)
    # Every balance line names the two accounts in turn.
    balance_lines = [g[0] for g, p in zip(groups, lines, strict=True) if p.startswith("Account")]
    assert balance_lines == [source, target] * 5
    (top_up,) = groups[4]
    transfer_id, from_id, to_id = groups[7]
    debit, debit_transfer = groups[8]
    credit, credit_transfer = groups[9]
    (retried,) = groups[12]
    refused_id, refused_from, refused_to = groups[15]
    refused_debit, refused_debit_transfer = groups[16]
    assert top_up.startswith(source)
    assert (from_id, to_id) == (refused_from, refused_to) == (source, target)
    assert debit == debit_transfer == credit_transfer == retried == transfer_id
    assert debit.startswith(source) and credit.startswith(target)
    assert refused_debit == refused_debit_transfer == refused_id != transfer_id

    # Cross-check through the public API: the transfers, the histories, the sums.
    with grpc.insecure_channel(service.address) as channel:
        api_stub = ledger_api_pb2_grpc.LedgerServiceApiStub(channel)

        def get_transfer(transfer: str) -> api.Transfer:
            return api_stub.GetTransfer(
                api.GetTransferRequest(transfer_id=transfer), timeout=T
            ).transfer

        def history(account_id: str) -> list[tuple[str, int, int, str]]:
            listed = api_stub.ListTransactions(
                api.ListTransactionsRequest(account_id=account_id), timeout=T
            ).transactions
            return [(t.id, t.amount, t.status, t.transfer_id) for t in listed]

        def settled(account_id: str) -> int:
            account = api_stub.GetAccount(
                api.GetAccountRequest(account_id=account_id), timeout=T
            ).account
            assert account.available_balance == account.settled_balance
            return int(account.settled_balance)

        done = get_transfer(transfer_id)
        assert (done.status, done.amount) == (api.TRANSFER_STATUS_COMPLETED, 30)
        assert (done.debit_transaction_id, done.credit_transaction_id) == (debit, credit)
        short = get_transfer(refused_id)
        assert (short.status, short.amount) == (api.TRANSFER_STATUS_INSUFFICIENT_FUNDS, 1000)
        assert short.credit_transaction_id == ""
        assert history(source) == [
            (top_up, 100, api.TRANSACTION_STATUS_SETTLED, ""),
            (debit, -30, api.TRANSACTION_STATUS_SETTLED, transfer_id),
            (refused_id, -1000, api.TRANSACTION_STATUS_INSUFFICIENT_FUNDS, refused_id),
        ]
        assert history(target) == [(credit, 30, api.TRANSACTION_STATUS_SETTLED, transfer_id)]
        assert (settled(source), settled(target)) == (70, 30)
        assert settled(source) + settled(target) == 100  # the top-up, nothing more or less


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
        ["scenario-2"],
    ]
    # In parallel: each waits for its connect timeout before giving up.
    with ThreadPoolExecutor(len(commands)) as pool:
        results = list(pool.map(lambda args: ledger_dev(*args, "--gateway", address), commands))
    for result in results:
        line = assert_clean_failure(result)
        assert address in line
        assert "created account" not in result.stdout


def test_seed_accounts_quiet_many(
    standalone: StandaloneService, stub: ledger_api_pb2_grpc.LedgerServiceApiStub
) -> None:
    # 2500 = two full CreateAccounts chunks of 1000 and a partial one.
    result = ledger_dev(
        "seed-accounts", "--count", "2500", "--quiet", "--gateway", standalone.address
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "created 2500 accounts\n"
    assert result.stderr == ""  # no progress bar: stderr is not a terminal


def test_seed_accounts_prints_every_account_in_order(
    standalone: StandaloneService, stub: ledger_api_pb2_grpc.LedgerServiceApiStub
) -> None:
    result = ledger_dev("seed-accounts", "--count", "1001", "--gateway", standalone.address)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 1001
    ids = [re.fullmatch(r"created account ([0-9a-f]{16})", line).group(1) for line in lines]  # type: ignore[union-attr]
    assert len(set(ids)) == 1001
    for account_id in (ids[0], ids[999], ids[1000]):
        account = stub.GetAccount(api.GetAccountRequest(account_id=account_id), timeout=T).account
        assert (account.available_balance, account.settled_balance) == (0, 0)


# -- seed-accounts retries, against a fake CreateAccounts (an in-process server: failures on
# demand) -----------------------------------------------------------------------------------------


class _FakeCreateAccounts:
    """Keys listed in ``item_failures`` fail that many times (UNAVAILABLE) before succeeding;
    ``call_failures`` whole calls fail first. A key always maps to the same account id."""

    def __init__(
        self,
        item_failures: dict[str, int] | None = None,
        call_failures: list[grpc.StatusCode] | None = None,
    ) -> None:
        self.item_failures = dict(item_failures or {})
        self.call_failures = list(call_failures or [])
        self.calls: list[list[str]] = []
        self.ids: dict[str, str] = {}
        self.lock = threading.Lock()  # chunks are sent from several threads

    def __call__(self, request: api.CreateAccountsRequest) -> api.CreateAccountsResponse:
        with self.lock:
            return self.answer(request)

    def answer(self, request: api.CreateAccountsRequest) -> api.CreateAccountsResponse:
        keys = [item.idempotency_key for item in request.accounts]
        assert all(keys) and len(set(keys)) == len(keys) and len(keys) <= 1000
        self.calls.append(keys)
        if self.call_failures:
            raise Fail(self.call_failures.pop(0), "call failed")
        results = []
        for key in keys:
            if self.item_failures.get(key, 0) > 0:
                self.item_failures[key] -= 1
                status = api.ItemStatus(
                    code=grpc.StatusCode.UNAVAILABLE.value[0],
                    message="shard has no quorum",
                    reason="SHARD_UNAVAILABLE",
                )
                results.append(api.CreateAccountResult(status=status))
            else:
                account_id = self.ids.setdefault(key, f"{len(self.ids) + 1:016x}")
                results.append(api.CreateAccountResult(account=api.Account(id=account_id)))
        return api.CreateAccountsResponse(results=results)

    def chunk_calls(self, chunk: int, size: int = 10) -> list[list[str]]:
        """The calls that carried keys of chunk ``chunk`` (chunks run in parallel threads)."""
        return [call for call in self.calls if int(call[0].split("-")[-1]) // size == chunk]


@contextlib.contextmanager
def _client_of(fake: _FakeCreateAccounts) -> Iterator[LedgerClient]:
    """A client, with seed-accounts' retry policy, of a server whose CreateAccounts is ``fake``."""
    from ledger.cli import dev

    server = FakeLedger()
    server.on("CreateAccounts", fake)
    with server.serve() as address, LedgerClient(address, retry=dev.seed_retry_policy()) as client:
        yield client
    # Each attempt had the CLI's call timeout (10 s), not some short default.
    assert all(seen.timeout_s and seen.timeout_s > 5 for seen in server.seen)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.cli import dev

    monkeypatch.setattr(dev, "seed_chunk_size", 10)
    monkeypatch.setattr(dev, "seed_retry_backoff_s", 0.0)


def test_seed_retries_failed_items_with_their_keys(small_chunks: None) -> None:
    from ledger.cli.dev import seed_accounts_in_chunks

    fake = _FakeCreateAccounts({"p-3": 1, "p-4": 2, "p-17": 2})
    emitted: list[list[str]] = []
    with _client_of(fake) as client:
        outcome = seed_accounts_in_chunks(client, 25, emitted.append, key_prefix="p")
    assert (outcome.created, outcome.failed) == (25, 0)
    assert [len(chunk) for chunk in emitted] == [10, 10, 5]
    # In order of the keys, each key's one account, none twice.
    assert [a for chunk in emitted for a in chunk] == [fake.ids[f"p-{i}"] for i in range(25)]
    first = [f"p-{i}" for i in range(10)]
    assert fake.chunk_calls(0) == [first, ["p-3", "p-4"], ["p-4"]]
    assert fake.chunk_calls(1)[1:] == [["p-17"], ["p-17"]]
    assert len(fake.chunk_calls(2)) == 1


def test_seed_gives_up_after_bounded_attempts(small_chunks: None) -> None:
    from ledger.cli import dev

    fake = _FakeCreateAccounts({"p-5": 99})
    emitted: list[list[str]] = []
    with _client_of(fake) as client:
        outcome = dev.seed_accounts_in_chunks(client, 100, emitted.append, key_prefix="p")
    tries = [call for call in fake.calls if "p-5" in call]
    assert len(tries) == dev.seed_attempts_max
    # No chunk starts after the failure; the chunks already in flight finish and are reported.
    started = {key for call in fake.calls for key in call}
    assert started == {f"p-{i}" for i in range(10 * dev.seed_calls_in_flight)}
    assert (outcome.created, outcome.failed) == (10 * dev.seed_calls_in_flight - 1, 1)
    assert "UNAVAILABLE" in outcome.failure
    assert sum(map(len, emitted)) == outcome.created


def test_seed_retries_transient_call_failures_only(small_chunks: None) -> None:
    from ledger.cli.dev import seed_accounts_in_chunks

    fake = _FakeCreateAccounts(call_failures=[grpc.StatusCode.UNAVAILABLE])
    with _client_of(fake) as client:
        outcome = seed_accounts_in_chunks(client, 5, lambda _: None, key_prefix="p")
    assert (outcome.created, outcome.failed) == (5, 0)
    assert fake.calls == [[f"p-{i}" for i in range(5)]] * 2

    fake = _FakeCreateAccounts(call_failures=[grpc.StatusCode.UNIMPLEMENTED])
    with _client_of(fake) as client:
        outcome = seed_accounts_in_chunks(client, 5, lambda _: None, key_prefix="p")
    assert (outcome.created, outcome.failed) == (0, 5)
    assert len(fake.calls) == 1 and outcome.failure.startswith("UNIMPLEMENTED")


def test_seed_accounts_command_fails_in_one_line(
    small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from ledger.cli import dev

    class FailingTenth(_FakeCreateAccounts):
        def answer(self, request: api.CreateAccountsRequest) -> api.CreateAccountsResponse:
            for item in request.accounts:  # the 10th account of the run never succeeds
                if item.idempotency_key.endswith("-9"):
                    self.item_failures[item.idempotency_key] = 99
            return super().answer(request)

    fake = FailingTenth()
    monkeypatch.setattr(dev, "gateway_client", lambda _address, *_, **__: _client_of(fake))
    result = CliRunner().invoke(dev.main, ["seed-accounts", "--count", "10", "--quiet"])
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "1 of 10 accounts not created after 3 attempts (9 created)" in lines[0], lines[0]
    assert "UNAVAILABLE: shard has no quorum" in lines[0]
