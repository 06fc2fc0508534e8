// The chat's state and how stream items change it (docs/live-client.md rules 2-6): each
// conversation remembers the last seq it applied; a replayed or already-fetched event is
// dropped, a jump in seqs in an open conversation fetches the gap, and everything is keyed by
// message id so a message fetched and then delivered is shown once.

import type { EchoClients } from "@echo-chat/client";
import type { Conversation } from "@echo-chat/client/gen/echo/message/v1/conversation_pb";
import type { ConversationEvent } from "@echo-chat/client/gen/echo/message/v1/conversation_event_pb";
import { ArchiveFilter } from "@echo-chat/client/gen/echo/message/v1/conversation_api_pb";
import type { SubscribeResponse } from "@echo-chat/client/gen/echo/message/v1/live_pb";
import { MessageState, type Message } from "@echo-chat/client/gen/echo/message/v1/message_pb";
import type { UserEvent } from "@echo-chat/client/gen/echo/message/v1/user_event_pb";

/** A message being sent: shown greyed until the server has it, retried with the same id. */
export interface Pending {
  clientId: string;
  text: string;
  failed: boolean;
}

/** What the app knows of one conversation. */
export interface Chat {
  conversation: Conversation;
  /** Highest seq applied from the stream or a fetch. */
  applied: bigint;
  /** History loaded (opened at least once): events then apply to `messages`, gaps are fetched. */
  loaded: boolean;
  messages: Map<string, Message>;
  hasMoreBefore: boolean;
  pending: Map<string, Pending>;
  unread: number;
  /** user id → when their typing indicator lapses (ms). */
  typing: Map<string, number>;
  /** The other members' highest read seq (read markers). */
  peerRead: bigint;
  peerDelivered: bigint;
}

const PAGE = 30;

export class Store {
  readonly chats = new Map<string, Chat>();
  /** Called after every change; the view re-renders. */
  onChange: () => void = () => {};
  /** The conversation on screen (its messages count as read). */
  openId = "";

  constructor(
    private readonly api: EchoClients,
    readonly me: string,
  ) {}

  private chat(conversation: Conversation): Chat {
    let chat = this.chats.get(conversation.conversationId);
    if (!chat) {
      chat = {
        conversation,
        applied: conversation.lastSeq,
        loaded: false,
        messages: new Map(),
        hasMoreBefore: true,
        pending: new Map(),
        unread: conversation.myState?.unreadCount ?? 0,
        typing: new Map(),
        peerRead: 0n,
        peerDelivered: 0n,
      };
      this.chats.set(conversation.conversationId, chat);
    }
    return chat;
  }

  /** Every conversation afresh (first Ready of a page, ResyncRequired), then the open one's latest page. */
  async sync(): Promise<void> {
    let pageToken = "";
    do {
      const page = await this.api.messages.listConversations({
        pageSize: 100,
        pageToken,
        archiveFilter: ArchiveFilter.ALL,
      });
      for (const conversation of page.conversations) {
        const chat = this.chat(conversation);
        chat.conversation = conversation;
        chat.unread = conversation.myState?.unreadCount ?? 0;
        if (conversation.lastSeq > chat.applied) {
          chat.applied = conversation.lastSeq;
          // Events were missed (a resync): a conversation not on screen reloads when opened.
          if (chat.loaded && conversation.conversationId !== this.openId) {
            chat.loaded = false;
            chat.messages.clear();
          }
        }
      }
      pageToken = page.nextPageToken;
    } while (pageToken);
    const open = this.chats.get(this.openId);
    if (open?.loaded) await this.fetchAfter(open, 0n, true);
    this.onChange();
  }

