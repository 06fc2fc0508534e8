import datetime

from echo.common.v1 import common_pb2 as _common_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ContactRequestState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTACT_REQUEST_STATE_UNSPECIFIED: _ClassVar[ContactRequestState]
    CONTACT_REQUEST_STATE_PENDING: _ClassVar[ContactRequestState]
    CONTACT_REQUEST_STATE_ACCEPTED: _ClassVar[ContactRequestState]
    CONTACT_REQUEST_STATE_DECLINED: _ClassVar[ContactRequestState]
    CONTACT_REQUEST_STATE_CANCELLED: _ClassVar[ContactRequestState]

class ContactRequestDirection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTACT_REQUEST_DIRECTION_UNSPECIFIED: _ClassVar[ContactRequestDirection]
    CONTACT_REQUEST_DIRECTION_INCOMING: _ClassVar[ContactRequestDirection]
    CONTACT_REQUEST_DIRECTION_OUTGOING: _ClassVar[ContactRequestDirection]

class Visibility(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VISIBILITY_UNSPECIFIED: _ClassVar[Visibility]
    VISIBILITY_EVERYONE: _ClassVar[Visibility]
    VISIBILITY_CONTACTS: _ClassVar[Visibility]
    VISIBILITY_NOBODY: _ClassVar[Visibility]
CONTACT_REQUEST_STATE_UNSPECIFIED: ContactRequestState
CONTACT_REQUEST_STATE_PENDING: ContactRequestState
CONTACT_REQUEST_STATE_ACCEPTED: ContactRequestState
CONTACT_REQUEST_STATE_DECLINED: ContactRequestState
CONTACT_REQUEST_STATE_CANCELLED: ContactRequestState
CONTACT_REQUEST_DIRECTION_UNSPECIFIED: ContactRequestDirection
CONTACT_REQUEST_DIRECTION_INCOMING: ContactRequestDirection
CONTACT_REQUEST_DIRECTION_OUTGOING: ContactRequestDirection
VISIBILITY_UNSPECIFIED: Visibility
VISIBILITY_EVERYONE: Visibility
VISIBILITY_CONTACTS: Visibility
VISIBILITY_NOBODY: Visibility

class Profile(_message.Message):
    __slots__ = ("user_id", "display_name", "username", "about", "avatar", "phone_number", "created_at", "updated_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ABOUT_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    display_name: str
    username: str
    about: str
    avatar: _common_pb2.Media
    phone_number: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., display_name: _Optional[str] = ..., username: _Optional[str] = ..., about: _Optional[str] = ..., avatar: _Optional[_Union[_common_pb2.Media, _Mapping]] = ..., phone_number: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PublicProfile(_message.Message):
    __slots__ = ("user_id", "display_name", "username", "about", "avatar", "created_at", "deleted", "relationship")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ABOUT_FIELD_NUMBER: _ClassVar[int]
    AVATAR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    RELATIONSHIP_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    display_name: str
    username: str
    about: str
    avatar: _common_pb2.Media
    created_at: _timestamp_pb2.Timestamp
    deleted: bool
    relationship: Relationship
    def __init__(self, user_id: _Optional[str] = ..., display_name: _Optional[str] = ..., username: _Optional[str] = ..., about: _Optional[str] = ..., avatar: _Optional[_Union[_common_pb2.Media, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deleted: _Optional[bool] = ..., relationship: _Optional[_Union[Relationship, _Mapping]] = ...) -> None: ...

class Relationship(_message.Message):
    __slots__ = ("contact", "mutual_contact", "alias", "blocked")
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    MUTUAL_CONTACT_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_FIELD_NUMBER: _ClassVar[int]
    contact: bool
    mutual_contact: bool
    alias: str
    blocked: bool
    def __init__(self, contact: _Optional[bool] = ..., mutual_contact: _Optional[bool] = ..., alias: _Optional[str] = ..., blocked: _Optional[bool] = ...) -> None: ...

class GetMeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMeResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class GetUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetUserResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: PublicProfile
    def __init__(self, user: _Optional[_Union[PublicProfile, _Mapping]] = ...) -> None: ...

class BatchGetUsersRequest(_message.Message):
    __slots__ = ("user_ids",)
    USER_IDS_FIELD_NUMBER: _ClassVar[int]
    user_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[PublicProfile]
    def __init__(self, users: _Optional[_Iterable[_Union[PublicProfile, _Mapping]]] = ...) -> None: ...

class UpdateProfileRequest(_message.Message):
    __slots__ = ("profile", "update_mask")
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateProfileResponse(_message.Message):
    __slots__ = ("profile",)
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: Profile
    def __init__(self, profile: _Optional[_Union[Profile, _Mapping]] = ...) -> None: ...

class SearchUsersRequest(_message.Message):
    __slots__ = ("query", "page_size", "page_token")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    query: str
    page_size: int
    page_token: str
    def __init__(self, query: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchUsersResponse(_message.Message):
    __slots__ = ("users", "next_page_token")
    USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[PublicProfile]
    next_page_token: str
    def __init__(self, users: _Optional[_Iterable[_Union[PublicProfile, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class LookupByPhoneRequest(_message.Message):
    __slots__ = ("phone_number",)
    PHONE_NUMBER_FIELD_NUMBER: _ClassVar[int]
    phone_number: str
    def __init__(self, phone_number: _Optional[str] = ...) -> None: ...

class LookupByPhoneResponse(_message.Message):
    __slots__ = ("user",)
    USER_FIELD_NUMBER: _ClassVar[int]
    user: PublicProfile
    def __init__(self, user: _Optional[_Union[PublicProfile, _Mapping]] = ...) -> None: ...

class Contact(_message.Message):
    __slots__ = ("user_id", "alias", "profile", "created_at")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    alias: str
    profile: PublicProfile
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, user_id: _Optional[str] = ..., alias: _Optional[str] = ..., profile: _Optional[_Union[PublicProfile, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddContactRequest(_message.Message):
    __slots__ = ("user_id", "alias")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    alias: str
    def __init__(self, user_id: _Optional[str] = ..., alias: _Optional[str] = ...) -> None: ...

class AddContactResponse(_message.Message):
    __slots__ = ("contact",)
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    contact: Contact
    def __init__(self, contact: _Optional[_Union[Contact, _Mapping]] = ...) -> None: ...

class UpdateContactRequest(_message.Message):
    __slots__ = ("contact", "update_mask")
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    contact: Contact
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, contact: _Optional[_Union[Contact, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdateContactResponse(_message.Message):
    __slots__ = ("contact",)
    CONTACT_FIELD_NUMBER: _ClassVar[int]
    contact: Contact
    def __init__(self, contact: _Optional[_Union[Contact, _Mapping]] = ...) -> None: ...

class RemoveContactRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class RemoveContactResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListContactsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListContactsResponse(_message.Message):
    __slots__ = ("contacts", "next_page_token")
    CONTACTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    contacts: _containers.RepeatedCompositeFieldContainer[Contact]
    next_page_token: str
    def __init__(self, contacts: _Optional[_Iterable[_Union[Contact, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ContactRequest(_message.Message):
    __slots__ = ("contact_request_id", "sender_user_id", "recipient_user_id", "message", "state", "other_user", "created_at", "updated_at")
    CONTACT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_USER_ID_FIELD_NUMBER: _ClassVar[int]
    RECIPIENT_USER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OTHER_USER_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    contact_request_id: str
    sender_user_id: str
    recipient_user_id: str
    message: str
    state: ContactRequestState
    other_user: PublicProfile
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, contact_request_id: _Optional[str] = ..., sender_user_id: _Optional[str] = ..., recipient_user_id: _Optional[str] = ..., message: _Optional[str] = ..., state: _Optional[_Union[ContactRequestState, str]] = ..., other_user: _Optional[_Union[PublicProfile, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SendContactRequestRequest(_message.Message):
    __slots__ = ("user_id", "message")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    message: str
    def __init__(self, user_id: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SendContactRequestResponse(_message.Message):
    __slots__ = ("contact_request",)
    CONTACT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    contact_request: ContactRequest
    def __init__(self, contact_request: _Optional[_Union[ContactRequest, _Mapping]] = ...) -> None: ...

class AcceptContactRequestRequest(_message.Message):
    __slots__ = ("contact_request_id",)
    CONTACT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    contact_request_id: str
    def __init__(self, contact_request_id: _Optional[str] = ...) -> None: ...

class AcceptContactRequestResponse(_message.Message):
    __slots__ = ("contact_request",)
    CONTACT_REQUEST_FIELD_NUMBER: _ClassVar[int]
    contact_request: ContactRequest
    def __init__(self, contact_request: _Optional[_Union[ContactRequest, _Mapping]] = ...) -> None: ...

class DeclineContactRequestRequest(_message.Message):
    __slots__ = ("contact_request_id",)
    CONTACT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    contact_request_id: str
    def __init__(self, contact_request_id: _Optional[str] = ...) -> None: ...

class DeclineContactRequestResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CancelContactRequestRequest(_message.Message):
    __slots__ = ("contact_request_id",)
    CONTACT_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    contact_request_id: str
    def __init__(self, contact_request_id: _Optional[str] = ...) -> None: ...

class CancelContactRequestResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListContactRequestsRequest(_message.Message):
    __slots__ = ("direction", "page_size", "page_token")
    DIRECTION_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    direction: ContactRequestDirection
    page_size: int
    page_token: str
    def __init__(self, direction: _Optional[_Union[ContactRequestDirection, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListContactRequestsResponse(_message.Message):
    __slots__ = ("contact_requests", "next_page_token")
    CONTACT_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    contact_requests: _containers.RepeatedCompositeFieldContainer[ContactRequest]
    next_page_token: str
    def __init__(self, contact_requests: _Optional[_Iterable[_Union[ContactRequest, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class BlockUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class BlockUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnblockUserRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class UnblockUserResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBlockedUsersRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class BlockedUser(_message.Message):
    __slots__ = ("user", "blocked_at")
    USER_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_AT_FIELD_NUMBER: _ClassVar[int]
    user: PublicProfile
    blocked_at: _timestamp_pb2.Timestamp
    def __init__(self, user: _Optional[_Union[PublicProfile, _Mapping]] = ..., blocked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListBlockedUsersResponse(_message.Message):
    __slots__ = ("blocked_users", "next_page_token")
    BLOCKED_USERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    blocked_users: _containers.RepeatedCompositeFieldContainer[BlockedUser]
    next_page_token: str
    def __init__(self, blocked_users: _Optional[_Iterable[_Union[BlockedUser, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PrivacySettings(_message.Message):
    __slots__ = ("last_seen", "profile_photo", "about", "find_by_phone")
    LAST_SEEN_FIELD_NUMBER: _ClassVar[int]
    PROFILE_PHOTO_FIELD_NUMBER: _ClassVar[int]
    ABOUT_FIELD_NUMBER: _ClassVar[int]
    FIND_BY_PHONE_FIELD_NUMBER: _ClassVar[int]
    last_seen: Visibility
    profile_photo: Visibility
    about: Visibility
    find_by_phone: Visibility
    def __init__(self, last_seen: _Optional[_Union[Visibility, str]] = ..., profile_photo: _Optional[_Union[Visibility, str]] = ..., about: _Optional[_Union[Visibility, str]] = ..., find_by_phone: _Optional[_Union[Visibility, str]] = ...) -> None: ...

class GetPrivacySettingsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetPrivacySettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: PrivacySettings
    def __init__(self, settings: _Optional[_Union[PrivacySettings, _Mapping]] = ...) -> None: ...

class UpdatePrivacySettingsRequest(_message.Message):
    __slots__ = ("settings", "update_mask")
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    settings: PrivacySettings
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, settings: _Optional[_Union[PrivacySettings, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class UpdatePrivacySettingsResponse(_message.Message):
    __slots__ = ("settings",)
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    settings: PrivacySettings
    def __init__(self, settings: _Optional[_Union[PrivacySettings, _Mapping]] = ...) -> None: ...
