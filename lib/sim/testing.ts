/**
 * Helpers for the simulator's tests (`tests/sim_test.ts`, `tests/e2e_test.ts`): temporary
 * labs that are always torn down and remembered (for the "no etcd left running" check), the
 * reference samples, and masking of the values a sample invents (ages, PIDs, IDs, sizes).
 */

import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { tabwrite } from "./format.ts";
import { down, etcdInstalled, labEnv, runningProcs, up, type UpOptions } from "./lab.ts";
import { alive, type Proc, startedProcs } from "./proc.ts";
import { REPO_ROOT } from "./paths.ts";
import { loadState } from "./state.ts";
import { run } from "./talosctl.ts";

/** Every lab directory a test made in this process. */
export const labsMade: string[] = [];
/** Processes of labs whose directory was already removed. */
const procsOfRemovedLabs: (Proc & { cmd: string; dir: string })[] = [];

/** A new lab in a fresh temporary directory. */
export async function tempLab(o: UpOptions = {}): Promise<string> {
  const dir = join(mkdtempSync(join(tmpdir(), "sim-test-")), "lab");
  labsMade.push(dir);
  await up(dir, o);
  return dir;
}

/**
 * Runs `fn` on a new lab and always takes the lab down afterwards. The lab's temporary
 * directory (logs, state, copies under `scratch(dir)`) is removed when `fn` succeeded and
 * kept for a post-mortem when it failed.
 */
export async function withLab(o: UpOptions, fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await tempLab(o);
  let ok = false;
  try {
    await fn(dir);
    ok = true;
  } finally {
    await down(dir);
    if (ok) {
      procsOfRemovedLabs.push(...startedProcs(dir).map((p) => ({ ...p, dir })));
      rmSync(join(dir, ".."), { recursive: true, force: true });
    } else console.error(`lab kept for a post-mortem: ${dir}`);
  }
}

/** A fresh directory next to the lab (removed with it). */
export function scratch(dir: string): string {
  return mkdtempSync(join(dir, "..", "scratch-"));
}

/**
 * Options for a test that needs real etcd: skipped when it is not installed, except under
 * CI, where the test runs and fails (a missing etcd must not pass unnoticed).
 */
export function etcdTests(): { ignore: boolean } {
  return { ignore: !etcdInstalled() && !Deno.env.get("CI") };
}

/** Fails (CI without etcd) with the reason. */
export function requireEtcd(): void {
  if (!etcdInstalled()) {
    throw new Error("CI is set but etcd/etcdctl are not on PATH: install etcd-server etcd-client");
  }
}

/** PIDs of processes started by any lab of this test process that still run. */
export function leftoverProcs(): string[] {
  const live = [
    ...labsMade.flatMap((dir) => runningProcs(dir).map((p) => ({ ...p, dir }))),
    ...procsOfRemovedLabs.filter((p) => alive(p)),
  ];
  return live.map((p) => `${p.pid} (${p.cmd}, ${p.dir})`);
}

const REFERENCE_DIRS = [
  join(REPO_ROOT, "fixtures", "talosctl"),
  join(REPO_ROOT, "..", "shared", "reference", "talosctl"),
];

/** A talosctl reference sample (the project's copy in fixtures/talosctl). */
export function sample(name: string): string {
  const dir = REFERENCE_DIRS.find((d) => existsSync(join(d, name)));
  if (!dir) throw new Error(`reference sample ${name} not found in ${REFERENCE_DIRS.join(", ")}`);
  return readFileSync(join(dir, name), "utf8");
}

const TRIAGE_DIRS = [
  join(REPO_ROOT, "fixtures", "talosctl-triage"),
  join(REPO_ROOT, "fixtures", "sim", "talosctl-triage"),
  join(REPO_ROOT, "fixtures", "talosctl-extra"),
];

/** A triage reference sample (remove-member, defrag, no leader, NOSPACE, volumestatus…). */
export function triageSample(name: string): string {
  const dir = TRIAGE_DIRS.find((d) => existsSync(join(d, name)));
  if (!dir) throw new Error(`reference sample ${name} not found in ${TRIAGE_DIRS.join(", ")}`);
  return readFileSync(join(dir, name), "utf8");
}

/** A sample with the example cluster's addresses swapped for the lab's (same lengths aside). */
export function asLab(text: string): string {
  return text.replaceAll("192.168.53.", "127.0.53.");
}

/** Masks what differs between a sample and the simulator by nature, not by mistake. */
export function mask(text: string): string {
  return text
    .replace(/(192\.168|127\.0)\.53\.(\d+)/g, "NODE.$2")
    .replace(/\((\d+h)?(\d+m)?\d+s ago\)/g, "(AGE ago)")
    .replace(/PID \d+/g, "PID N")
    .replace(/\b[0-9a-f]{16}\b/g, "MEMBERID")
    .replace(/\bens18\b/g, "eth0")
    .replace(/fe80::[0-9a-f:]+\/64/g, "fe80::X/64")
    .replace(/10\.244\.\d+\.0\/32/g, "10.244.X.0/32");
}

/** The cells of a tabwriter table (columns are at least 3 spaces apart). */
export function cells(text: string): string[][] {
  return text.split("\n").map((l) => l.split(/ {2,}/));
}

/** Re-lays out a tabwriter table from its cells: equal to it iff the layout is Go's. */
export function relayout(text: string): string {
  return tabwrite(text.split("\n").map((l) => l.split(/ {3,}/).join("\t")).join("\n"));
}

/** Calls the fake talosctl in-process against `dir`: `-e node -n node …args`. */
export function tc(dir: string, node: string, args: string[], at?: number) {
  return run(["-e", node, "-n", node, ...args], dir, at);
}

/** The lab's state (read without the lock; tests only). */
export function state(dir: string) {
  return loadState(dir);
}

/** Polls `fn` every `everyMs` until it returns a value, or fails after `timeoutMs`. */
export async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 30_000,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (true) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export { REPO_ROOT };

/** A task run as the operator runs it: exit code and both streams. */
export interface TaskRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno task NAME --nodes <every lab node> …args` against the lab in `dir`, as a process. */
export async function labTask(dir: string, name: string, args: string[]): Promise<TaskRun> {
  const s = state(dir);
  const o = await new Deno.Command(Deno.execPath(), {
    args: ["task", name, "--nodes", s.nodes.map((n) => n.label).join(","), ...args],
    cwd: REPO_ROOT,
    env: { ...labEnv(s), DENO: Deno.execPath(), NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: o.code, stdout: d.decode(o.stdout), stderr: d.decode(o.stderr) };
}
