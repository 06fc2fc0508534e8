// Reading Echo's errors: the google.rpc details (ErrorInfo, RetryInfo, BadRequest) that every
// status carries in `grpc-status-details-bin` (docs/platform.md, "Errors").

import { ConnectError } from "@connectrpc/connect";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";

/** What a failed call says, decoded once. */
export interface EchoError {
  /** The gRPC code (`@connectrpc/connect`'s `Code`). */
  code: number;
  /** The ErrorInfo reason (`TOKEN_EXPIRED`, `RESUME`, `STREAM_REPLACED`, …), or "". */
  reason: string;
  /** RetryInfo's delay in milliseconds, when the server gave one. */
  retryDelayMs?: number;
  /** BadRequest field violations as `field: description`. */
  violations: string[];
  /** The status message. */
  message: string;
}

/** Decode any thrown value (a ConnectError, a network failure, an abort) into an EchoError. */
export function echoError(thrown: unknown): EchoError {
  const error = ConnectError.from(thrown);
  const info = error.findDetails(ErrorInfoSchema)[0];
  const retry = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
  const bad = error.findDetails(BadRequestSchema)[0];
  return {
    code: error.code,
    reason: info?.reason ?? "",
    retryDelayMs: retry ? Number(retry.seconds) * 1000 + retry.nanos / 1e6 : undefined,
    violations: (bad?.fieldViolations ?? []).map((v) => `${v.field}: ${v.description}`),
    message: error.rawMessage,
  };
}
