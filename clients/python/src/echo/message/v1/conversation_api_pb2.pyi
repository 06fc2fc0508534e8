from echo.common.v1 import common_pb2 as _common_pb2
from echo.message.v1 import conversation_pb2 as _conversation_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ArchiveFilter(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHIVE_FILTER_UNSPECIFIED: _ClassVar[ArchiveFilter]
    ARCHIVE_FILTER_EXCLUDE_ARCHIVED: _ClassVar[ArchiveFilter]
    ARCHIVE_FILTER_ONLY_ARCHIVED: _ClassVar[ArchiveFilter]
    ARCHIVE_FILTER_ALL: _ClassVar[ArchiveFilter]
ARCHIVE_FILTER_UNSPECIFIED: ArchiveFilter
ARCHIVE_FILTER_EXCLUDE_ARCHIVED: ArchiveFilter
ARCHIVE_FILTER_ONLY_ARCHIVED: ArchiveFilter
ARCHIVE_FILTER_ALL: ArchiveFilter

class CreateDirectConversationRequest(_message.Message):
    __slots__ = ("peer_user_id",)
    PEER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    peer_user_id: str
    def __init__(self, peer_user_id: _Optional[str] = ...) -> None: ...

class CreateDirectConversationResponse(_message.Message):
    __slots__ = ("conversation", "created")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    created: bool
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class CreateConversationRequest(_message.Message):
    __slots__ = ("type", "title", "description", "avatar", "settings", "member_user_ids", "client_request_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    MEMBER_USER_IDS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    type: _conversation_pb2.ConversationType
    title: str
    description: str
    avatar: _common_pb2.Media
    settings: _conversation_pb2.ConversationSettings
    member_user_ids: _containers.RepeatedScalarFieldContainer[str]
    client_request_id: str
    def __init__(self, type: _Optional[_Union[_conversation_pb2.ConversationType, str]] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., avatar: _Optional[_Union[_common_pb2.Media, _Mapping]] = ..., settings: _Optional[_Union[_conversation_pb2.ConversationSettings, _Mapping]] = ..., member_user_ids: _Optional[_Iterable[str]] = ..., client_request_id: _Optional[str] = ...) -> None: ...

class CreateConversationResponse(_message.Message):
    __slots__ = ("conversation", "created")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    created: bool
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class GetConversationRequest(_message.Message):
    __slots__ = ("conversation_id",)
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    def __init__(self, conversation_id: _Optional[str] = ...) -> None: ...

class GetConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ...) -> None: ...

class ListConversationsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "archive_filter", "pinned_only")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FILTER_FIELD_NUMBER: _ClassVar[int]
    PINNED_ONLY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    archive_filter: ArchiveFilter
    pinned_only: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., archive_filter: _Optional[_Union[ArchiveFilter, str]] = ..., pinned_only: _Optional[bool] = ...) -> None: ...

class ListConversationsResponse(_message.Message):
    __slots__ = ("conversations", "next_page_token")
    CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    conversations: _containers.RepeatedCompositeFieldContainer[_conversation_pb2.Conversation]
    next_page_token: str
    def __init__(self, conversations: _Optional[_Iterable[_Union[_conversation_pb2.Conversation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class UpdateConversationRequest(_message.Message):
    __slots__ = ("conversation", "update_mask")
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateConversationResponse(_message.Message):
    __slots__ = ("conversation",)
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    conversation: _conversation_pb2.Conversation
    def __init__(self, conversation: _Optional[_Union[_conversation_pb2.Conversation, _Mapping]] = ...) -> None: ...
