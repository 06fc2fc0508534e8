// Echo web chat: which server to talk to, the saved session and cursor (localStorage, per
// server), and the switch between the sign-in and chat screens.
//
// The server is `?server=https://echo.example` when given (a page on a CDN), else the page's
// own origin (served by `echo` itself in development, docs/web.md).

import { connect, type StoredTokens } from "@echo-chat/client";
import { ChatScreen } from "./chat.js";
import { signIn } from "./signin.js";

const server = (new URLSearchParams(location.search).get("server") ?? location.origin).replace(/\/$/, "");
const keys = { tokens: `echo:${server}:tokens`, cursor: `echo:${server}:cursor` };
const root = document.getElementById("app") as HTMLElement;
let screen: ChatScreen | null = null;

function saveTokens(tokens: StoredTokens | null): void {
  if (tokens) localStorage.setItem(keys.tokens, JSON.stringify(tokens));
  else {
    localStorage.removeItem(keys.tokens);
    localStorage.removeItem(keys.cursor);
  }
}

function start(tokens: StoredTokens): void {
  saveTokens(tokens);
  const api = connect(server, tokens, saveTokens);
  const cursor = {
    load: () => localStorage.getItem(keys.cursor) ?? "",
    save: (c: string) => localStorage.setItem(keys.cursor, c),
  };
  screen = new ChatScreen(root, api, cursor, (why) => {
    screen?.stop();
    screen = null;
    if (why === "replaced") {
      // Another tab of this browser (the same device) took the stream: still signed in.
      const button = document.createElement("button");
      button.textContent = "Use here";
      button.onclick = () => start(api.session.current);
      root.replaceChildren(`Echo is open in another tab. `, button);
      return;
    }
    if (why === "signed out") void api.auth.logout({}).catch(() => {});
    saveTokens(null);
    showSignIn(why === "signed out" ? "" : `Session ended (${why}).`);
  });
}

function showSignIn(note = ""): void {
  signIn(root, server, start);
  if (note) root.querySelector("[data-testid=signin-error]")!.textContent = note;
}

const saved = localStorage.getItem(keys.tokens);
if (saved) start(JSON.parse(saved) as StoredTokens);
else showSignIn();
