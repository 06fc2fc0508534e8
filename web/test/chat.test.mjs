// The web chat in headless Chromium against a real `echo`, on both backends (docs/web.md):
// two users sign up with phone + code and chat; the network between browser and echo is cut
// and restored (TCP proxies) and nothing is lost or doubled; a closed and reopened page
// resumes from its cursor; reactions, edit, delete, typing, read markers, presence and search
// show up on the other side; CORS from the CDN origin works, a disallowed origin is refused.
//
//   node test/chat.test.mjs <path to echo> [--backend embedded|real] [--screenshots DIR]

import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";
import { ACCESS_TTL_S, proxy, sleep, startEcho, staticServer, until, webhook } from "./harness.mjs";

const args = process.argv.slice(2);
const bin = path.resolve(args[0] ?? "../target/debug/echo");
const option = (name) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const backends = option("--backend") ? [option("--backend")] : ["embedded", "real"];
const shots = option("--screenshots");
const dist = path.resolve(new URL("../dist", import.meta.url).pathname);
const PASSWORD = "correct horse battery staple";

function step(what) {
  console.log(`web-test: ${what}`);
}

/** Texts of the messages shown, in order (pending ones excluded). */
const shown = (page) => page.$$eval("[data-testid=message] .text", (els) => els.map((e) => e.textContent));

/** Wait until each of `texts` is shown exactly once, and no other text is doubled. */
async function seesOnce(page, texts, what) {
  await until(what, async () => {
    const all = await shown(page);
    return texts.every((t) => all.filter((x) => x === t).length === 1);
  });
  const all = await shown(page);
  const doubled = all.filter((t, i) => all.indexOf(t) !== i);
  if (doubled.length) throw new Error(`${what}: shown twice: ${doubled.join(", ")}`);
}

async function signUp(page, otp, phone, name) {
  await page.fill("input[name=phone]", phone);
  await page.fill("input[name=name]", name);
  await page.fill("input[name=password]", PASSWORD);
  await page.click("[data-testid=register]");
  const code = await until(`the code for ${phone}`, () => otp.codes.get(phone));
  await page.fill("input[name=code]", code);
  await page.click("[data-testid=verify]");
  await live(page, `${name} live`);
}

const live = (page, what) =>
  page.waitForSelector("[data-testid=live-status][data-state=live]", { timeout: 20_000 }).catch((e) => {
    throw new Error(`${what}: ${e.message}`);
  });

async function send(page, text) {
  await page.fill("[data-testid=composer]", text);
  await page.press("[data-testid=composer]", "Enter");
}

/** The session a page keeps in localStorage (clients/ts StoredTokens). */
async function storedTokens(page, server) {
  return page.evaluate((key) => JSON.parse(localStorage.getItem(key) ?? "null"), `echo:${server}:tokens`);
}

async function replayed(page) {
  return Number(await page.getAttribute("[data-testid=live-status]", "data-replayed"));
}

