import datetime

from echo.common.v1 import common_pb2 as _common_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class MessageState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MESSAGE_STATE_UNSPECIFIED: _ClassVar[MessageState]
    MESSAGE_STATE_ACTIVE: _ClassVar[MessageState]
    MESSAGE_STATE_DELETED_FOR_ME: _ClassVar[MessageState]
    MESSAGE_STATE_DELETED_FOR_EVERYONE: _ClassVar[MessageState]
MESSAGE_STATE_UNSPECIFIED: MessageState
MESSAGE_STATE_ACTIVE: MessageState
MESSAGE_STATE_DELETED_FOR_ME: MessageState
MESSAGE_STATE_DELETED_FOR_EVERYONE: MessageState

class Mention(_message.Message):
    __slots__ = ("user_id", "offset", "length")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    offset: int
    length: int
    def __init__(self, user_id: _Optional[str] = ..., offset: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class Location(_message.Message):
    __slots__ = ("latitude", "longitude", "accuracy_meters", "name", "address")
    LATITUDE_FIELD_NUMBER: _ClassVar[int]
    LONGITUDE_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_METERS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    latitude: float
    longitude: float
    accuracy_meters: float
    name: str
    address: str
    def __init__(self, latitude: _Optional[float] = ..., longitude: _Optional[float] = ..., accuracy_meters: _Optional[float] = ..., name: _Optional[str] = ..., address: _Optional[str] = ...) -> None: ...

class MessageContent(_message.Message):
    __slots__ = ("text", "mentions", "attachments", "location")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MENTIONS_FIELD_NUMBER: _ClassVar[int]
    ATTACHMENTS_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    text: str
    mentions: _containers.RepeatedCompositeFieldContainer[Mention]
    attachments: _containers.RepeatedCompositeFieldContainer[_common_pb2.Media]
    location: Location
    def __init__(self, text: _Optional[str] = ..., mentions: _Optional[_Iterable[_Union[Mention, _Mapping]]] = ..., attachments: _Optional[_Iterable[_Union[_common_pb2.Media, _Mapping]]] = ..., location: _Optional[_Union[Location, _Mapping]] = ...) -> None: ...

class ReactionCount(_message.Message):
    __slots__ = ("emoji", "count", "reacted_by_me")
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    REACTED_BY_ME_FIELD_NUMBER: _ClassVar[int]
    emoji: str
    count: int
    reacted_by_me: bool
    def __init__(self, emoji: _Optional[str] = ..., count: _Optional[int] = ..., reacted_by_me: _Optional[bool] = ...) -> None: ...

class Message(_message.Message):
    __slots__ = ("message_id", "conversation_id", "seq", "sender_user_id", "sender_device_id", "client_message_id", "content", "created_at", "edited_at", "edit_count", "state", "deleted_at", "reply_to_message_id", "thread_root_message_id", "reply_count", "reactions", "pinned", "expires_at")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EDITED_AT_FIELD_NUMBER: _ClassVar[int]
    EDIT_COUNT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DELETED_AT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TO_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ROOT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REPLY_COUNT_FIELD_NUMBER: _ClassVar[int]
    REACTIONS_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    conversation_id: str
    seq: int
    sender_user_id: str
    sender_device_id: str
    client_message_id: str
    content: MessageContent
    created_at: _timestamp_pb2.Timestamp
    edited_at: _timestamp_pb2.Timestamp
    edit_count: int
    state: MessageState
    deleted_at: _timestamp_pb2.Timestamp
    reply_to_message_id: str
    thread_root_message_id: str
    reply_count: int
    reactions: _containers.RepeatedCompositeFieldContainer[ReactionCount]
    pinned: bool
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, message_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., seq: _Optional[int] = ..., sender_user_id: _Optional[str] = ..., sender_device_id: _Optional[str] = ..., client_message_id: _Optional[str] = ..., content: _Optional[_Union[MessageContent, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., edited_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., edit_count: _Optional[int] = ..., state: _Optional[_Union[MessageState, str]] = ..., deleted_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reply_to_message_id: _Optional[str] = ..., thread_root_message_id: _Optional[str] = ..., reply_count: _Optional[int] = ..., reactions: _Optional[_Iterable[_Union[ReactionCount, _Mapping]]] = ..., pinned: _Optional[bool] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MessageEdit(_message.Message):
    __slots__ = ("content", "version", "created_at")
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    content: MessageContent
    version: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, content: _Optional[_Union[MessageContent, _Mapping]] = ..., version: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Reaction(_message.Message):
    __slots__ = ("user_id", "emoji", "created_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    emoji: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., emoji: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PinnedMessage(_message.Message):
    __slots__ = ("message", "pinned_by_user_id", "pinned_at")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PINNED_BY_USER_ID_FIELD_NUMBER: _ClassVar[int]
    PINNED_AT_FIELD_NUMBER: _ClassVar[int]
    message: Message
    pinned_by_user_id: str
    pinned_at: _timestamp_pb2.Timestamp
    def __init__(self, message: _Optional[_Union[Message, _Mapping]] = ..., pinned_by_user_id: _Optional[str] = ..., pinned_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemberReceipt(_message.Message):
    __slots__ = ("user_id", "last_read_seq", "read_at", "delivered_up_to_seq", "delivered_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_UP_TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    last_read_seq: int
    read_at: _timestamp_pb2.Timestamp
    delivered_up_to_seq: int
    delivered_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., last_read_seq: _Optional[int] = ..., read_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delivered_up_to_seq: _Optional[int] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DeviceReceipt(_message.Message):
    __slots__ = ("device_id", "delivered_up_to_seq", "delivered_at")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_UP_TO_SEQ_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    delivered_up_to_seq: int
    delivered_at: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., delivered_up_to_seq: _Optional[int] = ..., delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
