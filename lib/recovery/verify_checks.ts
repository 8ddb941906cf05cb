/**
 * Verify's checks (tasks/08_verify.ts tells the story): every node a voting member, no alarm,
 * the VIP on exactly one node, the Kubernetes API answering; each a pure reading of one answer.
 */

import { lookAtEtcd } from "../talos/cluster.ts";
import type { Ctx } from "../run/context.ts";
import {
  holdsVip,
  memberForNode,
  parseAddresses,
  parseAlarms,
  parseMembers,
  parseTable,
} from "../talos/parse.ts";
import { runCommand, tail } from "../run/command.ts";
import { sub, talos } from "../talos/talosctl.ts";

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** What the check saw of each node, for `--json`. */
  facts?: Record<string, NodeFacts>;
}

/** One node as verify saw it. */
export interface NodeFacts {
  /** Its member ID (hex), as the asked node lists it. */
  memberId?: string;
  /** `voter`, `learner`, or `not a member`. */
  role?: string;
  /** Holds the VIP (null: its addresses could not be read). */
  holdsVip?: boolean | null;
}

/** Runs every check once, at once. */
export async function runChecks(ctx: Ctx, on: string): Promise<Check[]> {
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
  const facts: Record<string, NodeFacts> = {};
  for (const n of ctx.opts.nodes) {
    const m = memberForNode(members, n);
    facts[n] = m
      ? { memberId: m.id, role: m.learner ? "learner" : "voter" }
      : { role: "not a member" };
  }
  const detail = ok ? `${members.length} voting members` : [
    missing.length ? `not a member: ${missing.join(", ")}` : "",
    learners.length ? `learners: ${learners.join(", ")}` : "",
    members.length !== ctx.opts.nodes.length
      ? `${members.length} members for ${ctx.opts.nodes.length} nodes`
      : "",
  ].filter(Boolean).join("; ");
  return { name: "members", ok, detail, facts };
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
  const facts: Record<string, NodeFacts> = Object.fromEntries(
    ctx.opts.nodes.map((n) => [n, { holdsVip: silent.includes(n) ? null : holders.includes(n) }]),
  );
  if (holders.length === 1) {
    return { name: "vip", ok: true, detail: `${vip} is on ${holders[0]}`, facts };
  }
  const detail = holders.length === 0
    ? `${vip} is on no node${silent.length ? ` (no answer from ${silent.join(", ")})` : ""}`
    : `${vip} is on ${holders.length} nodes at once: ${holders.join(", ")}`;
  return { name: "vip", ok: false, detail, facts };
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

/** Prints `kubectl get nodes` and warns about nodes not Ready (never fails). */
export async function showKubernetesNodes(ctx: Ctx): Promise<void> {
  const r = await kubectlNodes(ctx);
  if (r.code !== 0) return;
  ctx.log.raw(r.stdout);
  const notReady = parseTable(r.stdout).filter((row) => row.STATUS !== "Ready").map((row) =>
    row.NAME
  );
  if (notReady.length > 0) ctx.log.warn(`not Ready yet: ${notReady.join(", ")}`);
}

/**
 * `--json`'s per-node facts: what the checks saw (member ID, voter or learner, the VIP) and the
 * node's etcd service (state, health), looked at once more for this.
 */
export async function nodeFacts(ctx: Ctx, checks: Check[]) {
  const looks = await Promise.all(
    ctx.opts.nodes.map((n) =>
      lookAtEtcd(ctx, n, "verify").catch((e: Error) => ({ error: e.message }))
    ),
  );
  return ctx.opts.nodes.map((node, i) => {
    const seen = Object.assign({}, ...checks.map((c) => c.facts?.[node] ?? {})) as NodeFacts;
    const look = looks[i];
    const etcd = "error" in look
      ? { error: look.error }
      : look.kind === "down"
      ? { state: "down", detail: look.detail }
      : { state: look.info.state, health: look.info.health };
    return {
      node,
      memberId: seen.memberId ?? null,
      role: seen.role ?? null,
      etcd,
      holdsVip: seen.holdsVip ?? null,
    };
  });
}
