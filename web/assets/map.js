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
  // Many cities make a hairball: thinner lines and no arrowheads then.
  const many = links.length > 30;
  const lw = (theme.wall ? 6 : 4) / (many ? 2.5 : 1);
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
    if (many) continue;
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
  // Names take the first free spot of right, left, above, below; a name
  // that would cover another is left out (the dot stays; the matrix and
  // the tooltip name it).
  const r = theme.wall ? 8 : 6;
  const fs = theme.wall ? 20 : 14;
  ctx.font = `600 ${fs}px ${theme.font}`;
  ctx.textBaseline = "middle";
  const boxes = [];
  for (const c of cities) {
    const p = pos.get(c.name);
    if (p) boxes.push([p[0] - r, p[1] - r, p[0] + r, p[1] + r]);
  }
  const free = (b) => b[0] >= 0 && b[2] <= w && b[1] >= 0 && b[3] <= h &&
    !boxes.some((o) => b[0] < o[2] && b[2] > o[0] && b[1] < o[3] && b[3] > o[1]);
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
  }
  for (const c of cities) {
    const p = pos.get(c.name);
    if (!p) continue;
    const tw = ctx.measureText(c.name).width, th = fs * 1.1, d = r + 5;
    const spots = [
      { x: p[0] + d, y: p[1], align: "left", box: [p[0] + d, p[1] - th / 2, p[0] + d + tw, p[1] + th / 2] },
      { x: p[0] - d, y: p[1], align: "right", box: [p[0] - d - tw, p[1] - th / 2, p[0] - d, p[1] + th / 2] },
      { x: p[0], y: p[1] - d - th / 2, align: "center", box: [p[0] - tw / 2, p[1] - d - th, p[0] + tw / 2, p[1] - d] },
      { x: p[0], y: p[1] + d + th / 2, align: "center", box: [p[0] - tw / 2, p[1] + d, p[0] + tw / 2, p[1] + d + th] },
    ];
    const spot = spots.find((s) => free(s.box));
    if (!spot) continue;
    boxes.push(spot.box);
    ctx.textAlign = spot.align;
    ctx.lineWidth = 4;
    ctx.strokeStyle = theme.halo;
    ctx.strokeText(c.name, spot.x, spot.y);
    ctx.fillStyle = theme.ink;
    ctx.fillText(c.name, spot.x, spot.y);
  }
}
