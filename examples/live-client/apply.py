"""Applying Subscribe items to the local state: dedupe, gap fill, resync.

The rules (Subscribe contract points 3-5):
- conversation events are deduped by (conversation_id, seq), user events by seq: a seq at or
  below the last applied one is dropped;
- a conversation seq that jumps (we hold 40, 43 arrives) means something is missing: fetch it
  with ListMessages(after_seq=40) before applying 43;
- ResyncRequired (or a first launch, with no cursor) means the local state is stale: refetch
  ListConversations, then ListMessages for each conversation, then go on with the stream;
- the cursor that came with an item is saved only after its effect is saved.

Message snapshots are read by the server when they are sent, so a message fetched at seq 57
already reflects every event of its conversation committed before it: after fetching through
a seq, every event at or below it is applied, and later copies of them are dropped.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO

import grpc
from echo.message.v1 import conversation_api_pb2, live_pb2, message_api_pb2
from echo_client import failure_of

from state import StateFile

log = logging.getLogger("live-client")

PAGE_SIZE = 200  # the largest page ListMessages / ListConversations serve

Unary = Callable[[Callable, object], Awaitable]


class Applier:
    """Applies Subscribe items (and what they make it fetch) to a StateFile, printing every
    applied message as one JSON line."""

    def __init__(self, unary: Unary, store: StateFile, out: TextIO = sys.stdout) -> None:
        self.unary = unary
        self.store = store
        self.state = store.state
        self.out = out
        self.messages = None  # the MessageService stub; set by the stream loop per connection

    @property
    def my_user_id(self) -> str:
        return self.state.tokens.user_id if self.state.tokens else ""

    async def apply(self, response, fresh_start: bool) -> None:
        """Applies one item, then saves its cursor. `fresh_start`: the stream was opened with
        no cursor, so Ready must be followed by a full refetch."""
        kind = response.WhichOneof("item")
        if kind == "conversation_event":
            await self._conversation_event(response.conversation_event)
        elif kind == "user_event":
            await self._user_event(response.user_event)
        elif kind == "resync_required":
            reason = live_pb2.ResyncReason.Name(response.resync_required.reason)
            log.warning("resync required reason=%s: refetching conversations and messages", reason)
            await self.full_sync(user_events_lost=True)
        elif kind == "ready":
            if fresh_start:
                await self.full_sync(user_events_lost=True)
            log.info("stream ready replayed=%d", response.ready.replayed_count)
        elif kind == "typing_update":
            typing = response.typing_update
            log.debug(
                "typing conversation=%s user=%s typing=%s",
                typing.conversation_id,
                typing.user_id,
                typing.typing,
            )
        elif kind in ("receipt_update", "read_marker_update", "heartbeat"):
            log.debug("%s", kind)
        if response.cursor:
            self.state.cursor = response.cursor
            self.store.save()

    async def _conversation_event(self, event) -> None:
        conversation, seq = event.conversation_id, event.seq
        last = self.state.conversations.get(conversation)
        if last is not None and seq <= last:
            log.debug("duplicate conversation=%s seq=%d (have %d)", conversation, seq, last)
            return
        if last is None and (seq == 1 or self._is_my_join(event)):
            # Our history of this conversation starts with this very event.
            last = seq - 1
        elif last is None or seq > last + 1:
            log.warning("gap conversation=%s have=%s got=%d: fetching", conversation, last, seq)
            if not await self._fetch_after(conversation, last or 0):
                return
            # Event `seq` committed before the fetch began, so the fetch saw it and all before.
            self._advance(conversation, seq - 1)
            last = self.state.conversations[conversation]
            if seq <= last:
                return
        self._apply_conversation_event(event)
        self._advance(conversation, seq)

    def _apply_conversation_event(self, event) -> None:
        kind = event.WhichOneof("kind")
        if kind == "message_created":
            self._print(event.message_created.message)
        elif kind == "message_edited":
            message = event.message_edited.message
            log.info(
                "edited conversation=%s seq=%d edit_count=%d",
                message.conversation_id,
                message.seq,
                message.edit_count,
            )
        else:
            log.info("event conversation=%s seq=%d kind=%s", event.conversation_id, event.seq, kind)

    def _is_my_join(self, event) -> bool:
        return (
            event.WhichOneof("kind") == "member_joined"
            and event.member_joined.member.user_id == self.my_user_id
        )

    async def _user_event(self, event) -> None:
        last = self.state.user_seq
        if last is not None and event.seq <= last:
            log.debug("duplicate user event seq=%d (have %d)", event.seq, last)
            return
        kind = event.WhichOneof("kind")
        if kind == "conversation_joined":
            joined = event.conversation_joined
            conversation = joined.conversation.conversation_id
            # Nothing before the join is ours to see; keep what we have if it is further.
            self._advance(conversation, joined.joined_at_seq - 1)
            log.info("joined conversation=%s at seq=%d", conversation, joined.joined_at_seq)
        elif kind == "conversation_left":
            left = event.conversation_left
            self.state.conversations.pop(left.conversation_id, None)
            log.info("left conversation=%s at seq=%d", left.conversation_id, left.left_at_seq)
        else:
            log.info("user event seq=%d kind=%s", event.seq, kind)
        self.state.user_seq = event.seq
        if last is not None and event.seq > last + 1:
            # User events cannot be listed; the conversation list is what they change.
            log.warning(
                "gap in user events have=%d got=%d: refetching conversations", last, event.seq
            )
            await self.full_sync()

    async def full_sync(self, user_events_lost: bool = False) -> None:
        """Refetches the conversation list, then each conversation's messages after the last
        applied seq (the latest page for a conversation seen for the first time).
        `user_events_lost`: the stream will not deliver the user events since our last one, so
        the next one is no gap (the refetch covers what they changed)."""
        if user_events_lost:
            self.state.user_seq = None
        listed = {}
        request = conversation_api_pb2.ListConversationsRequest(
            page_size=PAGE_SIZE,
            archive_filter=conversation_api_pb2.ARCHIVE_FILTER_ALL,
        )
        while True:
            page = await self.unary(self.messages.ListConversations, request)
            for conversation in page.conversations:
                # Keyset paging may list a conversation twice while it moves: keep the newest.
                seen = listed.get(conversation.conversation_id)
                if seen is None or conversation.last_seq > seen.last_seq:
                    listed[conversation.conversation_id] = conversation
            if not page.next_page_token:
                break
            request.page_token = page.next_page_token
        for conversation_id, conversation in listed.items():
            known = self.state.conversations.get(conversation_id)
            if await self._fetch_after(conversation_id, known):
                # Read before the fetch: every event up to it is reflected in what we fetched.
                self._advance(conversation_id, conversation.last_seq)
        # Known but not listed: left or removed meanwhile, or skipped by the paging. The
        # fetch tells which (NOT_FOUND forgets it; otherwise it catches up).
        for conversation_id in [c for c in self.state.conversations if c not in listed]:
            await self._fetch_after(conversation_id, self.state.conversations[conversation_id])
        self.store.save()
        log.info("refetched conversations=%d", len(listed))

    async def _fetch_after(self, conversation_id: str, after: int | None) -> bool:
        """Prints the messages after seq `after` (all pages), or the latest page when `after`
        is None. False when the conversation is no longer ours."""
        request = message_api_pb2.ListMessagesRequest(
            conversation_id=conversation_id, page_size=PAGE_SIZE
        )
        if after is not None:
            request.after_seq = after
        while True:
            try:
                page = await self.unary(self.messages.ListMessages, request)
            except grpc.aio.AioRpcError as error:
                if failure_of(error).reason == "CONVERSATION_NOT_FOUND":
                    log.info("conversation=%s is gone (left or removed)", conversation_id)
                    self.state.conversations.pop(conversation_id, None)
                    return False
                raise
            for message in page.messages:
                if self._print(message):
                    self.store.save()
            # The latest page is enough for a conversation new to this device.
            if after is None or not page.next_page_token:
                return True
            request.page_token = page.next_page_token

    def _print(self, message) -> bool:
        """Prints a message unless its seq was applied already; True if it printed."""
        conversation, seq = message.conversation_id, message.seq
        last = self.state.conversations.get(conversation)
        if last is not None and seq <= last:
            return False
        line = {"conversation_id": conversation, "seq": seq, "text": message.content.text}
        self.out.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.out.flush()
        self._advance(conversation, seq)
        return True

    def _advance(self, conversation_id: str, seq: int) -> None:
        current = self.state.conversations.get(conversation_id, 0)
        self.state.conversations[conversation_id] = max(current, seq)
