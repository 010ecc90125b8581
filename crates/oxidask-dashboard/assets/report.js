// The performance report's page: draws one recorded run (the JSON in #report-data) with
// the dashboard's drawing code. Works offline; elements carry data-* attributes for tests.

const R = JSON.parse(document.getElementById("report-data").textContent);

function seconds(s) {
  return s >= 100 ? `${s.toFixed(0)} s` : s >= 1 ? `${s.toFixed(2)} s` : `${(s * 1000).toFixed(1)} ms`;
}

function table(id, head, rows) {
  const t = el("table", { id, "data-rows": rows.length });
  t.append(el("tr", {}, ...head.map(([h, num]) => el("th", { class: num ? "num" : "" }, h))));
  for (const r of rows) t.append(el("tr", {}, ...r.map((c, i) => el("td", { class: head[i][1] ? "num" : "" }, c))));
  return t;
}

function summaryLine() {
  const duration = (R.stop - R.start) / 1000;
  const tasks = R.prefixes.reduce((a, p) => a + p.tasks, 0);
  const threads = R.workers.reduce((a, w) => a + w[1], 0);
  const moved = R.transfers.reduce((a, t) => a + t.bytes, 0);
  const box = el("div", { class: "summary", id: "summary", "data-tasks": tasks },
    el("span", {}, el("b", {}, seconds(duration)), " duration"),
    el("span", {}, el("b", {}, tasks), " tasks"),
    el("span", {}, el("b", {}, seconds(R.compute_seconds)), " of compute"),
    el("span", {}, el("b", {}, R.workers.length), " workers, ", el("b", {}, threads), " threads"),
    el("span", {}, el("b", {}, bytes(moved)), " transferred"),
    el("span", { class: "muted" }, `started ${new Date(R.start).toISOString()}`));
  if (R.lost) box.append(el("span", { class: "muted" }, `(${R.lost} records were dropped by the scheduler before they were read)`));
  return box;
}

function prefixTable() {
  const most = Math.max(1e-9, ...R.prefixes.map((p) => p.seconds));
  const box = el("div", { id: "prefixes" });
  for (const p of R.prefixes) {
    const bar = el("div", { class: "bar" },
      el("span", { style: `left:0;width:${(100 * p.seconds) / most}%;background:${colorOf(p.prefix)}` }));
    box.append(el("div", { class: "row prefix-row", "data-prefix": p.prefix, "data-tasks": p.tasks },
      el("span", { class: "label", title: p.prefix }, p.prefix), bar,
      el("span", { class: "num" }, `${seconds(p.seconds)} · ${p.tasks} tasks · ${bytes(p.nbytes)}`)));
  }
  return box;
}

function movementTable(id, rows) {
  return table(id, [["worker"], ["count", 1], ["bytes", 1], ["time", 1], ["rate", 1]],
    rows.map((t) => [t.worker, t.count, bytes(t.bytes), seconds(t.seconds),
      t.seconds > 0 ? `${bytes(t.bytes / t.seconds)}/s` : "—"]));
}

function memoryCharts() {
  const names = Object.keys(R.memory.workers);
  const pick = (i) => names.map((name) => ({ name, values: R.memory.workers[name].map((m) => m[i]) }));
  return [
    lineChart("memory-managed", "results in memory, per worker", pick(0), bytes),
    lineChart("memory-rss", "process memory (resident), per worker", pick(1), bytes),
    lineChart("memory-spilled", "spilled to disk, per worker", pick(2), bytes),
  ];
}

function draw() {
  const main = document.getElementById("main");
  main.textContent = "";
  main.append(summaryLine(), panel("Task stream", el("div", { id: "stream-box" })));
  document.getElementById("stream-box").append(
    drawStream("stream", R.stream, { lanes: R.workers.map((w) => [w[0], w[1]]), t0: R.start, t1: R.stop }));
  main.append(panel("Compute time per task prefix", prefixTable()),
    panel("Worker memory over time", el("div", { id: "memory-box" })),
    panel("Transfers between workers (into each worker)", movementTable("transfers", R.transfers)),
    panel("Spills to disk", movementTable("spills", R.spills)));
  const box = document.getElementById("memory-box");
  for (const c of memoryCharts()) box.append(c);
  // Charts size themselves to their panel: draw them again now that they are placed.
  memoryCharts();
  drawStream("stream", R.stream, { lanes: R.workers.map((w) => [w[0], w[1]]), t0: R.start, t1: R.stop });
  document.body.dataset.ready = "1";
}

draw();
window.addEventListener("resize", draw);
