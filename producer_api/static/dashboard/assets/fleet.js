// The fleet page: one page of `GET /cpu-info?readings=true` at a time, in the order
// and within the bounds the controls give; the API pages with cursors.
"use strict";

(() => {
  const form = document.getElementById("controls");
  const body = document.querySelector("#fleet tbody");
  const next = document.getElementById("next");
  const first = document.getElementById("first");
  const pageNumber = document.getElementById("page-number");
  const state = { cursor: null, next: null, page: 1 };

  // The controls, kept in the page's own URL so that a view can be bookmarked.
  const params = new URLSearchParams(location.search);
  for (const name of ["sort", "min_pressure", "max_pressure", "not_seen_for", "limit"]) {
    const field = form.elements[name];
    if (params.has(name)) field.value = params.get(name);
  }

  function showFieldsOfSort() {
    const sort = form.elements.sort.value;
    for (const label of form.querySelectorAll("[data-for]")) {
      label.hidden = label.dataset.for !== sort;
    }
  }

  // The API query of the controls: sort=pressure with its bounds (percent on the page,
  // shares in the API), not_seen_for for silence, or the id order.
  function query() {
    const q = new URLSearchParams({ readings: "true", limit: form.elements.limit.value });
    const sort = form.elements.sort.value;
    if (sort === "pressure") {
      q.set("sort", "pressure");
      for (const name of ["min_pressure", "max_pressure"]) {
        const value = form.elements[name].value;
        if (value !== "") q.set(name, String(Number(value) / 100));
      }
    } else if (sort === "silence") {
      q.set("not_seen_for", form.elements.not_seen_for.value || "0");
    }
    if (state.cursor) q.set("cursor", state.cursor);
    return q;
  }

  function cell(row, text, className) {
    const td = row.insertCell();
    td.textContent = text;
    if (className) td.className = className;
    return td;
  }

  function render(machines) {
    body.replaceChildren();
    for (const machine of machines) {
      const row = body.insertRow();
      row.dataset.machineId = machine.machine_id;
      const name = row.insertCell();
      const link = document.createElement("a");
      link.href = `machine?id=${encodeURIComponent(machine.machine_id)}`;
      link.textContent = machine.machine_id;
      name.append(link);
      const memory = machine.memory;
      const pressure = cell(row, "", "num pressure");
      if (memory) {
        const bar = document.createElement("span");
        bar.className = `meter ${Dashboard.level(memory.pressure)}`;
        bar.style.setProperty("--share", memory.pressure);
        const label = document.createElement("span");
        label.className = "share";
        label.textContent = Dashboard.percent(memory.pressure);
        pressure.append(bar, label);
        pressure.dataset.pressure = memory.pressure;
      } else {
        pressure.textContent = "–";
      }
      cell(row, Dashboard.percent(memory && memory.in_use), "num");
      cell(row, Dashboard.percent(memory && memory.available), "num");
      cell(row, machine.reading ? Dashboard.gib(machine.reading.total) : "–", "num");
      const seen = cell(row, Dashboard.ago(machine.last_seen_ms), "num");
      seen.title = new Date(machine.last_seen_ms).toISOString();
    }
  }

  async function load() {
    Dashboard.status("Loading…");
    const q = query();
    const page = await Dashboard.get(`cpu-info?${q}`, () => Dashboard.run(load));
    render(page.machines);
    state.next = page.next;
    next.disabled = page.next === null;
    first.disabled = state.page === 1;
    pageNumber.textContent = `Page ${state.page}`;
    const shown = page.machines.length;
    Dashboard.status(shown ? `${shown} machine${shown === 1 ? "" : "s"} on this page`
      : "No machine matches.");
  }

  function restart() {
    state.cursor = null;
    state.page = 1;
    const shown = new URLSearchParams();
    for (const name of ["sort", "min_pressure", "max_pressure", "not_seen_for", "limit"]) {
      const value = form.elements[name].value;
      if (value !== "" && !form.elements[name].closest("[hidden]")) shown.set(name, value);
    }
    history.replaceState(null, "", `?${shown}`);
    Dashboard.run(load);
  }

  form.elements.sort.addEventListener("change", () => { showFieldsOfSort(); restart(); });
  form.addEventListener("submit", (event) => { event.preventDefault(); restart(); });
  next.addEventListener("click", () => {
    state.cursor = state.next;
    state.page += 1;
    Dashboard.run(load);
  });
  first.addEventListener("click", restart);
  showFieldsOfSort();
  Dashboard.run(load);
})();
