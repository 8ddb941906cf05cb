/**
 * Step 2 — status: what each copy holds, and which node is the seed.
 *
 * What:     checks each copy's sha256 against OUT/manifest.json, reads it with the native
 *           reader (revision, keys, size, hash, alarms stored inside, integrity), and, when
 *           etcdutl (or etcdctl 3.4 with ETCDCTL_API=3) is installed, reads it with that too
 *           and reports any disagreement loudly. Compares the copies' key history, compaction
 *           handled (etcd's HashKV after compacting to the highest compaction, up to the lowest
 *           revision), names the majority, the copies outside it and any copy not compared (with
 *           why). The seed is the highest revision (hashes of copies taken at the same moment
 *           differ between members), unless that copy disagrees with the majority: then wipe
 *           and recover refuse it without --force, as they refuse copies not compared.
 * Changes:  nothing.
 * Output:   a table on stderr for people; the seed's address alone on stdout (or --json), so
 *           `SEED=$(deno task status …)` works. While a copy is unusable: no seed, exit 2
 *           (it might hold the newest data); --force names the best readable copy.
 * Raw:      etcdutl snapshot status ./etcd-recovery/db.192.168.53.10/db -w json
 * Usage:    deno task status [--nodes A,B,C] [--out DIR] [--seed N] [--json] [--force]
 */

import { type Ctx, step } from "../lib/run/context.ts";
import type { Deps } from "../lib/run/deps.ts";
import { RefusedError, StepError } from "../lib/run/errors.ts";
import {
  agreement,
  inspectCopies,
  type Inspection,
  notComparedReason,
} from "../lib/recovery/inspect.ts";
import { mainEntry, runTask, type TaskDef } from "../lib/recovery/main.ts";
import { printPlan } from "../lib/recovery/confirm.ts";
import { shellLine } from "../lib/run/command.ts";
import { copyFile } from "../lib/recovery/manifest.ts";
import { join } from "node:path";
import { existsSync } from "node:fs";
import { readProgress } from "../lib/recovery/resume.ts";
import { statusTable } from "../lib/recovery/inspect.ts";

export const task: TaskDef = {
  name: "status",
  summary: "read every copy in OUT and name the seed (highest revision); changes nothing",
  usage: "  deno task status [--nodes A,B,C] [--out DIR] [--json] [--force]",
  parse: { nodesOptional: true },
  run: async (ctx) => {
    if (ctx.opts.dryRun) return printPlan(ctx, statusPlan(ctx));
    const insp = await step(
      ctx,
      "status",
      `Reading the copies in ${ctx.opts.out}`,
      () => inspectCopies(ctx, { requireManifest: false }),
    );
    const withheld = withheldSeed(ctx, insp);
    ctx.log.raw(statusTable(insp, withheld ? null : insp.choice?.seed));
    if (ctx.opts.json) {
      ctx.deps.stdout(JSON.stringify(statusJson(insp, withheld), null, 2) + "\n");
    }
    adviseUnusable(ctx, insp);
    if (!insp.choice) {
      throw new StepError("No copy could be read: there is no seed", {
        hint: "see the problems above; extract again into a new --out",
      });
    }
    if (withheld) throw withheld;
    const { seed, revision } = insp.choice;
    ctx.log.ok(`seed: ${seed} (revision ${revision})`);
    const pick = insp.comparison.highestDisagrees && insp.comparison.majorityPick;
    if (pick && pick.node !== seed) {
      ctx.log.warn(
        `wipe and recover refuse seed ${seed} without --force (it disagrees with the majority): ` +
          `use --seed ${pick.node} (revision ${pick.revision})`,
      );
    }
    if (ctx.opts.seed && ctx.opts.seed !== seed) {
      const mine = insp.rows.find((r) => r.node === ctx.opts.seed)?.status?.revision;
      ctx.log.warn(
        `--seed ${ctx.opts.seed} has revision ${mine ?? "unknown"}; "${seed}" has ${revision}`,
      );
    }
    if (!ctx.opts.json) ctx.deps.stdout(`${seed}\n`);
  },
};

/**
 * Why no seed is named although a copy was read: a node without a usable copy might hold the
 * newest data, so the highest revision among the others is not known to be the highest
 * (`--force` names it anyway, with a warning).
 */