  /** Load the latest page of a conversation shown for the first time. */
  async open(conversationId: string): Promise<void> {
    this.openId = conversationId;
    const chat = this.chats.get(conversationId);
    if (!chat) return;
    if (!chat.loaded) {
      const page = await this.api.messages.listMessages({ conversationId, pageSize: PAGE });
      page.messages.forEach((m) => this.put(chat, m));
      chat.hasMoreBefore = page.hasMoreBefore;
      chat.loaded = true;
    }
    // Receipts and read markers are not replayed: read them for the conversation on screen.
    const { receipts } = await this.api.messages.listReceipts({ conversationId, pageSize: 100 });
    for (const r of receipts.filter((r) => r.userId !== this.me)) {
      if (r.lastReadSeq > chat.peerRead) chat.peerRead = r.lastReadSeq;
      if (r.deliveredUpToSeq > chat.peerDelivered) chat.peerDelivered = r.deliveredUpToSeq;
    }
    await this.markRead(chat);
    this.onChange();
  }

  /** Infinite scroll: the page before the oldest message shown. */
  async older(conversationId: string): Promise<boolean> {
    const chat = this.chats.get(conversationId);
    if (!chat?.loaded || !chat.hasMoreBefore) return false;
    const oldest = this.sorted(chat)[0]?.seq ?? chat.applied + 1n;
    if (oldest <= 1n) return (chat.hasMoreBefore = false);
    const page = await this.api.messages.listMessages({
      conversationId,
      anchor: { case: "beforeSeq", value: oldest },
      pageSize: PAGE,
    });
    page.messages.forEach((m) => this.put(chat, m));
    chat.hasMoreBefore = page.hasMoreBefore && page.messages.length > 0;
    this.onChange();
    return page.messages.length > 0;
  }

  /** Messages in seq order. */
  sorted(chat: Chat): Message[] {
    return [...chat.messages.values()].sort((a, b) => (a.seq < b.seq ? -1 : a.seq > b.seq ? 1 : 0));
  }

  /** Show `message` (from a fetch, a send's answer or an event); replaces its pending copy. */
  put(chat: Chat, message: Message): void {
    chat.messages.set(message.messageId, message);
    if (message.clientMessageId) chat.pending.delete(message.clientMessageId);
  }

  /** Fetch every message after `after` (a gap, or a resync of the open conversation). */
  private async fetchAfter(chat: Chat, after: bigint, latestOnly = false): Promise<void> {
    const conversationId = chat.conversation.conversationId;
    if (latestOnly) {
      const page = await this.api.messages.listMessages({ conversationId, pageSize: PAGE });
      page.messages.forEach((m) => this.put(chat, m));
      return;
    }
    let pageToken = "";
    do {
      const page = await this.api.messages.listMessages({
        conversationId,
        anchor: { case: "afterSeq", value: after },
        pageSize: 100,
        pageToken,
      });
      page.messages.forEach((m) => this.put(chat, m));
      pageToken = page.nextPageToken;
    } while (pageToken);
  }

  async markRead(chat: Chat): Promise<void> {
    const last = chat.applied;
    if (last <= 0n || chat.unread === 0) return;
    const response = await this.api.messages.markRead({
      conversationId: chat.conversation.conversationId,
      lastReadSeq: last,
    });
    chat.unread = response.unreadCount;
  }

  /** Apply one stream item (awaited by the Subscribe loop, in order). */
  async apply(item: SubscribeResponse, firstReady: boolean): Promise<void> {
    switch (item.item.case) {
      case "conversationEvent":
        await this.conversationEvent(item.item.value);
        break;
      case "userEvent":
        await this.userEvent(item.item.value);
        break;
      case "typingUpdate": {
        const t = item.item.value;
        const chat = this.chats.get(t.conversationId);
        if (!chat) break;
        if (t.typing) chat.typing.set(t.userId, Number(t.expiresAt?.seconds ?? 0n) * 1000);
        else chat.typing.delete(t.userId);
        break;
      }
      case "readMarkerUpdate": {
        const chat = this.chats.get(item.item.value.conversationId);
        if (chat && item.item.value.lastReadSeq > chat.peerRead) chat.peerRead = item.item.value.lastReadSeq;
        break;
      }
      case "receiptUpdate": {
        const chat = this.chats.get(item.item.value.conversationId);
        const seq = item.item.value.deliveredUpToSeq;
        if (chat && seq > chat.peerDelivered) chat.peerDelivered = seq;
        break;
      }
      case "resyncRequired":
        await this.sync();
        break;
      case "ready":
        if (firstReady) await this.sync();
        break;
    }
    this.onChange();
  }

