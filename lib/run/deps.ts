/**
 * Everything a task touches outside its own code, in one object, so tests can replace it:
 * the zx `$` (replaying in tests), the environment, the terminal, the clock, the interrupt,
 * the db reader, the free disk space.
 */

import type { Shell as ZxShell } from "zx";
import { existsSync, statfsSync } from "node:fs";
import { dirname } from "node:path";
import type { DbReader } from "../db/reader.ts";

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
