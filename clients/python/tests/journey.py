#!/usr/bin/env python3
"""One chat journey of the installed Python client (echo-client) against a real `echo`.

    python3 clients/python/tests/journey.py --echo-bin target/debug/echo [--backend real]
    # run.sh installs echo-client into a venv and runs it on both backends

Starts `echo` (`--backend embedded`, the default, or `real`: the shared PostgreSQL, NATS and
Redis; tests/harness.py) with the OTP codes going to a webhook this script serves
(auth.otp_sender), 3 s access tokens and a 2 s live heartbeat, then:

1. Ada and Bob sign up (Register, the code from the webhook, VerifyPhone).
2. Ada opens a direct conversation with Bob; Bob's LiveStream (through a TCP proxy this script
   owns) reaches Ready.
3. Ada sends messages; a retry with the same client_message_id returns the same message.
   Bob receives each one through Subscribe.
4. The proxy cuts Bob's connection and refuses new ones for longer than the access token
   lives; Ada sends more meanwhile. When the proxy lets connections through again, Bob's
   stream must resume from its last cursor (refreshing its expired token at open) and
   deliver every message exactly once, in seq order, nothing else.
5. Bob's unary call with the expired token is refreshed and retried by AuthSession.
6. Bad input gets decoded google.rpc details: BadRequest naming the field, ErrorInfo reasons.

Exits 0 when every check holds, 1 (with the server log's tail) on the first that does not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import grpc
from harness import WAIT, CheckFailed, Echo, OtpWebhook, Proxy, Skipped, check

from echo.auth.v1 import auth_pb2, auth_pb2_grpc
from echo.message.v1 import (
    conversation_api_pb2,
    message_api_pb2,
    message_pb2,
    message_service_pb2_grpc,
)
from echo_client import AuthSession, LiveStream, Tokens, connect, failure_of

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "scripts"))
import ports  # scripts/ports.py: ports no outgoing connection can take

PASSWORD = "correct horse battery staple"


def say(message: str) -> None:
    print(f"journey: {message}", flush=True)


async def until(what: str, attempt, timeout: float = WAIT):
    """Retries `await attempt()` until it returns something truthy without raising."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = await attempt()
            if result:
                return result
        except grpc.aio.AioRpcError as error:
            last = failure_of(error)
        await asyncio.sleep(0.1)
    raise CheckFailed(f"{what} within {timeout:g}s (last failure: {last})")


async def sign_up(auth, webhook: OtpWebhook, phone: str, name: str) -> Tokens:
    await auth.Register(
        auth_pb2.RegisterRequest(phone_number=phone, password=PASSWORD, display_name=name)
    )
    device = auth_pb2.DeviceInfo(name="journey", platform=auth_pb2.DEVICE_PLATFORM_OTHER)
    code = await asyncio.to_thread(webhook.code_for, phone)
    verified = await auth.VerifyPhone(
        auth_pb2.VerifyPhoneRequest(phone_number=phone, code=code, device=device)
    )
    check(verified.account_created, f"VerifyPhone did not create {name}'s account")
    return Tokens.from_pair(verified.tokens)


