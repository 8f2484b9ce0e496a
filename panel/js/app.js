// The operator panel: sign-in, the hub connection, and the views (cards, dialer, callbacks, history,
// supervisor board). State comes from Snapshot() after every (re)connect and from hub events.

import { auth, base, request } from "./api.js";
import { clickedNumber, cifActive, dock, initCif, openNewContact, openRecord } from "./cif.js";
import { fmtPhone, h, refreshTicking, replace } from "./dom.js";
import { HubClient, HubState } from "./hub.js";
import { errorText, initLanguage, setLanguage, t } from "./i18n.js";
import {
  applySnapshot, canDial, createState, isSupervisor, putAgent, putCall, putTask, relation,
} from "./state.js";
import { installShortcuts } from "./shortcuts.js";
import { local, session } from "./storage.js";
import { renderCards } from "./views/cards.js";
import { parseContactRoute, renderContact } from "./views/contact.js";
import { createDialer } from "./views/dialer.js";
import { renderHeader, renderMenu } from "./views/header.js";
import { loadHistory, renderHistory } from "./views/history.js";
import { renderLogin } from "./views/login.js";
import { renderTasks } from "./views/tasks.js";
import { renderReports } from "./views/reports.js";
import { renderTeam } from "./views/team.js";

const params = new URLSearchParams(window.location.search);
const POPPED = "ctid.popped";
const ENDED_CARD_MS = 120000;

const ctx = {
  state: createState(),
  ui: { tab: "dial", menuOpen: false, transfer: null, autoOpen: false, contactRoute: null },
  cif: false,
  hub: null,
  dialer: null,
  els: {},
};

// -- commands ----------------------------------------------------------------------------------------
/** Invoke a hub method; show the error if it fails. Resolves true on success. */
ctx.act = async (method, ...args) => {
  try {
    const result = await ctx.hub.invoke(method, ...args);
    if (method === "SetStatus" && result?.id) putAgent(ctx.state, result);
    render();
    return true;
  } catch (error) {
    toast(errorText(error));
    render();
    return false;
  }
};
ctx.dismiss = (id) => {
  ctx.state.dismissed.add(id);
  ctx.state.calls.delete(id);
  renderNow();
  ctx.els.main.querySelector('[role="tab"][aria-selected="true"]')?.focus();
};
ctx.toggleTransfer = (callId) => {
  ctx.ui.transfer = ctx.ui.transfer?.callId === callId ? null : { callId, target: "free" };
  renderNow();
  if (ctx.ui.transfer) document.getElementById(`transfer-target-${callId}`)?.focus();
  if (ctx.ui.transfer) refreshAgents();
};
ctx.closeTransfer = () => {
  const callId = ctx.ui.transfer?.callId;
  ctx.ui.transfer = null;
  renderNow();
  document.querySelector(`[data-key="transfer-${callId}"]`)?.focus();
};
ctx.toggleMenu = (open = !ctx.ui.menuOpen) => {
  ctx.ui.menuOpen = open;
  renderNow();
  if (open) document.getElementById("language-select")?.focus();
  else document.getElementById("menu-button")?.focus();
};
ctx.setLanguage = (code) => {
  setLanguage(code);
  buildShell();
  renderNow();
  document.getElementById("language-select")?.focus();
};
ctx.setAutoOpen = (on) => {
  ctx.ui.autoOpen = on;
  local.setItem("ctid.autoOpen", on ? "1" : "0");
};
ctx.registerTel = () => {
  try {
    navigator.registerProtocolHandler("tel", `${base}panel/#dial=%s`);
    toast(t("telHandlerAsked"), "info");
  } catch (error) {
    toast(error.message);
  }
};
ctx.reconnect = () => ctx.hub?.retryNow();
ctx.signOut = () => {
  ctx.hub?.stop();
  ctx.hub = null;
  auth.clear();
  session.removeItem(POPPED);
  ctx.state = createState();
  ctx.ui.menuOpen = false;
  showLogin();
};
ctx.closeContact = () => {
  ctx.ui.contactRoute = null;
  history.replaceState(null, "", window.location.pathname + window.location.search);
  render();
};
/** The ids of the sections this user sees, in tab order (Alt+Shift+1…n follow it). */
ctx.sections = () => visibleTabs().map(([id]) => id);
ctx.showTab = (tab, focus = false) => {
  ctx.ui.tab = tab;
  renderNow();
  if (tab === "history") refreshHistory();
  if (focus) document.getElementById(`tab-${tab}`)?.focus();
};

