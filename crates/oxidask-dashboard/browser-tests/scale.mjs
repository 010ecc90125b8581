// The dashboard at scale, measured (not a pass/fail test: figures for BENCHMARKS.md): a
// scheduler with WORKERS zero-work worker processes (default 100) runs one tree of TASKS tasks
// (default 1,000,000) while headless Chromium keeps the status, workers and graph pages
// open. Prints how long each page takes to draw, how big the websocket messages are, how
// long the page takes to answer (its event loop), and the run's throughput.
//
//   OXIDASK_BIN=target/release/oxidask node scale.mjs
import { join } from "node:path";
import { SHOTS, freePort, launch, start, stopAll, until } from "./lib.mjs";

const WORKERS = Number(process.env.WORKERS || 100);
const TASKS = Number(process.env.TASKS || 1_000_000);
const schedPort = await freePort();
const dashPort = await freePort();
const address = `tcp://127.0.0.1:${schedPort}`;
const base = `http://127.0.0.1:${dashPort}`;

const scheduler = start(["scheduler", "--port", String(schedPort), "--dashboard-address", `127.0.0.1:${dashPort}`], "scheduler");
await until("the scheduler", () => scheduler.err.includes("dashboard at"));
const workers = [];
for (let i = 0; i < WORKERS; i++) {
  workers.push(start(["worker", address, "--nthreads", "1", "--name", `w${i}`, "--zero-work", "--no-dashboard"], `w${i}`));
}
for (const w of workers) await until(`${w.label} to join`, () => w.err.includes("connected to the scheduler"), 120000);
console.log(`${WORKERS} workers joined`);

const browser = await launch();
const pages = {};
const frames = [];
for (const name of ["status", "workers", "graph"]) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("websocket", (ws) => ws.on("framereceived", (f) => frames.push(f.payload.length)));
  await page.goto(`${base}/${name}`);
  await until(`${name} live`, async () => (await page.getAttribute("#connection", "data-connected")) === "1");
  pages[name] = { page, render: [], answer: [] };
}

const load = start(["load", address, "--tree", String(TASKS)], "load");
const t0 = Date.now();
while (load.exitCode === null && Date.now() - t0 < 600000) {
  for (const [, p] of Object.entries(pages)) {
    const a = Date.now();
    const ms = await p.page.evaluate(() => Number(document.body.dataset.renderMs || 0));
    p.answer.push(Date.now() - a);
    p.render.push(ms);
  }
  await new Promise((r) => setTimeout(r, 500));
}
await until("the load to finish", () => load.exitCode !== null, 600000);
if (load.exitCode !== 0) throw new Error(`load failed: ${load.err}`);
const rows = await pages.workers.page.$$eval("tr.worker", (r) => r.length);
await pages.status.page.screenshot({ path: join(SHOTS, "scale-status.png") });

const stats = (xs) => {
  const s = xs.slice().sort((a, b) => a - b);
  return { p50: s[Math.floor(s.length / 2)] ?? null, max: s[s.length - 1] ?? null, n: s.length };
};
const out = {
  workers: WORKERS,
  tasks: TASKS,
  load: load.out.trim().split("\n").pop(),
  worker_rows: rows,
  frames_kib: stats(frames.map((b) => b / 1024)),
};
for (const [name, p] of Object.entries(pages)) {
  out[`${name}_render_ms`] = stats(p.render);
  out[`${name}_answer_ms`] = stats(p.answer);
}
console.log(JSON.stringify(out, null, 1));
await browser.close();
stopAll();
process.exit(0);
