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

import { type Ctx, step } from "../lib/context.ts";
import type { Deps } from "../lib/deps.ts";
import { planSeed, seedOf } from "../lib/inspect.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/main.ts";
import { printPlan } from "../lib/confirm.ts";
import { describe, lastEvent, lookAtEtcd, SERVICE_POLL_MS } from "../lib/cluster.ts";
import { poll } from "../lib/poll.ts";
import { etcdIsPlan, waitForPlan } from "../lib/plan.ts";
import { StepError } from "../lib/errors.ts";
import { pastTheWait } from "../lib/phase.ts";

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

/** Polls the seed until etcd is Preparing; fails fast when it is Running or Failed. */
export async function waitPreparing(ctx: Ctx, seed: string): Promise<void> {
  await poll(ctx, {
    what: `etcd on "${seed}" to be Preparing`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const look = await lookAtEtcd(ctx, seed, "wait");
      if (look.kind === "up" && look.info.state === "Preparing") {
        return { done: true, value: undefined };
      }
      if (look.kind === "up" && look.info.state === "Running") {
        throw new StepError(
          `etcd on "${seed}" is Running, not Preparing: it was not wiped, or it was already bootstrapped`,
          {
            hint:
              "if it was already bootstrapped, go on with deno task disarm; otherwise run deno task wipe",
          },
        );
      }
      if (look.kind === "up" && look.info.state === "Failed") {
        throw new StepError(`etcd on "${seed}" is Failed: ${lastEvent(look.info)}`, {
          hint:
            `a failed restore leaves files behind: reset the seed again (deno task wipe --nodes ${seed} --force --yes), then bootstrap`,
        });
      }
      return { done: false, state: describe(look) };
    },
  });
}

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
