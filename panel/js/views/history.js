// Call history: own calls (supervisors: everyone's), newest first, with a player for recordings.

import { recordingLink, request } from "../api.js";
import { fmtDuration, fmtPhone, fmtTime, h, replace } from "../dom.js";
import { t } from "../i18n.js";
import { canDial, isSupervisor } from "../state.js";

export async function loadHistory(ctx) {
  const { items } = await request("GET", "api/calls?order=desc&limit=50");
  ctx.state.history = items.filter((call) => call.state === "ended");
}

export function renderHistory(root, ctx) {
  const calls = ctx.state.history;
  if (calls === null) {
    replace(root, h("p.muted", {}, t("loading")));
    return;
  }
  if (!calls.length) {
    replace(root, h("p.empty", {}, t("noHistory")));
    return;
  }
  const players = new Map([...root.querySelectorAll("audio[data-call-id]")].map((a) => [a.dataset.callId, a]));
  replace(root, h("ul.list.history", { "aria-label": t("history") }, calls.map((call) => {
    const match = call.contact?.matches?.length === 1 ? call.contact.matches[0] : null;
    const answered = call.outcome === "answered";
    return h("li.history-item", { dataset: { callId: call.id, outcome: call.outcome || "" } },
      h("div.main", {},
        h("span.dir", { "aria-label": t(call.direction) }, call.direction === "outbound" ? "↗" : "↙"),
        call.remote_number && canDial(ctx.state)
          ? h("a.number", { href: `tel:${call.remote_number}`, dataset: { key: `hist-${call.id}` },
            title: t("callBackTo", { number: fmtPhone(call.remote_number) }) }, fmtPhone(call.remote_number))
          : h("span.number", {}, fmtPhone(call.remote_number)),
        match ? h("span.contact-name", {}, match.name) : null),
      h("span.meta", {},
        fmtTime(call.started_at), " · ",
        h("span", { class: answered ? "ok" : "bad" }, t(`outcome_${call.outcome || "ended"}`)),
        answered ? ` · ${fmtDuration(call.talk_seconds)}` : "",
        isSupervisor(ctx.state) && call.agent ? ` · ${ctx.state.agents.get(call.agent)?.name || call.agent}` : ""),
      call.recording_url ? (players.get(call.id) || player(call)) : null);
  })));
}

function player(call) {
  const audio = h("audio", {
    controls: true, preload: "none", dataset: { callId: call.id },
    "aria-label": t("recordingOf", { number: fmtPhone(call.remote_number) }),
  });
  const unavailable = () => audio.replaceWith(h("span.meta.no-recording", {}, t("noRecording")));
  let expires = 0;
  let renewed = false;
  const link = async () => {
    try {
      const { url, expiresIn } = await recordingLink(call.id);
      expires = Date.now() + expiresIn * 1000;
      audio.src = url;
      return true;
    } catch {
      unavailable();
      return false;
    }
  };
  // ctid answers 404/409/502 when the PBX has no recording (yet): say so instead of a dead player.
  // A link that expired while the page stood open is renewed once, then played.
  audio.addEventListener("error", async () => {
    if (!renewed && Date.now() >= expires) {
      renewed = true;
      if (await link()) audio.play().catch(() => {});
      return;
    }
    unavailable();
  });
  link();
  return audio;
}
