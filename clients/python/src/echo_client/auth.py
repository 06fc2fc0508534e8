"""The session of one device: its tokens, attached to every call, refreshed when they expire.

Access tokens live about 15 minutes; refresh tokens rotate on every use (docs/auth.md). So a
client must (1) attach `authorization: Bearer <access token>` to every call but the public
AuthService ones, (2) on UNAUTHENTICATED TOKEN_EXPIRED call RefreshTokens once and retry the
call, (3) persist every new pair at once (the old refresh token stops working after the 30 s
retry grace), and (4) treat any other UNAUTHENTICATED as "signed out". AuthSession does all
four; refreshes are shared, so ten calls failing together cost one RefreshTokens.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc

from echo.auth.v1 import auth_pb2

from .errors import Failure, failure_of

log = logging.getLogger("echo_client.auth")

UNARY_TIMEOUT = 15.0  # seconds, for calls made through AuthSession.call


@dataclass
class Tokens:
    """A device's session as AuthService returns it (TokenPair), in a form easy to store."""

    access_token: str
    refresh_token: str = ""
    user_id: str = ""
    device_id: str = ""

    @classmethod
    def from_pair(cls, pair: auth_pb2.TokenPair) -> Tokens:
        return cls(pair.access_token, pair.refresh_token, pair.user_id, pair.device_id)

    def expires_at(self) -> float | None:
        """The access token's `exp` (Unix seconds), read without checking the signature (that
        is the server's business); None if it cannot be read."""
        try:
            payload = self.access_token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            return float(claims["exp"])
        except (IndexError, KeyError, TypeError, ValueError):
            return None


class SignedOut(Exception):
    """The session is over (revoked, refresh token invalid or reused, or no refresh token):
    delete the stored tokens and sign in again. `failure` is the status that said so."""

    def __init__(self, why: str, failure: Failure | None = None) -> None:
        super().__init__(why)
        self.failure = failure


OnTokens = Callable[[Tokens], Awaitable[None] | None]
Relogin = Callable[[], Awaitable[Tokens | None]]


class AuthSession:
    """Tokens of one device and the calls made with them.

    `auth` is an AuthServiceStub (replace the attribute when the channel is replaced).
    `on_tokens(tokens)` is called (and awaited if async) with every new pair: persist it.
    `relogin()`, if given, is tried when refreshing is impossible (e.g. sign in again with a
    stored password); it returns new tokens or None. `refresh_margin`: refresh before a call
    when the access token expires within this many seconds (0: only after TOKEN_EXPIRED).
    """

    def __init__(
        self,
        auth: Any,
        tokens: Tokens,
        *,
        on_tokens: OnTokens | None = None,
        relogin: Relogin | None = None,
        refresh_margin: float = 30.0,
    ) -> None:
        self.auth = auth
        self.tokens = tokens
        self.on_tokens = on_tokens
        self.relogin = relogin
        self.refresh_margin = refresh_margin
        self.refreshes = 0  # RefreshTokens calls that succeeded
        self._lock = asyncio.Lock()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata carrying the current access token."""
        return (("authorization", f"Bearer {self.tokens.access_token}"),)

    async def fresh_metadata(self) -> tuple[tuple[str, str], ...]:
        """metadata() after a refresh if the token is within `refresh_margin` of its expiry:
        use it to open streams (a stream that opens with an expired token fails)."""
        expires = self.tokens.expires_at()
        if (
            self.refresh_margin > 0
            and expires is not None
            and expires - time.time() < self.refresh_margin
        ):
            await self.refresh(self.tokens.access_token)
        return self.metadata()

    async def call(self, method: Callable, request: Any, *, timeout: float = UNARY_TIMEOUT):
        """`await method(request)` with the session's token; on TOKEN_EXPIRED refreshes once
        and retries. Raises grpc.aio.AioRpcError for other failures (decode it with
        failure_of) and SignedOut when the session cannot be renewed."""
        metadata = await self.fresh_metadata()
        try:
            return await method(request, metadata=metadata, timeout=timeout)
        except grpc.aio.AioRpcError as error:
            if failure_of(error).reason != "TOKEN_EXPIRED":
                raise
            used = metadata[0][1].removeprefix("Bearer ")
        await self.refresh(used)
        return await method(request, metadata=self.metadata(), timeout=timeout)

    async def refresh(self, expired_access_token: str | None = None) -> Tokens:
        """Rotates the tokens with RefreshTokens. `expired_access_token`: the token that was
        refused; if another task refreshed meanwhile, its result is used instead of a second
        refresh. Raises SignedOut if the session cannot be renewed."""
        async with self._lock:
            if (
                expired_access_token is not None
                and self.tokens.access_token != expired_access_token
            ):
                return self.tokens  # someone else refreshed while we waited
            failure = None
            if self.tokens.refresh_token:
                request = auth_pb2.RefreshTokensRequest(refresh_token=self.tokens.refresh_token)
                try:
                    response = await self.auth.RefreshTokens(request, timeout=UNARY_TIMEOUT)
                except grpc.aio.AioRpcError as error:
                    failure = failure_of(error)
                    if failure.code != grpc.StatusCode.UNAUTHENTICATED:
                        raise  # the network or the server: the session may still be fine
                    log.warning("refresh refused: %s", failure)
                else:
                    self.refreshes += 1
                    log.info("tokens refreshed")
                    await self._adopt(Tokens.from_pair(response.tokens))
                    return self.tokens
            if self.relogin is not None:
                tokens = await self.relogin()
                if tokens is not None:
                    await self._adopt(tokens)
                    return self.tokens
            raise SignedOut("the session cannot be renewed: sign in again", failure)

    async def _adopt(self, tokens: Tokens) -> None:
        self.tokens = tokens
        if self.on_tokens is not None:
            result = self.on_tokens(tokens)
            if inspect.isawaitable(result):
                await result
