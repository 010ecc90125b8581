// The dashboard seen as a person sees it: headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core) opens every page while a real cluster (the `oxidask` binary:
// a scheduler, two workers, a load generator) works, and checks what is on the screen.
// Screenshots go to $SCREENSHOTS (default: target/dashboard-screenshots).
//
//   OXIDASK_BIN=path/to/oxidask node run.mjs
import { join } from "node:path";
import { SHOTS, freePort, launch, start, stopAll, until } from "./lib.mjs";

let failures = 0;

async function check(name, f) {
  const t0 = Date.now();
  try {
    await f();
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failures++;
    console.log(`FAIL ${name}: ${e.message}`);
  }
}

const schedPort = await freePort();
const dashPort = await freePort();
const address = `tcp://127.0.0.1:${schedPort}`;
const base = `http://127.0.0.1:${dashPort}`;

function startScheduler() {
  const s = start(["scheduler", "--port", String(schedPort), "--dashboard-address", `127.0.0.1:${dashPort}`], "scheduler");
  return until("the scheduler", () => s.err.includes("dashboard at") && s);
}

let scheduler = await startScheduler();
const workers = ["w0", "w1"].map((n) =>
  start(["worker", address, "--nthreads", "2", "--name", n, "--heartbeat-ms", "200"], n));
for (const w of workers) await until(`${w.label} to join`, () => w.err.includes("connected to the scheduler"));
const REPORT = join(SHOTS, "load-report.html");
const load = start(["load", address, "--duration", "12", "--fail", "--report", REPORT], "load");

const browser = await launch();
const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
const attr = (sel, a) => page.$eval(sel, (e, a) => e.getAttribute(a), a);
const shot = (name) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

await check("status: the task stream draws bars for tasks that ran", async () => {
  await page.goto(`${base}/status`);
  await until("live connection", async () => (await attr("#connection", "data-connected")) === "1");
  await until("bars", async () => Number(await attr("canvas#stream", "data-bars")) > 20);
  await until("a progress row for work", async () => page.$('.progress-row[data-prefix="work"]'));
  await until("both workers' memory rows", async () => (await page.$$(".memory-row")).length === 2);
  await shot("status");
});

let finishedKey, failedKey;
await check("the load reports its keys", async () => {
  finishedKey = await until("a finished key", () => (load.out.match(/finished key (\S+)/) || [])[1]);
  failedKey = await until("the failed key", () => (load.out.match(/failed key (\S+)/) || [])[1]);
});

await check("workers: a table row per worker; a killed worker leaves it", async () => {
  await page.goto(`${base}/workers`);
  await until("two rows", async () => (await page.$$("tr.worker")).length === 2);
  await shot("workers-before");
  workers[1].kill("SIGKILL");
  await until("one row", async () => {
    const names = await page.$$eval("tr.worker", (rows) => rows.map((r) => r.dataset.name));
    return names.length === 1 && names[0] === "w0";
  });
  await shot("workers-after");
});

await check("worker page: its table, stream lanes and log", async () => {
  await page.goto(`${base}/workers/w0`);
  await until("its row", async () => (await page.$$("tr.worker")).length === 1);
  await until("its lanes", async () => Number(await attr("canvas#stream", "data-lanes")) >= 2);
  await shot("worker");
});

await check("tasks: the longer task stream", async () => {
  await page.goto(`${base}/tasks`);
  await until("bars", async () => Number(await attr("canvas#stream", "data-bars")) > 100);
  await shot("tasks");
});

await check("system: the scheduler's gauges over time", async () => {
  await page.goto(`${base}/system`);
  await until("points", async () => Number(await attr("canvas#cpu", "data-points")) > 5);
  await shot("system");
});

await check("graph: the current graph, coloured by state", async () => {
  await page.goto(`${base}/graph`);
  await until("nodes", async () => Number(await attr("#graph-caption", "data-total")) > 0);
  await shot("graph");
});

await check("story: a key's transitions", async () => {
  await page.goto(`${base}/story`);
  await page.fill("#story-key", finishedKey);
  await page.click("#story-go");
  await until("transitions", async () => Number(await attr("#transitions", "data-count")) >= 3);
  const lines = await page.$$eval("li.transition", (ls) => ls.map((l) => l.textContent));
  if (!lines.some((l) => l.includes("-> memory"))) throw new Error(`no memory transition in ${lines}`);
  await shot("story");
});