/**
 * Open a CRM record: through CIF when hosted by Dynamics as a channel provider, through the parent
 * page's Xrm when framed by a Dynamics page of the same origin, else the record's link.
 */
ctx.openMatch = (call, match) => {
  if (ctx.cif) return openRecord(match);
  const xrm = parentXrm();
  if (xrm && match.entity && match.id) return xrm.Navigation.openForm({ entityName: match.entity, entityId: match.id });
  return openUrl(match.url);
};
ctx.openNew = (call) => {
  if (ctx.cif) return openNewContact(call.remote_number || "");
  const xrm = parentXrm();
  if (xrm) return xrm.Navigation.openForm({ entityName: "contact" }, { telephone1: call.remote_number || "" });
  return openUrl(call.contact?.new_contact_url);
};

function parentXrm() {
  try {
    const xrm = window.parent !== window ? window.parent.Xrm : null;
    return typeof xrm?.Navigation?.openForm === "function" ? xrm : null;
  } catch {
    return null; // a parent on another origin: its Xrm is out of reach, links are used
  }
}

function openUrl(url) {
  if (!url) return null;
  let parsed;
  try {
    parsed = new URL(url, base);
  } catch {
    return null;
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return null; // never javascript: & co.
  url = parsed.href;
  // Inside a CRM page (?crm=<org>) records replace the CRM page; elsewhere they open in a new tab.
  const target = params.get("target") || (params.get("crm") && window.top !== window ? "_top" : "_blank");
  const opened = window.open(url, target);
  if (!opened && target === "_blank") toast(t("popupBlocked"), "info");
  return opened;
}

async function refreshAgents() {
  // Agents receive live presence only for themselves; refresh the others while choosing a colleague.
  try {
    const { items } = await request("GET", "api/agents");
    const before = JSON.stringify(items.map((a) => ctx.state.agents.get(a.id)));
    for (const agent of items) putAgent(ctx.state, agent);
    if (JSON.stringify(items) !== before) render();
  } catch {
    /* the list keeps what the snapshot said */
  }
}

// -- hub ---------------------------------------------------------------------------------------------
function connectHub() {
  const hub = new HubClient(`${base}hub`, () => auth.token);
  ctx.hub = hub;
  hub.on("callUpdated", (call) => {
    if (!putCall(ctx.state, call)) return;
    if (call.state === "ended") setTimeout(() => autoDismiss(call.id), ENDED_CARD_MS);
    maybePop(call);
    render();
  });
  hub.on("agentUpdated", (agent) => {
    putAgent(ctx.state, agent);
    if (agent.id === ctx.state.me?.agent) reconcile(agent);
    render();
  });
  hub.on("kpisUpdated", (kpis) => {
    ctx.state.kpis = kpis;
    if (ctx.ui.tab === "team") render();
  });
  hub.on("taskUpdated", (task) => {
    putTask(ctx.state, task);
    render();
  });
  hub.onState(async (state, detail) => {
    ctx.state.hub = { state, detail };
    if (state === HubState.DISCONNECTED && detail.auth) {
      ctx.signOut();
      showLogin(t("sessionExpired"));
      return;
    }
    render();
    if (state === HubState.CONNECTED) await rebuild();
  });
  hub.start();
}

/** After every (re)connect: the full state from Snapshot() (for supervisors with the live KPIs), then the history. */
async function rebuild() {
  try {
    const snapshot = await ctx.hub.invoke("Snapshot");
    applySnapshot(ctx.state, snapshot);
    document.documentElement.dataset.role = snapshot.me?.role || "";
    for (const call of snapshot.calls) maybePop(call);
    render();
    if (ctx.state.history !== null || ctx.ui.contactRoute) await refreshHistory();
    document.documentElement.dataset.ready = "true";
  } catch (error) {
    // A connection lost meanwhile shows in the top bar, and the next connect rebuilds again.
    if (!["connection_lost", "not_connected"].includes(error.errorId)) toast(errorText(error));
  }
}

async function refreshHistory() {
  try {
    await loadHistory(ctx);
  } catch (error) {
    toast(errorText(error));
    ctx.state.history = ctx.state.history || [];
  }
  render();
}

/**
 * A call that stops ringing me because a colleague took it is no longer sent to me, but my own agent
 * update is: check each of my live calls the update does not mention, and drop those I may no longer see.
 */
async function reconcile(agent) {
  const stale = [...ctx.state.calls.values()].filter((call) => call.state !== "ended"
    && call.id !== agent.ringing_call && call.id !== agent.current_call && relation(ctx.state, call) === "mine");
  for (const call of stale) {
    try {
      putCall(ctx.state, await request("GET", `api/calls/${encodeURIComponent(call.id)}`));
    } catch (error) {
      if (error.status === 403 || error.status === 404) ctx.state.calls.delete(call.id);
    }
  }
  if (stale.length) render();
}

function autoDismiss(id) {
  const call = ctx.state.calls.get(id);
  if (call && call.state === "ended") {
    ctx.state.calls.delete(id);
    render();
  }
}

// -- screen pop --------------------------------------------------------------------------------------
function popped() {
  return new Set(JSON.parse(session.getItem(POPPED) || "[]"));
}

function maybePop(call) {
  if (relation(ctx.state, call) !== "mine" || call.state === "ended") return;
  const done = popped();
  if (done.has(call.id)) return;
  const contact = call.contact || { status: "pending" };
  if (call.state === "ringing" && !done.has(`ring:${call.id}`)) {
    done.add(`ring:${call.id}`);
    const who = contact.matches?.length === 1 ? ` (${contact.matches[0].name})` : "";
    announce(t("announceIncoming", { number: fmtPhone(call.remote_number) }) + who);
    if (ctx.cif) dock();
  }
  if (contact.status !== "pending") {
    done.add(call.id);
    if (call.state === "ringing" && contact.matches?.length === 1) {
      announce(t("announceIncoming", { number: fmtPhone(call.remote_number) }) + ` (${contact.matches[0].name})`);
    }
    if (ctx.ui.autoOpen && call.direction === "inbound") onceAcrossTabs(call.id, () => autoOpen(call, contact));
  }
  session.setItem(POPPED, JSON.stringify([...done].slice(-200)));
}

function autoOpen(call, contact) {
  const matches = contact.matches || [];
  if (contact.status === "found" && matches.length === 1) ctx.openMatch(call, matches[0]);
  else if (contact.status === "unknown" && ctx.cif) ctx.openNew(call);
}

/** Run ``fn`` in one tab only when the operator has the panel open in several (a record opens once). */
function onceAcrossTabs(callId, fn) {
  const key = "ctid.opened";
  const claim = () => {
    const opened = JSON.parse(local.getItem(key) || "[]");
    if (opened.includes(callId)) return false;
    local.setItem(key, JSON.stringify([...opened, callId].slice(-100)));
    return true;
  };
  if (!navigator.locks) {
    if (claim()) fn();
    return;
  }
  navigator.locks.request("ctid.auto-open", () => {
    if (claim()) fn();
  });
}

// -- rendering ---------------------------------------------------------------------------------------
let scheduled = false;

function render() {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    renderNow();
  });
}

