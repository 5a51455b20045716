// The demo's "Stage incident" button. bantay-demo serves /demo/incident
// (internal/demo) on the page's own origin; a deployment's collector does
// not, so there the request fails and the button stays hidden.
const PATH = "/demo/incident";
const POLL_MS = 5000;

export async function initIncidentButton(button) {
  const st = await status();
  if (!st) return;
  button.hidden = false;
  render(button, st);
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const r = await fetch(PATH, { method: "POST", cache: "no-store" });
      render(button, await r.json());
    } catch {
      button.disabled = false;
    }
  });
  // Follow the incident to its end, so the button is ready again.
  setInterval(async () => {
    if (button.dataset.state === "idle") return;
    const now = await status();
    if (now) render(button, now);
  }, POLL_MS);
}

async function status() {
  try {
    const r = await fetch(PATH, { cache: "no-store" });
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
