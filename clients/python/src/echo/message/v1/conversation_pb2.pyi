import datetime

from echo.common.v1 import common_pb2 as _common_pb2
from echo.message.v1 import message_pb2 as _message_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConversationType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONVERSATION_TYPE_UNSPECIFIED: _ClassVar[ConversationType]
    CONVERSATION_TYPE_DIRECT: _ClassVar[ConversationType]
    CONVERSATION_TYPE_GROUP: _ClassVar[ConversationType]
    CONVERSATION_TYPE_CHANNEL: _ClassVar[ConversationType]

class MemberRole(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMBER_ROLE_UNSPECIFIED: _ClassVar[MemberRole]
    MEMBER_ROLE_OWNER: _ClassVar[MemberRole]
    MEMBER_ROLE_ADMIN: _ClassVar[MemberRole]
    MEMBER_ROLE_MEMBER: _ClassVar[MemberRole]
CONVERSATION_TYPE_UNSPECIFIED: ConversationType
CONVERSATION_TYPE_DIRECT: ConversationType
CONVERSATION_TYPE_GROUP: ConversationType
CONVERSATION_TYPE_CHANNEL: ConversationType
MEMBER_ROLE_UNSPECIFIED: MemberRole
MEMBER_ROLE_OWNER: MemberRole
MEMBER_ROLE_ADMIN: MemberRole
MEMBER_ROLE_MEMBER: MemberRole

class ConversationSettings(_message.Message):
    __slots__ = ("only_admins_edit_info", "only_admins_add_members")
    ONLY_ADMINS_EDIT_INFO_FIELD_NUMBER: _ClassVar[int]
    ONLY_ADMINS_ADD_MEMBERS_FIELD_NUMBER: _ClassVar[int]
    only_admins_edit_info: bool
    only_admins_add_members: bool
    def __init__(self, only_admins_edit_info: _Optional[bool] = ..., only_admins_add_members: _Optional[bool] = ...) -> None: ...

class MemberSettings(_message.Message):
    __slots__ = ("mute_until", "pinned", "archived")
    MUTE_UNTIL_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    mute_until: _timestamp_pb2.Timestamp
    pinned: bool
    archived: bool
    def __init__(self, mute_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., pinned: _Optional[bool] = ..., archived: _Optional[bool] = ...) -> None: ...

class MyConversationState(_message.Message):
    __slots__ = ("role", "settings", "last_read_seq", "unread_count", "mention_count", "joined_at_seq")
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    LAST_READ_SEQ_FIELD_NUMBER: _ClassVar[int]
    UNREAD_COUNT_FIELD_NUMBER: _ClassVar[int]
    MENTION_COUNT_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    role: MemberRole
    settings: MemberSettings
    last_read_seq: int
    unread_count: int
    mention_count: int
    joined_at_seq: int
    def __init__(self, role: _Optional[_Union[MemberRole, str]] = ..., settings: _Optional[_Union[MemberSettings, _Mapping]] = ..., last_read_seq: _Optional[int] = ..., unread_count: _Optional[int] = ..., mention_count: _Optional[int] = ..., joined_at_seq: _Optional[int] = ...) -> None: ...

class Conversation(_message.Message):
    __slots__ = ("conversation_id", "type", "title", "description", "avatar", "settings", "created_by_user_id", "created_at", "member_count", "last_seq", "last_activity_at", "last_message", "peer_user_id", "my_state", "message_ttl")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQ_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVITY_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PEER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    MY_STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_TTL_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    type: ConversationType
    title: str
    description: str
    avatar: _common_pb2.Media
    settings: ConversationSettings
    created_by_user_id: str
    created_at: _timestamp_pb2.Timestamp
    member_count: int
    last_seq: int
    last_activity_at: _timestamp_pb2.Timestamp
    last_message: _message_pb2.Message
    peer_user_id: str
    my_state: MyConversationState
    message_ttl: _duration_pb2.Duration
    def __init__(self, conversation_id: _Optional[str] = ..., type: _Optional[_Union[ConversationType, str]] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., avatar: _Optional[_Union[_common_pb2.Media, _Mapping]] = ..., settings: _Optional[_Union[ConversationSettings, _Mapping]] = ..., created_by_user_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., member_count: _Optional[int] = ..., last_seq: _Optional[int] = ..., last_activity_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_message: _Optional[_Union[_message_pb2.Message, _Mapping]] = ..., peer_user_id: _Optional[str] = ..., my_state: _Optional[_Union[MyConversationState, _Mapping]] = ..., message_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class Member(_message.Message):
    __slots__ = ("user_id", "role", "joined_at", "joined_at_seq", "added_by_user_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_FIELD_NUMBER: _ClassVar[int]
    JOINED_AT_SEQ_FIELD_NUMBER: _ClassVar[int]
    ADDED_BY_USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    role: MemberRole
    joined_at: _timestamp_pb2.Timestamp
    joined_at_seq: int
    added_by_user_id: str
    def __init__(self, user_id: _Optional[str] = ..., role: _Optional[_Union[MemberRole, str]] = ..., joined_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., joined_at_seq: _Optional[int] = ..., added_by_user_id: _Optional[str] = ...) -> None: ...

class Invite(_message.Message):
    __slots__ = ("invite_id", "conversation_id", "code", "created_by_user_id", "created_at", "expires_at", "max_uses", "use_count", "revoked_at")
    INVITE_ID_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_USER_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    MAX_USES_FIELD_NUMBER: _ClassVar[int]
    USE_COUNT_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_FIELD_NUMBER: _ClassVar[int]
    invite_id: str
    conversation_id: str
    code: str
    created_by_user_id: str
    created_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    max_uses: int
    use_count: int
    revoked_at: _timestamp_pb2.Timestamp
    def __init__(self, invite_id: _Optional[str] = ..., conversation_id: _Optional[str] = ..., code: _Optional[str] = ..., created_by_user_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., max_uses: _Optional[int] = ..., use_count: _Optional[int] = ..., revoked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
