"""Sign in, then keep the device's stream with echo_client.LiveStream and apply what it brings.

The reconnect rules (RESUME, SHUTTING_DOWN + RetryInfo, backoff, silence, TOKEN_EXPIRED at
open, a malformed cursor) live in the installed client (clients/python, echo_client.live);
this file adds what is the app's own: where the session comes from, the state file, and what
the terminal endings mean for this program (its exit status).

    SIGNED_OUT --sign in--> LiveStream (reconnects by itself) --terminal ending--> exit:
        SignedOut (SESSION_REVOKED, refresh impossible)  -> 3, tokens forgotten
        StreamReplaced (another stream of this device)   -> 4
        StreamFailed (an unexpected status)              -> 1
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path

import grpc
from echo.auth.v1 import auth_pb2, auth_pb2_grpc
from echo.message.v1 import message_service_pb2_grpc
from echo_client import (
    AuthSession,
    LiveStream,
    SignedOut,
    StreamFailed,
    StreamReplaced,
    Tokens,
    connect,
    failure_of,
)

from apply import Applier
from state import StateFile

log = logging.getLogger("live-client")

EXIT_ERROR, EXIT_SIGNED_OUT, EXIT_REPLACED = 1, 3, 4
UNARY_TIMEOUT = 15.0  # seconds for the sign-in call


class SignInRequired(RuntimeError):
    """There is no session and no way to make one (no token, no phone and password)."""


class LiveClient:
    """One device's live client."""

    def __init__(
        self,
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
        self.server, self.tls = server, tls
        self.store = StateFile(state_path)
        self.phone, self.password, self.access_token = phone, password, access_token
        self.device_name = device_name
        self.heartbeat_interval = heartbeat_interval
        self.channel = None
        self.auth = self.messages = None
        self.session: AuthSession | None = None

    def _connect(self) -> None:
        """(Re)creates the channel and the stubs on it: after a dead connection a new TCP
        connection is wanted, not the half-open one."""
        self.channel = connect(self.server, tls=self.tls)
        self.auth = auth_pb2_grpc.AuthServiceStub(self.channel)
        self.messages = message_service_pb2_grpc.MessageServiceStub(self.channel)
        if self.session is not None:
            self.session.auth = self.auth

    async def _reconnect(self) -> None:
        await self.close()
        self._connect()

    async def close(self) -> None:
        if self.channel is not None:
            await self.channel.close()

    async def _sign_in(self) -> Tokens:
        """The session to use: an explicit token wins, then the saved one (same device across
        restarts), then phone and password (a new device)."""
        tokens = self.store.state.tokens
        if self.access_token and (tokens is None or tokens.access_token != self.access_token):
            return _token_only(self.access_token)
        if tokens is not None:
            return tokens
        tokens = await self._login()
        if tokens is None:
            raise SignInRequired(
                "no saved session: pass --phone with $ECHO_PASSWORD, or --access-token"
            )
        return tokens

    async def _login(self) -> Tokens | None:
        """A new session from phone and password; None without them. Also AuthSession's
        `relogin`, for when the refresh token is refused."""
        if not (self.phone and self.password):
            return None
        request = auth_pb2.LoginWithPasswordRequest(
            phone_number=self.phone,
            password=self.password,
            device=auth_pb2.DeviceInfo(
                name=self.device_name, platform=auth_pb2.DEVICE_PLATFORM_OTHER
            ),
        )
        try:
            response = await self.auth.LoginWithPassword(request, timeout=UNARY_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            raise SignInRequired(f"LoginWithPassword failed: {failure_of(error)}") from error
        log.info("signed in user=%s device=%s", response.tokens.user_id, response.tokens.device_id)
        return Tokens.from_pair(response.tokens)

    def _save_tokens(self, tokens: Tokens) -> None:
        # Refresh tokens rotate: the new pair must reach the disk before it is used.
        self.store.state.tokens = tokens
        self.store.save()

    async def run(self) -> int:
        """Streams until a terminal ending; returns the exit status."""
        self._connect()
        tokens = await self._sign_in()
        self._save_tokens(tokens)
        self.session = AuthSession(
            self.auth, tokens, on_tokens=self._save_tokens, relogin=self._login
        )
        applier = Applier(self.session.call, self.store)
        stream = LiveStream(
            lambda: self.messages,
            self.session,
            cursor=self.store.state.cursor,
            heartbeat_interval=self.heartbeat_interval,
            on_dead_connection=self._reconnect,
        )
        try:
            async for item in stream:
                applier.messages = self.messages
                await applier.apply(item, fresh_start=stream.fresh)
        except SignedOut as signed_out:
            log.error("signed out: %s", signed_out.failure or signed_out)
            # The session is over: forget it, so the next start signs in afresh.
            self.store.state.tokens = None
            self.store.save()
            return EXIT_SIGNED_OUT
        except StreamReplaced:
            return EXIT_REPLACED
        except StreamFailed as failed:
            log.error("stopped: %s", failed.failure)
            return EXIT_ERROR
        return EXIT_ERROR  # LiveStream never ends by itself


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