  private async conversationEvent(event: ConversationEvent): Promise<void> {
    let chat = this.chats.get(event.conversationId);
    if (!chat) {
      // New to this page (created by someone else, or we were added): its snapshot is current
      // up to its last_seq, unread count included, so only later events apply.
      const { conversation } = await this.api.messages.getConversation({ conversationId: event.conversationId });
      if (!conversation) return;
      chat = this.chat(conversation);
    }
    if (event.seq <= chat.applied) return; // replayed, or fetched already
    if (chat.loaded && event.seq > chat.applied + 1n) await this.fetchAfter(chat, chat.applied);
    chat.applied = event.seq;
    chat.conversation.lastSeq = event.seq;
    const kind = event.kind;
    switch (kind.case) {
      case "messageCreated":
      case "messageEdited": {
        const message = kind.value.message;
        if (!message) break;
        if (chat.loaded) this.put(chat, message);
        else if (message.clientMessageId) chat.pending.delete(message.clientMessageId);
        if (kind.case === "messageCreated") {
          chat.conversation.lastMessage = message;
          if (message.senderUserId !== this.me) {
            chat.typing.delete(message.senderUserId);
            chat.unread += 1;
            void this.api.messages
              .markDelivered({ conversationId: event.conversationId, upToSeq: event.seq })
              .catch(() => {});
            if (this.openId === event.conversationId && document.visibilityState === "visible") {
              await this.markRead(chat).catch(() => {});
            }
          }
        }
        break;
      }
      case "messageDeleted": {
        const message = chat.messages.get(kind.value.messageId);
        if (message) {
          message.state = MessageState.DELETED_FOR_EVERYONE;
          message.content = undefined;
        }
        break;
      }
      case "messagesExpired": {
        // Disappearing messages and retention (docs/lifecycle.md): erased like a delete
        // for everyone, so they show as the same tombstone.
        for (const { messageId } of kind.value.messages) {
          const message = chat.messages.get(messageId);
          if (message) {
            message.state = MessageState.DELETED_FOR_EVERYONE;
            message.content = undefined;
          }
        }
        break;
      }
      case "reactionAdded":
      case "reactionRemoved": {
        const message = chat.messages.get(kind.value.messageId);
        if (!message) break;
        const { emoji, count, userId } = kind.value;
        let entry = message.reactions.find((r) => r.emoji === emoji);
        if (!entry) {
          entry = { $typeName: "echo.message.v1.ReactionCount", emoji, count: 0, reactedByMe: false };
          message.reactions.push(entry);
        }
        entry.count = count;
        if (userId === this.me) entry.reactedByMe = kind.case === "reactionAdded";
        message.reactions = message.reactions.filter((r) => r.count > 0);
        break;
      }
      case "conversationUpdated":
      case "conversationCreated":
        if (kind.value.conversation) {
          // Event snapshots carry no caller-relative fields: keep ours.
          const { myState, lastSeq, peerUserId, lastMessage } = chat.conversation;
          chat.conversation = { ...kind.value.conversation, myState, lastSeq, peerUserId, lastMessage };
        }
        break;
    }
  }

  private async userEvent(event: UserEvent): Promise<void> {
    const kind = event.kind;
    switch (kind.case) {
      case "readMarkerMoved": {
        const chat = this.chats.get(kind.value.conversationId);
        if (chat) chat.unread = kind.value.unreadCount;
        break;
      }
      case "conversationJoined":
        if (kind.value.conversation) this.chat(kind.value.conversation);
        break;
      case "conversationLeft":
        this.chats.delete(kind.value.conversationId);
        break;
      case "messageDeletedForMe": {
        const chat = this.chats.get(kind.value.conversationId);
        chat?.messages.delete(kind.value.messageId);
        if (chat) chat.unread = kind.value.unreadCount;
        break;
      }
    }
  }
}
