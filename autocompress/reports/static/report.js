"use strict";
// Builds the report from the JSON block. Text from users or trials only ever goes through
// textContent, never innerHTML.
(function () {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  const T = data.trials;
  const teacher = data.teacher;
  const row = new Map(T.number.map((n, i) => [n, i]));
  let selected = null;
  let budget = { size: null, latency: null, accuracy: null };  // the budget filter, parsed

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
    `Budget of the search: ${data.budget}.`;
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
  // overlays drawn by the page, after the figure's own traces: the selected trial, the trials
  // within the budget filter, and the one `best` picks for it
  const ring = (color, size, width, symbol) => ({ size: size, symbol: symbol || "circle", line: { color: color, width: width },
                                                   color: symbol ? color : "rgba(0,0,0,0)" });  // an open symbol's line takes color
  const overlay = {};
  for (const key of ["size", "latency"]) {
    const first = plots[key].data.length;
    overlay[key] = { selected: first, within: first + 1, pick: first + 2 };
    Plotly.addTraces(plots[key], [
      { x: [], y: [], mode: "markers", name: "selected", marker: ring("#e4572e", 20, 3), hoverinfo: "skip" },
      { x: [], y: [], mode: "markers", name: "within the budget", marker: ring(data.budget_color, 14, 2), hoverinfo: "skip" },
      { x: [], y: [], mode: "markers", name: "best's pick", marker: ring(data.budget_color, 26, 3, "diamond-open"), hoverinfo: "skip" }]);
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
  const percent = (v) => `${Math.round(v * 1000) / 10}%`;
  function keptText(j, plan) {  // "37.5% (3 of 8)"; "all" when nothing is removed
    const total = data.layer_info.channels[j];
    if (plan.kept[j] >= 1) return total ? `all ${total}` : "all";
    return percent(plan.kept[j]) + (plan.channels[j] !== null && total ? ` (${plan.channels[j]} of ${total})` : "");
  }
  function shade(kind, value) {
    if (kind === "kept" && value < 1) return `rgba(230,120,30,${(0.15 + (1 - value)).toFixed(2)})`;
    if (kind === "bits" && value) return `rgba(31,95,191,${({ 8: 0.2, 4: 0.45, 2: 0.75 })[value] || 0.2})`;
    if (kind === "rank" && value !== null && value < 1) return `rgba(130,60,170,${(0.15 + 0.8 * (1 - value)).toFixed(2)})`;
    return "";
  }
  function select(number) {
    const i = row.get(number);
    const plan = data.plans[String(number)];
    if (i === undefined || !plan) return;
    selected = number;
    const level = T.full[i] ? "full fidelity" : `rung ${T.rung[i]}, ${T.steps[i]} fine-tuning steps`;
    document.getElementById("cand-title").textContent =
      `trial ${number} (${level}${T.on_front[i] ? ", on the Pareto front" : ""}${T.full[i] && within(i, budget) ? ", within the budget" : ""})`;
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
      tr.dataset.layer = name;
      const dropped = plan.dropped[j];
      tr.append(el("td", dropped ? `${name} (block dropped)` : name, dropped ? "text dropped" : "text"));
      const cells = [["kept", plan.kept[j], keptText(j, plan)],
                     ["bits", plan.bits[j], plan.bits[j] ? `int${plan.bits[j]}` : "float32"],
                     ["rank", plan.rank[j], plan.rank[j] === null ? "full"
                      : (plan.tucker && plan.tucker[j] ? "Tucker-2 " : "") + percent(plan.rank[j])]];
      for (const [kind, value, text] of cells) {
        const td = el("td", text, dropped ? "dropped" : "");
        td.dataset.kind = kind;
        if (!dropped) td.style.background = shade(kind, value);
        tr.append(td);
      }
      const group = data.layer_info.group[j];
      if (group !== null && group !== name && plan.kept[j] < 1) tr.children[1].append(" ", el("span", `via ${group}`, "via"));
      return tr;
    }));
    for (const key of ["size", "latency"]) {
      const div = plots[key];
      const x = key === "size" ? T.size_bytes[i] : T.latency_ms[i];
      Plotly.restyle(div, { x: [[x]], y: [[T.accuracy[i]]] }, [overlay[key].selected]);
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
    ["in budget", (i) => (within(i, budget) ? 1 : 0), (v) => (v ? "yes" : "no")],
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
  let sorted = [1, -1];
  function sortBy(c, direction) {
    sorted = [c, direction];
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
    tr.append(el("td", f.number), el("td", f.state.toLowerCase()), el("td", f.rung ?? "-"), el("td", fixed(f.duration_s, 1)),
              el("td", f.error || "(no reason stored)", "text"));
    failedBody.append(tr);
  }
  if (!data.failed.length) note(failedBody, "none");
  document.getElementById("importance-note").textContent = data.importance.evaluator === "none"
    ? `Too few full-fidelity trials (${data.importance.trials}) to say which knobs mattered.`
    : `Optuna's ${data.importance.evaluator} importance over ${data.importance.trials} full-fidelity trials, for each objective: ` +
      "the share of the objective's variation each knob explains (the most important knobs shown).";
  const S = data.sensitivity;
  document.getElementById("sensitivity-note").textContent = S === null
    ? "This run has no sensitivity scan (it was searched with --no-sensitivity, or before the scan existed)."
    : `Before its first trial the search measured ${S.cells} one-knob plans: each value of each layer's knobs ` +
      "applied alone, every other knob as the teacher's, calibrated" + (S.steps ? ` and fine-tuned ${S.steps} steps` : "") +
      `, exported and measured like a trial (accuracy on the first ${S.samples} validation samples). Colour: the ` +
      "accuracy drop in points against the teacher on the same samples; hover a cell for its size and latency " +
      `changes.${S.failed ? ` ${S.failed} failed (blank; hover for the reason).` : ""} The table is sensitivity.csv ` +
      "in the run directory.";
  // the extra latency profiles: a front each, its rows selectable like the front table's
  if (data.profiles.length) {
    document.getElementById("profiles").hidden = false;
    document.getElementById("profiles-link").hidden = false;
  }
  for (const P of data.profiles) {
    const box = el("div");
    const how = P.profile.threads ? `${P.profile.threads} thread(s), batch ${P.profile.batch}, provider ${P.profile.provider}` : "";
    box.append(el("h3", `${P.name}${how ? " (" + how + ")" : ""}: teacher ${fixed(P.teacher_latency_ms, 4)} ms`));
    const plot = el("div", null, "plot");
    box.append(plot);
    const tbl = el("table", null, "profile-front");
    const head = el("tr");
    for (const name of ["trial", "accuracy", "size", `latency @${P.name}`, "faster", "own latency", "on the front above"]) head.append(el("th", name));
    tbl.append(el("thead"), el("tbody"));
    tbl.tHead.append(head);
    for (const r of P.rows) {
      const tr = el("tr");
      tr.dataset.trial = r.number;
      tr.append(el("td", r.number), el("td", fixed(r.accuracy, 4)), el("td", bytes(r.size_bytes)),
                el("td", fixed(r.latency_ms, 4) + " ms"), el("td", times(P.teacher_latency_ms, r.latency_ms)),
                el("td", fixed(r.own_latency_ms, 4) + " ms"), el("td", r.on_own_front ? "yes" : "only here"));
      if (row.has(r.number)) tr.addEventListener("click", () => select(r.number));
      tbl.tBodies[0].append(tr);
    }
    if (!P.rows.length) note(tbl.tBodies[0], "no complete full-fidelity trials yet");
    box.append(tbl);
    document.getElementById("profile-list").append(box);
    Plotly.newPlot(plot, P.figure.data, P.figure.layout, config);
    plot.on("plotly_click", (event) => {
      const p = event.points && event.points[0];
      if (p && p.customdata !== undefined && row.has(Number(p.customdata))) select(Number(p.customdata));
    });
  }
  const facts = document.getElementById("facts-list");
  for (const [label, text] of data.facts) facts.append(el("dt", label), el("dd", text));
  document.getElementById("copy-export").addEventListener("click", () => {
    const text = document.getElementById("cand-export").textContent;
    if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
  });

  // The budget filter. Parsing follows autocompress/budget.py (same units, rounding and
  // messages); the pick follows best.select with prefer "accurate": among complete full-fidelity
  // trials within the budget, the most accurate, ties smaller, then faster, then first stored.
  const SIZE_UNITS = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3 };
  const TIME_UNITS = { us: 1e-3, ms: 1.0, s: 1000.0 };
  const NUMBER = /^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*$/;
  const quoted = (text) => `'${text}'`;
  function withUnit(text, units, what, example) {
    const match = NUMBER.exec(String(text).toLowerCase());
    if (!match) throw new Error(`${what} ${quoted(text)} is not a positive number with a unit; e.g. ${example}`);
    const value = Number(match[1]), unit = match[2];
    if (!Object.hasOwn(units, unit)) {
      throw new Error(`${what} ${quoted(text)}: unknown unit ${quoted(unit)}; use one of ${Object.keys(units).join(", ")} (e.g. ${example})`);
    }
    if (!Number.isFinite(value) || value <= 0) throw new Error(`${what} ${quoted(text)} must be a positive number (e.g. ${example})`);
    return value * units[unit];
  }
  function roundHalfEven(x) {  // Python's round()
    const r = Math.round(x);
    return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  const parseSize = (text) => roundHalfEven(withUnit(text, SIZE_UNITS, "--max-size", "50KB or 1.5MiB"));
  // to 15 significant digits, as the CLI (budget.parse_latency): no conversion error in the last bit
  const parseLatency = (text) => Number(withUnit(text, TIME_UNITS, "--max-latency", "2ms or 250us").toPrecision(15));
  function pythonFloat(text) {  // float(text) in Python; null where it raises
    const t = text.trim(), digits = "[0-9](?:_?[0-9])*";
    if (/^[+-]?(inf|infinity)$/i.test(t)) return t.startsWith("-") ? -Infinity : Infinity;
    if (/^[+-]?nan$/i.test(t)) return NaN;
    const form = new RegExp(`^[+-]?(?:${digits}(?:\\.(?:${digits})?)?|\\.${digits})(?:e[+-]?${digits})?$`, "i");
    return form.test(t) ? Number(t.replace(/_/g, "")) : null;
  }
  function parseAccuracy(text) {
    const raw = String(text).trim();
    let value = pythonFloat(raw.replace(/%+$/, ""));
    if (value === null) throw new Error(`--min-accuracy ${quoted(text)} is not a number; e.g. 0.97 or 97%`);
    value = value / (raw.endsWith("%") ? 100 : 1);
    if (!Number.isFinite(value) || !(value > 0 && value <= 1)) throw new Error(`--min-accuracy ${quoted(text)} must be in (0, 1], e.g. 0.97 or 97%`);
    return value;
  }
  function within(i, b) {  // Budget.feasible: no limit missed (constraint value > 0)
    return !((b.size !== null && T.size_bytes[i] - b.size > 0) || (b.latency !== null && T.latency_ms[i] - b.latency > 0) ||
             (b.accuracy !== null && b.accuracy - T.accuracy[i] > 0));
  }
  function preferred(i, j) {  // whether trial row i comes before row j for prefer "accurate"
    if (T.accuracy[i] !== T.accuracy[j]) return T.accuracy[i] > T.accuracy[j];
    if (T.size_bytes[i] !== T.size_bytes[j]) return T.size_bytes[i] < T.size_bytes[j];
    return T.latency_ms[i] < T.latency_ms[j];
  }
  const candidateRows = T.number.map((n, i) => i).filter((i) => T.full[i] && T.accuracy[i] !== null);
  function bestPick(b) {
    let pick = null;
    for (const i of candidateRows) if (within(i, b) && (pick === null || preferred(i, pick))) pick = i;
    return pick;
  }

  const inputs = { size: document.getElementById("filter-size"), latency: document.getElementById("filter-latency"),
                   accuracy: document.getElementById("filter-accuracy") };
  const parsers = { size: parseSize, latency: parseLatency, accuracy: parseAccuracy };
  const flags = { size: "--max-size", latency: "--max-latency", accuracy: "--min-accuracy" };
  function sizeText(b) {
    return b % 1e6 === 0 ? `${b / 1e6}MB` : b % 1e3 === 0 ? `${b / 1e3}KB` : `${b}B`;
  }
  function fillFilter(limits) {
    inputs.size.value = limits.max_size_bytes === null ? "" : sizeText(limits.max_size_bytes);
    inputs.latency.value = limits.max_latency_ms === null ? "" : `${limits.max_latency_ms}ms`;
    inputs.accuracy.value = limits.min_accuracy === null ? "" : String(limits.min_accuracy);
  }
  function budgetShapes(key, b) {
    const x = key === "size" ? T.size_bytes : T.latency_ms;
    const teacherX = key === "size" ? teacher.size_bytes : teacher.latency_ms;
    const limit = key === "size" ? b.size : b.latency;
    const values = [teacherX, ...x.filter((v) => v !== null)];
    const left = Math.min(...values) / 2, right = Math.max(...values) * 2;  // the region ends just beyond the points
    const line = { color: data.budget_color, dash: "dash", width: 1.5 };
    const shapes = [], notes = [];
    if (limit === null && b.accuracy === null) return [shapes, notes];
    const shown = limit !== null && limit < right;
    if (shown) {
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: limit, x1: limit, y0: 0, y1: 1, line: line });
      notes.push({ xref: "x", yref: "paper", x: key === "size" ? Math.log10(limit) : limit, y: 1, text: `max ${key}`,
                   showarrow: false, xanchor: "right", yanchor: "top", font: { color: data.budget_color } });
    }
    if (b.accuracy !== null) {
      shapes.push({ type: "line", xref: "paper", yref: "y", x0: 0, x1: 1, y0: b.accuracy, y1: b.accuracy, line: line });
      notes.push({ xref: "paper", yref: "y", x: 0, y: b.accuracy, text: "min accuracy", showarrow: false,
                   xanchor: "left", yanchor: "bottom", font: { color: data.budget_color } });
    }
    // data coordinates where a limit binds, the whole plot (paper coordinates) where it does not
    const xs = limit !== null ? { xref: "x", x0: left, x1: Math.min(limit, right) } : { xref: "paper", x0: 0, x1: 1 };
    const ys = b.accuracy !== null ? { yref: "y", y0: b.accuracy, y1: 1 } : { yref: "paper", y0: 0, y1: 1 };
    shapes.push({ type: "rect", ...xs, ...ys, fillcolor: data.budget_color, opacity: 0.08, line: { width: 0 }, layer: "below" });
    return [shapes, notes];
  }
  function showBudget(b, pick) {
    const rows = candidateRows.filter((i) => within(i, b));
    for (const key of ["size", "latency"]) {
      const x = key === "size" ? T.size_bytes : T.latency_ms;
      const [shapes, annotations] = budgetShapes(key, b);
      Plotly.relayout(plots[key], { shapes: shapes, annotations: annotations });
      Plotly.restyle(plots[key], { x: [rows.map((i) => x[i]), pick === null ? [] : [x[pick]]],
                                   y: [rows.map((i) => T.accuracy[i]), pick === null ? [] : [T.accuracy[pick]]] },
                     [overlay[key].within, overlay[key].pick]);
    }
    return rows.length;
  }
  // Read the inputs; show the region, the trials within it and best's pick (and select it).
  // Returns the picked trial number, or null.
  function applyFilter() {
    const parsed = {}, errors = [];
    for (const [axis, input] of Object.entries(inputs)) {
      const text = input.value.trim();
      try {
        parsed[axis] = text === "" ? null : parsers[axis](text);
        input.classList.remove("invalid");
      } catch (error) {
        errors.push(error.message);
        input.classList.add("invalid");
      }
    }
    document.getElementById("filter-error").textContent = errors.join("; ");
    const result = document.getElementById("filter-result"), command = document.getElementById("filter-command");
    if (errors.length) {
      result.textContent = "Fix the budget above to see what fits it.";
      command.textContent = "";
      return null;
    }
    budget = parsed;
    const pick = bestPick(budget);
    const count = showBudget(budget, pick);
    sortBy(sorted[0], sorted[1]);
    const limits = Object.keys(inputs).filter((axis) => budget[axis] !== null);
    const args = limits.map((axis) => {  // what the user typed where the shell takes it as is
      const text = inputs[axis].value.trim();
      const word = /^[0-9A-Za-z.+%-]+$/.test(text) ? text
        : axis === "size" ? `${budget.size}B` : axis === "latency" ? `${budget.latency}ms` : String(budget.accuracy);
      return `${flags[axis]} ${word}`;
    });
    if (pick === null) {
      result.textContent = candidateRows.length
        ? `No full-fidelity candidate meets this budget (of ${candidateRows.length}); \`autocompress best\` lists the nearest.`
        : "No complete full-fidelity trials yet.";
      command.textContent = [data.export_command, ...args].join(" ");
      return null;
    }
    const n = T.number[pick];
    result.textContent = `${count} of ${candidateRows.length} full-fidelity candidates meet this budget; best picks trial ${n}: ` +
      `accuracy ${fixed(T.accuracy[pick], 4)}, ${bytes(T.size_bytes[pick])}, ${fixed(T.latency_ms[pick], 4)} ms.`;
    command.textContent = [data.export_command, ...args, "--export", `shipped/trial-${n}`].join(" ");
    select(n);
    return n;
  }
  for (const input of Object.values(inputs)) input.addEventListener("input", applyFilter);
  document.getElementById("budget-filter").addEventListener("submit", (event) => { event.preventDefault(); applyFilter(); });
  document.getElementById("filter-run-budget").addEventListener("click", () => { fillFilter(data.budget_limits); applyFilter(); });
  document.getElementById("filter-clear").addEventListener("click", () => {
    fillFilter({ max_size_bytes: null, max_latency_ms: null, min_accuracy: null });
    applyFilter();
  });
  document.getElementById("copy-filter").addEventListener("click", () => {
    const text = document.getElementById("filter-command").textContent;
    if (navigator.clipboard && text) navigator.clipboard.writeText(text).catch(() => {});
  });

  // start with the trial `best` picks for the run's budget, else the most accurate Pareto
  // candidate (or any complete trial)
  fillFilter(data.budget_limits);
  const picked = applyFilter();
  const first = frontRows.length ? T.number[frontRows[0]] : T.number[0];
  if (picked === null && first !== undefined) select(first);
  else if (picked === null) document.getElementById("cand-title").textContent = "none yet (no complete trials)";
  window.autocompressReport = { select: select, data: data, parse: { size: parseSize, latency: parseLatency, accuracy: parseAccuracy } };
})();
