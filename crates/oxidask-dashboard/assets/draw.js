// Drawing shared by the live dashboard (app.js) and the offline performance report
// (report.js): elements, colours, the task stream and line charts. A classic script: its
// top-level names are visible to the scripts loaded after it.

const STATE_COLORS = {
  released: "#cbd2d9", waiting: "#9aa5b1", queued: "#f7d070", "no-worker": "#e12d39",
  processing: "#47a3f3", memory: "#3ebd93", erred: "#ab091e",
};
const KIND_COLORS = { transfer: "#e12d39", "disk-write": "#f0b429", "disk-read": "#de911d" };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else if (k === "style") e.style.cssText = v;
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

function bytes(n) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i ? 1 : 0)} ${u[i]}`;
}

// Task prefixes get colours of their own; red, orange and yellow mark transfers and spills.
const PALETTE = ["#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
  "#bcbd22", "#393b79", "#637939", "#5254a3", "#6b6ecf", "#3182bd", "#31a354", "#756bb1", "#636363"];
const prefixColor = new Map();
function colorOf(name) {
  let c = prefixColor.get(name);
  if (!c) {
    let h = 0;
    for (const ch of name) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
    c = PALETTE[h % PALETTE.length];
    prefixColor.set(name, c);
  }
  return c;
}

function canvas(id, height) {
  let c = document.getElementById(id);
  if (!c) c = el("canvas", { id });
  const w = c.parentElement ? c.parentElement.clientWidth - 16 : 900;
  const ratio = window.devicePixelRatio || 1;
  c.style.height = `${height}px`;
  c.width = Math.max(300, w) * ratio;
  c.height = height * ratio;
  const g = c.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, c.width, c.height);
  return [c, g, Math.max(300, w), height];
}

function panel(title, ...children) {
  return el("div", { class: "panel" }, el("h2", {}, title), ...children);
}

// The task stream: one lane per worker thread, one bar per record between t0 and t1
// (milliseconds since the epoch; t0 null: from the first record). Records are
// [worker, thread, start_ms, stop_ms, prefix, kind, key, nbytes]; `lanes` lists
// [worker, threads] so idle threads show too; `only` keeps one worker.
function drawStream(id, records, { lanes: known = [], t0 = null, t1, only = null }) {
  const lanes = new Map();
  for (const [name, threads] of known) {
    if (only && name !== only) continue;
    for (let t = 0; t < threads; t++) lanes.set(`${name}/${t}`, lanes.size);
  }
  const recs = records.filter((r) => !only || r[0] === only);
  for (const r of recs) {
    const lane = `${r[0]}/${r[1]}`;
    if (!lanes.has(lane)) lanes.set(lane, lanes.size);
  }
  const laneH = 14;
  const [c, g, W] = canvas(id, Math.max(60, lanes.size * laneH + 24));
  const windowed = t0 !== null;
  if (!windowed) {
    t0 = t1;
    for (const r of recs) if (r[2] < t0) t0 = r[2];
  }
  const span = Math.max(1, t1 - t0);
  const x = (t) => 110 + ((t - t0) / span) * (W - 120);
  g.font = "11px sans-serif";
  g.fillStyle = "#52606d";
  for (const [name, i] of lanes) g.fillText(name, 2, 14 + i * laneH + 9);
  let drawn = 0;
  for (const r of recs) {
    if (r[3] < t0 || r[2] > t1) continue;
    const i = lanes.get(`${r[0]}/${r[1]}`);
    const xa = Math.max(110, x(r[2]));
    const xb = Math.max(xa + 1, x(r[3]));
    g.fillStyle = r[5] === "compute" ? colorOf(r[4]) : KIND_COLORS[r[5]] || "#999";
    g.fillRect(xa, 14 + i * laneH, xb - xa, laneH - 3);
    drawn++;
  }
  g.fillStyle = "#7b8794";
  g.fillText(`${(span / 1000).toFixed(1)} s`, W - 70, 10);
  c.dataset.bars = String(drawn);
  c.dataset.lanes = String(lanes.size);
  return c;
}

// A line chart of one series (an array of numbers) or several ([{name, values}]), spread
// evenly across the width; `fmt` formats values for the caption.
function lineChart(id, title, series, fmt) {
  const [c, g, W, H] = canvas(id, 120);
  const many = series.length && typeof series[0] === "object";
  const all = many ? series : [{ name: "", values: series }];
  g.font = "11px sans-serif";
  g.fillStyle = "#52606d";
  g.fillText(title, 4, 12);
  const max = Math.max(1e-9, ...all.flatMap((s) => s.values));
  let points = 0;
  let legendX = 16 + g.measureText(title).width;
  all.forEach((s, k) => {
    const values = s.values;
    points += values.length;
    if (values.length < 2) return;
    g.strokeStyle = many ? PALETTE[k % PALETTE.length] : "#47a3f3";
    g.beginPath();
    values.forEach((v, i) => {
      const x = 4 + (i / (values.length - 1)) * (W - 8);
      const y = H - 6 - (v / max) * (H - 26);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
    if (many) {
      g.fillStyle = g.strokeStyle;
      g.fillText(s.name, legendX, 12);
      legendX += g.measureText(s.name).width + 12;
    }
  });
  if (!many && series.length > 1) {
    g.fillStyle = "#52606d";
    g.fillText(`now ${fmt(series[series.length - 1])}, max ${fmt(max)}`, W - 200, 12);
  } else if (many && points) {
    g.fillStyle = "#52606d";
    g.fillText(`max ${fmt(max)}`, W - 120, 12);
  }
  c.dataset.points = String(points);
  return c;
}
