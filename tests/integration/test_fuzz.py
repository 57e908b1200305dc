"""Fuzz every public rpc of LedgerServiceApi against a live standalone server and a live cluster.

Goal: no request, however malformed, kills a process, gets an undocumented status, or changes
anything when it fails.

Method: the module-scoped ``service`` fixture (conftest) runs everything once against a
standalone server and once against 3 nodes + gateway. The rpcs come from the service descriptor,
so an rpc added later is fuzzed too. Requests are raw bytes sent through ``channel.unary_unary``
without serializers, built by ``fuzz_wire``: boundary and random integers (int64/uint64 extremes,
overlong varints), empty, limit-sized and oversized strings, invalid UTF-8, unknown fields, wrong
wire types, groups, cut-off messages, empty and oversized batches, oversized messages, random
bytes as the whole message, and deadlines too short to finish. Seeded accounts (deterministic
ids: settled, pending and cancelled transactions, a transfer, a balance near int64 max) give the
fuzzer real ids, keys and page tokens, so it reaches the state-dependent paths too.

After every example:

(a) every process of the deployment is alive (standalone; all three nodes and the gateway);
(b) the status is OK or a documented one (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION,
    ALREADY_EXISTS, RESOURCE_EXHAUSTED, UNAVAILABLE, DEADLINE_EXCEEDED: ``ledger.reasons``
    and the README's API section; OUT_OF_RANGE is not used, UNKNOWN and INTERNAL are bugs); a
    domain error carries exactly one ``ErrorInfo`` whose reason is in the README's list; batch
    items too;
(c) the seeded accounts (balances, ``updated_at`` and full histories, paged) are unchanged after
    an error; after an OK write only what the response reports changed (the transactions it
    returns, on their accounts) and the stored transaction equals the returned one; a read
    answers what is stored; always, balances equal what the history implies and transaction
    numbers run 1..n. The one change nobody asks for, a hold cancelled by its timeout, is
    allowed between any two calls.

Budget: fixed example counts, ``derandomize=True`` and no example database, so a run is
repeatable and CI-stable; the module runs in about a minute on two cores. Run with ``-s`` to see
the statuses seen per rpc.
"""

from __future__ import annotations

import collections
import pathlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integration import fuzz_wire as wire
from integration.errors import error_infos
from integration.load import expected_balances
from ledger import limits
from ledger.gateway.errors import ERROR_DOMAIN
from ledger.pb import ledger_api_pb2 as api
from ledger.pb import ledger_api_pb2_grpc

T = 15.0  # deadline of every fuzz call and read
EXAMPLES_PER_RPC = 50  # Hypothesis examples per rpc and deployment
RAW_EXAMPLES = 100  # random-bytes messages per deployment (spread over the rpcs)
SNAPSHOT_ATTEMPTS = 5  # reads of an account that a hold expiry may change meanwhile
SERVICE = wire.SERVICE.full_name
Code = grpc.StatusCode

ALLOWED = {
    Code.OK,
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.FAILED_PRECONDITION,
    Code.ALREADY_EXISTS,
    Code.RESOURCE_EXHAUSTED,
    Code.UNAVAILABLE,
    Code.DEADLINE_EXCEEDED,
}
# Codes that come from the service's own validation or state: always with one ErrorInfo.
DOMAIN_CODES = {
    Code.INVALID_ARGUMENT,
    Code.NOT_FOUND,
    Code.FAILED_PRECONDITION,
    Code.ALREADY_EXISTS,
}
ALLOWED_ITEM_CODES = {code.value[0] for code in ALLOWED}
# Error reasons a client may see: the README's list ("Error reasons: ..." in the API section),
# read from the README so that a reason added without documentation fails here. INTERNAL (an
# unexpected exception) is a bug, whatever the documentation says.
_README = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text()
_REASONS_PARAGRAPH = _README.split("Error reasons:", 1)[1].split("\n\n", 1)[0]
DOCUMENTED_REASONS = set(re.findall(r"`([A-Z][A-Z_]+)`", _REASONS_PARAGRAPH)) - {"INTERNAL"}
assert {"MALFORMED_REQUEST", "ACCOUNT_NOT_FOUND"} <= DOCUMENTED_REASONS, DOCUMENTED_REASONS
HEX16 = re.compile(r"[0-9a-f]{16}")
HEX32 = re.compile(r"[0-9a-f]{32}")
READS = {"GetAccount", "GetTransaction", "ListTransactions", "GetTransfer"}
# The rpcs whose OK effects check_ok knows; any other rpc is fuzzed for (a) and (b) and for
# "an error changes nothing", not for what its success changes.
KNOWN_OK_EFFECTS = READS | {
    "CreateAccount",
    "CreateAccounts",
    "CreateTransaction",
    "CreateTransactions",
    "SettleTransaction",
    "CancelTransaction",
    "CreateTransfer",
}
# README: CreateTransfer answers a final transfer; IN_FLIGHT only comes from GetTransfer.
FINAL_TRANSFER_STATUSES = {
    api.TRANSFER_STATUS_COMPLETED,
    api.TRANSFER_STATUS_INSUFFICIENT_FUNDS,
    api.TRANSFER_STATUS_FAILED,
}

FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)

# (deployment, rpc) -> status name -> count; printed at the end of the module (pytest -s).
STATUSES: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
    collections.Counter
)

Snapshot = dict[str, tuple[api.Account, dict[str, api.Transaction]]]


@dataclass
class Answer:
    code: grpc.StatusCode
    details: str
    response: bytes | None
    error: grpc.RpcError | None


class Fuzzer:
    """Sends raw requests to one deployment and checks (a), (b) and (c) after each."""

    def __init__(self, service: Any) -> None:
        self.kind: str = service.kind
        self.processes = [
            p
            for p in (getattr(service, "process", None), getattr(service, "gateway", None))
            if p is not None
        ]
        self.processes += list(getattr(service, "nodes", ()))
        big = 4 * limits.grpc_message_bytes_max  # the client can send what the server refuses
        self.channel = grpc.insecure_channel(
            service.address,
            options=[
                ("grpc.max_send_message_length", big),
                ("grpc.max_receive_message_length", big),
            ],
        )
        self.stub = ledger_api_pb2_grpc.LedgerServiceApiStub(self.channel)
        self.raw = {name: self.channel.unary_unary(f"/{SERVICE}/{name}") for name in wire.METHODS}
        self.seeds = seed(self.stub)
        self.baseline: Snapshot | None = self.snapshot()
        self.examples = 0

    def close(self) -> None:
        self.channel.close()

    # -- calls ------------------------------------------------------------------------------

    def send(self, method: str, payload: bytes, timeout: float = T) -> Answer:
        # Beyond the server's limit any size is refused alike; sending 140 MB would only be slow.
        payload = payload[: 2 * limits.grpc_message_bytes_max]
        try:
            response = self.raw[method](payload, timeout=timeout)
        except grpc.RpcError as error:
            return Answer(error.code(), error.details() or "", None, error)
        return Answer(Code.OK, "", response, None)

    def check(self, method: str, payload: bytes, timeout: float = T) -> Answer:
        """One call and every check against the state before it."""
        self.examples += 1
        if self.baseline is None:  # the previous example failed part-way: start afresh
            self.baseline = self.snapshot()
        before, self.baseline = self.baseline, None
        answer = self.send(method, payload, timeout)
        STATUSES[(self.kind, method)][answer.code.name] += 1
        where = f"{self.kind} {method}({_show(payload)})"
        self.assert_alive(where)
        assert answer.code in ALLOWED, f"{where} -> {answer.code.name} {answer.details!r}"
        after = self.snapshot()
        if answer.code is Code.OK:
            self.check_ok(method, payload, answer.response or b"", before, after, where)
        elif answer.code is Code.DEADLINE_EXCEEDED and timeout < T:
            pass  # a deadline the client chose too short: the outcome is unknown by contract
        else:
            check_error(answer, where)
            assert_same(before, after, where + f" -> {answer.code.name}")
        self.baseline = after
        return answer

    def assert_alive(self, where: str) -> None:
        dead = [p.name for p in self.processes if not p.alive()]
        assert not dead, f"{dead} died after {where}"

    # -- state ------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Every seeded account and its whole history (pages of 1,000), as of one moment.

        An account and its history are two reads, and a hold can expire between them (the
        shard cancels it on its own). So: the accounts, then the histories, then the accounts
        again; an account that changed meanwhile is read again. ``updated_at`` moves with every
        write to the account, so equal reads around a history prove it is of the same moment."""
        try:
            wanted = list(self.seeds.account_ids)
            state: Snapshot = {}
            for _ in range(SNAPSHOT_ATTEMPTS):
                first = self._accounts(wanted)
                histories = {a: self._history(a) for a in wanted}
                second = self._accounts(wanted)
                for account_id in wanted:
                    if first[account_id] == second[account_id]:
                        history = histories[account_id]
                        check_model(second[account_id], history)
                        state[account_id] = (second[account_id], {t.id: t for t in history})
                wanted = [a for a in wanted if a not in state]
                if not wanted:
                    return state
        except grpc.RpcError as error:
            pytest.fail(
                f"{self.kind}: a read of the seeded accounts failed: "
                f"{error.code().name} {error.details()!r}"
            )
        pytest.fail(f"{self.kind}: accounts {wanted} kept changing while nobody wrote to them")

    def _accounts(self, account_ids: list[str]) -> dict[str, api.Account]:
        calls = {
            a: self.stub.GetAccount.future(api.GetAccountRequest(account_id=a), timeout=T)
            for a in account_ids
        }
        return {a: call.result().account for a, call in calls.items()}

    def _history(self, account_id: str) -> list[api.Transaction]:
        history: list[api.Transaction] = []
        token = ""
        while True:
            page = self.stub.ListTransactions(
                api.ListTransactionsRequest(
                    account_id=account_id, page_size=limits.page_size_max, page_token=token
                ),
                timeout=T,
            )
            history.extend(page.transactions)
            token = page.next_page_token
            if not token:
                return history

    def check_ok(
        self, method: str, payload: bytes, raw: bytes, before: Snapshot, after: Snapshot, where: str
    ) -> None:
        """An OK answer parses, and explains every change of the seeded state."""
        request_type = wire.METHODS[method][0]
        response_class = wire.METHODS[method][1]
        try:
            response = response_class.FromString(raw)
        except DecodeError:
            pytest.fail(f"{where}: OK with an unparsable response {raw[:100]!r}")
        request = getattr(api, request_type.name).FromString(payload)  # the server parsed it
        reported: dict[str, api.Transaction | None] = {}  # ids this answer created or changed
        if method in ("CreateTransaction", "SettleTransaction", "CancelTransaction"):
            assert HEX32.fullmatch(response.transaction.id), where
            reported[response.transaction.id] = response.transaction
        elif method == "CreateTransactions":
            assert len(response.results) == len(request.transactions), where
            for result in response.results:
                check_item(result.status, result.HasField("transaction"), where)
                if result.status.code == 0:
                    reported[result.transaction.id] = result.transaction
        elif method == "CreateAccounts":
            assert len(response.results) == len(request.accounts), where
            for result in response.results:
                check_item(result.status, result.HasField("account"), where)
                if result.status.code == 0:
                    assert HEX16.fullmatch(result.account.id), where
        elif method == "CreateAccount":
            assert HEX16.fullmatch(response.account.id), where
        elif method == "CreateTransfer":
            transfer = response.transfer
            assert transfer.id == transfer.debit_transaction_id and HEX32.fullmatch(transfer.id)
            assert transfer.status in FINAL_TRANSFER_STATUSES, f"{where}: {transfer}"
            reported = {
                t: None
                for t in (transfer.debit_transaction_id, transfer.credit_transaction_id)
                if t
            }
        elif method in READS:
            check_read(method, request, response, (before, after), where)
        elif method not in KNOWN_OK_EFFECTS:
            return  # an rpc added after this test: its errors are checked, its effects are not
        new, changed, accounts = diff(before, after)
        assert not (new - set(reported)), f"{where}: unreported new transactions {new}"
        if method in ("SettleTransaction", "CancelTransaction"):
            assert not new and changed <= set(reported), f"{where}: changed {changed}"
        else:
            assert not changed, f"{where}: changed existing transactions {changed}"
        assert accounts <= {t[:16] for t in reported}, f"{where}: changed accounts {accounts}"
        for transaction_id, transaction in reported.items():
            stored = after.get(transaction_id[:16])
            if stored is not None and transaction is not None:  # the answer is what was stored
                kept = stored[1].get(transaction_id)
                assert kept == transaction or _expired(transaction, kept), where


def check_read(
    method: str, request: Any, response: Any, states: tuple[Snapshot, Snapshot], where: str
) -> None:
    """Nobody else writes the seeded accounts, so a read answers what one of the snapshots
    around it holds (both are equal unless a hold expired meanwhile)."""
    if method == "GetAccount":
        assert response.account.id == request.account_id, where
        if request.account_id in states[0]:
            assert any(response.account == state[request.account_id][0] for state in states), where
    elif method == "GetTransaction":
        assert response.transaction.id == request.transaction_id, where
        if request.transaction_id[:16] in states[0]:
            assert any(
                response.transaction
                == state[request.transaction_id[:16]][1].get(request.transaction_id)
                for state in states
            ), where
    elif method == "GetTransfer":
        assert response.transfer.id == request.transfer_id, where
        if request.transfer_id[:16] in states[0]:
            debit = states[1][request.transfer_id[:16]][1].get(request.transfer_id)
            assert debit is not None and debit.transfer_id == request.transfer_id, where
    else:
        page = list(response.transactions)
        size = request.page_size or limits.page_size_default
        assert len(page) <= min(size, limits.page_size_max), where
        assert all(t.id[:16] == request.account_id for t in page), where
        if page and request.account_id in states[0]:
            for state in states:
                history = list(state[request.account_id][1].values())
                ids = [t.id for t in history]
                start = ids.index(page[0].id) if page[0].id in ids else len(ids)
                if history[start : start + len(page)] == page:
                    break
            else:
                pytest.fail(f"{where}: the page is not a run of the stored history")
            if not response.next_page_token:
                assert page[-1].id == history[-1].id, where


def seed(stub: ledger_api_pb2_grpc.LedgerServiceApiStub) -> wire.Seeds:
    """Three accounts with deterministic ids (idempotency keys): A with settled, pending and
    cancelled transactions and a keyed one, B near int64 max, C with only a transfer from A."""

    def account(key: str) -> str:
        request = api.CreateAccountRequest(idempotency_key=key)
        return stub.CreateAccount(request, timeout=T).account.id

    def create(account_id: str, amount: int, settled: bool, key: str = "") -> str:
        request = api.CreateTransactionRequest(
            account_id=account_id,
            amount=amount,
            settled=settled,
            description=f"seed {amount}",
            idempotency_key=key,
        )
        return stub.CreateTransaction(request, timeout=T).transaction.id

    a, b, c = account("fuzz-seed-a"), account("fuzz-seed-b"), account("fuzz-seed-c")
    transactions = [
        create(a, 1000, True, key="fuzz-key"),
        create(a, 50, False),
        create(a, -10, False),
        create(a, -5, False),
        create(a, -1, True),
        create(b, limits.int64_max - 5, True),
        create(b, -3, False),
    ]
    stub.CancelTransaction(api.CancelTransactionRequest(transaction_id=transactions[3]), timeout=T)
    transfer = stub.CreateTransfer(
        api.CreateTransferRequest(
            from_account_id=a,
            to_account_id=c,
            amount=7,
            description="seed transfer",
            idempotency_key="fuzz-transfer",
        ),
        timeout=T,
    ).transfer
    assert transfer.status == api.TRANSFER_STATUS_COMPLETED, transfer
    transactions += [transfer.debit_transaction_id, transfer.credit_transaction_id]
    tokens = [
        stub.ListTransactions(
            api.ListTransactionsRequest(account_id=x, page_size=1), timeout=T
        ).next_page_token
        for x in (a, b)
    ]
    return wire.Seeds(
        account_ids=[a, b, c],
        transaction_ids=transactions,
        idempotency_keys=["fuzz-key", "fuzz-seed-a", "fuzz-transfer"],
        page_tokens=tokens,
    )


def check_model(account: api.Account, history: list[api.Transaction]) -> None:
    assert (account.available_balance, account.settled_balance) == expected_balances(history), (
        f"balances of {account.id} disagree with its history"
    )
    assert 0 <= account.available_balance <= account.settled_balance
    numbers = [int(t.id[16:], 16) for t in history]
    assert numbers == list(range(1, len(history) + 1)), f"{account.id}: numbers {numbers}"
    assert all(t.id[:16] == account.id for t in history)


def diff(before: Snapshot, after: Snapshot) -> tuple[set[str], set[str], set[str]]:
    """(new transaction ids, changed transaction ids, changed accounts); nothing may vanish.

    A pending transaction whose hold timeout passed is cancelled by the shard on its own (on the
    next write or the resolver's Tick, README: Hold timeouts), between any two calls: that
    change, and its account's, is not counted. ``check_model`` still checks the balances."""
    new: set[str] = set()
    changed: set[str] = set()
    accounts: set[str] = set()
    for account_id, (account, history) in after.items():
        old_account, old_history = before[account_id]
        assert set(old_history) <= set(history), f"transactions of {account_id} vanished"
        new |= set(history) - set(old_history)
        moved = {t for t in old_history if history[t] != old_history[t]}
        expired = {t for t in moved if _expired(old_history[t], history[t])}
        changed |= moved - expired
        if account != old_account and not expired:
            accounts.add(account_id)
    return new, changed, accounts


def _expired(old: api.Transaction, new: api.Transaction) -> bool:
    if not (
        old.status == api.TRANSACTION_STATUS_PENDING
        and old.expires_at
        and new.status == api.TRANSACTION_STATUS_CANCELLED
    ):
        return False
    same = api.Transaction()
    same.CopyFrom(new)
    same.status, same.updated_at = old.status, old.updated_at
    return same == old


def assert_same(before: Snapshot, after: Snapshot, where: str) -> None:
    new, changed, accounts = diff(before, after)
    shown = {a: (str(before[a][0]), str(after[a][0])) for a in accounts}
    assert not (new or changed or accounts), (
        f"{where} changed state: new {new}, changed {changed}, accounts {shown}"
    )


def error_reason(error: grpc.RpcError) -> str | None:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    if status is None:
        return None
    infos = error_infos(status)
    assert len(infos) == 1, f"expected one ErrorInfo, got {list(status.details)}"
    assert infos[0].domain == ERROR_DOMAIN
    return infos[0].reason


def check_error(answer: Answer, where: str) -> None:
    assert answer.error is not None
    reason = error_reason(answer.error)
    if answer.code in DOMAIN_CODES:
        assert reason is not None, f"{where} -> {answer.code.name} without ErrorInfo"
    if reason is not None:
        assert reason in DOCUMENTED_REASONS, f"{where} -> undocumented reason {reason}"


def check_item(status: api.ItemStatus, has_value: bool, where: str) -> None:
    assert status.code in ALLOWED_ITEM_CODES, f"{where}: item status {status}"
    if status.code == 0:
        assert has_value, f"{where}: OK item without its value"
    else:
        assert not has_value and status.reason in DOCUMENTED_REASONS, f"{where}: item {status}"


def _show(payload: bytes) -> str:
    return repr(payload) if len(payload) <= 300 else f"{payload[:300]!r}... ({len(payload)} bytes)"


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzer(service: Any) -> Iterator[Fuzzer]:
    instance = Fuzzer(service)
    yield instance
    instance.close()
    print(f"\n{instance.kind}: {instance.examples} fuzz calls; statuses per rpc:")
    for (kind, method), counts in sorted(STATUSES.items()):
        if kind == instance.kind:
            print(f"  {method:20} {dict(sorted(counts.items()))}")


# -- tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", sorted(wire.METHODS))
def test_fuzz_rpc(fuzzer: Fuzzer, method: str) -> None:
    """Structured requests (declared, unknown and mistyped fields, boundary values) per rpc."""
    request = wire.request_bytes(wire.METHODS[method][0], fuzzer.seeds)

    @settings(FUZZ_SETTINGS, max_examples=EXAMPLES_PER_RPC)
    @given(payload=request)
    def run(payload: bytes) -> None:
        fuzzer.check(method, payload)

    run()


def test_fuzz_random_bytes(fuzzer: Fuzzer) -> None:
    """Random bytes as the whole request message of any rpc."""

    @settings(FUZZ_SETTINGS, max_examples=RAW_EXAMPLES)
    @given(method=st.sampled_from(sorted(wire.METHODS)), payload=wire.raw_requests())
    def run(method: str, payload: bytes) -> None:
        fuzzer.check(method, payload)

    run()


def boundary_cases(seeds: wire.Seeds) -> list[tuple[str, bytes]]:
    """Explicit edge cases for every rpc, beyond what random examples are likely to hit."""
    a, b, c = seeds.account_ids
    pending = seeds.transaction_ids[1]
    f = wire.len_field
    v = wire.varint_field
    over = limits.grpc_message_bytes_max + 1
    cases: list[tuple[str, bytes]] = []
    for method in wire.METHODS:
        cases += [
            (method, b""),
            (method, b"\x00"),  # field number 0
            (method, f(1, b"\xff")),  # invalid UTF-8 or junk item
            (method, f(100, b"x" * over)),  # beyond the message limit
            (method, f(1, a.encode()) + f(100, b"u" * (over - 64))),  # just under it
            (method, wire.key(100, wire.START_GROUP) * 5000),  # unclosed nested groups
            (method, wire.key(100, wire.START_GROUP) * 200 + wire.key(100, wire.END_GROUP) * 200),
            (method, wire.key(1, wire.END_GROUP)),  # an end without a start
            (method, f(1, b"") + wire.key(1, wire.LEN) + wire.varint(2**31)),  # length past end
            (method, wire.key(1, wire.LEN) + wire.varint(2**64 - 1)),
            (method, wire.key(1, wire.VARINT) + b"\xff" * 11),  # an 11-byte varint
        ]
    item = f(1, c.encode()) + v(2, 1) + v(4, 0)  # a pending top-up of 1 on C
    big_item = f(1, a.encode()) + v(2, -1) + f(3, b"d" * (limits.description_bytes_max + 1))
    cases += [
        ("CreateTransactions", f(1, item) * limits.batch_items_max),  # the largest batch
        ("CreateTransactions", f(1, item) * (limits.batch_items_max + 1)),  # one too many
        ("CreateTransactions", f(1, big_item) * limits.batch_items_max),
        ("CreateTransactions", f(1, b"") * limits.batch_items_max),
        (
            "CreateAccounts",
            f(1, f(1, b"k" * (limits.idempotency_key_bytes_max + 1))) * limits.batch_items_max,
        ),
        ("CreateAccounts", f(1, b"") * (limits.batch_items_max + 1)),
        ("CreateAccounts", f(1, f(1, b"\xff"))),
        ("CreateTransaction", f(1, a.encode()) + v(2, limits.int64_min) + v(4, 1)),
        ("CreateTransaction", f(1, a.encode()) + v(2, limits.int64_min) + v(4, 0)),
        ("CreateTransaction", f(1, b.encode()) + v(2, limits.int64_max) + v(4, 1)),  # overflow
        ("CreateTransaction", f(1, b.encode()) + v(2, limits.int64_max) + v(4, 0)),
        ("CreateTransaction", f(1, b.encode()) + wire.key(2, wire.VARINT) + wire.varint(2**64)),
        ("CreateTransaction", f(1, a.encode()) + v(2, 5) + f(5, b"fuzz-key")),  # key reused
        ("CreateTransaction", f(1, a.encode()) + v(2, 1) + f(3, b"\xed\xa0\x80")),
        ("CreateTransaction", f(1, a.encode()) + v(2, 1) + f(5, b"\xc0\xaf")),
        ("CreateTransaction", f(1, a.encode()) + v(2, -1) + v(4, 1) + v(6, 1000)),  # settled
        ("CreateTransaction", f(1, a.encode()) + v(2, -1) + v(6, -1)),
        ("CreateTransaction", f(1, a.encode()) + v(2, -1) + v(6, 30 * 24 * 3600 * 1000 + 1)),
        ("CreateTransaction", f(1, a.encode()) + v(2, -1) + v(6, limits.int64_max)),
        ("CreateTransaction", f(1, c.encode()) + v(2, -1) + v(6, 1)),  # expires at once
        ("ListTransactions", f(1, a.encode()) + v(2, -1)),
        ("ListTransactions", f(1, a.encode()) + v(2, -(2**31))),
        ("ListTransactions", f(1, a.encode()) + v(2, 2**31 - 1)),
        ("ListTransactions", f(1, a.encode()) + v(2, 2**32 + 1)),  # truncated to int32: 1
        ("ListTransactions", f(1, a.encode()) + f(3, seeds.page_tokens[1].encode())),  # B's token
        ("ListTransactions", f(1, a.encode()) + f(3, b"\xff" * 24)),
        ("SettleTransaction", f(1, pending.encode()) + f(1, b"\xff")),  # last one wins: invalid
        ("CancelTransaction", f(1, (a + "f" * 16).encode())),
        ("GetTransaction", f(1, (a + "0" * 16).encode())),
        ("CreateTransfer", f(1, a.encode()) + f(2, a.encode()) + v(3, 5)),  # to itself
        ("CreateTransfer", f(1, a.encode()) + f(2, b"0" * 16) + v(3, 5)),  # unknown to
        ("CreateTransfer", f(1, b"0" * 16) + f(2, a.encode()) + v(3, 5)),  # unknown from
        ("CreateTransfer", f(1, a.encode()) + f(2, b.encode()) + v(3, 100)),  # B overflows
        ("CreateTransfer", f(1, b.encode()) + f(2, c.encode()) + v(3, limits.int64_max)),
        ("CreateTransfer", f(1, a.encode()) + f(2, c.encode()) + v(3, -5)),
        ("CreateTransfer", f(1, a.encode()) + f(2, c.encode()) + v(3, limits.int64_min)),
        ("CreateTransfer", f(1, a.encode()) + f(2, c.encode()) + v(3, 1) + f(5, b"fuzz-key")),
        ("GetTransfer", f(1, seeds.transaction_ids[0].encode())),  # not a transfer
    ]
    return cases


def test_fuzz_boundaries(fuzzer: Fuzzer) -> None:
    for method, payload in boundary_cases(fuzzer.seeds):
        fuzzer.check(method, payload)
    # The limit is the server's: a message one byte over it is refused, whatever it holds.
    over = wire.len_field(100, b"x" * (limits.grpc_message_bytes_max + 1))
    assert fuzzer.check("GetAccount", over).code is Code.RESOURCE_EXHAUSTED


def test_fuzz_tiny_deadlines(fuzzer: Fuzzer) -> None:
    """Deadlines too short to finish: DEADLINE_EXCEEDED or an answer, never a broken server.
    The write goes to an account outside the seeded ones: its outcome is unknown by contract,
    and it may still apply after the client gave up."""
    a = fuzzer.seeds.account_ids[0]
    scratch = fuzzer.stub.CreateAccount(api.CreateAccountRequest(), timeout=T).account.id
    requests = {
        "GetAccount": wire.len_field(1, a.encode()),
        "CreateTransaction": wire.len_field(1, scratch.encode()) + wire.varint_field(2, 1),
        "ListTransactions": wire.len_field(1, a.encode()),
        "CreateTransfer": wire.len_field(1, scratch.encode())
        + wire.len_field(2, a.encode())
        + wire.varint_field(3, 1),  # no funds: nothing moves, whatever the timing
    }
    for timeout in (0.000_001, 0.001, 0.01):
        for method, payload in requests.items():
            fuzzer.check(method, payload, timeout=timeout)
    assert fuzzer.check("GetAccount", requests["GetAccount"]).code is Code.OK
