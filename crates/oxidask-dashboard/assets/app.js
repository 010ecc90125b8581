// The oxidask dashboard: one module for every page. The server pushes the scheduler's
// state over a websocket (a whole state first, then a tick every 200 ms); pages redraw from
// it a few times a second. Elements carry data-* attributes that the browser tests read.

const PAGE = document.body.dataset.page;
const ARG = document.body.dataset.arg;
const S = {
  connected: false, prefixes: [], workers: [], stream: [], history: [], errors: [],
  errorCount: 0, clients: 0, tasks: 0, uptime: 0, offset: 0, states: [],
};
const STREAM_KEEP = 50000;

for (const a of document.querySelectorAll("nav a")) {
  if (a.dataset.nav === PAGE || (PAGE === "worker" && a.dataset.nav === "workers")) a.classList.add("active");
}

// ---- data ----------------------------------------------------------------------------
function apply(msg) {
  if (msg.empty) return;
  S.offset = Date.now() - msg.now; // browser clock minus scheduler clock
  S.prefixes = msg.prefixes; S.workers = msg.workers; S.errors = msg.errors;
  S.errorCount = msg.error_count; S.clients = msg.clients; S.tasks = msg.tasks;
  S.uptime = msg.uptime; S.states = msg.states;
  if (msg.stream_skipped) S.sampledAt = Date.now();
  if (msg.type === "full") {
    S.stream = msg.stream.slice();
    S.history = (msg.history || []).slice();
  } else {
    for (const r of msg.stream) S.stream.push(r);
    if (S.stream.length > STREAM_KEEP) S.stream.splice(0, S.stream.length - STREAM_KEEP);
    S.history.push(msg.system);
    if (S.history.length > 3000) S.history.shift();
  }
  dirty = true;
}

function connect() {
  const ws = new WebSocket(`${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`);
  ws.onopen = () => { S.connected = true; status(); };
  ws.onmessage = (e) => apply(JSON.parse(e.data));
  ws.onclose = () => { S.connected = false; status(); setTimeout(connect, 1000); };
  ws.onerror = () => ws.close();
}

// The task stream of the kept records: the last `windowMs` (0: all), one worker or all.
function stream(id, windowMs, only) {
  const t1 = Date.now() - S.offset;
  const lanes = S.workers.map((w) => [w.name, w.nthreads]);
  return drawStream(id, S.stream, { lanes, t0: windowMs ? t1 - windowMs : null, t1, only });
}

function status() {
  const c = document.getElementById("connection");
  c.textContent = S.connected ? "live" : "disconnected — retrying";
  c.className = S.connected ? "connected" : "disconnected";
  c.dataset.connected = S.connected ? "1" : "0";
}

// ---- pages ------------------------------------------------------------------------------
function summary() {
  const threads = S.workers.reduce((a, w) => a + w.nthreads, 0);
  const mem = S.workers.reduce((a, w) => a + w.managed, 0);
  const limit = S.workers.reduce((a, w) => a + w.limit, 0);
  return el("div", { class: "summary", id: "summary", "data-workers": S.workers.length },
    el("span", {}, el("b", {}, S.workers.length), " workers"),
    el("span", {}, el("b", {}, threads), " threads"),
    el("span", {}, el("b", {}, bytes(mem)), ` of ${limit ? bytes(limit) : "no limit"}`),
    el("span", {}, el("b", {}, S.tasks), " tasks"),
    el("span", {}, el("b", {}, S.clients), " clients"),
    el("span", {}, el("b", {}, S.errorCount), " errors"),
    el("span", { class: "muted" }, `up ${S.uptime.toFixed(0)} s`));
}

