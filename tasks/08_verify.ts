/**
 * Step 8 — verify: is the control plane back?
 *
 * What:     on the seed, `etcd members` (every node a voter, no learner) and `etcd alarm
 *           list` (empty); with --vip, `get addresses` on every node: exactly one shows
 *           VIP/32 in its ADDRESS column (any control-plane node may win the election);
 *           `kubectl get nodes -o wide` when kubectl is installed. Checks are repeated until
 *           they all pass or the deadline (--timeout, default 3m) passes.
 * Changes:  nothing.
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 etcd members
 * Usage:    deno task verify --nodes A,B,C [--seed N] [--vip V] [--json] [--timeout 3m]
 */

import {
  type Check,
  nodeFacts,
  runChecks,
  showKubernetesNodes,
} from "../lib/recovery/verify_checks.ts";
import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { shellLine } from "../lib/run/command.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { printPlan } from "../lib/recovery/confirm.ts";
import { poll } from "../lib/run/poll.ts";
import { sub } from "../lib/talos/talosctl.ts";
import { talosPlan } from "../lib/talos/plan.ts";
import { SERVICE_POLL_MS } from "../lib/talos/cluster.ts";
import { readProgress } from "../lib/recovery/resume.ts";

/** Verify's own deadline when --timeout is not given. */
export const VERIFY_TIMEOUT_MS = 3 * 60_000;

export const task: TaskDef = {
  name: "verify",
  summary: "check members, alarms, the VIP and the Kubernetes API; changes nothing",
  usage: "  deno task verify --nodes A,B,C [--seed N] [--vip V] [--json] [--timeout 3m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, verifyPlan(ctx));
    // The restored node (recorded by earlier steps) runs etcd first; ask it.
    const on = ctx.opts.seed ?? readProgress(ctx.opts.out).seed ?? ctx.opts.nodes[0];
    await step(ctx, "verify", `Verifying the control plane (asking ${on})`, () => verify(ctx, on));
  },
};
/** Repeats the checks until all pass; prints them; fails with those still failing. */
export async function verify(ctx: Ctx, on: string): Promise<Check[]> {
  const timeoutMs = ctx.opts.timeoutGiven ? ctx.opts.timeoutMs : VERIFY_TIMEOUT_MS;
  let last: Check[] = [];
  try {
    await poll(ctx, {
      what: "every check to pass",
      intervalMs: SERVICE_POLL_MS,
      timeoutMs,
      check: async () => {
        last = await runChecks(ctx, on);
        const failing = last.filter((c) => !c.ok);
        return failing.length === 0
          ? { done: true, value: undefined }
          : { done: false, state: failing.map((c) => `${c.name}: ${c.detail}`).join("; ") };
      },
    });
  } finally {
    for (const c of last) {
      (c.ok ? ctx.log.ok : ctx.log.error).call(ctx.log, `${c.name}: ${c.detail}`);
    }
    if (ctx.opts.json) {
      const nodes = await nodeFacts(ctx, last);
      const checks = last.map(({ facts: _, ...c }) => c);
      ctx.deps.stdout(
        JSON.stringify({ ok: last.every((c) => c.ok), checks, nodes }, null, 2) + "\n",
      );
    }
  }
  await showKubernetesNodes(ctx);
  return last;
}
/** The commands verify runs, as bash. */
export function verifyPlan(ctx: Ctx): string[] {
  const on = ctx.opts.seed ?? ctx.opts.nodes[0];
  return [
    "# Step 8: verify: every node a voter, no alarm, the VIP on exactly one node, the API answers",
    talosPlan(on, sub.members()),
    ...ctx.opts.nodes.map((n) => `voter ${shellLine([on, n])}`),
    `test -z "$(${talosPlan(on, sub.alarmList())})"`,
    ...(ctx.opts.vip
      ? [
        "holders=0",
        `for n in ${shellLine(ctx.opts.nodes)}; do`,
        `  if talos "$n" ${
          shellLine(sub.addresses())
        } | grep -qF ' ${ctx.opts.vip}/32 '; then holders=$((holders + 1)); fi`,
        "done",
        `test "$holders" -eq 1  # the VIP ${ctx.opts.vip} on exactly one node`,
      ]
      : []),
    "kubectl get nodes -o wide",
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
