/**
 * Replacing one bad member while a quorum of healthy members keeps etcd (and the Kubernetes
 * API) up: `etcd remove-member <hex id>` on a healthy node, a reset of only the bad node (its
 * etcd comes back empty and Talos adds it again as a learner, which etcd promotes once it has
 * caught up), then a wait until it votes. The healthy nodes are never reset, rebooted or
 * bootstrapped; no write is lost (the majority holds every one).
 */

import { type Ctx, SKIPPED, step } from "../run/context.ts";
import { RefusedError, StepError } from "../run/errors.ts";
import { describe, lookAtEtcd, SERVICE_POLL_MS, startedWithin } from "../talos/cluster.ts";
import { Journal } from "../run/journal.ts";
import { isLearnerRpc, memberForNode, parseAlarms, parseMembers } from "../talos/parse.ts";
import { pause, poll } from "../run/poll.ts";
import { commandFailure, sub, talos, talosOk } from "../talos/talosctl.ts";
import { talosPlan, waitForPlan } from "../talos/plan.ts";
import { confirm, printPlan } from "./confirm.ts";
import { decide } from "./triage.ts";
import type { Decision } from "./triage.ts";
import { taskCommand } from "./main.ts";
import { gather } from "./evidence.ts";

/** The reset of a bad member: only EPHEMERAL (its etcd), at once, no graceful leave. */
export const REPLACE_RESET = sub.reset(["EPHEMERAL"]);

/** `etcd remove-member ID` (hex, as `etcd members` prints it; Talos v1.13 takes no other form). */
export const removeMember = (id: string) => ["etcd", "remove-member", id];

/** When this OUT's journal saw the reset of `node` accepted by `replace` (ms), if it did. */
export function replaceResetAt(out: string, node: string): number | undefined {
  let at: number | undefined;
  for (const e of Journal.readAll(out)) {
    if (
      e.type === "call" && e.step === `replace:${node}` && e.node === node && e.mutating &&
      / reset( |$)/.test(e.command) && e.exitCode === 0
    ) at = Date.parse(e.ts);
  }
  return at;
}

/**
 * Replaces `node` (member `id`), asking `via` (a healthy voter) to remove it and to list the
 * members while it rejoins. A reset already accepted in this OUT (an interrupted run) is not
 * sent again: the node is waited for.
 */
export function replaceOne(ctx: Ctx, via: string, node: string, id: string | undefined) {
  const name = `replace:${node}`;
  return step(ctx, name, `Replacing ${node} (asking ${via})`, async () => {
    const earlier = replaceResetAt(ctx.opts.out, node);
    let sentAt = earlier;
    if (earlier === undefined) {
      if (id) await remove(ctx, via, id, name);
      else ctx.log.info(`${node}: no member listed for it: nothing to remove`);
      // with the bad member gone, an alarm it caused is cleared now: the others accept writes
      // again while it rejoins (an alarm survives the removal of its member)
      await clearAlarms(ctx, via);
      const r = await talos(ctx, node, REPLACE_RESET, { step: name, mutating: true });
      if (r.code !== 0) throw commandFailure(ctx, node, REPLACE_RESET, r);
      sentAt = ctx.deps.now();
      ctx.clusterState = `${node} is being reset (its member removed); the others run etcd`;
    } else {
      ctx.log.info(
        `${node}: its reset was accepted at ${new Date(earlier).toISOString()}: waiting`,
      );
    }
    await awaitVoter(ctx, via, node, sentAt!);
    ctx.clusterState = `${node} replaced: a voting member again`;
    return earlier === undefined ? undefined : SKIPPED;
  });
}

/** `remove-member`; NotFound (removed already, by an earlier run or by Talos) counts as done. */
async function remove(ctx: Ctx, via: string, id: string, name: string): Promise<void> {
  const args = removeMember(id);
  const r = await talos(ctx, via, args, { step: name, mutating: true });
  if (r.code === 0) return;
  if (/code = NotFound|member not found/.test(r.stderr)) {
    ctx.log.info(`member ${id} is not listed any more: already removed`);
    return;
  }
  throw commandFailure(
    ctx,
    via,
    args,
    r,
    /unhealthy cluster|re-configuration failed/.test(r.stderr)
      ? "etcd refuses: removing this member would break the active quorum; run diagnose again"
      : undefined,
  );
}

/**
 * Until `node`'s etcd (restarted since `sinceMs`) runs with HEALTH OK and `via` lists it as a
 * voter. A learner and an unstarted member (no name yet) are expected on the way.
 */
export async function awaitVoter(ctx: Ctx, via: string, node: string, sinceMs: number) {
  const name = `replace:${node}`;
  let wentDown = false;
  await poll(ctx, {
    what: `"${node}" to come back as a healthy voting member`,
    intervalMs: SERVICE_POLL_MS,
    timeoutMs: ctx.opts.timeoutMs,
    check: async () => {
      const look = await lookAtEtcd(ctx, node, name);
      if (look.kind === "down") {
        wentDown = true;
        return { done: false, state: describe(look) };
      }
      if (!wentDown && !startedWithin(look.info, ctx.deps.now() - sinceMs)) {
        return { done: false, state: `${describe(look)} (not restarted since its reset yet)` };
      }
      if (look.info.state === "Failed") {
        throw new StepError(`etcd on "${node}" failed after its reset: ${describe(look)}`, {
          hint: `look at talosctl -n ${node} logs etcd; run diagnose again`,
        });
      }
      const learnerRpc = isLearnerRpc(look.info.lastHealthMessage ?? "");
      if (look.info.state !== "Running" || (look.info.health !== "OK" && !learnerRpc)) {
        return { done: false, state: describe(look) };
      }
      const members = parseMembers(await talosOk(ctx, via, sub.members(), { step: name }));
      const me = memberForNode(members, node);
      if (!me) return { done: false, state: `running; "${via}" does not list it yet` };
      if (me.learner || learnerRpc) return { done: false, state: "a learner, catching up" };
      return { done: true, value: undefined };
    },
  });
}

