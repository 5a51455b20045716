// The city × city matrix: one small multiple per (carrier, network type),
// painted on canvas, with a transparent ARIA grid laid exactly over the
// cells. The grid is what the mouse and keyboard hit and what screen
// readers read; it carries every number as data-* attributes. A panel's
// rows are only the source cities that have a path on that carrier /
// network type; its columns are every destination, in one order for all
// panels. Layout is recomputed only when the set of cities, panels or
// panel rows or the container size changes, never for a data update, so
// the wall never jumps.
import { latencyColor, lossColor, fmtMs, fmtLoss } from "./scale.js";

const NT_NAMES = { "4g": "4G", "5g": "5G", "3g": "3G", fiber: "Fiber", wifi: "Wi-Fi" };
/** Display name of a network type. */
export function ntName(nt) {
  return NT_NAMES[nt] || nt;
}

/**
 * Short codes for city names, for axes too narrow for the names: initials
 * of multi-word names ("Cagayan de Oro" → "CDO", "Quezon City" → "QC"),
 * else the first three letters ("Davao" → "DAV"), lengthened until unique.
 */
export function cityCodes(names) {
  const out = [];
  const used = new Set();
  for (const name of names) {
    const words = name.split(/[\s-]+/).filter(Boolean);
    let code = words.length > 1 ? words.map((w) => w[0]).join("").toUpperCase() : name.slice(0, 3).toUpperCase();
    for (let k = 4; used.has(code) && k <= name.length; k++) code = name.replace(/\s+/g, "").slice(0, k).toUpperCase();
    while (used.has(code)) code += "·";
    used.add(code);
    out.push(code);
  }
  return out;
}

/** Paints one cell glyph (shared by the matrix and the legend). */
export function paintCell(ctx, x, y, s, cell, stat, theme, opts = {}) {
  const v = cell ? cell[stat] : null;
  const has = v != null && !Number.isNaN(v);
  let light = false;
  if (!cell) {
    ctx.fillStyle = theme.empty;
    ctx.fillRect(x, y, s, s);
    return;
  }
  if (has) {
    const c = latencyColor(v);
    ctx.fillStyle = c.css;
    light = c.light;
  } else {
    ctx.fillStyle = theme.nodata;
    light = theme.nodataLight;
  }
  ctx.fillRect(x, y, s, s);
  if (cell.stale) hatch(ctx, x, y, s, light ? "rgba(0,0,0,0.55)" : "rgba(255,255,255,0.6)");
  if (cell.state === "degraded") {
    const lw = Math.max(2, Math.round(s / 18));
    ctx.lineWidth = lw;
    ctx.strokeStyle = light ? "#000" : "#fff";
    ctx.setLineDash([]);
    ctx.strokeRect(x + lw * 1.5, y + lw * 1.5, s - lw * 3, s - lw * 3);
  }
  const loss = cell.loss;
  if (loss != null && loss > 0) {
    // Corner triangle: its size grows with loss (full size at 20 %) and
    // its colour is the drill-down's loss colour, outlined for contrast.
    const t = s * (0.3 + 0.4 * Math.min(1, loss / 0.2));
    ctx.beginPath();
    ctx.moveTo(x + s, y);
    ctx.lineTo(x + s - t, y);
    ctx.lineTo(x + s, y + t);
    ctx.closePath();
    ctx.fillStyle = lossColor(loss);
    ctx.fill();
    ctx.lineWidth = Math.max(1.5, s / 40);
    ctx.strokeStyle = light ? "#000" : "#fff";
    ctx.stroke();
  }
  if (opts.text === false || s < 30) return;
  const fs = Math.round(Math.min(s * 0.3, opts.maxFont || 34));
  const two = s >= 64;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  ctx.font = `700 ${fs}px ${theme.font}`;
  const cx = x + s / 2;
  const cy = y + s * (two ? 0.44 : 0.52);
  const label = has ? fmtMs(v) : "–";
  // A halo in the cell colour keeps the number legible over the hatching.
  ctx.lineWidth = Math.max(3, fs / 5);
  ctx.strokeStyle = has ? latencyColor(v).css : theme.nodata;
  ctx.lineJoin = "round";
  ctx.strokeText(label, cx, cy);
  ctx.fillStyle = light ? "#000" : "#fff";
  ctx.fillText(label, cx, cy);
  if (two) {
    let sub = "";
    if (cell.stale) sub = "stale";
    else if (loss != null && loss > 0) sub = fmtLoss(loss) + " loss";
    // ± the jitter: how much consecutive packets of a round differ.
    else if (has && cell.jitter != null) sub = "ms ±" + fmtMs(cell.jitter);
    else if (has) sub = "ms";
    if (sub) {
      // Half the number's size, smaller if needed to stay inside the
      // degraded outline ("0.8 % loss" is the longest line).
      let fs2 = Math.round(fs * 0.5);
      ctx.font = `600 ${fs2}px ${theme.font}`;
      const room = s - 4 * Math.max(2, Math.round(s / 18));
      const w = ctx.measureText(sub).width;
      if (w > room) {
        fs2 = Math.max(9, Math.floor((fs2 * room) / w));
        ctx.font = `600 ${fs2}px ${theme.font}`;
      }
      ctx.strokeText(sub, cx, y + s * 0.76);
      ctx.fillText(sub, cx, y + s * 0.76);
    }
  }
}

