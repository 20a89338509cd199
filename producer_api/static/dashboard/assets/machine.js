// A machine's page: its latest reading, and its history over the chosen time range
// drawn with uPlot (GET /cpu-info/{machine_id}/history with since and until).
"use strict";

(() => {
  // Most readings drawn: the history's pages (1000 entries each) are read up to this.
  const MAX_POINTS = 10000;
  const PAGE = 1000;
  const machineId = new URLSearchParams(location.search).get("id") || "";
  const form = document.getElementById("range");
  const preset = document.getElementById("preset");
  const chartBox = document.getElementById("chart");
  let plot = null;

  document.getElementById("machine-id").textContent = machineId;
  document.getElementById("max-points").textContent = MAX_POINTS.toLocaleString("en");
  document.title = `${machineId} - Memory telemetry`;
  const machinePath = `cpu-info/${encodeURIComponent(machineId)}`;

  function card(label, value, extra) {
    const box = document.createElement("div");
    box.className = `card ${extra || ""}`;
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = label;
    const text = document.createElement("span");
    text.className = "value";
    text.textContent = value;
    box.append(name, text);
    return box;
  }

  async function loadLatest() {
    const answer = await Dashboard.get(machinePath, () => Dashboard.run(loadAll));
    const reading = answer[machineId];
    const total = reading.total;
    // As the API's index: 1 - available/total, in millionths rounded down.
    const pressure = total ? Math.floor(((total - reading.available) * 1e6) / total) / 1e6 : 0;
    document.getElementById("latest").replaceChildren(
      card("Pressure", Dashboard.percent(pressure), Dashboard.level(pressure)),
      card("In use", Dashboard.percent(total ? reading.used / total : 0)),
      card("Available", Dashboard.percent(total ? reading.available / total : 0)),
      card("Total", Dashboard.gib(total)),
      card("Buff/cache", Dashboard.gib(reading.buff_cache)),
    );
  }

  // The range as the history API's bounds (ms since the epoch, inclusive).
  function range() {
    if (preset.value !== "custom") {
      const until = Date.now();
      return { since: until - Number(preset.value) * 1000, until };
    }
    const since = Date.parse(document.getElementById("since").value);
    const until = Date.parse(document.getElementById("until").value);
    return { since: Number.isNaN(since) ? 0 : since, until: Number.isNaN(until) ? Date.now() : until };
  }

  async function readHistory({ since, until }) {
    const entries = [];
    let cursor = null;
    do {
      const q = new URLSearchParams({ since: String(since), until: String(until), limit: String(PAGE) });
      if (cursor) q.set("cursor", cursor);
      const page = await Dashboard.get(`${machinePath}/history?${q}`, () => Dashboard.run(loadAll));
      entries.push(...page.entries);
      cursor = page.next;
    } while (cursor && entries.length < MAX_POINTS);
    return entries.reverse(); // oldest first, as uPlot takes them
  }

  const GIB = 1048576;
  const SERIES = [
    { label: "Used", key: "used", stroke: "#d9480f", fill: "rgba(217,72,15,0.12)" },
    { label: "Available", key: "available", stroke: "#2b8a3e" },
    { label: "Buff/cache", key: "buff_cache", stroke: "#1c7ed6" },
    { label: "Free", key: "free", stroke: "#868e96" },
    { label: "Total", key: "total", stroke: "#212529", dash: [6, 4] },
  ];

  function draw(entries, { since, until }) {
    const data = [entries.map((e) => e.timestamp_ms / 1000)];
    for (const s of SERIES) data.push(entries.map((e) => e.reading[s.key] / GIB));
    const options = {
      width: Math.max(320, chartBox.clientWidth),
      height: 380,
      // Memory from 0, up to a little above the machine's total.
      scales: {
        x: { time: true, range: [since / 1000, until / 1000] },
        y: { range: (_, __, max) => [0, Math.max(1, max) * 1.05] },
      },
      axes: [{}, { label: "GiB", values: (_, ticks) => ticks.map((t) => t.toFixed(1)) }],
      series: [
        { label: "Time" },
        ...SERIES.map((s) => ({
          label: s.label, stroke: s.stroke, fill: s.fill, dash: s.dash, width: 2,
          value: (_, v) => (v === null ? "–" : `${v.toFixed(2)} GiB`),
        })),
      ],
    };
    if (plot) plot.destroy();
    plot = new uPlot(options, data, chartBox);
    chartBox.dataset.points = String(entries.length);
  }

  async function loadChart() {
    const bounds = range();
    Dashboard.status("Loading history…");
    const entries = await readHistory(bounds);
    draw(entries, bounds);
    Dashboard.status(entries.length
      ? `${entries.length} reading${entries.length === 1 ? "" : "s"} from ${new Date(bounds.since).toLocaleString()} to ${new Date(bounds.until).toLocaleString()}`
      : "No reading in this time range.");
  }

  async function loadAll() {
    await loadLatest();
    await loadChart();
  }

  function localInput(ms) {
    const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
    return d.toISOString().slice(0, 19);
  }

  function showCustom() {
    const custom = preset.value === "custom";
    for (const label of form.querySelectorAll("[data-for]")) label.hidden = !custom;
    if (custom && !document.getElementById("since").value) {
      const now = Date.now();
      document.getElementById("since").value = localInput(now - 3600000);
      document.getElementById("until").value = localInput(now);
    }
  }

  preset.addEventListener("change", () => {
    showCustom();
    if (preset.value !== "custom") Dashboard.run(loadChart);
  });
  form.addEventListener("submit", (event) => { event.preventDefault(); Dashboard.run(loadChart); });
  window.addEventListener("resize", () => {
    if (plot) plot.setSize({ width: Math.max(320, chartBox.clientWidth), height: 380 });
  });
  showCustom();
  Dashboard.run(loadAll);
})();