/** Disarms every alarm on `via` and checks the list is empty after. */
export async function clearAlarms(ctx: Ctx, via: string): Promise<void> {
  const before = parseAlarms(await talosOk(ctx, via, sub.alarmList(), { step: "disarm" }));
  if (before.length === 0) return ctx.log.ok(`${via}: no alarm listed`);
  await disarmListed(
    ctx,
    via,
    "an alarm raised again means a member is still bad: run diagnose again",
  );
  ctx.log.ok(`${via}: ${before.map((a) => a.alarm).join(", ")} disarmed; the list is empty`);
}

/**
 * `etcd alarm disarm` on `via`, then its alarm list must be empty: a step checks its result
 * (`hint` says what to do when an alarm is still listed). Shared by every procedure's disarm.
 */
export async function disarmListed(ctx: Ctx, via: string, hint: string): Promise<void> {
  await talosOk(ctx, via, sub.alarmDisarm(), { step: "disarm", mutating: true });
  const after = parseAlarms(await talosOk(ctx, via, sub.alarmList(), { step: "disarm" }));
  if (after.length > 0) {
    throw new StepError(
      `Alarms still listed after disarm: ${
        after.map((a) => `${a.alarm} on ${a.member}`).join(", ")
      }`,
      { hint },
    );
  }
}

/** The commands of a replacement, as bash. */
export function replacePlan(
  ctx: Ctx,
  via: string,
  bad: { node: string; memberId?: string }[],
  alarms: boolean,
): string[] {
  const seconds = ctx.opts.timeoutMs / 1000;
  return [
    `# Replace ${
      bad.map((b) => b.node).join(", ")
    }, one at a time; ${via} and the others keep etcd up`,
    ...bad.flatMap((b) => [
      ...(b.memberId ? [talosPlan(via, removeMember(b.memberId))] : []),
      ...(alarms ? [talosPlan(via, sub.alarmDisarm()), "# (writes work again from here)"] : []),
      talosPlan(b.node, REPLACE_RESET),
      `# it comes back with an empty etcd, joins as a learner and is promoted by etcd itself`,
      waitForPlan(`${b.node} to vote`, seconds, `voter ${via} ${b.node}`),
    ]),
    ...(alarms
      ? [
        "# an alarm survives the removal of its member: clear it, the list must then be empty",
        talosPlan(via, sub.alarmDisarm()),
        `test -z "$(${talosPlan(via, sub.alarmList())})"`,
      ]
      : []),
  ];
}

/** How long after a disarm the alarm list is read again (the leader checks hashes each minute). */
export const ALARM_RECHECK_MS = 15_000;

/**
 * alarm-only: CORRUPT with quorum, every copy agreeing and no member shown bad. Disarms on the
 * leader, looks again after a short wait, and says that the alarm may return at the next
 * compaction check, and what to do then. Nothing is reset.
 */
export async function alarmOnly(ctx: Ctx, d: Decision): Promise<void> {
  const healthy = d.findings.filter((f) => f.role === "running voter" && !f.bad);
  const via = healthy.find((f) => f.memberId === d.leader)?.node ?? healthy[0]?.node;
  if (d.verdict !== "alarm-only" || !via) {
    throw new StepError(`The verdict is ${d.verdict}, not alarm-only`, {
      hint: "run deno task diagnose again",
    });
  }
  const plan = () => [
    "# alarm-only: every copy agrees and no member is bad: clear the alarm, look again",
    talosPlan(via, sub.alarmDisarm()),
    `sleep ${ALARM_RECHECK_MS / 1000}`,
    `test -z "$(${talosPlan(via, sub.alarmList())})"`,
  ];
  if (ctx.opts.dryRun) return printPlan(ctx, plan());
  await confirm(ctx, `disarm the alarm on ${via} (${d.reasons.at(-1)}); nothing is reset`, plan);
  await step(ctx, "disarm", `Clearing the alarm on ${via}`, () => clearAlarms(ctx, via));
  await step(
    ctx,
    "verify",
    `Looking at the alarms again in ${ALARM_RECHECK_MS / 1000}s`,
    async () => {
      await pause(ctx, ALARM_RECHECK_MS);
      const again = parseAlarms(await talosOk(ctx, via, sub.alarmList(), { step: "verify" }));
      if (again.length > 0) {
        throw new StepError(
          `The alarm is back on ${via}: ${
            again.map((a) => `${a.alarm} (member ${a.member})`).join(", ")
          }`,
          {
            hint: "a member is bad after all: take fresh copies into a new --out " +
              `(deno task extract --nodes ${
                ctx.opts.nodes.join(",")
              } --out NEW) and diagnose again`,
          },
        );
      }
      ctx.log.ok(`${via}: no alarm ${ALARM_RECHECK_MS / 1000}s after the disarm`);
    },
  );
  ctx.log.info(
    "the leader checks the members' hashes every minute: if CORRUPT comes back, a member is bad " +
      "after all; take fresh copies and run diagnose again",
  );
  ctx.clusterState = `the alarm is disarmed on ${via}; no node was reset`;
}

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
