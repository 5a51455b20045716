// The demo's "Stage incident" button. bantay-demo's answer for the page
// carries a Bantay-Demo-Incident header naming its incident endpoint
// (internal/demo); a deployment's collector sends none, so there the button
// stays hidden and no request is made that could fail.
const DEMO_HEADER = "Bantay-Demo-Incident";
const POLL_MS = 5000;

export async function initIncidentButton(button) {
  let path;
  try {
    const r = await fetch("/", { method: "HEAD", cache: "no-store" });
    path = r.headers.get(DEMO_HEADER);
  } catch {
    return;
  }
  if (!path || !path.startsWith("/")) return;
  const st = await status(path);
  if (!st) return;
  button.hidden = false;
  render(button, st);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await fetch(path, { method: "POST", cache: "no-store" });
      render(button, await r.json());
    } catch {
      button.disabled = false;
    }
  });
  // Follow the incident to its end, so the button is ready again.
  setInterval(async () => {
    if (button.dataset.state === "idle") return;
    const now = await status(path);
    if (now) render(button, now);
  }, POLL_MS);
}

async function status(path) {
  try {
    const r = await fetch(path, { cache: "no-store" });
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}

function render(button, st) {
  button.dataset.state = st.state;
  button.disabled = st.state !== "idle";
  button.setAttribute("aria-pressed", String(st.state !== "idle"));
  const until = st.end ? " until " + new Date(st.end).toLocaleTimeString("en-PH", { timeZone: "Asia/Manila", hour12: false }) : "";
  button.textContent = st.state === "idle" ? "Stage incident" : st.state === "pending" ? "Incident pending…" : "Incident running" + until;
  button.title = "Demo only: " + st.incident;
}
