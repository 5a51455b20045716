// Bantay NOC page: wires the websocket feed to the matrix, the map, the
// drill-down, the legend and the status bar. State lives here; the views
// are pure painters. Every data frame only marks the views dirty; painting
// happens once per animation frame.
import { Feed } from "./feed.js";
import { Matrix, ntName, paintCell } from "./matrix.js";
import { drawMap } from "./map.js";
import { EventFeed } from "./events.js";
import { drawDrill, mergeColumns, columnAt, drillSummary, exemplarAt, medianOf } from "./drill.js";
import { fetchDrillExtras } from "./exemplars.js";
import { initIncidentButton } from "./incident.js";
import {
  SCALE_TICKS, scalePos, viridisAt, LOSS_STEPS, fmtMs, fmtLoss, fmtTime, fmtAgo, fmtDay,
} from "./scale.js";

const FONT = getComputedStyle(document.documentElement).getPropertyValue("--font").trim() || "sans-serif";
const THEMES = {
  light: {
    name: "light", wall: false, font: FONT, labelPx: 14,
    ink: "#15171c", muted: "#5b6170", line: "#d5d8e0", grid: "#e8eaef", panel: "#ffffff",
    accent: "#1f5fbf", nodata: "#c9ccd3", nodataLight: true, empty: "#eef0f3",
    land: "#e2e6ec", coast: "#a9b1c0", halo: "#ffffff", smoke: "34,38,48", smokeMin: 0.14, smokeSpan: 0.76,
  },
  dark: {
    name: "dark", wall: true, font: FONT, labelPx: 20,
    ink: "#eef1f6", muted: "#a3abbd", line: "#2b3242", grid: "#222836", panel: "#141821",
    accent: "#7fb2ff", nodata: "#4a4f5c", nodataLight: false, empty: "#1a1f29",
    land: "#232a39", coast: "#46506a", halo: "#141821", smoke: "200,208,222", smokeMin: 0.10, smokeSpan: 0.55,
  },
};
const STATS = ["p50", "p90", "p99"];
const DEFAULT_WINDOWS = ["1m", "5m", "15m"];

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  wall: params.has("wall") ? params.get("wall") !== "0" : localStorage.getItem("bantay.wall") === "1",
  sel: {
    carrier: params.get("carrier") || "",
    nt: params.get("network_type") || "",
    window: DEFAULT_WINDOWS.includes(params.get("window")) ? params.get("window") : "",
    stat: STATS.includes(params.get("statistic")) ? params.get("statistic") : "p50",
  },
  token: params.get("token") || "",
  conn: { state: "connecting" },
  cities: [],
  carriers: [],
  nts: [],
  windows: DEFAULT_WINDOWS,
  window: null, // {name, from, to} of the last frame
  bounds: [],
  resolutionMs: 15000,
  intervalMs: 1000,
  cells: new Map(),
  lastUpdate: 0, // client time of the last snapshot/delta
  dataTime: 0, // server time of the last snapshot/delta
  rebuilding: false, // the collector is refilling the cells from its store after a start
  frames: 0,
  pendingSub: "",
  drill: null,
  hover: null,
};

// ---- views -------------------------------------------------------------

const theme = () => (state.wall ? THEMES.dark : THEMES.light);
const matrix = new Matrix($("matrix"), {
  onOpen: (id) => openDrill(id),
  onHover: (id, el) => {
    state.hover = id ? { id, el } : null;
    renderTooltip();
  },
});

const eventFeed = new EventFeed($("events"));
const renderEvents = () => eventFeed.render(state.sel.carrier, state.sel.nt);

let dirty = false;
function schedule() {
  if (dirty) return;
  dirty = true;
  requestAnimationFrame(render);
}

