/**
 * Step 5 — bootstrap: restore etcd on the seed from its raw copy.
 *
 * What:     `talosctl -e S -n S bootstrap --recover-from=OUT/db.S/db --recover-skip-hash-check`
 *           (a raw copy has no hash trailer), retried while the node answers "bootstrap is
 *           not available yet", "time is not in sync yet" or "not ready for recovery yet".
 *           Exit 0 is NOT success: the restore runs afterwards, so `service etcd` is polled
 *           until Running; Failed carries the reason in its last event.
 * Changes:  starts a new one-member etcd cluster on the seed from the copy.
 * Refuses:  when the copy's sha256 no longer matches the manifest; when etcd on the seed is
 *           already Running (not wiped, or already bootstrapped).
 * Re-run:   a bootstrap accepted earlier is never sent again: done while etcd runs, its
 *           restore waited for while it runs, refused otherwise (lib/recovery/phase.ts).
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 bootstrap --recover-from=./etcd-recovery/db.192.168.53.11/db --recover-skip-hash-check
 * Usage:    deno task bootstrap --nodes A,B,C [--seed N] [--out DIR] [--yes] [--timeout 10m]
 */

import { join } from "node:path";
import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { RefusedError } from "../lib/run/errors.ts";
import { planSeed, seedOf, verifiedSeedCopy } from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import { lookAtEtcd, SERVICE_POLL_MS, waitPreparing } from "../lib/talos/cluster.ts";
import { copyFile } from "../lib/recovery/manifest.ts";
import { poll } from "../lib/run/poll.ts";
import { isBootstrapNotReady, isDataDirNotEmpty, isUnreachable } from "../lib/talos/parse.ts";
import { commandFailure, sub, talos } from "../lib/talos/talosctl.ts";
import { SEED_VAR } from "../lib/run/command.ts";
import { bootstrapFromPlan, etcdRestoredPlan, waitForPlan } from "../lib/talos/plan.ts";
import { bootstrappedEarlier } from "../lib/recovery/phase.ts";
import { awaitRestore } from "../lib/recovery/bootstrap.ts";

/** Uploading a large db can take a while. */
export const BOOTSTRAP_CALL_TIMEOUT_MS = 10 * 60_000;

export const task: TaskDef = {
  name: "bootstrap",
  summary: "restore etcd on the seed from its copy and wait until it runs",
  usage: "  deno task bootstrap --nodes A,B,C [--seed N] [--out DIR] [--yes] [--timeout 10m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, bootstrapPlan(ctx));
    const seed = await seedOf(ctx, { strict: true });
    const restore = async () => await awaitRestore(ctx, seed, await verifiedSeedCopy(ctx, seed));
    if (await bootstrappedEarlier(ctx, seed, restore)) return;
    const file = await verifiedSeedCopy(ctx, seed);
    await confirm(ctx, `bootstrap etcd on ${seed} from ${file}`, () => bootstrapPlan(ctx));
    await step(
      ctx,
      "bootstrap",
      `Restoring etcd on ${seed} from ${file}`,
      () => bootstrap(ctx, seed, file),
    );
  },
};

/** Sends the bootstrap (retrying the expected refusals) and waits until etcd runs. */
export async function bootstrap(ctx: Ctx, seed: string, file: string): Promise<void> {
  const first = await lookAtEtcd(ctx, seed, "bootstrap");
  if (first.kind === "up" && first.info.state === "Running") {
    throw new RefusedError(
      `etcd on "${seed}" is already Running: it was not wiped, or it was already bootstrapped`,
      {
        hint:
          "if it was bootstrapped already, go on with deno task disarm; otherwise run deno task wipe first",
      },
    );
  }
  if (first.kind === "down" || first.info.state !== "Preparing") await waitPreparing(ctx, seed);
  const args = sub.bootstrap(file);
  await poll(ctx, {
    what: `"${seed}" to accept the bootstrap`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const r = await talos(ctx, seed, args, {
        step: "bootstrap",
        mutating: true,
        timeoutMs: BOOTSTRAP_CALL_TIMEOUT_MS,
      });
      if (r.code === 0) return { done: true, value: undefined };
      if (isBootstrapNotReady(r.stderr) || isUnreachable(r.stderr)) {
        return {
          done: false,
          state: `not yet: ${r.stderr.match(/desc = (.*)/)?.[1] ?? r.stderr.trim()}`,
        };
      }
      if (isDataDirNotEmpty(r.stderr)) {
        throw commandFailure(
          ctx,
          seed,
          args,
          r,
          `the seed was not wiped, or a failed restore left files: run deno task wipe --nodes ${seed} --yes, then bootstrap again`,
        );
      }
      throw commandFailure(ctx, seed, args, r);
    },
  });
  await awaitRestore(ctx, seed, file);
}

/** The commands bootstrap runs, as bash. */
export function bootstrapPlan(ctx: Ctx): string[] {
  const { seed, lines } = planSeed(ctx);
  const file = join(ctx.opts.out, copyFile(seed));
  const seconds = ctx.opts.timeoutMs / 1000;
  return [
    "# Step 5: restore the seed from its raw copy (retry while not ready), then wait until etcd runs",
    ...lines,
    waitForPlan(`${seed} to accept the bootstrap`, seconds, bootstrapFromPlan(seed, file)),
    ...restorePlan(ctx),
  ];
}

/** The wait for the restore after an accepted bootstrap, as bash. */
export function restorePlan(ctx: Ctx): string[] {
  const seed = ctx.opts.seed ?? SEED_VAR;
  const seconds = ctx.opts.timeoutMs / 1000;
  return [
    "# exit 0 is not success: the restore runs now; Failed carries the reason in its last event",
    waitForPlan(`etcd on ${seed} to run the restored data`, seconds, etcdRestoredPlan(seed)),
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
