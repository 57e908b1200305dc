"""AccountsCore: the deterministic ledger state machine of one shard.

Commands in, results and writes out. The core reads through ``StoreReader`` and never writes: it
returns the writes it wants, and the replication layer commits them together with the Raft index
in one LevelDB WriteBatch. No clock, no randomness, no I/O, no dict-order dependence: ``now_ns``
and ids arrive in the command. Each command checks in a fixed order (shape, existence, state,
balance), computes new records in pure helpers and returns them in one place.

Decisions the spec leaves open:

* Transaction numbers are a per-account sequence (1, 2, 3, ...) kept in the account record, so
  creation order is key order and listing is a range scan; no random draw, no collision.
* A CreateTransaction replay with the same idempotency key returns the transaction as it is now
  (its current status), writes nothing and does not touch ``updated_at``.
* CreateAccount on an existing id refuses (ACCOUNT_ALREADY_EXISTS) unless it carries the same
  idempotency key the account was created with, in which case it returns that account.
* INSUFFICIENT_FUNDS transactions are stored, consume a transaction number and move the account's
  ``updated_at`` (reference behaviour).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ledger import limits
from ledger.core.commands import (
    CancelTransaction,
    Command,
    CreateAccount,
    CreateTransaction,
    GetAccount,
    GetTransaction,
    ListTransactions,
    Query,
    SettleTransaction,
    Tick,
)
from ledger.core.outcomes import Failure, Reason
from ledger.core.pages import InvalidPageToken, decode_page_token, encode_page_token
from ledger.core.records import (
    Account,
    IdempotencyEntry,
    Status,
    Transaction,
    account_key,
    expiry_key,
    idempotency_key,
    transaction_key,
    transaction_key_range,
)

__all__ = ["AccountsCore", "Applied", "Result", "StoreReader", "TransactionPage", "Write"]


class StoreReader(Protocol):
    """The narrow, read-only view of a shard's data the core needs."""

    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, start: bytes, stop: bytes, limit: int) -> Sequence[tuple[bytes, bytes]]:
        """Up to ``limit`` pairs with ``start <= key < stop``, in key order."""
        ...


@dataclass(frozen=True, slots=True)
class TransactionPage:
    transactions: tuple[Transaction, ...]
    next_page_token: str  # "" on the last page


Result = Account | Transaction | TransactionPage | Failure
Write = tuple[bytes, bytes | None]  # None: delete the key


class Applied(NamedTuple):
    """A command's result and the writes that make it durable (none for a failure or replay)."""

    result: Result  # a page only for a Tick, which answers with an empty one
    writes: tuple[Write, ...] = ()


def _in_int64(value: int) -> bool:
    return limits.int64_min <= value <= limits.int64_max


def _check_transaction_shape(command: CreateTransaction) -> Failure | None:
    if command.amount == 0 or not _in_int64(command.amount):
        return Failure.of(Reason.INVALID_AMOUNT, "amount must be a non-zero int64")
    if command.expires_at_ns and (command.settled or command.expires_at_ns <= command.now_ns):
        return Failure.of(
            Reason.INVALID_HOLD_TIMEOUT,
            "a hold timeout needs a pending transaction and a time in the future",
        )
    return check_description_and_key(command.description, command.idempotency_key)


def check_description_and_key(description: str, key: bytes) -> Failure | None:
    """The size limits every money-moving command shares."""
    if len(description.encode("utf-8")) > limits.description_bytes_max:
        return Failure.of(
            Reason.DESCRIPTION_TOO_LONG,
            f"description is longer than {limits.description_bytes_max} UTF-8 bytes",
        )
    return _check_key_shape(key)


def _check_key_shape(key: bytes) -> Failure | None:
    if len(key) > limits.idempotency_key_bytes_max:
        return Failure.of(
            Reason.IDEMPOTENCY_KEY_TOO_LONG,
            f"idempotency key is longer than {limits.idempotency_key_bytes_max} bytes",
        )
    return None


def _account_not_found(account_id: int) -> Failure:
    return Failure.of(
        Reason.ACCOUNT_NOT_FOUND, "account not found", account_id=f"{account_id:016x}"
    )