const TABS = [
  ["dial", "tabDial"],
  ["callbacks", "tabCallbacks"],
  ["history", "tabHistory"],
  ["team", "tabTeam"],
  ["reports", "tabReports"],
];

function visibleTabs() {
  return TABS.filter(([id]) => !["team", "reports"].includes(id) || isSupervisor(ctx.state));
}

function renderNow() {
  const { els, state, ui } = ctx;
  if (!els.header) return;
  // The top bar and the menu hold selects the operator may be using: rebuild them only when what they
  // show changed (a rebuilt native select closes its open drop-down).
  const mine = state.me?.agent ? state.agents.get(state.me.agent) : null;
  const hub = state.hub;
  unlessSame(els.header, [hub.state, hub.detail.retryAt, hub.detail.error?.message, mine?.status, mine?.busy,
    state.me, document.documentElement.lang], () => renderHeader(els.header, ctx));
  unlessSame(els.menu, [ui.menuOpen, ui.autoOpen, state.me, document.documentElement.lang],
    () => renderMenu(els.menu, ctx));
  renderCards(els.cards, ctx);
  if (ui.contactRoute) {
    els.contact.hidden = false;
    // The new-contact form holds what the operator types: build it once per route, not on every event.
    const route = ui.contactRoute;
    if (route.kind === "new") {
      unlessSame(els.contact, [route, document.documentElement.lang], () => renderContact(els.contact, ctx, route));
    } else {
      delete els.contact.dataset.signature;
      renderContact(els.contact, ctx, route);
    }
  } else {
    els.contact.hidden = true;
    delete els.contact.dataset.signature;
  }
  const tabs = visibleTabs();
  if (!tabs.some(([id]) => id === ui.tab)) ui.tab = "dial";
  replace(els.tablist, tabs.map(([id, label]) => h("button", {
    type: "button", role: "tab", id: `tab-${id}`, dataset: { key: `tab-${id}`, tab: id },
    "aria-selected": ui.tab === id ? "true" : "false", "aria-controls": `panel-${id}`,
    tabindex: ui.tab === id ? "0" : "-1", onclick: () => ctx.showTab(id),
    "aria-label": id === "callbacks" && state.tasks.size ? `${t(label)} (${state.tasks.size})` : null,
  }, t(label), id === "callbacks" && state.tasks.size ? h("span.count", { "aria-hidden": "true" }, state.tasks.size)
    : null)));
  for (const [id] of TABS) els.panels[id].hidden = ui.tab !== id;
  ctx.dialer.update();
  if (ui.tab === "callbacks") renderTasks(els.panels.callbacks, ctx);
  if (ui.tab === "history") renderHistory(els.panels.history, ctx);
  if (ui.tab === "team" && isSupervisor(state)) renderTeam(els.panels.team, ctx);
  if (ui.tab === "reports" && isSupervisor(state)) renderReports(els.panels.reports, ctx);
  const ringing = [...state.calls.values()].some((c) => c.state === "ringing" && relation(state, c) === "mine");
  document.title = ringing ? `☎ ${t("incoming")} — ctid` : "ctid";
}

