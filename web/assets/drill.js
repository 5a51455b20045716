// The drill-down: one path's last hour as SmokePing draws it. Each time
// column shows the latency distribution as "smoke" (bucket density: the
// darker, the more measurements fell there; a tall smear is jitter), the
// median as a line coloured by that column's loss, and a loss strip under
// the plot. Columns where every attempt failed are shaded in full. Where
// the probes record the exponential histogram, the median comes from the
// native series (d.native, finer than the buckets the smoke is counted in),
// and the path's exemplars (d.exemplars: a slow answer's or a failure's
// trace id) are marked, so a red cell leads to the sample and its event.
import { lossColor, fmtHM, fmtMs } from "./scale.js";

const HOUR = 3600 * 1000;
const LADDER = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/** Merges drilldown_update columns into d.columns (replace by t, append, trim to an hour). */
export function mergeColumns(d, cols) {
  const byT = new Map(d.columns.map((c, i) => [c.t, i]));
  for (const c of cols) {
    const i = byT.get(c.t);
    if (i != null) d.columns[i] = c;
    else d.columns.push(c);
  }
  d.columns.sort((a, b) => a.t - b.t);
  const last = d.columns.length ? d.columns[d.columns.length - 1].t : 0;
  const cut = last - HOUR + d.resolutionMs;
  if (d.columns.length && d.columns[0].t < cut) d.columns = d.columns.filter((c) => c.t >= cut);
}

function lower(bounds, i) {
  return i === 0 ? bounds[0] / 2 : bounds[i - 1];
}
function upper(bounds, i) {
  return i < bounds.length ? bounds[i] : bounds[bounds.length - 1] * 1.5;
}

/** The median of column c: the native histogram's where there is one. */
export function medianOf(d, c) {
  const n = d.native && d.native.get(c.t);
  return n != null ? n : c.p50;
}

/**
 * drawDrill paints d = {columns, bounds, resolutionMs, native, exemplars}
 * on the canvas and returns the geometry for hit testing
 * ({left, plotW, t0, res, marks}).
 */
