/**
 * Step 3 — wipe: reset every control-plane node at once, so no broken node can sync the bad
 * state back.
 *
 * What:     every node at once, `talosctl -e N -n N reset --system-labels-to-wipe EPHEMERAL
 *           --graceful=false --reboot --wait=false` (graceful needs a working etcd; --wait
 *           is known to hang), then polls each node until it went down and came back with
 *           an empty etcd (STATE Preparing, event history younger than the reset).
 * Changes:  DESTROYS etcd on every node. The copies in OUT are then the only data.
 * Refuses:  without an intact copy of the seed (never overridable); while any node's copy is
 *           missing or unreadable, a --seed below the highest revision, or a healthy cluster
 *           (each overridable with --force). Asks first unless --yes.
 * Re-run:   a wipe not finished is finished (lib/recovery/phase.ts wipeStep: a node whose reset took
 *           is not reset again); a finished one sends nothing; after an accepted bootstrap,
 *           refused.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false
 * Usage:    deno task wipe --nodes A,B,C [--seed N] [--out DIR] [--yes] [--force] [--timeout 10m]
 */

import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { shellLine } from "../lib/run/command.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import { sub } from "../lib/talos/talosctl.ts";
import { etcdIsPlan, parallelPlan, talosPlan, waitForPlan } from "../lib/talos/plan.ts";
import { readProgress } from "../lib/recovery/resume.ts";
import { refuseAfterBootstrap, wipedEarlier } from "../lib/recovery/phase.ts";
import { preflight } from "../lib/talos/preflight.ts";
import {
  allWiped,
  awaitWiped,
  checkBeforeWipe,
  everyNodeWiped,
  resumeWipeStep,
  sendResets,
} from "../lib/recovery/wipe.ts";

export const task: TaskDef = {
  name: "wipe",
  summary: "reset every control-plane node at once (EPHEMERAL): DESTROYS etcd everywhere",
  usage: "  deno task wipe --nodes A,B,C [--seed N] [--out DIR] [--yes] [--force] [--timeout 10m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, wipePlan(ctx));
    // Before the pre-flight asks the nodes anything: a restored etcd is never wiped again.
    refuseAfterBootstrap(ctx);
    const progress = readProgress(ctx.opts.out);
    // A wipe an earlier run started is finished (lib/recovery/wipe.ts finishWipe).
    if (progress.resetSent.size > 0 && !ctx.opts.force) {
      return await resumeWipeStep(ctx, progress, () => wipePlan(ctx));
    }
    if (progress.done.has("wipe") && !ctx.opts.force) return await wipedEarlier(ctx, progress);
    await step(ctx, "preflight", "Pre-flight checks", () => preflight(ctx, "preflight"));
    const seed = await step(
      ctx,
      "safety",
      "Checking the copies before wiping",
      () => checkBeforeWipe(ctx),
    );
    await confirm(
      ctx,
      `wipe etcd on ${ctx.opts.nodes.join(", ")} (seed ${seed})`,
      () => wipePlan(ctx),
    );
    await step(ctx, "wipe", `Wiping ${ctx.opts.nodes.length} nodes at once`, () => wipe(ctx));
  },
};

/** Resets every node at once and waits until each came back with an empty etcd. */
export async function wipe(ctx: Ctx): Promise<void> {
  const nodes = ctx.opts.nodes;
  const sentAt = ctx.deps.now();
  ctx.clusterState = `reset sent to ${
    nodes.join(", ")
  }: etcd is being destroyed; the copies in ${ctx.opts.out} are the only data`;
  ctx.continueWith = taskCommand("wipe", ctx.opts, ["--yes"]);
  await sendResets(ctx, nodes, (failed) => {
    const done = nodes.filter((n) => !failed.includes(n));
    return `reset accepted by ${done.join(", ") || "no node"}; FAILED on ${
      failed.join(", ")
    } (still holding the old etcd)`;
  });
  // The check: each node is polled until it went down (or its etcd started after `sentAt`) and
  // is back with etcd Preparing, empty and waiting (awaitWiped); all at once, a failure naming
  // the nodes seen wiped and those not (allWiped).
  await allWiped(ctx, nodes.map((node) => [node, () => awaitWiped(ctx, node, sentAt)]));
  ctx.clusterState = everyNodeWiped(ctx);
  ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--yes"]);
}

/** The commands wipe runs, as bash. */
export function wipePlan(ctx: Ctx, options: { gated?: boolean } = {}): string[] {
  const gate = shellLine([
    "--out",
    ctx.opts.out,
    ...(ctx.opts.nodes.length ? ["--nodes", ctx.opts.nodes.join(",")] : []),
  ]);
  return [
    // `gated`: the plan has just run status (SEED=$(deno task status …)), which is the gate
    ...(options.gated ? [] : [
      "# safety gate: status exits 2 (set -e stops here) while a copy is torn, changed or missing",
      `deno task status ${gate} >/dev/null`,
    ]),
    "# Step 3: wipe every node at once (DESTROYS etcd; the copies are the only data now)",
    "# (a node with a dedicated ETCD partition needs --system-labels-to-wipe ETCD as well)",
    ...parallelPlan(ctx.opts.nodes.map((n) => talosPlan(n, sub.reset()))),
    "# then, for each node, until it came back with an empty etcd:",
    ...ctx.opts.nodes.map((n) =>
      waitForPlan(
        `${n} to come back wiped (etcd Preparing)`,
        ctx.opts.timeoutMs / 1000,
        etcdIsPlan(n, "STATE", "Preparing"),
      )
    ),
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