// One panel per (carrier, network type) with a cell, and as its rows only the
// source cities that have a cell in it (with data or not: a stale or empty
// cell of a known path keeps its row), in the collector's city order.
function panels() {
  const seen = new Map();
  for (const c of state.cells.values()) {
    const key = `${c.carrier}|${c.network_type}`;
    let p = seen.get(key);
    if (!p) seen.set(key, (p = { key, carrier: c.carrier, nt: c.network_type, srcs: new Set() }));
    p.srcs.add(c.src_city);
  }
  return [...seen.values()]
    .sort((a, b) => a.carrier.localeCompare(b.carrier) || a.nt.localeCompare(b.nt))
    .map(({ srcs, ...p }) => ({ ...p, rows: state.cities.filter((c) => srcs.has(c.name)) }))
    .filter((p) => p.rows.length > 0);
}

function render() {
  dirty = false;
  const th = theme();
  const ps = panels();
  $("matrix-empty").hidden = ps.length > 0;
  $("matrix-empty").textContent = state.frames === 0 ? "Waiting for the collector…" :
    state.sel.carrier || state.sel.nt ? "No paths for this carrier / network type." : "Waiting for probe data…";
  matrix.render({ cities: state.cities, panels: ps, cells: state.cells, stat: state.sel.stat, theme: th });
  drawMap($("map"), state.cities, mapLinks(), th);
  const mt = `Paths · worst ${state.sel.stat} of shown carriers`;
  if ($("map-title").textContent !== mt) $("map-title").textContent = mt;
  if (state.drill) renderDrill();
  renderTooltip();
  $("app").dataset.frames = String(state.frames);
}

function mapLinks() {
  const by = new Map();
  const stat = state.sel.stat;
  for (const c of state.cells.values()) {
    const k = `${c.src_city}|${c.dst_city}`;
    let l = by.get(k);
    if (!l) {
      l = { src: c.src_city, dst: c.dst_city, value: null, stale: true, loss: null };
      by.set(k, l);
    }
    const v = c[stat];
    if (v != null && (l.value == null || v > l.value)) l.value = v;
    if (!c.stale) l.stale = false;
    if (c.loss != null) l.loss = Math.max(l.loss ?? 0, c.loss);
  }
  return [...by.values()];
}

// ---- tooltip -----------------------------------------------------------

const tip = $("tooltip");

function renderTooltip() {
  const h = state.hover;
  if (!h || !h.el || !h.el.isConnected) {
    tip.hidden = true;
    return;
  }
  if (h.column) return; // drill-down column tooltips are drawn by their handler
  const cell = state.cells.get(h.id);
  const [src, dst, carrier, nt] = h.id.split("|");
  const win = state.window ? state.window.name : state.sel.window;
  let html = `<h3>${esc(src)} → ${esc(dst)}</h3><div class="sub">${esc(carrier)} · ${esc(ntName(nt))} · last ${esc(win || "")}</div>`;
  if (!cell) {
    html += `<div>Not probed on this carrier / network.</div>`;
  } else {
    const trend = cell.trend == null ? "–" :
      `×${cell.trend.toFixed(2)} ${cell.trend > 1.15 ? "▲ slower" : cell.trend < 0.87 ? "▼ faster" : "≈ usual"}`;
    const rows = [
      ["p50", fmtMs(cell.p50, true)], ["p90", fmtMs(cell.p90, true)], ["p99", fmtMs(cell.p99, true)],
      ["mean", fmtMs(cell.mean, true)], ["samples", String(cell.count)],
      ["loss", `${fmtLoss(cell.loss)} (${fmtNum(cell.failures)}/${fmtNum(cell.attempts)})`],
      ["jitter", fmtMs(cell.jitter, true)],
      ["1 h median", fmtMs(cell.baseline_p50, true)], ["trend", trend],
      ["last seen", `${fmtTime(cell.last_seen)} (${fmtAgo(Date.now() - cell.last_seen)} ago)`],
    ];
    html += `<table>${rows.map(([k, v]) => `<tr><th>${k}</th><td data-k="${k}">${esc(v)}</td></tr>`).join("")}</table>`;
    if (cell.stale) html += `<div class="flag stale">STALE — no data for over two probe intervals</div>`;
    else if (cell.state === "degraded") html += `<div class="flag degraded">DEGRADED — far above its usual latency or loss</div>`;
    html += `<div class="hint">Click or press Enter: last hour of this path</div>`;
  }
  tip.innerHTML = html;
  tip.hidden = false;
  placeTip(h.el.getBoundingClientRect());
}

