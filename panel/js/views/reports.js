// Reports view (supervisors): pick a report, a period and a grouping; see its chart and table, the
// definitions of its figures, and download it as CSV or XLSX. Everything comes from
// GET /api/reports/{name} (docs/reports.md); labels of the table come translated from ctid.

import { auth, base, request } from "../api.js";
import { fmtDuration, h, replace } from "../dom.js";
import { lang, t } from "../i18n.js";

const view = { catalogue: null, report: "summary", from: null, to: null, groupBy: null, result: null,
  error: null, loading: false, built: null };

const today = () => {
  const now = new Date();
  return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}-${String(now.getDate()).padStart(2, "0")}`;
};

function query(format) {
  const params = new URLSearchParams({ from: view.from, to: view.to, lang: lang(), format });
  if (view.groupBy) params.set("group_by", view.groupBy);
  return `api/reports/${encodeURIComponent(view.report)}?${params}`;
}

/** Render (once per language; afterwards only the result area changes, so the pickers keep focus). */
export function renderReports(root, ctx) {
  if (!view.from) view.from = view.to = today();
  if (view.built !== lang() || !root.firstChild) {
    view.built = lang();
    build(root, ctx);
    // ctid translates a report's labels and definitions: after a language switch, ask again.
    if (view.result && view.result.params?.lang !== lang() && !view.loading) show(root, ctx);
  }
  if (!view.catalogue) loadCatalogue(root, ctx);
}

async function loadCatalogue(root, ctx) {
  view.catalogue = [];
  try {
    view.catalogue = (await request("GET", "api/reports")).items;
  } catch (error) {
    view.error = error.message;
  }
  build(root, ctx);
}

function build(root, ctx) {
  const spec = (view.catalogue || []).find((r) => r.name === view.report);
  const choices = spec ? spec.group_by : [];
  if (!choices.includes(view.groupBy)) view.groupBy = choices[0] || null;
  const select = h("select", { id: "report-name", dataset: { key: "report-name" },
    onchange: (e) => { view.report = e.target.value; view.result = null; build(root, ctx); } },
  (view.catalogue || []).map((r) => h("option", { value: r.name }, t(`report_${r.name}`))));
  select.value = view.report;
  const group = h("select", { id: "report-group-by", dataset: { key: "report-group-by" },
    onchange: (e) => { view.groupBy = e.target.value; } },
  choices.map((key) => h("option", { value: key }, t(`groupBy_${key}`))));
  if (view.groupBy) group.value = view.groupBy;
  const date = (id, key) => h("input", { id, type: "date", value: view[key], dataset: { key: id }, required: true,
    onchange: (e) => { view[key] = e.target.value; } });
  const form = h("form.report-form", { onsubmit: (e) => { e.preventDefault(); show(root, ctx); } },
    h("label", { for: "report-name" }, t("reportPick")), select,
    h("label", { for: "report-from" }, t("periodFrom")), date("report-from", "from"),
    h("label", { for: "report-to" }, t("periodTo")), date("report-to", "to"),
    h("label", { for: "report-group-by" }, t("groupBy")), group,
    h("button.primary", { type: "submit", dataset: { key: "report-show" } }, t("showReport")));
  const downloads = h("div.report-downloads", {},
    h("button", { type: "button", dataset: { key: "report-csv" }, onclick: () => download("csv") }, t("downloadCsv")),
    h("button", { type: "button", dataset: { key: "report-xlsx" }, onclick: () => download("xlsx") }, t("downloadXlsx")));
  replace(root, h("h2", {}, t("reportsTitle")), form, downloads, h("div.report-result", { id: "report-result" },
    result()));
}

async function show(root, ctx) {
  view.loading = true;
  view.error = null;
  const area = root.querySelector("#report-result");
  if (area) replace(area, h("p.meta", {}, t("loading")));
  try {
    view.result = await request("GET", query("json"));
  } catch (error) {
    view.result = null;
    view.error = error.message;
  }
  view.loading = false;
  if (area) replace(area, result());
}

async function download(format) {
  // The API needs the bearer token, so the file is fetched and handed to the browser as a blob.
  view.error = null;
  const response = await fetch(new URL(query(format), base), { headers: { Authorization: `Bearer ${auth.token}` } });
  if (!response.ok) {
    const area = document.getElementById("report-result");
    const data = await response.json().catch(() => ({}));
    if (area) replace(area, h("p.error", { role: "alert" }, data.message || response.statusText));
    return;
  }
  const name = /filename="([^"]+)"/.exec(response.headers.get("Content-Disposition") || "")?.[1] || `report.${format}`;
  const url = URL.createObjectURL(await response.blob());
  const link = h("a", { href: url, download: name, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function result() {
  if (view.error) return h("p.error", { role: "alert" }, view.error);
  const data = view.result;
  if (!data) return null;
  const tables = new Map(data.tables.map((table) => [table.key, table]));
  return [
    data.charts.map((chart) => tables.get(chart.table)?.rows.length ? barChart(chart, tables.get(chart.table)) : null),
    data.tables.map(tableOf),
    data.notes.map((note) => h("p.note", {}, note)),
    h("details.definitions", {}, h("summary", {}, t("reportDefinitions")),
      h("dl", {}, data.definitions.map((d) => [h("dt", {}, d.term), h("dd", {}, d.definition)]))),
  ];
}

function fmt(value, kind) {
  if (value === null || value === undefined) return "—";
  if (kind === "percent") return `${(value * 100).toFixed(1)} %`;
  if (kind === "duration") return fmtDuration(value);
  if (kind === "money") return value.toFixed(2);
  if (kind === "float" && typeof value === "number") return String(Math.round(value * 100) / 100);
  return String(value);
}

function tableOf(table) {
  const numeric = (c) => !["text", "date"].includes(c.kind);
  const row = (r, total = false) => h(total ? "tr.total" : "tr", {},
    table.columns.map((c) => h(numeric(c) ? "td.n" : "td", {}, c.key in r ? fmt(r[c.key], c.kind) : "")));
  return h("div.table-wrap", {}, h("table.report-table", { dataset: { table: table.key } },
    h("caption", {}, table.title),
    h("thead", {}, h("tr", {}, table.columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, table.rows.map((r) => row(r)), table.totals ? row(table.totals, true) : null)));
}

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["#2f6feb", "#d1242f", "#9a6700", "#1a7f37", "#8250df"];

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

/** A bar chart (stacked for "stacked") in SVG built with DOM calls: no inline styles, CSP-safe. */
function barChart(chart, table) {
  const labels = new Map(table.columns.map((c) => [c.key, c]));
  const rows = table.rows;
  const stacked = chart.kind === "stacked";
  const value = (r, key) => (labels.get(key)?.kind === "percent" ? (r[key] ?? 0) * 100 : r[key] ?? 0);
  const totals = rows.map((r) => (stacked ? chart.series.reduce((sum, k) => sum + value(r, k), 0)
    : Math.max(...chart.series.map((k) => value(r, k)))));
  const top = Math.max(1, ...totals);
  const width = 640, height = 220, left = 40, bottom = 40;
  const slot = (width - left) / Math.max(rows.length, 1);
  const bars = [];
  rows.forEach((r, i) => {
    let base = 0;
    chart.series.forEach((key, s) => {
      const v = value(r, key);
      const barH = (v / top) * (height - bottom - 10);
      const w = stacked ? slot * 0.7 : (slot * 0.7) / chart.series.length;
      const x = left + i * slot + slot * 0.15 + (stacked ? 0 : s * w);
      const y = height - bottom - barH - (stacked ? base : 0);
      if (stacked) base += barH;
      bars.push(svg("rect", { x, y, width: Math.max(w - 1, 1), height: Math.max(barH, 0), fill: COLORS[s % COLORS.length],
        "data-x": r[chart.x] ?? "", "data-series": key },
        svg("title", {}, document.createTextNode(`${r[chart.x]}: ${labels.get(key)?.label || key} ${fmt(r[key], labels.get(key)?.kind)}`))));
    });
    if (rows.length <= 31 || i % Math.ceil(rows.length / 24) === 0) {
      bars.push(svg("text", { x: left + i * slot + slot / 2, y: height - bottom + 14, "text-anchor": "middle",
        "font-size": 10, fill: "#57606a" }, document.createTextNode(String(r[chart.x] ?? ""))));
    }
  });
  const axis = [svg("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, stroke: "#8c959f" }),
    svg("text", { x: left - 4, y: 14, "text-anchor": "end", "font-size": 10, fill: "#57606a" },
      document.createTextNode(String(Math.round(top))))];
  const legend = chart.series.map((key, s) => svg("g", {},
    svg("rect", { x: left + s * 150, y: height - 16, width: 10, height: 10, fill: COLORS[s % COLORS.length] }),
    svg("text", { x: left + s * 150 + 14, y: height - 7, "font-size": 11, fill: "#1b1f24" },
      document.createTextNode(labels.get(key)?.label || key))));
  return h("figure.report-chart", { dataset: { chart: chart.table } },
    svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": chart.title }, axis, bars, legend));
}
