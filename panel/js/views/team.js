// Supervisor view: live KPIs for today and the agents board (presence, current call, time in state).

import { fmtDuration, fmtPercent, fmtPhone, h, replace, ticking } from "../dom.js";
import { t } from "../i18n.js";
import { computeKpis } from "../kpi.js";
import { presenceOf } from "./cards.js";

const STATUSES = ["available", "away", "dnd", "offline"];

export function renderTeam(root, ctx) {
  const { state } = ctx;
  const agents = [...state.agents.values()].sort((a, b) => a.name.localeCompare(b.name));
  const k = computeKpis(state.today.values(), agents);
  const tile = (id, label, value) => h("div.kpi", { dataset: { kpi: id } },
    h("span.kpi-value", {}, value), h("span.kpi-label", {}, label));
  const kpis = h("section.kpis", { "aria-label": t("kpisToday") },
    h("h2", {}, t("kpisToday")),
    h("div.kpi-grid", {},
      tile("ringing", t("kpiRinging"), k.ringing),
      tile("busy", t("kpiBusyAvailable"), `${k.busy} / ${k.available}`),
      tile("answered", t("kpiAnswered"), k.answered),
      tile("missed", t("kpiMissed"), k.missed),
      tile("answer-rate", t("kpiAnswerRate"), fmtPercent(k.answerRate)),
      tile("asa", t("kpiAsa"), fmtDuration(k.asa)),
      tile("talk", t("kpiTalk"), fmtDuration(k.avgTalk))));
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
    h("span.presence", {}, t(`presence_${presence}`), " · ", sinceIso ? ticking(sinceIso) : "—"),
    call ? h("span.current-call", {},
      `${t(call.state === "ringing" ? "incoming" : call.state === "held" ? "onHold" : "talking")}: `,
      fmtPhone(call.remote_number),
      call.contact?.matches?.length === 1 ? ` (${call.contact.matches[0].name})` : "") : null,
    h("label.sr-only", { for: selectId }, t("setStatusOf", { name: agent.name })), select);
}
