/**
 * Step 7 — rejoin: wait for the other nodes to come back, rebooting only those that will not.
 *
 * What:     after the wipe, Talos retries the join of each wiped node every 3 s for 30 min, as
 *           a learner (etcd takes one at a time, promoted once caught up; meanwhile its health
 *           fails with "rpc not supported for learner"). For each node but the seed, in order:
 *           poll until its etcd is Running with HEALTH OK and the seed lists it as a voter. It
 *           is rebooted (`reboot --wait=false`, one at a time) only when its etcd is Failed (the
 *           join gave up), when it has not begun to join within --join-grace (default 30s,
 *           counted while the seed runs with no learner in flight), or always with
 *           --rolling-reboot. The decision: lib/recovery/rejoin_policy.ts. The seed is never rebooted,
 *           nor a node the seed listed as a voter when rejoin started.
 * Changes:  reboots only the nodes above (with --rolling-reboot: every node not yet a voter).
 * Re-run:   nodes this OUT's journal records as rejoined are not waited for or rebooted again.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 reboot --wait=false
 * Usage:    deno task rejoin --nodes A,B,C [--seed N] [--out DIR] [--yes] [--timeout 10m]
 *                            [--join-grace 30s] [--rolling-reboot]
 */

import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { planSeed, seedOf } from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import { readProgress } from "../lib/recovery/resume.ts";
import { formatMs } from "../lib/run/poll.ts";
import { sub } from "../lib/talos/talosctl.ts";
import {
  etcdIsPlan,
  joiningPlan,
  noLearnerPlan,
  talosPlan,
  waitForPlan,
} from "../lib/talos/plan.ts";
import {
  refuseUnlessSeedRuns,
  rejoinAction,
  rejoinedBefore,
  rejoinOne,
  rejoinState,
  votersAtStart,
} from "../lib/recovery/rejoin.ts";

export const task: TaskDef = {
  name: "rejoin",
  summary: "wait until every other node is a healthy voting member, rebooting only those " +
    "whose etcd Failed or that do not begin to join (every one with --rolling-reboot)",
  usage: "  deno task rejoin --nodes A,B,C [--seed N] [--out DIR] [--yes] [--timeout 10m]\n" +
    "                   [--join-grace 30s] [--rolling-reboot]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, rejoinPlan(ctx));
    const seed = await seedOf(ctx);
    await rejoin(ctx, seed);
  },
};

/** Waits until each non-seed node votes, rebooting only those the policy names. */
export async function rejoin(ctx: Ctx, seed: string): Promise<void> {
  const others = ctx.opts.nodes.filter((n) => n !== seed);
  const done = rejoinedBefore(ctx.opts.out);
  const todo = others.filter((n) => !done.has(n));
  for (const n of others.filter((n) => done.has(n))) ctx.log.ok(`${n}: rejoined in an earlier run`);
  if (todo.length === 0) return;
  await refuseUnlessSeedRuns(ctx, seed);
  const voters = await votersAtStart(ctx, seed);
  const wait = todo.filter((n) => !voters.has(n));
  if (wait.length > 0) await confirm(ctx, rejoinAction(ctx, wait), () => rejoinPlan(ctx));
  const rejoined = others.filter((n) => done.has(n));
  const clock: { quietSince?: number } = {};
  // A reboot an earlier run had accepted (Ctrl-C, a deadline) is not sent again: the node is
  // judged by what it did since (back as a voter: rejoined; on its way: waited for).
  const earlier = readProgress(ctx.opts.out).rebootSent;
  for (const [i, node] of todo.entries()) {
    const later = todo.slice(i + 1);
    ctx.clusterState = rejoinState(seed, rejoined, undefined, todo.slice(i));
    await step(
      ctx,
      `rejoin:${node}`,
      `Rejoining ${node} (${i + 1} of ${todo.length})`,
      () =>
        rejoinOne(ctx, { seed, node, voterAtStart: voters.has(node), clock, earlier }, () => {
          ctx.clusterState = rejoinState(seed, rejoined, node, later);
        }),
    );
    rejoined.push(node);
  }
  ctx.clusterState = `etcd runs on every node (${
    ctx.opts.nodes.join(", ")
  }), restored from ${seed}`;
  ctx.continueWith = taskCommand("verify", ctx.opts, ["--seed", seed]);
}

/**
 * The commands rejoin runs, as bash: for the seed the journal recorded (or --seed), and only
 * the nodes not recorded as rejoined (a pasted plan must not reboot a voting member).
 */
export function rejoinPlan(ctx: Ctx): string[] {
  const recorded = ctx.opts.seed ?? readProgress(ctx.opts.out).seed;
  const c = recorded ? { ...ctx, opts: { ...ctx.opts, seed: recorded } } : ctx;
  const { seed, lines } = planSeed(c);
  const done = rejoinedBefore(ctx.opts.out);
  const candidates = c.opts.seed ? c.opts.nodes.filter((n) => n !== seed) : c.opts.nodes;
  const skipped = candidates.filter((n) => done.has(n));
  const seconds = c.opts.timeoutMs / 1000;
  const graceS = c.opts.joinGraceMs / 1000;
  const reboot = (n: string) => [talosPlan(n, sub.reboot()), "sleep 30"];
  // Without --rolling-reboot: a node that has not begun to join (Running, or waiting for the
  // learner slot another node holds) within the grace is rebooted; the others are waited for.
  const rebootIfNotJoining = (n: string) => [
    `if ! (${waitForPlan(`${n} to begin joining`, graceS, joiningPlan(n, seed))}); then`,
    ...reboot(n).map((l) => `  ${l}`),
    "fi",
  ];
  return [
    c.opts.rollingReboot
      ? "# Step 7: reboot the other nodes one at a time; each must be Running, HEALTH OK, and a voter"
      : `# Step 7: the other nodes rejoin by themselves, one learner at a time; one not joining ` +
        `within ${formatMs(c.opts.joinGraceMs)} is rebooted`,
    ...(c.opts.rollingReboot ? [] : ["# each must then be Running, HEALTH OK, and a voter"]),
    ...(skipped.length > 0 ? [`# already rejoined in an earlier run: ${skipped.join(", ")}`] : []),
    ...lines,
    ...candidates.filter((n) => !done.has(n)).flatMap((n) => [
      ...(c.opts.seed ? [] : [`if [ "${n}" != "$SEED" ]; then`]),
      ...(c.opts.rollingReboot ? reboot(n) : rebootIfNotJoining(n)),
      waitForPlan(`etcd on ${n} to be healthy`, seconds, etcdIsPlan(n, "HEALTH", "OK")),
      waitForPlan(`${n} to be promoted (no learner left)`, seconds, noLearnerPlan(seed)),
      ...(c.opts.seed ? [] : ["fi"]),
    ]),
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