function placeTip(r) {
  const tw = tip.offsetWidth, th = tip.offsetHeight;
  let x = r.right + 12;
  if (x + tw > innerWidth - 8) x = r.left - tw - 12;
  if (x < 8) x = Math.min(innerWidth - tw - 8, r.left);
  let y = r.top;
  if (y + th > innerHeight - 8) y = innerHeight - th - 8;
  tip.style.left = Math.max(8, x) + "px";
  tip.style.top = Math.max(8, y) + "px";
}

function esc(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
function fmtNum(v) {
  return v == null ? "–" : String(Math.round(v));
}

// ---- selectors ---------------------------------------------------------

function segmented(el, options, current, onPick) {
  const sig = options.map((o) => o.value + "=" + o.label).join(",") + "#" + current;
  if (el.dataset.sig === sig) return;
  el.dataset.sig = sig;
  el.replaceChildren(...options.map((o) => {
    const b = document.createElement("button");
    b.type = "button";
    b.setAttribute("role", "radio");
    b.setAttribute("aria-checked", String(o.value === current));
    b.dataset.value = o.value;
    b.textContent = o.label;
    b.addEventListener("click", () => onPick(o.value));
    return b;
  }));
}

function renderControls() {
  const carriers = [...new Set([...state.carriers, ...(state.sel.carrier ? [state.sel.carrier] : [])])];
  segmented($("sel-carrier"), [{ value: "", label: "All" }, ...carriers.map((c) => ({ value: c, label: c }))],
    state.sel.carrier, (v) => pick("carrier", v));
  const nts = [...new Set([...state.nts, ...(state.sel.nt ? [state.sel.nt] : [])])];
  segmented($("sel-nt"), [{ value: "", label: "All" }, ...nts.map((n) => ({ value: n, label: ntName(n) }))],
    state.sel.nt, (v) => pick("nt", v));
  const curWin = state.sel.window || (state.window && state.window.name) || "5m";
  segmented($("sel-window"), state.windows.map((w) => ({ value: w, label: w })), curWin, (v) => pick("window", v));
  segmented($("sel-stat"), STATS.map((s) => ({ value: s, label: s })), state.sel.stat, (v) => pick("stat", v));
  const wt = $("wall-toggle");
  wt.setAttribute("aria-pressed", String(state.wall));
  document.body.classList.toggle("wall", state.wall);
}

function pick(what, value) {
  if (state.sel[what] === value) return;
  state.sel[what] = value;
  syncURL();
  renderControls();
  renderEvents();
  renderLegend();
  if (what === "stat") {
    // Colouring is local: every cell carries p50, p90 and p99 (the
    // subscription asks for "all") so the tooltip can always show all three.
    schedule();
    return;
  }
  subscribeSoon();
}

function syncURL() {
  const p = new URLSearchParams(location.search);
  const set = (k, v) => (v ? p.set(k, v) : p.delete(k));
  set("carrier", state.sel.carrier);
  set("network_type", state.sel.nt);
  set("window", state.sel.window);
  set("statistic", state.sel.stat === "p50" ? "" : state.sel.stat);
  set("wall", state.wall ? "1" : "");
  const q = p.toString();
  history.replaceState(null, "", location.pathname + (q ? "?" + q : ""));
}

let subTimer = 0;
function subscribeSoon(delay = 150) {
  clearTimeout(subTimer);
  subTimer = setTimeout(subscribe, delay);
}
function subscribe() {
  const msg = {
    type: "subscribe",
    carriers: state.sel.carrier ? [state.sel.carrier] : [],
    network_types: state.sel.nt ? [state.sel.nt] : [],
    statistic: "all",
  };
  if (state.sel.window) msg.window = state.sel.window;
  state.pendingSub = feed.send(msg);
}

// ---- legend ------------------------------------------------------------

function renderLegend() {
  const th = theme();
  const sig = [th.name, state.sel.stat, state.window ? state.window.name : state.sel.window].join("|");
  const lg = $("legend");
  if (lg.dataset.sig === sig) return;
  lg.dataset.sig = sig;
  const px = th.labelPx;
  const items = [];
  const title = document.createElement("span");
  title.className = "item title";
  title.textContent = `${state.sel.stat} latency (ms), last ${state.window ? state.window.name : state.sel.window || "5m"}`;
  items.push(title);

  // Gradient bar with ticks in ms (log scale).
  const gw = th.wall ? 460 : 300, gh = Math.round(px * 2.3);
  const g = canvasOf(gw, gh);
  const ctx = g.ctx;
  const barH = Math.round(px * 0.8);
  for (let x = 0; x < gw - 20; x++) {
    ctx.fillStyle = viridisAt(x / (gw - 21));
    ctx.fillRect(10 + x, 0, 1, barH);
  }
  ctx.font = `500 ${Math.round(px * 0.85)}px ${th.font}`;
  ctx.fillStyle = th.ink;
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  let lastRight = -Infinity;
  for (const t of SCALE_TICKS) {
    const x = 10 + scalePos(t) * (gw - 21);
    ctx.fillRect(Math.round(x), barH, 1, 4);
    // Skip a label that would run into its neighbour (the log scale
    // crowds the top end).
    const lw = ctx.measureText(String(t)).width;
    const lx = Math.min(gw - lw / 2, x);
    if (lx - lw / 2 < lastRight + 4) continue;
    ctx.fillText(String(t), lx, barH + 5);
    lastRight = lx + lw / 2;
  }
  g.el.setAttribute("role", "img");
  g.el.setAttribute("aria-label", `Colour scale from ${SCALE_TICKS[0]} ms (dark purple) to ${SCALE_TICKS[SCALE_TICKS.length - 1]} ms or more (yellow), logarithmic`);
  items.push(g.el);

  const s = Math.round(px * 1.6);
  const sw = (label, cell) => {
    const c = canvasOf(s, s);
    paintCell(c.ctx, 0, 0, s, cell, "p50", th, { text: false });
    const span = document.createElement("span");
    span.className = "item";
    span.append(c.el, document.createTextNode(label));
    return span;
  };
  items.push(sw("no data", { p50: null, loss: null }));
  items.push(sw("stale", { p50: 20, loss: null, stale: true }));
  items.push(sw("degraded", { p50: 20, loss: null, state: "degraded" }));
  items.push(sw("loss 1 %", { p50: 20, loss: 0.01 }));
  items.push(sw("loss ≥ 20 %", { p50: 20, loss: 0.25 }));
  const hint = document.createElement("span");
  hint.className = "item title";
  hint.textContent = th.wall ? "" : "rows: from · columns: to · click a cell for its last hour";
  items.push(hint);
  lg.replaceChildren(...items);

  // Drill-down legend: smoke and the loss colours of the median line.
  const dl = $("drill-legend");
  dl.replaceChildren();
  const smoke = document.createElement("span");
  smoke.innerHTML = `<span class="sw smoke"></span>smoke: spread of measurements (denser shade = more of them)`;
  dl.append(smoke);
  const med = document.createElement("span");
  med.textContent = "median line, coloured by loss:";
  dl.append(med);
  for (const st of LOSS_STEPS) {
    const it = document.createElement("span");
    const b = document.createElement("span");
    b.className = "sw";
    b.style.background = st.color;
    it.append(b, document.createTextNode(st.label));
    dl.append(it);
  }
  const ex = document.createElement("span");
  ex.textContent = "○ a slow answer or a failure: point at it for its trace id and event";
  dl.append(ex);
}

function canvasOf(w, h) {
  const dpr = window.devicePixelRatio || 1;
  const el = document.createElement("canvas");
  el.width = Math.round(w * dpr);
  el.height = Math.round(h * dpr);
  el.style.width = w + "px";
  el.style.height = h + "px";
  const ctx = el.getContext("2d");
  ctx.scale(dpr, dpr);
  return { el, ctx };
}

// ---- drill-down ----------------------------------------------------------

const drillEl = $("drill");
let drillGeo = null;
// How often an open drill-down asks the Prometheus API again for its
// exemplars and native median (the columns come live over the websocket).
const EXTRAS_EVERY = 30 * 1000;

function openDrill(id) {
  closeExtras();
  state.drill = { id, columns: [], bounds: state.bounds, resolutionMs: state.resolutionMs, loading: true, updates: 0, ref: "",
    native: null, exemplars: [] };
  const [src, dst, carrier, nt] = id.split("|");
  $("drill-title").textContent = `${src} → ${dst} · ${carrier} ${ntName(nt)} · last hour`;
  drillEl.hidden = false;
  drillEl.dataset.id = id;
  drillEl.dataset.state = "loading";
  drillEl.dataset.updates = "0";
  state.hover = null;
  tip.hidden = true;
  sendDrill();
  loadExtras(state.drill);
  // Focus the dialog itself, not its close button: the Enter that opened
  // it must not also press Close.
  drillEl.focus();
  schedule();
}

function sendDrill() {
  if (!state.drill) return;
  state.drill.ref = feed.send({ type: "drilldown", cell: state.drill.id });
}

// The drill-down's extras from the store (exemplars.js); a store without
// exemplars or native histograms, or a credential that may not read the
// API, leaves the drill-down as the columns alone draw it.
let extras = { timer: 0, abort: null };

function loadExtras(d) {
  extras.abort = new AbortController();
  const signal = extras.abort.signal;
  fetchDrillExtras(d.id, d.resolutionMs, state.intervalMs, Date.now(), signal).then((x) => {
    if (state.drill !== d) return;
    d.native = x.native;
    d.exemplars = x.exemplars;
    drillEl.dataset.exemplars = String(x.exemplars.length);
    drillEl.dataset.median = x.native.size ? "native" : "classic";
    schedule();
  }, (err) => {
    if (signal.aborted) return;
    drillEl.dataset.median = "classic";
    console.warn("drill-down: exemplars and native median unavailable:", err.message);
  }).finally(() => {
    if (state.drill === d) extras.timer = setTimeout(() => loadExtras(d), EXTRAS_EVERY);
  });
}

function closeExtras() {
  clearTimeout(extras.timer);
  if (extras.abort) extras.abort.abort();
  extras = { timer: 0, abort: null };
  delete drillEl.dataset.exemplars;
  delete drillEl.dataset.median;
}

function closeDrill() {
  if (!state.drill) return;
  closeExtras();
  const id = state.drill.id;
  state.drill = null;
  drillEl.hidden = true;
  drillEl.dataset.state = "closed";
  feed.send({ type: "drilldown_stop" });
  tip.hidden = true;
  matrix.focusId(id);
}

function renderDrill() {
  const d = state.drill;
  drillGeo = drawDrill($("drill-canvas"), d, theme());
  const cell = state.cells.get(d.id) || d.cell;
  const dl = $("drill-stats");
  const win = state.cells.has(d.id) && state.window ? state.window.name : "";
  const items = cell ? [
    [`p50${win ? " " + win : ""}`, fmtMs(cell.p50, true)], ["p90", fmtMs(cell.p90, true)], ["p99", fmtMs(cell.p99, true)],
    ["spread p90−p50", cell.p90 != null && cell.p50 != null ? fmtMs(cell.p90 - cell.p50, true) : "–"],
    ["jitter", fmtMs(cell.jitter, true)],
    ["loss", fmtLoss(cell.loss)], ["last seen", fmtTime(cell.last_seen)],
  ] : [];
  const html = items.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join("") +
    (cell && cell.stale ? `<div><dd class="stale-flag">STALE</dd></div>` : "");
  if (dl.dataset.html !== html) {
    dl.innerHTML = html;
    dl.dataset.html = html;
  }
  drillEl.dataset.columns = String(d.columns.length);
  drillEl.dataset.filled = String(d.columns.filter((c) => c.count > 0).length);
  drillEl.dataset.late = String(d.columns.filter((c) => c.late > 0).length);
  // The newest exemplar's mark in page coordinates: what a test (or a
  // screen reader's pointer) moves to for its trace id.
  const marks = (drillGeo && drillGeo.marks) || [];
  const m = marks[marks.length - 1];
  const r = $("drill-canvas").getBoundingClientRect();
  drillEl.dataset.mark = m ? `${Math.round(r.left + m.x)},${Math.round(r.top + m.y)}` : "";
}

$("drill-close").addEventListener("click", closeDrill);
$("drill-canvas").addEventListener("mousemove", (ev) => {
  const d = state.drill;
  if (!d) return;
  const r = ev.currentTarget.getBoundingClientRect();
  const ex = exemplarAt(drillGeo, ev.clientX - r.left, ev.clientY - r.top);
  if (ex) {
    showExemplar(ex, ev);
    return;
  }
  const col = columnAt(drillGeo, d, ev.clientX - r.left);
  if (!col) {
    tip.hidden = true;
    return;
  }
  state.hover = { id: d.id, el: ev.currentTarget, column: true };
  const rows = [
    ["median", fmtMs(medianOf(d, col), true) + (d.native && d.native.has(col.t) ? " (native histogram)" : "")],
    ["mean", fmtMs(col.mean, true)], ["samples", String(col.count)],
    ["loss", `${fmtLoss(col.loss)} (${fmtNum(col.failures)}/${fmtNum(col.attempts)})`],
    ["jitter", fmtMs(col.jitter, true)],
  ];
  if (col.late > 0) rows.push(["late", `${fmtNum(col.late)} points, delivered after newer data`]);
  delete tip.dataset.trace;
  tip.innerHTML = `<h3>${fmtTime(col.t)} – ${fmtTime(col.t + d.resolutionMs)}</h3><div class="sub">Manila time</div>` +
    `<table>${rows.map(([k, v]) => `<tr><th>${k}</th><td>${esc(v)}</td></tr>`).join("")}</table>`;
  tip.hidden = false;
  placeTip({ left: ev.clientX - 6, right: ev.clientX + 6, top: ev.clientY + 12 });
});
// showExemplar is the way from a red cell to the sample and its log: the
// trace id the store's exemplar, the probe's log line and (for a failure)
// the probe_failure event in the feed and in Loki all carry.
function showExemplar(ex, ev) {
  state.hover = { id: state.drill.id, el: ev.currentTarget, column: true };
  const event = eventFeed.events.find((e) => e.trace_id === ex.traceId);
  const rows = [
    [ex.kind === "failure" ? "failure" : "slow answer", ex.kind === "failure" ? ex.reason : fmtMs(ex.value, true)],
    ["probe", ex.probe], ["target", ex.target], ["trace id", ex.traceId],
    ["event", event ? event.body : "–"],
    ["in Loki", `{service="bantay"} | trace_id="${ex.traceId}"`],
  ];
  tip.innerHTML = `<h3>${fmtTime(ex.t)}</h3><div class="sub">Manila time</div>` +
    `<table class="ex">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join("")}</table>`;
  tip.dataset.trace = ex.traceId;
  tip.hidden = false;
  placeTip({ left: ev.clientX - 6, right: ev.clientX + 6, top: ev.clientY + 12 });
}

$("drill-canvas").addEventListener("mouseleave", () => {
  state.hover = null;
  tip.hidden = true;
});

// ---- frames --------------------------------------------------------------

function onFrame(f) {
  switch (f.type) {
    case "snapshot":
      state.cells = new Map(f.cells.map((c) => [c.id, c]));
      state.cities = f.cities || [];
      state.carriers = f.carriers || [];
      state.nts = f.network_types || [];
      state.windows = f.windows && f.windows.length ? f.windows : DEFAULT_WINDOWS;
      state.bounds = f.bounds || state.bounds;
      state.resolutionMs = f.resolution_ms || state.resolutionMs;
      state.intervalMs = f.interval_ms || state.intervalMs;
      if (f.ref && f.ref === state.pendingSub) state.pendingSub = "";
      eventFeed.replace(f.events);
      renderEvents();
      dataFrame(f);
      break;
    case "events":
      eventFeed.append(f.events);
      renderEvents();
      break;
    case "delta":
      for (const c of f.cells || []) state.cells.set(c.id, c);
      for (const id of f.removed || []) state.cells.delete(id);
      if (f.cities) state.cities = f.cities;
      if (f.carriers) state.carriers = f.carriers;
      if (f.network_types) state.nts = f.network_types;
      dataFrame(f);
      break;
    case "drilldown":
      if (state.drill && f.cell && f.cell.id === state.drill.id) {
        const d = state.drill;
        d.columns = f.columns || [];
        d.bounds = f.bounds || state.bounds;
        d.resolutionMs = f.resolution_ms || state.resolutionMs;
        d.cell = f.cell;
        d.loading = false;
        drillEl.dataset.state = "ready";
        $("drill-summary").textContent = drillSummary(d);
        schedule();
      }
      break;
    case "drilldown_update":
      if (state.drill && !state.drill.loading && f.cell && f.cell.id === state.drill.id) {
        mergeColumns(state.drill, f.columns || []);
        state.drill.cell = f.cell;
        state.drill.updates++;
        drillEl.dataset.updates = String(state.drill.updates);
        schedule();
      }
      break;
    case "drilldown_end":
      if (state.drill && f.id === state.drill.id) {
        drillEl.dataset.state = "ended";
        $("drill-title").textContent += ` — ended: ${f.reason || "path gone"}`;
      }
      break;
    case "error":
      onError(f);
      break;
    default:
      // pong and frame types added later: nothing to do (the protocol says ignore).
  }
}

function dataFrame(f) {
  if (typeof f.rebuilding === "boolean") state.rebuilding = f.rebuilding;
  state.frames++;
  state.lastUpdate = Date.now();
  state.dataTime = f.time || state.dataTime;
  if (f.window) {
    state.window = f.window;
    // The time range the shown numbers cover, for anyone checking them
    // against the Prometheus API (the browser tests do).
    $("app").dataset.windowFrom = String(f.window.from);
    $("app").dataset.windowTo = String(f.window.to);
  }
  renderControls();
  renderLegend();
  tickStatus();
  schedule();
}

function onError(f) {
  if (f.code === "rate_limited") {
    // Our request was dropped: repeat it once the server's bucket refills.
    if (f.ref && f.ref === state.pendingSub) subscribeSoon(1100);
    else if (state.drill && f.ref === state.drill.ref) setTimeout(sendDrill, 1100);
    console.info("bantay: server rate-limited a request; retrying", f.message);
    return;
  }
  if (f.code === "unknown_cell" && state.drill && f.ref === state.drill.ref) {
    drillEl.dataset.state = "ended";
    state.drill.loading = false;
    $("drill-title").textContent += " — this path has no data any more";
    schedule();
    return;
  }
  // Anything else is a bug in this page: make it loud.
  console.error(`bantay: server error frame ${f.code}: ${f.message}`);
}

// ---- status bar ----------------------------------------------------------

function onState(s) {
  state.conn = s;
  tickStatus();
}

function tickStatus() {
  const s = state.conn;
  const now = Date.now();
  const conn = $("conn");
  conn.dataset.conn = s.state;
  $("app").dataset.conn = s.state;
  let text;
  switch (s.state) {
    case "live": text = state.rebuilding ? "Live — rebuilding the last hour from the store…" : "Live"; break;
    case "connecting": text = s.attempt ? `Connecting (try ${s.attempt + 1})` : "Connecting…"; break;
    case "reconnecting": text = `Reconnecting in ${Math.max(0, Math.ceil((s.retryAt - now) / 1000))} s`; break;
    default: text = "Offline — waiting for network";
  }
  $("conn-text").textContent = text;
  conn.title = s.reason ? `Last disconnect: ${s.reason}` : "";
  const up = $("updated");
  if (state.lastUpdate) {
    const age = now - state.lastUpdate;
    up.textContent = `Updated ${fmtAgo(age)} ago`;
    up.title = `Newest frame from the collector: ${fmtTime(state.dataTime)} Manila time`;
    // Deltas come when something changes; probes report every resolution,
    // so two resolutions of silence is worth a glance.
    up.dataset.late = String(age > 2 * state.resolutionMs);
  } else {
    up.textContent = "no data yet";
  }
  $("clock").textContent = `${fmtTime(now)} PHT`;
  $("clock").title = `${fmtDay(now)}, Manila time`;
}

// ---- start ---------------------------------------------------------------

function wsURL() {
  const p = new URLSearchParams();
  if (state.sel.carrier) p.append("carrier", state.sel.carrier);
  if (state.sel.nt) p.append("network_type", state.sel.nt);
  if (state.sel.window && state.windows.includes(state.sel.window)) p.set("window", state.sel.window);
  if (state.token) p.set("token", state.token);
  const q = p.toString();
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws${q ? "?" + q : ""}`;
}

// checkSession runs when the websocket could not open. If the page itself
// now needs a login (the session expired, or the collector restarted with a
// new session key), /ws is refused for the same reason on every retry: send
// the user to the login form, which brings them back here. A collector that
// is down answers nothing, and the feed keeps retrying.
let leaving = false;
async function checkSession() {
  if (leaving) return;
  const here = location.pathname + location.search;
  let r;
  try {
    r = await fetch(here, { method: "HEAD", redirect: "manual", cache: "no-store", credentials: "same-origin" });
  } catch {
    return;
  }
  // The policy redirects a browser without a session to /login (an opaque
  // redirect here) and answers 401 to anything else without one.
  if (r.type === "opaqueredirect" || r.status === 401) {
    leaving = true;
    feed.stop();
    location.assign(`/login?next=${encodeURIComponent(here)}`);
  }
}

let connects = 0;
const feed = new Feed({
  url: wsURL,
  onFrame,
  onState,
  onHandshakeFailed: checkSession,
  onOpen: () => {
    $("app").dataset.connects = String(++connects);
    // The server forgets a drill-down with the connection: ask again.
    if (state.drill) sendDrill();
  },
});

$("wall-toggle").addEventListener("click", () => toggleWall());
initIncidentButton($("incident"));
function toggleWall() {
  state.wall = !state.wall;
  localStorage.setItem("bantay.wall", state.wall ? "1" : "0");
  syncURL();
  renderControls();
  renderLegend();
  schedule();
}

addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") {
    if (state.drill) {
      ev.preventDefault();
      closeDrill();
    } else {
      tip.hidden = true;
    }
  } else if ((ev.key === "w" || ev.key === "W") && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
    toggleWall();
  }
});

new ResizeObserver(schedule).observe($("matrix"));
new ResizeObserver(schedule).observe($("map"));
new ResizeObserver(schedule).observe($("drill-canvas"));
setInterval(() => {
  tickStatus();
  // "last seen … ago" in an open tooltip keeps ticking too.
  if (state.hover && !state.hover.column) renderTooltip();
}, 1000);

renderControls();
renderLegend();
tickStatus();
feed.start();
