// The Subscribe loop of docs/live-client.md: resume from the last cursor after any drop, with
// the reconnect policy of rule 9 (RESUME at once, SHUTTING_DOWN after RetryInfo, backoff with
// full jitter otherwise), a silence timer (rule 7), and a stop on STREAM_REPLACED or sign-out.
// Applying items (dedupe by seq, gap fill, refetch) is the caller's: `apply` is awaited for
// each item in order, and its cursor saved only after it returns.

import { Code, type Client } from "@connectrpc/connect";
import type { MessageService } from "./gen/echo/message/v1/message_service_pb.js";
import type { SubscribeResponse } from "./gen/echo/message/v1/live_pb.js";
import { echoError } from "./errors.js";
import { type Session, SignedOut } from "./session.js";

/** Where the stream stands, for a status line. */
export type LiveState = "connecting" | "live" | "waiting" | "stopped";

/** Why the loop ended. */
export type LiveEnd = "stopped" | "signed_out" | "replaced";

/** What the loop needs from the app. */
export interface LiveOptions {
  client: Client<typeof MessageService>;
  session: Session;
  /** The saved cursor ("" for none). */
  loadCursor(): string;
  /** Persist a cursor, after its item was applied. */
  saveCursor(cursor: string): void;
  /** Apply one item; `freshStart` when this stream began without a cursor (refetch on Ready). */
  apply(item: SubscribeResponse, freshStart: boolean): Promise<void> | void;
  onState?(state: LiveState, detail: string): void;
  /** Backoff bounds (ms); tests shorten them. */
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

const DEFAULT_SILENCE_MS = 40_000;

/** Keeps one Subscribe stream open until `stop()` or an ending that forbids reconnecting. */
export class LiveStream {
  private abort: AbortController | null = null;
  private stopped = false;
  private wake: (() => void) | null = null;
  private immediate = false;
  private silenceMs = DEFAULT_SILENCE_MS;
  /** Resolves with why the loop ended. */
  readonly done: Promise<LiveEnd>;

  constructor(private readonly options: LiveOptions) {
    this.done = this.run();
  }

  /** End the stream for good. */
  stop(): void {
    this.stopped = true;
    this.abort?.abort();
    this.wake?.();
  }

  /** Drop the current connection (if any) and reconnect now: on `online`, on a visible tab. */
  reconnectNow(): void {
    this.immediate = true;
    this.abort?.abort();
    this.wake?.();
  }

  private state(state: LiveState, detail = ""): void {
    this.options.onState?.(state, detail);
  }

  private async run(): Promise<LiveEnd> {
    const min = this.options.minBackoffMs ?? 500;
    const max = this.options.maxBackoffMs ?? 30_000;
    let attempt = 0;
    while (!this.stopped) {
      let delayMs = 0;
      try {
        if (await this.once()) attempt = 0;
        delayMs = Math.random() * min; // the server ended a healthy stream: come back soon
      } catch (thrown) {
        if (this.stopped) break;
        if (thrown instanceof SignedOut) return this.end("signed_out");
        const error = echoError(thrown);
        if (error.code === Code.Unauthenticated && error.reason === "TOKEN_EXPIRED") {
          try {
            await this.options.session.refresh();
          } catch (refresh) {
            if (refresh instanceof SignedOut) return this.end("signed_out");
          }
          continue;
        }
        if (error.code === Code.Unauthenticated) return this.end("signed_out");
        if (error.code === Code.FailedPrecondition && error.reason === "STREAM_REPLACED") {
          return this.end("replaced");
        }
        if (error.code === Code.InvalidArgument && error.violations.some((v) => v.startsWith("cursor"))) {
          this.options.saveCursor(""); // not this server's cursor: start over (and refetch)
          continue;
        }
        if (error.reason === "RESUME") delayMs = 0;
        else if (error.reason === "SHUTTING_DOWN" && error.retryDelayMs !== undefined) {
          delayMs = error.retryDelayMs * (1 + Math.random());
        } else {
          delayMs = Math.random() * Math.min(max, min * 2 ** attempt++);
        }
        this.state("waiting", `${error.message || "disconnected"}; retrying in ${Math.round(delayMs)} ms`);
      }
      if (this.immediate) {
        this.immediate = false;
        delayMs = 0;
      }
      await this.sleep(delayMs);
    }
    return this.end("stopped");
  }

  private end(why: LiveEnd): LiveEnd {
    this.state("stopped", why);
    return why;
  }

  /** One stream, until it ends; true when it delivered anything (resets the backoff). */
  private async once(): Promise<boolean> {
    const abort = new AbortController();
    this.abort = abort;
    const cursor = this.options.loadCursor();
    let delivered = false;
    let timer = setTimeout(() => abort.abort(), this.silenceMs);
    this.state("connecting", cursor ? "resuming" : "");
    try {
      const stream = this.options.client.subscribe({ cursor }, { signal: abort.signal });
      for await (const item of stream) {
        clearTimeout(timer);
        timer = setTimeout(() => abort.abort(), this.silenceMs);
        delivered = true;
        if (item.item.case === "heartbeat") {
          const seconds = Number(item.item.value.interval?.seconds ?? 20n);
          this.silenceMs = 2 * seconds * 1000;
        }
        await this.options.apply(item, cursor === "");
        if (item.cursor) this.options.saveCursor(item.cursor);
        if (item.item.case === "ready") this.state("live");
      }
      return delivered;
    } finally {
      clearTimeout(timer);
      if (this.abort === abort) this.abort = null;
    }
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = null;
        done();
      };
    });
  }
}