function withheldSeed(ctx: Ctx, insp: Inspection): RefusedError | undefined {
  const rows = insp.rows.filter((r) => !r.status);
  if (rows.length === 0 || !insp.choice) return undefined;
  const names = rows.map((r) => `"${r.node}"`).join(", ");
  const best = `"${insp.choice.seed}" at revision ${insp.choice.revision}`;
  if (ctx.opts.force) {
    ctx.log.warn(`naming the best readable copy, ${best}, without ${names} because of --force`);
    return undefined;
  }
  const wiped = readProgress(ctx.opts.out).done.has("wipe");
  return new RefusedError(
    `No seed named: no usable copy from ${names}, which might hold the newest data ` +
      `(the best readable copy is ${best})`,
    {
      hint: wiped
        ? "the nodes were already wiped, so these copies are all there is: pass --force to name the best of them"
        : "get a usable copy as advised above, or pass --force to name the best readable copy anyway",
    },
  );
}

/**
 * What to do about nodes without a usable copy, by cause: a missing copy is made by running
 * extract again on the same OUT; a torn or changed one only with a new --out (extract never
 * overwrites a copy); after a wipe there is nothing left to copy.
 */
function adviseUnusable(ctx: Ctx, insp: Inspection): void {
  const rows = insp.rows.filter((r) => !r.status);
  if (rows.length === 0) return;
  const names = (list: typeof rows) => list.map((r) => `"${r.node}"`).join(", ");
  if (readProgress(ctx.opts.out).done.has("wipe")) {
    ctx.log.warn(
      `no usable copy from ${names(rows)} (see NOTE); the nodes were already wiped ` +
        `(${join(ctx.opts.out, "journal.jsonl")}): these copies are all there is`,
    );
    return;
  }
  const missing = rows.filter((r) => !existsSync(r.file));
  const unusable = rows.filter((r) => existsSync(r.file));
  if (missing.length > 0) {
    ctx.log.warn(
      `no copy from ${names(missing)}: run extract again with the same --out ` +
        `(it copies only the nodes without one)`,
    );
  }
  if (unusable.length > 0) {
    ctx.log.warn(
      `the copy from ${names(unusable)} cannot be used (see NOTE): to copy it again, ` +
        `extract into a new --out (a copy is never overwritten)`,
    );
  }
  ctx.log.warn(
    "wipe and recover refuse without --force while a node has no usable copy " +
      "(it might hold the newest data)",
  );
}

/** The commands status runs, as bash. */
export function statusPlan(ctx: Ctx): string[] {
  return [
    "# Step 2: read every copy; the seed is the highest revision",
    "# (deno task status reads them itself; etcdutl, when installed, is a cross-check)",
    "if command -v etcdutl >/dev/null 2>&1; then",
    ...ctx.opts.nodes.map((n) =>
      `  etcdutl snapshot status ${shellLine([join(ctx.opts.out, copyFile(n))])} -w json`
    ),
    "fi",
  ];
}

export function statusJson(insp: Inspection, withheld?: Error) {
  const cmp = insp.comparison;
  const choice = withheld ? undefined : insp.choice;
  return {
    seed: choice?.seed ?? null,
    revision: choice?.revision ?? null,
    seedWithheld: withheld?.message ?? null,
    agreement: {
      compared: cmp.range !== undefined,
      /** Why nothing was compared (null when copies were). */
      reason: cmp.unavailable ?? null,
      range: cmp.range ?? null,
      allAgree: cmp.allAgree,
      groups: cmp.groups.map((g) => ({ historyHash: g.historyHash, nodes: g.nodes })),
      majority: cmp.majority?.nodes ?? null,
      outside: cmp.outside,
      notCompared: cmp.notCompared,
      highestDisagrees: cmp.highestDisagrees,
      majorityPick: cmp.majorityPick?.node ?? null,
    },
    copies: insp.rows.map((r) => ({
      node: r.node,
      file: r.file,
      intact: r.intact,
      verified: Boolean(insp.manifest.copies[r.node]),
      sha256: insp.manifest.copies[r.node]?.sha256 ?? null,
      agrees: agreement(insp, r.node),
      notCompared: notComparedReason(insp, r.node) ?? null,
      problem: r.problem ?? null,
      crossCheck: r.status?.crossCheck ?? null,
      ...(r.status
        ? {
          ...plain(r.status.db),
          totalKey: r.status.totalKey, // as the etcd that wrote it counts (table KEYS)
          totalKeyEntries: r.status.db.totalKey, // every bucket entry (etcd ≤ 3.5)
        }
        : {}),
    })),
  };
}

/** A reading with bigints as decimal strings, for JSON. */
function plain(db: object): Record<string, unknown> {
  return JSON.parse(JSON.stringify(db, (_k, v) => typeof v === "bigint" ? v.toString() : v));
}

export function main(args: string[], deps?: Deps): Promise<number> {
  return runTask(task, args, deps);
}

if (import.meta.main) await mainEntry(task);
