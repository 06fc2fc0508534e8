"""Echo's Python client: the generated stubs live in the `echo` package (echo.auth.v1,
echo.message.v1, ...); this package adds what every app needs around them.

- `connect(target)`: a grpc.aio channel with client keepalive;
- `AuthSession`: tokens attached to every call, refreshed on expiry, persisted by a callback;
- `LiveStream`: the Subscribe loop, resumed from the last cursor with backoff;
- `failure_of(error)`: the gRPC code plus ErrorInfo reason, RetryInfo and BadRequest fields.

docs/clients.md walks through them.
"""

from .auth import AuthSession, SignedOut, Tokens
from .channel import connect
from .errors import Failure, failure_of
from .live import Backoff, LiveStream, StreamFailed, StreamReplaced

__all__ = [
    "AuthSession",
    "Backoff",
    "Failure",
    "LiveStream",
    "SignedOut",
    "StreamFailed",
    "StreamReplaced",
    "Tokens",
    "connect",
    "failure_of",
]
