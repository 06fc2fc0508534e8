from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReportReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REPORT_REASON_UNSPECIFIED: _ClassVar[ReportReason]
    REPORT_REASON_SPAM: _ClassVar[ReportReason]
    REPORT_REASON_HARASSMENT: _ClassVar[ReportReason]
    REPORT_REASON_HATE: _ClassVar[ReportReason]
    REPORT_REASON_VIOLENCE: _ClassVar[ReportReason]
    REPORT_REASON_SEXUAL_CONTENT: _ClassVar[ReportReason]
    REPORT_REASON_SELF_HARM: _ClassVar[ReportReason]
    REPORT_REASON_ILLEGAL: _ClassVar[ReportReason]
    REPORT_REASON_OTHER: _ClassVar[ReportReason]
REPORT_REASON_UNSPECIFIED: ReportReason
REPORT_REASON_SPAM: ReportReason
REPORT_REASON_HARASSMENT: ReportReason
REPORT_REASON_HATE: ReportReason
REPORT_REASON_VIOLENCE: ReportReason
REPORT_REASON_SEXUAL_CONTENT: ReportReason
REPORT_REASON_SELF_HARM: ReportReason
REPORT_REASON_ILLEGAL: ReportReason
REPORT_REASON_OTHER: ReportReason

class ReportMessageRequest(_message.Message):
    __slots__ = ("conversation_id", "message_id", "reason", "note")
    CONVERSATION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    conversation_id: str
    message_id: str
    reason: ReportReason
    note: str
    def __init__(self, conversation_id: _Optional[str] = ..., message_id: _Optional[str] = ..., reason: _Optional[_Union[ReportReason, str]] = ..., note: _Optional[str] = ...) -> None: ...

class ReportMessageResponse(_message.Message):
    __slots__ = ("report_id",)
    REPORT_ID_FIELD_NUMBER: _ClassVar[int]
    report_id: str
    def __init__(self, report_id: _Optional[str] = ...) -> None: ...
