// Dynamics 365 Channel Integration Framework (CIF v1) mode: when the panel is loaded as a channel
// provider, Microsoft.CIFramework opens records for the screen pop and raises onclicktoact for
// click-to-dial. Without CIF every function here reports "not available" and the panel uses links.
//
// The library comes from the host page, or from ?ucilib=<org>/webresources/Widget/msdyn_ciLibrary.js
// (with ?base=<org> for data-crmurl), after which we wait for the CIFInitDone event.

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

/**
 * Detect CIF and wire it: width, click-to-act. Resolves true in CIF mode, false otherwise.
 * @param {(number: string) => void} onDial called with the number of a clicked phone field
 */
export async function initCif(onDial) {
  const params = new URLSearchParams(window.location.search);
  if (!library() && params.get("ucilib")) {
    const ready = new Promise((resolve) => {
      window.addEventListener("CIFInitDone", () => resolve(true), { once: true });
      setTimeout(() => resolve(false), INIT_TIMEOUT);
    });
    try {
      loadLibrary(params.get("ucilib"), params.get("base"));
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
