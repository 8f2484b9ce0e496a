// Dynamics 365 Channel Integration Framework (CIF v1) mode: when the panel is loaded as a channel
// provider, Microsoft.CIFramework opens records for the screen pop and raises onclicktoact for
// click-to-dial. Without CIF every function here reports "not available" and the panel uses links.
//
// The library comes from the host page, or from ?ucilib=<org>/webresources/Widget/msdyn_ciLibrary.js
// (with ?base=<org> for data-crmurl), after which we wait for the CIFInitDone event. A library URL is
// loaded only from an origin ctid allows (/panel/config.json: panel.cif_origins, by default the
// Dynamics organization of ctid's CRM settings); any other is refused with a visible message, since
// a script it loaded would run with the operator's token within reach.

import { t } from "./i18n.js";

const SELECT = { contact: "fullname,telephone1", account: "name,telephone1", lead: "fullname,telephone1" };
const WIDTH = 360;
const INIT_TIMEOUT = 10000;

let cif = null;

export const cifActive = () => cif !== null;

function library() {
  return window.Microsoft?.CIFramework || null;
}

function loadLibrary(src, crmUrl) {
  const script = document.createElement("script");
  script.src = src;
  script.dataset.cifid = "CIFMainLibrary";
  script.dataset.crmurl = crmUrl || new URL(src).origin;
  document.head.append(script);
}

/** The origins ctid allows the CIF library from ([] when ctid cannot be asked). */
async function allowedOrigins() {
  try {
    const response = await fetch(new URL("config.json", new URL("../", import.meta.url)), { cache: "no-store" });
    const config = response.ok ? await response.json() : {};
    return Array.isArray(config.cif_origins) ? config.cif_origins : [];
  } catch {
    return [];
  }
}

/** Whether ``url`` is an https (or http) URL of one of ``origins``; never throws. */
export function fromAllowedOrigin(url, origins) {
  try {
    const parsed = new URL(url);
    return ["https:", "http:"].includes(parsed.protocol) && origins.includes(parsed.origin);
  } catch {
    return false;
  }
}

function refuse(src) {
  const note = document.createElement("p");
  note.className = "cif-refused";
  note.setAttribute("role", "alert");
  note.textContent = t("cifRefused", { url: src });
  document.body.prepend(note);
  console.warn(`ctid: refused the CIF library ${src}: its origin is not in panel.cif_origins`);
}

/**
 * Detect CIF and wire it: width, click-to-act. Resolves true in CIF mode, false otherwise.
 * @param {(number: string) => void} onDial called with the number of a clicked phone field
 */
export async function initCif(onDial) {
  const params = new URLSearchParams(window.location.search);
  if (!library() && params.get("ucilib")) {
    const src = params.get("ucilib");
    const origins = await allowedOrigins();
    const base = params.get("base");
    if (!fromAllowedOrigin(src, origins) || (base && !fromAllowedOrigin(base, origins))) {
      refuse(base && fromAllowedOrigin(src, origins) ? base : src);
      return false;
    }
    const ready = new Promise((resolve) => {
      window.addEventListener("CIFInitDone", () => resolve(true), { once: true });
      setTimeout(() => resolve(false), INIT_TIMEOUT);
    });
    try {
      loadLibrary(src, base);
    } catch (error) {
      console.warn("cannot load the CIF library", error);
      return false;
    }
    await ready;
  }
  cif = library();
  if (!cif) return false;
  document.documentElement.classList.add("cif");
  await call("setWidth", WIDTH);
  await call("addHandler", "onclicktoact", (payload) => {
    const number = clickedNumber(payload);
    if (number) {
      call("setMode", 1);
      onDial(number);
    }
    return Promise.resolve();
  });
  return true;
}

/** The phone number of an onclicktoact payload: a JSON string {"value": "...", "name": ...}. */
export function clickedNumber(payload) {
  try {
    const data = typeof payload === "string" ? JSON.parse(payload) : payload;
    return (data && (data.value || data.phone)) ? String(data.value || data.phone) : null;
  } catch {
    return null;
  }
}

async function call(method, ...args) {
  if (!cif || typeof cif[method] !== "function") return null;
  try {
    return await cif[method](...args);
  } catch (error) {
    console.warn(`CIF ${method} failed`, error);
    return null;
  }
}

/** Bring the panel into view (docked) on an incoming call. */
export function dock() {
  return call("setMode", 1);
}

/** Open a CRM record found by ctid. */
export function openRecord(match) {
  const entity = match.entity || "contact";
  const select = SELECT[entity] ? `$select=${SELECT[entity]}&` : "";
  const query = `?${select}$filter=${entity}id eq ${match.id}`;
  return call("searchAndOpenRecords", entity, query, false);
}

/** Open a new contact form with the caller's number prefilled. */
export function openNewContact(number) {
  return call("openForm", JSON.stringify({ entityName: "contact" }), JSON.stringify({ telephone1: number }));
}
