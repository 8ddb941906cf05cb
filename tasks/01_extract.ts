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

import { chmodSync, existsSync, renameSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { type Ctx, step } from "../lib/context.ts";
import type { Deps } from "../lib/deps.ts";
import { StepError } from "../lib/errors.ts";
import { EtcdDbError, summarize } from "../lib/etcd_db.ts";
import { humanizeBytes } from "../lib/humanize.ts";
import { ensurePrivateDir } from "../lib/journal.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/main.ts";
import {
  copyDir,
  copyFile,
  type Manifest,
  readManifest,
  sha256File,
  verifyCopy,
  writeManifest,
} from "../lib/manifest.ts";
import { formatMs } from "../lib/poll.ts";
import { tail } from "../lib/parse.ts";
import {
  COPY_TIMEOUT_MS,
  parallelPlan,
  shellLine,
  sub,
  talos,
  talosArgv,
} from "../lib/talosctl.ts";
import { printPlan } from "../lib/confirm.ts";

export const task: TaskDef = {
  name: "extract",
  summary: "copy the raw etcd db off every control-plane node into OUT (changes nothing)",
  usage: "  deno task extract --nodes A,B,C [--out DIR] [--talosconfig PATH] [--dry-run]",
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, extractPlan(ctx));
    const { manifest, damaged } = await step(
      ctx,
      "extract",
      `Extracting etcd db from ${ctx.opts.nodes.length} nodes into ${ctx.opts.out}`,
      () => extract(ctx),
    );
    const failed = Object.keys(manifest.failures);
    if (failed.length > 0) {
      throw new StepError(
        `Copied ${ctx.opts.nodes.length - failed.length} of ${ctx.opts.nodes.length} nodes; ` +
          `no copy from ${failed.map((n) => `"${n}"`).join(", ")}`,
        { hint: "fix the node's reachability and run extract again (done copies are kept)" },
      );
    }
    const torn = Object.keys(damaged);
    if (torn.length > 0) {
      throw new StepError(
        `Copied every node, but the copy from ${
          torn.map((n) => `"${n}"`).join(", ")
        } is not a readable etcd db (see above)`,
        {
          hint: `that node's own db may be damaged: deno task status shows what each copy holds; ` +
            `wipe and recover refuse without --force while a node has no usable copy`,
        },
      );
    }
  },
};

export interface Extraction {
  manifest: Manifest;
  /** Copies made (and recorded) that the native reader refuses, with why. */
  damaged: Record<string, string>;
}

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
    ...parallelPlan(ctx.opts.nodes.map((node) => {
      const partial = join(ctx.opts.out, `${copyDir(node)}.partial`);
      return `{ ${shellLine(talosArgv(ctx, node, sub.copyDb(partial)))} && mv ${
        shellLine([partial, join(ctx.opts.out, copyDir(node))])
      }; }`;
    })),
    `chmod 600 ${shellLine([ctx.opts.out])}/db.*/db`,
  ];
}

async function extractOne(ctx: Ctx, extraction: Extraction, node: string): Promise<void> {
  const { out } = ctx.opts;
  const { manifest } = extraction;
  const dir = join(out, copyDir(node));
  const file = join(out, copyFile(node));
  delete manifest.failures[node];
  if (manifest.copies[node]) {
    const check = await verifyCopy(out, manifest, node);
    if (check.ok) return ctx.log.ok(`${node}: already copied (${file}, sha256 matches)`);
    // the manifest keeps the original record, so this copy can never pass as intact
    manifest.failures[node] = `earlier copy ${file} changed since extraction (${check.reason})`;
    ctx.log.error(`${node}: ${manifest.failures[node]}; not overwriting it`);
    return;
  }
  if (existsSync(file)) {
    ctx.log.warn(`${node}: ${file} exists but is not in the manifest; keeping it as the copy`);
    return record(ctx, extraction, node, file, await readBack(ctx, file));
  }
  if (existsSync(dir)) {
    manifest.failures[node] = `${dir} exists but holds no db file`;
    ctx.log.error(`${node}: ${manifest.failures[node]}; move it aside`);
    return;
  }
  const partial = `${dir}.partial`;
  for (let attempt = 1;; attempt++) {
    rmSync(partial, { recursive: true, force: true }); // an interrupted or torn earlier copy
    ctx.log.info(`${node}: copying…`);
    const r = await talos(ctx, node, sub.copyDb(partial), {
      step: "extract",
      echo: true,
      timeoutMs: COPY_TIMEOUT_MS,
    });
    if (
      r.code !== 0 || !existsSync(join(partial, "db")) || statSync(join(partial, "db")).size === 0
    ) {
      rmSync(partial, { recursive: true, force: true });
      manifest.failures[node] = r.code !== 0
        ? tail(r.stderr, 2) || `exit ${r.code}`
        : "talosctl cp exited 0 but wrote no db file";
      ctx.log.error(`${node}: copy failed: ${manifest.failures[node]}`);
      return;
    }
    // A copy taken while etcd writes, or cut off, can be torn although cp exited 0: read it
    // whole now, while copying again is cheap, rather than find out at the wipe.
    const check = await readBack(ctx, join(partial, "db"));
    if ("problem" in check && attempt < COPY_ATTEMPTS) {
      ctx.log.warn(`${node}: the copy is not a readable etcd db (${check.problem}); copying again`);
      continue;
    }
    renameSync(partial, dir);
    return await record(ctx, extraction, node, file, check, r.durationMs);
  }
}

/** Copies of one node made before a torn copy is kept as it is. */
const COPY_ATTEMPTS = 2;

type ReadBack = { revision: number } | { problem: string };

/** The copy's revision, or why the native reader refuses it (never a db's contents). */
function readBack(ctx: Ctx, file: string): Promise<ReadBack> {
  return ctx.deps.db.status(file).then(
    (db) => ({ revision: db.revision }),
    (error) => ({
      problem: error instanceof EtcdDbError ? summarize(error.problems) : String(error),
    }),
  );
}

async function record(
  ctx: Ctx,
  { manifest, damaged }: Extraction,
  node: string,
  file: string,
  check: ReadBack,
  durationMs?: number,
): Promise<void> {
  chmodSync(join(file, ".."), 0o700);
  chmodSync(file, 0o600);
  const size = statSync(file).size;
  manifest.copies[node] = {
    file: copyFile(node),
    size,
    sha256: await sha256File(file),
    copiedAt: new Date(ctx.deps.now()).toISOString(),
  };
  writeManifest(ctx.opts.out, manifest);
  const took = durationMs !== undefined ? ` in ${formatMs(durationMs)}` : "";
  const sha = `sha256 ${manifest.copies[node].sha256.slice(0, 12)}…`;
  if ("problem" in check) {
    // Kept: it is what the node gave, and status, wipe and recover name the problem again.
    damaged[node] = check.problem;
    ctx.log.error(
      `${node}: ${file} ${
        humanizeBytes(size)
      }${took}, ${sha}, is not a readable etcd db: ${check.problem}`,
    );
    return;
  }
  ctx.log.ok(`${node}: ${file} ${humanizeBytes(size)}${took}, revision ${check.revision}, ${sha}`);
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
