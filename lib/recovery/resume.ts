/**
 * Resume: what an earlier run with the same OUT already did, read from OUT/journal.jsonl, so
 * a re-run never repeats a destructive step that succeeded.
 */

import type { Ctx } from "../run/context.ts";
import { RefusedError } from "../run/errors.ts";
import { Journal } from "../run/journal.ts";
import { readManifest } from "./manifest.ts";

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
  /** When the seed last accepted the bootstrap (exit 0), since its last reset. */
  bootstrapAccepted?: string;
  /**
   * When the last bootstrap call began whose answer was cut off (Ctrl-C or its deadline: exit
   * unknown), after the last accepted one: accepted if the seed's etcd runs since (lib/recovery/phase.ts).
   */
  bootstrapCutOff?: string;
  /** When the seed last accepted `etcd alarm disarm` (exit 0), since its last reset. */
  disarmAccepted?: string;
  /** Node → when it last accepted the reboot of a rejoin, since its last reset; not rejoined since. */
  rebootSent: Map<string, string>;
}

/** Steps whose success an accepted reset of the seed undoes (the after part's too). */
const AFTER_WIPE = /^(wipe|wait|bootstrap|disarm|verify|rejoin:.*|after(:.*)?)$/;

/** Nodes recorded as rejoined since the last wipe began. */
export function rejoinedNodes(p: Progress): Set<string> {
  return new Set([...p.done.keys()].filter((s) => s.startsWith("rejoin:")).map((s) => s.slice(7)));
}

export function readProgress(out: string): Progress {
  const done = new Map<string, string>();
  let seed: string | undefined;
  const resetSent = new Map<string, string>();
  const resetLabels = new Map<string, string[]>();
  const rebootSent = new Map<string, string>();
  let bootstrapAccepted: string | undefined;
  let disarmAccepted: string | undefined;
  let bootstrapCutOff: string | undefined;
  for (const e of Journal.readAll(out)) {
    // A mutating call whose answer was cut off may have taken effect: it counts as sent when
    // it began, and the live look decides (a node not restarted since is sent it again).
    const unknown = e.type === "call" && e.mutating && e.exitCode === null;
    const began = e.type === "call" ? new Date(Date.parse(e.ts) - e.durationMs).toISOString() : "";
    if (e.type === "step" && e.event === "ok") done.set(e.step, e.ts);
    if (e.type === "step" && e.event === "ok" && e.step.startsWith("rejoin:")) {
      rebootSent.delete(e.step.slice(7));
    }
    if (e.type === "call" && e.step === "bootstrap" && / bootstrap( |$)/.test(e.command)) {
      if (e.exitCode === 0) bootstrapAccepted = e.ts;
      bootstrapCutOff = unknown ? began : e.exitCode === 0 ? undefined : bootstrapCutOff;
    }
    if (unknown && e.step.startsWith("rejoin:") && / reboot( |$)/.test(e.command)) {
      rebootSent.set(e.node, began);
    }
    if (e.type === "call" && e.mutating && e.exitCode === 0) {
      if (e.step === "disarm" && / alarm disarm$/.test(e.command)) disarmAccepted = e.ts;
      if (e.step.startsWith("rejoin:") && / reboot( |$)/.test(e.command)) {
        rebootSent.set(e.node, e.ts);
      }
    }
    if (e.type === "step" && e.step === "wipe" && e.event === "ok") resetSent.clear();
    if (e.type === "fact" && e.key === "seed" && typeof e.value === "string") seed = e.value;
    if (e.type === "call" && e.step === "wipe" && e.mutating && / reset( |$)/.test(e.command)) {
      const labels = [...e.command.matchAll(/--system-labels-to-wipe[ =](\S+)/g)].map((m) => m[1]);
      if (labels.length > 0) resetLabels.set(e.node, labels);
      if (e.exitCode === 0 || unknown) {
        resetSent.set(e.node, unknown ? began : e.ts);
        // A new wipe began: this node has to rejoin again; and once the seed itself is reset,
        // the restore is gone too (a partial wipe of other nodes leaves it standing).
        done.delete("wipe");
        done.delete(`rejoin:${e.node}`);
        rebootSent.delete(e.node);
        if (e.node === seed) {
          for (const step of done.keys()) if (AFTER_WIPE.test(step)) done.delete(step);
          bootstrapAccepted = disarmAccepted = bootstrapCutOff = undefined;
          rebootSent.clear();
        }
      }
    }
  }
  return {
    seed,
    done,
    resetSent,
    resetLabels,
    bootstrapAccepted,
    bootstrapCutOff,
    disarmAccepted,
    rebootSent,
  };
}

/** `wipe done 10:02:11, bootstrap done 10:05:40` for the log. */
export function describeProgress(p: Progress, steps: string[]): string {
  return steps.filter((s) => p.done.has(s)).map((s) => `${s} done ${p.done.get(s)}`).join(", ");
}

/** What the journal says of a wipe that did not finish, for the log. */
export function unfinishedWipe(progress: Progress): string {
  const last = [...progress.resetSent.values()].sort().at(-1);
  return `reset sent to ${[...progress.resetSent.keys()].join(", ")} (last ${last}), ` +
    `wipe not finished`;
}

/** Refuses another `--nodes` than the copies in OUT were taken from: resuming a recovery. */
export function sameNodesAsEarlier(ctx: Ctx, found: string): void {
  // The --nodes of the extraction (a node whose copy failed, passed over with --force, too).
  const earlier = readManifest(ctx.opts.out)?.nodes ?? [];
  const given = new Set(ctx.opts.nodes);
  if (earlier.length > 0 && (earlier.length !== given.size || earlier.some((n) => !given.has(n)))) {
    const list = ctx.opts.nodes.join(",");
    throw new RefusedError(
      `--nodes ${list} is not the node list of the earlier run in ${ctx.opts.out} ` +
        `(${earlier.join(",")}), which records ${found}`,
      {
        hint: `resume that recovery with --nodes ${
          earlier.join(",")
        }; for another cluster, use a new --out`,
      },
    );
  }
}

/**
 * The checks of every resume (`found` says what the journal holds): the recovery's own
 * --nodes, and the seed the earlier run recorded (another --seed is refused). Returns the seed.
 */
export function resumedSeed(ctx: Ctx, progress: Progress, found: string): string {
  const seed = progress.seed ?? ctx.opts.seed;
  const startOver = "to start over (wiping again), pass --force or use a new --out";
  if (!seed) {
    throw new RefusedError(`${ctx.opts.out}/journal.jsonl records ${found} but no seed`, {
      hint: `name it with --seed (the node with the highest revision); ${startOver}`,
    });
  }
  if (ctx.opts.seed && ctx.opts.seed !== seed) {
    throw new RefusedError(
      `--seed ${ctx.opts.seed} differs from the seed of the earlier run, ${seed} (${found})`,
      { hint: `resume with --seed ${seed}; ${startOver}` },
    );
  }
  sameNodesAsEarlier(ctx, found);
  return seed;
}
