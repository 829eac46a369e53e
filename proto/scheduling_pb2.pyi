from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DequeueRequest(_message.Message):
    __slots__ = ("timeout_ms", "worker")
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    timeout_ms: int
    worker: str
    def __init__(self, timeout_ms: _Optional[int] = ..., worker: _Optional[str] = ...) -> None: ...

class DequeueResponse(_message.Message):
    __slots__ = ("eval_msgpack", "token", "wait_index")
    EVAL_MSGPACK_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    WAIT_INDEX_FIELD_NUMBER: _ClassVar[int]
    eval_msgpack: bytes
    token: str
    wait_index: int
    def __init__(self, eval_msgpack: _Optional[bytes] = ..., token: _Optional[str] = ..., wait_index: _Optional[int] = ...) -> None: ...

class EvalToken(_message.Message):
    __slots__ = ("eval_id", "token")
    EVAL_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    eval_id: str
    token: str
    def __init__(self, eval_id: _Optional[str] = ..., token: _Optional[str] = ...) -> None: ...

class Outcome(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...

class PlanRequest(_message.Message):
    __slots__ = ("token", "plan_msgpack")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    PLAN_MSGPACK_FIELD_NUMBER: _ClassVar[int]
    token: str
    plan_msgpack: bytes
    def __init__(self, token: _Optional[str] = ..., plan_msgpack: _Optional[bytes] = ...) -> None: ...

class PlanResponse(_message.Message):
    __slots__ = ("index", "rejected_nodes", "committed_allocs")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    REJECTED_NODES_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_ALLOCS_FIELD_NUMBER: _ClassVar[int]
    index: int
    rejected_nodes: _containers.RepeatedScalarFieldContainer[str]
    committed_allocs: int
    def __init__(self, index: _Optional[int] = ..., rejected_nodes: _Optional[_Iterable[str]] = ..., committed_allocs: _Optional[int] = ...) -> None: ...
