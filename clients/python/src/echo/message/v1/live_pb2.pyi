import datetime

from echo.message.v1 import conversation_event_pb2 as _conversation_event_pb2
from echo.message.v1 import user_event_pb2 as _user_event_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ResyncReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RESYNC_REASON_UNSPECIFIED: _ClassVar[ResyncReason]
    RESYNC_REASON_CURSOR_EXPIRED: _ClassVar[ResyncReason]
    RESYNC_REASON_EPOCH_UNKNOWN: _ClassVar[ResyncReason]
    RESYNC_REASON_TOO_FAR_BEHIND: _ClassVar[ResyncReason]
RESYNC_REASON_UNSPECIFIED: ResyncReason
RESYNC_REASON_CURSOR_EXPIRED: ResyncReason
RESYNC_REASON_EPOCH_UNKNOWN: ResyncReason
RESYNC_REASON_TOO_FAR_BEHIND: ResyncReason

class SubscribeRequest(_message.Message):
    __slots__ = ("cursor",)
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    def __init__(self, cursor: _Optional[str] = ...) -> None: ...

class SubscribeResponse(_message.Message):
    __slots__ = ("cursor", "conversation_event", "user_event", "receipt_update", "read_marker_update", "typing_update", "heartbeat", "resync_required", "ready")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_EVENT_FIELD_NUMBER: _ClassVar[int]
    USER_EVENT_FIELD_NUMBER: _ClassVar[int]
    RECEIPT_UPDATE_FIELD_NUMBER: _ClassVar[int]
    READ_MARKER_UPDATE_FIELD_NUMBER: _ClassVar[int]
    TYPING_UPDATE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    RESYNC_REQUIRED_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    conversation_event: _conversation_event_pb2.ConversationEvent
    user_event: _user_event_pb2.UserEvent
    receipt_update: ReceiptUpdate
    read_marker_update: ReadMarkerUpdate
    typing_update: TypingUpdate
    heartbeat: Heartbeat
    resync_required: ResyncRequired
    ready: Ready
    def __init__(self, cursor: _Optional[str] = ..., conversation_event: _Optional[_Union[_conversation_event_pb2.ConversationEvent, _Mapping]] = ..., user_event: _Optional[_Union[_user_event_pb2.UserEvent, _Mapping]] = ..., receipt_update: _Optional[_Union[ReceiptUpdate, _Mapping]] = ..., read_marker_update: _Optional[_Union[ReadMarkerUpdate, _Mapping]] = ..., typing_update: _Optional[_Union[TypingUpdate, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., resync_required: _Optional[_Union[ResyncRequired, _Mapping]] = ..., ready: _Optional[_Union[Ready, _Mapping]] = ...) -> None: ...

class ReceiptUpdate(_message.Message):
    __slots__ = ("conversation_id", "user_id", "device_id", "delivered_up_to_seq", "updated_at")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_UP_TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    device_id: str
    delivered_up_to_seq: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., device_id: _Optional[str] = ..., delivered_up_to_seq: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReadMarkerUpdate(_message.Message):
    __slots__ = ("conversation_id", "user_id", "last_read_seq", "updated_at")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    last_read_seq: int
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., last_read_seq: _Optional[int] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TypingUpdate(_message.Message):
    __slots__ = ("conversation_id", "user_id", "typing", "expires_at")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    user_id: str
    typing: bool
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, conversation_id: _Optional[str] = ..., user_id: _Optional[str] = ..., typing: _Optional[bool] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("server_time", "interval")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    interval: _duration_pb2.Duration
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ResyncRequired(_message.Message):
    __slots__ = ("reason",)
    REASON_FIELD_NUMBER: _ClassVar[int]
    reason: ResyncReason
    def __init__(self, reason: _Optional[_Union[ResyncReason, str]] = ...) -> None: ...

class Ready(_message.Message):
    __slots__ = ("server_time", "replayed_count")
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_COUNT_FIELD_NUMBER: _ClassVar[int]
    server_time: _timestamp_pb2.Timestamp
    replayed_count: int
    def __init__(self, server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replayed_count: _Optional[int] = ...) -> None: ...

class SetTypingRequest(_message.Message):
    __slots__ = ("conversation_id", "typing")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPING_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    typing: bool
    def __init__(self, conversation_id: _Optional[str] = ..., typing: _Optional[bool] = ...) -> None: ...

class SetTypingResponse(_message.Message):
    __slots__ = ("expires_at",)
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
