/**
 * Replace — bring back a bad member while a quorum of healthy members keeps etcd up.
 *
 * What:     diagnoses first (as `deno task diagnose`); goes on only on the verdict `replace`.
 *           For each bad node, one at a time: `etcd remove-member <hex id>` on the leader,
 *           `reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false`
 *           of that node only, then waits until it runs again and the leader lists it as a
 *           voter (it rejoins as a learner by itself). Then disarms any alarm (an alarm
 *           survives the removal of its member) and diagnoses again: the verdict must be
 *           healthy.
 * Changes:  removes and resets only the bad members; never resets, reboots or bootstraps a
 *           healthy node. No write is lost: the majority holds them all.
 * Refuses:  any other verdict (exit 2), naming it, its reasons and the command to run instead.
 * Re-run:   a reset this OUT's journal saw accepted is not sent again: the node is waited for.
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 etcd remove-member d2c3b4a596877869
 * Usage:    deno task replace --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]
 */

import type { Ctx } from "../lib/context.ts";
import type { Deps } from "../lib/deps.ts";
import { RefusedError, StepError } from "../lib/errors.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/main.ts";
import { confirm, printPlan } from "../lib/confirm.ts";
import { decide, type Decision } from "../lib/triage.ts";
import { clearAlarms, replaceOne, replacePlan, replaceResetAt } from "../lib/replace.ts";
import { gather } from "../lib/evidence.ts";

export const task: TaskDef = {
  name: "replace",
  summary: "replace the bad members only, while a healthy quorum keeps etcd up",
  usage: "  deno task replace --nodes A,B,C [--out DIR] [--yes] [--dry-run] [--timeout 10m]",
  run: async (ctx) => {
    ctx.log.step(`Diagnosing etcd on ${ctx.opts.nodes.join(", ")} before replacing anything`);
    await replaceProcedure(ctx, decide(await gather(ctx)));
  },
};

/**
 * The replace procedure on the verdict `d` (refused unless it is `replace`, or a replacement
 * this OUT started): one confirmation naming the nodes and why, then each bad node in turn.
 */
export async function replaceProcedure(ctx: Ctx, d: Decision): Promise<void> {
  const { via, bad } = replaceable(ctx, d);
  const plan = () => replacePlan(ctx, via, bad, d.alarms.length > 0);
  if (ctx.opts.dryRun) return printPlan(ctx, plan());
  const names = bad.map((b) => b.node).join(", ");
  const healthy = ctx.opts.nodes.filter((n) => !bad.some((b) => b.node === n)).join(", ");
  await confirm(
    ctx,
    `replace ${names} only (${
      d.reasons.filter((r) => / is bad: /.test(r)).join("; ") ||
      "reset by an earlier run"
    }): nothing is wiped on ${healthy}, no write is lost`,
    plan,
  );
  ctx.continueWith ??= taskCommand("replace", ctx.opts, ["--yes"]);
  for (const b of bad) await replaceOne(ctx, via, b.node, b.memberId);
  if (d.alarms.length > 0 || bad.length > 0) await clearAlarms(ctx, via);
  const after = decide(await gather(ctx, { copies: false }));
  if (after.verdict !== "healthy") {
    throw new StepError(`After the replacement the verdict is ${after.verdict}, not healthy`, {
      hint: `${after.reasons.join("; ")}; run deno task diagnose again`,
    });
  }
  ctx.log.ok(`healthy: ${after.reasons.join("; ")}`);
  ctx.clusterState = `${names} replaced; every member votes`;
}

/** The nodes to replace and the healthy voter to ask, or a refusal naming the verdict. */
function replaceable(ctx: Ctx, d: Decision) {
  const resumed = d.findings.filter((f) => replaceResetAt(ctx.opts.out, f.node) !== undefined)
    .filter((f) => f.role !== "running voter");
  const healthy = d.findings.filter((f) => f.role === "running voter" && !f.bad);
  const via = healthy.find((f) => f.memberId === d.leader)?.node ?? healthy[0]?.node;
  // An interrupted run: a node reset by it and not back yet is finished, not refused.
  if (d.verdict !== "replace" && resumed.length > 0 && via) {
    ctx.log.info(`resuming: the reset of ${resumed.map((f) => f.node).join(", ")} was accepted`);
    return { via, bad: resumed.map((f) => ({ node: f.node, memberId: f.memberId })) };
  }
  if (d.verdict !== "replace" || !via) {
    throw new RefusedError(
      `The verdict is ${d.verdict}, not replace: ${d.reasons.join("; ")}`,
      {
        hint: d.verdict === "healthy"
          ? "nothing to replace"
          : `run ${taskCommand("diagnose", ctx.opts)} for the way back`,
      },
    );
  }
  const bad = d.findings.filter((f) => d.replace.includes(f.node));
  return { via, bad: bad.map((f) => ({ node: f.node, memberId: f.memberId })) };
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
