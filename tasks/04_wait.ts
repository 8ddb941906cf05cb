/**
 * Step 4 — wait: until the seed's etcd is Preparing (wiped, waiting for bootstrap).
 *
 * What:     polls `talosctl -e S -n S service etcd` until STATE Preparing. While the node
 *           reboots the call fails with connection refused: expected, polling goes on until
 *           the deadline. Shows the other nodes' states once at the end.
 * Changes:  nothing.
 * Re-run:   after the bootstrap was accepted (journal), nothing to wait for while etcd runs.
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 service etcd
 * Usage:    deno task wait --nodes A,B,C [--seed N] [--out DIR] [--timeout 10m]
 */

import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { planSeed, seedOf } from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { printPlan } from "../lib/recovery/confirm.ts";
import { etcdIsPlan, waitForPlan } from "../lib/talos/plan.ts";
import { pastTheWait } from "../lib/recovery/phase.ts";
import { waitPreparing } from "../lib/talos/cluster.ts";

export const task: TaskDef = {
  name: "wait",
  summary: "wait until the seed's etcd is Preparing (wiped, ready for bootstrap); changes nothing",
  usage: "  deno task wait --nodes A,B,C [--seed N] [--out DIR] [--timeout 10m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, waitPlan(ctx));
    const seed = await seedOf(ctx);
    if (await pastTheWait(ctx, seed)) return;
    await step(
      ctx,
      "wait",
      `Waiting for etcd on ${seed} to be Preparing`,
      () => waitPreparing(ctx, seed),
    );
  },
};

/** The commands wait runs, as bash. */
export function waitPlan(ctx: Ctx): string[] {
  const { seed, lines } = planSeed(ctx);
  return [
    "# Step 4: wait until the seed's etcd is Preparing",
    ...lines,
    waitForPlan(
      `etcd on ${seed} to be Preparing`,
      ctx.opts.timeoutMs / 1000,
      etcdIsPlan(seed, "STATE", "Preparing"),
    ),
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
