/**
 * Processes of the lab, tracked by PID only: started in their own session (so neither the
 * short-lived fake talosctl that starts them nor a caller's process-group kill takes them
 * down), recorded with their kernel start time (so a reused PID is never mistaken for
 * them), stopped by that PID. A zombie counts as dead. Every PID ever started is appended
 * to `pids.log` in the lab directory, which is what tests check at the end.
 */

import { appendFileSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface Proc {
  pid: number;
  /** Field 22 of /proc/PID/stat (clock ticks since boot): tells a reused PID apart. */
  start: string;
}

/**
 * Reads the start time of `pid`, or undefined if there is no such live process. Deno only
 * lets `--allow-all` read `/proc/PID/*`, so `cat` (allowed by `--allow-run`) reads it.
 */
export function procStart(pid: number): string | undefined {
  const hit = cache.get(pid);
  if (hit && Date.now() - hit.at < CACHE_MS) return hit.start;
  const start = readStart(pid);
  cache.set(pid, { at: Date.now(), start });
  return start;
}

/** Answers of `procStart` are reused for this long (a tick asks many times). */
const CACHE_MS = 150;
const cache = new Map<number, { at: number; start: string | undefined }>();

function readStart(pid: number): string | undefined {
  const out = new Deno.Command("cat", {
    args: [`/proc/${pid}/stat`],
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  if (!out.success) return undefined;
  const stat = new TextDecoder().decode(out.stdout);
  // The command name is in parentheses and may contain spaces: split after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  if (fields[0] === "Z" || fields[0] === "X" || fields.length < 20) return undefined;
  return fields[19];
}

export function alive(p: Proc | undefined): boolean {
  if (p === undefined || p.start === undefined) return false;
  const start = procStart(p.pid);
  return start !== undefined && start === p.start;
}

/**
 * Starts `cmd args…` detached (new session), stdin/stdout closed, stderr appended to
 * `logFile`, and returns its PID without waiting for it.
 */
export async function spawnDetached(
  labDir: string,
  cmd: string,
  args: string[],
  logFile: string,
): Promise<Proc> {
  // bash starts the program in the background, prints its PID and exits at once: nothing
  // stays attached to the calling Deno process, and the program lives in bash's session.
  const script = 'log="$1"; shift; "$@" </dev/null >/dev/null 2>>"$log" & echo $!';
  const out = await new Deno.Command("bash", {
    args: ["-c", script, "sim-spawn", logFile, cmd, ...args],
    detached: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const pid = Number(new TextDecoder().decode(out.stdout).trim());
  if (!out.success || !Number.isInteger(pid) || pid <= 0) {
    throw new Error(`Cannot start ${cmd}: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
  const start = procStart(pid);
  appendFileSync(join(labDir, "pids.log"), `${pid} ${start ?? "-"} ${cmd}\n`);
  if (start === undefined) {
    throw new Error(`${cmd} (PID ${pid}) exited at once; see ${logFile}`);
  }
  return { pid, start };
}

/** Sends `signal` to `p` if it is still the process that was started; true if it was. */
export function signal(p: Proc | undefined, sig: Deno.Signal): boolean {
  if (!alive(p)) return false;
  cache.delete(p!.pid);
  try {
    Deno.kill(p!.pid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `p` is gone, up to `timeoutMs`; true if it is gone. */
export async function waitGone(p: Proc | undefined, timeoutMs: number): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (true) {
    if (p) cache.delete(p.pid);
    if (!alive(p)) return true;
    if (Date.now() >= until) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** SIGKILL by PID and wait for it to be gone (zombies count as gone). */
export async function killHard(p: Proc | undefined): Promise<void> {
  if (signal(p, "SIGKILL")) await waitGone(p, 5_000);
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopGracefully(p: Proc | undefined, graceMs = 4_000): Promise<void> {
  if (!signal(p, "SIGTERM")) return;
  if (!(await waitGone(p, graceMs))) await killHard(p);
}

/** Every process the lab ever started (from `pids.log`), for leak checks. */
export function startedProcs(labDir: string): (Proc & { cmd: string })[] {
  let text = "";
  try {
    text = readFileSync(join(labDir, "pids.log"), "utf8");
  } catch {
    return [];
  }
  return text.trim().split("\n").filter(Boolean).map((line) => {
    const [pid, start, cmd] = line.split(" ");
    return { pid: Number(pid), start, cmd };
  });
}