function hatch(ctx, x, y, s, color) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, s, s);
  ctx.clip();
  ctx.strokeStyle = color;
  ctx.lineWidth = Math.max(1.5, s / 22);
  const step = Math.max(6, s / 6);
  ctx.beginPath();
  for (let d = -s; d < s; d += step) {
    ctx.moveTo(x + d, y + s);
    ctx.lineTo(x + d + s, y);
  }
  ctx.stroke();
  ctx.restore();
}

/** Text summary of a cell for screen readers and titles. */
export function cellSummary(cell, src, dst, panel) {
  const head = `${src} to ${dst}, ${panel.carrier} ${ntName(panel.nt)}`;
  if (!cell) return `${head}: not probed`;
  const parts = [`p50 ${fmtMs(cell.p50, true)}`, `p90 ${fmtMs(cell.p90, true)}`, `p99 ${fmtMs(cell.p99, true)}`, `loss ${fmtLoss(cell.loss)}`, `jitter ${fmtMs(cell.jitter, true)}`, `${cell.count} samples`];
  if (cell.stale) parts.push("stale");
  if (cell.state === "degraded") parts.push("degraded");
  return `${head}: ${parts.join(", ")}`;
}

const ATTRS = [
  ["p50", "data-p50"], ["p90", "data-p90"], ["p99", "data-p99"], ["mean", "data-mean"],
  ["count", "data-count"], ["attempts", "data-attempts"], ["failures", "data-failures"],
  ["loss", "data-loss"], ["jitter", "data-jitter"], ["baseline_p50", "data-baseline-p50"], ["trend", "data-trend"],
  ["last_seen", "data-last-seen"], ["stale", "data-stale"], ["state", "data-state"],
];

function setAttr(el, name, v) {
  const s = v == null ? "" : String(v);
  if (el.getAttribute(name) !== s) el.setAttribute(name, s);
}

/**
 * Flows panels of rowCounts[i] rows and n columns left to right, top to
 * bottom, into W × H and returns the arrangement with the largest cells:
 * {cols, cell, bands} where bands[k] is the row count of the tallest panel
 * in the k-th line of panels (that line's height in cells). Every panel
 * has the same width (labelW + n cells), so columns line up down the page.
 */
export function arrangePanels(rowCounts, n, W, H, { labelW, titleH, headH, gap, maxCell }) {
  let best = null;
  for (let cols = 1; cols <= rowCounts.length; cols++) {
    const bands = [];
    for (let i = 0; i < rowCounts.length; i += cols) bands.push(Math.max(...rowCounts.slice(i, i + cols)));
    const cellRows = bands.reduce((a, b) => a + b, 0);
    const byW = ((W - (cols - 1) * gap) / cols - labelW) / n;
    const byH = (H - bands.length * (titleH + headH) - (bands.length - 1) * gap) / cellRows;
    const cell = Math.min(maxCell, Math.floor(Math.min(byW, byH)));
    if (!best || cell > best.cell) best = { cols, cell, bands };
  }
  return best;
}

