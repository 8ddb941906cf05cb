/**
 * The restore after the bootstrap (tasks/05_bootstrap.ts sends it): waiting until the seed's
 * etcd runs the restored data, and the command that starts a failed restore over.
 */

import type { Ctx } from "../run/context.ts";
import { StepError } from "../run/errors.ts";
import { poll } from "../run/poll.ts";
import { describe, lastEvent, lookAtEtcd, SERVICE_POLL_MS } from "../talos/cluster.ts";
import { taskCommand } from "./main.ts";

/**
 * After the bootstrap was accepted (by this run or an earlier one): polls until the seed's
 * etcd runs the restored data; Failed carries the reason in its last event.
 */
export async function awaitRestore(ctx: Ctx, seed: string, file: string): Promise<void> {
  ctx.clusterState =
    `bootstrap accepted by ${seed}: etcd is restoring from ${file}; the other nodes are still wiped`;
  ctx.continueWith = taskCommand("bootstrap", ctx.opts, ["--seed", seed, "--yes"]);
  await poll(ctx, {
    what: `etcd on "${seed}" to run the restored data`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const look = await lookAtEtcd(ctx, seed, "bootstrap");
      if (look.kind === "up" && look.info.state === "Failed") {
        ctx.clusterState =
          `the restore FAILED on ${seed}; it may have left files in /var/lib/etcd; the other nodes are wiped`;
        ctx.continueWith = restartRestore(ctx, seed);
        throw new StepError(`The restore failed on "${seed}": ${lastEvent(look.info)}`, {
          hint: "a failed restore leaves files behind: reset the seed again before retrying",
        });
      }
      if (look.kind === "up" && look.info.state === "Running" && look.info.health === "OK") {
        return { done: true, value: undefined };
      }
      return { done: false, state: describe(look) };
    },
  });
  ctx.clusterState =
    `etcd runs on ${seed} alone, restored from ${file}; the old CORRUPT alarm may still be armed (writes fail until disarm); the other nodes are wiped`;
  ctx.continueWith = taskCommand("disarm", ctx.opts, ["--seed", seed, "--yes"]);
}

/** The command that resets the seed again and bootstraps it: after a failed restore. */
export function restartRestore(ctx: Ctx, seed: string): string {
  return `${
    taskCommand("wipe", { ...ctx.opts, nodes: [seed], seed: undefined }, ["--force", "--yes"])
  } && ${taskCommand("bootstrap", ctx.opts, ["--seed", seed, "--yes"])}`;
}