function progress() {
  const box = el("div", { id: "progress" });
  const legend = el("div", { class: "legend" });
  for (const s of ["memory", "processing", "queued", "waiting", "erred"]) {
    legend.append(el("span", {}, el("i", { style: `background:${STATE_COLORS[s]}` }), s));
  }
  box.append(legend);
  const idx = (s) => S.states.indexOf(s);
  const rows = S.prefixes.slice().sort((a, b) => a.name.localeCompare(b.name));
  for (const p of rows) {
    const now = p.states;
    // Done: reached memory (also those since released or forgotten); remaining: still on
    // their way.
    const active = now[idx("waiting")] + now[idx("queued")] + now[idx("no-worker")] + now[idx("processing")];
    const erred = now[idx("erred")];
    const total = p.finished + active + erred;
    if (!total) continue;
    const bar = el("div", { class: "bar" });
    let left = 0;
    const seg = (n, color) => {
      if (!n) return;
      const w = (100 * n) / total;
      bar.append(el("span", { style: `left:${left}%;width:${w}%;background:${color}` }));
      left += w;
    };
    seg(p.finished, STATE_COLORS.memory);
    seg(now[idx("processing")], STATE_COLORS.processing);
    seg(now[idx("queued")] + now[idx("no-worker")], STATE_COLORS.queued);
    seg(now[idx("waiting")], STATE_COLORS.waiting);
    seg(erred, STATE_COLORS.erred);
    box.append(el("div", {
      class: "row progress-row", "data-prefix": p.name, "data-done": p.finished + erred, "data-total": total,
    }, el("span", { class: "label", title: p.name }, p.name), bar,
    el("span", { class: "num" }, `${p.finished + erred} / ${total}`)));
  }
  return box;
}

function memoryBars() {
  const box = el("div", { id: "memory" });
  const legend = el("div", { class: "legend" },
    el("span", {}, el("i", { style: "background:#3ebd93" }), "managed"),
    el("span", {}, el("i", { style: "background:#9aa5b1" }), "unmanaged"),
    el("span", {}, el("i", { style: "background:#f0b429" }), "spilled"));
  box.append(legend);
  for (const w of S.workers) {
    const unmanaged = Math.max(0, w.rss - w.managed);
    const scale = Math.max(w.limit || 0, w.rss + w.spilled, 1);
    const bar = el("div", { class: "bar" },
      el("span", { style: `left:0;width:${(100 * w.managed) / scale}%;background:#3ebd93` }),
      el("span", { style: `left:${(100 * w.managed) / scale}%;width:${(100 * unmanaged) / scale}%;background:#9aa5b1` }),
      el("span", { style: `left:${(100 * (w.managed + unmanaged)) / scale}%;width:${(100 * w.spilled) / scale}%;background:#f0b429` }));
    box.append(el("div", { class: "row memory-row", "data-worker": w.name, "data-managed": w.managed },
      el("a", { class: "label", href: `/workers/${encodeURIComponent(w.name)}` }, w.name), bar,
      el("span", { class: "num" }, `${bytes(w.managed + unmanaged)}${w.limit ? " / " + bytes(w.limit) : ""}`)));
  }
  return box;
}

function processingBars() {
  const box = el("div", { id: "processing" });
  const most = Math.max(1, ...S.workers.map((w) => w.processing));
  for (const w of S.workers) {
    const bar = el("div", { class: "bar" },
      el("span", { style: `left:0;width:${(100 * w.processing) / most}%;background:#47a3f3` }));
    box.append(el("div", { class: "row processing-row", "data-worker": w.name, "data-processing": w.processing },
      el("span", { class: "label" }, w.name), bar, el("span", { class: "num" }, `${w.processing} tasks`)));
  }
  return box;
}

function workersTable(only) {
  const t = el("table", { id: "workers" });
  t.append(el("tr", {}, ...["name", "address", "threads", "memory", "limit", "spilled", "cpu %",
    "processing", "executing", "keys", "last seen"].map((h) => el("th", {}, h))));
  for (const w of S.workers) {
    if (only && w.name !== only) continue;
    t.append(el("tr", { class: "worker", "data-name": w.name },
      el("td", {}, el("a", { href: `/workers/${encodeURIComponent(w.name)}` }, w.name), w.paused ? " (paused)" : ""),
      el("td", {}, w.address), el("td", { class: "num" }, w.nthreads),
      el("td", { class: "num" }, bytes(w.managed)), el("td", { class: "num" }, w.limit ? bytes(w.limit) : "—"),
      el("td", { class: "num" }, bytes(w.spilled)), el("td", { class: "num" }, w.cpu.toFixed(0)),
      el("td", { class: "num" }, w.processing), el("td", { class: "num" }, w.executing),
      el("td", { class: "num" }, w.keys), el("td", { class: "num" }, `${w.last_seen.toFixed(1)} s ago`)));
  }
  return t;
}

