from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STATUS_INVALID: _ClassVar[Status]
    STATUS_PENDING: _ClassVar[Status]
    STATUS_SETTLED: _ClassVar[Status]
    STATUS_CANCELLED: _ClassVar[Status]
    STATUS_INSUFFICIENT_FUNDS: _ClassVar[Status]

class TransferStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRANSFER_STATUS_INVALID: _ClassVar[TransferStatus]
    TRANSFER_STATUS_IN_FLIGHT: _ClassVar[TransferStatus]
    TRANSFER_STATUS_COMPLETED: _ClassVar[TransferStatus]
    TRANSFER_STATUS_INSUFFICIENT_FUNDS: _ClassVar[TransferStatus]
    TRANSFER_STATUS_FAILED: _ClassVar[TransferStatus]
STATUS_INVALID: Status
STATUS_PENDING: Status
STATUS_SETTLED: Status
STATUS_CANCELLED: Status
STATUS_INSUFFICIENT_FUNDS: Status
TRANSFER_STATUS_INVALID: TransferStatus
TRANSFER_STATUS_IN_FLIGHT: TransferStatus
TRANSFER_STATUS_COMPLETED: TransferStatus
TRANSFER_STATUS_INSUFFICIENT_FUNDS: TransferStatus
TRANSFER_STATUS_FAILED: TransferStatus

class AccountRecord(_message.Message):
    __slots__ = ("account_id", "available_balance", "settled_balance", "created_at_ns", "updated_at_ns", "transaction_count", "idempotency_key")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_BALANCE_FIELD_NUMBER: _ClassVar[int]
    SETTLED_BALANCE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    available_balance: int
    settled_balance: int
    created_at_ns: int
    updated_at_ns: int
    transaction_count: int
    idempotency_key: bytes
    def __init__(self, account_id: _Optional[int] = ..., available_balance: _Optional[int] = ..., settled_balance: _Optional[int] = ..., created_at_ns: _Optional[int] = ..., updated_at_ns: _Optional[int] = ..., transaction_count: _Optional[int] = ..., idempotency_key: _Optional[bytes] = ...) -> None: ...

class TransactionRecord(_message.Message):
    __slots__ = ("account_id", "transaction_number", "amount", "description", "status", "created_at_ns", "updated_at_ns", "transfer_account_id", "transfer_number", "expires_at_ns")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_NUMBER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_NS_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    transaction_number: int
    amount: int
    description: str
    status: Status
    created_at_ns: int
    updated_at_ns: int
    transfer_account_id: int
    transfer_number: int
    expires_at_ns: int
    def __init__(self, account_id: _Optional[int] = ..., transaction_number: _Optional[int] = ..., amount: _Optional[int] = ..., description: _Optional[str] = ..., status: _Optional[_Union[Status, str]] = ..., created_at_ns: _Optional[int] = ..., updated_at_ns: _Optional[int] = ..., transfer_account_id: _Optional[int] = ..., transfer_number: _Optional[int] = ..., expires_at_ns: _Optional[int] = ...) -> None: ...

