"""Model-based property test: the replicated ledger agrees with a plain-dict model of its rules.

Goal: for random sequences of commands (top-ups and purchases, settled or pending, with amounts
near the int64 limits now and then; settle/cancel of existing and unknown transactions; accounts
created twice; idempotency keys from a small pool, repeated with the same or another payload;
exact retries of earlier commands carrying their request id; a clock that sometimes steps back),
every result equals the model's, and after every applied entry:

* ``0 <= available <= settled`` for every account;
* the balances equal a replay of the stored history: settled = sum of SETTLED amounts,
  available = settled + sum of PENDING negative amounts;
* the account and every one of its transactions, read back through ``read``, equal the model.

After the sequence, replaying the same command log into a fresh store (directly and through
``apply_encoded``) gives identical ``items()``, and re-applying every entry at its old index
returns None and changes nothing (exactly-once apply).

Method: hypothesis draws a list of batches of operations; each batch is one entry applied with
``ShardStateMachine.apply`` on a ``MemoryShardStore``. The model below is written from the spec,
not from the core: it shares no code with ledger/. Clock steps stay far below the request
retention, so request records never expire here.

A second property covers request expiry, with clock steps around ``request_retention_ns`` and
request ids from a small pool: a machine kept warm, a machine created afresh for every entry
(cold: its cache of the oldest request record is empty) and a follower that skips entries and
catches up through ``restore`` from the leader's data all return the same results and hold the
same items; and a retry whose record is within the retention window on the shard clock is
always answered with the stored result.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger import limits
from ledger.pb import ledger_internal_pb2 as pb
from ledger.replication.state_machine import ShardStateMachine
from ledger.storage.base import APPLIED_KEY
from ledger.storage.memory import MemoryShardStore

T = 1_700_000_000_000_000_000
A = 0x3D2DBE651AB536A1
B = 0x0123456789ABCDEF
UNKNOWN = 0xDEADBEEFDEADBEEF
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
PENDING, SETTLED, CANCELLED, INSUFFICIENT_FUNDS = 1, 2, 3, 4

# ----------------------------------------------------------------------------------------------
# The model: the ledger's rules over dicts.


@dataclass
class ModelAccount:
    available: int
    settled: int
    created: int
    updated: int
    key: bytes
    count: int = 0


@dataclass
class ModelTransaction:
    amount: int
    description: str
    status: int
    created: int
    updated: int


@dataclass
class Model:
    accounts: dict[int, ModelAccount] = field(default_factory=dict)
    transactions: dict[tuple[int, int], ModelTransaction] = field(default_factory=dict)
    keys: dict[tuple[int, bytes], tuple[int, int, bool, str]] = field(default_factory=dict)
    requests: dict[bytes, tuple] = field(default_factory=dict)

    def execute(self, command: pb.Command) -> tuple:
        rid = command.request_id
        if rid and rid in self.requests:
            return self.requests[rid]  # a retry gets the stored outcome, whatever it carries
        kind = command.WhichOneof("kind")
        now = command.now_ns
        if kind == "create_account":
            outcome = self.create_account(
                command.create_account.account_id, command.create_account.idempotency_key, now
            )
        elif kind == "create_transaction":
            body = command.create_transaction
            outcome = self.create_transaction(
                body.account_id,
                body.amount,
                body.description,
                body.settled,
                body.idempotency_key,
                now,
            )
        elif kind == "settle_transaction":
            body_s = command.settle_transaction
            outcome = self.finish(body_s.account_id, body_s.transaction_number, now, SETTLED)
        else:
            body_c = command.cancel_transaction
            outcome = self.finish(body_c.account_id, body_c.transaction_number, now, CANCELLED)
        if rid:
            self.requests[rid] = outcome
        return outcome

    def account_outcome(self, account_id: int) -> tuple:
        a = self.accounts[account_id]
        return ("account", account_id, a.available, a.settled, a.created, a.updated, a.count, a.key)

    def transaction_outcome(self, account_id: int, number: int) -> tuple:
        t = self.transactions[(account_id, number)]
        return (
            "transaction",
            account_id,
            number,
            t.amount,
            t.description,
            t.status,
            t.created,
            t.updated,
        )

    def create_account(self, account_id: int, key: bytes, now: int) -> tuple:
        if len(key) > 128:
            return ("error", "IDEMPOTENCY_KEY_TOO_LONG")
        if account_id in self.accounts:
            if key and self.accounts[account_id].key == key:
                return self.account_outcome(account_id)
            return ("error", "ACCOUNT_ALREADY_EXISTS")
        self.accounts[account_id] = ModelAccount(0, 0, now, now, key)
        return self.account_outcome(account_id)

    def create_transaction(
        self, account_id: int, amount: int, description: str, settled: bool, key: bytes, now: int
    ) -> tuple:
        if amount == 0:
            return ("error", "INVALID_AMOUNT")
        if len(description.encode("utf-8")) > 1024:
            return ("error", "DESCRIPTION_TOO_LONG")
        if len(key) > 128:
            return ("error", "IDEMPOTENCY_KEY_TOO_LONG")
        account = self.accounts.get(account_id)
        if account is None:
            return ("error", "ACCOUNT_NOT_FOUND")
        if key and (account_id, key) in self.keys:
            number, *payload = self.keys[(account_id, key)]
            if tuple(payload) != (amount, settled, description):
                return ("error", "IDEMPOTENCY_KEY_REUSED")
            return self.transaction_outcome(account_id, number)
        available, balance = account.available, account.settled
        if amount > 0:
            status = SETTLED if settled else PENDING
            if settled:
                available, balance = available + amount, balance + amount
        elif available + amount < 0:
            status = INSUFFICIENT_FUNDS
        elif settled:
            status, available, balance = SETTLED, available + amount, balance + amount
        else:
            status, available = PENDING, available + amount
        if not (I64_MIN <= available <= I64_MAX and I64_MIN <= balance <= I64_MAX):
            return ("error", "BALANCE_OVERFLOW")
        account.count += 1
        account.available, account.settled = available, balance
        account.updated = max(account.updated, now)
        self.transactions[(account_id, account.count)] = ModelTransaction(
            amount, description, status, now, now
        )
        if key:
            self.keys[(account_id, key)] = (account.count, amount, settled, description)
        return self.transaction_outcome(account_id, account.count)

    def finish(self, account_id: int, number: int, now: int, status: int) -> tuple:
        account = self.accounts.get(account_id)
        if account is None:
            return ("error", "ACCOUNT_NOT_FOUND")
        transaction = self.transactions.get((account_id, number))
        if transaction is None:
            return ("error", "TRANSACTION_NOT_FOUND")
        if transaction.status != PENDING:
            return ("error", "TRANSACTION_NOT_PENDING")
        available, balance = account.available, account.settled
        if status == SETTLED:
            balance += transaction.amount
            if transaction.amount > 0:
                available += transaction.amount
        elif transaction.amount < 0:
            available -= transaction.amount  # the hold returns
        if not (I64_MIN <= available <= I64_MAX and I64_MIN <= balance <= I64_MAX):
            return ("error", "BALANCE_OVERFLOW")
        account.available, account.settled = available, balance
        account.updated = max(account.updated, now)
        transaction.status = status
        transaction.updated = max(transaction.updated, now)
        return self.transaction_outcome(account_id, number)


def outcome_of(result: pb.Result) -> tuple:
    kind = result.WhichOneof("kind")
    if kind == "error":
        return ("error", result.error.reason)
    if kind == "account":
        a = result.account
        return (
            "account", a.account_id, a.available_balance, a.settled_balance,
            a.created_at_ns, a.updated_at_ns, a.transaction_count, a.idempotency_key,
        )  # fmt: skip
    assert kind == "transaction", result
    return transaction_outcome_of(result.transaction)


def transaction_outcome_of(t: pb.TransactionRecord) -> tuple:
    return (
        "transaction", t.account_id, t.transaction_number, t.amount, t.description,
        int(t.status), t.created_at_ns, t.updated_at_ns,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Operations.

EDGE_AMOUNTS = [
    I64_MAX,
    I64_MIN,
    I64_MAX - 1,
    -I64_MAX,
    I64_MAX // 2 + 1,
    -(I64_MAX // 2 + 1),
    1,
    -1,
    0,
]
amounts = st.one_of(
    st.integers(-300, 300),
    st.integers(-300, 300),
    st.integers(I64_MIN, I64_MAX),
    st.sampled_from(EDGE_AMOUNTS),
)
tx_accounts = st.sampled_from([A, A, A, B, UNKNOWN])
descriptions = st.sampled_from(["", "", "x", "x", "é" * 512, "é" * 513])
keys = st.one_of(st.just(b""), st.sampled_from([b"k1", b"k2"]))
numbers = st.one_of(st.integers(1, 4), st.integers(0, 12))
steps = st.integers(-3, 5)  # the gateway clock sometimes steps back

creates = st.tuples(
    st.just("create"),
    tx_accounts,
    amounts,
    st.booleans(),
    descriptions,
    keys,
    steps,
    st.booleans(),
)
operations = st.one_of(
    st.tuples(
        st.just("account"),
        st.sampled_from([A, B]),
        st.sampled_from([b"", b"a1", b"a2"]),
        steps,
        st.booleans(),
    ),
    creates,
    creates,  # listed twice: creates are what most histories should consist of
    st.tuples(st.just("settle"), tx_accounts, numbers, steps, st.booleans()),
    st.tuples(st.just("cancel"), tx_accounts, numbers, steps, st.booleans()),
    st.tuples(st.just("repeat"), st.integers(0, 1000), st.booleans(), steps),
    # Boundaries computed from the model's balance at build time: available reaching exactly 0
    # (or missing it by one), settled reaching exactly int64 max (or passing it by one).
    st.tuples(
        st.just("drain"),
        st.sampled_from([A, B]),
        st.booleans(),
        st.sampled_from([-1, 0, 0, 1]),
        steps,
    ),
    st.tuples(
        st.just("fill"),
        st.sampled_from([A, B]),
        st.booleans(),
        st.sampled_from([-1, 0, 0, 1]),
        steps,
    ),
)
batches = st.lists(st.lists(operations, min_size=1, max_size=4), min_size=1, max_size=12)


class Builder:
    """Turns drawn operations into pb commands: a running clock and fresh request ids."""

    def __init__(self) -> None:
        self.now = T
        self.request_count = 0
        self.history: list[pb.Command] = []

    def rid(self, wanted: bool) -> bytes:
        if not wanted:
            return b""
        self.request_count += 1
        return b"req-%d" % self.request_count

    def build(self, op: tuple, model: Model) -> pb.Command:
        kind = op[0]
        if kind in ("drain", "fill"):
            _, account_id, settled, delta, step = op
            account = model.accounts.get(account_id)
            if kind == "drain":
                amount = -(account.available if account else 0) + delta
            else:
                amount = max(1, I64_MAX - (account.settled if account else 0) + delta)
            amount = max(I64_MIN, min(I64_MAX, amount))
            return self.build(("create", account_id, amount, settled, "", b"", step, False), model)
        if kind == "account":
            _, account_id, key, step, with_rid = op
            self.now += step
            command = pb.Command(
                request_id=self.rid(with_rid), now_ns=self.now,
                create_account=pb.CreateAccount(account_id=account_id, idempotency_key=key),
            )  # fmt: skip
        elif kind == "create":
            _, account_id, amount, settled, description, key, step, with_rid = op
            self.now += step
            body = pb.CreateTransaction(
                account_id=account_id,
                amount=amount,
                description=description,
                settled=settled,
                idempotency_key=key,
            )
            command = pb.Command(
                request_id=self.rid(with_rid), now_ns=self.now, create_transaction=body
            )
        elif kind in ("settle", "cancel"):
            _, account_id, number, step, with_rid = op
            self.now += step
            command = pb.Command(request_id=self.rid(with_rid), now_ns=self.now)
            target = command.settle_transaction if kind == "settle" else command.cancel_transaction
            target.account_id, target.transaction_number = account_id, number
        else:
            _, which, keep_rid, step = op
            self.now += step
            if not self.history:
                return self.build(("settle", A, 1, 0, False), model)
            command = pb.Command()
            command.CopyFrom(self.history[which % len(self.history)])
            command.now_ns = self.now
            if not keep_rid:  # the same payload as a new call: only an idempotency key can match
                command.request_id = self.rid(True)
        self.history.append(command)
        return command


# ----------------------------------------------------------------------------------------------
# Checks.


def all_transactions(machine: ShardStateMachine, account_id: int) -> list[pb.TransactionRecord]:
    found: list[pb.TransactionRecord] = []
    token = ""
    while True:
        query = pb.Query(
            list_transactions=pb.ListTransactions(
                account_id=account_id, page_size=7, page_token=token
            )
        )
        result = machine.read(query)
        assert result.WhichOneof("kind") == "page", result
        found.extend(result.page.transactions)
        token = result.page.next_page_token
        if not token:
            return found


def check_against_model(machine: ShardStateMachine, model: Model) -> None:
    for account_id in (A, B, UNKNOWN):
        result = machine.read(pb.Query(get_account=pb.GetAccount(account_id=account_id)))
        if account_id not in model.accounts:
            assert outcome_of(result) == ("error", "ACCOUNT_NOT_FOUND")
            continue
        account = result.account
        assert outcome_of(result) == model.account_outcome(account_id)
        assert 0 <= account.available_balance <= account.settled_balance
        history = all_transactions(machine, account_id)
        assert [t.transaction_number for t in history] == list(
            range(1, account.transaction_count + 1)
        )
        assert [transaction_outcome_of(t) for t in history] == [
            model.transaction_outcome(account_id, n)
            for n in range(1, account.transaction_count + 1)
        ]
        settled = sum(t.amount for t in history if t.status == pb.STATUS_SETTLED)
        holds = sum(t.amount for t in history if t.status == pb.STATUS_PENDING and t.amount < 0)
        assert account.settled_balance == settled
        assert account.available_balance == settled + holds


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches)
def test_ledger_matches_the_model(drawn: list[list[tuple]]) -> None:
    store = MemoryShardStore()
    machine = ShardStateMachine(store)
    model = Model()
    builder = Builder()
    log: list[list[pb.Command]] = []
    first = [pb.Command(now_ns=T, create_account=pb.CreateAccount(account_id=A))]
    for index, ops in enumerate([None, *drawn], start=1):
        batch: list[pb.Command] = []
        expected: list[tuple] = []
        for op in ops or ():
            batch.append(builder.build(op, model))  # built on the model's state so far
            expected.append(model.execute(batch[-1]))
        if ops is None:
            batch, expected = first, [model.execute(first[0])]
        log.append(batch)
        results = machine.apply(batch, index)
        assert results is not None
        outcomes = [outcome_of(result) for result in results]
        assert outcomes == expected
        for outcome in outcomes:
            event(
                outcome[1]
                if outcome[0] == "error"
                else "account"
                if outcome[0] == "account"
                else f"status {outcome[5]}"
            )
        assert store.applied_index == index
        check_against_model(machine, model)

    final = list(store.items())
    for index, batch in enumerate(log, start=1):  # exactly once: a replayed entry is skipped
        assert machine.apply(batch, index) is None
    assert list(store.items()) == final

    fresh = MemoryShardStore()
    fresh_machine = ShardStateMachine(fresh)
    encoded = MemoryShardStore()
    encoded_machine = ShardStateMachine(encoded)
    for index, batch in enumerate(log, start=1):
        fresh_machine.apply(batch, index)
        data = pb.CommandBatch(commands=batch).SerializeToString()
        assert encoded_machine.apply_encoded(data, index) is not None
    assert list(fresh.items()) == final
    assert list(encoded.items()) == final


RETENTION = limits.request_retention_ns
expiry_steps = st.sampled_from(
    [0, 1, 7, RETENTION // 2, RETENTION - 1, RETENTION, RETENTION + 1, 3 * RETENTION, -RETENTION]
)
expiry_commands = st.tuples(
    st.one_of(st.none(), st.integers(0, 9)), expiry_steps, st.integers(1, 5)
)
# Each entry: its commands, whether the follower misses it, whether the follower then catches up.
expiry_entries = st.lists(
    st.tuples(st.lists(expiry_commands, min_size=0, max_size=5), st.booleans(), st.booleans()),
    min_size=1,
    max_size=15,
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expiry_entries)
def test_request_expiry_is_the_same_warm_cold_and_restored(
    entries: list[tuple[list[tuple], bool, bool]],
) -> None:
    warm_store, cold_store, follower_store = (
        MemoryShardStore(),
        MemoryShardStore(),
        MemoryShardStore(),
    )
    warm, follower = ShardStateMachine(warm_store), ShardStateMachine(follower_store)
    create = [pb.Command(now_ns=T, create_account=pb.CreateAccount(account_id=A))]
    for machine in (warm, ShardStateMachine(cold_store), follower):
        machine.apply(create, 1)
    now, shard_clock = T, T
    first_seen: dict[bytes, tuple[pb.Result, int]] = {}  # rid -> (stored result, record time)
    lagging = False
    for index, (commands, miss, catch_up) in enumerate(entries, start=2):
        batch = []
        for rid_number, step, amount in commands:
            now += step
            rid = b"" if rid_number is None else b"rid-%d" % rid_number
            body = pb.CreateTransaction(account_id=A, amount=amount, settled=True)
            batch.append(pb.Command(request_id=rid, now_ns=now, create_transaction=body))
        clock_before_entry = shard_clock
        results = warm.apply(batch, index)
        assert results is not None
        assert ShardStateMachine(cold_store).apply(batch, index) == results
        assert list(cold_store.items()) == list(warm_store.items())
        if miss:
            lagging = True
        else:
            follower_results = follower.apply(batch, index) if not lagging else None
            if lagging and catch_up:  # a snapshot from the leader, then back in step
                snapshot = [(k, v) for k, v in warm_store.items() if k != APPLIED_KEY]
                follower.restore(snapshot, index)
                lagging = False
            elif follower_results is not None:
                assert follower_results == results
            if not lagging:
                assert list(follower_store.items()) == list(warm_store.items())
        for command, result in zip(batch, results, strict=True):
            shard_clock = max(shard_clock, command.now_ns)
            rid = command.request_id
            if not rid:
                continue
            if rid in first_seen and clock_before_entry - first_seen[rid][1] <= RETENTION:
                assert result == first_seen[rid][0]  # within the retention: never applied twice
                event("retry deduplicated")
            elif rid not in first_seen or result != first_seen[rid][0]:
                first_seen[rid] = (result, shard_clock)
                event("request applied")


def test_model_reproduces_the_reference_scenario() -> None:
    """The model itself follows the spec: the reference scenario's balances, 0/0, 90/100, 90/90."""
    model = Model()
    model.create_account(A, b"", T)
    assert model.create_transaction(A, 100, "", False, b"", T + 1)[5] == PENDING
    assert (model.accounts[A].available, model.accounts[A].settled) == (0, 0)
    model.finish(A, 1, T + 2, SETTLED)
    model.create_transaction(A, -10, "", False, b"", T + 3)
    assert (model.accounts[A].available, model.accounts[A].settled) == (90, 100)
    model.finish(A, 2, T + 4, SETTLED)
    assert (model.accounts[A].available, model.accounts[A].settled) == (90, 90)
    assert model.create_transaction(A, -1000, "", False, b"", T + 5)[5] == INSUFFICIENT_FUNDS
    assert limits.int64_max == I64_MAX and limits.int64_min == I64_MIN
