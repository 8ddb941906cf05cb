/**
 * Step 7 — rejoin: bring the other nodes back one at a time.
 *
 * What:     for each node but the seed, in order: `talosctl -e N -n N reboot --wait=false`
 *           (drops cached state, unsticks a join loop Talos gave up on after 30 min), then
 *           polls until its etcd is Running with HEALTH OK and the seed lists it as a voting
 *           member. A learner (HEALTH Fail, "rpc not supported for learner") is expected on
 *           the way: etcd allows one learner at a time, promoted once caught up. The next
 *           node is rebooted only after that. The seed is never rebooted.
 * Changes:  reboots every node but the seed, one at a time.
 * Re-run:   nodes this OUT's journal records as rejoined are not rebooted again, nor is a
 *           node whose reboot was accepted and that came back since (lib/phase.ts): a
 *           healthy voter counts as rejoined, one on its way back is waited for.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 reboot --wait=false
 * Usage:    deno task rejoin --nodes A,B,C [--seed N] [--out DIR] [--yes] [--timeout 10m]
 */

import { type Ctx, step } from "../lib/context.ts";
import type { Deps } from "../lib/deps.ts";
import { RefusedError, StepError } from "../lib/errors.ts";
import { planSeed, seedOf } from "../lib/inspect.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/main.ts";
import { confirm, printPlan } from "../lib/confirm.ts";
import { describe, lastEvent, lookAtEtcd, SERVICE_POLL_MS, startedWithin } from "../lib/cluster.ts";
import { readProgress, rejoinedNodes } from "../lib/resume.ts";
import { type NodeStep, planRejoins } from "../lib/phase.ts";
import { isLearnerRpc, memberForNode, parseMembers } from "../lib/parse.ts";
import { poll } from "../lib/poll.ts";
import {
  commandFailure,
  serviceIsPlan,
  shellLine,
  sub,
  talos,
  talosArgv,
  talosOk,
  untilPlan,
} from "../lib/talosctl.ts";

export const task: TaskDef = {
  name: "rejoin",
  summary: "reboot the other nodes one at a time, each until it is a healthy voting member",
  usage: "  deno task rejoin --nodes A,B,C [--seed N] [--out DIR] [--yes] [--timeout 10m]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, rejoinPlan(ctx));
    const seed = await seedOf(ctx);
    await rejoin(ctx, seed);
  },
};

/**
 * Reboots each non-seed node in turn and waits until it votes. A node whose reboot an earlier
 * run had accepted is judged by lib/phase.ts: back since as a healthy voter, it counts as
 * rejoined; on its way back, it is waited for; neither is rebooted again.
 */
