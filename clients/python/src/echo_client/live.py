"""A Subscribe loop that resumes from the last cursor: docs/live-client.md, rules 7 and 9.

    stream = LiveStream(lambda: messages_stub, session, cursor=saved_cursor)
    async for item in stream:
        apply(item)                       # and save item.cursor with its effect, if it has one

LiveStream reopens the stream after every ending the contract calls resumable, with the
cursor of the last item the caller finished with (an item counts as finished when the caller
asks for the next one, so an item being applied when a crash or a cut happens is replayed,
never skipped). It raises when the contract says stop:

    UNAVAILABLE RESUME                     -> reopen at once
    UNAVAILABLE SHUTTING_DOWN + RetryInfo  -> wait retry_delay..2 x retry_delay, reopen
    network, silence, other UNAVAILABLE    -> exponential backoff with full jitter, reopen
    UNAUTHENTICATED TOKEN_EXPIRED at open  -> AuthSession.refresh(), reopen
    INVALID_ARGUMENT on `cursor`           -> drop the cursor (`fresh` turns True), reopen
    other UNAUTHENTICATED                  -> SignedOut
    FAILED_PRECONDITION STREAM_REPLACED    -> StreamReplaced
    anything else                          -> StreamFailed

Deduplication by seq, gap filling and refetching on ResyncRequired stay with the caller: they
depend on its local store (examples/live-client/apply.py is one).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from echo.message.v1 import live_pb2

from .auth import AuthSession, SignedOut
from .errors import Failure, failure_of

log = logging.getLogger("echo_client.live")

# Codes a transport failure shows up as: the connection broke, a proxy reset the stream, or
# the client itself cancelled a silent stream.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    }
)
# Codes whose RetryInfo says how long to wait.
RETRY_INFO_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


class StreamReplaced(Exception):
    """A newer stream of this device took over: do not reconnect from this one."""


class StreamFailed(Exception):
    """The stream ended with a status the contract does not call resumable (a bug)."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(str(failure))
        self.failure = failure


class Action(enum.Enum):
    """What the loop does after a stream ended."""

    RECONNECT = "reconnect"
    REFRESH_TOKENS = "refresh tokens"
    DROP_CURSOR = "drop cursor"
    STOP = "stop"


@dataclass(frozen=True)
class Decision:
    """An action and, for RECONNECT, how long to wait first."""

    action: Action
    delay: float = 0.0
    why: str = ""


class Backoff:
    """Exponential backoff with full jitter (0.5 s doubling to 30 s): a crowd of phones coming
    back after an outage spreads out instead of reconnecting in lockstep."""

    def __init__(self, base: float = 0.5, cap: float = 30.0) -> None:
        self.base, self.cap, self.attempt = base, cap, 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2**self.attempt))
        self.attempt += 1
        return random.uniform(0, ceiling)

    def reset(self) -> None:
        self.attempt = 0


def decide(failure: Failure, backoff: Backoff, progressed: bool) -> Decision:
    """The reconnect policy (docs/live-client.md rule 9). `progressed`: the stream delivered at
    least one item, so a RESUME is the server's request and not a loop."""
    code, reason = failure.code, failure.reason
    if progressed:
        backoff.reset()  # a stream that delivered something was healthy
    if code == grpc.StatusCode.UNAUTHENTICATED:
        if reason == "TOKEN_EXPIRED":
            return Decision(Action.REFRESH_TOKENS, why="access token expired")
        return Decision(Action.STOP, why=f"sign in again ({reason or 'unauthenticated'})")
    if code == grpc.StatusCode.FAILED_PRECONDITION and reason == "STREAM_REPLACED":
        return Decision(Action.STOP, why="another stream of this device took over")
    if code == grpc.StatusCode.INVALID_ARGUMENT and "cursor" in failure.fields:
        return Decision(Action.DROP_CURSOR, why="the stored cursor is not one the server made")
    if code == grpc.StatusCode.UNAVAILABLE and reason == "RESUME":
        # At once, unless RESUME keeps coming with nothing delivered in between.
        delay = 0.0 if progressed else backoff.next_delay()
        return Decision(Action.RECONNECT, delay, "server asked to resume")
    if failure.retry_delay is not None and code in RETRY_INFO_CODES:
        # SHUTTING_DOWN, DEPENDENCY_UNAVAILABLE, RATE_LIMITED: at least what the server asks,
        # jittered so the clients of a draining instance do not all land on the next at once.
        base = max(failure.retry_delay, 0.1)
        return Decision(Action.RECONNECT, random.uniform(base, 2 * base), reason or "retry later")
    if code in TRANSIENT_CODES:
        return Decision(Action.RECONNECT, backoff.next_delay(), "transport or server error")
    return Decision(Action.STOP, why="unexpected status")


