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
 *           rebuild · unknown (lib/recovery/triage.ts).
 * Changes:  nothing (reads OUT when it holds copies).
 * Raw:      talosctl -e 192.168.53.11 -n 192.168.53.11 etcd status
 * Usage:    deno task diagnose --nodes A,B,C [--out DIR] [--json]
 */

import type { Deps } from "../lib/run/deps.ts";
import { mainEntry, runTask, taskCommand, type TaskDef } from "../lib/recovery/main.ts";
import { gather, statusRows } from "../lib/recovery/evidence.ts";
import { talosArgv } from "../lib/talos/talosctl.ts";
import { shellLine } from "../lib/run/command.ts";
import { decide, type Decision, nextSteps, type TriageInput } from "../lib/recovery/triage.ts";

export const task: TaskDef = {
  name: "diagnose",
  summary: "look at every node (and the copies in OUT), name the least destructive way back",
  usage: "  deno task diagnose --nodes A,B,C [--out DIR] [--json] [--rehash]",
  parse: { rehash: true },
  run: async (ctx) => {
    ctx.log.step(`Diagnosing etcd on ${ctx.opts.nodes.join(", ")} (read-only)`);
    const input = await gather(ctx, { trustCopies: true });
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

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
