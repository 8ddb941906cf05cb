/**
 * Reading the copies: the reader as a dependency (`DbReader`: tests pass a fake), the native
 * reader, and the same reader run in workers (`worker.ts`) so that copies are read side by
 * side and Ctrl-C stops a long read at once.
 */

import type { DbStatus, HistoryCrc, KeyHistoryHash } from "./etcd_db.ts";
import { EtcdDbError, keyHistoryHash, readHistorySpan, readStatus } from "./etcd_db.ts";
import type { HistoryRange } from "./compare.ts";
import { sha256File } from "./sha256.ts";
import { InterruptedError } from "../run/errors.ts";

/** The reader, as a dependency: tests replace it like they replace `$`. */
export interface DbReader {
  /** Revision and compaction, read fast: enough to choose the range to compare. */
  span(path: string): Promise<{ revision: number; compactRevision: number }>;
  /**
   * The whole copy; with `history`, its key-history hash over that range in the same pass;
   * with `etcdHash`, the hash `etcdctl snapshot status` prints (else `hash` is null).
   */
  status(path: string, history?: HistoryRange, options?: { etcdHash?: boolean }): Promise<DbStatus>;
  /** A second pass for the key-history hash, when the range changed after the first. */
  history(path: string, uptoRevision: number, sinceRevision: number): Promise<KeyHistoryHash>;
  /** The file's sha256 (hex), for the manifest check; `sha256File` on this thread without it. */
  sha256?(path: string): Promise<string>;
}

/**
 * The CRC the readers take key-history hashes with: the native CRC-32, many times faster than
 * etcd's CRC-32C in JavaScript. Copies are only compared with each other, so any CRC serves;
 * the entries hashed are etcd's (`keyHistoryHash` with "crc32c" gives etcd's own value).
 */
export const COMPARE_CRC: HistoryCrc = "crc32";

export const nativeReader: DbReader = {
  span: readHistorySpan,
  status: (path, history, options) =>
    readStatus(path, { history, historyCrc: COMPARE_CRC, ...options }),
  history: (path, upto, since) => keyHistoryHash(path, upto, since, COMPARE_CRC),
  sha256: sha256File,
};

/** One read, as `lib/db/worker.ts` takes it. */
export type DbOp =
  | { op: "status"; path: string; history?: HistoryRange; etcdHash?: boolean }
  | { op: "history"; path: string; uptoRevision: number; sinceRevision: number }
  | { op: "sha256"; path: string };

/** The worker's answer: the result, the reader's refusal (an `EtcdDbError`), or another error. */
export type DbReply =
  | { result: unknown }
  | { error: { path: string; problems: readonly string[] } | { message: string } };

/**
 * The native reader, each whole read in a worker (`lib/db/worker.ts`): copies are read side by
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
  const script = options.script ?? new URL("./worker.ts", import.meta.url);
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
    status: (path, history, options) =>
      run({ op: "status", path, history, etcdHash: options?.etcdHash }),
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