class DeadConnection(Exception):
    """Nothing arrived for twice the heartbeat interval."""


class LiveStream:
    """Subscribe items of one device, across every resumable ending.

    `messages()` returns the current MessageServiceStub (called at every open, so a replaced
    channel is picked up). `on_dead_connection()`, called (and awaited if async) after a
    silence of 2 x the heartbeat interval, should replace the channel: the next open then
    uses a new TCP connection instead of the half-open one.
    """

    def __init__(
        self,
        messages: Callable[[], Any],
        session: AuthSession,
        *,
        cursor: str = "",
        heartbeat_interval: float = 20.0,
        backoff: Backoff | None = None,
        on_dead_connection: Callable[[], Awaitable[None] | None] | None = None,
    ) -> None:
        self.messages = messages
        self.session = session
        self.cursor = cursor
        """The cursor of the last item the caller finished with: where a reopen resumes."""
        self.fresh = not cursor
        """True while the current stream was opened without a cursor: after its Ready the
        caller must refetch (docs/live-client.md rule 6)."""
        self.silence_limit = 2 * heartbeat_interval
        self.backoff = backoff or Backoff()
        self.on_dead_connection = on_dead_connection
        self.opens = 0  # streams opened, for tests and metrics
        self._opened_with = ""  # the access token the current stream opened with

    def __aiter__(self) -> AsyncIterator[live_pb2.SubscribeResponse]:
        return self._run()

    async def _run(self) -> AsyncIterator[live_pb2.SubscribeResponse]:
        while True:
            delivered = 0
            try:
                async with contextlib.aclosing(self._stream_once()) as items:
                    async for item in items:
                        delivered += 1
                        yield item
                        # The caller asked for the next item: it is done with this one.
                        if item.cursor:
                            self.cursor = item.cursor
                failure = Failure(
                    grpc.StatusCode.UNAVAILABLE, "the server closed the stream without a status"
                )
            except grpc.aio.AioRpcError as error:
                failure = failure_of(error)
            except DeadConnection as dead:
                failure = Failure(grpc.StatusCode.UNAVAILABLE, str(dead))
                if self.on_dead_connection is not None:
                    result = self.on_dead_connection()
                    if inspect.isawaitable(result):
                        await result
            decision = decide(failure, self.backoff, progressed=delivered > 0)
            log.warning(
                "stream ended: %s -> %s %s (%.2fs)",
                failure,
                decision.action.value,
                decision.why,
                decision.delay,
            )
            if decision.action is Action.STOP:
                if failure.code == grpc.StatusCode.UNAUTHENTICATED:
                    raise SignedOut(decision.why, failure)
                if failure.reason == "STREAM_REPLACED":
                    raise StreamReplaced(str(failure))
                raise StreamFailed(failure)
            if decision.action is Action.REFRESH_TOKENS:
                try:
                    await self.session.refresh(self._opened_with)
                except grpc.aio.AioRpcError as error:
                    # The network or the server, not the session: try again after a backoff.
                    log.warning("refresh failed: %s", failure_of(error))
                    await asyncio.sleep(self.backoff.next_delay())
            if decision.action is Action.DROP_CURSOR:
                self.cursor = ""
            await asyncio.sleep(decision.delay)

    async def _stream_once(self) -> AsyncIterator[live_pb2.SubscribeResponse]:
        """One stream, from open to ending; raises how it ended (returns on a clean EOF)."""
        cursor = self.cursor
        self.fresh = not cursor
        log.info("subscribing %s", "from the saved cursor" if cursor else "from now (no cursor)")
        metadata = await self.session.fresh_metadata()
        self._opened_with = self.session.tokens.access_token
        call = self.messages().Subscribe(
            live_pb2.SubscribeRequest(cursor=cursor), metadata=metadata
        )
        self.opens += 1
        try:
            while True:
                try:
                    item = await asyncio.wait_for(call.read(), timeout=self.silence_limit)
                except asyncio.TimeoutError:  # TimeoutError itself from Python 3.11
                    raise DeadConnection(f"nothing received for {self.silence_limit:g}s") from None
                if item is grpc.aio.EOF:
                    return
                if item.WhichOneof("item") == "heartbeat":
                    self._heard_heartbeat(item.heartbeat.interval.ToTimedelta().total_seconds())
                yield item
        finally:
            call.cancel()

    def _heard_heartbeat(self, interval: float) -> None:
        # Silence longer than 2 x the announced interval is a dead connection; kept across
        # streams (the server's setting does not change between them).
        if interval > 0 and 2 * interval != self.silence_limit:
            self.silence_limit = 2 * interval
            log.info(
                "heartbeat every %gs: a connection silent for %gs is dead",
                interval,
                self.silence_limit,
            )
