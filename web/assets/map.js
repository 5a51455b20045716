// The map of the Philippines: the offline island outline, the probe cities
// (coordinates from the snapshot, i.e. the collector's gazetteer) and one
// curved link per direction between them, coloured by latency.
import { ISLANDS, BOUNDS } from "./ph-outline.js";
import { latencyColor } from "./scale.js";

const COS_LAT = Math.cos((12 * Math.PI) / 180); // equirectangular around 12°N

/**
 * drawMap paints the map.
 * links: [{src, dst, value (ms or null), stale, loss}] (one per direction)
 * theme: {bg, land, coast, ink, halo, nodata, wall}
 */
export function drawMap(canvas, cities, links, theme) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth, h = canvas.clientHeight;
  if (!w || !h) return;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);

  const pad = 14;
  const spanX = (BOUNDS.east - BOUNDS.west) * COS_LAT;
  const spanY = BOUNDS.north - BOUNDS.south;
  const k = Math.min((w - 2 * pad) / spanX, (h - 2 * pad) / spanY);
  const ox = (w - spanX * k) / 2, oy = (h - spanY * k) / 2;
  const proj = (lon, lat) => [ox + (lon - BOUNDS.west) * COS_LAT * k, oy + (BOUNDS.north - lat) * k];

  // Land.
  ctx.lineJoin = "round";
  for (const poly of Object.values(ISLANDS)) {
    ctx.beginPath();
    poly.forEach(([lon, lat], i) => {
      const [x, y] = proj(lon, lat);
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.closePath();
    ctx.fillStyle = theme.land;
    ctx.fill();
    ctx.strokeStyle = theme.coast;
    ctx.lineWidth = 1;
    ctx.stroke();
  }

  const pos = new Map();
  for (const c of cities) {
    if (c.latitude == null || c.longitude == null) continue;
    pos.set(c.name, proj(c.longitude, c.latitude));
  }

  // Links: curved so that A→B and B→A are two separate arcs (each bends to
  // its own right), drawn worst last so the slow ones stay on top.
  const lw = theme.wall ? 6 : 4;
  const sorted = [...links].sort((a, b) => (a.value ?? -1) - (b.value ?? -1));
  for (const l of sorted) {
    const a = pos.get(l.src), b = pos.get(l.dst);
    if (!a || !b || l.src === l.dst) continue;
    const dx = b[0] - a[0], dy = b[1] - a[1];
    const len = Math.hypot(dx, dy) || 1;
    const bend = Math.min(40, len * 0.12);
    const cx = (a[0] + b[0]) / 2 - (dy / len) * bend;
    const cy = (a[1] + b[1]) / 2 + (dx / len) * bend;
    const path = new Path2D();
    path.moveTo(a[0], a[1]);
    path.quadraticCurveTo(cx, cy, b[0], b[1]);
    ctx.setLineDash([]);
    ctx.lineCap = "round";
    ctx.strokeStyle = theme.halo;
    ctx.lineWidth = lw + 3;
    ctx.stroke(path);
    if (l.value == null) {
      ctx.strokeStyle = theme.nodata;
      ctx.lineWidth = lw - 1;
    } else {
      ctx.strokeStyle = latencyColor(l.value).css;
      ctx.lineWidth = lw;
    }
    if (l.stale) ctx.setLineDash([lw * 1.5, lw * 1.5]);
    ctx.stroke(path);
    ctx.setLineDash([]);
    // Arrowhead at 75 % along the curve, pointing the way the probe measures.
    const t = 0.75;
    const px = (1 - t) * (1 - t) * a[0] + 2 * (1 - t) * t * cx + t * t * b[0];
    const py = (1 - t) * (1 - t) * a[1] + 2 * (1 - t) * t * cy + t * t * b[1];
    const tx = 2 * (1 - t) * (cx - a[0]) + 2 * t * (b[0] - cx);
    const ty = 2 * (1 - t) * (cy - a[1]) + 2 * t * (b[1] - cy);
    const ang = Math.atan2(ty, tx);
    const s = lw * 1.6;
    ctx.beginPath();
    ctx.moveTo(px + Math.cos(ang) * s, py + Math.sin(ang) * s);
    ctx.lineTo(px + Math.cos(ang + 2.5) * s, py + Math.sin(ang + 2.5) * s);
    ctx.lineTo(px + Math.cos(ang - 2.5) * s, py + Math.sin(ang - 2.5) * s);
    ctx.closePath();
    ctx.fillStyle = l.value == null ? theme.nodata : latencyColor(l.value).css;
    ctx.strokeStyle = theme.halo;
    ctx.lineWidth = 1.5;
    ctx.fill();
    ctx.stroke();
  }

  // Cities on top, with a halo behind the names so they read over links.
  const r = theme.wall ? 8 : 6;
  ctx.font = `600 ${theme.wall ? 20 : 14}px ${theme.font}`;
  ctx.textBaseline = "middle";
  for (const c of cities) {
    const p = pos.get(c.name);
    if (!p) continue;
    ctx.beginPath();
    ctx.arc(p[0], p[1], r, 0, 2 * Math.PI);
    ctx.fillStyle = theme.ink;
    ctx.fill();
    ctx.lineWidth = 3;
    ctx.strokeStyle = theme.halo;
    ctx.stroke();
    // Names go to the side with more room (west coast cities label left).
    const left = c.longitude > 124.5;
    ctx.textAlign = left ? "right" : "left";
    const tx = p[0] + (left ? -(r + 6) : r + 6);
    ctx.lineWidth = 4;
    ctx.strokeStyle = theme.halo;
    ctx.strokeText(c.name, tx, p[1]);
    ctx.fillStyle = theme.ink;
    ctx.fillText(c.name, tx, p[1]);
  }
}
