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

import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { printPlan } from "../lib/recovery/confirm.ts";
import {
  holdsVip,
  memberForNode,
  parseAddresses,
  parseAlarms,
  parseMembers,
  parseTable,
} from "../lib/talos/parse.ts";
import { tail } from "../lib/run/command.ts";
import { poll } from "../lib/run/poll.ts";
import { sub, talos } from "../lib/talos/talosctl.ts";
import { runCommand } from "../lib/run/command.ts";
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

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

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
      ctx.deps.stdout(
        JSON.stringify({ ok: last.every((c) => c.ok), checks: last }, null, 2) + "\n",
      );
    }
  }
  await showKubernetesNodes(ctx);
  return last;
}

async function runChecks(ctx: Ctx, on: string): Promise<Check[]> {
  const [members, alarms, vip, api] = await Promise.all([
    checkMembers(ctx, on),
    checkAlarms(ctx, on),
    checkVip(ctx),
    checkApi(ctx),
  ]);
  return [members, alarms, ...(vip ? [vip] : []), ...(api ? [api] : [])];
}

async function checkMembers(ctx: Ctx, on: string): Promise<Check> {
  const r = await talos(ctx, on, sub.members(), { step: "verify" });
  if (r.code !== 0) return { name: "members", ok: false, detail: tail(r.stderr, 1) };
  const members = parseMembers(r.stdout);
  const missing = ctx.opts.nodes.filter((n) => !memberForNode(members, n));
  const learners = members.filter((m) => m.learner).map((m) => m.hostname || m.id);
  const ok = missing.length === 0 && learners.length === 0 &&
    members.length === ctx.opts.nodes.length;
  const detail = ok ? `${members.length} voting members` : [
    missing.length ? `not a member: ${missing.join(", ")}` : "",
    learners.length ? `learners: ${learners.join(", ")}` : "",
    members.length !== ctx.opts.nodes.length
      ? `${members.length} members for ${ctx.opts.nodes.length} nodes`
      : "",
  ].filter(Boolean).join("; ");
  return { name: "members", ok, detail };
}

async function checkAlarms(ctx: Ctx, on: string): Promise<Check> {
  const r = await talos(ctx, on, sub.alarmList(), { step: "verify" });
  if (r.code !== 0) return { name: "alarms", ok: false, detail: tail(r.stderr, 1) };
  const alarms = parseAlarms(r.stdout);
  return alarms.length === 0 ? { name: "alarms", ok: true, detail: "none" } : {
    name: "alarms",
    ok: false,
    detail: alarms.map((a) => `${a.alarm} on ${a.member}`).join(", "),
  };
}

async function checkVip(ctx: Ctx): Promise<Check | undefined> {
  const vip = ctx.opts.vip;
  if (!vip) {
    ctx.log.info("no --vip: the VIP is not checked");
    return undefined;
  }
  const answers = await Promise.all(
    ctx.opts.nodes.map((n) => talos(ctx, n, sub.addresses(), { step: "verify" })),
  );
  const holders = ctx.opts.nodes.filter((_, i) =>
    answers[i].code === 0 && holdsVip(parseAddresses(answers[i].stdout), vip)
  );
  const silent = ctx.opts.nodes.filter((_, i) => answers[i].code !== 0);
  if (holders.length === 1) return { name: "vip", ok: true, detail: `${vip} is on ${holders[0]}` };
  const detail = holders.length === 0
    ? `${vip} is on no node${silent.length ? ` (no answer from ${silent.join(", ")})` : ""}`
    : `${vip} is on ${holders.length} nodes at once: ${holders.join(", ")}`;
  return { name: "vip", ok: false, detail };
}

async function checkApi(ctx: Ctx): Promise<Check | undefined> {
  const r = await kubectlNodes(ctx);
  if (r.code === 127) {
    ctx.log.info("kubectl not found: the Kubernetes API is not checked (set KUBECTL to check it)");
    return undefined;
  }
  return r.code === 0
    ? { name: "kubernetes api", ok: true, detail: `answers (${parseTable(r.stdout).length} nodes)` }
    : { name: "kubernetes api", ok: false, detail: tail(r.stderr, 1) || `kubectl exit ${r.code}` };
}

function kubectlNodes(ctx: Ctx) {
  const bin = ctx.opts.kubectl ?? "kubectl";
  return runCommand(ctx, "kubectl", [bin, "get", "nodes", "-o", "wide"], {
    step: "verify",
    allowMissing: true,
  });
}

async function showKubernetesNodes(ctx: Ctx): Promise<void> {
  const r = await kubectlNodes(ctx);
  if (r.code !== 0) return;
  ctx.log.raw(r.stdout);
  const notReady = parseTable(r.stdout).filter((row) => row.STATUS !== "Ready").map((row) =>
    row.NAME
  );
  if (notReady.length > 0) ctx.log.warn(`not Ready yet: ${notReady.join(", ")}`);
}

/** The commands verify runs, as bash. */
export function verifyPlan(ctx: Ctx): string[] {
  const on = ctx.opts.seed ?? ctx.opts.nodes[0];
  return [
    "# Step 8: verify: every node a voter, no alarm, the VIP on exactly one node, the API answers",
    talosPlan(on, sub.members()),
    `test -z "$(${talosPlan(on, sub.alarmList())})"`,
    ...(ctx.opts.vip
      ? ctx.opts.nodes.map((n) =>
        `${talosPlan(n, sub.addresses())} | grep -F ' ${ctx.opts.vip}/32 ' || true`
      )
      : []),
    "kubectl get nodes -o wide",
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
