// The top bar: connection state, the operator's status selector, and the menu (language, automatic
// CRM pop, tel: links, keyboard shortcuts, sign-out).

import { h, replace } from "../dom.js";
import { LANGUAGES, lang, t } from "../i18n.js";

const STATUSES = ["available", "away", "dnd", "offline"];

export function renderHeader(root, ctx) {
  const { state, ui } = ctx;
  const myAgent = state.me?.agent ? state.agents.get(state.me.agent) : null;
  const status = myAgent ? h("div.status", {},
    h("label.sr-only", { for: "status-select" }, t("myStatus")),
    h("select", {
      id: "status-select", dataset: { key: "status-select", presence: myAgent.busy ? "busy" : myAgent.status },
      onchange: (event) => ctx.act("SetStatus", event.target.value),
    }, STATUSES.map((s) => h("option", { value: s, selected: s === myAgent.status }, t(`presence_${s}`))))) : null;
  const menuOpen = ui.menuOpen;
  replace(root,
    h("span.brand", { title: state.me ? `${state.me.subject} (${t(`role_${state.me.role}`)})` : "" }, "ctid"),
    connection(ctx),
    status,
    h("button.icon", {
      type: "button", id: "menu-button", dataset: { key: "menu-button" }, "aria-expanded": menuOpen ? "true" : "false",
      "aria-controls": "menu", "aria-label": t("menu"), onclick: () => ctx.toggleMenu(),
    }, "☰"));
}

function connection(ctx) {
  const { state, detail } = ctx.state.hub;
  let text = t(`conn_${state}`);
  if (state === "reconnecting" && detail.retryAt) {
    const seconds = Math.max(0, Math.ceil((detail.retryAt - Date.now()) / 1000));
    text = t("conn_retry", { seconds });
  }
  return h("div.conn", { id: "connection", dataset: { state }, role: "status", title: detail.error?.message || "" },
    h("span.dot", { "aria-hidden": "true" }), h("span.conn-text", {}, text),
    state === "reconnecting" ? h("button.link", {
      type: "button", dataset: { key: "reconnect" }, onclick: () => ctx.reconnect(),
    }, t("reconnectNow")) : null);
}

export function renderMenu(root, ctx) {
  const { state, ui } = ctx;
  root.hidden = !ui.menuOpen;
  if (!ui.menuOpen) {
    root.replaceChildren();
    return;
  }
  const language = h("select", {
    id: "language-select", dataset: { key: "language-select" },
    onchange: (event) => ctx.setLanguage(event.target.value),
  }, LANGUAGES.map(([code, name]) => h("option", { value: code, selected: code === lang() }, name)));
  const autoOpen = h("input", {
    id: "auto-open", type: "checkbox", checked: ui.autoOpen, dataset: { key: "auto-open" },
    onchange: (event) => ctx.setAutoOpen(event.target.checked),
  });
  const telHandler = "registerProtocolHandler" in navigator ? h("button.link", {
    type: "button", dataset: { key: "tel-handler" }, onclick: () => ctx.registerTel(),
  }, t("handleTelLinks")) : null;
  replace(root,
    state.me ? h("p.who", {}, t("signedInAs", { name: state.me.subject }), ` (${t(`role_${state.me.role}`)})`) : null,
    h("label", { for: "language-select" }, t("language")), language,
    h("label.check", { for: "auto-open" }, autoOpen, t("autoOpen")),
    ctx.cif ? h("p.hint", {}, t("cifMode")) : null,
    telHandler,
    h("details.shortcuts", {}, h("summary", {}, t("shortcuts")), h("dl", {}, SHORTCUT_KEYS.map(([keys, name]) =>
      [h("dt", {}, h("kbd", {}, keys.replace("{n}", ctx.sections().length))), h("dd", {}, t(name))]))),
    h("button.secondary", { type: "button", id: "sign-out", dataset: { key: "sign-out" }, onclick: () => ctx.signOut() },
      t("signOut")));
}

export const SHORTCUT_KEYS = [
  ["Alt+Shift+D", "scDial"],
  ["Alt+Shift+S", "scStatus"],
  ["Alt+Shift+O", "scOpen"],
  ["Alt+Shift+H", "scHold"],
  ["Alt+Shift+T", "scTransfer"],
  ["Alt+Shift+E", "scHangup"],
  ["Alt+Shift+1…{n}", "scTabs"], // n: the sections this user sees
  ["←/→", "scTabArrows"],
  ["Esc", "scEscape"],
];