export class Matrix {
  /**
   * container: the scrolling element the panels go into.
   * hooks.onOpen(id, el): a cell was clicked or Enter was pressed.
   * hooks.onHover(id or null, el): pointer or focus entered/left a cell.
   */
  constructor(container, hooks) {
    this.el = container;
    this.hooks = hooks;
    this.sig = "";
    this.panels = [];
    this.focus = { p: 0, r: 0, c: 0 };
    this.hover = null; // id under the pointer or focus
    this.hoverPos = null; // its {p, r, c}, kept so that paint need not search
    this.model = null;
  }

  /**
   * model: {cities:[{name, island_group}], panels:[{key, carrier, nt, rows:[city]}],
   * cells: Map, stat, theme}. A panel's rows are its source cities, in the
   * order of cities.
   */
  render(model) {
    this.model = model;
    const w = this.el.clientWidth, h = this.el.clientHeight;
    const sig = [w, h, model.theme.name, model.cities.map((c) => c.name).join(","),
      model.panels.map((p) => p.key + ":" + p.rows.map((c) => c.name).join(",")).join(";")].join("|");
    if (sig !== this.sig) {
      this.sig = sig;
      this.build(w, h);
    }
    this.paint();
  }

  build(W, H) {
    const { cities, panels, theme } = this.model;
    const hadFocus = this.el.contains(document.activeElement);
    const focusedId = (this.cellAt(this.focus) || { dataset: {} }).dataset.id;
    this.el.replaceChildren();
    this.panels = [];
    const n = cities.length;
    if (!n || !panels.length || !W || !H) return;

    const fpx = theme.labelPx;
    const meas = document.createElement("canvas").getContext("2d");
    const width = (names, px) => {
      meas.font = `600 ${px}px ${theme.font}`;
      return Math.max(...names.map((t) => meas.measureText(t).width));
    };
    const full = cities.map((c) => c.name);
    const codes = cityCodes(full);
    const codeOf = new Map(full.map((name, i) => [name, codes[i]]));
    // Only cities that are some panel's source label a row.
    const srcNames = full.filter((name) => panels.some((p) => p.rows.some((c) => c.name === name)));
    const rowCounts = panels.map((p) => p.rows.length);
    const gapP = theme.wall ? 24 : 16;
    const titleH = Math.round(fpx * 2.1);
    const maxCell = theme.wall ? 190 : 130;
    // Full city names label the rows while cells stay big enough to read;
    // otherwise (many cities, many carriers) short codes take their place.
    // Rows and columns share one order, so a code is always next to its
    // full name in the tooltip and in the other axis.
    const fullW = Math.ceil(width(srcNames, fpx) + fpx * 0.9);
    const minFull = theme.wall ? 40 : 30;

    const arrange = (labelW, labelPx) => {
      const headH = Math.round(labelPx * 1.8);
      return { ...arrangePanels(rowCounts, n, W, H, { labelW, titleH, headH, gap: gapP, maxCell }), headH, labelW, labelPx };
    };
    let best = arrange(fullW, fpx);
    best.useCodes = false;
    if (best.cell < minFull) {
      const srcCodes = srcNames.map((name) => codeOf.get(name));
      const codePx = Math.max(11, Math.min(fpx, Math.round(best.cell * 0.6)));
      const alt = arrange(Math.ceil(width(srcCodes, codePx) + codePx * 0.9), codePx);
      if (alt.cell > best.cell) {
        // Codes shrink the labels, which grows the cells: size the font again.
        alt.labelPx = Math.max(11, Math.min(fpx, Math.round(alt.cell * 0.6)));
        const again = arrange(Math.ceil(width(srcCodes, alt.labelPx) + alt.labelPx * 0.9), alt.labelPx);
        best = again.cell >= alt.cell ? again : alt;
        best.useCodes = true;
      }
    }
    const cell = Math.max(14, best.cell);
    const { cols, bands, headH, labelW, labelPx, useCodes } = best;
    // Column labels: full names when they fit in a cell, else the codes.
    const colLabels = width(full, labelPx) + 8 <= cell ? full : codes;
    let colPx = labelPx;
    while (colPx > 9 && width(colLabels, colPx) + 4 > cell) colPx--;
    const pw = labelW + n * cell;
    // Each line of panels is as tall as its tallest panel.
    const bandTop = [];
    let totalH = 0;
    for (const b of bands) {
      bandTop.push(totalH);
      totalH += titleH + headH + b * cell + gapP;
    }
    totalH -= gapP;
    const totalW = cols * pw + (cols - 1) * gapP;
    const x0 = Math.max(0, Math.floor((W - totalW) / 2)), y0 = Math.max(0, Math.floor((H - totalH) / 2));
    const gap = cell >= 40 ? 3 : cell >= 24 ? 2 : 1;
    const dpr = window.devicePixelRatio || 1;
    const colGroups = cities.map((c, i) => i > 0 && c.island_group !== cities[i - 1].island_group);

    panels.forEach((p, pi) => {
      const rows = p.rows;
      const ph = titleH + headH + rows.length * cell;
      const px = x0 + (pi % cols) * (pw + gapP), py = y0 + bandTop[Math.floor(pi / cols)];
      const wrap = document.createElement("div");
      wrap.className = "mpanel";
      wrap.dataset.panel = p.key;
      wrap.dataset.rows = String(rows.length);
      Object.assign(wrap.style, { left: px + "px", top: py + "px", width: pw + "px", height: ph + "px" });
      const canvas = document.createElement("canvas");
      canvas.width = Math.round(pw * dpr);
      canvas.height = Math.round(ph * dpr);
      canvas.style.width = pw + "px";
      canvas.style.height = ph + "px";
      canvas.setAttribute("aria-hidden", "true");
      wrap.append(canvas);

      const grid = document.createElement("div");
      grid.className = "mgrid";
      grid.setAttribute("role", "grid");
      grid.setAttribute("aria-label", `${p.carrier} ${ntName(p.nt)}: latency from source city (rows, only cities with probes on it) to destination city (columns)`);
      grid.setAttribute("aria-rowcount", String(rows.length + 1));
      grid.setAttribute("aria-colcount", String(n + 1));
      Object.assign(grid.style, { left: "0px", top: "0px", width: pw + "px", height: ph + "px" });
      const headRow = document.createElement("div");
      headRow.setAttribute("role", "row");
      const corner = document.createElement("span");
      corner.setAttribute("role", "columnheader");
      corner.className = "sr-only";
      corner.textContent = "from \\ to";
      headRow.append(corner);
      for (const c of cities) {
        const th = document.createElement("span");
        th.setAttribute("role", "columnheader");
        th.className = "sr-only";
        th.textContent = c.name;
        headRow.append(th);
      }
      grid.append(headRow);
      const cellEls = [];
      rows.forEach((src, r) => {
        const row = document.createElement("div");
        row.setAttribute("role", "row");
        const rh = document.createElement("span");
        rh.setAttribute("role", "rowheader");
        rh.className = "sr-only";
        rh.textContent = src.name;
        row.append(rh);
        const line = [];
        cities.forEach((dst, c) => {
          const el = document.createElement("div");
          el.className = "mcell";
          el.setAttribute("role", "gridcell");
          el.tabIndex = -1;
          const id = `${src.name}|${dst.name}|${p.carrier}|${p.nt}`;
          el.dataset.id = id;
          el.dataset.src = src.name;
          el.dataset.dst = dst.name;
          el.dataset.carrier = p.carrier;
          el.dataset.networkType = p.nt;
          Object.assign(el.style, {
            left: labelW + c * cell + "px", top: titleH + headH + r * cell + "px",
            width: cell + "px", height: cell + "px",
          });
          const pos = { p: pi, r, c };
          el.addEventListener("mouseenter", () => this.setHover(id, el));
          el.addEventListener("mouseleave", () => this.setHover(null, null));
          el.addEventListener("focus", () => { this.focus = pos; this.setHover(id, el); });
          el.addEventListener("blur", () => this.setHover(null, null));
          el.addEventListener("click", () => this.open(el));
          el.addEventListener("keydown", (ev) => this.key(ev, pos));
          row.append(el);
          line.push(el);
        });
        cellEls.push(line);
        grid.append(row);
      });
      wrap.append(grid);
      this.el.append(wrap);
      const rowGroups = rows.map((c, i) => i > 0 && c.island_group !== rows[i - 1].island_group);
      const rowLabels = rows.map((c) => (useCodes ? codeOf.get(c.name) : c.name));
      this.panels.push({
        ...p, canvas, grid, cellEls, pw, ph, labelW, titleH, headH, cell, gap, colGroups, rowGroups, dpr,
        labelPx, colPx, rowLabels, colLabels,
      });
    });

    // Keep exactly one cell in the tab order (roving tabindex), on the same
    // path as before when it is still shown.
    this.focus = this.posOf(focusedId) || this.clamp(this.focus);
    const el = this.cellAt(this.focus);
    if (el) {
      el.tabIndex = 0;
      if (hadFocus) el.focus({ preventScroll: true });
    }
    // The hovered cell's element was replaced: point the tooltip at the new one.
    if (this.hover) {
      const pos = (this.hoverPos = this.posOf(this.hover));
      if (pos) this.hooks.onHover(this.hover, this.cellAt(pos));
      else this.setHover(null, null);
    }
    this.builds = (this.builds || 0) + 1;
    this.el.dataset.builds = String(this.builds);
  }

