// Supervisor view: the server's live KPIs for today and the agents board (presence, current call, time in state).

import { fmtDuration, fmtPercent, fmtPhone, h, replace, ticking } from "../dom.js";
import { t } from "../i18n.js";
import { presenceOf } from "./cards.js";

const STATUSES = ["available", "away", "dnd", "offline"];

export function renderTeam(root, ctx) {
  const { state } = ctx;
  const agents = [...state.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
  // The figures are ctid's (Snapshot().kpis, then kpisUpdated): computed by the server from the
  // switchboard, with the formulas of the reports (docs/reports.md).
  const k = state.kpis || { now: { agents: {} }, today: {} };
  const now = k.now, today = k.today;
  const value = (x) => (x === undefined || x === null ? "—" : x);
  const tile = (id, label, shown) => h("div.kpi", { dataset: { kpi: id } },
    h("span.kpi-value", {}, shown), h("span.kpi-label", {}, label));
  const kpis = h("section.kpis", { "aria-label": t("kpisToday") },
    h("h2", {}, t("kpisToday")),
    h("div.kpi-grid", {},
      tile("ringing", t("kpiRinging"), value(now.ringing)),
      tile("oldest", t("kpiOldest"), now.oldest_ringing_since ? ticking(now.oldest_ringing_since) : "—"),
      tile("busy", t("kpiBusyAvailable"), `${value(now.agents.busy)} / ${value(now.agents.available)}`),
      tile("answered", t("kpiAnswered"), value(today.answered)),
      tile("missed", t("kpiMissed"), value(today.missed)),
      tile("answer-rate", t("kpiAnswerRate"), fmtPercent(today.answer_rate ?? null)),
      tile("service-level", t("kpiServiceLevel"), fmtPercent(today.service_level ?? null)),
      tile("asa", t("kpiAsa"), fmtDuration(today.asa)),
      tile("talk", t("kpiTalk"), fmtDuration(today.avg_talk))));
  const board = h("section.board", { "aria-label": t("agentsBoard") },
    h("h2", {}, t("agentsBoard")),
    h("ul.list.agents", {}, agents.map((agent) => agentRow(agent, ctx))));
  replace(root, kpis, board);
}

function agentRow(agent, ctx) {
  const presence = presenceOf(agent);
  const callId = agent.current_call || agent.ringing_call;
  const call = callId ? ctx.state.calls.get(callId) : null;
  const sinceIso = call ? (call.answered_at || call.started_at) : agent.status_since;
  const selectId = `status-of-${agent.id}`;
  const select = h("select.status-select", {
    id: selectId, dataset: { key: selectId },
    onchange: (event) => ctx.act("SetStatus", event.target.value, agent.id),
  }, STATUSES.map((s) => h("option", { value: s }, t(`presence_${s}`))));
  select.value = agent.status;
  return h("li.agent", { dataset: { agentId: agent.id, presence } },
    h("div.main", {},
      h("span.dot", { dataset: { presence }, "aria-hidden": "true" }),
      h("strong", {}, agent.name),
      agent.extension ? h("span.meta", {}, ` ${agent.extension}`) : null),
    h("span.presence", {}, t(`presence_${presence}`), " · ", sinceIso ? ticking(sinceIso) : "—",
      // who set it, when not the person: a locked workstation (launcher) or a launcher gone silent (lease)
      presence !== "busy" && agent.status_source && agent.status_source !== "user"
        ? h("span.presence-source", { dataset: { source: agent.status_source } },
          ` · ${t(`source_${agent.status_source}`)}`)
        : null),
    call ? h("span.current-call", {},
      `${t(call.state === "ringing" ? "incoming" : call.state === "held" ? "onHold" : "talking")}: `,
      fmtPhone(call.remote_number),
      call.contact?.matches?.length === 1 ? ` (${call.contact.matches[0].name})` : "") : null,
    h("label.sr-only", { for: selectId }, t("setStatusOf", { name: agent.name })), select);
}
