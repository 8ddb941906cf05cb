/**
 * What one copy holds, read natively (`lib/etcd_db.ts`), cross-checked with etcdutl/etcdctl
 * when one is installed (a disagreement is reported loudly), and whether the copies agree on
 * their common key history (the highest-revision copy may be the one that diverged).
 */

import type { Ctx } from "./context.ts";
import type { DbAlarm, DbStatus, KeyHistoryHash } from "./etcd_db.ts";
import { EtcdDbError, keyHistoryHash, readHistorySpan, readStatus } from "./etcd_db.ts";
import { InterruptedError } from "./errors.ts";
import {
  compareCopies,
  type CopyComparison,
  type HistoryRange,
  notComparable,
  type NotCompared,
  planComparison,
} from "./etcd_db_compare.ts";
import { humanizeBytes } from "./humanize.ts";
import { sha256File } from "./manifest.ts";
import { StatusToolError, toolStatus } from "./snapshot.ts";

/** The reader, as a dependency: tests replace it like they replace `$`. */
export interface DbReader {
  /** Revision and compaction, read fast: enough to choose the range to compare. */
  span(path: string): Promise<{ revision: number; compactRevision: number }>;
  /** The whole copy; with `history`, its key-history hash over that range in the same pass. */
  status(path: string, history?: HistoryRange): Promise<DbStatus>;
  /** A second pass for the key-history hash, when the range changed after the first. */
  history(path: string, uptoRevision: number, sinceRevision: number): Promise<KeyHistoryHash>;
  /** The file's sha256 (hex), for the manifest check; `sha256File` on this thread without it. */
  sha256?(path: string): Promise<string>;
}

export const nativeReader: DbReader = {
  span: readHistorySpan,
  status: (path, history) => readStatus(path, { history }),
  history: keyHistoryHash,
  sha256: sha256File,
};

/** One read, as `lib/db_worker.ts` takes it. */
export type DbOp =
  | { op: "status"; path: string; history?: HistoryRange }
  | { op: "history"; path: string; uptoRevision: number; sinceRevision: number }
  | { op: "sha256"; path: string };

/** The worker's answer: the result, the reader's refusal (an `EtcdDbError`), or another error. */
export type DbReply =
  | { result: unknown }
  | { error: { path: string; problems: readonly string[] } | { message: string } };

/**
 * The native reader, each whole read in a worker (`lib/db_worker.ts`): copies are read side by
 * side on as many cores as there are, and the main thread stays free (it hashes the copies
 * meanwhile), so Ctrl-C (`signal`) stops a read of a multi-GB copy at once: the worker is
 * terminated and the read rejects with `InterruptedError`. The reader's own refusal comes back
 * as `EtcdDbError`. A worker that finishes while another read waits takes that read (a worker's
 * start costs about 20 ms); one with nothing to do is ended, so the process can exit.
 */
export function workerReader(
  signal: AbortSignal,
  options: { script?: URL; workers?: number } = {},
): DbReader {
  const script = options.script ?? new URL("./db_worker.ts", import.meta.url);
  // One read per core at a time: more only adds memory (each read holds its own key set)
  // and start-up cost on the main thread.
  const slots = new Slots(options.workers ?? Math.max(1, navigator.hardwareConcurrency || 1));
  const idle: Worker[] = [];
  signal.addEventListener("abort", () => idle.splice(0).forEach((w) => w.terminate()), {
    once: true,
  });
  const once = <T>(op: DbOp): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (signal.aborted) return reject(interrupted(op.path));
      const worker = idle.pop() ?? new Worker(script, { type: "module" });
      const done = (reusable: boolean) => {
        signal.removeEventListener("abort", onAbort);
        worker.onmessage = worker.onmessageerror = worker.onerror = null;
        if (reusable && slots.waiting > 0 && !signal.aborted) idle.push(worker);
        else worker.terminate();
      };
      const onAbort = () => {
        done(false);
        reject(interrupted(op.path));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      worker.onmessage = (event: MessageEvent<DbReply>) => {
        const reply = event.data;
        if (!reply || typeof reply !== "object") {
          done(false);
          return reject(new Error(`the db reader gave no answer for ${op.path}`));
        }
        done(true);
        if ("result" in reply) return resolve(reply.result as T);
        const e = reply.error;
        reject("problems" in e ? new EtcdDbError(e.path, e.problems) : new Error(e.message));
      };
      worker.onmessageerror = () => {
        done(false);
        reject(new Error(`the db reader's answer for ${op.path} could not be received`));
      };
      worker.onerror = (event) => {
        event.preventDefault();
        done(false);
        reject(new Error(`the db reader stopped reading ${op.path}: ${event.message}`));
      };
      worker.postMessage(op);
    });
  const run = <T>(op: DbOp): Promise<T> => slots.run(() => once<T>(op));
  return {
    // A few pages whatever the size: quicker on this thread than a worker's start.
    span: (path) => signal.aborted ? Promise.reject(interrupted(path)) : readHistorySpan(path),
    status: (path, history) => run({ op: "status", path, history }),
    history: (path, uptoRevision, sinceRevision) =>
      run({ op: "history", path, uptoRevision, sinceRevision }),
    sha256: (path) => run({ op: "sha256", path }),
  };
}

/** Runs at most `size` tasks at once, the others in the order they came. */
export class Slots {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(size: number) {
    this.#free = size;
  }
  /** Tasks waiting for a free slot. */
  get waiting(): number {
    return this.#waiting.length;
  }
  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((go) => this.#waiting.push(go));
    try {
      return await task();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    }
  }
}

function interrupted(path: string): InterruptedError {
  return new InterruptedError(`Interrupted while reading ${path}`);
}

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
  hash: number;
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
  const { history, ...db } = await ctx.deps.db.status(file, range);
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
      tool.hash !== db.hash ? `hash ${tool.hash.toString(16)} ≠ ${db.hash.toString(16)}` : "",
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