  cellAt(pos) {
    const p = this.panels[pos.p];
    return p && p.cellEls[pos.r] && p.cellEls[pos.r][pos.c];
  }

  /** Position {p, r, c} of the cell with this id, or null. */
  posOf(id) {
    if (!id) return null;
    for (let p = 0; p < this.panels.length; p++) {
      const rows = this.panels[p].cellEls;
      for (let r = 0; r < rows.length; r++) {
        const c = rows[r].findIndex((e) => e.dataset.id === id);
        if (c >= 0) return { p, r, c };
      }
    }
    return null;
  }

  /** The nearest existing position (panels differ in their row counts). */
  clamp({ p, r, c }) {
    if (!this.panels.length) return { p: 0, r: 0, c: 0 };
    p = Math.min(Math.max(0, p), this.panels.length - 1);
    const rows = this.panels[p].cellEls;
    r = Math.min(Math.max(0, r), rows.length - 1);
    c = Math.min(Math.max(0, c), rows[r].length - 1);
    return { p, r, c };
  }

  setHover(id, el) {
    if (this.hover === id) return;
    this.hover = id;
    this.hoverPos = this.posOf(id);
    this.hooks.onHover(id, el);
    this.paint();
  }

  open(el) {
    if (el.getAttribute("aria-disabled") === "true") return;
    this.hooks.onOpen(el.dataset.id, el);
  }