export function drawDrill(canvas, d, theme) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return null;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const fpx = theme.labelPx;
  const res = d.resolutionMs || 15000;
  const bounds = d.bounds || [];
  const cols = d.columns || [];

  const left = Math.round(fpx * 4.6), right = 18, top = 14;
  const stripH = Math.round(fpx * 0.9);
  const bottom = Math.round(fpx * 3.2) + stripH;
  const plotW = w - left - right, plotH = h - top - bottom;
  if (plotW < 50 || plotH < 50) return null;

  const tEnd = cols.length ? cols[cols.length - 1].t + res : Math.ceil(Date.now() / res) * res;
  const t0 = tEnd - HOUR;
  const x = (t) => left + ((t - t0) / HOUR) * plotW;
  const colW = (res / HOUR) * plotW;

  // Latency range: the buckets that hold data, widened to the 1-2-5 ladder.
  let lo = Infinity, hi = 0;
  for (const c of cols) {
    if (!c.counts) continue;
    c.counts.forEach((n, i) => {
      if (n > 0) {
        lo = Math.min(lo, lower(bounds, i));
        hi = Math.max(hi, upper(bounds, i));
      }
    });
  }
  if (!Number.isFinite(lo)) { lo = 1; hi = 100; }
  let ymin = LADDER[0], ymax = LADDER[LADDER.length - 1];
  for (const v of LADDER) if (v <= lo) ymin = v;
  for (const v of [...LADDER].reverse()) if (v >= hi) ymax = v;
  if (ymax / ymin < 10) ymax = LADDER.find((v) => v >= ymin * 10) || ymax;
  const ly = Math.log(ymax / ymin);
  const y = (v) => top + plotH * (1 - Math.log(Math.min(ymax, Math.max(ymin, v)) / ymin) / ly);

  // Grid and axes.
  ctx.font = `500 ${Math.round(fpx * 0.85)}px ${theme.font}`;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  ctx.lineWidth = 1;
  for (const v of LADDER) {
    if (v < ymin || v > ymax) continue;
    const yy = Math.round(y(v)) + 0.5;
    ctx.strokeStyle = theme.grid;
    ctx.beginPath();
    ctx.moveTo(left, yy);
    ctx.lineTo(left + plotW, yy);
    ctx.stroke();
    ctx.fillStyle = theme.muted;
    ctx.fillText(v >= 1000 ? v / 1000 + " s" : v + " ms", left - 8, yy);
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  const tick = 10 * 60 * 1000; // Manila is UTC+8 all year: UTC ticks are Manila ticks
  for (let t = Math.ceil(t0 / tick) * tick; t <= tEnd; t += tick) {
    const xx = Math.round(x(t)) + 0.5;
    ctx.strokeStyle = theme.grid;
    ctx.beginPath();
    ctx.moveTo(xx, top);
    ctx.lineTo(xx, top + plotH);
    ctx.stroke();
    ctx.fillStyle = theme.muted;
    ctx.fillText(fmtHM(t), xx, top + plotH + stripH + Math.round(fpx * 1.2));
  }
  ctx.strokeStyle = theme.line;
  ctx.strokeRect(left + 0.5, top + 0.5, plotW - 1, plotH - 1);

  // Smoke.
  const smoke = theme.smoke; // "r,g,b"
  for (const c of cols) {
    const xa = x(c.t), xb = Math.ceil(xa + colW + 0.5);
    if (c.count === 0 && c.attempts > 0) {
      // Everything lost: shade the whole column with the worst loss colour.
      ctx.globalAlpha = 0.3;
      ctx.fillStyle = lossColor(1);
      ctx.fillRect(Math.floor(xa), top, xb - Math.floor(xa), plotH);
      ctx.globalAlpha = 1;
    }
    if (!c.counts) continue;
    const max = Math.max(...c.counts);
    c.counts.forEach((n, i) => {
      if (!n) return;
      const a = theme.smokeMin + theme.smokeSpan * Math.sqrt(n / max);
      ctx.fillStyle = `rgba(${smoke},${a.toFixed(3)})`;
      const ya = y(upper(bounds, i)), yb = y(lower(bounds, i));
      ctx.fillRect(Math.floor(xa), Math.floor(ya), xb - Math.floor(xa), Math.max(1, Math.ceil(yb - ya)));
    });
  }

  // Median line, a step per column, coloured by loss; a halo keeps it
  // visible on dense smoke.
  const lw = theme.wall ? 4 : 3;
  ctx.lineCap = "butt";
  for (const pass of ["halo", "line"]) {
    let prev = null;
    for (const c of cols) {
      const p50 = medianOf(d, c);
      if (p50 == null) { prev = null; continue; }
      const xa = x(c.t), xb = xa + colW, yy = y(p50);
      ctx.beginPath();
      if (prev && Math.abs(prev.t + res - c.t) < 1) ctx.moveTo(xa, prev.y);
      else ctx.moveTo(xa, yy);
      ctx.lineTo(xa, yy);
      ctx.lineTo(xb, yy);
      if (pass === "halo") {
        ctx.strokeStyle = theme.panel;
        ctx.lineWidth = lw + 3;
      } else {
        ctx.strokeStyle = lossColor(c.loss) || theme.ink;
        ctx.lineWidth = lw;
      }
      ctx.stroke();
      prev = { t: c.t, y: yy };
    }
  }

  // Loss strip under the plot: one block per column that had attempts.
  const sy = top + plotH + Math.round(fpx * 0.75);
  ctx.fillStyle = theme.empty;
  ctx.fillRect(left, sy, plotW, stripH);
  for (const c of cols) {
    if (!(c.attempts > 0)) continue;
    const xa = x(c.t);
    ctx.fillStyle = lossColor(c.loss ?? 0);
    ctx.fillRect(Math.floor(xa), sy, Math.ceil(colW + 0.5), stripH);
  }
  ctx.fillStyle = theme.muted;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.fillText("loss", left - 8, sy + stripH / 2);

  drawLate(ctx, cols, x, colW, top, theme);
  const marks = drawExemplars(ctx, worstPerColumn(d.exemplars || [], res), x, y, t0, tEnd, sy, stripH, theme);

  if (!cols.some((c) => c.count > 0 || c.attempts > 0)) {
    ctx.fillStyle = theme.muted;
    ctx.textAlign = "center";
    ctx.font = `500 ${fpx * 1.2}px ${theme.font}`;
    ctx.fillText(d.loading ? "Loading the last hour…" : "No measurements in the last hour", left + plotW / 2, top + plotH / 2);
  }
  return { left, plotW, t0, res, top, plotH, marks };
}