await check("errors: the failed task and its message", async () => {
  await page.goto(`${base}/errors`);
  await until("its row", async () => page.$(`tr.error[data-key="${failedKey}"]`));
  const msg = await page.$eval(`tr.error[data-key="${failedKey}"] td.message`, (e) => e.textContent);
  if (!msg.includes("boom: 7")) throw new Error(`message: ${msg}`);
  await shot("errors");
});

await check("logs: the scheduler's lines", async () => {
  await page.goto(`${base}/logs`);
  await until("lines", async () => Number(await attr("#logs-out", "data-lines")) > 0);
  await shot("logs");
});

await check("progress bars reach 100% when the load is done", async () => {
  await until("the load to finish", () => load.exitCode === 0 || load.exitCode, 60000);
  if (load.exitCode !== 0) throw new Error(`load failed: ${load.err}`);
  await page.goto(`${base}/status`);
  await until("complete rows", async () => {
    const rows = await page.$$eval(".progress-row", (rs) => rs.map((r) => [r.dataset.prefix, r.dataset.done, r.dataset.total]));
    return rows.length > 0 && rows.every(([, d, t]) => d === t) && rows;
  });
  await shot("status-done");
});

await check("the performance report opens offline and draws the run", async () => {
  if (!/performance report of \d+ records/.test(load.out)) throw new Error(`no report: ${load.out.slice(-300)}`);
  const offline = await browser.newContext({ offline: true });
  const p = await offline.newPage();
  const errors = [];
  p.on("pageerror", (e) => errors.push(String(e)));
  await p.goto(`file://${REPORT}`);
  await until("drawn", async () => (await p.getAttribute("body", "data-ready")) === "1");
  const bars = Number(await p.getAttribute("#stream", "data-bars"));
  if (!(bars >= 400)) throw new Error(`task stream bars: ${bars}`);
  const work = await p.getAttribute('.prefix-row[data-prefix="work"]', "data-tasks");
  if (!(Number(work) >= 400)) throw new Error(`work tasks: ${work}`);
  const points = Number(await p.getAttribute("#memory-managed", "data-points"));
  if (!(points >= 2)) throw new Error(`memory points: ${points}`);
  const transfers = Number(await p.getAttribute("#transfers", "data-rows"));
  if (!(transfers >= 1)) throw new Error(`transfer rows: ${transfers}`);
  if (errors.length) throw new Error(errors.join("; "));
  await p.screenshot({ path: join(SHOTS, "report.png"), fullPage: true });
  await offline.close();
});

await check("/metrics matches the cluster", async () => {
  const text = await (await fetch(`${base}/metrics`)).text();
  const value = (re) => { const m = text.match(re); if (!m) throw new Error(`${re} missing`); return Number(m[1]); };
  const workersNow = ["idle", "partially_saturated", "saturated"]
    .map((s) => value(new RegExp(`dask_scheduler_workers\\{state="${s}"\\} (\\S+)`)))
    .reduce((a, b) => a + b, 0);
  if (workersNow !== 1) throw new Error(`dask_scheduler_workers sums to ${workersNow}, expected 1`);
  const compute = value(/dask_scheduler_tasks_compute_seconds_total\{task_prefix_name="work"\} (\S+)/);
  if (!(compute > 0)) throw new Error(`compute seconds of work: ${compute}`);
  const memoryDone = value(/dask_scheduler_prefix_state_totals_total\{task_prefix_name="work",state="memory"\} (\S+)/);
  if (!(memoryDone >= 400)) throw new Error(`work tasks in memory: ${memoryDone}`);
  for (const line of text.split("\n")) {
    if (line && !line.startsWith("#") && !/^[a-z_]+(\{[^}]*\})? [-0-9.e+]+$/.test(line)) throw new Error(`bad line: ${line}`);
  }
});

await check("the page reconnects after the scheduler restarts", async () => {
  await page.goto(`${base}/status`);
  await until("live", async () => (await attr("#connection", "data-connected")) === "1");
  scheduler.kill("SIGKILL");
  await until("disconnected", async () => (await attr("#connection", "data-connected")) === "0");
  await shot("disconnected");
  scheduler = await startScheduler();
  await until("live again", async () => (await attr("#connection", "data-connected")) === "1", 60000);
  await shot("reconnected");
});

await browser.close();
stopAll();
console.log(failures ? `${failures} failed` : "all passed");
console.log(`screenshots in ${SHOTS}`);
process.exit(failures ? 1 : 0);
