/**
 * Step 6 — disarm: clear the CORRUPT alarm that came back inside the restored db.
 *
 * What:     `etcd alarm list` on the seed; if it lists anything, `etcd alarm disarm`, then
 *           `etcd alarm list` again, which must print nothing (no alarms = empty stdout).
 *           While CORRUPT is armed reads work and health may look OK, but every write fails.
 * Changes:  clears every alarm of the cluster.
 * Re-run:   no alarm listed → nothing to do.
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 etcd alarm disarm
 * Usage:    deno task disarm --nodes A,B,C [--seed N] [--out DIR] [--yes]
 */

import { type Ctx, SKIPPED, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { RefusedError } from "../lib/run/errors.ts";
import { planSeed, seedOf } from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import { parseAlarms } from "../lib/talos/parse.ts";
import { readProgress } from "../lib/recovery/resume.ts";
import { sub, talosOk } from "../lib/talos/talosctl.ts";
import { talosPlan } from "../lib/talos/plan.ts";
import { disarmListed } from "../lib/recovery/replace.ts";

export const task: TaskDef = {
  name: "disarm",
  summary: "clear the CORRUPT alarm restored with the db, and check none is left",
  usage: "  deno task disarm --nodes A,B,C [--seed N] [--out DIR] [--yes]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, disarmPlan(ctx));
    const seed = await seedOf(ctx);
    await step(ctx, "disarm", `Clearing alarms on ${seed}`, () => disarm(ctx, seed));
  },
};

/** Lists, disarms and lists again; returns SKIPPED when there was nothing to clear. */
export async function disarm(ctx: Ctx, seed: string): Promise<typeof SKIPPED | void> {
  const before = parseAlarms(await talosOk(ctx, seed, sub.alarmList(), { step: "disarm" }));
  if (before.length === 0) {
    ctx.log.ok("no alarm listed: nothing to disarm");
    return SKIPPED;
  }
  for (const a of before) ctx.log.info(`armed: ${a.alarm} on member ${a.member}`);
  const disarmedAt = readProgress(ctx.opts.out).done.get("disarm");
  if (disarmedAt) {
    // The restored alarm was cleared at that time: an alarm now is a new one (the cluster
    // broke again, or never healed), not the one that came back inside the copy.
    throw new RefusedError(
      `${
        before.map((a) => a.alarm).join(", ")
      } is armed again on ${seed}, after the alarms of this recovery were cleared (${disarmedAt}): not disarming it`,
      {
        hint: `find out why before clearing it by hand; for a new incident, start over with ${
          taskCommand("recover", ctx.opts)
        } and a new --out`,
      },
    );
  }
  await confirm(ctx, `disarm ${before.length} alarm(s) on ${seed}`, () => disarmPlan(ctx));
  await disarmListed(
    ctx,
    seed,
    `run deno task disarm again; if it stays, check "talosctl -n ${seed} etcd status"`,
  );
  ctx.log.ok("alarm list is empty: writes are accepted again");
  ctx.clusterState =
    `etcd runs on ${seed} alone with the restored data and no alarm; the other nodes are wiped and may be joining`;
  ctx.continueWith = taskCommand("rejoin", ctx.opts, ["--seed", seed, "--yes"]);
}

/** The commands disarm runs, as bash. */
export function disarmPlan(ctx: Ctx): string[] {
  const { seed, lines } = planSeed(ctx);
  const list = talosPlan(seed, sub.alarmList());
  return [
    "# Step 6: disarm the alarm restored with the db; the list must then be empty",
    ...lines,
    list,
    talosPlan(seed, sub.alarmDisarm()),
    `test -z "$(${list})"`,
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
