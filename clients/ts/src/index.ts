// Echo's TypeScript client: generated stubs (./gen, protoc-gen-es) and two helpers — a
// session that refreshes its tokens one refresh at a time, and a Subscribe loop that resumes
// from its cursor. `connect` wires both onto a grpc-web transport for a browser.

import { createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { AuthService } from "./gen/echo/auth/v1/auth_pb.js";
import { MessageService } from "./gen/echo/message/v1/message_service_pb.js";
import { PresenceService } from "./gen/echo/presence/v1/presence_pb.js";
import { UserService } from "./gen/echo/user/v1/user_pb.js";
import { Session, type StoredTokens } from "./session.js";

export { Code, ConnectError } from "@connectrpc/connect";
export { echoError, type EchoError } from "./errors.js";
export { LiveStream, type LiveEnd, type LiveOptions, type LiveState } from "./live.js";
export { Session, SignedOut, storedTokens, type StoredTokens } from "./session.js";

/** The services' clients over grpc-web at `baseUrl` (e.g. `https://echo.example`). */
export interface EchoClients {
  auth: Client<typeof AuthService>;
  users: Client<typeof UserService>;
  messages: Client<typeof MessageService>;
  presence: Client<typeof PresenceService>;
  session: Session;
}

/** An AuthService client without a session: sign up, sign in. */
export function authClient(baseUrl: string): Client<typeof AuthService> {
  return createClient(AuthService, createGrpcWebTransport({ baseUrl }));
}

/** Every client for a signed-in session; `onTokens` persists refreshed tokens (null: signed out). */
export function connect(
  baseUrl: string,
  tokens: StoredTokens,
  onTokens: (tokens: StoredTokens | null) => void,
): EchoClients {
  const plain = createGrpcWebTransport({ baseUrl });
  const session = new Session(tokens, plain, onTokens);
  const transport = createGrpcWebTransport({ baseUrl, interceptors: [session.interceptor] });
  return {
    auth: createClient(AuthService, transport),
    users: createClient(UserService, transport),
    messages: createClient(MessageService, transport),
    presence: createClient(PresenceService, transport),
    session,
  };
}
