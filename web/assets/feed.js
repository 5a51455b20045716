// The websocket feed (docs/websocket-protocol.md, version 1): one
// connection, automatic reconnect with exponential backoff and full jitter,
// and a client-side heartbeat so a half-open connection (laptop sleep, a
// NAT that forgot us) is noticed and replaced instead of silently freezing
// the wall.

export const SUBPROTOCOL = "bantay.heatmap.v1";

const BACKOFF_MIN_MS = 1000;
const BACKOFF_MAX_MS = 30000;
const HEARTBEAT_MS = 15000; // our ping; the server answers with pong
const SILENCE_MS = 40000; // nothing at all for this long: reconnect

/**
 * Feed keeps one websocket open to the collector.
 *
 * opts.url(): the ws URL to connect to (called per attempt, so it carries
 *   the current subscription as query parameters).
 * opts.onFrame(frame): every parsed server frame.
 * opts.onState({state, attempt, retryAt, reason}): connection state
 *   changes; state is "connecting", "live", "reconnecting" or "offline".
 * opts.onOpen(): the socket opened (resend drill-down requests here).
 * opts.onHandshakeFailed(): a socket closed without ever opening. A browser
 *   does not say why (a 401 and a down server look the same), so the page
 *   checks its session here; the retry is scheduled either way.
 */
export class Feed {
  constructor(opts) {
    this.opts = opts;
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = 0;
    this.hbTimer = 0;
    this.lastRx = 0;
    this.msgId = 0;
    this.stopped = false;
    addEventListener("online", () => this.retryNow());
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.hbTimer);
    if (this.ws) this.ws.close(1000, "page closed");
  }

  /** Sends a message if connected; returns its id, or "" when not sent. */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return "";
    const id = msg.id || `c${++this.msgId}`;
    this.ws.send(JSON.stringify({ v: 1, ...msg, id }));
    return id;
  }

  get open() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  retryNow() {
    if (this.stopped || this.ws) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    this.opts.onState({ state: "connecting", attempt: this.attempt });
    let ws;
    try {
      ws = new WebSocket(this.opts.url(), SUBPROTOCOL);
    } catch (err) {
      this.scheduleRetry(String(err));
      return;
    }
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.lastRx = Date.now();
      clearInterval(this.hbTimer);
      this.hbTimer = setInterval(() => this.heartbeat(), 5000);
      this.opts.onState({ state: "live", attempt: this.attempt });
      if (this.opts.onOpen) this.opts.onOpen();
    };
    ws.onmessage = (ev) => {
      this.lastRx = Date.now();
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return; // the server only sends JSON; ignore anything else
      }
      if (!frame || frame.v !== 1) return;
      // A snapshot proves the server is healthy: forget the backoff.
      if (frame.type === "snapshot") this.attempt = 0;
      this.opts.onFrame(frame);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.hbTimer);
      if (this.stopped) return;
      const reason = ev.reason ? `${ev.code} ${ev.reason}` : `code ${ev.code}`;
      this.scheduleRetry(reason);
      if (!opened && this.opts.onHandshakeFailed) this.opts.onHandshakeFailed();
    };
    ws.onerror = () => {
      // onclose follows and schedules the retry.
    };
  }

  heartbeat() {
    const now = Date.now();
    if (now - this.lastRx > SILENCE_MS) {
      // Half-open: close it ourselves; onclose reconnects.
      const ws = this.ws;
      if (ws) {
        this.ws = null;
        clearInterval(this.hbTimer);
        ws.onclose = null;
        ws.close(4000, "no frames from server");
        this.scheduleRetry("no frames from the server for " + Math.round(SILENCE_MS / 1000) + " s");
      }
      return;
    }
    if (now - this.lastPing >= HEARTBEAT_MS || !this.lastPing) {
      this.lastPing = now;
      this.send({ type: "ping", id: `hb${now}` });
    }
  }

  scheduleRetry(reason) {
    // Exponential backoff with full jitter (half fixed, half random), so
    // a wall of screens does not reconnect in lockstep after a restart.
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = cap / 2 + Math.random() * (cap / 2);
    this.attempt++;
    const retryAt = Date.now() + delay;
    this.opts.onState({ state: navigator.onLine === false ? "offline" : "reconnecting", attempt: this.attempt, retryAt, reason });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }
}
