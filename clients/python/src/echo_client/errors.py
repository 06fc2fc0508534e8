"""Why an Echo call failed: the gRPC code plus the google.rpc details Echo attaches.

Echo puts a serialized google.rpc.Status in the `grpc-status-details-bin` trailer. Its details
carry google.rpc.ErrorInfo (domain "echo", `reason` such as TOKEN_EXPIRED or RESUME, see
proto/echo/common/v1/errors.proto), google.rpc.RetryInfo on rate limits and outages, and
google.rpc.BadRequest (one field violation per bad field) on malformed input. Branch on
`reason`, never on the message text; an unknown reason is handled by the code alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

DETAILS_TRAILER = "grpc-status-details-bin"
ERROR_DOMAIN = "echo"


@dataclass(frozen=True)
class Failure:
    """A call's final status with its decoded google.rpc details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    """ErrorInfo.reason under the "echo" domain ("" when there is none)."""
    metadata: dict[str, str] = field(default_factory=dict)
    """ErrorInfo.metadata, e.g. `request_id` on INTERNAL, `limit` on RATE_LIMITED."""
    retry_delay: float | None = None
    """RetryInfo.retry_delay in seconds: wait at least this long before retrying."""
    field_violations: tuple[tuple[str, str], ...] = ()
    """BadRequest (field, description) pairs, outermost field first (`content.text`)."""

    @property
    def fields(self) -> tuple[str, ...]:
        """The names of the fields BadRequest blames."""
        return tuple(name for name, _ in self.field_violations)

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


def failure_of(error: grpc.RpcError) -> Failure:
    """Decodes the status and the ErrorInfo / RetryInfo / BadRequest of a failed call (sync or
    asyncio grpc). A missing or garbled details trailer leaves only code and message."""
    code = error.code() or grpc.StatusCode.UNKNOWN
    message = error.details() or ""
    status = _status_detail(error.trailing_metadata() or ())
    if status is None:
        return Failure(code, message)
    reason, metadata, retry_delay, violations = "", {}, None, []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            # Reasons are Echo's vocabulary only under its domain (a proxy may add its own).
            if info.domain == ERROR_DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations.extend((v.field, v.description) for v in bad.field_violations)
    return Failure(code, message, reason, metadata, retry_delay, tuple(violations))


def _status_detail(trailers) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == DETAILS_TRAILER:
            try:
                return status_pb2.Status.FromString(value)
            except DecodeError:  # a garbled trailer must not hide the status code itself
                return None
    return None
