// REST calls to ctid's /api with the signed-in token, and where that token is kept.
//
// The token lives in sessionStorage (survives reloads of this tab or iframe); "remember me" also keeps
// it in localStorage for new tabs. A token in the URL fragment (#token=..., from the launcher or a CRM
// web resource) is taken over and removed from the address bar.

import { local, session } from "./storage.js";

const KEY = "ctid.token";

export class ApiError extends Error {
  constructor(status, errorId, message, retryAfter = null) {
    super(message || errorId);
    this.status = status;
    this.errorId = errorId;
    this.retryAfter = retryAfter; // seconds, from Retry-After (429: sign-in throttled)
  }
}

export const auth = {
  get token() {
    return session.getItem(KEY) || local.getItem(KEY);
  },
  save(token, remember) {
    session.setItem(KEY, token);
    if (remember) local.setItem(KEY, token);
    else local.removeItem(KEY);
  },
  clear() {
    session.removeItem(KEY);
    local.removeItem(KEY);
  },
  /** Take a token from "#token=...&..." and strip it from the address bar; returns true if one was found. */
  takeFromFragment() {
    const fragment = window.location.hash.replace(/^#/, "");
    if (!fragment.includes("token=")) return false;
    const params = new URLSearchParams(fragment);
    const token = params.get("token");
    params.delete("token");
    if (token) session.setItem(KEY, token);
    const rest = params.toString();
    history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
    return Boolean(token);
  },
  /**
   * Redeem a one-time sign-in code from "#code=..." (the desktop launcher opens the panel with one;
   * docs/panel.md) for a token of this tab; strips the code from the address bar first. Returns true
   * when it signed in.
   */
  async redeemFragmentCode() {
    const fragment = window.location.hash.replace(/^#/, "");
    if (!fragment.includes("code=")) return false;
    const params = new URLSearchParams(fragment);
    const code = params.get("code");
    params.delete("code");
    const rest = params.toString();
    history.replaceState(null, "", window.location.pathname + window.location.search + (rest ? `#${rest}` : ""));
    if (!code) return false;
    try {
      const response = await fetch(new URL("api/auth/handoff/redeem", base), {
        method: "POST",
        headers: { Accept: "application/json", "Content-Type": "application/json" },
        body: JSON.stringify({ code }),
      });
      if (!response.ok) return false;
      session.setItem(KEY, (await response.json()).access_token);
      return true;
    } catch {
      return false;
    }
  },
};

export const base = new URL("../", new URL(import.meta.url)).href.replace(/panel\/$/, "");

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const token = auth.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(new URL(path, base), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (error) {
    throw new ApiError(0, "network", error.message);
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (response.status === 401 && auth.token && !path.startsWith("api/auth/")) {
    // The token expired or was revoked: the page signs out and asks to sign in again.
    window.dispatchEvent(new CustomEvent("ctid-unauthorized"));
  }
  if (!response.ok) {
    const retryAfter = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    throw new ApiError(response.status, data?.error || `http_${response.status}`, data?.message,
      Number.isFinite(retryAfter) ? retryAfter : null);
  }
  return data;
}

export async function signIn(username, password) {
  return request("POST", "api/auth/token", { username, password });
}

/** Every call changed since ``sinceIso``, following pages of ``limit``. */
export async function callsSince(sinceIso, limit = 1000) {
  const seen = new Map();
  let cursor = sinceIso;
  for (let page = 0; page < 20; page += 1) {
    const query = new URLSearchParams({ since: cursor, limit: String(limit) });
    const { items } = await request("GET", `api/calls?${query}`);
    for (const call of items) seen.set(call.id, call);
    if (items.length < limit) break;
    cursor = items[items.length - 1].updated_at || cursor;
  }
  return [...seen.values()];
}

/**
 * A URL of a call's recording an <audio> element can play (it cannot send headers): a short-lived
 * link ctid signs for this user and call. No token ever goes into a URL.
 * @returns {Promise<{url: string, expiresIn: number}>}
 */
export async function recordingLink(callId) {
  const answer = await request("POST", `api/calls/${encodeURIComponent(callId)}/recording-link`);
  return { url: new URL(answer.path.replace(/^\//, ""), base).href, expiresIn: answer.expires_in };
}