async function journey(browser, backend) {
  const otp = await webhook();
  const cdn = await staticServer(dist);
  const cdnOrigin = `http://127.0.0.1:${cdn.port}`;
  const echo = await startEcho(bin, backend, {
    otpSender: otp.url,
    corsOrigins: [cdnOrigin],
  });
  if (!echo) {
    step(`${backend}: servers absent, skipped`);
    otp.close();
    cdn.close();
    return;
  }
  const toAda = await proxy(echo.port);
  const toBob = await proxy(echo.port);
  const contexts = [];
  try {
    // Served by echo itself (development, or public.web_app = true).
    const page = await fetch(`${echo.url}/`);
    if (!page.ok || !(await page.text()).includes('<div id="app">')) throw new Error("echo does not serve the page at /");
    const served = await (await fetch(`${echo.url}/app.js`)).text();
    // WEB_TEST_ANY_BUNDLE=1: trying a change of web/ without rebuilding echo (the CDN pages
    // use web/dist; only the same-origin step uses what echo embeds).
    if (served !== readFileSync(path.join(dist, "app.js"), "utf8") && !process.env.WEB_TEST_ANY_BUNDLE) {
      throw new Error(`${bin} embeds another web/dist/app.js than the one on disk: cargo build`);
    }

    const ada = await (contexts[contexts.length] = await browser.newContext()).newPage();
    const bob = await (contexts[contexts.length] = await browser.newContext()).newPage();
    for (const p of [ada, bob]) p.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    // Both pages come from the CDN origin and call echo through their own proxy.
    await ada.goto(`${cdnOrigin}/?server=${toAda.url}`);
    await bob.goto(`${cdnOrigin}/?server=${toBob.url}`);
    if (shots) await bob.screenshot({ path: `${shots}/signin.png` });
    const adaPhone = `+1415555${randomInt(1000, 5000)}`;
    const bobPhone = `+1415555${randomInt(5000, 10000)}`;
    step(`${backend}: sign up with phone + code`);
    await signUp(ada, otp, adaPhone, "Ada");
    await signUp(bob, otp, bobPhone, "Bob");
    const adaFirst = await storedTokens(ada, toAda.url);

    step(`${backend}: a direct chat; unread count; live delivery both ways`);
    await ada.fill("[data-testid=new-chat-phone]", bobPhone);
    await ada.click("[data-testid=new-chat]");
    await ada.waitForSelector("[data-testid=composer]:not([disabled])");
    await send(ada, "hello bob");
    await seesOnce(ada, ["hello bob"], "ada sees her message");
    await until("ada's chat is titled Bob", async () => (await ada.textContent("h2.title")) === "Bob");
    await until("bob's unread badge 1", async () => (await bob.textContent("[data-testid=unread]").catch(() => "")) === "1");
    if (shots) await bob.screenshot({ path: `${shots}/conversations.png` });
    await until("bob's list names ada", async () => (await bob.textContent("[data-testid=conversation] .name")) === "Ada");
    await bob.click("[data-testid=conversation]");
    await seesOnce(bob, ["hello bob"], "bob sees the message");
    await until("unread cleared", async () => (await bob.$("[data-testid=unread]")) === null);
    await until("ada sees bob's read marker", async () => (await ada.textContent("[data-testid=message] .meta")).includes("read"));
    await bob.type("[data-testid=composer]", "hi");
    await until("ada sees bob typing", async () => (await ada.textContent("[data-testid=typing]")).includes("typing"));
    await send(bob, "hi ada");
    await seesOnce(ada, ["hello bob", "hi ada"], "ada sees the reply");

    step(`${backend}: bob's network is cut; ada sends; bob resumes from his cursor`);
    toBob.cut();
    await until("bob notices the cut", async () => (await bob.getAttribute("[data-testid=live-status]", "data-state")) !== "live");
    const whileCut = ["while cut 1", "while cut 2", "while cut 3"];
    for (const t of whileCut) await send(ada, t);
    await seesOnce(ada, whileCut, "ada's sends while bob is cut");
    await sleep(1500);
    toBob.restore();
    await live(bob, "bob live again");
    await seesOnce(bob, ["hello bob", "hi ada", ...whileCut], "bob after the cut");
    const n = await replayed(bob);
    if (!(n >= whileCut.length)) throw new Error(`bob's stream did not resume from his cursor: replayed ${n}`);

    step(`${backend}: ada's network is cut mid-send; the retry lands once`);
    toAda.cut();
    await send(ada, "sent during a cut");
    await ada.waitForSelector("[data-testid=pending]");
    await sleep(1500);
    toAda.restore();
    await until("ada's pending message sent", async () => (await ada.$("[data-testid=pending]")) === null, 30_000);
    await seesOnce(bob, ["sent during a cut"], "bob gets the retried send once");
    await seesOnce(ada, ["sent during a cut"], "ada shows her send once");

    const adaNow = await storedTokens(ada, toAda.url);
    if (adaNow.refreshToken === adaFirst.refreshToken) throw new Error("ada's session never refreshed its tokens");

    step(`${backend}: bob's page closes; ada sends; a new page resumes from the saved cursor`);
    const bobTokens = await storedTokens(bob, toBob.url);
    await bob.close();
    for (const t of ["while away 1", "while away 2"]) await send(ada, t);
    await seesOnce(ada, ["while away 1", "while away 2"], "ada's sends while bob is away");
    // The saved access token has expired, but the page believes it good for an hour: its
    // first calls and its stream meet UNAUTHENTICATED TOKEN_EXPIRED and must refresh.
    await sleep(Math.max(0, bobTokens.accessExpiresAt + 1500 - Date.now()));
    const bob2 = await contexts[1].newPage();
    await bob2.addInitScript(([key, tokens]) => {
      if (!sessionStorage.getItem("tampered")) {
        sessionStorage.setItem("tampered", "1");
        localStorage.setItem(key, JSON.stringify({ ...tokens, accessExpiresAt: Date.now() + 3_600_000 }));
      }
    }, [`echo:${toBob.url}:tokens`, bobTokens]);
    await bob2.goto(`${cdnOrigin}/?server=${toBob.url}`);
    await live(bob2, "bob's new page live");
    const m = await replayed(bob2);
    if (!(m >= 2)) throw new Error(`the reopened page did not resume from its cursor: replayed ${m}`);
    // GetMe went out with the expired token too: the interceptor refreshed and retried it.
    await until("bob's name on the new page", async () => (await bob2.textContent("[data-testid=me]")) === "Bob");
    const bobAfter = await storedTokens(bob2, toBob.url);
    if (bobAfter.refreshToken === bobTokens.refreshToken) throw new Error("an expired access token was not refreshed");
    await bob2.click("[data-testid=conversation]");
    await seesOnce(bob2, ["sent during a cut", "while away 1", "while away 2"], "bob's new page");
    await until("ada online in bob's list", () => bob2.$("[data-testid=presence].online"));

    step(`${backend}: reactions, edit, delete, search`);
    const last = "[data-testid=message]:last-child";
    await bob2.hover(last);
    await bob2.click(`${last} [data-testid=react]`);
    await until("ada sees the reaction", async () => (await ada.textContent(last)).includes("👍 1"));
    await ada.hover(last);
    await ada.click(`${last} [data-testid=edit]`);
    await ada.fill("[data-testid=composer]", "while away 2 (edited)");
    await ada.press("[data-testid=composer]", "Enter");
    await seesOnce(bob2, ["while away 2 (edited)"], "bob sees the edit");
    await ada.hover("[data-testid=message]:first-child");
    await ada.click("[data-testid=message]:first-child [data-testid=delete]");
    await until("bob sees the deletion", async () => (await shown(bob2)).includes("message deleted"));
    if (shots) await ada.screenshot({ path: `${shots}/chat.png` });
    await bob2.fill("[data-testid=search]", "away");
    await bob2.press("[data-testid=search]", "Enter");
    await until("search finds the messages", async () => (await bob2.$$("[data-testid=result]")).length >= 1);
    await bob2.fill("[data-testid=search]", "");
    await bob2.press("[data-testid=search]", "Enter");

    step(`${backend}: history: a reload shows the latest page, scrolling up loads the rest`);
    const many = Array.from({ length: 35 }, (_, i) => `history ${i + 1}`);
    for (const t of many) await send(ada, t);
    await seesOnce(bob2, many.slice(-5), "bob sees the burst live");
    await bob2.reload();
    await live(bob2, "bob live after reload");
    await bob2.click("[data-testid=conversation]");
    await seesOnce(bob2, many.slice(-5), "latest page after reload");
    if ((await shown(bob2)).includes("hello bob")) throw new Error("the first page should not hold the whole history");
    await until("infinite scroll reaches the start", async () => {
      await bob2.$eval("[data-testid=messages]", (e) => (e.scrollTop = 0));
      return (await shown(bob2)).includes("hi ada");
    });
    await seesOnce(bob2, ["hi ada", ...whileCut, ...many], "the whole history, once");

    step(`${backend}: the page echo serves (same origin): ada signs in with her password on a second device`);
    const ada2 = await (contexts[contexts.length] = await browser.newContext()).newPage();
    await ada2.goto(`${echo.url}/`);
    await ada2.fill("input[name=phone]", adaPhone);
    await ada2.fill("input[name=password]", PASSWORD);
    await ada2.click("[data-testid=login]");
    await live(ada2, "ada's second device live");
    await ada2.click("[data-testid=conversation]");
    await seesOnce(ada2, many.slice(-5), "ada's second device shows the latest page");

    step(`${backend}: a page on an origin not in cors_allowed_origins is refused`);
    const evil = await (contexts[contexts.length] = await browser.newContext()).newPage();
    await evil.goto(`http://localhost:${cdn.port}/?server=${toBob.url}`);
    const evilPhone = `+1415555${randomInt(1000, 10000)}`;
    await evil.fill("input[name=phone]", evilPhone);
    await evil.fill("input[name=name]", "Eve");
    await evil.fill("input[name=password]", PASSWORD);
    await evil.click("[data-testid=register]");
    await until("a refusal shown", async () => (await evil.textContent("[data-testid=signin-error]")).length > 0);
    await sleep(500);
    if (otp.codes.has(evilPhone)) throw new Error("a disallowed origin's Register reached the server");
    const preflight = (origin) => fetch(`${echo.url}/echo.auth.v1.AuthService/Register`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "content-type,x-grpc-web" },
    }).then((r) => r.headers.get("access-control-allow-origin"));
    if ((await preflight(cdnOrigin)) !== cdnOrigin) throw new Error("the allowed origin's preflight is not allowed");
    if ((await preflight("http://evil.example")) !== null) throw new Error("a disallowed origin's preflight is allowed");
    step(`${backend}: ok`);
  } catch (error) {
    console.error(`--- echo log (tail) ---\n${echo.log().slice(-4000)}`);
    throw error;
  } finally {
    for (const c of contexts) await c.close().catch(() => {});
    toAda.close();
    toBob.close();
    await echo.stop();
    otp.close();
    cdn.close();
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
});
try {
  for (const backend of backends) await journey(browser, backend);
} finally {
  await browser.close();
}
step("passed");
