// Colour scales and number/time formatting shared by every view.

// Viridis (matplotlib), 11 anchors; interpolated in sRGB. Perceptually
// uniform and readable with every common colour-vision deficiency.
const VIRIDIS = [
  [68, 1, 84], [72, 36, 117], [65, 68, 135], [53, 95, 141], [42, 120, 142],
  [33, 145, 140], [34, 168, 132], [68, 191, 112], [122, 209, 81], [189, 223, 38], [253, 231, 37],
];

// The latency scale is logarithmic and FIXED (2 ms … 300 ms): a wall screen
// must mean the same colour for the same latency all day, so it never
// rescales to the data. Philippine paths live between a few ms (metro) and a
// few hundred (international); log spacing separates 5 from 10 ms as much as
// 50 from 100.
export const SCALE_MIN = 2;
export const SCALE_MAX = 300;
export const SCALE_TICKS = [2, 5, 10, 20, 50, 100, 200, 300];

const LUT = (() => {
  const out = [];
  for (let i = 0; i < 256; i++) {
    const x = (i / 255) * (VIRIDIS.length - 1);
    const k = Math.min(VIRIDIS.length - 2, Math.floor(x));
    const f = x - k;
    const a = VIRIDIS[k], b = VIRIDIS[k + 1];
    const rgb = [0, 1, 2].map((j) => Math.round(a[j] + (b[j] - a[j]) * f));
    // Relative luminance decides black or white text on the cell.
    const lum = 0.2126 * lin(rgb[0]) + 0.7152 * lin(rgb[1]) + 0.0722 * lin(rgb[2]);
    out.push({ css: `rgb(${rgb[0]},${rgb[1]},${rgb[2]})`, light: lum > 0.22 });
  }
  return out;
})();

function lin(c) {
  const s = c / 255;
  return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
}

/** Position 0..1 of a latency (ms) on the fixed log scale. */
export function scalePos(ms) {
  const v = Math.min(SCALE_MAX, Math.max(SCALE_MIN, ms));
  return Math.log(v / SCALE_MIN) / Math.log(SCALE_MAX / SCALE_MIN);
}

/** Colour of a latency: {css, light} (light: draw dark text on it). */
export function latencyColor(ms) {
  return LUT[Math.round(scalePos(ms) * 255)];
}

/** Viridis at t in 0..1 (for the legend gradient). */
export function viridisAt(t) {
  return LUT[Math.round(Math.min(1, Math.max(0, t)) * 255)].css;
}

// Loss colours. SmokePing colours its median line by loss, from green
// through blue and violet to red; this keeps that order but takes the
// Okabe-Ito colours, which stay distinguishable with protan-, deutan- and
// tritanopia. Each step is also labelled in the legend, never colour alone.
export const LOSS_STEPS = [
  { max: 0, color: "#009E73", label: "0 %" },
  { max: 0.02, color: "#56B4E9", label: "< 2 %" },
  { max: 0.05, color: "#0072B2", label: "2–5 %" },
  { max: 0.10, color: "#CC79A7", label: "5–10 %" },
  { max: 0.20, color: "#E69F00", label: "10–20 %" },
  { max: Infinity, color: "#D55E00", label: "≥ 20 %" },
];

/** Loss colour for a ratio (0..1); null for unknown. */
export function lossColor(loss) {
  if (loss == null || Number.isNaN(loss)) return null;
  for (const s of LOSS_STEPS) {
    if (loss <= s.max) return s.color;
  }
  return LOSS_STEPS[LOSS_STEPS.length - 1].color;
}

/** Milliseconds for display: "7.5", "23", "1.2 s". */
export function fmtMs(ms, unit = false) {
  if (ms == null || Number.isNaN(ms)) return "–";
  let s;
  if (ms >= 1000) return (ms / 1000).toFixed(ms >= 10000 ? 0 : 1) + " s";
  if (ms < 10) s = ms.toFixed(1);
  else s = Math.round(ms).toString();
  return unit ? s + " ms" : s;
}

/** Loss ratio as a percentage: "0 %", "0.8 %", "12 %". */
export function fmtLoss(loss) {
  if (loss == null || Number.isNaN(loss)) return "–";
  const p = loss * 100;
  if (p === 0) return "0 %";
  if (p < 10) return p.toFixed(1) + " %";
  return Math.round(p) + " %";
}

// All times are shown in Manila time, whatever the viewer's machine says.
const TIME = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Asia/Manila", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
});
const HM = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Asia/Manila", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
});
const DAY = new Intl.DateTimeFormat("en-GB", {
  timeZone: "Asia/Manila", weekday: "short", day: "numeric", month: "short",
});

/** "14:32:05" in Asia/Manila. */
export function fmtTime(ms) {
  return ms ? TIME.format(new Date(ms)) : "–";
}
/** "14:32" in Asia/Manila. */
export function fmtHM(ms) {
  return HM.format(new Date(ms));
}
/** "Tue 24 Nov" in Asia/Manila. */
export function fmtDay(ms) {
  return DAY.format(new Date(ms));
}

/** "5 s", "3 min", "2 h" — how long ago. */
export function fmtAgo(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return s + " s";
  if (s < 90 * 60) return Math.round(s / 60) + " min";
  return Math.round(s / 3600) + " h";
}
