// The page's view of ctid: rebuilt from Snapshot() after every (re)connect, then kept current by hub
// events. Nothing here is authoritative: a reload asks ctid again.

export const ACTIVE = new Set(["ringing", "talking", "held"]);

export function createState() {
  return {
    me: null, // {subject, role, agent}
    connectors: {}, // instance -> [capability]
    calls: new Map(), // id -> call JSON (active, plus recently ended ones still shown)
    agents: new Map(), // id -> agent JSON
    tasks: new Map(), // id -> open task JSON
    today: new Map(), // id -> call JSON of today loaded from the history (shown in cards only)
    kpis: null, // supervisors: live KPIs computed by ctid (Snapshot().kpis, then kpisUpdated)
    history: null, // [call JSON] newest first, once loaded
    dismissed: new Set(), // call ids whose ended card the operator closed
    hub: { state: "disconnected", detail: {} },
  };
}

export const isSupervisor = (state) => ["supervisor", "admin"].includes(state.me?.role);

/** Apply a Snapshot() result: the full truth at this moment. Ended cards not in it are kept. */
export function applySnapshot(state, snapshot) {
  state.me = snapshot.me || state.me;
  state.connectors = snapshot.connectors || {};
  if (snapshot.kpis) state.kpis = snapshot.kpis; // supervisors: the server's live KPIs
  const live = new Set(snapshot.calls.map((c) => c.id));
  for (const [id, call] of state.calls) {
    // A call we showed as active but ctid no longer lists has ended while we were away.
    if (!live.has(id) && ACTIVE.has(call.state)) state.calls.delete(id);
  }
  for (const call of snapshot.calls) putCall(state, call);
  state.agents = new Map(snapshot.agents.map((a) => [a.id, a]));
  state.tasks = new Map(snapshot.tasks.filter((t) => t.status === "open").map((t) => [t.id, t]));
}

function newer(a, b) {
  // Keep the most recent version of a call when updates and a snapshot cross.
  return !b || !a.updated_at || !b.updated_at || a.updated_at >= b.updated_at;
}

/**
 * Record a call. Live updates (``live``) also become or update a card; calls loaded from the history
 * only feed today's KPIs and update a card that is already shown.
 */
export function putCall(state, call, live = true) {
  const known = state.calls.get(call.id) || state.today.get(call.id);
  if (!newer(call, known)) return false;
  if (live || state.calls.has(call.id)) state.calls.set(call.id, call);
  state.today.set(call.id, call);
  if (state.history) {
    const index = state.history.findIndex((c) => c.id === call.id);
    if (index >= 0) state.history[index] = call;
    else if (call.state === "ended" && inHistory(state, call)) state.history.unshift(call);
  }
  return true;
}

function inHistory(state, call) {
  return isSupervisor(state) || call.agent === state.me?.agent;
}

export function putAgent(state, agent) {
  state.agents.set(agent.id, agent);
}

export function putTask(state, task) {
  if (task.status === "open") state.tasks.set(task.id, task);
  else state.tasks.delete(task.id);
}

/** How a call concerns the signed-in agent: "mine", "transferred" (away from me), "other". */
export function relation(state, call) {
  const me = state.me?.agent;
  if (!me) return "other";
  if (call.agent === me) return "mine";
  if (!call.agent && (call.ringing_agents || []).includes(me)) return "mine";
  if (call.state === "ringing" && (call.ringing_agents || []).includes(me)) return "mine";
  if (call.transferred_from === me) return "transferred";
  return "other";
}

/** Capabilities of the connector that owns ``call``. */
export function capabilities(state, call) {
  return new Set(state.connectors[call.connector] || []);
}

/** Dialing rings the user's own phone first: it needs a line (an agent) and a connector that dials. */
export function canDial(state) {
  return Boolean(state.me?.agent) && Object.values(state.connectors).some((caps) => caps.includes("dial"));
}

/** Calls to show as cards, most urgent first: ringing, then talking/held, then ended (not dismissed). */
export function visibleCalls(state) {
  const rank = { ringing: 0, talking: 1, held: 1, ended: 2 };
  return [...state.calls.values()]
    .filter((call) => !state.dismissed.has(call.id))
    .filter((call) => isSupervisor(state) || relation(state, call) !== "other"
      || (call.state === "ended" && !call.agent)) // a call that rang me and nobody answered
    .sort((a, b) => rank[a.state] - rank[b.state] || (b.started_at || "").localeCompare(a.started_at || ""));
}
