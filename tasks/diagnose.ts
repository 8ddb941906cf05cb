/**
 * Diagnose — which way back? Looks at every node and, when OUT holds copies, compares them;
 * then names the least destructive procedure the evidence supports, with its reasons, and the
 * commands to run next.
 *
 * What:     on every node at once: `version`, `service etcd` (state, health, a crash loop and
 *           its reason), `etcd status` (leader, raft index, DB size and in use, errors: it
 *           answers without quorum); `etcd members` and `etcd alarm list` only of nodes that
 *           follow a leader (without one they cannot answer). With copies in OUT (extract),
 *           their histories compared. Verdict: healthy · alarm-only · nospace · replace ·
 *           rebuild · unknown (lib/triage.ts).
 * Changes:  nothing (reads OUT when it holds copies).
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 etcd status
 * Usage:    deno task diagnose --nodes A,B,C [--out DIR] [--json]
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Ctx } from "../lib/context.ts";
import type { Deps } from "../lib/deps.ts";
import { InterruptedError, RecoveryError } from "../lib/errors.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/main.ts";
import { askCluster, lookAtEtcd } from "../lib/cluster.ts";
import { MANIFEST_FILE } from "../lib/manifest.ts";
import { inspectCopies, type Inspection } from "../lib/inspect.ts";
import { type EtcdStatusRow, tail } from "../lib/parse.ts";
import { shellLine, sub, talos, talosArgv } from "../lib/talosctl.ts";
import {
  type CopiesEvidence,
  decide,
  type Decision,
  nextSteps,
  type NodeEvidence,
  type TriageInput,
} from "../lib/triage.ts";

export const task: TaskDef = {
  name: "diagnose",
  summary: "look at every node (and the copies in OUT), name the least destructive way back",
  usage: "  deno task diagnose --nodes A,B,C [--out DIR] [--json]",
  run: async (ctx) => {
    ctx.log.step(`Diagnosing etcd on ${ctx.opts.nodes.join(", ")} (read-only)`);
    const input = await gather(ctx);
    const decision = decide(input);
    const next = nextSteps(decision, {
      nodes: ctx.opts.nodes,
      talos: (node, args) => shellLine(talosArgv(ctx, node, args)),
      recover: taskCommand("recover", { ...ctx.opts, seed: undefined }),
      status: statusRows(input),
    });
    if (ctx.opts.json) {
      ctx.deps.stdout(JSON.stringify(diagnoseJson(input, decision), null, 2) + "\n");
    } else ctx.log.raw(evidenceTable(input, decision) + "\n");
    ctx.log.step(`verdict: ${decision.verdict}`);
    for (const r of decision.reasons) ctx.log.info(`- ${r}`);
    ctx.log.step("next (paste as it is):");
    ctx.log.raw(next.join("\n"));
  },
};

/** Every look, at every node at once; then the copies, when OUT holds them. */
export async function gather(ctx: Ctx): Promise<TriageInput> {
  const evidence = new Map<string, NodeEvidence>();
  const step = "diagnose";
  await Promise.all(ctx.opts.nodes.map(async (node) => {
    const [version, service] = await Promise.all([
      talos(ctx, node, sub.version(), { step }),
      lookAtEtcd(ctx, node, step).catch(errorOf),
    ]);
    const tag = /Server:[\s\S]*?Tag:\s*(\S+)/.exec(version.stdout)?.[1];
    evidence.set(node, {
      version: version.code === 0 && tag
        ? { tag }
        : { error: tail(version.stderr, 1).trim() || `exit ${version.code}` },
      service: "error" in service
        ? service
        : service.kind === "up"
        ? service.info
        : { error: service.detail },
    });
  }));
  const view = await askCluster(ctx, ctx.opts.nodes[0], step);
  for (const [node, row] of view.status) evidence.get(node)!.status = row;
  return {
    nodes: ctx.opts.nodes,
    evidence,
    members: view.members,
    alarms: view.alarms,
    copies: await copiesEvidence(ctx),
  };
}

/** The copies' comparison, or undefined when OUT holds no extraction. */
async function copiesEvidence(ctx: Ctx): Promise<CopiesEvidence | undefined> {
  if (!existsSync(join(ctx.opts.out, MANIFEST_FILE))) return undefined;
  let insp: Inspection;
  try {
    insp = await inspectCopies(ctx);
  } catch (error) {
    if (error instanceof InterruptedError) throw error;
    return { compared: [], outside: [], notCompared: errorOf(error).error };
  }
  const readable = insp.rows.filter((r) => r.status).map((r) => r.node);
  const missing = ctx.opts.nodes.filter((n) => !readable.includes(n));
  const cmp = insp.comparison;
  const notCompared = [
    missing.length > 0 ? `no usable copy of ${missing.join(", ")}` : "",
    !cmp ? "the copies could not be compared" : "",
  ].filter(Boolean).join("; ");
  return {
    compared: cmp ? readable : [],
    majority: cmp?.majority?.nodes,
    outside: cmp?.majority ? readable.filter((n) => !cmp.majority!.nodes.includes(n)) : [],
    majorityPick: cmp?.majorityPick?.node,
    notCompared: notCompared || undefined,
  };
}

function statusRows(input: TriageInput): Map<string, EtcdStatusRow> {
  const rows = new Map<string, EtcdStatusRow>();
  for (const [node, e] of input.evidence) {
    if (e.status && !("error" in e.status)) rows.set(node, e.status);
  }
  return rows;
}

/** The evidence per node, one row each. */
export function evidenceTable(input: TriageInput, d: Decision): string {
  const header = ["NODE", "TALOS", "ETCD", "MEMBER", "ROLE", "LEADER", "DB SIZE", "IN USE", "COPY"];
  const rows = d.findings.map((f) => {
    const e = input.evidence.get(f.node) ?? {};
    const ok = <T extends object>(x: T | { error: string } | undefined) =>
      x && !("error" in x) ? x : undefined;
    const service = ok(e.service);
    const row = ok(e.status);
    const copy = !input.copies
      ? "not read"
      : input.copies.outside.includes(f.node)
      ? "differs"
      : input.copies.compared.includes(f.node)
      ? "agrees"
      : "not compared";
    return [
      f.node,
      ok(e.version)?.tag ?? "down",
      service ? `${service.state}/${service.health}` : "-",
      f.memberId ?? "-",
      f.bad ? `${f.role} (bad)` : f.role,
      row?.leader ?? "-",
      row?.dbSize || "-",
      row?.inUse || "-",
      copy,
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  return [header, ...rows].map((cells) =>
    cells.map((c, i) => c.padEnd(widths[i])).join("   ").trimEnd()
  ).join("\n");
}

/** `--json`: the verdict, and per node the evidence it used. */
export function diagnoseJson(input: TriageInput, d: Decision) {
  return {
    verdict: d.verdict,
    replace: d.replace,
    seed: d.seed,
    reasons: d.reasons,
    leader: d.leader ?? null,
    alarms: d.alarms,
    copies: input.copies ?? null,
    nodes: d.findings.map((f) => {
      const e = input.evidence.get(f.node) ?? {};
      const service = e.service && !("error" in e.service)
        ? { state: e.service.state, health: e.service.health, events: e.service.events.slice(0, 5) }
        : e.service ?? null;
      return {
        ...f,
        bad: f.bad ?? null,
        version: e.version ?? null,
        service,
        status: e.status ?? null,
      };
    }),
  };
}

function errorOf(error: unknown): { error: string } {
  if (error instanceof InterruptedError) throw error;
  return {
    error: error instanceof RecoveryError || error instanceof Error ? error.message : String(error),
  };
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