  key(ev, pos) {
    const n = this.model.cities.length;
    const rowsOf = (pi) => this.panels[pi].rows;
    let { p, r, c } = pos;
    switch (ev.key) {
      case "ArrowUp": r = Math.max(0, r - 1); break;
      case "ArrowDown": r = Math.min(rowsOf(p).length - 1, r + 1); break;
      case "ArrowLeft": c = Math.max(0, c - 1); break;
      case "ArrowRight": c = Math.min(n - 1, c + 1); break;
      case "Home": c = 0; break;
      case "End": c = n - 1; break;
      case "PageUp":
      case "PageDown": {
        // Next panel, same destination; same source city when that panel
        // has it, else the same row number as far as it goes.
        const src = rowsOf(p)[r].name;
        p = ev.key === "PageUp" ? Math.max(0, p - 1) : Math.min(this.panels.length - 1, p + 1);
        const same = rowsOf(p).findIndex((city) => city.name === src);
        r = same >= 0 ? same : Math.min(r, rowsOf(p).length - 1);
        break;
      }
      case "Enter":
      case " ":
        ev.preventDefault();
        this.open(ev.currentTarget);
        return;
      default:
        return;
    }
    ev.preventDefault();
    this.moveFocus({ p, r, c });
  }

  moveFocus(pos) {
    const cur = this.cellAt(this.focus);
    const next = this.cellAt(pos);
    if (!next) return;
    if (cur) cur.tabIndex = -1;
    next.tabIndex = 0;
    this.focus = pos;
    next.focus();
  }

  /** Focus the grid cell with this id (after closing a drill-down). */
  focusId(id) {
    const pos = this.posOf(id);
    if (pos) this.moveFocus(pos);
  }

