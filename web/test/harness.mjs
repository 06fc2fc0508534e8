// What the browser test owns: a child `echo` (embedded, or on the shared PostgreSQL, NATS and
// Redis under a prefix of its own), the OTP webhook it sends codes to, TCP proxies that cut
// and restore the network between browser and echo, and a static server standing in for a CDN.

import { spawn, execFileSync } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createReadStream, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The access token lifetime the test's echo issues, in seconds. */
export const ACCESS_TTL_S = 6;

/** Poll `check` until it returns a truthy value; fail with `what` after `ms`. */
export async function until(what, check, ms = 15_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ""}`);
    await sleep(100);
  }
}

/**
 * A port for echo to listen on, from the ports run.sh reserved with scripts/ports.py
 * (`WEB_TEST_PORTS`): below the ephemeral range and locked while run.sh lives. Binding port 0
 * and closing it again races with every outgoing connection on the machine (a pool opening to
 * PostgreSQL may take the port before echo binds it: "Address already in use").
 */
const reserved = (process.env.WEB_TEST_PORTS ?? "").split(/\s+/).filter(Boolean).map(Number);
export async function freePort() {
  const port = reserved.shift();
  if (port === undefined) throw new Error("no reserved port left: run the test through web/test/run.sh");
  return port;
}

function listen(server) {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server.address().port)));
}

/** The SMS gateway stand-in: echo POSTs `{phone_number, code}`; codes are kept by phone. */
export async function webhook() {
  const codes = new Map();
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      try {
        const json = JSON.parse(body);
        codes.set(json.phone_number, json.code);
      } catch {}
      res.writeHead(204).end();
    });
  });
  const port = await listen(server);
  return { url: `http://127.0.0.1:${port}/otp`, codes, close: () => server.close() };
}

/** A TCP proxy to `target`: `cut()` drops every open connection and refuses new ones until `restore()`. */
export async function proxy(target) {
  const sockets = new Set();
  let cut = false;
  const server = net.createServer((client) => {
    if (cut) return client.destroy();
    const upstream = net.connect(target, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {});
    }
    client.pipe(upstream).pipe(client);
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  const port = await listen(server);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    cut() {
      cut = true;
      for (const s of sockets) s.destroy();
    },
    restore() {
      cut = false;
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** Serves web/dist as a CDN would: the page lives on another origin than the API. */
export async function staticServer(dir) {
  const types = { ".html": "text/html", ".js": "text/javascript", ".css": "text/css" };
  const server = http.createServer((req, res) => {
    const name = new URL(req.url, "http://x").pathname.replace(/^\/$/, "/index.html");
    const file = path.join(dir, path.basename(name));
    res.setHeader("content-type", types[path.extname(file)] ?? "application/octet-stream");
    createReadStream(file)
      .on("error", () => res.writeHead(404).end())
      .pipe(res);
  });
  const port = await listen(server);
  return { port, close: () => server.close() };
}

function reachable(port) {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.setTimeout(1000);
    socket.on("connect", () => (socket.destroy(), resolve(true)));
    socket.on("error", () => resolve(false));
    socket.on("timeout", () => (socket.destroy(), resolve(false)));
  });
}

/** The shared servers' environment for an isolated echo, or null when one is down. */
async function realBackends() {
  if (!(await reachable(5432)) || !(await reachable(4222)) || !(await reachable(6379))) return null;
  // Unique by construction: the time and this process (one real echo per test process).
  const isolation = `t_web_${Date.now().toString(16).padStart(12, "0")}_${process.pid.toString(16)}`;
  const key = generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" });
  return {
    isolation,
    env: {
      ECHO_DATABASE_URL: "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
      ECHO_DATABASE_SCHEMA_PREFIX: `${isolation}_`,
      ECHO_DATABASE_MAX_CONNECTIONS: "8",
      ECHO_BUS_URL: "nats://127.0.0.1:4222",
      ECHO_BUS_SUBJECT_PREFIX: `${isolation}.`,
      ECHO_CACHE_URL: "redis://127.0.0.1:6379",
      ECHO_CACHE_KEY_PREFIX: `${isolation}:`,
      // Production mode (non-embedded backends): real secrets, and the page only when asked.
      ECHO_AUTH__JWT_SIGNING_KEY: key,
      ECHO_AUTH__OTP_HMAC_KEY: randomBytes(32).toString("hex"),
      ECHO_SERVICE_SECRET: randomBytes(32).toString("hex"),
      ECHO_PUBLIC__WEB_APP: "true",
    },
  };
}

/** Best effort: remove this run's schemas, JetStream streams and Redis keys (CI also drops
 *  leftover t_* schemas). */
async function dropIsolation(isolation) {
  const quiet = { stdio: ["ignore", "pipe", "ignore"] };
  const psql = (sql) => execFileSync("psql", ["-h", "127.0.0.1", "-U", "postgres", "-Atqc", sql], quiet).toString();
  try {
    const schemas = psql(`SELECT nspname FROM pg_namespace WHERE nspname LIKE '${isolation}%'`);
    for (const schema of schemas.split("\n").filter(Boolean)) psql(`DROP SCHEMA "${schema}" CASCADE`);
    const redis = (...a) => execFileSync("redis-cli", ["-h", "127.0.0.1", "-p", "6379", ...a], quiet).toString();
    const keys = redis("--scan", "--pattern", `${isolation}:*`).split("\n").filter(Boolean);
    for (let i = 0; i < keys.length; i += 500) redis("DEL", ...keys.slice(i, i + 500));
    await deleteStreams(`${isolation}.`.replace(/[^A-Za-z0-9]/g, "_").toUpperCase());
  } catch (error) {
    console.warn(`warning: could not clean up ${isolation}: ${error.message}`);
  }
}

/** Delete the JetStream streams whose names start with `prefix`, over the plain NATS protocol. */
function deleteStreams(prefix) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(4222, "127.0.0.1");
    let buffer = Buffer.alloc(0);
    const waiting = [];
    socket.setTimeout(5000, () => socket.destroy(new Error("nats timed out")));
    socket.on("error", reject);
    socket.on("data", (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        const end = buffer.indexOf("\r\n");
        if (end < 0) return;
        const line = buffer.subarray(0, end).toString();
        if (line.startsWith("MSG")) {
          const size = Number(line.split(" ").at(-1));
          if (buffer.length < end + 2 + size + 2) return;
          const body = buffer.subarray(end + 2, end + 2 + size).toString();
          buffer = buffer.subarray(end + 2 + size + 2);
          waiting.shift()?.(JSON.parse(body));
          continue;
        }
        buffer = buffer.subarray(end + 2);
        if (line.startsWith("PING")) socket.write("PONG\r\n");
        if (line.startsWith("-ERR")) socket.destroy(new Error(line));
      }
    });
    const request = (subject) => new Promise((answer) => {
      waiting.push(answer);
      socket.write(`PUB ${subject} _INBOX.webtest 2\r\n{}\r\n`);
    });
    socket.once("connect", async () => {
      socket.write('CONNECT {"verbose":false,"pedantic":false}\r\nSUB _INBOX.webtest 1\r\n');
      const { streams } = await request("$JS.API.STREAM.NAMES");
      for (const name of streams ?? []) if (name.startsWith(prefix)) await request(`$JS.API.STREAM.DELETE.${name}`);
      socket.end();
      resolve();
    });
  });
}