/**
 * worstPerColumn keeps, per column, the slowest answer's exemplar and every
 * failure's: with recording.slow at 0 every round's slowest answer has one,
 * and an hour of rings would hide the smoke.
 */
export function worstPerColumn(exemplars, res) {
  const slow = new Map();
  const out = [];
  for (const e of exemplars) {
    if (e.kind === "failure") { out.push(e); continue; }
    const slot = Math.floor(e.t / res) * res;
    const cur = slow.get(slot);
    if (!cur || e.value > cur.value) slow.set(slot, e);
  }
  return out.concat([...slow.values()]).sort((a, b) => a.t - b.t);
}

/**
 * drawExemplars marks each exemplar: a slow answer as a ring at its latency,
 * a failure as a ring on the loss strip (the shape, not only the colour,
 * tells them from the smoke). Returns the marks' centres for exemplarAt.
 */
function drawExemplars(ctx, exemplars, x, y, t0, tEnd, sy, stripH, theme) {
  const marks = [];
  ctx.save();
  ctx.lineWidth = 2;
  for (const e of exemplars) {
    if (e.t < t0 || e.t > tEnd) continue;
    const cx = x(e.t), cy = e.kind === "failure" ? sy + stripH / 2 : y(e.value);
    ctx.beginPath();
    ctx.arc(cx, cy, 4.5, 0, 2 * Math.PI);
    ctx.fillStyle = theme.panel;
    ctx.fill();
    ctx.strokeStyle = theme.ink;
    ctx.stroke();
    marks.push({ x: cx, y: cy, e });
  }
  ctx.restore();
  return marks;
}

/** The exemplar marked within 8 CSS pixels of (px, py), or null. */
export function exemplarAt(geo, px, py) {
  let best = null, bestD = 64;
  for (const m of (geo && geo.marks) || []) {
    const dd = (m.x - px) ** 2 + (m.y - py) ** 2;
    if (dd <= bestD) { best = m.e; bestD = dd; }
  }
  return best;
}

/**
 * drawLate marks the columns that hold late points (a probe's backlog after
 * a collector outage) with a dashed bar along the top of the plot, so
 * measured data that arrived late is told apart from live data.
 */
function drawLate(ctx, cols, x, colW, top, theme) {
  const late = cols.filter((c) => c.late > 0);
  if (!late.length) return;
  ctx.save();
  ctx.strokeStyle = theme.ink;
  ctx.lineWidth = 5;
  ctx.setLineDash([6, 3]);
  for (const c of late) {
    const xa = x(c.t);
    ctx.beginPath();
    ctx.moveTo(xa, top + 4);
    ctx.lineTo(xa + colW, top + 4);
    ctx.stroke();
  }
  ctx.restore();
}

/** Column under canvas x (CSS pixels), or null. */
export function columnAt(geo, d, px) {
  if (!geo || px < geo.left || px > geo.left + geo.plotW) return null;
  const t = geo.t0 + ((px - geo.left) / geo.plotW) * HOUR;
  const slot = Math.floor(t / geo.res) * geo.res;
  return d.columns.find((c) => c.t === slot) || null;
}

/** One-line text summary of the hour for screen readers. */
export function drillSummary(d) {
  const meds = d.columns.map((c) => c.p50).filter((v) => v != null);
  if (!meds.length) return "No measurements in the last hour.";
  const worst = Math.max(0, ...d.columns.map((c) => c.loss ?? 0));
  return `Last hour: median between ${fmtMs(Math.min(...meds), true)} and ${fmtMs(Math.max(...meds), true)}, worst loss in a ${Math.round(d.resolutionMs / 1000)} s step ${(worst * 100).toFixed(0)} %.`;
}
