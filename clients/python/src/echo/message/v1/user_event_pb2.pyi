import datetime

from echo.message.v1 import conversation_pb2 as _conversation_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LeaveReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LEAVE_REASON_UNSPECIFIED: _ClassVar[LeaveReason]
    LEAVE_REASON_LEFT: _ClassVar[LeaveReason]
    LEAVE_REASON_REMOVED: _ClassVar[LeaveReason]
LEAVE_REASON_UNSPECIFIED: LeaveReason
LEAVE_REASON_LEFT: LeaveReason
LEAVE_REASON_REMOVED: LeaveReason

class UserEvent(_message.Message):
    __slots__ = ("user_id", "seq", "occurred_at", "actor_device_id", "message_deleted_for_me", "member_settings_changed", "read_marker_moved", "conversation_joined", "conversation_left")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_DELETED_FOR_ME_FIELD_NUMBER: _ClassVar[int]
    MEMBER_SETTINGS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    READ_MARKER_MOVED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_JOINED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_LEFT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    seq: int
    occurred_at: _timestamp_pb2.Timestamp
    actor_device_id: str
    message_deleted_for_me: MessageDeletedForMe
    member_settings_changed: MemberSettingsChanged
    read_marker_moved: ReadMarkerMoved
    conversation_joined: ConversationJoined
    conversation_left: ConversationLeft
    def __init__(self, user_id: _Optional[str] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor_device_id: _Optional[str] = ..., message_deleted_for_me: _Optional[_Union[MessageDeletedForMe, _Mapping]] = ..., member_settings_changed: _Optional[_Union[MemberSettingsChanged, _Mapping]] = ..., read_marker_moved: _Optional[_Union[ReadMarkerMoved, _Mapping]] = ..., conversation_joined: _Optional[_Union[ConversationJoined, _Mapping]] = ..., conversation_left: _Optional[_Union[ConversationLeft, _Mapping]] = ...) -> None: ...

class MessageDeletedForMe(_message.Message):
    __slots__ = ("conversation_id", "message_id", "unread_count", "mention_count")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    MENTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    message_id: str
    unread_count: int
    mention_count: int
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., unread_count: _Optional[int] = ..., mention_count: _Optional[int] = ...) -> None: ...

class MemberSettingsChanged(_message.Message):
    __slots__ = ("conversation_id", "settings", "update_mask")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    settings: _conversation_pb2.MemberSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, conversation_id: _Optional[str] = ..., settings: _Optional[_Union[_conversation_pb2.MemberSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class ReadMarkerMoved(_message.Message):
    __slots__ = ("conversation_id", "last_read_seq", "unread_count", "mention_count")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    MENTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    last_read_seq: int
    unread_count: int
    mention_count: int
    def __init__(self, conversation_id: _Optional[str] = ..., last_read_seq: _Optional[int] = ..., unread_count: _Optional[int] = ..., mention_count: _Optional[int] = ...) -> None: ...

class ConversationJoined(_message.Message):
    __slots__ = ("conversation", "joined_at_seq")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    joined_at_seq: int
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ..., joined_at_seq: _Optional[int] = ...) -> None: ...

class ConversationLeft(_message.Message):
    __slots__ = ("conversation_id", "left_at_seq", "reason")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    LEFT_AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    left_at_seq: int
    reason: LeaveReason
    def __init__(self, conversation_id: _Optional[str] = ..., left_at_seq: _Optional[int] = ..., reason: _Optional[_Union[LeaveReason, str]] = ...) -> None: ...
