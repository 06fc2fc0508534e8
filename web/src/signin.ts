// Sign up with phone + code (Register, then VerifyPhone), or sign in with phone + password.
// In development the code is written to the server's log (`auth.otp_sender = log`); a
// deployment sends it by SMS through its webhook.

import { authClient, echoError, storedTokens, type StoredTokens } from "@echo-chat/client";
import { DevicePlatform } from "@echo-chat/client/gen/echo/auth/v1/auth_pb";
import { fill, h } from "./dom.js";

const device = () => ({
  name: `${navigator.userAgent.includes("Chrome") ? "Chromium" : "Browser"} (web)`.slice(0, 64),
  platform: DevicePlatform.WEB,
  appVersion: "web-0.1",
});

/** Show the sign-in screen in `root`; calls `done` with the new session's tokens. */
export function signIn(root: Element, server: string, done: (tokens: StoredTokens) => void): void {
  const auth = authClient(server);
  const phone = h("input", { name: "phone", placeholder: "+14155550100", autocomplete: "tel" });
  const name = h("input", { name: "name", placeholder: "Display name" });
  const password = h("input", { name: "password", type: "password", placeholder: "Password (10+ characters)" });
  const code = h("input", { name: "code", placeholder: "Code", inputmode: "numeric" });
  const error = h("p", { class: "error", "data-testid": "signin-error", role: "alert" });
  const hint = h(
    "p",
    { class: "hint" },
    "Sign up sends a code to the phone. In development (auth.otp_sender = log) the code is in " +
      "the server's log instead.",
  );

  async function attempt(what: () => Promise<void>) {
    error.textContent = "";
    try {
      await what();
    } catch (thrown) {
      const e = echoError(thrown);
      error.textContent = e.violations.length ? e.violations.join("; ") : e.message || "failed";
    }
  }

  const register = () =>
    attempt(async () => {
      await auth.register({ phoneNumber: phone.value, password: password.value, displayName: name.value });
      codeRow.hidden = false;
      hint.textContent =
        "A code was sent. In development (auth.otp_sender = log) it is in the server's log: " +
        'the line "otp code (development sender)" with this phone number.';
      code.focus();
    });
  const verify = () =>
    attempt(async () => {
      const response = await auth.verifyPhone({ phoneNumber: phone.value, code: code.value, device: device() });
      if (response.tokens) done(storedTokens(response.tokens));
    });
  const login = () =>
    attempt(async () => {
      const response = await auth.loginWithPassword({
        phoneNumber: phone.value,
        password: password.value,
        device: device(),
      });
      if (response.tokens) done(storedTokens(response.tokens));
    });

  const codeRow = h(
    "div",
    { class: "code-row", hidden: true },
    code,
    h("button", { type: "button", "data-testid": "verify", onclick: verify }, "Verify code"),
  );
  fill(
    root,
    h(
      "form",
      { class: "signin", onsubmit: (e: Event) => e.preventDefault() },
      h("h1", {}, "Echo"),
      h("label", {}, "Phone (E.164)", phone),
      h("label", {}, "Name (sign-up)", name),
      h("label", {}, "Password", password),
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", "data-testid": "register", onclick: register }, "Sign up"),
        h("button", { type: "button", class: "secondary", "data-testid": "login", onclick: login }, "Sign in"),
      ),
      codeRow,
      hint,
      error,
      h("p", { class: "server" }, `Server: ${server}`),
    ),
  );
}
