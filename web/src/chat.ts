// The chat screen: conversation list (unread counts, presence dots), history with infinite
// scroll, sending with client ids and retry, typing, read markers, reactions, edit/delete,
// search, and the live stream's status.

import { Code, type EchoClients, echoError, LiveStream } from "@echo-chat/client";
import { ConversationType } from "@echo-chat/client/gen/echo/message/v1/conversation_pb";
import { DeleteScope } from "@echo-chat/client/gen/echo/message/v1/message_api_pb";
import { MessageState, type Message } from "@echo-chat/client/gen/echo/message/v1/message_pb";
import { PresenceStatus } from "@echo-chat/client/gen/echo/presence/v1/presence_pb";
import { clock, fill, h, uuid } from "./dom.js";
import { type Chat, Store } from "./store.js";

const RETRYABLE = new Set([Code.Unavailable, Code.Unknown, Code.Canceled, Code.DeadlineExceeded, Code.Internal]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ChatScreen {
  private readonly store: Store;
  private readonly names = new Map<string, string>();
  private readonly online = new Set<string>();
  private live!: LiveStream;
  private firstReady = true;
  private status = h("span", { class: "status", "data-testid": "live-status" }, "connecting");
  private list = h("ul", { class: "conversations" });
  private messages = h("div", { class: "messages", "data-testid": "messages" });
  private title = h("h2", { class: "title" });
  private typing = h("div", { class: "typing", "data-testid": "typing" });
  private input = h("textarea", { rows: 2, placeholder: "Message", "data-testid": "composer", disabled: true });
  private results = h("ul", { class: "results", "data-testid": "results" });
  private editing: Message | null = null;
  private lastTyping = 0;
  private loadingOlder = false;

  constructor(
    private readonly root: Element,
    private readonly api: EchoClients,
    private readonly cursor: { load(): string; save(c: string): void },
    private readonly signOut: (why: string) => void,
    backoff: { minBackoffMs?: number; maxBackoffMs?: number } = {},
  ) {
    this.store = new Store(api, api.session.current.userId);
    this.store.onChange = () => {
      this.render();
      // A conversation that arrived on the stream may name someone not seen yet.
      const peers = [...this.store.chats.values()].map((c) => c.conversation.peerUserId);
      if (peers.some((p) => p && !this.names.has(p))) void this.refreshPeople().catch(() => {});
    };
    this.layout();
    this.live = new LiveStream({
      client: api.messages,
      session: api.session,
      loadCursor: cursor.load,
      saveCursor: cursor.save,
      apply: async (item, freshStart) => {
        // Refetch on the page's first Ready (nothing is kept across reloads but the cursor),
        // on a Ready after an empty cursor, and on ResyncRequired (docs/live-client.md rule 6).
        const first = item.item.case === "ready" && (this.firstReady || freshStart);
        if (item.item.case === "ready") {
          this.firstReady = false;
          this.status.dataset.replayed = String(item.item.value.replayedCount);
        }
        await this.store.apply(item, first || item.item.case === "resyncRequired");
        if (first) await this.refreshPeople();
      },
      onState: (state, detail) => {
        this.status.textContent = detail ? `${state}: ${detail}` : state;
        this.status.dataset.state = state;
        if (state === "stopped" && detail !== "stopped") this.signOut(detail);
      },
      ...backoff,
    });
    // Back online, or a tab shown again after the laptop slept: reconnect now, not after the
    // backoff or the silence timer (a healthy stream is left alone).
    const wake = () => {
      if (this.status.dataset.state !== "live") this.live.reconnectNow();
    };
    addEventListener("online", wake);
    document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && wake());
    setInterval(() => this.refreshPeople().catch(() => {}), 20_000);
    setInterval(() => this.renderTyping(), 1_000);
  }

  stop(): void {
    this.live.stop();
  }

  private layout(): void {
    const phone = h("input", { placeholder: "+1415…", "data-testid": "new-chat-phone" });
    const search = h("input", { placeholder: "Search messages", "data-testid": "search" });
    this.messages.addEventListener("scroll", () => {
      if (this.messages.scrollTop < 40) void this.older();
    });
    this.input.addEventListener("input", () => this.typed());
    this.input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey) {
        e.preventDefault();
        void this.submit();
      }
    });
    fill(
      this.root,
      h(
        "div",
        { class: "app" },
        h(
          "aside",
          {},
          h("header", {}, h("strong", { "data-testid": "me" }, "…"), this.status,
            h("button", { class: "link", onclick: () => this.signOut("signed out") }, "Sign out")),
          h("form", { class: "new-chat", onsubmit: (e: Event) => { e.preventDefault(); void this.newChat(phone.value).then((ok) => { if (ok) phone.value = ""; }); } },
            phone, h("button", { "data-testid": "new-chat" }, "Chat")),
          h("form", { class: "search", onsubmit: (e: Event) => { e.preventDefault(); void this.search(search.value); } }, search),
          this.results,
          this.list,
        ),
        h(
          "main",
          {},
          this.title,
          this.messages,
          this.typing,
          h("form", { class: "composer", onsubmit: (e: Event) => { e.preventDefault(); void this.submit(); } },
            this.input, h("button", { "data-testid": "send" }, "Send")),
        ),
      ),
    );
    void this.api.users.getMe({}).then((r) => {
      (this.root.querySelector("[data-testid=me]") as HTMLElement).textContent = r.profile?.displayName ?? "";
    }).catch(() => {});
  }

  private name(userId: string): string {
    return this.names.get(userId) || userId.slice(0, 8);
  }

  /** Names and presence of the peers of direct conversations. */
  private async refreshPeople(): Promise<void> {
    const peers = [...this.store.chats.values()].map((c) => c.conversation.peerUserId).filter(Boolean);
    const unknown = peers.filter((p) => !this.names.has(p));
    if (unknown.length) {
      const { users } = await this.api.users.batchGetUsers({ userIds: unknown });
      users.forEach((u) => this.names.set(u.userId, u.displayName));
      unknown.filter((id) => !this.names.has(id)).forEach((id) => this.names.set(id, id.slice(0, 8)));
    }
    if (peers.length) {
      const { presences } = await this.api.presence.getPresence({ userIds: peers });
      this.online.clear();
      presences.filter((p) => p.status === PresenceStatus.ONLINE).forEach((p) => this.online.add(p.userId));
    }
    this.render();
  }

  /** Open (or create) the direct conversation with the user who has `phone`; true when open. */
  private async newChat(phone: string): Promise<boolean> {
    try {
      const { user } = await this.api.users.lookupByPhone({ phoneNumber: phone.trim() });
      if (!user) return false;
      this.names.set(user.userId, user.displayName);
      // Whoever you chat with by number is a contact, as on a phone: they may then see your
      // presence (last_seen is CONTACTS by default, docs/presence.md).
      if (!user.relationship?.contact) await this.api.users.addContact({ userId: user.userId });
      const { conversation } = await this.api.messages.createDirectConversation({ peerUserId: user.userId });
      if (!conversation) return false;
      await this.store.sync();
      await this.openChat(conversation.conversationId);
      return true;
    } catch (thrown) {
      this.status.textContent = `new chat: ${echoError(thrown).message}`;
      return false;
    }
  }

  private async openChat(id: string): Promise<void> {
    this.editing = null;
    this.input.disabled = false;
    await this.store.open(id);
    this.messages.scrollTop = this.messages.scrollHeight;
    this.input.focus();
  }

  private async older(): Promise<void> {
    if (this.loadingOlder || !this.store.openId) return;
    this.loadingOlder = true;
    try {
      await this.store.older(this.store.openId);
    } finally {
      this.loadingOlder = false;
    }
  }

  private typed(): void {
    const id = this.store.openId;
    if (!id || Date.now() - this.lastTyping < 4_000) return;
    this.lastTyping = Date.now();
    void this.api.messages.setTyping({ conversationId: id, typing: true }).catch(() => {});
  }

  private async submit(): Promise<void> {
    const chat = this.store.chats.get(this.store.openId);
    const text = this.input.value.trim();
    if (!chat || !text) return;
    this.input.value = "";
    this.lastTyping = 0;
    if (this.editing) {
      const message = this.editing;
      this.editing = null;
      await this.act(() => this.api.messages.editMessage({
        conversationId: message.conversationId, messageId: message.messageId,
        content: { text }, updateMask: { paths: ["text"] },
      }));
      return;
    }
    const clientId = uuid();
    chat.pending.set(clientId, { clientId, text, failed: false });
    this.render();
    await this.deliver(chat, clientId);
  }

  /** Send a pending message until the server has it: the same client id makes retries safe. */
  private async deliver(chat: Chat, clientId: string): Promise<void> {
    const pending = chat.pending.get(clientId);
    if (!pending) return;
    pending.failed = false;
    for (let attempt = 0; attempt < 8; attempt++) {
      try {
        const { message } = await this.api.messages.sendMessage({
          conversationId: chat.conversation.conversationId,
          clientMessageId: clientId,
          content: { text: pending.text },
        });
        if (message) this.store.put(chat, message);
        this.render();
        return;
      } catch (thrown) {
        const error = echoError(thrown);
        if (!RETRYABLE.has(error.code) && error.code !== Code.ResourceExhausted) break;
        await sleep(error.retryDelayMs ?? Math.min(8_000, 500 * 2 ** attempt) * (0.5 + Math.random() / 2));
      }
    }
    pending.failed = true;
    this.render();
  }

  private async act(call: () => Promise<unknown>): Promise<void> {
    try {
      await call();
    } catch (thrown) {
      this.status.textContent = echoError(thrown).message;
    }
  }

  private async search(query: string): Promise<void> {
    if (!query.trim()) return fill(this.results);
    try {
      const { results } = await this.api.messages.searchMessages({ query, pageSize: 20 });
      fill(this.results, ...results.map((r) => h("li", {
        "data-testid": "result",
        onclick: () => { fill(this.results); void this.openChat(r.message?.conversationId ?? ""); },
      }, r.snippet || r.message?.content?.text || "")));
      if (!results.length) fill(this.results, h("li", { class: "empty" }, "No results"));
    } catch (thrown) {
      fill(this.results, h("li", { class: "error" }, echoError(thrown).message));
    }
  }

  private render(): void {
    const chats = [...this.store.chats.values()].sort((a, b) =>
      Number((b.conversation.lastActivityAt?.seconds ?? 0n) - (a.conversation.lastActivityAt?.seconds ?? 0n)));
    fill(this.list, ...chats.map((chat) => this.row(chat)));
    const chat = this.store.chats.get(this.store.openId);
    if (!chat) return;
    this.title.textContent = this.chatTitle(chat);
    const box = this.messages;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    const fromBottom = box.scrollHeight - box.scrollTop;
    const rows = this.store.sorted(chat).map((m) => this.bubble(chat, m));
    const pending = [...chat.pending.values()].map((p) =>
      h("div", { class: `message mine pending${p.failed ? " failed" : ""}`, "data-testid": "pending" },
        h("span", { class: "text" }, p.text),
        p.failed ? h("button", { class: "link", onclick: () => void this.deliver(chat, p.clientId) }, "not sent — retry") : h("small", {}, "sending…")));
    fill(box, chat.hasMoreBefore ? h("div", { class: "more" }, "…") : null, ...rows, ...pending);
    box.scrollTop = atBottom ? box.scrollHeight : box.scrollHeight - fromBottom;
    // A first page that does not fill the pane cannot be scrolled: load more at once.
    if (chat.loaded && chat.hasMoreBefore && box.scrollHeight <= box.clientHeight + 40) void this.older();
    this.renderTyping();
  }

  private renderTyping(): void {
    const chat = this.store.chats.get(this.store.openId);
    const now = Date.now();
    const who = chat ? [...chat.typing].filter(([, until]) => until > now).map(([id]) => this.name(id)) : [];
    this.typing.textContent = who.length ? `${who.join(", ")} typing…` : "";
  }

  private chatTitle(chat: Chat): string {
    const c = chat.conversation;
    return c.type === ConversationType.DIRECT ? this.name(c.peerUserId) : c.title || "Group";
  }

  private row(chat: Chat): HTMLElement {
    const c = chat.conversation;
    const peer = c.peerUserId;
    return h("li", {
      class: c.conversationId === this.store.openId ? "open" : "",
      "data-testid": "conversation", "data-id": c.conversationId,
      onclick: () => void this.openChat(c.conversationId),
    },
    h("span", { class: `dot${peer && this.online.has(peer) ? " online" : ""}`, "data-testid": "presence" }),
    h("span", { class: "name" }, this.chatTitle(chat)),
    h("span", { class: "preview" }, c.lastMessage?.content?.text ?? ""),
    chat.unread > 0 ? h("span", { class: "badge", "data-testid": "unread" }, String(chat.unread)) : null);
  }

  private bubble(chat: Chat, m: Message): HTMLElement {
    const mine = m.senderUserId === this.store.me;
    const deleted = m.state !== MessageState.ACTIVE;
    const id = { conversationId: m.conversationId, messageId: m.messageId };
    const ticks = mine ? (chat.peerRead >= m.seq ? "✓✓ read" : chat.peerDelivered >= m.seq ? "✓✓" : "✓") : "";
    return h("div", { class: `message${mine ? " mine" : ""}${deleted ? " deleted" : ""}`, "data-testid": "message", "data-seq": String(m.seq) },
      mine ? null : h("small", { class: "from" }, this.name(m.senderUserId)),
      h("span", { class: "text" }, deleted ? "message deleted" : m.content?.text ?? ""),
      h("small", { class: "meta" }, clock(m.createdAt), m.editCount > 0 ? " · edited" : "", ticks ? ` · ${ticks}` : ""),
      m.reactions.length ? h("div", { class: "reactions" }, ...m.reactions.map((r) =>
        h("span", { class: r.reactedByMe ? "mine" : "" }, `${r.emoji} ${r.count}`))) : null,
      deleted ? null : h("div", { class: "actions" },
        h("button", { class: "link", "data-testid": "react", onclick: () => {
          const mineAlready = m.reactions.some((r) => r.emoji === "👍" && r.reactedByMe);
          void this.act(() => mineAlready
            ? this.api.messages.removeReaction({ ...id, emoji: "👍" })
            : this.api.messages.addReaction({ ...id, emoji: "👍" }));
        } }, "👍"),
        mine ? h("button", { class: "link", "data-testid": "edit", onclick: () => {
          this.editing = m;
          this.input.value = m.content?.text ?? "";
          this.input.focus();
        } }, "edit") : null,
        mine ? h("button", { class: "link", "data-testid": "delete", onclick: () =>
          void this.act(() => this.api.messages.deleteMessage({ ...id, scope: DeleteScope.FOR_EVERYONE })) }, "delete") : null));
  }
}
