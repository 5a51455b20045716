// What the drill-down asks the Prometheus API (same origin; the page's
// session is a reader's credential) besides the heatmap's own columns:
// the path's exemplars of the last hour (a slow answer's or a failure's
// trace id, docs/probe.md) and, where the probes record the exponential
// histogram, the median from the native series, which is finer than the
// classic buckets the columns are counted in.
const HOUR = 3600 * 1000;
const FAILURES = "bantay_probe_failures_total";
const NATIVE = "network_latency_native_milliseconds";

/** The PromQL label matchers of a cell id "src|dst|carrier|nt" (path totals only). */
export function cellMatchers(id) {
  const [src, dst, carrier, nt] = id.split("|");
  const q = (v) => JSON.stringify(v); // a PromQL string literal
  return `src_city=${q(src)},dst_city=${q(dst)},carrier=${q(carrier)},network_type=${q(nt)},phase=""`;
}

async function api(path, params, signal) {
  const res = await fetch(`api/v1/${path}?${new URLSearchParams(params)}`, { signal, credentials: "same-origin" });
  const body = await res.json();
  if (body.status !== "success") throw new Error(`${path}: ${body.error || res.status}`);
  return body.data;
}

/**
 * exemplarsOf turns a query_exemplars answer into one marker per trace id,
 * oldest first: {t, traceId, kind: "slow"|"failure", value (ms, slow only),
 * probe, target, reason}. The classic and the native histogram carry the
 * same measurement's exemplar; it is one marker.
 */
export function exemplarsOf(data) {
  const byTrace = new Map();
  for (const s of data || []) {
    const l = s.seriesLabels || {};
    const failure = l.__name__ === FAILURES;
    for (const e of s.exemplars || []) {
      const traceId = e.labels && e.labels.trace_id;
      if (!traceId || byTrace.has(traceId)) continue;
      byTrace.set(traceId, {
        t: Math.round(Number(e.timestamp) * 1000), traceId, kind: failure ? "failure" : "slow",
        value: failure ? null : Number(e.value), probe: l.probe || l.instance || "", target: l.target || "", reason: l.reason || "",
      });
    }
  }
  return [...byTrace.values()].sort((a, b) => a.t - b.t);
}

/**
 * nativeMedians turns a query_range matrix into a Map column start → median
 * (ms). The value at step end t covers (t − window, t]: the column that ends
 * at t, and the probe interval before it (rate needs two samples).
 */
export function nativeMedians(data, resolutionMs) {
  const out = new Map();
  for (const s of (data && data.result) || []) {
    for (const [ts, v] of s.values || []) {
      const n = Number(v);
      if (Number.isFinite(n)) out.set(Math.round(ts * 1000) - resolutionMs, n);
    }
  }
  return out;
}

/** fetchDrillExtras asks for both; either part is empty when the store has none. */
export async function fetchDrillExtras(id, resolutionMs, intervalMs, now, signal) {
  const sel = cellMatchers(id);
  const end = Math.floor(now / resolutionMs) * resolutionMs + resolutionMs;
  const start = end - HOUR;
  const window = `${resolutionMs + intervalMs}ms`;
  const [ex, med] = await Promise.all([
    api("query_exemplars", {
      query: `{__name__=~"${NATIVE}|network_latency_milliseconds_bucket|${FAILURES}",${sel}}`,
      start: String(start / 1000), end: String(end / 1000),
    }, signal),
    api("query_range", {
      query: `histogram_quantile(0.5, sum(rate(${NATIVE}{${sel}}[${window}])))`,
      start: String((start + resolutionMs) / 1000), end: String(end / 1000), step: String(resolutionMs / 1000),
    }, signal),
  ]);
  return { exemplars: exemplarsOf(ex), native: nativeMedians(med, resolutionMs) };
}
