// Auth refresh: one session's tokens, an interceptor that puts the access token on every call,
// and one refresh at a time when the token is about to expire or a call says TOKEN_EXPIRED
// (docs/auth.md). Refresh tokens rotate: two refreshes racing with the same refresh token would
// revoke the session (reuse detection), hence the single flight.

import { Code, createClient, type Interceptor, type Transport } from "@connectrpc/connect";
import { AuthService, type TokenPair } from "./gen/echo/auth/v1/auth_pb.js";
import { echoError } from "./errors.js";

/** Tokens as a browser or app stores them between runs (JSON-safe). */
export interface StoredTokens {
  accessToken: string;
  /** Unix milliseconds. */
  accessExpiresAt: number;
  /** When the access token was received (Unix ms): its lifetime sets how early to refresh. */
  accessReceivedAt: number;
  refreshToken: string;
  sessionId: string;
  deviceId: string;
  userId: string;
}

/** Convert a TokenPair from a sign-in or RefreshTokens into StoredTokens. */
export function storedTokens(pair: TokenPair): StoredTokens {
  const expires = pair.accessTokenExpiresAt;
  return {
    accessToken: pair.accessToken,
    accessExpiresAt: expires ? Number(expires.seconds) * 1000 + expires.nanos / 1e6 : 0,
    accessReceivedAt: Date.now(),
    refreshToken: pair.refreshToken,
    sessionId: pair.sessionId,
    deviceId: pair.deviceId,
    userId: pair.userId,
  };
}

/**
 * Refresh this long before the access token expires, so a call rarely meets an expired one:
 * 30 s, or a quarter of the token's lifetime when that is shorter.
 */
function earlyMs(tokens: StoredTokens): number {
  const lifetime = tokens.accessExpiresAt - (tokens.accessReceivedAt ?? 0);
  return Math.min(30_000, Math.max(0, lifetime / 4));
}

/** Thrown when the session is over (revoked, refresh token expired): sign in again. */
export class SignedOut extends Error {
  constructor(reason: string) {
    super(`signed out: ${reason}`);
    this.name = "SignedOut";
  }
}

/**
 * A signed-in session. `interceptor` goes on the transport that carries the other services;
 * `authTransport` (without it) carries RefreshTokens itself.
 */
export class Session {
  private tokens: StoredTokens;
  private refreshing: Promise<void> | null = null;
  private readonly auth;

  constructor(
    tokens: StoredTokens,
    authTransport: Transport,
    private readonly onChange: (tokens: StoredTokens | null) => void = () => {},
  ) {
    this.tokens = tokens;
    this.auth = createClient(AuthService, authTransport);
  }

  /** The current tokens. */
  get current(): StoredTokens {
    return this.tokens;
  }

  /** Refresh now, or join the refresh already under way (one at a time). */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    try {
      const response = await this.auth.refreshTokens({ refreshToken: this.tokens.refreshToken });
      if (!response.tokens) throw new Error("RefreshTokens answered without tokens");
      this.tokens = storedTokens(response.tokens);
      this.onChange(this.tokens);
    } catch (thrown) {
      const error = echoError(thrown);
      if (error.code === Code.Unauthenticated || error.code === Code.NotFound) {
        this.onChange(null);
        throw new SignedOut(error.reason || error.message);
      }
      throw thrown;
    }
  }

  /** The access token, refreshed first when it is about to expire (`earlyMs`). */
  async accessToken(): Promise<string> {
    if (this.tokens.accessExpiresAt - Date.now() < earlyMs(this.tokens)) await this.refresh();
    return this.tokens.accessToken;
  }

  /**
   * Adds `authorization`; a unary call refused with UNAUTHENTICATED `TOKEN_EXPIRED` (a clock
   * skew, a laptop that slept) is retried once after a refresh. Streams are not retried here:
   * their loop (live.ts) decides.
   */
  readonly interceptor: Interceptor = (next) => async (request) => {
    const token = await this.accessToken();
    request.header.set("authorization", `Bearer ${token}`);
    try {
      return await next(request);
    } catch (thrown) {
      const error = echoError(thrown);
      if (request.stream || error.code !== Code.Unauthenticated || error.reason !== "TOKEN_EXPIRED") {
        throw thrown;
      }
      await this.refresh();
      request.header.set("authorization", `Bearer ${this.tokens.accessToken}`);
      return await next(request);
    }
  };
}
