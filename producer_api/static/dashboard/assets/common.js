// Shared by the dashboard's pages: calls to the API with the key when one is needed,
// and the formatting of shares, sizes and times. Plain browser JavaScript, no build.
"use strict";

const Dashboard = (() => {
  // The key lives in this tab's session storage: it survives going from the fleet to
  // a machine and back, and is gone when the tab closes. Like Swagger UI's
  // "Authorize", it is sent as X-API-Key on the page's own calls and nowhere else.
  const KEY_ITEM = "memtel-dashboard-api-key";
  // The API is the parent of the dashboard's folder (pages at <api>/dashboard/...).
  const API = new URL("../", document.baseURI);

  class NeedsKey extends Error {}

  function key() {
    return sessionStorage.getItem(KEY_ITEM);
  }

  // GET an API path (relative to the API's root) as JSON. A 401 or 403 shows the key
  // form; `retry` runs again once a key is given.
  async function get(path, retry) {
    const headers = { Accept: "application/json" };
    if (key()) headers["X-API-Key"] = key();
    const response = await fetch(new URL(path, API), { headers });
    if (response.status === 401 || response.status === 403) {
      askForKey(response.status === 403 ? "That API key was refused: give another one."
        : "Reading needs an API key (the API's reads are protected).", retry);
      throw new NeedsKey();
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = typeof body.detail === "string" ? body.detail
          : (body.detail || []).map((e) => `${(e.loc || []).join(".")}: ${e.msg}`).join("; ");
      } catch (_) { /* not JSON: the status text says enough */ }
      throw new Error(`${response.status} ${detail}`);
    }
    return response.json();
  }

  function askForKey(reason, retry) {
    const form = document.getElementById("key-form");
    document.getElementById("key-reason").textContent = reason;
    form.hidden = false;
    document.getElementById("key").focus();
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY_ITEM, document.getElementById("key").value.trim());
      form.hidden = true;
      showForgetKey();
      retry();
    };
  }

  function showForgetKey() {
    const button = document.getElementById("forget-key");
    if (!button) return;
    button.hidden = !key();
    button.onclick = () => {
      sessionStorage.removeItem(KEY_ITEM);
      button.hidden = true;
    };
  }

  function status(text, isError) {
    const line = document.getElementById("status");
    line.textContent = text;
    line.classList.toggle("error", Boolean(isError));
  }

  // Runs `load`, showing its failure (other than a key being asked for) as the status.
  async function run(load) {
    try {
      await load();
    } catch (error) {
      if (!(error instanceof NeedsKey)) status(`Could not load: ${error.message}`, true);
    }
  }

  function percent(share) {
    return share === null || share === undefined ? "–" : `${(share * 100).toFixed(1)} %`;
  }

  function gib(kib) {
    return `${(kib / 1048576).toFixed(kib < 1048576 * 10 ? 2 : 1)} GiB`;
  }

  function ago(ms) {
    const seconds = Math.max(0, Math.round((Date.now() - ms) / 1000));
    if (seconds < 60) return `${seconds} s ago`;
    if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
    if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h ago`;
    return `${(seconds / 86400).toFixed(1)} days ago`;
  }

  // The pressure's severity class, for its colour.
  function level(share) {
    if (share >= 0.9) return "critical";
    if (share >= 0.75) return "high";
    return "ok";
  }

  showForgetKey();
  return { get, run, status, percent, gib, ago, level };
})();
