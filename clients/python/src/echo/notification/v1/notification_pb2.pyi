import datetime

from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PushPlatform(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PUSH_PLATFORM_UNSPECIFIED: _ClassVar[PushPlatform]
    PUSH_PLATFORM_FCM: _ClassVar[PushPlatform]
    PUSH_PLATFORM_APNS: _ClassVar[PushPlatform]
    PUSH_PLATFORM_WEBPUSH: _ClassVar[PushPlatform]
    PUSH_PLATFORM_WEBHOOK: _ClassVar[PushPlatform]
    PUSH_PLATFORM_UNIFIEDPUSH: _ClassVar[PushPlatform]

class InboxEntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INBOX_ENTRY_KIND_UNSPECIFIED: _ClassVar[InboxEntryKind]
    INBOX_ENTRY_KIND_MESSAGE: _ClassVar[InboxEntryKind]
    INBOX_ENTRY_KIND_MENTION: _ClassVar[InboxEntryKind]
    INBOX_ENTRY_KIND_REPLY: _ClassVar[InboxEntryKind]
PUSH_PLATFORM_UNSPECIFIED: PushPlatform
PUSH_PLATFORM_FCM: PushPlatform
PUSH_PLATFORM_APNS: PushPlatform
PUSH_PLATFORM_WEBPUSH: PushPlatform
PUSH_PLATFORM_WEBHOOK: PushPlatform
PUSH_PLATFORM_UNIFIEDPUSH: PushPlatform
INBOX_ENTRY_KIND_UNSPECIFIED: InboxEntryKind
INBOX_ENTRY_KIND_MESSAGE: InboxEntryKind
INBOX_ENTRY_KIND_MENTION: InboxEntryKind
INBOX_ENTRY_KIND_REPLY: InboxEntryKind

class PushToken(_message.Message):
    __slots__ = ("push_token_id", "device_id", "platform", "token_suffix", "app_id", "sandbox", "created_at", "updated_at", "last_delivered_at")
    PUSH_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    TOKEN_SUFFIX_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_DELIVERED_AT_FIELD_NUMBER: _ClassVar[int]
    push_token_id: str
    device_id: str
    platform: PushPlatform
    token_suffix: str
    app_id: str
    sandbox: bool
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    last_delivered_at: _timestamp_pb2.Timestamp
    def __init__(self, push_token_id: _Optional[str] = ..., device_id: _Optional[str] = ..., platform: _Optional[_Union[PushPlatform, str]] = ..., token_suffix: _Optional[str] = ..., app_id: _Optional[str] = ..., sandbox: _Optional[bool] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_delivered_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RegisterPushTokenRequest(_message.Message):
    __slots__ = ("platform", "token", "app_id", "sandbox")
    PLATFORM_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SANDBOX_FIELD_NUMBER: _ClassVar[int]
    platform: PushPlatform
    token: str
    app_id: str
    sandbox: bool
    def __init__(self, platform: _Optional[_Union[PushPlatform, str]] = ..., token: _Optional[str] = ..., app_id: _Optional[str] = ..., sandbox: _Optional[bool] = ...) -> None: ...

class RegisterPushTokenResponse(_message.Message):
    __slots__ = ("push_token",)
    PUSH_TOKEN_FIELD_NUMBER: _ClassVar[int]
    push_token: PushToken
    def __init__(self, push_token: _Optional[_Union[PushToken, _Mapping]] = ...) -> None: ...

class UnregisterPushTokenRequest(_message.Message):
    __slots__ = ("push_token_id",)
    PUSH_TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    push_token_id: str
    def __init__(self, push_token_id: _Optional[str] = ...) -> None: ...

class UnregisterPushTokenResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListPushTokensRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPushTokensResponse(_message.Message):
    __slots__ = ("push_tokens", "next_page_token")
    PUSH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    push_tokens: _containers.RepeatedCompositeFieldContainer[PushToken]
    next_page_token: str
    def __init__(self, push_tokens: _Optional[_Iterable[_Union[PushToken, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class InboxEntry(_message.Message):
    __slots__ = ("inbox_entry_id", "kind", "conversation_id", "message_id", "seq", "sender_user_id", "sender_display_name", "conversation_title", "preview", "created_at", "read")
    INBOX_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    SENDER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_TITLE_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    READ_FIELD_NUMBER: _ClassVar[int]
    inbox_entry_id: str
    kind: InboxEntryKind
    conversation_id: str
    message_id: str
    seq: int
    sender_user_id: str
    sender_display_name: str
    conversation_title: str
    preview: str
    created_at: _timestamp_pb2.Timestamp
    read: bool
    def __init__(self, inbox_entry_id: _Optional[str] = ..., kind: _Optional[_Union[InboxEntryKind, str]] = ..., conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., seq: _Optional[int] = ..., sender_user_id: _Optional[str] = ..., sender_display_name: _Optional[str] = ..., conversation_title: _Optional[str] = ..., preview: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read: _Optional[bool] = ...) -> None: ...

class ListInboxRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "unread_only")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    UNREAD_ONLY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    unread_only: bool
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., unread_only: _Optional[bool] = ...) -> None: ...

class ListInboxResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[InboxEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[InboxEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class MarkInboxReadRequest(_message.Message):
    __slots__ = ("up_to_inbox_entry_id", "all")
    UP_TO_INBOX_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    up_to_inbox_entry_id: str
    all: bool
    def __init__(self, up_to_inbox_entry_id: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class MarkInboxReadResponse(_message.Message):
    __slots__ = ("marked_count", "unread_inbox_entries")
    MARKED_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNREAD_INBOX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    marked_count: int
    unread_inbox_entries: int
    def __init__(self, marked_count: _Optional[int] = ..., unread_inbox_entries: _Optional[int] = ...) -> None: ...

class GetBadgeCountRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetBadgeCountResponse(_message.Message):
    __slots__ = ("badge_count", "unread_conversations", "unread_mentions", "unread_inbox_entries")
    BADGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    UNREAD_CONVERSATIONS_FIELD_NUMBER: _ClassVar[int]
    UNREAD_MENTIONS_FIELD_NUMBER: _ClassVar[int]
    UNREAD_INBOX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    badge_count: int
    unread_conversations: int
    unread_mentions: int
    unread_inbox_entries: int
    def __init__(self, badge_count: _Optional[int] = ..., unread_conversations: _Optional[int] = ..., unread_mentions: _Optional[int] = ..., unread_inbox_entries: _Optional[int] = ...) -> None: ...

class QuietHours(_message.Message):
    __slots__ = ("enabled", "start_minute", "end_minute", "time_zone")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    START_MINUTE_FIELD_NUMBER: _ClassVar[int]
    END_MINUTE_FIELD_NUMBER: _ClassVar[int]
    TIME_ZONE_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    start_minute: int
    end_minute: int
    time_zone: str
    def __init__(self, enabled: _Optional[bool] = ..., start_minute: _Optional[int] = ..., end_minute: _Optional[int] = ..., time_zone: _Optional[str] = ...) -> None: ...

class NotificationSettings(_message.Message):
    __slots__ = ("show_previews", "quiet_hours")
    SHOW_PREVIEWS_FIELD_NUMBER: _ClassVar[int]
    QUIET_HOURS_FIELD_NUMBER: _ClassVar[int]
    show_previews: bool
    quiet_hours: QuietHours
    def __init__(self, show_previews: _Optional[bool] = ..., quiet_hours: _Optional[_Union[QuietHours, _Mapping]] = ...) -> None: ...

class GetNotificationSettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetNotificationSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: NotificationSettings
    def __init__(self, settings: _Optional[_Union[NotificationSettings, _Mapping]] = ...) -> None: ...

class UpdateNotificationSettingsRequest(_message.Message):
    __slots__ = ("settings", "update_mask")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    settings: NotificationSettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, settings: _Optional[_Union[NotificationSettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateNotificationSettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: NotificationSettings
    def __init__(self, settings: _Optional[_Union[NotificationSettings, _Mapping]] = ...) -> None: ...
