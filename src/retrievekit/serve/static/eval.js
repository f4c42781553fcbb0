/* retrievekit web UI: the evaluate page (latest report written by `retrievekit eval DATA --report DIR`). */
"use strict";

(function () {
  const rk = window.retrievekit;
  const { el } = rk;
  const METRIC = /^(ndcg|recall|map|mrr|p|precision|success|r-precision|rprec|bpref)(@\d+)?$/i;
  const FACTS = [
    ["dataset", "Dataset"], ["split", "Split"], ["corpus", "Corpus file"], ["documents", "Documents"],
    ["queries", "Queries"], ["created", "Created"], ["mode", "Mode"], ["model", "Model"], ["vectors", "Vectors"],
    ["analyzer", "Analyzer"], ["fields", "Fields"], ["depth", "Depth"], ["ties", "Ties"],
    ["index_seconds", "Index time (s)"], ["rerank", "Rerank"],
  ];
  const PER_QUERY_ROWS = 1000;

  const errorBox = document.getElementById("error");
  const status = document.getElementById("status");
  const report = document.getElementById("report");

  function systemsOf(data) {
    return Array.isArray(data.systems) && data.systems.length ? data.systems : [data];
  }

  function metricsOf(data, systems) {
    if (Array.isArray(data.metrics) && data.metrics.length) return data.metrics;
    return Object.keys(systems[0]).filter((k) => METRIC.test(k) && typeof systems[0][k] === "number");
  }

  function describe(value) {
    if (value === null || value === undefined || value === "") return null;
    if (Array.isArray(value)) return value.join(", ");
    if (typeof value === "number") return value.toLocaleString();
    if (typeof value === "object") return JSON.stringify(value);
    return String(value);
  }

  function renderFacts(data) {
    const facts = document.getElementById("facts");
    facts.textContent = "";
    for (const [key, label] of FACTS) {
      const text = describe(data[key]);
      if (text === null) continue;
      facts.append(el("dt", {}, label), el("dd", { "data-key": key }, text));
    }
  }

  function renderSystems(data, systems, metrics) {
    const table = document.getElementById("systems");
    const head = table.querySelector("thead");
    const body = table.querySelector("tbody");
    head.textContent = "";
    body.textContent = "";
    const headRow = el("tr");
    headRow.append(el("th", { scope: "col" }, "System"));
    for (const m of metrics) headRow.append(el("th", { scope: "col", class: "num" }, m));
    headRow.append(el("th", { scope: "col", class: "num" }, "queries/s"));
    head.append(headRow);

    const best = {};
    for (const m of metrics) {
      const values = systems.map((s) => s[m]).filter((v) => typeof v === "number");
      if (values.length > 1) best[m] = Math.max(...values);
    }
    const significance = data.significance || {};
    let anySignificant = false;
    systems.forEach((system, i) => {
      const row = el("tr", { "data-system": system.system || "" });
      const name = el("th", { scope: "row" }, system.system || `system ${i + 1}`);
      if (i === 0 && systems.length > 1) name.append(" ", el("span", { class: "baseline" }, "(baseline)"));
      row.append(name);
      for (const m of metrics) {
        const value = system[m];
        const cell = el("td", { class: "num", "data-metric": m },
          typeof value === "number" ? value.toFixed(4) : "–");
        if (best[m] !== undefined && value === best[m]) cell.classList.add("best");
        const test = (significance[m] || {})[system.system];
        if (test && test.significant) {
          anySignificant = true;
          const p = typeof test.p_holm === "number" ? test.p_holm : test.p_value;
          const delta = typeof test.delta === "number" ? (test.delta >= 0 ? "+" : "") + test.delta.toFixed(4) : "?";
          const detail = `differs from ${systems[0].system} (Δ ${delta}, p Holm = ${Number(p).toPrecision(3)})`;
          const mark = el("span", { class: "sig", title: detail }, "*");
          mark.append(el("span", { class: "visually-hidden" }, " " + detail));
          cell.append(mark);
        }
        row.append(cell);
      }
      const qps = system.queries_per_second;
      row.append(el("td", { class: "num" }, typeof qps === "number" ? qps.toLocaleString() : "–"));
      body.append(row);
    });
    const note = document.getElementById("significance-note");
    note.hidden = !anySignificant;
    note.textContent = anySignificant
      ? `* significantly different from ${systems[0].system} (paired test, Holm-corrected, p < 0.05). `
        + "Bold: best value per metric."
      : "";
  }

  async function renderPlots(names) {
    const container = document.getElementById("plots");
    container.textContent = "";
    document.getElementById("plots-heading").hidden = !names.length;
    for (const name of names) {
      const figure = el("figure");
      const img = el("img", { alt: `Plot: ${name}`, "data-plot": name });
      figure.append(img, el("figcaption", {}, name));
      container.append(figure);
      const path = "eval/plots/" + encodeURIComponent(name);
      if (!rk.getKey()) {
        img.src = rk.apiUrl(path);
        continue;
      }
      // <img> cannot send an Authorization header: fetch the bytes with it and show them from a blob URL.
      try {
        const blob = await rk.apiFetch(path, { blob: true });
        img.src = URL.createObjectURL(blob);
      } catch (err) {
        figure.append(el("p", { class: "error", role: "alert" }, `${name}: ${err.message}`));
      }
    }
  }

  function renderPerQuery(data, systems, metrics) {
    const details = document.getElementById("per-query-details");
    const perQuery = data.per_query || {};
    const names = systems.map((s) => s.system).filter((n) => perQuery[n]);
    const metric = metrics.find((m) => m.toLowerCase() === "ndcg@10") || metrics[0];
    details.hidden = !names.length || !metric;
    if (details.hidden) return;
    const table = document.getElementById("per-query");
    const head = table.querySelector("thead");
    const body = table.querySelector("tbody");
    head.textContent = "";
    body.textContent = "";
    const headRow = el("tr");
    headRow.append(el("th", { scope: "col" }, "Query"));
    for (const n of names) headRow.append(el("th", { scope: "col", class: "num" }, `${n} ${metric}`));
    head.append(headRow);
    const qids = [...new Set(names.flatMap((n) => Object.keys(perQuery[n])))];
    qids.sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    for (const qid of qids.slice(0, PER_QUERY_ROWS)) {
      const row = el("tr");
      row.append(el("th", { scope: "row" }, qid));
      for (const n of names) {
        const value = (perQuery[n][qid] || {})[metric];
        row.append(el("td", { class: "num" }, typeof value === "number" ? value.toFixed(4) : "–"));
      }
      body.append(row);
    }
    document.getElementById("per-query-note").textContent = qids.length > PER_QUERY_ROWS
      ? `First ${PER_QUERY_ROWS} of ${qids.length} queries shown.` : `${qids.length} queries.`;
  }

  function showNoReport() {
    status.textContent = "";
    const message = el("p", { id: "no-report" }, "No report yet — run ");
    message.append(el("code", {}, "retrievekit eval DATA --report DIR"),
      " (with DIR the server's reports folder, by default <collection>/reports) and reload this page.");
    status.replaceWith(message);
  }

  async function load() {
    rk.installKeyButton();
    let data;
    try {
      data = await rk.apiFetch("eval/latest");
    } catch (err) {
      if (err.status === 404) {
        showNoReport();
      } else {
        status.textContent = "";
        rk.showError(errorBox, err);
      }
      document.body.dataset.ready = "true";
      return;
    }
    rk.showCollection().catch(() => { /* the header line is optional */ });
    const systems = systemsOf(data);
    const metrics = metricsOf(data, systems);
    renderFacts(data);
    renderSystems(data, systems, metrics);
    renderPerQuery(data, systems, metrics);
    status.textContent = "";
    report.hidden = false;
    document.body.dataset.ready = "true";
    await renderPlots(Array.isArray(data.plots) ? data.plots : []);
  }

  load();
})();
