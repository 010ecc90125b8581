// What the browser checks share: the oxidask binary's processes, free ports, waiting, and
// headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core).
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { chromium } from "playwright-core";

const here = new URL(".", import.meta.url).pathname;
const target = process.env.CARGO_TARGET_DIR || resolve(here, "../../../target");
export const BIN = process.env.OXIDASK_BIN || join(target, "debug", "oxidask");
export const SHOTS = process.env.SCREENSHOTS || join(target, "dashboard-screenshots");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
mkdirSync(SHOTS, { recursive: true });

const procs = [];

/** A free loopback port. */
export function freePort() {
  return new Promise((ok) => {
    const s = createServer();
    s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); });
  });
}

/** Starts `oxidask ARGS…`, collecting its stdout (`.out`) and stderr (`.err`). */
export function start(args, name) {
  const p = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"] });
  p.out = ""; p.err = "";
  p.stdout.on("data", (d) => { p.out += d; });
  p.stderr.on("data", (d) => { p.err += d; });
  p.label = name;
  procs.push(p);
  return p;
}

/** Calls `f` every 100 ms until it returns something truthy (returned) or `timeout` ms. */
export async function until(what, f, timeout = 30000) {
  const t0 = Date.now();
  let last;
  while (Date.now() - t0 < timeout) {
    try { last = await f(); if (last) return last; } catch (e) { last = e; }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

/** Kills every process started here (also at exit). */
export function stopAll() {
  for (const p of procs) { try { p.kill("SIGKILL"); } catch {} }
}
process.on("exit", stopAll);

/** Headless Chromium. */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}