let graphData = null;
let graphFetched = 0;

function drawGraph() {
  const box = el("div", { id: "graph" });
  if (!graphData) return box.append("loading…"), box;
  const { nodes, edges, total, limit } = graphData;
  box.append(el("p", { class: "muted", id: "graph-caption", "data-nodes": nodes.length, "data-total": total },
    nodes.length < total ? `showing ${nodes.length} of ${total} tasks (the first ${limit}; capped)` : `${total} tasks`));
  // Layers by longest path from a root.
  const depth = new Array(nodes.length).fill(0);
  const incoming = nodes.map(() => []);
  for (const [a, b] of edges) incoming[b].push(a);
  const order = [...nodes.keys()];
  for (let pass = 0; pass < 3; pass++) {
    for (const i of order) for (const a of incoming[i]) depth[i] = Math.max(depth[i], depth[a] + 1);
  }
  const layers = [];
  nodes.forEach((n, i) => { (layers[depth[i]] = layers[depth[i]] || []).push(i); });
  // Each layer ordered by where its nodes' dependencies sit (fewer crossing edges).
  const place = new Array(nodes.length).fill(0);
  layers.forEach((l, d) => {
    if (d > 0) {
      const bary = (i) => incoming[i].length
        ? incoming[i].reduce((a, j) => a + place[j], 0) / incoming[i].length : 0.5;
      l.sort((a, b) => bary(a) - bary(b));
    }
    l.forEach((i, k) => { place[i] = (k + 0.5) / l.length; });
  });
  const H = Math.min(2000, Math.max(200, layers.length * 40 + 20));
  const [c, g, W] = canvas("graph-canvas", H);
  const pos = new Array(nodes.length);
  layers.forEach((l, d) => l.forEach((i, k) => {
    pos[i] = [((k + 0.5) / l.length) * W, 20 + d * ((H - 40) / Math.max(1, layers.length - 1))];
  }));
  g.strokeStyle = "rgba(80,90,100,0.25)";
  for (const [a, b] of edges) {
    g.beginPath(); g.moveTo(...pos[a]); g.lineTo(...pos[b]); g.stroke();
  }
  const counts = {};
  nodes.forEach(([key, prefix, state], i) => {
    counts[state] = (counts[state] || 0) + 1;
    g.fillStyle = STATE_COLORS[state] || "#999";
    g.beginPath(); g.arc(pos[i][0], pos[i][1], nodes.length > 500 ? 2 : 5, 0, 6.3); g.fill();
  });
  c.dataset.states = JSON.stringify(counts);
  box.append(c);
  return box;
}

async function fetchGraph() {
  try {
    graphData = await (await fetch("/api/graph?limit=2000")).json();
    dirty = true;
  } catch (e) { /* the scheduler may be restarting */ }
}

async function showStory(key) {
  const out = document.getElementById("story-out");
  out.textContent = "asking…";
  const r = await fetch(`/api/story?key=${encodeURIComponent(key)}`);
  const data = await r.json();
  out.textContent = "";
  if (!data.transitions.length) out.append(el("p", { class: "muted" }, `no transitions known for ${key}`));
  const ul = el("ul", { id: "transitions", "data-count": data.transitions.length });
  for (const line of data.transitions) ul.append(el("li", { class: "transition" }, line));
  out.append(ul);
}

async function showLogs(worker) {
  const out = document.getElementById("logs-out");
  const url = worker ? `/api/logs?worker=${encodeURIComponent(worker)}` : "/api/logs";
  const data = await (await fetch(url)).json();
  out.textContent = data.lines.join("\n");
  out.dataset.lines = String(data.lines.length);
}

