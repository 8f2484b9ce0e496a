// The sign-in form: username and password -> access token (POST /api/auth/token).

import { auth, signIn } from "../api.js";
import { h } from "../dom.js";
import { LANGUAGES, lang, setLanguage, t } from "../i18n.js";

/** Render the form into ``root``; ``onSignedIn()`` runs once a token is stored. */
export function renderLogin(root, onSignedIn, notice = "") {
  const error = h("p.error", { role: "alert", id: "login-error" }, notice);
  const username = h("input", { id: "login-username", name: "username", autocomplete: "username", required: true,
    autocapitalize: "none", spellcheck: "false" });
  const password = h("input", { id: "login-password", name: "password", type: "password", required: true,
    autocomplete: "current-password" });
  const remember = h("input", { id: "login-remember", type: "checkbox", checked: true });
  const submit = h("button.primary", { type: "submit", id: "login-submit" }, t("signIn"));
  const form = h("form.login", {
    "aria-labelledby": "login-title",
    onsubmit: async (event) => {
      event.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        const answer = await signIn(username.value.trim(), password.value);
        auth.save(answer.access_token, remember.checked);
        onSignedIn();
      } catch (err) {
        error.textContent = err.errorId === "bad_credentials" ? t("wrongPassword")
          : err.errorId === "login_throttled" ? t("loginThrottled", { seconds: err.retryAfter ?? "…" })
          : err.errorId === "network" ? t("serverUnreachable") : (err.message || t("signInFailed"));
        password.select();
        password.focus();
      } finally {
        submit.disabled = false;
      }
    },
  },
  h("h1", { id: "login-title" }, t("signInTitle")),
  h("label", { for: "login-username" }, t("username")), username,
  h("label", { for: "login-password" }, t("password")), password,
  h("label.check", { for: "login-remember" }, remember, t("rememberMe")),
  submit, error,
  h("label", { for: "login-language" }, t("language")),
  h("select", {
    id: "login-language",
    onchange: (event) => {
      setLanguage(event.target.value);
      renderLogin(root, onSignedIn);
      document.getElementById("login-language").focus();
    },
  }, LANGUAGES.map(([code, name]) => h("option", { value: code, selected: code === lang() }, name))));
  root.replaceChildren(form);
  username.focus();
}
