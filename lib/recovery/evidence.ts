/**
 * The evidence of a triage: every node looked at once (`version`, `service etcd`, `etcd
 * status`; members and alarms only of nodes that follow a leader), and the copies in OUT
 * compared when it holds an extraction. The decision itself is `decide` (triage.ts).
 */

import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Ctx } from "../run/context.ts";
import { InterruptedError } from "../run/errors.ts";
import { askCluster, type ClusterView, lookAtEtcd } from "../talos/cluster.ts";
import type { NodeLooks } from "../talos/preflight.ts";
import { MANIFEST_FILE } from "./manifest.ts";
import { inspectCopies, type Inspection } from "./inspect.ts";
import { type EtcdStatusRow } from "../talos/parse.ts";
import { tail } from "../run/command.ts";
import { sub, talos } from "../talos/talosctl.ts";
import type { CopiesEvidence, NodeEvidence, TriageInput } from "./triage.ts";

/** Every look, at every node at once; then the copies, when OUT holds them. */
export async function gather(
  ctx: Ctx,
  /**
   * Read the copies in OUT too. @default true; false after a fix: copies taken before it say
   * nothing of the cluster as it is now. `trustCopies`: a copy whose file is unchanged since
   * its sha256 was taken is not hashed again (`inspectCopies`); only for `diagnose`, which
   * changes nothing: replace and defrag act on what the copies say, so they hash.
   */
  options: { copies?: boolean; trustCopies?: boolean } = {},
): Promise<TriageInput> {
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
    copies: options.copies === false
      ? undefined
      : await copiesEvidence(ctx, options.trustCopies === true),
  };
}

/** The copies' comparison, or undefined when OUT holds no extraction. */
async function copiesEvidence(
  ctx: Ctx,
  trustUnchanged: boolean,
): Promise<CopiesEvidence | undefined> {
  if (!existsSync(join(ctx.opts.out, MANIFEST_FILE))) return undefined;
  try {
    return copiesOf(await inspectCopies(ctx, { trustUnchanged }), ctx.opts.nodes);
  } catch (error) {
    if (error instanceof InterruptedError) throw error;
    return { compared: [], outside: [], notCompared: errorOf(error).error };
  }
}

/** What the triage needs of an inspection of the copies. */
export function copiesOf(insp: Inspection, nodes: string[]): CopiesEvidence {
  const cmp = insp.comparison;
  const readable = insp.rows.filter((r) => r.status).map((r) => r.node);
  const missing = nodes.filter((n) => !readable.includes(n));
  const left = cmp.notCompared.map((n) => n.node);
  const notCompared = [
    missing.length > 0 ? `no usable copy of ${missing.join(", ")}` : "",
    cmp.unavailable ?? "",
    cmp.notCompared.map((n) => `${n.node}: ${n.reason}`).join("; "),
  ].filter(Boolean).join("; ");
  return {
    compared: cmp.unavailable ? [] : readable.filter((n) => !left.includes(n)),
    majority: cmp.majority?.nodes,
    outside: cmp.majority ? cmp.outside : [],
    majorityPick: cmp.majorityPick?.node,
    notCompared: notCompared || undefined,
  };
}

/**
 * The triage of `recover`, from what it has looked at already: pre-flight's `version` and
 * `service etcd` of each node, the copies it extracted (`insp`), and the cluster's answers
 * before the wipe (`view`). No call is made twice.
 */
export function triageInput(
  nodes: string[],
  looks: NodeLooks,
  insp: Inspection,
  view: ClusterView,
): TriageInput {
  const evidence = new Map<string, NodeEvidence>(nodes.map((n) => {
    const l = looks.get(n);
    return [n, { version: l?.version, service: l?.service, status: view.status.get(n) }];
  }));
  return {
    nodes,
    evidence,
    members: view.members,
    alarms: view.alarms,
    copies: copiesOf(insp, nodes),
  };
}

export function statusRows(input: TriageInput): Map<string, EtcdStatusRow> {
  const rows = new Map<string, EtcdStatusRow>();
  for (const [node, e] of input.evidence) {
    if (e.status && !("error" in e.status)) rows.set(node, e.status);
  }
  return rows;
}

function errorOf(error: unknown): { error: string } {
  if (error instanceof InterruptedError) throw error;
  return { error: error instanceof Error ? error.message : String(error) };
}
