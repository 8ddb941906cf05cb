/**
 * The rejoin's mechanics (tasks/07_rejoin.ts tells the story): the seed must run, the voters
 * at the start, one node's turn (the poll, the policy's reboot: lib/recovery/rejoin_policy.ts),
 * and the state text a failure or Ctrl-C leaves.
 */

import type { Ctx } from "../run/context.ts";
import { RefusedError, StepError } from "../run/errors.ts";
import { taskCommand } from "./main.ts";
import { describe, lookAtEtcd, SERVICE_POLL_MS, startedWithin } from "../talos/cluster.ts";
import { readProgress, rejoinedNodes } from "./resume.ts";
import { memberForNode, parseMembers } from "../talos/parse.ts";
import { tail } from "../run/command.ts";
import { formatMs, poll } from "../run/poll.ts";
import { DEFAULT_JOIN_GRACE_MS } from "../run/cli.ts";
import { decide, needsMembers, rebootAtOnce, type Turn } from "./rejoin_policy.ts";
import { commandFailure, sub, talos, talosOk } from "../talos/talosctl.ts";

/** Refuses unless etcd on `seed` is Running with HEALTH OK: rejoin may reboot every other node. */
export async function refuseUnlessSeedRuns(ctx: Ctx, seed: string): Promise<void> {
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
}

/**
 * Where the rejoin stands, for a failure or Ctrl-C: only what this run saw (the seed's etcd as
 * it was at its last check, the nodes that did rejoin), never a guess about now.
 */
export function rejoinState(
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
export function rejoinedBefore(out: string): Set<string> {
  return rejoinedNodes(readProgress(out));
}

/** What rejoin will do, for the prompt. */
export function rejoinAction(ctx: Ctx, nodes: string[]): string {
  if (ctx.opts.rollingReboot) return `reboot ${nodes.join(", ")} one at a time`;
  return `wait for ${nodes.join(", ")} to rejoin, rebooting (one at a time) only a node whose ` +
    `etcd is Failed or that has not begun to join within ${formatMs(ctx.opts.joinGraceMs)}`;
}

/** The nodes the seed lists as voters now (none when it cannot say: then none is skipped). */
export async function votersAtStart(ctx: Ctx, seed: string): Promise<Set<string>> {
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
export async function rejoinOne(
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
