"use strict";
// Builds the report from the JSON block. Text from users or trials only ever goes through
// textContent, never innerHTML.
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const T = data.trials;
  const teacher = data.teacher;
  const row = new Map(T.number.map((n, i) => [n, i]));
  let selected = null;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  const fixed = (v, d) => (v === null || v === undefined ? "-" : Number(v).toFixed(d));
  const bytes = (v) => Math.round(v).toLocaleString("en-US") + " B";
  const times = (a, b) => (b ? (a / b).toFixed(a / b >= 10 ? 1 : 2) + "x" : "-");
  const points = (acc) => ((acc - teacher.accuracy) * 100 >= 0 ? "+" : "") + ((acc - teacher.accuracy) * 100).toFixed(2) + " pt";

  // header
  document.getElementById("task-name").textContent = data.title;
  const front = T.number.filter((n, i) => T.on_front[i]);
  document.getElementById("headline").textContent =
    `${front.length} Pareto candidate${front.length === 1 ? "" : "s"} among ${T.number.length} complete trials (${data.failed.length} failed or stopped). ` +
    `Teacher: accuracy ${fixed(teacher.accuracy, 4)}, ${bytes(teacher.size_bytes)}, ${fixed(teacher.latency_ms, 4)} ms. ` +
    `Budget: ${data.budget}.`;
  document.getElementById("footer").textContent = `Generated ${data.generated_at} by autocompress from the run's stored results.`;

  // plots
  const config = { displaylogo: false, responsive: true };
  const plots = {};
  for (const [key, fig] of Object.entries(data.figures)) {
    const div = document.getElementById("plot-" + key);
    if (!div) continue;
    Plotly.newPlot(div, fig.data, fig.layout, config);
    plots[key] = div;
  }
  const marker = { size: 20, color: "rgba(0,0,0,0)", line: { color: "#e4572e", width: 3 } };
  for (const key of ["size", "latency"]) {
    Plotly.addTraces(plots[key], { x: [], y: [], mode: "markers", name: "selected", marker: marker, hoverinfo: "skip" });
  }
  for (const key of ["size", "latency", "pareto3d"]) {
    plots[key].on("plotly_click", (event) => {
      const p = event.points && event.points[0];
      if (p && p.customdata !== undefined && row.has(Number(p.customdata))) select(Number(p.customdata));
    });
  }

  // the selected candidate
  function ratioCard(key, value, ratio) {
    const card = el("div", null, "card");
    card.append(el("div", key, "k"), el("div", value, "v"), el("div", ratio, "r"));
    return card;
  }
  function shade(kind, value) {
    if (kind === "prune" && value > 0) return `rgba(230,120,30,${(0.15 + value).toFixed(2)})`;
    if (kind === "bits" && value) return `rgba(31,95,191,${({ 8: 0.2, 4: 0.45, 2: 0.75 })[value] || 0.2})`;
    if (kind === "rank" && value !== null && value < 1) return `rgba(130,60,170,${(0.15 + 0.8 * (1 - value)).toFixed(2)})`;
    return "";
  }
  function select(number) {
    const i = row.get(number);
    const plan = data.plans[String(number)];
    if (i === undefined || !plan) return;
    selected = number;
    const level = T.full[i] ? "full fidelity" : `screening (${T.level[i]})`;
    document.getElementById("cand-title").textContent =
      `trial ${number} (${level}${T.on_front[i] ? ", on the Pareto front" : ""}${T.feasible[i] ? ", within budget" : ""})`;
    const cards = document.getElementById("cand-ratios");
    cards.replaceChildren(
      ratioCard("accuracy", fixed(T.accuracy[i], 4), `${points(T.accuracy[i])} vs teacher (${fixed(T.accuracy[i] / teacher.accuracy, 4)} of it)`),
      ratioCard("size", bytes(T.size_bytes[i]), `${times(teacher.size_bytes, T.size_bytes[i])} smaller`),
      ratioCard("latency", `${fixed(T.latency_ms[i], 4)} ms`, `${times(teacher.latency_ms, T.latency_ms[i])} faster`));
    const stages = Object.entries(plan.depth).map(([s, k]) =>
      data.stages[s] && data.stages[s].length ? `${s}: ${k} of ${data.stages[s].length} blocks` : `${s}: ${k === null ? "all" : k} blocks kept`);
    document.getElementById("cand-arch").textContent =
      `Student architecture: width ${plan.width} x the teacher's` + (stages.length ? `; ${stages.join("; ")}` : "") +
      `. Plan: ${T.summary[i]}.`;
    document.getElementById("cand-export").textContent = `${data.export_command} --trial ${number} --export shipped/trial-${number}`;
    const body = document.querySelector("#cand-layers tbody");
    body.replaceChildren(...data.layers.map((name, j) => {
      const tr = el("tr");
      const dropped = plan.dropped[j];
      tr.append(el("td", dropped ? `${name} (block dropped)` : name, dropped ? "text dropped" : "text"));
      const cells = [["prune", plan.prune[j], plan.prune[j] ? `${Math.round(plan.prune[j] * 1000) / 10}%` : "-"],
                     ["bits", plan.bits[j], plan.bits[j] ? `int${plan.bits[j]}` : "float32"],
                     ["rank", plan.rank[j], plan.rank[j] === null ? "full" : String(plan.rank[j])]];
      for (const [kind, value, text] of cells) {
        const td = el("td", text, dropped ? "dropped" : "");
        if (!dropped) td.style.background = shade(kind, value);
        tr.append(td);
      }
      return tr;
    }));
    for (const key of ["size", "latency"]) {
      const div = plots[key];
      const x = key === "size" ? T.size_bytes[i] : T.latency_ms[i];
      Plotly.restyle(div, { x: [[x]], y: [[T.accuracy[i]]] }, [div.data.length - 1]);
    }
    for (const tr of document.querySelectorAll("#front-table tbody tr")) {
      tr.classList.toggle("selected", Number(tr.dataset.trial) === number);
    }
  }

  // the Pareto table, sortable
  const columns = [
    ["trial", (i) => T.number[i], (v) => v],
    ["accuracy", (i) => T.accuracy[i], (v) => fixed(v, 4)],
    ["vs teacher", (i) => T.accuracy[i] - teacher.accuracy, (v) => points(v + teacher.accuracy)],
    ["size", (i) => T.size_bytes[i], bytes],
    ["smaller", (i) => teacher.size_bytes / T.size_bytes[i], (v) => v.toFixed(1) + "x"],
    ["latency (ms)", (i) => T.latency_ms[i], (v) => fixed(v, 4)],
    ["faster", (i) => teacher.latency_ms / T.latency_ms[i], (v) => v.toFixed(2) + "x"],
    ["in budget", (i) => (T.feasible[i] ? 1 : 0), (v) => (v ? "yes" : "no")],
    ["plan", (i) => T.summary[i], (v) => v],
  ];
  const table = document.getElementById("front-table");
  const headRow = el("tr");
  columns.forEach(([name], c) => {
    const th = el("th", name);
    th.addEventListener("click", () => sortBy(c, th.getAttribute("aria-sort") === "ascending" ? -1 : 1));
    headRow.append(th);
  });
  table.tHead.append(headRow);
  let frontRows = T.number.map((n, i) => i).filter((i) => T.on_front[i]);
  function sortBy(c, direction) {
    const key = columns[c][1];
    frontRows.sort((a, b) => {
      const x = key(a), y = key(b);
      return (typeof x === "string" ? x.localeCompare(y) : x - y) * direction;
    });
    headRow.querySelectorAll("th").forEach((th, k) =>
      k === c ? th.setAttribute("aria-sort", direction > 0 ? "ascending" : "descending") : th.removeAttribute("aria-sort"));
    table.tBodies[0].replaceChildren(...frontRows.map((i) => {
      const tr = el("tr");
      tr.dataset.trial = T.number[i];
      columns.forEach(([name, key, show]) => tr.append(el("td", show(key(i)), name === "plan" ? "text" : "")));
      tr.classList.toggle("selected", T.number[i] === selected);
      tr.addEventListener("click", () => select(T.number[i]));
      return tr;
    }));
  }
  sortBy(1, -1);
  const note = (body, text) => { const tr = el("tr"); tr.append(el("td", text, "text")); body.append(tr); };
  if (!frontRows.length) note(table.tBodies[0], "no complete full-fidelity trials yet");

  // progress, failures, importances, facts
  document.getElementById("hv-note").textContent =
    "Hypervolume of the full-fidelity front in teacher-relative objectives (1 - accuracy/teacher accuracy, " +
    "size ratio, latency ratio) up to the reference point (0.05, 1, 1); larger is better. " +
    `Now: ${fixed(data.hypervolume, 5)}.`;
  const failedBody = document.querySelector("#failed-table tbody");
  for (const f of data.failed) {
    const tr = el("tr");
    tr.append(el("td", f.number), el("td", f.state.toLowerCase()), el("td", f.level || "-"), el("td", fixed(f.duration_s, 1)),
              el("td", f.error || "(no reason stored)", "text"));
    failedBody.append(tr);
  }
  if (!data.failed.length) note(failedBody, "none");
  document.getElementById("importance-note").textContent = data.importance.evaluator === "none"
    ? `Too few full-fidelity trials (${data.importance.trials}) to say which knobs mattered.`
    : `Optuna's ${data.importance.evaluator} importance over ${data.importance.trials} full-fidelity trials, for each objective: ` +
      "the share of the objective's variation each knob explains (the most important knobs shown).";
  const facts = document.getElementById("facts-list");
  for (const [label, text] of data.facts) facts.append(el("dt", label), el("dd", text));
  document.getElementById("copy-export").addEventListener("click", () => {
    const text = document.getElementById("cand-export").textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  });

  // start with the most accurate Pareto candidate (or any complete trial)
  const first = frontRows.length ? T.number[frontRows[0]] : T.number[0];
  if (first !== undefined) select(first);
  else document.getElementById("cand-title").textContent = "none yet (no complete trials)";
  window.autocompressReport = { select: select, data: data };
})();