def _transaction_not_found(account_id: int, number: int) -> Failure:
    return Failure.of(
        Reason.TRANSACTION_NOT_FOUND,
        "transaction not found",
        transaction_id=f"{account_id:016x}{number:016x}",
    )


def _overflow(account: Account) -> Failure:
    return Failure.of(
        Reason.BALANCE_OVERFLOW,
        "the balance would overflow int64",
        account_id=f"{account.account_id:016x}",
    )


def _touch(account: Account, now_ns: int) -> int:
    # max(now_ns, previous): the gateway clock may step back after a failover or between gateways.
    return max(now_ns, account.updated_at_ns)


def _new_transaction_balances(
    account: Account, command: CreateTransaction
) -> tuple[Status, int, int]:
    """Status and (available, settled) after creating the transaction, before overflow checks."""
    available, settled = account.available_balance, account.settled_balance
    if command.amount > 0:
        if command.settled:
            return Status.SETTLED, available + command.amount, settled + command.amount
        return Status.PENDING, available, settled  # pending top-ups count in neither balance
    if available + command.amount < 0:
        return Status.INSUFFICIENT_FUNDS, available, settled
    if command.settled:
        return Status.SETTLED, available + command.amount, settled + command.amount
    return Status.PENDING, available + command.amount, settled


def _settled_balances(account: Account, transaction: Transaction) -> tuple[int, int]:
    if transaction.amount > 0:
        return (
            account.available_balance + transaction.amount,
            account.settled_balance + transaction.amount,
        )
    # A pending purchase already moved available; settling moves settled only.
    return account.available_balance, account.settled_balance + transaction.amount


def _cancelled_balances(account: Account, transaction: Transaction) -> tuple[int, int]:
    if transaction.amount < 0:
        return account.available_balance - transaction.amount, account.settled_balance
    return account.available_balance, account.settled_balance  # a pending top-up moved nothing


