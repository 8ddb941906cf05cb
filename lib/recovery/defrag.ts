/**
 * NOSPACE: the backend of a member went over its quota and etcd refuses every write
 * cluster-wide until each member is defragmented (one at a time: defrag is not replicated and
 * blocks that member meanwhile) and the alarm is disarmed. No node is reset or rebooted and no
 * write is lost. When the live data itself (IN USE) fills the quota, defrag cannot free it: the
 * quota has to be raised in the machine config.
 */

import type { Decision } from "./triage.ts";
import { type Ctx, SKIPPED, step } from "../run/context.ts";
import { describe, lookAtEtcd, SERVICE_POLL_MS } from "../talos/cluster.ts";
import { readProgress } from "./resume.ts";
import { parseEtcdStatus } from "../talos/parse.ts";
import { poll } from "../run/poll.ts";
import { commandFailure, sub, talos, talosOk } from "../talos/talosctl.ts";
import { etcdIsPlan, talosPlan, waitForPlan } from "../talos/plan.ts";
import { decide, quotaAdvice, quotaFull } from "./triage.ts";
import { RefusedError, StepError } from "../run/errors.ts";
import { taskCommand } from "./main.ts";
import { confirm, printPlan } from "./confirm.ts";
import { clearAlarms } from "./replace.ts";
import { gather } from "./evidence.ts";

export const DEFRAG = ["etcd", "defrag"];

/** Defragments `node` (unless this OUT's journal did already) and waits until it is healthy. */
export function defragOne(ctx: Ctx, node: string) {
  const name = `defrag:${node}`;
  return step(ctx, name, `Defragmenting etcd on ${node}`, async () => {
    if (readProgress(ctx.opts.out).done.has(name)) {
      ctx.log.ok(`${node}: defragmented in an earlier run`);
      return SKIPPED;
    }
    // defrag blocks until etcd has rewritten its whole db: the wait's deadline, not a call's
    const r = await talos(ctx, node, DEFRAG, {
      step: name,
      mutating: true,
      timeoutMs: ctx.opts.timeoutMs,
    });
    if (r.code !== 0) throw commandFailure(ctx, node, DEFRAG, r);
    // a defrag longer than Talos' 15 s health timeout shows HEALTH Fail for a while
    await poll(ctx, {
      what: `etcd on "${node}" to be healthy again after its defrag`,
      intervalMs: SERVICE_POLL_MS,
      timeoutMs: ctx.opts.timeoutMs,
      check: async () => {
        const look = await lookAtEtcd(ctx, node, name);
        const ok = look.kind === "up" && look.info.state === "Running" && look.info.health === "OK";
        return ok ? { done: true, value: undefined } : { done: false, state: describe(look) };
      },
    });
    return undefined;
  });
}

/**
 * After the defrags: DB SIZE against IN USE and the quota on every member. Returns the warning
 * lines (empty when defrag freed enough).
 */
export async function quotaCheck(ctx: Ctx, nodes: string[]): Promise<string[]> {
  const full: string[] = [];
  for (const node of nodes) {
    const rows = parseEtcdStatus(await talosOk(ctx, node, ["etcd", "status"], { step: "defrag" }));
    const row = rows.find((r) => r.node === node) ?? rows[0];
    if (!row) continue;
    ctx.log.info(`${node}: DB SIZE ${row.dbSize}, IN USE ${row.inUse}`);
    if (quotaFull(row.inUse)) full.push(node);
  }
  return quotaAdvice(full);
}

/** The defrag procedure, as bash. */
export function defragPlan(ctx: Ctx, order: string[], leader: string): string[] {
  const seconds = ctx.opts.timeoutMs / 1000;
  return [
    `# NOSPACE: defragment each member one at a time, the leader (${leader}) last; then disarm`,
    ...order.flatMap((n) => [
      talosPlan(n, DEFRAG),
      waitForPlan(`etcd on ${n} to be healthy`, seconds, etcdIsPlan(n, "HEALTH", "OK")),
    ]),
    talosPlan(leader, sub.alarmDisarm()),
    `test -z "$(${talosPlan(leader, sub.alarmList())})"`,
    "# then compare DB SIZE with IN USE (near the 2 GiB quota: raise quota-backend-bytes)",
    ...order.map((n) => talosPlan(n, ["etcd", "status"])),
  ];
}

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
