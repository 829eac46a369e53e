from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("node_json",)
    NODE_JSON_FIELD_NUMBER: _ClassVar[int]
    node_json: bytes
    def __init__(self, node_json: _Optional[bytes] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("heartbeat_ttl_ms", "index")
    HEARTBEAT_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    heartbeat_ttl_ms: int
    index: int
    def __init__(self, heartbeat_ttl_ms: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node_id", "secret_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    secret_id: str
    def __init__(self, node_id: _Optional[str] = ..., secret_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("heartbeat_ttl_ms", "index")
    HEARTBEAT_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    heartbeat_ttl_ms: int
    index: int
    def __init__(self, heartbeat_ttl_ms: _Optional[int] = ..., index: _Optional[int] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("node_id", "secret_id", "min_index", "wait_ms")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_INDEX_FIELD_NUMBER: _ClassVar[int]
    WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    secret_id: str
    min_index: int
    wait_ms: int
    def __init__(self, node_id: _Optional[str] = ..., secret_id: _Optional[str] = ..., min_index: _Optional[int] = ..., wait_ms: _Optional[int] = ...) -> None: ...

class AllocationsResponse(_message.Message):
    __slots__ = ("index", "allocs_json", "alloc_ids")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ALLOCS_JSON_FIELD_NUMBER: _ClassVar[int]
    ALLOC_IDS_FIELD_NUMBER: _ClassVar[int]
    index: int
    allocs_json: bytes
    alloc_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, index: _Optional[int] = ..., allocs_json: _Optional[bytes] = ..., alloc_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("node_id", "secret_id", "updates_json")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SECRET_ID_FIELD_NUMBER: _ClassVar[int]
    UPDATES_JSON_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    secret_id: str
    updates_json: bytes
    def __init__(self, node_id: _Optional[str] = ..., secret_id: _Optional[str] = ..., updates_json: _Optional[bytes] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("index",)
    INDEX_FIELD_NUMBER: _ClassVar[int]
    index: int
    def __init__(self, index: _Optional[int] = ...) -> None: ...
