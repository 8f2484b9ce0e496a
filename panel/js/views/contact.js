// The built-in directory CRM's record pages, which its links point at: #/contact/<id> shows a contact
// with the calls the panel knows of, #/contact/new?phone=... prepares an entry for the contacts file
// (the directory CRM reads a file, so a new contact is added there by whoever maintains it).

import { fmtPhone, fmtTime, h, replace } from "../dom.js";
import { t } from "../i18n.js";

export function parseContactRoute(hash) {
  const m = /^#\/contact\/([^?]+)(?:\?(.*))?$/.exec(hash);
  if (!m) return null;
  const id = decodeURIComponent(m[1]);
  const params = new URLSearchParams(m[2] || "");
  return id === "new" ? { kind: "new", phone: params.get("phone") || "" } : { kind: "record", id };
}

function knownCalls(state) {
  const calls = new Map();
  for (const source of [state.history || [], state.today.values(), state.calls.values()]) {
    for (const call of source) calls.set(call.id, call);
  }
  return [...calls.values()];
}

export function renderContact(root, ctx, route) {
  const back = h("button.link", { type: "button", onclick: () => ctx.closeContact() }, `← ${t("back")}`);
  if (route.kind === "new") {
    replace(root, back, newContactForm(route.phone));
    return;
  }
  const calls = knownCalls(ctx.state)
    .filter((c) => (c.contact?.matches || []).some((m) => m.id === route.id))
    .sort((a, b) => (b.started_at || "").localeCompare(a.started_at || ""));
  const match = calls.length ? calls[0].contact.matches.find((m) => m.id === route.id) : null;
  if (!match) {
    replace(root, back, h("h2", {}, t("contact")), h("p.muted", {}, t("contactNotLoaded", { id: route.id })));
    return;
  }
  replace(root, back,
    h("h2.contact-name", {}, match.name),
    h("dl.details", {},
      match.company ? [h("dt", {}, t("company")), h("dd", {}, match.company)] : null,
      match.owner ? [h("dt", {}, t("owner")), h("dd", {}, ctx.state.agents.get(match.owner)?.name || match.owner)]
        : null,
      [h("dt", {}, t("phones")), h("dd", {}, (match.phones || []).map((p, i) => [i ? ", " : "",
        h("a", { href: `tel:${p}` }, fmtPhone(p))]))]),
    h("h3", {}, t("recentCalls")),
    h("ul.list", {}, calls.map((c) => h("li", {}, fmtTime(c.started_at), " · ", t(`outcome_${c.outcome || c.state}`)))));
}

function newContactForm(phone) {
  const name = h("input", { id: "new-name", required: true });
  const company = h("input", { id: "new-company" });
  const phones = h("input", { id: "new-phone", type: "tel", value: phone });
  const output = h("textarea", { id: "new-yaml", rows: "5", readonly: true, "aria-label": t("contactsFileEntry") });
  const quote = (v) => JSON.stringify(v);
  const update = () => {
    output.value = `- name: ${quote(name.value)}\n${company.value ? `  company: ${quote(company.value)}\n` : ""}`
      + `  phones: [${quote(phones.value)}]\n`;
  };
  for (const input of [name, company, phones]) input.addEventListener("input", update);
  update();
  return h("form.new-contact", { onsubmit: (e) => e.preventDefault() },
    h("h2", {}, t("newContact")),
    h("p.hint", {}, t("newContactHint")),
    h("label", { for: "new-name" }, t("name")), name,
    h("label", { for: "new-company" }, t("company")), company,
    h("label", { for: "new-phone" }, t("phone")), phones,
    output,
    h("button.secondary", { type: "button", onclick: () => navigator.clipboard?.writeText(output.value) }, t("copy")));
}
