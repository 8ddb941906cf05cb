/**
 * What one copy holds, read natively (`lib/db/etcd_db.ts`), cross-checked with etcdutl/etcdctl
 * when one is installed (a disagreement is reported loudly), and whether the copies agree on
 * their common key history (the highest-revision copy may be the one that diverged).
 */

import type { Ctx } from "../run/context.ts";
import type { DbAlarm, DbStatus, KeyHistoryHash } from "../db/etcd_db.ts";
import { InterruptedError } from "../run/errors.ts";
import {
  compareCopies,
  type CopyComparison,
  type HistoryRange,
  notComparable,
  type NotCompared,
  planComparison,
} from "../db/compare.ts";
import { humanizeBytes } from "../run/humanize.ts";
import { StatusToolError, toolStatus } from "../db/etcdutl.ts";

/**
 * The view to compare (`planComparison`), from the fast reads of `copies`; undefined when
 * fewer than two can be compared. A copy that cannot be read is left out here: its full read
 * says why.
 */
export async function plannedRange(
  ctx: Ctx,
  copies: readonly { node: string; file: string }[],
): Promise<HistoryRange | undefined> {
  const fast = (c: { node: string; file: string }) =>
    ctx.deps.db.span(c.file).then((span) => ({ node: c.node, ...span }), (error) => {
      if (error instanceof InterruptedError) throw error;
      return undefined;
    });
  const spans = (await Promise.all(copies.map(fast))).filter((s) => s !== undefined);
  return planComparison(spans).range;
}

export interface CopyStatus {
  /** As `etcdctl snapshot status` prints it; null unless asked for (`--etcd-hash`). */
  hash: number | null;
  revision: number;
  /** As the etcd that wrote it counts: every bucket entry (≤ 3.5) or live keys (3.6+). */
  totalKey: number;
  totalSize: number;
  /** Storage version ("" before 3.6). */
  version: string;
  /** Alarms stored in the copy: they come back with it. */
  alarms: DbAlarm[];
  compactRevision: number;
  /** The full reading, for --json (without `history`: it may be over another range). */
  db: Omit<DbStatus, "history">;
  /** The key-history hash taken in the same pass, over the range planned before reading. */
  history?: KeyHistoryHash;
  /** What etcdutl/etcdctl said, when installed: "agrees", or the disagreement. */
  crossCheck?: string;
}

/** `readCopy` was told the copy failed its sha256 check: its reading is not reported. */
export class CopyNotVerified extends Error {}

/**
 * Reads one copy natively (with its key-history hash over `range`, when given); runs
 * etcdutl/etcdctl too when present and compares. With `verified` (the sha256 check running
 * meanwhile), the native read does not wait for it, but the rest does: a copy that fails it
 * is neither reported nor given to etcdutl (`CopyNotVerified`).
 */
export async function readCopy(
  ctx: Ctx,
  node: string,
  file: string,
  range?: HistoryRange,
  verified?: Promise<boolean>,
): Promise<CopyStatus> {
  const { history, ...db } = await ctx.deps.db.status(file, range, {
    etcdHash: ctx.opts.etcdHash,
  });
  if (verified && !(await verified)) throw new CopyNotVerified(`${file} failed its sha256 check`);
  // Progress: a copy of several GB takes seconds to read.
  ctx.log.info(`${node}: read ${humanizeBytes(db.fileSize)} (revision ${db.revision})`);
  const status: CopyStatus = {
    hash: db.hash,
    revision: db.revision,
    totalKey: db.version !== "" ? db.totalKeyLive : db.totalKey,
    totalSize: db.totalSize,
    version: db.version,
    alarms: db.alarms,
    compactRevision: Math.max(db.scheduledCompactRev, db.finishedCompactRev),
    db,
    history,
  };
  try {
    const tool = await toolStatus(ctx, node, file);
    const diffs = [
      tool.revision !== db.revision ? `revision ${tool.revision} ≠ ${db.revision}` : "",
      // etcdctl's hash only when this run computed it too (--etcd-hash)
      db.hash !== null && tool.hash !== db.hash
        ? `hash ${tool.hash.toString(16)} ≠ ${db.hash.toString(16)}`
        : "",
      tool.totalSize !== db.totalSize ? `size ${tool.totalSize} ≠ ${db.totalSize}` : "",
      ![db.totalKey, db.totalKeyLive].includes(tool.totalKey)
        ? `keys ${tool.totalKey} ≠ ${db.totalKey}/${db.totalKeyLive}`
        : "",
    ].filter(Boolean);
    status.crossCheck = diffs.length === 0
      ? `${tool.source} agrees`
      : `${tool.source} DISAGREES: ${diffs.join(", ")}`;
    if (diffs.length > 0) {
      ctx.log.warn(
        `${node}: ${tool.source} and the native reader DISAGREE on ${file}: ${diffs.join(", ")}`,
      );
    }
  } catch (error) {
    if (!(error instanceof StatusToolError)) throw error;
    if (/not found/.test(error.message) && !/cannot read/.test(error.message)) {
      status.crossCheck = undefined; // no tool installed: the reader alone
    } else {
      // Talos restores with etcdutl: a copy it cannot read cannot be restored
      throw new StatusToolError(
        `${error.message} (the native reader did read it; the restore uses etcdutl)`,
      );
    }
  }
  return status;
}

/**
 * Hashes every readable copy's key history over one view (`planComparison`) and groups them.
 * Never undefined: when copies cannot be compared the answer says why, for every node
 * (`missing`: the nodes without a readable copy, with the reason).
 */
export async function compareHistories(
  ctx: Ctx,
  copies: { node: string; file: string; status: CopyStatus }[],
  missing: readonly NotCompared[] = [],
): Promise<CopyComparison> {
  const plan = planComparison(copies.map((c) => ({
    node: c.node,
    revision: c.status.revision,
    compactRevision: c.status.compactRevision,
  })));
  const notCompared = [...missing, ...plan.notCompared];
  const range = plan.range;
  if (!range) {
    const reason = copies.length === 0
      ? "no copy could be read"
      : copies.length === 1
      ? missing.length === 0
        ? "there is only one copy: nothing to compare it with"
        : "only one copy could be read: nothing to compare it with"
      : `no other copy reaches the compaction of "${plan.compared[0]}"`;
    return notComparable(
      reason,
      copies.map((c) => ({ node: c.node, revision: c.status.revision })),
      notCompared,
    );
  }
  // Taken while each copy was read, unless the range changed since (a copy failed its read).
  const taken = (c: (typeof copies)[number]) => {
    const h = c.status.history;
    return h?.uptoRevision === range.uptoRevision && h.sinceRevision === range.sinceRevision
      ? h
      : undefined;
  };
  const compared = copies.filter((c) => plan.compared.includes(c.node));
  const histories = await Promise.all(compared.map(async (c) => ({
    node: c.node,
    revision: c.status.revision,
    history: taken(c) ??
      await ctx.deps.db.history(c.file, range.uptoRevision, range.sinceRevision),
  })));
  return compareCopies(histories, { notCompared });
}
