from echo.message.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MarkReadRequest(_message.Message):
    __slots__ = ("conversation_id", "last_read_seq")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    last_read_seq: int
    def __init__(self, conversation_id: _Optional[str] = ..., last_read_seq: _Optional[int] = ...) -> None: ...

class MarkReadResponse(_message.Message):
    __slots__ = ("last_read_seq", "unread_count", "mention_count")
    LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    MENTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    last_read_seq: int
    unread_count: int
    mention_count: int
    def __init__(self, last_read_seq: _Optional[int] = ..., unread_count: _Optional[int] = ..., mention_count: _Optional[int] = ...) -> None: ...

class MarkDeliveredRequest(_message.Message):
    __slots__ = ("conversation_id", "up_to_seq")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    UP_TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    up_to_seq: int
    def __init__(self, conversation_id: _Optional[str] = ..., up_to_seq: _Optional[int] = ...) -> None: ...

class MarkDeliveredResponse(_message.Message):
    __slots__ = ("delivered_up_to_seq",)
    DELIVERED_UP_TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    delivered_up_to_seq: int
    def __init__(self, delivered_up_to_seq: _Optional[int] = ...) -> None: ...

class GetReadStateRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class GetReadStateResponse(_message.Message):
    __slots__ = ("last_read_seq", "unread_count", "mention_count", "last_seq", "devices")
    LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    MENTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    last_read_seq: int
    unread_count: int
    mention_count: int
    last_seq: int
    devices: _containers.RepeatedCompositeFieldContainer[_message_pb2.DeviceReceipt]
    def __init__(self, last_read_seq: _Optional[int] = ..., unread_count: _Optional[int] = ..., mention_count: _Optional[int] = ..., last_seq: _Optional[int] = ..., devices: _Optional[_Iterable[_Union[_message_pb2.DeviceReceipt, _Mapping]]] = ...) -> None: ...

class ListReceiptsRequest(_message.Message):
    __slots__ = ("conversation_id", "min_seq", "page_size", "page_token")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_SEQ_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    min_seq: int
    page_size: int
    page_token: str
    def __init__(self, conversation_id: _Optional[str] = ..., min_seq: _Optional[int] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListReceiptsResponse(_message.Message):
    __slots__ = ("receipts", "next_page_token")
    RECEIPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    receipts: _containers.RepeatedCompositeFieldContainer[_message_pb2.MemberReceipt]
    next_page_token: str
    def __init__(self, receipts: _Optional[_Iterable[_Union[_message_pb2.MemberReceipt, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
