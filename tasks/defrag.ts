/**
 * Defrag — bring back a cluster whose db hit its quota (NOSPACE), touching no node.
 *
 * What:     diagnoses first (as `deno task diagnose`); goes on only on the verdict `nospace`.
 *           `etcd defrag` on each member, one at a time, the leader last, each until its etcd
 *           is healthy again; then `etcd alarm disarm` (the list must then be empty); then DB
 *           SIZE against IN USE and the quota; then diagnoses again: the verdict must be
 *           healthy.
 * Changes:  rewrites each member's db file in place (defrag); clears the alarms. No reset, no
 *           reboot, no write lost.
 * Refuses:  any other verdict (exit 2), naming it, its reasons and the command to run instead.
 * Re-run:   members this OUT's journal records as defragmented are not defragmented again.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 etcd defrag
 * Usage:    deno task defrag --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]
 */

import type { Deps } from "../lib/deps.ts";
import { RefusedError, StepError } from "../lib/errors.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/main.ts";
import { confirm, printPlan } from "../lib/confirm.ts";
import type { Ctx } from "../lib/context.ts";
import { decide, type Decision } from "../lib/triage.ts";
import { gather } from "../lib/evidence.ts";
import { clearAlarms } from "../lib/replace.ts";
import { defragOne, defragPlan, quotaCheck } from "../lib/defrag.ts";

export const task: TaskDef = {
  name: "defrag",
  summary: "NOSPACE: defragment each member (the leader last), then disarm; no node is reset",
  usage: "  deno task defrag --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]",
  run: async (ctx) => {
    ctx.log.step(`Diagnosing etcd on ${ctx.opts.nodes.join(", ")} before defragmenting`);
    await defragProcedure(ctx, decide(await gather(ctx)));
  },
};

/** The defrag procedure on the verdict `d` (refused unless it is `nospace`). */
export async function defragProcedure(ctx: Ctx, d: Decision): Promise<void> {
  const voters = d.findings.filter((f) => f.role === "running voter").map((f) => f.node);
  const leader = d.findings.find((f) => f.memberId === d.leader)?.node ?? voters[0];
  if (d.verdict !== "nospace" || !leader) {
    throw new RefusedError(`The verdict is ${d.verdict}, not nospace: ${d.reasons.join("; ")}`, {
      hint: d.verdict === "healthy"
        ? "nothing to do"
        : `run ${taskCommand("diagnose", ctx.opts)} for the way back`,
    });
  }
  // one at a time, the leader last: a defrag blocks its member while it runs
  const order = [...voters.filter((n) => n !== leader), leader];
  const plan = () => defragPlan(ctx, order, leader);
  if (ctx.opts.dryRun) return printPlan(ctx, plan());
  await confirm(ctx, `defragment ${order.join(", ")} one at a time, then disarm`, plan);
  ctx.continueWith = taskCommand("defrag", ctx.opts, ["--yes"]);
  for (const node of order) await defragOne(ctx, node);
  await clearAlarms(ctx, leader);
  const warnings = await quotaCheck(ctx, order);
  for (const w of warnings) ctx.log.warn(w);
  const after = decide(await gather(ctx, { copies: false }));
  if (after.verdict !== "healthy") {
    throw new StepError(`After the defrag the verdict is ${after.verdict}, not healthy`, {
      hint: `${after.reasons.join("; ")}; run deno task diagnose again`,
    });
  }
  ctx.log.ok(`healthy: ${after.reasons.join("; ")}`);
  ctx.clusterState = `every member defragmented, NOSPACE disarmed; no node was reset`;
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
