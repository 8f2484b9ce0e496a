// Missed calls / callback tasks with "call back" (dials the number; ctid closes the task when the
// callback is answered).

import { fmtPhone, fmtTime, h, replace } from "../dom.js";
import { t } from "../i18n.js";
import { canDial, isSupervisor } from "../state.js";

export function renderTasks(root, ctx) {
  const tasks = [...ctx.state.tasks.values()]
    .sort((a, b) => (b.last_missed_at || "").localeCompare(a.last_missed_at || ""));
  if (!tasks.length) {
    replace(root, h("p.empty", {}, t("noCallbacks")));
    return;
  }
  const dial = canDial(ctx.state);
  replace(root, h("ul.list.tasks", { "aria-label": t("callbacks") }, tasks.map((task) => {
    const match = contactOf(task, ctx.state);
    return h("li.task", { dataset: { taskId: task.id, number: task.number } },
      h("div.main", {},
        h("strong.number", {}, fmtPhone(task.number)),
        match ? h("span.contact-name", {}, match.name) : null,
        h("span.meta", {}, t("missedTimes", { count: task.missed_count }), " · ", fmtTime(task.last_missed_at),
          task.owner && isSupervisor(ctx.state) ? ` · ${ctx.state.agents.get(task.owner)?.name || task.owner}` : "",
          !task.owner ? ` · ${t("sharedQueue")}` : "")),
      dial ? h("button.primary", {
        type: "button", dataset: { key: `callback-${task.id}`, action: "callback" },
        "aria-label": t("callBackTo", { number: fmtPhone(task.number) }),
        onclick: () => ctx.act("Dial", task.number),
      }, t("callBack")) : null);
  })));
}

/** The task's CRM match, or the one the panel saw on its missed calls (the task may predate the lookup). */
function contactOf(task, state) {
  const contacts = [task.contact, ...[...task.missed_calls].reverse()
    .map((id) => (state.calls.get(id) || state.today.get(id))?.contact)];
  const found = contacts.find((c) => c?.matches?.length === 1);
  return found ? found.matches[0] : null;
}
