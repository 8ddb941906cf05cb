/**
 * Step 1 — extract: copy the raw etcd db off every control-plane node.
 *
 * What:     every node at once, `talosctl -e N -n N cp /var/lib/etcd/member/snap/db DIR`.
 *           `cp` always writes into a directory: the file lands at DIR/db. It is copied into
 *           OUT/db.N.partial and renamed to OUT/db.N only once complete, so OUT/db.N/db is
 *           always a whole copy. Size and sha256 go to OUT/manifest.json.
 * Changes:  nothing on the cluster. Writes OUT (folders 0700, files 0600: the db holds every
 *           Kubernetes Secret).
 * Re-run:   a copy already in the manifest is checked (sha256) and kept; an earlier copy is
 *           never overwritten. A node that fails is reported; the others are still copied.
 * Raw:      talosctl -e 192.168.53.10 -n 192.168.53.10 cp /var/lib/etcd/member/snap/db ./etcd-recovery/db.192.168.53.10
 * Usage:    deno task extract --nodes 192.168.53.10,192.168.53.11,192.168.53.12 [--out DIR]
 */

import { join } from "node:path";
import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { ensurePrivateDir } from "../lib/run/journal.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { copyDir, type Manifest, readManifest, writeManifest } from "../lib/recovery/manifest.ts";
import { shellLine } from "../lib/run/command.ts";
import { copyDbPlan, parallelPlan } from "../lib/talos/plan.ts";
import { printPlan } from "../lib/recovery/confirm.ts";
import { type Extraction, extractOne, failUnlessComplete } from "../lib/recovery/extract.ts";

export const task: TaskDef = {
  name: "extract",
  summary: "copy the raw etcd db off every control-plane node into OUT (changes nothing)",
  usage: "  deno task extract --nodes A,B,C [--out DIR] [--talosconfig PATH] [--dry-run]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, extractPlan(ctx));
    const extraction = await step(
      ctx,
      "extract",
      `Extracting etcd db from ${ctx.opts.nodes.length} nodes into ${ctx.opts.out}`,
      () => extract(ctx),
    );
    failUnlessComplete(ctx, extraction);
  },
};

/** Copies every node's db (skipping intact earlier copies) and reads each new copy back. */
export async function extract(ctx: Ctx): Promise<Extraction> {
  const { out, nodes } = ctx.opts;
  ensurePrivateDir(out);
  const manifest: Manifest = readManifest(out) ??
    { version: 1, nodes, copies: {}, failures: {} };
  manifest.nodes = [...new Set([...manifest.nodes, ...nodes])];
  const extraction = { manifest, damaged: {} };
  await Promise.all(nodes.map((node) => extractOne(ctx, extraction, node)));
  writeManifest(out, manifest);
  return extraction;
}

/** The commands extract runs, as bash. */
export function extractPlan(ctx: Ctx): string[] {
  return [
    `# Step 1: copy the raw etcd db of every node (cp writes DIR/db)`,
    `mkdir -p ${shellLine([ctx.opts.out])} && chmod 700 ${shellLine([ctx.opts.out])}`,
    ...parallelPlan(ctx.opts.nodes.map((n) => copyDbPlan(n, join(ctx.opts.out, copyDir(n))))),
    `chmod 600 ${shellLine([ctx.opts.out])}/db.*/db`,
  ];
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