class Inbox:
    """What Bob's LiveStream delivered: the messages by (seq, text), in arrival order."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, str]] = []
        self.ready = 0
        self.changed = asyncio.Event()
        self.stopped: BaseException | None = None  # why LiveStream gave up, if it did

    async def consume(self, stream: LiveStream) -> None:
        try:
            await self._consume(stream)
        except Exception as error:  # noqa: BLE001 (reported by wait() and at the end)
            self.stopped = error
            self.changed.set()

    async def _consume(self, stream: LiveStream) -> None:
        async for item in stream:
            kind = item.WhichOneof("item")
            if kind == "ready":
                self.ready += 1
            elif kind == "conversation_event":
                event = item.conversation_event
                if event.WhichOneof("kind") == "message_created":
                    message = event.message_created.message
                    self.messages.append((message.seq, message.content.text))
            self.changed.set()

    async def wait(self, what: str, condition) -> None:
        deadline = time.monotonic() + WAIT
        while not condition():
            if self.stopped is not None:
                raise CheckFailed(f"Bob's stream stopped before {what}: {self.stopped!r}")
            self.changed.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CheckFailed(f"Bob's stream: {what} within {WAIT:g}s")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), remaining)


async def journey(echo_bin: Path, work: Path, backend: str) -> None:
    *echo_ports, webhook_port, proxy_port = ports.reserve(5)
    webhook = OtpWebhook(webhook_port)
    server = Echo(echo_bin, work, backend, echo_ports, webhook.url)
    try:
        await run_journey(server.target, webhook, proxy_port, server.port)
    except (CheckFailed, grpc.aio.AioRpcError) as error:
        failed = failure_of(error) if isinstance(error, grpc.aio.AioRpcError) else error
        tail = "\n".join(server.log_tail())
        raise CheckFailed(f"{failed}\n--- last 30 lines of the server log ---\n{tail}") from None
    finally:
        server.stop()


async def run_journey(target: str, webhook: OtpWebhook, proxy_port: int, echo_port: int) -> None:
    ada_channel = connect(target)
    auth = auth_pb2_grpc.AuthServiceStub(ada_channel)
    ada_messages = message_service_pb2_grpc.MessageServiceStub(ada_channel)
    signing_keys = auth_pb2.GetSigningKeysRequest()
    await until("echo answering", lambda: auth.GetSigningKeys(signing_keys, timeout=1))

    # 1. Sign-up through the webhook.
    ada = AuthSession(auth, await sign_up(auth, webhook, "+14155550101", "Ada"))
    bob_saved: list[Tokens] = []
    bob_tokens = await sign_up(auth, webhook, "+14155550102", "Bob")
    say(f"Ada and Bob signed up (Bob is {bob_tokens.user_id})")

    # 2. A direct conversation; message learns about new accounts from auth's events.
    request = conversation_api_pb2.CreateDirectConversationRequest(peer_user_id=bob_tokens.user_id)
    created = await until(
        "CreateDirectConversation", lambda: ada.call(ada_messages.CreateDirectConversation, request)
    )
    conversation = created.conversation.conversation_id

    proxy = Proxy(proxy_port, echo_port)
    await proxy.restore()
    bob_channel = connect(f"127.0.0.1:{proxy_port}")
    bob_auth = auth_pb2_grpc.AuthServiceStub(bob_channel)
    bob_messages = message_service_pb2_grpc.MessageServiceStub(bob_channel)
    # refresh_margin 0: refresh only after TOKEN_EXPIRED, the path a sleeping phone takes.
    bob = AuthSession(bob_auth, bob_tokens, on_tokens=bob_saved.append, refresh_margin=0)
    stream = LiveStream(lambda: bob_messages, bob)
    inbox = Inbox()
    consumer = asyncio.create_task(inbox.consume(stream))
    try:
        await inbox.wait("Ready", lambda: inbox.ready >= 1)
        check(stream.fresh and stream.opens == 1, "the first stream opened without a cursor")
        say(f"conversation {conversation}; Bob's stream is ready")
        await chat(ada, ada_messages, conversation, inbox, stream, proxy, bob)
        await errors(ada, ada_messages, conversation)
        check(inbox.stopped is None, f"Bob's stream stopped: {inbox.stopped!r}")
    finally:
        consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consumer
        await bob_channel.close()
        await ada_channel.close()
        await proxy.cut()
    check(bool(bob_saved), "on_tokens never saw Bob's refreshed tokens")
    check(bob_saved[-1] == bob.tokens, "the last saved tokens are not the session's")


async def send(ada: AuthSession, messages, conversation: str, n: int) -> message_pb2.Message:
    request = message_api_pb2.SendMessageRequest(
        conversation_id=conversation,
        client_message_id=f"journey-{n}",
        content=message_pb2.MessageContent(text=f"message {n}"),
    )
    return (await ada.call(messages.SendMessage, request)).message


async def chat(ada, ada_messages, conversation, inbox: Inbox, stream, proxy, bob) -> None:
    sent: list[tuple[int, str]] = []
    for n in range(1, 6):
        message = await send(ada, ada_messages, conversation, n)
        sent.append((message.seq, message.content.text))
    # 3. An exact retry (a lost response) returns the original message, not a new one.
    again = await send(ada, ada_messages, conversation, 5)
    check(again.seq == sent[-1][0], f"the retry of message 5 made seq {again.seq}")
    await inbox.wait("the first 5 messages", lambda: len(inbox.messages) >= len(sent))
    say(f"Bob received {len(inbox.messages)} messages live; the retry was deduplicated")

    # 4. The network drops for longer than Bob's access token lives.
    opens, cursor = stream.opens, stream.cursor
    await proxy.cut()
    for n in range(6, 11):
        message = await send(ada, ada_messages, conversation, n)
        sent.append((message.seq, message.content.text))
    expires = bob.tokens.expires_at() or time.time()
    await asyncio.sleep(max(0.0, expires - time.time()) + 1.0)
    check(bob.refreshes == 0, "Bob refreshed while nothing could reach the server")
    await proxy.restore()
    say("Bob's connection cut for longer than his token lives; Ada sent 5 more; network back")
    await inbox.wait("all 10 messages after the cut", lambda: len(inbox.messages) >= len(sent))
    await asyncio.sleep(1.0)  # a duplicate would arrive by now
    check(inbox.messages == sent, f"Bob got {inbox.messages}, Ada sent {sent}")
    check(stream.opens > opens, "the stream was not reopened")
    check(bool(cursor) and stream.cursor != cursor, "the stream did not move past its cursor")
    check(bob.refreshes >= 1, "the expired token was not refreshed at reopen")
    say(f"resumed after {stream.opens - opens} reopen(s): 10 messages exactly once, in order")

    # 5. A unary call with an expired token: refreshed once, retried, answered.
    expires = bob.tokens.expires_at() or time.time()
    await asyncio.sleep(max(0.0, expires - time.time()) + 1.0)
    refreshes, before = bob.refreshes, bob.tokens
    listed = await bob.call(
        stream.messages().ListMessages,
        message_api_pb2.ListMessagesRequest(conversation_id=conversation, page_size=50),
    )
    check(bob.refreshes == refreshes + 1, "the expired token was not refreshed exactly once")
    check(bob.tokens.refresh_token != before.refresh_token, "the refresh token did not rotate")
    texts = sorted((m.seq, m.content.text) for m in listed.messages)
    check(texts == sent, f"ListMessages after the refresh: {texts}")
    say("an expired token was refreshed (rotated) and the call retried")


async def errors(ada: AuthSession, messages, conversation: str) -> None:
    """6. What docs/clients.md says about errors, as a client sees it."""
    bad = message_api_pb2.SendMessageRequest(
        conversation_id="not-a-uuid",
        client_message_id="journey-bad",
        content=message_pb2.MessageContent(text="hi"),
    )
    failure = await expect_failure(ada.call(messages.SendMessage, bad))
    check(failure.code == grpc.StatusCode.INVALID_ARGUMENT, f"a bad id: {failure}")
    check("conversation_id" in failure.fields, f"BadRequest fields {failure.fields}")
    reused = message_api_pb2.SendMessageRequest(
        conversation_id=conversation,
        client_message_id="journey-1",
        content=message_pb2.MessageContent(text="other text"),
    )
    failure = await expect_failure(ada.call(messages.SendMessage, reused))
    check(failure.reason == "IDEMPOTENCY_KEY_REUSED", f"a reused key: {failure}")
    failure = await expect_failure(
        messages.ListMessages(message_api_pb2.ListMessagesRequest(conversation_id=conversation))
    )
    check(
        (failure.code, failure.reason) == (grpc.StatusCode.UNAUTHENTICATED, "TOKEN_MISSING"),
        f"no token: {failure}",
    )
    say("errors decoded: BadRequest conversation_id, IDEMPOTENCY_KEY_REUSED, TOKEN_MISSING")


async def expect_failure(call):
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return failure_of(error)
    raise CheckFailed("the call succeeded")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--echo-bin", type=Path, default=REPO / "target/debug/echo")
    parser.add_argument("--backend", choices=("embedded", "real"), default="embedded")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    # LiveStream and AuthSession say why they reconnect and refresh: worth seeing in CI.
    logging.basicConfig(format="journey: %(name)s: %(message)s", level=logging.INFO)
    work = Path(tempfile.mkdtemp(prefix="echo-python-journey."))
    started = time.monotonic()
    try:
        asyncio.run(journey(args.echo_bin.resolve(), work, args.backend))
    except Skipped as skipped:
        print(f"journey: SKIPPED ({args.backend}): {skipped}", file=sys.stderr)
        return 0
    except (CheckFailed, grpc.aio.AioRpcError) as error:
        print(f"journey: FAIL ({args.backend}): {error}", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"journey: kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    say(f"PASS on {args.backend} backends in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
