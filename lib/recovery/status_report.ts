/**
 * What status says beyond its table (tasks/02_status.ts tells the story): why a seed is
 * withheld while a copy is unusable, what to do about each unusable copy, and the `--json`
 * rendering of an inspection.
 */

import { COMPARE_CRC } from "../db/reader.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Ctx } from "../run/context.ts";
import { RefusedError } from "../run/errors.ts";
import { agreement, type Inspection, notComparedReason } from "./inspect.ts";
import { readProgress } from "./resume.ts";

/**
 * Why no seed is named although a copy was read: a node without a usable copy might hold the
 * newest data, so the highest revision among the others is not known to be the highest
 * (`--force` names it anyway, with a warning).
 */
export function withheldSeed(ctx: Ctx, insp: Inspection): RefusedError | undefined {
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
export function adviseUnusable(ctx: Ctx, insp: Inspection): void {
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

/** The `--json` output of status: the seed (or why it is withheld), the agreement, every copy. */
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
      // CRC-32 over etcd's entries: compare copies with each other, never with etcd's hashkv
      historyCrc: COMPARE_CRC,
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
      sha256Check: r.sha256Check ?? null,
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
