// DOM and formatting helpers shared by the views: h() builds elements, fmt* format numbers and times.

import { lang, t } from "./i18n.js";

/**
 * h("button.primary", {onclick, "aria-label": ...}, "text", child) -> HTMLElement.
 * Attributes: on* are listeners, "dataset" an object, true/false toggle boolean attributes, null skips.
 */
export function h(spec, attrs = {}, ...children) {
  const [tag, ...classes] = spec.split(".");
  const el = document.createElement(tag || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name === "class") el.className += (el.className ? " " : "") + value;
    else if (name === "value") el.value = value;
    else if (value === true) el.setAttribute(name, "");
    else el.setAttribute(name, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/**
 * Replace the children of ``container`` with ``children``, keeping keyboard focus on the element with
 * the same data-key (re-rendering must never throw the operator's focus away).
 */
export function replace(container, ...children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.key : null;
  container.replaceChildren();
  append(container, children);
  if (key) {
    const again = container.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (again) again.focus({ preventScroll: true });
  }
}

/** "+79161234567" -> "+7 916 123-45-67" for Russian numbers; others unchanged. */
export function fmtPhone(number) {
  if (!number) return t("unknownNumber");
  const m = /^\+7(\d{3})(\d{3})(\d{2})(\d{2})$/.exec(number);
  return m ? `+7 ${m[1]} ${m[2]}-${m[3]}-${m[4]}` : number;
}

/** Seconds -> "m:ss" or "h:mm:ss". */
export function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  const total = Math.max(0, Math.round(seconds));
  const hrs = Math.floor(total / 3600);
  const min = Math.floor((total % 3600) / 60);
  const sec = String(total % 60).padStart(2, "0");
  return hrs ? `${hrs}:${String(min).padStart(2, "0")}:${sec}` : `${min}:${sec}`;
}

export function since(iso, now = Date.now()) {
  return iso ? (now - Date.parse(iso)) / 1000 : null;
}

/** A time of day today, or date + time for other days, in the panel's language. */
export function fmtTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  const today = new Date();
  const sameDay = date.toDateString() === today.toDateString();
  const options = sameDay ? { hour: "2-digit", minute: "2-digit" }
    : { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" };
  return date.toLocaleString(lang(), options);
}

export function fmtPercent(value) {
  return value === null ? "—" : `${Math.round(value * 100)} %`;
}

/** Live "time since" text: elements with data-since=<iso> are refreshed every second by the app. */
export function ticking(iso, prefix = "") {
  return h("span.ticking", { dataset: { since: iso || "", prefix } }, prefix + fmtDuration(since(iso)));
}

export function refreshTicking(root = document) {
  const now = Date.now();
  for (const el of root.querySelectorAll("[data-since]")) {
    if (el.dataset.since) el.textContent = (el.dataset.prefix || "") + fmtDuration(since(el.dataset.since, now));
  }
}
