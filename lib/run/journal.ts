/**
 * `OUT/journal.jsonl`: every step and every talosctl call with its result, appended as it
 * happens, so a run can be audited, reported and resumed. Never holds db contents: talosctl
 * output is kept, truncated, and `cp` prints nothing.
 */

import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

export const OUTPUT_KEEP_CHARS = 4000;

export type JournalEntry =
  & { ts: string; task: string }
  & (
    | { type: "run"; argv: string[]; nodes: string[] }
    | {
      type: "step";
      step: string;
      event: "start" | "ok" | "skipped" | "failed";
      detail?: string;
      durationMs?: number;
    }
    | {
      type: "call";
      step: string;
      node: string;
      command: string;
      mutating: boolean;
      exitCode: number | null;
      durationMs: number;
      stdout: string;
      stderr: string;
    }
    | { type: "fact"; key: string; value: unknown }
    | { type: "end"; exitCode: number; error?: string; planOnly?: boolean }
  );

type Body = JournalEntry extends infer E ? E extends unknown ? Omit<E, "ts" | "task"> : never
  : never;

/** Creates `dir` (and parents) with mode 0700 whatever the umask. */
export function ensurePrivateDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

export class Journal {
  readonly path: string;
  readonly entries: JournalEntry[] = [];
  #enabled: boolean;
  #task: string;
  #now: () => number;

  /** A disabled journal (dry-run) records in memory only and writes nothing. */
  constructor(out: string, task: string, options: { enabled: boolean; now: () => number }) {
    this.path = join(out, "journal.jsonl");
    this.#task = task;
    this.#enabled = options.enabled;
    this.#now = options.now;
  }

  record(body: Body): void {
    const entry = {
      ts: new Date(this.#now()).toISOString(),
      task: this.#task,
      ...body,
    } as JournalEntry;
    if (entry.type === "call") {
      entry.stdout = entry.stdout.slice(0, OUTPUT_KEEP_CHARS);
      entry.stderr = entry.stderr.slice(0, OUTPUT_KEEP_CHARS);
    }
    this.entries.push(entry);
    if (!this.#enabled) return;
    ensurePrivateDir(join(this.path, ".."));
    appendFileSync(this.path, JSON.stringify(entry) + "\n", { mode: 0o600 });
  }

  /** Every entry ever written to `OUT/journal.jsonl` (earlier runs too). */
  static readAll(out: string): JournalEntry[] {
    const path = join(out, "journal.jsonl");
    if (!existsSync(path)) return [];
    return readFileSync(path, "utf8").split("\n").filter(Boolean).flatMap((line) => {
      try {
        return [JSON.parse(line) as JournalEntry];
      } catch {
        return []; // a line cut by a crash
      }
    });
  }
}