function unlessSame(el, inputs, renderFn) {
  const signature = JSON.stringify(inputs);
  if (el.dataset.signature === signature) return;
  el.dataset.signature = signature;
  renderFn();
}

function toast(message, kind = "error") {
  const el = ctx.els.toast;
  if (!el) return;
  el.dataset.kind = kind;
  el.hidden = false;
  replace(el, h("span", {}, message), h("button.link", {
    type: "button", "aria-label": t("close"), onclick: () => { el.hidden = true; },
  }, "×"));
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { el.hidden = true; }, 8000);
}

function announce(message) {
  const el = ctx.els.announcer;
  if (el) el.textContent = message;
}

/** Build the page skeleton (again after a language change); views fill it on render(). */
function buildShell() {
  const app = document.getElementById("app");
  const els = ctx.els;
  els.header = h("header.top", { role: "banner" });
  els.menu = h("div.menu", { id: "menu", hidden: true });
  els.toast = h("div.toast", { role: "alert", hidden: true, id: "toast" });
  els.announcer = h("div.sr-only", { "aria-live": "assertive", id: "announcer" });
  els.cards = h("section.cards", { "aria-label": t("currentCalls"), id: "cards" });
  els.contact = h("section.contact", { id: "contact", hidden: true });
  els.tablist = h("div.tabs", { role: "tablist", "aria-label": t("sections") });
  const typed = ctx.dialer?.input.value || "";
  ctx.dialer = createDialer(ctx);
  ctx.dialer.input.value = typed;
  els.panels = {};
  for (const [id] of TABS) {
    els.panels[id] = h("section.tabpanel", { role: "tabpanel", id: `panel-${id}`, "aria-labelledby": `tab-${id}` });
  }
  els.panels.dial.append(ctx.dialer.element);
  els.main = h("main", {}, els.cards, els.contact, els.tablist, Object.values(els.panels));
  app.replaceChildren(els.header, els.menu, els.toast, els.announcer, els.main);
  document.documentElement.lang = document.documentElement.lang || "en";
}