class TransferRecord(_message.Message):
    __slots__ = ("from_account_id", "debit_number", "to_account_id", "amount", "status", "credit_number", "created_at_ns", "updated_at_ns", "description")
    FROM_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    TO_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREDIT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    from_account_id: int
    debit_number: int
    to_account_id: int
    amount: int
    status: TransferStatus
    credit_number: int
    created_at_ns: int
    updated_at_ns: int
    description: str
    def __init__(self, from_account_id: _Optional[int] = ..., debit_number: _Optional[int] = ..., to_account_id: _Optional[int] = ..., amount: _Optional[int] = ..., status: _Optional[_Union[TransferStatus, str]] = ..., credit_number: _Optional[int] = ..., created_at_ns: _Optional[int] = ..., updated_at_ns: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class TransferCreditRecord(_message.Message):
    __slots__ = ("credit_number", "refusal_reason")
    CREDIT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_REASON_FIELD_NUMBER: _ClassVar[int]
    credit_number: int
    refusal_reason: str
    def __init__(self, credit_number: _Optional[int] = ..., refusal_reason: _Optional[str] = ...) -> None: ...

class TransferList(_message.Message):
    __slots__ = ("transfers", "next_hold_expiry_ns")
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_HOLD_EXPIRY_NS_FIELD_NUMBER: _ClassVar[int]
    transfers: _containers.RepeatedCompositeFieldContainer[TransferRecord]
    next_hold_expiry_ns: int
    def __init__(self, transfers: _Optional[_Iterable[_Union[TransferRecord, _Mapping]]] = ..., next_hold_expiry_ns: _Optional[int] = ...) -> None: ...

class Tick(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateAccount(_message.Message):
    __slots__ = ("account_id", "idempotency_key")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    idempotency_key: bytes
    def __init__(self, account_id: _Optional[int] = ..., idempotency_key: _Optional[bytes] = ...) -> None: ...

class CreateTransaction(_message.Message):
    __slots__ = ("account_id", "amount", "description", "settled", "idempotency_key", "expires_at_ns")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SETTLED_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_NS_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    amount: int
    description: str
    settled: bool
    idempotency_key: bytes
    expires_at_ns: int
    def __init__(self, account_id: _Optional[int] = ..., amount: _Optional[int] = ..., description: _Optional[str] = ..., settled: _Optional[bool] = ..., idempotency_key: _Optional[bytes] = ..., expires_at_ns: _Optional[int] = ...) -> None: ...

class BeginTransfer(_message.Message):
    __slots__ = ("from_account_id", "to_account_id", "amount", "description", "idempotency_key", "within_shard")
    FROM_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TO_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    WITHIN_SHARD_FIELD_NUMBER: _ClassVar[int]
    from_account_id: int
    to_account_id: int
    amount: int
    description: str
    idempotency_key: bytes
    within_shard: bool
    def __init__(self, from_account_id: _Optional[int] = ..., to_account_id: _Optional[int] = ..., amount: _Optional[int] = ..., description: _Optional[str] = ..., idempotency_key: _Optional[bytes] = ..., within_shard: _Optional[bool] = ...) -> None: ...

class CreditTransfer(_message.Message):
    __slots__ = ("to_account_id", "from_account_id", "debit_number", "amount", "description")
    TO_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    AMOUNT_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    to_account_id: int
    from_account_id: int
    debit_number: int
    amount: int
    description: str
    def __init__(self, to_account_id: _Optional[int] = ..., from_account_id: _Optional[int] = ..., debit_number: _Optional[int] = ..., amount: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class FinishTransfer(_message.Message):
    __slots__ = ("from_account_id", "debit_number", "credit")
    FROM_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREDIT_FIELD_NUMBER: _ClassVar[int]
    from_account_id: int
    debit_number: int
    credit: TransferCreditRecord
    def __init__(self, from_account_id: _Optional[int] = ..., debit_number: _Optional[int] = ..., credit: _Optional[_Union[TransferCreditRecord, _Mapping]] = ...) -> None: ...

class SettleTransaction(_message.Message):
    __slots__ = ("account_id", "transaction_number")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    transaction_number: int
    def __init__(self, account_id: _Optional[int] = ..., transaction_number: _Optional[int] = ...) -> None: ...

class CancelTransaction(_message.Message):
    __slots__ = ("account_id", "transaction_number")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    transaction_number: int
    def __init__(self, account_id: _Optional[int] = ..., transaction_number: _Optional[int] = ...) -> None: ...

class Command(_message.Message):
    __slots__ = ("request_id", "now_ns", "create_account", "create_transaction", "settle_transaction", "cancel_transaction", "begin_transfer", "credit_transfer", "finish_transfer", "tick")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    NOW_NS_FIELD_NUMBER: _ClassVar[int]
    CREATE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    SETTLE_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    CANCEL_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    BEGIN_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    CREDIT_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    FINISH_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    TICK_FIELD_NUMBER: _ClassVar[int]
    request_id: bytes
    now_ns: int
    create_account: CreateAccount
    create_transaction: CreateTransaction
    settle_transaction: SettleTransaction
    cancel_transaction: CancelTransaction
    begin_transfer: BeginTransfer
    credit_transfer: CreditTransfer
    finish_transfer: FinishTransfer
    tick: Tick
    def __init__(self, request_id: _Optional[bytes] = ..., now_ns: _Optional[int] = ..., create_account: _Optional[_Union[CreateAccount, _Mapping]] = ..., create_transaction: _Optional[_Union[CreateTransaction, _Mapping]] = ..., settle_transaction: _Optional[_Union[SettleTransaction, _Mapping]] = ..., cancel_transaction: _Optional[_Union[CancelTransaction, _Mapping]] = ..., begin_transfer: _Optional[_Union[BeginTransfer, _Mapping]] = ..., credit_transfer: _Optional[_Union[CreditTransfer, _Mapping]] = ..., finish_transfer: _Optional[_Union[FinishTransfer, _Mapping]] = ..., tick: _Optional[_Union[Tick, _Mapping]] = ...) -> None: ...

class CommandBatch(_message.Message):
    __slots__ = ("commands",)
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    commands: _containers.RepeatedCompositeFieldContainer[Command]
    def __init__(self, commands: _Optional[_Iterable[_Union[Command, _Mapping]]] = ...) -> None: ...

class Error(_message.Message):
    __slots__ = ("reason", "message", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    reason: str
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, reason: _Optional[str] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("account", "transaction", "error", "page", "transfer", "transfer_credit", "transfers")
    ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    PAGE_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_CREDIT_FIELD_NUMBER: _ClassVar[int]
    TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    account: AccountRecord
    transaction: TransactionRecord
    error: Error
    page: TransactionPage
    transfer: TransferRecord
    transfer_credit: TransferCreditRecord
    transfers: TransferList
    def __init__(self, account: _Optional[_Union[AccountRecord, _Mapping]] = ..., transaction: _Optional[_Union[TransactionRecord, _Mapping]] = ..., error: _Optional[_Union[Error, _Mapping]] = ..., page: _Optional[_Union[TransactionPage, _Mapping]] = ..., transfer: _Optional[_Union[TransferRecord, _Mapping]] = ..., transfer_credit: _Optional[_Union[TransferCreditRecord, _Mapping]] = ..., transfers: _Optional[_Union[TransferList, _Mapping]] = ...) -> None: ...

class GetAccount(_message.Message):
    __slots__ = ("account_id",)
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    def __init__(self, account_id: _Optional[int] = ...) -> None: ...

class GetTransaction(_message.Message):
    __slots__ = ("account_id", "transaction_number")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSACTION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    transaction_number: int
    def __init__(self, account_id: _Optional[int] = ..., transaction_number: _Optional[int] = ...) -> None: ...

class ListTransactions(_message.Message):
    __slots__ = ("account_id", "page_size", "page_token")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    account_id: int
    page_size: int
    page_token: str
    def __init__(self, account_id: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class GetTransfer(_message.Message):
    __slots__ = ("from_account_id", "debit_number")
    FROM_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    DEBIT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    from_account_id: int
    debit_number: int
    def __init__(self, from_account_id: _Optional[int] = ..., debit_number: _Optional[int] = ...) -> None: ...

class ListInFlightTransfers(_message.Message):
    __slots__ = ("after_account_id", "after_debit_number", "limit")
    AFTER_ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_DEBIT_NUMBER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    after_account_id: int
    after_debit_number: int
    limit: int
    def __init__(self, after_account_id: _Optional[int] = ..., after_debit_number: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("get_account", "get_transaction", "list_transactions", "get_transfer", "list_in_flight_transfers")
    GET_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    GET_TRANSACTION_FIELD_NUMBER: _ClassVar[int]
    LIST_TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    GET_TRANSFER_FIELD_NUMBER: _ClassVar[int]
    LIST_IN_FLIGHT_TRANSFERS_FIELD_NUMBER: _ClassVar[int]
    get_account: GetAccount
    get_transaction: GetTransaction
    list_transactions: ListTransactions
    get_transfer: GetTransfer
    list_in_flight_transfers: ListInFlightTransfers
    def __init__(self, get_account: _Optional[_Union[GetAccount, _Mapping]] = ..., get_transaction: _Optional[_Union[GetTransaction, _Mapping]] = ..., list_transactions: _Optional[_Union[ListTransactions, _Mapping]] = ..., get_transfer: _Optional[_Union[GetTransfer, _Mapping]] = ..., list_in_flight_transfers: _Optional[_Union[ListInFlightTransfers, _Mapping]] = ...) -> None: ...

class TransactionPage(_message.Message):
    __slots__ = ("transactions", "next_page_token")
    TRANSACTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    transactions: _containers.RepeatedCompositeFieldContainer[TransactionRecord]
    next_page_token: str
    def __init__(self, transactions: _Optional[_Iterable[_Union[TransactionRecord, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResultBatch(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Result]
    def __init__(self, results: _Optional[_Iterable[_Union[Result, _Mapping]]] = ...) -> None: ...

class RequestRecord(_message.Message):
    __slots__ = ("stored_at_ns", "result")
    STORED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    stored_at_ns: int
    result: Result
    def __init__(self, stored_at_ns: _Optional[int] = ..., result: _Optional[_Union[Result, _Mapping]] = ...) -> None: ...

class WriteSet(_message.Message):
    __slots__ = ("id", "previous_id", "keys", "values", "deleted")
    ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ID_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    id: bytes
    previous_id: bytes
    keys: _containers.RepeatedScalarFieldContainer[bytes]
    values: _containers.RepeatedScalarFieldContainer[bytes]
    deleted: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, id: _Optional[bytes] = ..., previous_id: _Optional[bytes] = ..., keys: _Optional[_Iterable[bytes]] = ..., values: _Optional[_Iterable[bytes]] = ..., deleted: _Optional[_Iterable[int]] = ...) -> None: ...
