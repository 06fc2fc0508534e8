"""The stream loop: sign in, keep one Subscribe stream open, and reconnect by the rules.

SIGNED_OUT --sign in--> CONNECTING --first item--> STREAMING --ending--> decide:
    RESUME                      -> CONNECTING at once, with the saved cursor
    SHUTTING_DOWN + RetryInfo   -> wait retry_delay..2x retry_delay, then CONNECTING
    network / silence           -> wait (exponential backoff, full jitter), CONNECTING
    TOKEN_EXPIRED at open       -> refresh tokens, CONNECTING
    malformed cursor            -> drop it (full refetch on Ready), CONNECTING
    SESSION_REVOKED             -> STOPPED (sign in again)
    STREAM_REPLACED             -> STOPPED (another stream of this device took over)
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path

import grpc

from apply import Applier
from endings import Action, Backoff, Ending, decide, ending_of
from state import StateFile, Tokens

log = logging.getLogger("live-client")

EXIT_ERROR, EXIT_SIGNED_OUT, EXIT_REPLACED = 1, 3, 4
UNARY_TIMEOUT = 15.0  # seconds for ListMessages, ListConversations and the auth calls

# HTTP/2 keepalive on the client side too: a half-open connection (a phone that lost its
# network without a FIN) is noticed by the transport even while the stream is idle.
CHANNEL_OPTIONS = [
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


class SignInRequired(RuntimeError):
    """There is no session and no way to make one (no token, no phone and password)."""


class DeadConnection(Exception):
    """Nothing arrived for twice the heartbeat interval."""


class LiveClient:
    """One device's live client."""

    def __init__(
        self,
        pb,
        *,
        server: str,
        tls: bool,
        state_path: Path,
        phone: str | None,
        password: str | None,
        access_token: str | None,
        device_name: str,
        heartbeat_interval: float,
    ) -> None:
        self.pb = pb
        self.server, self.tls = server, tls
        self.store = StateFile(state_path)
        self.phone, self.password, self.access_token = phone, password, access_token
        self.device_name = device_name
        # Silence longer than this is a dead connection: 2 x the last Heartbeat.interval the
        # server announced (kept across streams), or 2 x the assumed one until then.
        self.silence_limit = 2 * heartbeat_interval
        self.delivered = 0  # items received on the current stream
        self.channel = None
        self.auth = self.messages = None
        self.applier = Applier(pb, self.unary, self.store)

    # --- connection and session -------------------------------------------------------------

    def _connect(self) -> None:
        """(Re)creates the channel: after a dead connection a new TCP connection is wanted,
        not the half-open one."""
        if self.tls:
            self.channel = grpc.aio.secure_channel(
                self.server, grpc.ssl_channel_credentials(), CHANNEL_OPTIONS
            )
        else:
            self.channel = grpc.aio.insecure_channel(self.server, CHANNEL_OPTIONS)
        self.auth = self.pb.auth_grpc.AuthServiceStub(self.channel)
        self.messages = self.pb.message_grpc.MessageServiceStub(self.channel)
        self.applier.messages = self.messages

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.store.state.tokens.access_token}"),)

    async def _sign_in(self) -> None:
        """Makes sure the state holds a session: an explicit token wins, then the saved one
        (same device across restarts), then phone and password (a new device)."""
        state = self.store.state
        if self.access_token and (
            state.tokens is None or state.tokens.access_token != self.access_token
        ):
            state.tokens = _token_only(self.access_token)
        elif state.tokens is None:
            if not (self.phone and self.password):
                raise SignInRequired(
                    "no saved session: pass --phone with $ECHO_PASSWORD, or --access-token"
                )
            await self._login()
        self.store.save()

    async def _login(self) -> None:
        request = self.pb.auth.LoginWithPasswordRequest(
            phone_number=self.phone,
            password=self.password,
            device=self.pb.auth.DeviceInfo(
                name=self.device_name, platform=self.pb.auth.DEVICE_PLATFORM_OTHER
            ),
        )
        try:
            response = await self.auth.LoginWithPassword(request, timeout=UNARY_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            raise SignInRequired(f"LoginWithPassword failed: {ending_of(error)}") from error
        self.store.state.tokens = _tokens(response.tokens)
        log.info("signed in user=%s device=%s", response.tokens.user_id, response.tokens.device_id)

    async def _refresh(self) -> bool:
        """New tokens after TOKEN_EXPIRED: rotate the refresh token, or sign in again."""
        tokens = self.store.state.tokens
        if tokens is not None and tokens.refresh_token:
            request = self.pb.auth.RefreshTokensRequest(refresh_token=tokens.refresh_token)
            try:
                response = await self.auth.RefreshTokens(request, timeout=UNARY_TIMEOUT)
                self.store.state.tokens = _tokens(response.tokens)
                self.store.save()
                log.info("tokens refreshed")
                return True
            except grpc.aio.AioRpcError as error:
                log.warning("refresh failed: %s", ending_of(error))
        if self.phone and self.password:
            await self._login()
            self.store.save()
            return True
        return False

    async def unary(self, method, request):
        """A unary call with the session's token; refreshes once on TOKEN_EXPIRED (an open
        stream outlives its token, the calls made beside it do not)."""
        for attempt in range(2):
            try:
                return await method(request, metadata=self._metadata(), timeout=UNARY_TIMEOUT)
            except grpc.aio.AioRpcError as error:
                if (
                    attempt == 0
                    and ending_of(error).reason == "TOKEN_EXPIRED"
                    and await self._refresh()
                ):
                    continue
                raise
        raise AssertionError("unreachable")

    # --- the stream loop --------------------------------------------------------------------

    async def run(self) -> int:
        """Streams until a terminal ending; returns the exit status."""
        self._connect()
        await self._sign_in()
        backoff = Backoff()
        while True:
            self.delivered = 0
            try:
                await self._stream_once()
                ending = Ending(
                    grpc.StatusCode.UNAVAILABLE, "the server closed the stream without a status"
                )
            except grpc.aio.AioRpcError as error:
                ending = ending_of(error)
            except DeadConnection as dead:
                ending = Ending(grpc.StatusCode.UNAVAILABLE, str(dead))
                await self.close()
                self._connect()
            decision = decide(ending, backoff, progressed=self.delivered > 0)
            log.warning(
                "stream ended: %s -> %s %s (%.2fs)",
                ending,
                decision.action.value,
                decision.why,
                decision.delay,
            )
            if decision.action is Action.STOP:
                return self._stopped(ending)
            if decision.action is Action.REFRESH_TOKENS and not await self._refresh():
                return EXIT_SIGNED_OUT
            if decision.action is Action.DROP_CURSOR:
                self.store.state.cursor = ""
                self.store.save()
            await asyncio.sleep(decision.delay)

    def _stopped(self, ending: Ending) -> int:
        if ending.code == grpc.StatusCode.UNAUTHENTICATED:
            # The session is over: forget it, so the next start signs in afresh.
            self.store.state.tokens = None
            self.store.save()
            return EXIT_SIGNED_OUT
        if ending.reason == "STREAM_REPLACED":
            return EXIT_REPLACED
        return EXIT_ERROR

    async def _stream_once(self) -> None:
        """One stream, from open to ending; raises how it ended."""
        cursor = self.store.state.cursor
        log.info("subscribing %s", "from the saved cursor" if cursor else "from now (no cursor)")
        call = self.messages.Subscribe(
            self.pb.live.SubscribeRequest(cursor=cursor), metadata=self._metadata()
        )
        try:
            while True:
                try:
                    response = await asyncio.wait_for(call.read(), timeout=self.silence_limit)
                except TimeoutError:
                    raise DeadConnection(f"nothing received for {self.silence_limit:g}s") from None
                if response is grpc.aio.EOF:
                    return
                self.delivered += 1
                if response.WhichOneof("item") == "heartbeat":
                    interval = response.heartbeat.interval.ToTimedelta().total_seconds()
                    if interval > 0 and 2 * interval != self.silence_limit:
                        self.silence_limit = 2 * interval
                        log.info(
                            "heartbeat every %gs: a connection silent for %gs is dead",
                            interval,
                            self.silence_limit,
                        )
                await self.applier.apply(response, fresh_start=not cursor)
        finally:
            call.cancel()


def _tokens(pair) -> Tokens:
    return Tokens(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        user_id=pair.user_id,
        device_id=pair.device_id,
    )


def _token_only(access_token: str) -> Tokens:
    """A session known only by its access token (no refresh). The user and device are read
    from the JWT's documented `sub` and `did` claims: the client needs its own user id to
    recognise its own join. The signature is the server's business."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        claims = {}
    return Tokens(
        access_token=access_token, user_id=claims.get("sub", ""), device_id=claims.get("did", "")
    )