export async function rejoin(ctx: Ctx, seed: string): Promise<void> {
  const progress = readProgress(ctx.opts.out);
  const others = ctx.opts.nodes.filter((n) => n !== seed);
  const done = rejoinedNodes(progress);
  for (const n of others.filter((n) => done.has(n))) ctx.log.ok(`${n}: rejoined in an earlier run`);
  if (others.every((n) => done.has(n))) return;
  const look = await lookAtEtcd(ctx, seed, "rejoin");
  if (look.kind !== "up" || look.info.state !== "Running" || look.info.health !== "OK") {
    throw new RefusedError(
      `etcd on the seed "${seed}" is ${
        describe(look)
      }: rejoin reboots every other node, so the seed must be the node whose etcd runs`,
      {
        hint:
          "check --seed (the node that was bootstrapped), or wait until its etcd is Running with HEALTH OK",
      },
    );
  }
  const { todo, plans } = await planRejoins(ctx, progress, seed, look);
  const reboots = todo.filter((n) => plans.get(n)!.do === "reboot");
  if (reboots.length > 0) {
    await confirm(ctx, `reboot ${reboots.join(", ")} one at a time`, () => rejoinPlan(ctx));
  }
  const rejoined = others.filter((n) => done.has(n));
  for (const [i, node] of todo.entries()) {
    const later = todo.slice(i + 1);
    ctx.clusterState = rejoinState(seed, rejoined, undefined, todo.slice(i));
    await step(
      ctx,
      `rejoin:${node}`,
      `Rejoining ${node} (${i + 1} of ${todo.length})`,
      () =>
        rejoinOne(ctx, seed, node, plans.get(node)!, () => {
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
 * Where the rejoin stands, for a failure or Ctrl-C: only what this run saw (the seed's etcd as
 * it was at its last check, the nodes that did rejoin), never a guess about now.
 */
function rejoinState(
  seed: string,
  rejoined: readonly string[],
  rebooting: string | undefined,
  pending: readonly string[],
): string {
  return [
    `etcd restored on ${seed} (Running at its last check)`,
    rejoined.length > 0 ? `rejoined: ${rejoined.join(", ")}` : "",
    rebooting ? `rebooted to rejoin, not yet a voter: ${rebooting}` : "",
    pending.length > 0 ? `not rebooted yet: ${pending.join(", ")}` : "",
  ].filter(Boolean).join("; ");
}

/** Reboots `node` (unless `plan` says its earlier reboot took) and waits until it votes. */
async function rejoinOne(
  ctx: Ctx,
  seed: string,
  node: string,
  plan: NodeStep,
  rebooted: () => void,
): Promise<void> {
  ctx.continueWith = taskCommand("rejoin", ctx.opts, ["--seed", seed, "--yes"]);
  if (plan.do === "done") return ctx.log.ok(`${node}: ${plan.why}`);
  const sentAt = plan.do === "await" ? plan.since : ctx.deps.now();
  if (plan.do === "reboot") {
    const r = await talos(ctx, node, sub.reboot(), { step: `rejoin:${node}`, mutating: true });
    if (r.code !== 0) throw commandFailure(ctx, node, sub.reboot(), r);
  }
  rebooted();
  let wentDown = false;
  await poll(ctx, {
    what: `"${node}" to rejoin as a healthy voting member`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const look = await lookAtEtcd(ctx, node, `rejoin:${node}`);
      if (look.kind === "down") wentDown = true;
      if (look.kind === "down") return { done: false, state: describe(look) };
      if (!wentDown && !startedWithin(look.info, ctx.deps.now() - sentAt)) {
        return { done: false, state: `${describe(look)} — not rebooted yet` };
      }
      if (look.info.state === "Failed") {
        throw new StepError(`etcd on "${node}" failed: ${lastEvent(look.info)}`, {
          hint: `reboot it again with deno task rejoin (it was not recorded as rejoined)`,
        });
      }
      if (look.info.state !== "Running" || look.info.health !== "OK") {
        const learner = isLearnerRpc(look.info.lastHealthMessage ?? "")
          ? " — a learner, waiting for promotion"
          : "";
        return { done: false, state: `${describe(look)}${learner}` };
      }
      const members = parseMembers(
        await talosOk(ctx, seed, sub.members(), { step: `rejoin:${node}` }),
      );
      const me = memberForNode(members, node);
      if (!me) return { done: false, state: `healthy, but "${seed}" does not list it yet` };
      if (me.learner) return { done: false, state: "a learner, waiting for promotion" };
      return { done: true, value: undefined };
    },
  });
}

/**
 * The commands rejoin runs, as bash: for the seed the journal recorded (or --seed), and only
 * the nodes not recorded as rejoined (a pasted plan must not reboot a voting member).
 */
export function rejoinPlan(ctx: Ctx): string[] {
  const recorded = ctx.opts.seed ?? readProgress(ctx.opts.out).seed;
  const c = recorded ? { ...ctx, opts: { ...ctx.opts, seed: recorded } } : ctx;
  const { seed, lines } = planSeed(c);
  const done = rejoinedNodes(readProgress(ctx.opts.out));
  const candidates = c.opts.seed ? c.opts.nodes.filter((n) => n !== seed) : c.opts.nodes;
  const skipped = candidates.filter((n) => done.has(n));
  return [
    "# Step 7: reboot the other nodes one at a time; each must be Running, HEALTH OK, and a voter",
    ...(skipped.length > 0 ? [`# already rejoined in an earlier run: ${skipped.join(", ")}`] : []),
    ...lines,
    ...candidates.filter((n) => !done.has(n)).flatMap((n) => [
      ...(c.opts.seed ? [] : [`if [ "${n}" != "$SEED" ]; then`]),
      shellLine(talosArgv(c, n, sub.reboot())),
      "sleep 30",
      untilPlan(
        serviceIsPlan(shellLine(talosArgv(c, n, sub.serviceEtcd())), "HEALTH", "OK"),
        `etcd on ${n} to be healthy`,
        c.opts.timeoutMs / 1000,
      ),
      untilPlan(
        `m=$(${shellLine(talosArgv(c, seed, sub.members()))}) && ! grep -q ' true$' <<<"$m"`,
        `${n} to be promoted (no learner left)`,
        c.opts.timeoutMs / 1000,
      ),
      ...(c.opts.seed ? [] : ["fi"]),
    ]),
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
