import datetime

from echo.message.v1 import conversation_pb2 as _conversation_pb2
from echo.message.v1 import message_pb2 as _message_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JoinMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOIN_METHOD_UNSPECIFIED: _ClassVar[JoinMethod]
    JOIN_METHOD_CREATED: _ClassVar[JoinMethod]
    JOIN_METHOD_ADDED: _ClassVar[JoinMethod]
    JOIN_METHOD_INVITE: _ClassVar[JoinMethod]

class ExpiryReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPIRY_REASON_UNSPECIFIED: _ClassVar[ExpiryReason]
    EXPIRY_REASON_MESSAGE_TTL: _ClassVar[ExpiryReason]
    EXPIRY_REASON_RETENTION: _ClassVar[ExpiryReason]
    EXPIRY_REASON_OPERATOR_PURGE: _ClassVar[ExpiryReason]
JOIN_METHOD_UNSPECIFIED: JoinMethod
JOIN_METHOD_CREATED: JoinMethod
JOIN_METHOD_ADDED: JoinMethod
JOIN_METHOD_INVITE: JoinMethod
EXPIRY_REASON_UNSPECIFIED: ExpiryReason
EXPIRY_REASON_MESSAGE_TTL: ExpiryReason
EXPIRY_REASON_RETENTION: ExpiryReason
EXPIRY_REASON_OPERATOR_PURGE: ExpiryReason

class ConversationEvent(_message.Message):
    __slots__ = ("conversation_id", "seq", "occurred_at", "actor_user_id", "actor_device_id", "message_created", "message_edited", "message_deleted", "reaction_added", "reaction_removed", "message_pinned", "message_unpinned", "member_joined", "member_left", "member_removed", "member_role_changed", "conversation_created", "conversation_updated", "messages_expired")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OCCURRED_AT_FIELD_NUMBER: _ClassVar[int]
    ACTOR_USER_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_CREATED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_EDITED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_DELETED_FIELD_NUMBER: _ClassVar[int]
    REACTION_ADDED_FIELD_NUMBER: _ClassVar[int]
    REACTION_REMOVED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_PINNED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_UNPINNED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_JOINED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_LEFT_FIELD_NUMBER: _ClassVar[int]
    MEMBER_REMOVED_FIELD_NUMBER: _ClassVar[int]
    MEMBER_ROLE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_CREATED_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_UPDATED_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_EXPIRED_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    seq: int
    occurred_at: _timestamp_pb2.Timestamp
    actor_user_id: str
    actor_device_id: str
    message_created: MessageCreated
    message_edited: MessageEdited
    message_deleted: MessageDeleted
    reaction_added: ReactionAdded
    reaction_removed: ReactionRemoved
    message_pinned: MessagePinned
    message_unpinned: MessageUnpinned
    member_joined: MemberJoined
    member_left: MemberLeft
    member_removed: MemberRemoved
    member_role_changed: MemberRoleChanged
    conversation_created: ConversationCreated
    conversation_updated: ConversationUpdated
    messages_expired: MessagesExpired
    def __init__(self, conversation_id: _Optional[str] = ..., seq: _Optional[int] = ..., occurred_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actor_user_id: _Optional[str] = ..., actor_device_id: _Optional[str] = ..., message_created: _Optional[_Union[MessageCreated, _Mapping]] = ..., message_edited: _Optional[_Union[MessageEdited, _Mapping]] = ..., message_deleted: _Optional[_Union[MessageDeleted, _Mapping]] = ..., reaction_added: _Optional[_Union[ReactionAdded, _Mapping]] = ..., reaction_removed: _Optional[_Union[ReactionRemoved, _Mapping]] = ..., message_pinned: _Optional[_Union[MessagePinned, _Mapping]] = ..., message_unpinned: _Optional[_Union[MessageUnpinned, _Mapping]] = ..., member_joined: _Optional[_Union[MemberJoined, _Mapping]] = ..., member_left: _Optional[_Union[MemberLeft, _Mapping]] = ..., member_removed: _Optional[_Union[MemberRemoved, _Mapping]] = ..., member_role_changed: _Optional[_Union[MemberRoleChanged, _Mapping]] = ..., conversation_created: _Optional[_Union[ConversationCreated, _Mapping]] = ..., conversation_updated: _Optional[_Union[ConversationUpdated, _Mapping]] = ..., messages_expired: _Optional[_Union[MessagesExpired, _Mapping]] = ...) -> None: ...

class MessageCreated(_message.Message):
    __slots__ = ("message", "mentioned_user_ids")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    MENTIONED_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    message: _message_pb2.Message
    mentioned_user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message: _Optional[_Union[_message_pb2.Message, _Mapping]] = ..., mentioned_user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MessageEdited(_message.Message):
    __slots__ = ("message", "newly_mentioned_user_ids")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    NEWLY_MENTIONED_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    message: _message_pb2.Message
    newly_mentioned_user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, message: _Optional[_Union[_message_pb2.Message, _Mapping]] = ..., newly_mentioned_user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class MessageDeleted(_message.Message):
    __slots__ = ("message_id", "thread_root_message_id")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    THREAD_ROOT_MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    thread_root_message_id: str
    def __init__(self, message_id: _Optional[str] = ..., thread_root_message_id: _Optional[str] = ...) -> None: ...

class ReactionAdded(_message.Message):
    __slots__ = ("message_id", "user_id", "emoji", "count")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    user_id: str
    emoji: str
    count: int
    def __init__(self, message_id: _Optional[str] = ..., user_id: _Optional[str] = ..., emoji: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ReactionRemoved(_message.Message):
    __slots__ = ("message_id", "user_id", "emoji", "count")
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    EMOJI_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    user_id: str
    emoji: str
    count: int
    def __init__(self, message_id: _Optional[str] = ..., user_id: _Optional[str] = ..., emoji: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class MessagePinned(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class MessageUnpinned(_message.Message):
    __slots__ = ("message_id",)
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    message_id: str
    def __init__(self, message_id: _Optional[str] = ...) -> None: ...

class MemberJoined(_message.Message):
    __slots__ = ("member", "method", "invite_id")
    MEMBER_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    INVITE_ID_FIELD_NUMBER: _ClassVar[int]
    member: _conversation_pb2.Member
    method: JoinMethod
    invite_id: str
    def __init__(self, member: _Optional[_Union[_conversation_pb2.Member, _Mapping]] = ..., method: _Optional[_Union[JoinMethod, str]] = ..., invite_id: _Optional[str] = ...) -> None: ...

class MemberLeft(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class MemberRemoved(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class MemberRoleChanged(_message.Message):
    __slots__ = ("user_id", "previous_role", "role")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_ROLE_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    previous_role: _conversation_pb2.MemberRole
    role: _conversation_pb2.MemberRole
    def __init__(self, user_id: _Optional[str] = ..., previous_role: _Optional[_Union[_conversation_pb2.MemberRole, str]] = ..., role: _Optional[_Union[_conversation_pb2.MemberRole, str]] = ...) -> None: ...

class ConversationCreated(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ...) -> None: ...

class ConversationUpdated(_message.Message):
    __slots__ = ("conversation", "update_mask")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class MessagesExpired(_message.Message):
    __slots__ = ("messages", "reason")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[MessageDeleted]
    reason: ExpiryReason
    def __init__(self, messages: _Optional[_Iterable[_Union[MessageDeleted, _Mapping]]] = ..., reason: _Optional[_Union[ExpiryReason, str]] = ...) -> None: ...
