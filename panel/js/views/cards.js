// Call cards: the screen pop (number, line, group, CRM match) and the call controls that the call's
// connector supports (hold / unhold, transfer to a colleague or the first free one, hang up).

import { fmtDuration, fmtPhone, h, replace, ticking } from "../dom.js";
import { t } from "../i18n.js";
import { capabilities, isSupervisor, relation, visibleCalls } from "../state.js";

/**
 * @param {HTMLElement} root
 * @param {object} ctx {state, ui, cif, act(method, ...args), openMatch(call, match), openNew(call), dismiss(id),
 *   toggleTransfer(callId), closeTransfer()}
 */
export function renderCards(root, ctx) {
  const calls = visibleCalls(ctx.state);
  replace(root, calls.length ? calls.map((call) => card(call, ctx)) : null);
  root.hidden = calls.length === 0;
}

function stateLabel(call, ctx) {
  if (call.state === "ringing") return call.direction === "outbound" ? t("dialing") : t("incoming");
  if (call.state === "talking") return t("talking");
  if (call.state === "held") return t("onHold");
  return t(`outcome_${call.outcome || "ended"}`);
}

function agentName(ctx, id) {
  return ctx.state.agents.get(id)?.name || id;
}

function card(call, ctx) {
  const { state } = ctx;
  const rel = relation(state, call);
  const titleId = `call-${call.id}-title`;
  const timer = call.state === "ringing" ? ticking(call.started_at)
    : call.state === "ended" ? h("span", {}, fmtDuration(call.talk_seconds ?? call.wait_seconds))
      : ticking(call.answered_at || call.started_at);
  const details = [
    call.line_number && [t("line"), fmtPhone(call.line_number), "tel"],
    call.group && [t("group"), call.group],
    call.agent && (isSupervisor(state) || rel !== "mine") && [t("agent"), agentName(ctx, call.agent)],
    call.transferred_from && [t("transferredFrom"), agentName(ctx, call.transferred_from)],
  ].filter(Boolean);
  return h(`article.card.state-${call.state}`, {
    "aria-labelledby": titleId,
    dataset: { callId: call.id, state: call.state },
  },
  h("header.card-head", {},
    h("span.badge", { dataset: { state: call.state } }, stateLabel(call, ctx)),
    call.direction === "outbound" ? h("span.dir", {}, t("outbound")) : null,
    h("span.timer", { "aria-label": t("duration") }, timer)),
  h("h2.number", { id: titleId }, fmtPhone(call.remote_number)),
  details.length ? h("dl.details", {}, details.map(([k, v, cls]) => [h("dt", {}, k), h("dd", { class: cls }, v)]))
    : null,
  crmSection(call, ctx),
  rel === "transferred" && call.state !== "ended"
    ? h("p.note", {}, t("transferredTo", { name: agentName(ctx, call.agent) })) : null,
  controls(call, ctx, rel),
  transferChooser(call, ctx),
  call.state === "ended" ? h("button.link.dismiss", {
    type: "button", dataset: { key: `dismiss-${call.id}` }, onclick: () => ctx.dismiss(call.id),
    "aria-label": t("dismissCall", { number: fmtPhone(call.remote_number) }),
  }, t("dismiss")) : null);
}

function crmSection(call, ctx) {
  const contact = call.contact || { status: "pending" };
  const matches = contact.matches || [];
  const body = [];
  if (contact.status === "pending") {
    body.push(h("p.muted", {}, t("crmLooking")));
  } else if (contact.status === "found" && matches.length === 1) {
    const m = matches[0];
    body.push(h("p.contact-name", {}, m.name),
      m.company ? h("p.company", {}, m.company) : null,
      m.owner ? h("p.owner", {}, t("owner"), ": ", agentName(ctx, m.owner)) : null,
      openButton(call, m, ctx, t("openInCrm")));
  } else if (matches.length > 1) {
    body.push(h("p", {}, t("severalMatches", { count: matches.length })),
      h("ul.matches", { "aria-label": t("chooseRecord") }, matches.map((m) => h("li", {},
        openButton(call, m, ctx, m.company ? `${m.name} — ${m.company}` : m.name)))));
  } else if (contact.status === "unavailable") {
    body.push(h("p.warn", {}, t("crmUnavailable")));
  } else {
    body.push(h("p.muted", {}, t("unknownCaller")));
    if (contact.new_contact_url || ctx.cif) {
      body.push(h("button.secondary", {
        type: "button", dataset: { key: `new-${call.id}`, action: "create-contact" },
        onclick: () => ctx.openNew(call),
      }, t("createContact")));
    }
  }
  return h("section.crm", { "aria-label": t("crmRecord"), dataset: { status: contact.status } }, body);
}

