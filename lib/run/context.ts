/**
 * The context every step receives: parsed options, the outside world (`Deps`), the logger,
 * the journal, and a running note of what has changed, for the message a failure prints.
 */

import type { Options } from "./cli.ts";
import type { Deps } from "./deps.ts";
import { Journal } from "./journal.ts";
import { Logger } from "./log.ts";

export interface Ctx {
  task: string;
  opts: Options;
  deps: Deps;
  log: Logger;
  journal: Journal;
  /** What the cluster looks like now, in words, kept up to date by mutating steps. */
  clusterState: string;
  /** The command that continues the procedure from where it stopped. */
  continueWith?: string;
  /** Labels to wipe per node (default EPHEMERAL); pre-flight adds ETCD for a dedicated partition. */
  wipeLabels: Map<string, string[]>;
  /** While a poll runs: when it must end (epoch ms); calls inside it end by then too. */
  pollDeadline?: number;
  /** Steps run in this process, for the report. */
  steps: { step: string; title: string; outcome: string; startedAt: number; durationMs: number }[];
}

export function createCtx(task: string, opts: Options, deps: Deps): Ctx {
  return {
    task,
    opts,
    deps,
    log: new Logger({
      write: deps.stderr,
      color: deps.isTerminal && deps.env.NO_COLOR === undefined,
    }),
    journal: new Journal(opts.out, task, { enabled: !opts.dryRun, now: deps.now }),
    clusterState: "unchanged by this run: it sent the nodes nothing that changes them",
    wipeLabels: new Map(),
    steps: [],
  };
}

/** Outcome a step function may return to say it found its work already done. */
export const SKIPPED = Symbol("skipped");

/**
 * Runs one runbook step: logs `==> title`, journals start and end with the duration,
 * and records the outcome for the report.
 */
export async function step<T>(
  ctx: Ctx,
  name: string,
  title: string,
  fn: () => Promise<T>,
): Promise<T> {
  ctx.log.step(title);
  const startedAt = ctx.deps.now();
  ctx.journal.record({ type: "step", step: name, event: "start", detail: title });
  const done = (outcome: "ok" | "skipped" | "failed", detail?: string) => {
    const durationMs = ctx.deps.now() - startedAt;
    ctx.steps.push({ step: name, title, outcome, startedAt, durationMs });
    ctx.journal.record({ type: "step", step: name, event: outcome, detail, durationMs });
  };
  try {
    const result = await fn();
    done(result === SKIPPED ? "skipped" : "ok");
    return result;
  } catch (error) {
    done("failed", error instanceof Error ? error.message : String(error));
    throw error;
  }
}
