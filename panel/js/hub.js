// A small client of ctid's hub: the ASP.NET Core SignalR JSON protocol over WebSocket.
//
// negotiate (POST {url}/negotiate?negotiateVersion=1, the access token in the Authorization header)
// -> WebSocket {url}?id=<connectionToken> (a short-lived, one-use token that names the user: the access
// token never goes into a URL, where access logs and proxies would keep it)
// -> handshake {"protocol":"json","version":1}<RS> -> records separated by 0x1E: invocations (type 1),
// completions (3), pings (6), close (7). Reconnects with exponential backoff and reports its state so
// the page can show it; after every (re)connect the page calls Snapshot() to rebuild its state.
// See docs/hub-protocol.md for the server side.

const RS = "\x1e";

export const HubState = Object.freeze({
  CONNECTING: "connecting",
  CONNECTED: "connected",
  RECONNECTING: "reconnecting",
  DISCONNECTED: "disconnected",
});

/** Error of a hub method, split into ctid's stable error id and message ("forbidden: not your call"). */
export class HubError extends Error {
  constructor(text) {
    const match = /^([a-z_:]+): (.*)$/s.exec(text || "");
    super(match ? match[2] : text);
    this.errorId = match ? match[1] : "hub_error";
  }
}

/** The server refused our token: reconnecting will not help, sign in again. */
export class HubAuthError extends Error {
  constructor(message) {
    super(message);
    this.errorId = "unauthorized";
  }
}