function render() {
  const main = document.getElementById("main");
  const keep = document.activeElement && document.activeElement.tagName === "INPUT";
  if (PAGE === "story" || PAGE === "logs") {
    if (!main.dataset.built) buildStatic(main);
    return;
  }
  if (keep) return;
  main.textContent = "";
  if (PAGE === "status") {
    main.append(summary(),
      panel(Date.now() - (S.sampledAt || 0) < 20000 ? "Task stream (sampled: the newest 10,000 a second)" : "Task stream",
        stream("stream", 20000)),
      el("div", { class: "grid" },
        panel("Progress", progress()),
        el("div", {}, panel("Bytes stored per worker", memoryBars()),
          panel("Tasks processing per worker", processingBars()))));
  } else if (PAGE === "workers") {
    main.append(summary(), panel("Workers", workersTable()));
  } else if (PAGE === "worker") {
    main.append(panel(`Worker ${ARG}`, workersTable(ARG)),
      panel("Its task stream", stream("stream", 30000, ARG)),
      panel("Its log", el("pre", { class: "logs", id: "logs-out" }, "…")));
    showLogs(ARG);
  } else if (PAGE === "tasks") {
    main.append(summary(), panel("Task stream (all kept)", stream("stream", 0)));
  } else if (PAGE === "system") {
    const h = S.history;
    main.append(panel("Scheduler process",
      lineChart("cpu", "CPU, % of a core", h.map((p) => p.cpu), (v) => v.toFixed(0) + "%"),
      lineChart("rss", "memory (resident)", h.map((p) => p.rss), bytes),
      lineChart("busy", "core busy, % of the time", h.map((p) => 100 * p.busy), (v) => v.toFixed(1) + "%"),
      lineChart("latency", "core latency (longest batch), ms", h.map((p) => p.latency_ms), (v) => v.toFixed(2)),
      lineChart("connections", "connections", h.map((p) => p.connections), (v) => v.toFixed(0))));
  } else if (PAGE === "graph") {
    if (Date.now() - graphFetched > 2000) { graphFetched = Date.now(); fetchGraph(); }
    main.append(panel("Task graph", drawGraph()));
  } else if (PAGE === "errors") {
    const t = el("table", { id: "errors", "data-count": S.errors.length });
    t.append(el("tr", {}, el("th", {}, "key"), el("th", {}, "at"), el("th", {}, "message")));
    for (const e of S.errors) {
      t.append(el("tr", { class: "error", "data-key": e.key },
        el("td", {}, el("a", { href: `/story?key=${encodeURIComponent(e.key)}` }, e.key)),
        el("td", { class: "num" }, `${e.at.toFixed(1)} s`), el("td", { class: "message" }, e.message)));
    }
    main.append(panel(`Errors (${S.errorCount})`, t));
  }
}

function buildStatic(main) {
  main.dataset.built = "1";
  if (PAGE === "story") {
    const input = el("input", { type: "text", id: "story-key", placeholder: "a key, e.g. inc-3f2a…" });
    const go = el("button", { id: "story-go" }, "Show its story");
    const params = new URLSearchParams(location.search);
    go.onclick = () => showStory(input.value.trim());
    input.onkeydown = (e) => { if (e.key === "Enter") go.onclick(); };
    main.append(panel("A key's transitions", input, " ", go, el("div", { id: "story-out" })));
    if (params.get("key")) { input.value = params.get("key"); showStory(input.value); }
  } else {
    const select = el("select", { id: "logs-source" }, el("option", { value: "" }, "scheduler"));
    for (const w of S.workers) select.append(el("option", { value: w.name }, w.name));
    select.onchange = () => showLogs(select.value);
    main.append(panel("Logs", select, el("pre", { class: "logs", id: "logs-out" }, "…")));
    showLogs("");
  }
}

let dirty = true;
// How long drawing takes (the scale check reads it: pages must stay responsive).
function timedRender() {
  const t0 = performance.now();
  render();
  const ms = performance.now() - t0;
  document.body.dataset.renderMs = ms.toFixed(1);
  document.body.dataset.renderMaxMs = Math.max(ms, Number(document.body.dataset.renderMaxMs || 0)).toFixed(1);
}
setInterval(() => { if (dirty) { dirty = false; timedRender(); } }, 300);
setInterval(() => { dirty = true; }, 1000); // the stream scrolls even without news
connect();
status();
render();
