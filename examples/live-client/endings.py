"""Why a call ended, and what the client does about it (Subscribe contract point 8).

Echo puts a google.rpc.Status in the `grpc-status-details-bin` trailer; its details carry
google.rpc.ErrorInfo (domain "echo", reason such as RESUME or SESSION_REVOKED) and, for
outages, google.rpc.RetryInfo. The decision reads the code AND the reason: UNAVAILABLE RESUME
means "reconnect now", a bare UNAVAILABLE means "the network", and UNAUTHENTICATED
SESSION_REVOKED means "never reconnect".
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

DETAILS_TRAILER = "grpc-status-details-bin"
ERROR_DOMAIN = "echo"

# Codes a transport failure shows up as: the connection broke, a proxy reset the stream, or the
# client itself cancelled a silent stream.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    }
)

# Codes whose RetryInfo says how long to wait.
RETRY_INFO_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True)
class Ending:
    """A call's final status with its decoded google.rpc details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    retry_delay: float | None = None
    field_violations: tuple[str, ...] = ()

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


def ending_of(error: grpc.RpcError) -> Ending:
    """Decodes the status and the ErrorInfo / RetryInfo / BadRequest of a failed call."""
    code = error.code() or grpc.StatusCode.UNKNOWN
    message = error.details() or ""
    status = _status_detail(error.trailing_metadata() or ())
    if status is None:
        return Ending(code, message)
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
            violations.extend(v.field for v in bad.field_violations)
    return Ending(code, message, reason, metadata, retry_delay, tuple(violations))


def _status_detail(trailers) -> status_pb2.Status | None:
    for key, value in trailers:
        if key == DETAILS_TRAILER:
            try:
                return status_pb2.Status.FromString(value)
            except Exception:  # a garbled trailer must not hide the status code itself
                return None
    return None


class Action(enum.Enum):
    """What the stream loop does after a stream ended."""

    RECONNECT = "reconnect"
    """Open a new stream with the last persisted cursor after `delay`."""
    REFRESH_TOKENS = "refresh tokens"
    """The access token expired at open: refresh it, then reconnect at once."""
    DROP_CURSOR = "drop cursor"
    """The stored cursor is malformed: refetch state and start from now."""
    STOP = "stop"
    """Do not reconnect (revoked session, replaced stream, a bug)."""


@dataclass(frozen=True)
class Decision:
    """An action and, for RECONNECT, how long to wait first."""

    action: Action
    delay: float = 0.0
    why: str = ""


class Backoff:
    """Exponential backoff with full jitter: a crowd of phones coming back after an outage
    spreads out instead of reconnecting in lockstep."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return random.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def decide(ending: Ending, backoff: Backoff, progressed: bool) -> Decision:
    """The reconnect policy of contract point 8. `progressed`: the stream delivered at least
    one item, so a RESUME is the server's request and not a loop."""
    code, reason = ending.code, ending.reason
    if progressed:
        # A stream that delivered something was healthy: start the backoff over.
        backoff.reset()
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if reason == "TOKEN_EXPIRED":
            return Decision(Action.REFRESH_TOKENS, why="access token expired")
        return Decision(Action.STOP, why=f"sign in again ({reason or 'unauthenticated'})")
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "STREAM_REPLACED":
        return Decision(Action.STOP, why="another stream of this device took over")
    if code == grpc.StatusCode.INVALID_ARGUMENT and "cursor" in ending.field_violations:
        return Decision(Action.DROP_CURSOR, why="the stored cursor is not one the server made")
    if code == grpc.StatusCode.UNAVAILABLE and reason == "RESUME":
        # Immediately, unless RESUME keeps coming with nothing delivered in between.
        delay = 0.0 if progressed else backoff.next_delay()
        return Decision(Action.RECONNECT, delay, "server asked to resume")
    if ending.retry_delay is not None and code in RETRY_INFO_CODES:
        # SHUTTING_DOWN, DEPENDENCY_UNAVAILABLE, RATE_LIMITED: at least what the server asks,
        # jittered so that the clients of a draining instance do not all land on the next one
        # at the same moment.
        base = max(ending.retry_delay, 0.1)
        return Decision(Action.RECONNECT, random.uniform(base, 2 * base), reason or "retry later")
    if code in TRANSIENT_CODES or code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return Decision(Action.RECONNECT, backoff.next_delay(), "transport or server error")
    return Decision(Action.STOP, why="unexpected status")