// -- start -------------------------------------------------------------------------------------------
function showLogin(notice = "") {
  ctx.els.header = null;
  document.documentElement.dataset.ready = "";
  const app = document.getElementById("app");
  renderLogin(app, startSignedIn, notice);
}

function startSignedIn() {
  buildShell();
  render();
  connectHub();
}

function dialRequest(number) {
  const clean = String(number).replace(/^(tel|callto|sip):/i, "").trim();
  if (!clean) return;
  ctx.ui.tab = "dial";
  renderNow();
  ctx.dialer.prefill(decodeURIComponent(clean));
}

function readFragment() {
  const fragment = window.location.hash;
  ctx.ui.contactRoute = parseContactRoute(fragment);
  const dial = /^#dial=(.+)$/.exec(fragment);
  if (dial) {
    history.replaceState(null, "", window.location.pathname + window.location.search);
    queueMicrotask(() => dialRequest(dial[1]));
  }
}

async function main() {
  initLanguage(params.get("lang"));
  const stored = local.getItem("ctid.autoOpen");
  await auth.redeemFragmentCode();
  auth.takeFromFragment();
  readFragment();
  window.addEventListener("hashchange", async () => {
    if (auth.takeFromFragment() || await auth.redeemFragmentCode()) {
      // A new token handed over (launcher, CRM page): start again as that user.
      ctx.hub?.stop();
      ctx.state = createState();
      startSignedIn();
    }
    readFragment();
    render();
  });
  document.addEventListener("click", (event) => {
    const link = event.target.closest?.('a[href^="tel:"]');
    if (link && ctx.hub && canDial(ctx.state)) { // else the workstation's own tel: handler takes it
      event.preventDefault();
      ctx.act("Dial", link.getAttribute("href").slice(4));
    }
  });
  window.addEventListener("message", (event) => {
    // A CRM page hosting the panel (?crm=<its origin>) may ask it to dial: {type: "ctid.dial", number}.
    const crm = params.get("crm");
    if (!crm || event.source !== window.parent || event.origin !== new URL(crm).origin) return;
    const number = event.data?.type === "ctid.dial" ? clickedNumber({ value: event.data.number }) : null;
    if (number && ctx.hub) ctx.act("Dial", number);
  });
  window.addEventListener("ctid-unauthorized", () => {
    if (!ctx.hub) return;
    ctx.signOut();
    showLogin(t("sessionExpired"));
  });
  installShortcuts(ctx);
  let ticks = 0;
  setInterval(() => {
    ticks += 1;
    refreshTicking();
    if (ctx.ui.transfer && ticks % 5 === 0) refreshAgents(); // live presence while choosing a colleague
    if (ctx.state.hub.state === "reconnecting" && ctx.els.header) renderHeader(ctx.els.header, ctx);
  }, 1000);
  ctx.cif = await initCif((number) => {
    if (ctx.hub) ctx.act("Dial", number);
    else dialRequest(number);
  });
  ctx.cif = cifActive();
  ctx.ui.autoOpen = stored === null ? (ctx.cif || params.get("autopop") === "1") : stored === "1";
  if (params.get("autopop")) ctx.ui.autoOpen = params.get("autopop") === "1";
  if (auth.token) startSignedIn();
  else showLogin();
}

main();
