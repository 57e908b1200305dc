from ledger.pb import ledger_internal_pb2 as _ledger_internal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Refusal(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REFUSAL_NONE: _ClassVar[Refusal]
    REFUSAL_NOT_LEADER: _ClassVar[Refusal]
    REFUSAL_NO_QUORUM: _ClassVar[Refusal]
    REFUSAL_OVERLOADED: _ClassVar[Refusal]
    REFUSAL_APPLIED_UNKNOWN: _ClassVar[Refusal]
    REFUSAL_NOT_HOSTED: _ClassVar[Refusal]
    REFUSAL_INVALID: _ClassVar[Refusal]
REFUSAL_NONE: Refusal
REFUSAL_NOT_LEADER: Refusal
REFUSAL_NO_QUORUM: Refusal
REFUSAL_OVERLOADED: Refusal
REFUSAL_APPLIED_UNKNOWN: Refusal
REFUSAL_NOT_HOSTED: Refusal
REFUSAL_INVALID: Refusal

class ShardOutcome(_message.Message):
    __slots__ = ("shard", "refusal", "leader_address", "message", "result_batch", "results")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RESULT_BATCH_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    refusal: Refusal
    leader_address: str
    message: str
    result_batch: bytes
    results: _containers.RepeatedCompositeFieldContainer[_ledger_internal_pb2.Result]
    def __init__(self, shard: _Optional[int] = ..., refusal: _Optional[_Union[Refusal, str]] = ..., leader_address: _Optional[str] = ..., message: _Optional[str] = ..., result_batch: _Optional[bytes] = ..., results: _Optional[_Iterable[_Union[_ledger_internal_pb2.Result, _Mapping]]] = ...) -> None: ...

class ShardCommands(_message.Message):
    __slots__ = ("shard", "command_batch")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    COMMAND_BATCH_FIELD_NUMBER: _ClassVar[int]
    shard: int
    command_batch: bytes
    def __init__(self, shard: _Optional[int] = ..., command_batch: _Optional[bytes] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("shards", "timeout_ms")
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    shards: _containers.RepeatedCompositeFieldContainer[ShardCommands]
    timeout_ms: int
    def __init__(self, shards: _Optional[_Iterable[_Union[ShardCommands, _Mapping]]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[ShardOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[ShardOutcome, _Mapping]]] = ...) -> None: ...

class ReadRequest(_message.Message):
    __slots__ = ("shard", "queries", "timeout_ms")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    queries: _containers.RepeatedCompositeFieldContainer[_ledger_internal_pb2.Query]
    timeout_ms: int
    def __init__(self, shard: _Optional[int] = ..., queries: _Optional[_Iterable[_Union[_ledger_internal_pb2.Query, _Mapping]]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ReadResponse(_message.Message):
    __slots__ = ("outcome",)
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    outcome: ShardOutcome
    def __init__(self, outcome: _Optional[_Union[ShardOutcome, _Mapping]] = ...) -> None: ...

class ReadManyRequest(_message.Message):
    __slots__ = ("reads", "timeout_ms")
    READS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    reads: _containers.RepeatedCompositeFieldContainer[ReadRequest]
    timeout_ms: int
    def __init__(self, reads: _Optional[_Iterable[_Union[ReadRequest, _Mapping]]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class ReadManyResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[ShardOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[ShardOutcome, _Mapping]]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ("include_digest",)
    INCLUDE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    include_digest: bool
    def __init__(self, include_digest: _Optional[bool] = ...) -> None: ...

class ShardStatus(_message.Message):
    __slots__ = ("shard", "role", "term", "leader_address", "raft_applied_index", "raft_commit_index", "store_applied_index", "digest", "has_quorum", "log_length")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    LEADER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RAFT_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    RAFT_COMMIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    STORE_APPLIED_INDEX_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    HAS_QUORUM_FIELD_NUMBER: _ClassVar[int]
    LOG_LENGTH_FIELD_NUMBER: _ClassVar[int]
    shard: int
    role: str
    term: int
    leader_address: str
    raft_applied_index: int
    raft_commit_index: int
    store_applied_index: int
    digest: str
    has_quorum: bool
    log_length: int
    def __init__(self, shard: _Optional[int] = ..., role: _Optional[str] = ..., term: _Optional[int] = ..., leader_address: _Optional[str] = ..., raft_applied_index: _Optional[int] = ..., raft_commit_index: _Optional[int] = ..., store_applied_index: _Optional[int] = ..., digest: _Optional[str] = ..., has_quorum: _Optional[bool] = ..., log_length: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("node_id", "shards")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardStatus]
    def __init__(self, node_id: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardStatus, _Mapping]]] = ...) -> None: ...
