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
import { RefusedError, StepError } from "../lib/run/errors.ts";
import { planSeed, seedOf } from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { confirm, printPlan } from "../lib/recovery/confirm.ts";
import { describe, lookAtEtcd, SERVICE_POLL_MS, startedWithin } from "../lib/talos/cluster.ts";
import { readProgress, rejoinedNodes } from "../lib/recovery/resume.ts";
import { memberForNode, parseMembers } from "../lib/talos/parse.ts";
import { tail } from "../lib/run/command.ts";
import { formatMs, poll } from "../lib/run/poll.ts";
import { DEFAULT_JOIN_GRACE_MS } from "../lib/run/cli.ts";
import { decide, needsMembers, rebootAtOnce, type Turn } from "../lib/recovery/rejoin_policy.ts";
import { commandFailure, sub, talos, talosOk } from "../lib/talos/talosctl.ts";
import {
  etcdIsPlan,
  joiningPlan,
  noLearnerPlan,
  talosPlan,
  waitForPlan,
} from "../lib/talos/plan.ts";

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
  const look = await lookAtEtcd(ctx, seed, "rejoin");
  if (look.kind !== "up" || look.info.state !== "Running" || look.info.health !== "OK") {
    throw new RefusedError(
      `etcd on the seed "${seed}" is ${
        describe(look)
      }: rejoin may reboot every other node, so the seed must be the node whose etcd runs`,
      {
        hint:
          "check --seed (the node that was bootstrapped), or wait until its etcd is Running with HEALTH OK",
      },
    );
  }
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

/** Nodes recorded as rejoined in OUT/journal.jsonl. */
function rejoinedBefore(out: string): Set<string> {
  return rejoinedNodes(readProgress(out));
}

/** What rejoin will do, for the prompt. */
function rejoinAction(ctx: Ctx, nodes: string[]): string {
  if (ctx.opts.rollingReboot) return `reboot ${nodes.join(", ")} one at a time`;
  return `wait for ${nodes.join(", ")} to rejoin, rebooting (one at a time) only a node whose ` +
    `etcd is Failed or that has not begun to join within ${formatMs(ctx.opts.joinGraceMs)}`;
}

/** The nodes the seed lists as voters now (none when it cannot say: then none is skipped). */
async function votersAtStart(ctx: Ctx, seed: string): Promise<Set<string>> {
  const r = await talos(ctx, seed, sub.members(), { step: "rejoin" });
  if (r.code !== 0) {
    ctx.log.warn(`"${seed}" did not list its members (${tail(r.stderr, 1)}): no node is skipped`);
    return new Set();
  }
  const members = parseMembers(r.stdout);
  return new Set(ctx.opts.nodes.filter((n) => memberForNode(members, n)?.learner === false));
}

/**
 * Waits until `node` is Running, HEALTH OK and a voter on the seed; reboots it (once) when
 * the policy says so (lib/recovery/rejoin_policy.ts). `clock` carries the grace clock between nodes.
 */
async function rejoinOne(
  ctx: Ctx,
  o: {
    seed: string;
    node: string;
    voterAtStart: boolean;
    clock: { quietSince?: number };
    earlier: Map<string, string>;
  },
  rebooted: () => void,
): Promise<void> {
  const { seed, node, clock } = o;
  ctx.continueWith = taskCommand("rejoin", ctx.opts, [
    "--seed",
    seed,
    "--yes",
    ...rejoinFlags(ctx),
  ]);
  const turn: Turn = {
    node,
    seed,
    graceMs: ctx.opts.joinGraceMs,
    rolling: ctx.opts.rollingReboot,
    voterAtStart: o.voterAtStart,
  };
  let backFromReboot = false;
  const earlier = o.earlier.get(node);
  if (earlier !== undefined && !o.voterAtStart) {
    // judged by its etcd's start time against when that reboot was accepted
    const look = await lookAtEtcd(ctx, node, `rejoin:${node}`);
    const since = ctx.deps.now() - Date.parse(earlier);
    if (look.kind === "up" && !startedWithin(look.info, since)) {
      ctx.log.info(
        `${node}: its reboot was accepted at ${earlier}, but its etcd has not restarted since: ` +
          `the reboot did not take`,
      );
    } else {
      Object.assign(turn, { rebootedAt: Date.parse(earlier), rebootedWhy: "by an earlier run" });
      backFromReboot = true;
      ctx.log.info(
        `${node}: its reboot was accepted at ${earlier}; ${
          look.kind === "down" ? "on its way back" : "back since"
        }: waited for, not rebooted again`,
      );
    }
  }
  const reboot = async (why: string) => {
    ctx.log.info(`${node}: rebooting: ${why}`);
    const sentAt = ctx.deps.now();
    const r = await talos(ctx, node, sub.reboot(), { step: `rejoin:${node}`, mutating: true });
    if (r.code !== 0) throw commandFailure(ctx, node, sub.reboot(), r);
    Object.assign(turn, { rebootedAt: sentAt, rebootedWhy: why });
    clock.quietSince = undefined; // its own join starts the clock again
    rebooted();
  };
  const atOnce = rebootAtOnce(turn);
  if (atOnce) await reboot(atOnce);
  const why = await poll(ctx, {
    what: `"${node}" to rejoin as a healthy voting member`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const service = await lookAtEtcd(ctx, node, `rejoin:${node}`);
      if (turn.rebootedAt !== undefined && service.kind === "down") backFromReboot = true;
      if (
        turn.rebootedAt !== undefined && service.kind === "up" &&
        startedWithin(service.info, ctx.deps.now() - turn.rebootedAt)
      ) backFromReboot = true; // came back since that reboot, without being seen down
      const members = needsMembers(turn, service)
        ? parseMembers(await talosOk(ctx, seed, sub.members(), { step: `rejoin:${node}` }))
        : undefined;
      const now = ctx.deps.now();
      const { action, quietSince } = decide(turn, {
        now,
        quietSince: clock.quietSince,
        service,
        members,
        backFromReboot,
      });
      clock.quietSince = quietSince;
      if (action.kind === "done") return { done: true, value: action.why };
      if (action.kind === "fail") throw new StepError(action.error, { hint: action.hint });
      if (action.kind === "wait") return { done: false, state: action.state };
      await reboot(action.why);
      return { done: false, state: `rebooted: ${action.why}` };
    },
  });
  ctx.log.ok(`${node}: ${why}`);
  // a voter (by itself, after a reboot, or already one) is rejoined: the journal says so
  return undefined;
}

/** The rejoin flags a command to continue must repeat. */
function rejoinFlags(ctx: Ctx): string[] {
  return [
    ...(ctx.opts.rollingReboot ? ["--rolling-reboot"] : []),
    ...(ctx.opts.joinGraceMs !== DEFAULT_JOIN_GRACE_MS
      ? ["--join-grace", `${ctx.opts.joinGraceMs / 1000}s`]
      : []),
  ];
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