class AccountsCore:
    """The state machine of one shard over a read-only store view."""

    def __init__(self, store: StoreReader) -> None:
        self._store = store

    # -- dispatch ---------------------------------------------------------------------------

    def execute(self, command: Command) -> Applied:
        if isinstance(command, CreateTransaction):
            return self.create_transaction(command)
        if isinstance(command, CreateAccount):
            return self.create_account(command)
        if isinstance(command, SettleTransaction):
            return self.settle_transaction(command)
        if isinstance(command, CancelTransaction):
            return self.cancel_transaction(command)
        if isinstance(command, Tick):
            return Applied(TransactionPage((), ""))  # the clock moved; expiry is the caller's
        raise AssertionError(f"unknown command {type(command).__name__}")

    def query(self, query: Query) -> Result:
        if isinstance(query, GetAccount):
            return self.get_account(query.account_id)
        if isinstance(query, GetTransaction):
            return self.get_transaction(query.account_id, query.transaction_number)
        if isinstance(query, ListTransactions):
            return self.list_transactions(query)
        raise AssertionError(f"unknown query {type(query).__name__}")

    # -- storage helpers --------------------------------------------------------------------

    def _load_account(self, account_id: int) -> Account | None:
        data = self._store.get(account_key(account_id))
        if data is None:
            return None
        account = Account.decode(data)
        assert account.account_id == account_id
        return account

    def _load_transaction(self, account_id: int, number: int) -> Transaction | None:
        data = self._store.get(transaction_key(account_id, number))
        if data is None:
            return None
        transaction = Transaction.decode(data)
        assert (transaction.account_id, transaction.transaction_number) == (account_id, number)
        return transaction

    def account(self, account_id: int) -> Account | None:
        """The stored account, or None (for the other step machines of a shard)."""
        return self._load_account(account_id)

    def transaction(self, account_id: int, number: int) -> Transaction | None:
        return self._load_transaction(account_id, number) if number > 0 else None

    # -- reads ------------------------------------------------------------------------------

    def get_account(self, account_id: int) -> Account | Failure:
        account = self._load_account(account_id)
        return _account_not_found(account_id) if account is None else account

    def get_transaction(self, account_id: int, number: int) -> Transaction | Failure:
        transaction = self._load_transaction(account_id, number) if number > 0 else None
        return _transaction_not_found(account_id, number) if transaction is None else transaction

    def list_transactions(self, query: ListTransactions) -> TransactionPage | Failure:
        if query.page_size < 0:
            return Failure.of(Reason.INVALID_PAGE_SIZE, "page_size must not be negative")
        page_size = min(query.page_size or limits.page_size_default, limits.page_size_max)
        try:
            after_number = decode_page_token(query.page_token, query.account_id)
        except InvalidPageToken as error:
            return Failure.of(Reason.INVALID_PAGE_TOKEN, str(error))
        if self._load_account(query.account_id) is None:
            return _account_not_found(query.account_id)
        start, stop = transaction_key_range(query.account_id, after_number)
        rows = self._store.scan(start, stop, page_size + 1)
        transactions = tuple(Transaction.decode(value) for _, value in rows[:page_size])
        next_token = ""
        if len(rows) > page_size:
            next_token = encode_page_token(query.account_id, transactions[-1].transaction_number)
        return TransactionPage(transactions, next_token)

    # -- commands ---------------------------------------------------------------------------

    def create_account(self, command: CreateAccount) -> Applied:
        failure = _check_key_shape(command.idempotency_key)
        if failure is not None:
            return Applied(failure)
        existing = self._load_account(command.account_id)
        if existing is not None:
            if command.idempotency_key and existing.idempotency_key == command.idempotency_key:
                return Applied(existing)  # a replay of the same CreateAccount
            return Applied(
                Failure.of(
                    Reason.ACCOUNT_ALREADY_EXISTS,
                    "account already exists",
                    account_id=f"{command.account_id:016x}",
                )
            )
        account = Account(
            account_id=command.account_id,
            available_balance=0,
            settled_balance=0,
            created_at_ns=command.now_ns,
            updated_at_ns=command.now_ns,
            transaction_count=0,
            idempotency_key=command.idempotency_key,
        )
        return Applied(account, ((account_key(account.account_id), account.encode()),))

    def create_transaction(self, command: CreateTransaction) -> Applied:
        failure = _check_transaction_shape(command)
        if failure is not None:
            return Applied(failure)
        account = self._load_account(command.account_id)
        if account is None:
            return Applied(_account_not_found(command.account_id))
        if command.idempotency_key:
            replay = self._replay_idempotent(account, command)
            if replay is not None:
                return Applied(replay)
        if account.transaction_count >= limits.uint64_max:
            return Applied(Failure.of(Reason.TRANSACTION_LIMIT_REACHED, "account is full"))
        status, available, settled = _new_transaction_balances(account, command)
        if not (_in_int64(available) and _in_int64(settled)):
            return Applied(_overflow(account))
        transaction = Transaction(
            account.account_id,
            account.transaction_count + 1,  # transaction_number
            command.amount,
            command.description,
            status,
            command.now_ns,  # created_at_ns
            command.now_ns,  # updated_at_ns
            expires_at_ns=command.expires_at_ns if status == Status.PENDING else 0,
        )
        updated = Account(
            account.account_id,
            available,
            settled,
            account.created_at_ns,
            _touch(account, command.now_ns),
            transaction.transaction_number,
            account.idempotency_key,
        )
        writes = [
            (account_key(updated.account_id), updated.encode()),
            (
                transaction_key(updated.account_id, transaction.transaction_number),
                transaction.encode(),
            ),
        ]
        if transaction.expires_at_ns:
            writes.append(
                (
                    expiry_key(
                        transaction.expires_at_ns,
                        account.account_id,
                        transaction.transaction_number,
                    ),
                    b"",
                )
            )
        if command.idempotency_key:
            entry = IdempotencyEntry(
                transaction.transaction_number, command.amount, command.settled, command.description
            )
            writes.append(
                (idempotency_key(account.account_id, command.idempotency_key), entry.encode())
            )
        return Applied(transaction, tuple(writes))

    def _replay_idempotent(
        self, account: Account, command: CreateTransaction
    ) -> Transaction | Failure | None:
        """The original transaction, a reuse failure, or None when the key is new."""
        data = self._store.get(idempotency_key(account.account_id, command.idempotency_key))
        if data is None:
            return None
        entry = IdempotencyEntry.decode(data)
        same_payload = (entry.amount, entry.settled, entry.description) == (
            command.amount,
            command.settled,
            command.description,
        )
        if not same_payload:
            return Failure.of(
                Reason.IDEMPOTENCY_KEY_REUSED,
                "idempotency key was already used with a different request",
                account_id=f"{account.account_id:016x}",
                transaction_id=f"{account.account_id:016x}{entry.transaction_number:016x}",
            )
        original = self._load_transaction(account.account_id, entry.transaction_number)
        assert original is not None, "an idempotency entry points at a missing transaction"
        return original

    def settle_transaction(self, command: SettleTransaction) -> Applied:
        return self._finish_pending(
            command.account_id,
            command.transaction_number,
            command.now_ns,
            Status.SETTLED,
            by_client=True,
        )

    def cancel_transaction(self, command: CancelTransaction) -> Applied:
        return self._finish_pending(
            command.account_id,
            command.transaction_number,
            command.now_ns,
            Status.CANCELLED,
            by_client=True,
        )

    def _finish_pending(
        self, account_id: int, number: int, now_ns: int, status: Status, by_client: bool = False
    ) -> Applied:
        account = self._load_account(account_id)
        if account is None:
            return Applied(_account_not_found(account_id))
        transaction = self._load_transaction(account_id, number) if number > 0 else None
        if transaction is None:
            return Applied(_transaction_not_found(account_id, number))
        if by_client and transaction.transfer_key is not None:
            # The transfer's finish step settles or gives back its hold, exactly once; a client
            # doing it first would leave that step nothing to finish (and money in two places).
            transfer_account_id, transfer_number = transaction.transfer_key
            return Applied(
                Failure.of(
                    Reason.TRANSACTION_IN_TRANSFER,
                    "transaction belongs to a transfer; only the transfer settles it",
                    transaction_id=f"{account_id:016x}{number:016x}",
                    transfer_id=f"{transfer_account_id:016x}{transfer_number:016x}",
                )
            )
        if transaction.status != Status.PENDING:
            return Applied(
                Failure.of(
                    Reason.TRANSACTION_NOT_PENDING,
                    "transaction is not pending",
                    transaction_id=f"{account_id:016x}{number:016x}",
                    status=transaction.status.name,
                )
            )
        if status == Status.SETTLED:
            available, settled = _settled_balances(account, transaction)
        else:
            available, settled = _cancelled_balances(account, transaction)
        if not (_in_int64(available) and _in_int64(settled)):
            return Applied(_overflow(account))
        finished = transaction._replace(
            status=status, updated_at_ns=max(now_ns, transaction.updated_at_ns)
        )
        updated = account._replace(
            available_balance=available,
            settled_balance=settled,
            updated_at_ns=_touch(account, now_ns),
        )
        writes: tuple[Write, ...] = (
            (account_key(account_id), updated.encode()),
            (transaction_key(account_id, number), finished.encode()),
        )
        if transaction.expires_at_ns:  # the hold's timeout has nothing left to do
            writes += ((expiry_key(transaction.expires_at_ns, account_id, number), None),)
        return Applied(finished, writes)

    def expire_hold(self, account_id: int, number: int, clock_ns: int) -> Applied:
        """Cancel a pending hold whose timeout the shard clock has reached (the clock, never a
        wall clock: every replica decides the same). A hold settled or cancelled meanwhile only
        loses its timeout entry."""
        transaction = self._load_transaction(account_id, number)
        assert transaction is not None and transaction.expires_at_ns, "a timeout of nothing"
        if transaction.status == Status.PENDING and transaction.expires_at_ns <= clock_ns:
            return self._finish_pending(account_id, number, clock_ns, Status.CANCELLED)
        stale = expiry_key(transaction.expires_at_ns, account_id, number)
        return Applied(transaction, ((stale, None),))
