// The event feed beside the heatmap (docs/web.md): path state changes,
// probe failure bursts, rejected probes and rule reloads, as they arrive in
// "events" frames (docs/websocket-protocol.md). Newest first, filtered by
// the carrier / network type the heatmap shows, at most MAX_SHOWN lines.
// Every line has a fixed height and the column a fixed width, so a burst
// of events never moves the rest of the page.
import { fmtTime, fmtDay } from "./scale.js";

const MAX_KEPT = 200; // as many as the server keeps for snapshots
const MAX_SHOWN = 50;

// Kinds differ by icon shape and word as well as colour, so the feed reads
// the same without colour vision (and in greyscale on a wall screen).
const KINDS = {
  path_degraded: { icon: "▲", label: "Degraded", tone: "warn" },
  path_recovered: { icon: "✓", label: "Recovered", tone: "ok" },
  path_stale: { icon: "◌", label: "No data", tone: "muted" },
  path_back: { icon: "●", label: "Data back", tone: "ok" },
  probe_failure: { icon: "✕", label: "Failures", tone: "bad" },
  probe_rejected: { icon: "⊘", label: "Rejected", tone: "bad" },
  probe_warning: { icon: "⚠", label: "Warning", tone: "warn" },
  rules_reloaded: { icon: "↻", label: "Rules", tone: "info" },
};

export class EventFeed {
  /** el: the <ol> to fill. */
  constructor(el) {
    this.el = el;
    this.events = []; // oldest first
    this.sig = "";
  }

  /** A snapshot's events replace everything held. */
  replace(events) {
    this.events = (events || []).slice(-MAX_KEPT);
  }

  /** An events frame's entries are appended (they arrive oldest first). */
  append(events) {
    if (!events || !events.length) return;
    this.events.push(...events);
    if (this.events.length > MAX_KEPT) this.events.splice(0, this.events.length - MAX_KEPT);
  }

  /** Repaints for the heatmap's selection ("" = all). */
  render(carrier, nt) {
    const shown = [];
    for (let i = this.events.length - 1; i >= 0 && shown.length < MAX_SHOWN; i--) {
      const e = this.events[i];
      // Events not about one carrier / network (a rules reload) always show.
      if (carrier && e.carrier && e.carrier !== carrier) continue;
      if (nt && e.network_type && e.network_type !== nt) continue;
      shown.push(e);
    }
    const sig = `${carrier}|${nt}|${this.events.length}|${shown.length ? shown[0].time + shown[0].body : ""}`;
    if (sig === this.sig) return;
    this.sig = sig;
    const frag = document.createDocumentFragment();
    for (const e of shown) frag.append(line(e));
    this.el.replaceChildren(frag);
    this.el.dataset.count = String(shown.length);
  }
}

function line(e) {
  const k = KINDS[e.kind] || { icon: "•", label: e.kind || "event", tone: "info" };
  const li = document.createElement("li");
  li.className = "ev";
  li.dataset.kind = e.kind || "";
  li.dataset.tone = k.tone;
  if (e.level) li.dataset.level = e.level;
  const time = document.createElement("time");
  time.className = "ev-time";
  if (e.time) {
    time.dateTime = new Date(e.time).toISOString();
    time.textContent = fmtTime(e.time);
    time.title = `${fmtDay(e.time)}, Manila time`;
  } else {
    time.textContent = "–";
  }
  const kind = document.createElement("span");
  kind.className = "ev-kind";
  const icon = document.createElement("span");
  icon.className = "ev-icon";
  icon.setAttribute("aria-hidden", "true");
  icon.textContent = k.icon;
  kind.append(icon, k.label);
  const body = document.createElement("span");
  body.className = "ev-body";
  body.textContent = e.body || "";
  body.title = e.body || "";
  li.append(time, kind, body);
  return li;
}
