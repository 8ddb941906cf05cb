/**
 * Everything a task touches outside its own code, in one object, so tests can replace it:
 * the zx `$` (replaying in tests), the environment, the terminal, the clock, the interrupt,
 * the db reader, the free disk space.
 */

import { $ as zx$, type Shell as ZxShell } from "zx";
import { setTimeout as sleepTimer } from "node:timers/promises";
import { existsSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import { type DbReader, workerReader } from "./copies.ts";

/** zx `$` called with options: what tasks run commands with. */
export type Shell = ZxShell;

export interface Deps {
  /** zx `$`; tests pass a replaying one. */
  $: Shell;
  env: Record<string, string | undefined>;
  /** stdin and stderr are terminals: prompts and colour are allowed. */
  isTerminal: boolean;
  /** Reads one answer line from the operator; null at end of input. */
  ask: (question: string) => Promise<string | null>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  now: () => number;
  /** Sleeps, or rejects when `signal` aborts. */
  sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Aborted by Ctrl-C / SIGTERM. */
  signal: AbortSignal;
  /** Reads etcd db files (native; tests pass a fake). */
  db: DbReader;
  /** Free bytes for `dir` (on the filesystem that holds it or will); undefined when unknown. */
  freeBytes: (dir: string) => number | undefined;
  /** Caps every call's deadline (tests make "hangs" end in milliseconds). */
  callDeadlineCapMs?: number;
}

const encoder = new TextEncoder();

function writeAll(file: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let off = 0;
  while (off < bytes.length) off += file.writeSync(bytes.subarray(off));
}

async function askStdin(question: string): Promise<string | null> {
  writeAll(Deno.stderr, question);
  const buf = new Uint8Array(1024);
  let line = "";
  while (true) {
    const n = await Deno.stdin.read(buf);
    if (n === null) return line === "" ? null : line;
    line += new TextDecoder().decode(buf.subarray(0, n));
    if (line.includes("\n")) return line.split("\n")[0];
  }
}

/** The real world: zx, the process environment, Deno's stdio, signals. */
export function realDeps(): Deps {
  const controller = new AbortController();
  const onSignal = (name: string) => () => {
    if (!controller.signal.aborted) controller.abort(new Error(`received ${name}`));
  };
  Deno.addSignalListener("SIGINT", onSignal("SIGINT"));
  Deno.addSignalListener("SIGTERM", onSignal("SIGTERM"));
  const $ = zx$({ verbose: false, quiet: true });
  return {
    $,
    env: Deno.env.toObject(),
    isTerminal: Deno.stdin.isTerminal() && Deno.stderr.isTerminal(),
    ask: askStdin,
    stdout: (t) => writeAll(Deno.stdout, t),
    stderr: (t) => writeAll(Deno.stderr, t),
    now: () => Date.now(),
    sleep: (ms, signal) => sleepTimer(ms, undefined, { signal }),
    signal: controller.signal,
    db: workerReader(controller.signal),
    freeBytes,
  };
}

/** Free bytes in the filesystem that holds (or will hold) `dir`. */
export function freeBytes(dir: string): number | undefined {
  let probe = dir;
  while (!existsSync(probe) && dirname(probe) !== probe) probe = dirname(probe);
  try {
    const s = statfsSync(probe);
    return Number(s.bavail) * Number(s.bsize);
  } catch {
    return undefined;
  }
}