function openButton(call, match, ctx, label) {
  return h("button.secondary.open-record", {
    type: "button",
    dataset: { key: `open-${call.id}-${match.id}`, matchId: match.id },
    onclick: () => ctx.openMatch(call, match),
  }, label);
}

function controls(call, ctx, rel) {
  if (call.state === "ended") return null;
  if (rel !== "mine" && !isSupervisor(ctx.state)) return null;
  const caps = capabilities(ctx.state, call);
  const buttons = [];
  const button = (action, label, onclick, cls = "secondary") => h(`button.${cls}`, {
    type: "button", dataset: { key: `${action}-${call.id}`, action }, onclick,
  }, label);
  if (caps.has("hold") && call.state === "talking") {
    buttons.push(button("hold", t("hold"), () => ctx.act("Hold", call.id)));
  }
  const consulting = consultations(ctx).has(call.id);
  if (consulting) {
    // A consultative transfer runs: the caller waits on hold while the operator talks to the colleague.
    const finish = (method) => ctx.act(method, call.id).then((ok) => {
      if (!ok) return;
      consultations(ctx).delete(call.id);
      ctx.closeTransfer(); // renders again: the call's own update may have been drawn before this answer
    });
    buttons.push(button("transfer-complete", t("completeTransfer"), () => finish("CompleteTransfer"), "primary"));
    buttons.push(button("transfer-cancel", t("cancelTransfer"), () => finish("CancelTransfer")));
  }
  if (caps.has("hold") && call.state === "held" && !consulting) {
    buttons.push(button("unhold", t("unhold"), () => ctx.act("Unhold", call.id)));
  }
  if (caps.has("transfer") && call.state !== "ringing" && !consulting) {
    const open = ctx.ui.transfer?.callId === call.id;
    buttons.push(h("button.secondary", {
      type: "button", dataset: { key: `transfer-${call.id}`, action: "transfer" },
      "aria-expanded": open ? "true" : "false",
      onclick: () => ctx.toggleTransfer(call.id),
    }, t("transfer")));
  }
  if (caps.has("hangup")) {
    const label = call.state !== "ringing" ? t("hangUp") : call.direction === "outbound" ? t("cancelCall") : t("decline");
    buttons.push(button("hangup", label, () => ctx.act("Hangup", call.id), "danger"));
  }
  return buttons.length ? h("div.controls", { role: "group", "aria-label": t("callControls") }, buttons) : null;
}

const PRESENCE_ORDER = { available: 0, away: 1, dnd: 2, busy: 3, offline: 4 };

function transferChooser(call, ctx) {
  if (ctx.ui.transfer?.callId !== call.id || call.state === "ended") return null;
  const selectId = `transfer-target-${call.id}`;
  const colleagues = [...ctx.state.agents.values()]
    .filter((a) => a.id !== call.agent)
    .sort((a, b) => (PRESENCE_ORDER[presenceOf(a)] - PRESENCE_ORDER[presenceOf(b)]) || a.name.localeCompare(b.name));
  const select = h("select", {
    id: selectId, dataset: { key: selectId },
    onchange: (event) => { ctx.ui.transfer.target = event.target.value; },
  },
  h("option", { value: "free" }, t("firstFree")),
  colleagues.map((a) => h("option", { value: a.id }, `${a.name} — ${t(`presence_${presenceOf(a)}`)}`)));
  select.value = ctx.ui.transfer.target || "free";
  // Connectors that offer it (consult_transfer): hold the caller and talk to the colleague first.
  const consultId = `transfer-consult-${call.id}`;
  const consult = capabilities(ctx.state, call).has("consult_transfer")
    ? h("input", { type: "checkbox", id: consultId, dataset: { key: consultId } }) : null;
  return h("form.transfer", {
    "aria-label": t("transferCall"),
    onsubmit: (event) => {
      event.preventDefault();
      const target = select.value;
      const mode = consult?.checked ? "consult" : "blind";
      ctx.act("Transfer", call.id, target, mode).then((ok) => {
        if (ok && mode === "consult") consultations(ctx).add(call.id);
        if (ok) ctx.closeTransfer();
      });
    },
  },
  h("label", { for: selectId }, t("transferTo")), select,
  consult ? h("div.row", {}, consult, h("label", { for: consultId }, t("consultFirst"))) : null,
  h("div.row", {},
    h("button.primary", { type: "submit", dataset: { key: `transfer-go-${call.id}`, action: "transfer-go" } },
      t("transferNow")),
    h("button.link", { type: "button", onclick: () => ctx.closeTransfer() }, t("cancel"))));
}

/** Calls with a consultative transfer in progress, as this panel started them (kept for the page's life). */
function consultations(ctx) {
  ctx.ui.consulting ??= new Set();
  return ctx.ui.consulting;
}

export function presenceOf(agent) {
  if (agent.busy) return "busy";
  if (agent.ringing_call) return "busy";
  return agent.status;
}