/**
 * Start `bin` on `backend` ("embedded" | "real"); null when the real servers are absent (a
 * failure instead under ECHO_REQUIRE_SERVICES=1).
 */
export async function startEcho(bin, backend, { otpSender, corsOrigins }) {
  const [port, admin, internal] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(path.join(tmpdir(), "echo-web-test."));
  let real = null;
  if (backend === "real") {
    real = await realBackends();
    if (!real) {
      if (process.env.ECHO_REQUIRE_SERVICES === "1") throw new Error("real backends required but unreachable");
      return null;
    }
  }
  const logFile = path.join(dir, "echo.log");
  const log = openSync(logFile, "w");
  const child = spawn(
    bin,
    ["--listen", `127.0.0.1:${port}`, "--admin-listen", `127.0.0.1:${admin}`,
      "--internal-listen", `127.0.0.1:${internal}`, "--data-dir", path.join(dir, "data")],
    {
      env: {
        // Nothing of the caller's ECHO_* (a developer's settings) leaks into this echo.
        ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("ECHO_"))),
        ...(real?.env ?? {}),
        ECHO_LOG_FORMAT: "text",
        ECHO_AUTH__OTP_SENDER: otpSender,
        ECHO_CORS_ALLOWED_ORIGINS: JSON.stringify(corsOrigins),
        // Heartbeats every 2 s: a dead connection is noticed in 4 s, not 40.
        ECHO_LIVE__HEARTBEAT_INTERVAL: "2",
        // Access tokens of 6 s: every page refreshes its tokens several times on the way.
        ECHO_AUTH__ACCESS_TOKEN_TTL: String(ACCESS_TTL_S),
      },
      stdio: ["ignore", log, log],
    },
  );
  let exited = null;
  child.on("exit", (code, signal) => (exited = signal ?? code));
  await until("echo ready (/readyz)", async () => {
    if (exited !== null) {
      // Its last lines, without a backtrace's frames.
      const lines = readFileSync(logFile, "utf8").split("\n").filter((l) => !/^\s+(\d+:|at )/.test(l));
      throw new Error(`echo exited (${exited}):\n${lines.slice(-25).join("\n")}`);
    }
    const response = await fetch(`http://127.0.0.1:${admin}/readyz`).catch(() => null);
    return response?.ok;
  }, 60_000);
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    log: () => readFileSync(logFile, "utf8"),
    async stop() {
      if (exited === null) {
        child.kill("SIGTERM");
        await until("echo exit", () => exited !== null, 20_000).catch(() => child.kill("SIGKILL"));
      }
      if (real) await dropIsolation(real.isolation);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