/** Delay before reconnect attempt ``attempt`` (0-based): 0, 1, 2, 4, 8, 16, 30, 30... seconds, +-20 % jitter. */
export function backoffDelay(attempt, random = Math.random) {
  if (attempt <= 0) return 0;
  const base = Math.min(30000, 1000 * 2 ** (attempt - 1));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/** Split a text buffer into complete records; returns [records, rest]. */
export function splitRecords(buffer) {
  const parts = buffer.split(RS);
  const rest = parts.pop();
  return [parts.filter((p) => p.length > 0), rest];
}

export class HubClient {
  /**
   * @param {string} url absolute or page-relative URL of the hub, e.g. "/hub"
   * @param {() => string|null} tokenFactory returns the current access token
   * @param {object} [options] pingInterval, serverTimeout, invokeTimeout (ms); WebSocket / fetch for tests
   */
  constructor(url, tokenFactory, options = {}) {
    this.url = new URL(url, window.location.href);
    this.tokenFactory = tokenFactory;
    this.pingInterval = options.pingInterval ?? 15000;
    this.serverTimeout = options.serverTimeout ?? 30000;
    this.invokeTimeout = options.invokeTimeout ?? 20000;
    this.WebSocketImpl = options.WebSocket ?? window.WebSocket;
    this.fetchImpl = options.fetch ?? window.fetch.bind(window);
    this.handlers = new Map(); // lower-case target -> [fn]
    this.stateListeners = [];
    this.pending = new Map(); // invocationId -> {resolve, reject, timer}
    this.nextId = 0;
    this.state = HubState.DISCONNECTED;
    this.detail = { attempt: 0, retryAt: null, error: null };
    this.socket = null;
    this.buffer = "";
    this.stopped = true;
    this.attempt = 0;
    this.retryTimer = null;
    this.inFlight = false;
    this.lastSent = 0;
    this.pingTimer = null;
    this.silenceTimer = null;
    this.onOnline = () => this.retryNow();
  }

  /** Register a handler for a server event (callUpdated, agentUpdated, taskUpdated); names are case-insensitive. */
  on(target, handler) {
    const key = target.toLowerCase();
    if (!this.handlers.has(key)) this.handlers.set(key, []);
    this.handlers.get(key).push(handler);
  }

  /** Listen to connection state changes: fn(state, detail). */
  onState(listener) {
    this.stateListeners.push(listener);
  }

  start() {
    this.stopped = false;
    window.addEventListener("online", this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener("online", this.onOnline);
    clearTimeout(this.retryTimer);
    this.teardown(new Error("stopped"));
    this.setState(HubState.DISCONNECTED, { attempt: 0, retryAt: null, error: null });
  }

  /** Skip the backoff wait (the "Reconnect now" button, the browser coming back online). */
  retryNow() {
    if (this.stopped || this.state === HubState.CONNECTED || this.state === HubState.CONNECTING) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  setState(state, detail = {}) {
    this.state = state;
    this.detail = { attempt: this.attempt, retryAt: null, error: null, ...detail };
    for (const listener of this.stateListeners) {
      try {
        listener(state, this.detail);
      } catch (error) {
        console.error("hub state listener failed", error);
      }
    }
  }

  async connect() {
    if (this.inFlight) return; // one attempt at a time ("Retry now" during an attempt does nothing)
    this.inFlight = true;
    try {
      await this.attemptConnect();
    } finally {
      this.inFlight = false;
    }
  }

  async attemptConnect() {
    const first = this.attempt === 0;
    this.setState(first ? HubState.CONNECTING : HubState.RECONNECTING, { attempt: this.attempt });
    try {
      const token = this.tokenFactory();
      if (!token) throw new HubAuthError("not signed in");
      const connectionToken = await this.negotiate(token);
      if (this.stopped) return;
      await this.openSocket(connectionToken);
    } catch (error) {
      if (this.stopped) return;
      this.teardown(error);
      if (error instanceof HubAuthError) {
        this.attempt = 0;
        this.setState(HubState.DISCONNECTED, { error, auth: true });
        return;
      }
      this.scheduleRetry(error);
    }
  }

  scheduleRetry(error) {
    const delay = backoffDelay(this.attempt); // the first retry is immediate (a restarting server)
    this.attempt += 1;
    this.setState(HubState.RECONNECTING, { attempt: this.attempt, retryAt: Date.now() + delay, error });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  async negotiate(token) {
    const url = new URL(this.url.href.replace(/\/$/, "") + "/negotiate");
    url.searchParams.set("negotiateVersion", "1");
    let response;
    try {
      response = await this.fetchImpl(url.href, {
        method: "POST",
        headers: { Authorization: `Bearer ${token}`, "X-Requested-With": "XMLHttpRequest" },
        cache: "no-store",
      });
    } catch (error) {
      throw new Error(`negotiate failed: ${error.message}`);
    }
    if (response.status === 401) throw new HubAuthError("the server refused the access token");
    if (!response.ok) throw new Error(`negotiate answered HTTP ${response.status}`);
    const body = await response.json();
    if (body.error) throw new Error(body.error);
    const connectionToken = body.connectionToken || body.connectionId;
    if (!connectionToken) throw new Error("negotiate answered no connection token");
    return connectionToken;
  }

  /** Open the WebSocket with the connection token alone: it names the user, so no access token is sent. */
  openSocket(connectionToken) {
    return new Promise((resolve, reject) => {
      const url = new URL(this.url.href);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("id", connectionToken);
      const socket = new this.WebSocketImpl(url.href);
      this.socket = socket;
      this.buffer = "";
      let handshaken = false;
      socket.onopen = () => socket.send(JSON.stringify({ protocol: "json", version: 1 }) + RS);
      socket.onmessage = (event) => {
        if (typeof event.data !== "string") return; // ctid sends Text frames only
        this.buffer += event.data;
        const [records, rest] = splitRecords(this.buffer);
        this.buffer = rest;
        for (const record of records) {
          let message;
          try {
            message = JSON.parse(record);
          } catch {
            socket.close(1000);
            return;
          }
          if (!handshaken) {
            handshaken = true;
            if (message.error) {
              reject(new Error(`handshake refused: ${message.error}`));
              socket.close(1000);
              return;
            }
            this.attempt = 0;
            this.sendRecord({ type: 6 }); // as the official JS client: a Ping right after the handshake
            this.armTimers();
            this.setState(HubState.CONNECTED);
            resolve();
            continue;
          }
          this.dispatch(message);
        }
        this.touch();
      };
      socket.onerror = () => {}; // onclose follows with the details
      socket.onclose = (event) => {
        if (this.socket !== socket) return;
        const error = new Error(`connection closed (${event.code}${event.reason ? ` ${event.reason}` : ""})`);
        if (!handshaken) {
          reject(error);
          return;
        }
        this.lost(error);
      };
    });
  }

  lost(error) {
    this.teardown(error);
    if (!this.stopped) this.scheduleRetry(error);
  }

  dispatch(message) {
    switch (message.type) {
      case 1: {
        const handlers = this.handlers.get(String(message.target).toLowerCase()) || [];
        for (const handler of handlers) {
          try {
            handler(...(message.arguments || []));
          } catch (error) {
            console.error(`handler of ${message.target} failed`, error);
          }
        }
        break;
      }
      case 3: {
        const pending = this.pending.get(message.invocationId);
        if (!pending) break;
        this.pending.delete(message.invocationId);
        clearTimeout(pending.timer);
        if (message.error) pending.reject(new HubError(message.error));
        else pending.resolve(message.result);
        break;
      }
      case 6:
        // Answer the server's keep-alive too: a hidden tab's timers may be throttled to once a minute,
        // but message handlers are not, so the server never times us out.
        // (The server pings only after a quiet spell, so this is one small record per interval at most.)
        if (Date.now() - this.lastSent > 250) this.sendRecord({ type: 6 });
        break;
      case 7: {
        const error = new Error(message.error || "the server closed the connection");
        error.allowReconnect = Boolean(message.allowReconnect);
        // A Close without allowReconnect is a protocol-level refusal; we still retry, with backoff.
        if (this.socket) this.socket.close(1000);
        this.lost(error);
        break;
      }
      default:
        break; // 2, 4, 5, 8, 9: nothing for a panel
    }
  }

  armTimers() {
    clearInterval(this.pingTimer);
    this.pingTimer = setInterval(() => this.sendRecord({ type: 6 }), this.pingInterval);
    this.touch();
  }

  touch() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      if (this.socket) this.socket.close(4000, "server timeout");
      this.lost(new Error("no message from the server within the timeout"));
    }, this.serverTimeout);
  }

  teardown(error) {
    clearInterval(this.pingTimer);
    clearTimeout(this.silenceTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
      if (socket.readyState === 0 || socket.readyState === 1) {
        try {
          socket.close(1000);
        } catch {
          /* already closing */
        }
      }
    }
    for (const [, pending] of this.pending) {
      clearTimeout(pending.timer);
      pending.reject(new HubError(`connection_lost: ${error?.message || "connection lost"}`));
    }
    this.pending.clear();
  }

  sendRecord(message) {
    if (!this.socket || this.socket.readyState !== 1) return false;
    this.socket.send(JSON.stringify(message) + RS);
    this.lastSent = Date.now();
    return true;
  }

  /** Call a hub method and wait for its Completion; rejects with HubError. */
  invoke(target, ...args) {
    if (this.state !== HubState.CONNECTED) {
      return Promise.reject(new HubError("not_connected: not connected to ctid"));
    }
    const invocationId = String(this.nextId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(invocationId);
        reject(new HubError("timeout: ctid did not answer in time"));
      }, this.invokeTimeout);
      this.pending.set(invocationId, { resolve, reject, timer });
      if (!this.sendRecord({ type: 1, invocationId, target, arguments: args })) {
        clearTimeout(timer);
        this.pending.delete(invocationId);
        reject(new HubError("not_connected: not connected to ctid"));
      }
    });
  }
}
