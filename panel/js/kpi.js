// Live KPIs for today, computed in the page from the calls of today and the agents' presence.
// The formulas are documented in docs/panel.md ("Supervisor KPIs"); they follow docs/call-model.md
// section 10 (ASA includes queue and ring time; talk time excludes hold).

export function localMidnight(now = new Date()) {
  const midnight = new Date(now);
  midnight.setHours(0, 0, 0, 0);
  return midnight;
}

const mean = (values) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : null);

/**
 * @param {Iterable<object>} calls every call known today (Call JSON)
 * @param {Iterable<object>} agents Agent JSON
 * @param {Date} now
 */
export function computeKpis(calls, agents, now = new Date()) {
  const start = localMidnight(now).getTime();
  const at = (iso) => (iso ? Date.parse(iso) : NaN);
  const all = [...calls];
  const inbound = all.filter((c) => c.direction === "inbound" && at(c.started_at) >= start);
  const answered = inbound.filter((c) => c.answered_at);
  const missed = inbound.filter((c) => c.state === "ended" && !c.answered_at);
  const ended = all.filter((c) => c.state === "ended" && at(c.ended_at) >= start && c.talk_seconds !== null
    && c.talk_seconds !== undefined);
  const people = [...agents];
  return {
    ringing: all.filter((c) => c.state === "ringing").length,
    talking: all.filter((c) => c.state === "talking" || c.state === "held").length,
    busy: people.filter((a) => a.busy).length,
    available: people.filter((a) => a.status === "available" && !a.busy && !a.ringing_call).length,
    online: people.filter((a) => a.status !== "offline" || a.busy).length,
    answered: answered.length,
    missed: missed.length,
    answerRate: answered.length + missed.length ? answered.length / (answered.length + missed.length) : null,
    asa: mean(answered.map((c) => c.wait_seconds ?? (at(c.answered_at) - at(c.started_at)) / 1000)),
    avgTalk: mean(ended.map((c) => c.talk_seconds)),
  };
}
