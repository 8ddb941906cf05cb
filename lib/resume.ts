/**
 * Resume: what an earlier run with the same OUT already did, read from OUT/journal.jsonl, so
 * a re-run never repeats a destructive step that succeeded.
 */

import { Journal } from "./journal.ts";

export interface Progress {
  /** The seed recorded by the last run that chose one. */
  seed?: string;
  /** Step name → time it last succeeded. */
  done: Map<string, string>;
  /**
   * Node → time its last reset was accepted (exit 0), since the last wipe that finished: a
   * wipe that did not finish left these nodes wiping.
   */
  resetSent: Map<string, string>;
  /** Node → the `--system-labels-to-wipe` of its last reset command (sent or not). */
  resetLabels: Map<string, string[]>;
}

export function readProgress(out: string): Progress {
  const done = new Map<string, string>();
  let seed: string | undefined;
  const resetSent = new Map<string, string>();
  const resetLabels = new Map<string, string[]>();
  for (const e of Journal.readAll(out)) {
    if (e.type === "step" && e.event === "ok") done.set(e.step, e.ts);
    if (e.type === "step" && e.step === "wipe" && e.event === "ok") resetSent.clear();
    if (e.type === "fact" && e.key === "seed" && typeof e.value === "string") seed = e.value;
    if (e.type === "call" && e.step === "wipe" && e.mutating && / reset( |$)/.test(e.command)) {
      const labels = [...e.command.matchAll(/--system-labels-to-wipe[ =](\S+)/g)].map((m) => m[1]);
      if (labels.length > 0) resetLabels.set(e.node, labels);
      if (e.exitCode === 0) resetSent.set(e.node, e.ts);
    }
  }
  return { seed, done, resetSent, resetLabels };
}

/** `wipe done 10:02:11, bootstrap done 10:05:40` for the log. */
export function describeProgress(p: Progress, steps: string[]): string {
  return steps.filter((s) => p.done.has(s)).map((s) => `${s} done ${p.done.get(s)}`).join(", ");
}