  paint() {
    if (!this.model) return;
    const { cities, cells, stat, theme } = this.model;
    const hoverPos = this.hoverPos;
    this.panels.forEach((p, pi) => {
      const ctx = p.canvas.getContext("2d");
      ctx.setTransform(p.dpr, 0, 0, p.dpr, 0, 0);
      ctx.clearRect(0, 0, p.pw, p.ph);
      const fpx = theme.labelPx;
      const gridTop = p.titleH + p.headH;
      const gridLeft = p.labelW;
      const gridW = cities.length * p.cell, gridH = p.rows.length * p.cell;

      // Title: carrier and network type, big enough to read across a room.
      ctx.textBaseline = "middle";
      ctx.textAlign = "left";
      ctx.fillStyle = theme.ink;
      ctx.font = `700 ${Math.round(fpx * 1.2)}px ${theme.font}`;
      ctx.fillText(`${p.carrier} · ${ntName(p.nt)}`, 0, p.titleH * 0.45);
      // Which way the matrix reads, in the corner above the row labels.
      ctx.font = `400 ${Math.round(fpx * 0.75)}px ${theme.font}`;
      ctx.fillStyle = theme.muted;
      ctx.textAlign = "left";
      const hint = "from ↓ to →";
      if (ctx.measureText(hint).width < p.labelW - 8) ctx.fillText(hint, 0, gridTop - p.labelPx * 0.7);

      // Row labels (sources) and column labels (destinations); the hovered
      // cell's source and destination are highlighted.
      const hov = hoverPos && hoverPos.p === pi ? hoverPos : null;
      ctx.font = `600 ${p.labelPx}px ${theme.font}`;
      ctx.textAlign = "right";
      p.rowLabels.forEach((label, r) => {
        ctx.fillStyle = hov && hov.r === r ? theme.accent : theme.ink;
        ctx.fillText(label, p.labelW - p.labelPx * 0.5, gridTop + r * p.cell + p.cell / 2);
      });
      ctx.font = `600 ${p.colPx}px ${theme.font}`;
      ctx.textAlign = "center";
      p.colLabels.forEach((label, c) => {
        ctx.fillStyle = hov && hov.c === c ? theme.accent : theme.ink;
        ctx.fillText(label, gridLeft + c * p.cell + p.cell / 2, gridTop - p.labelPx * 0.7);
      });

      // Cells.
      p.rows.forEach((src, r) => {
        cities.forEach((dst, c) => {
          const el = p.cellEls[r][c];
          const cell = cells.get(el.dataset.id);
          const x = gridLeft + c * p.cell + p.gap / 2, y = gridTop + r * p.cell + p.gap / 2;
          paintCell(ctx, x, y, p.cell - p.gap, cell, stat, theme, { maxFont: theme.wall ? 52 : 32 });
          this.mirror(el, cell, src.name, dst.name, p);
        });
      });

      // Island-group boundaries (Luzon | Visayas | Mindanao).
      ctx.strokeStyle = theme.muted;
      ctx.lineWidth = 2;
      ctx.beginPath();
      p.colGroups.forEach((g, i) => {
        if (!g) return;
        ctx.moveTo(gridLeft + i * p.cell, gridTop - 4);
        ctx.lineTo(gridLeft + i * p.cell, gridTop + gridH);
      });
      p.rowGroups.forEach((g, i) => {
        if (!g) return;
        ctx.moveTo(gridLeft - 4, gridTop + i * p.cell);
        ctx.lineTo(gridLeft + gridW, gridTop + i * p.cell);
      });
      ctx.stroke();

      // Hover / focus ring.
      if (hov) {
        const x = gridLeft + hov.c * p.cell, y = gridTop + hov.r * p.cell;
        ctx.lineWidth = 4;
        ctx.strokeStyle = theme.panel;
        ctx.strokeRect(x - 1, y - 1, p.cell + 2, p.cell + 2);
        ctx.lineWidth = 3;
        ctx.strokeStyle = theme.accent;
        ctx.strokeRect(x - 1, y - 1, p.cell + 2, p.cell + 2);
      }
    });
  }

  /** Copies a cell's numbers into its grid element. */
  mirror(el, cell, src, dst, panel) {
    const label = cellSummary(cell, src, dst, panel);
    setAttr(el, "aria-label", label);
    if (!cell) {
      setAttr(el, "aria-disabled", "true");
      for (const [, a] of ATTRS) if (el.hasAttribute(a)) el.removeAttribute(a);
      return;
    }
    if (el.hasAttribute("aria-disabled")) el.removeAttribute("aria-disabled");
    for (const [k, a] of ATTRS) setAttr(el, a, cell[k]);
  }
}
