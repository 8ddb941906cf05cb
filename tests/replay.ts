/**
 * A strict, replaying zx `$` for tests. Each recording answers one exact command line (as
 * zx renders it: quoted with `quote`, no prefix); recordings for the same line answer in
 * order, so a poll can see `Waiting`, then `Preparing`. An unexpected call fails the test
 * (`assertDone`), and so does a recording left unused. Nothing is ever run.
 */

import { EventEmitter } from "node:events";
import type { spawn } from "node:child_process";
import { PassThrough } from "node:stream";
import { existsSync, readFileSync } from "node:fs";
import { $ as zx$ } from "zx";
import { type Deps, freeBytes, type Shell } from "../lib/run/deps.ts";
import type { DbReader } from "../lib/db/reader.ts";
import { type DbStatus, EtcdDbError } from "../lib/db/etcd_db.ts";

export interface Recording {
  /** The exact command line, e.g. `talosctl -e 10.0.0.1 -n 10.0.0.1 service etcd`. */
  cmd: string;
  stdout?: string;
  stderr?: string;
  /** @default 0 */
  code?: number;
  /** Never exits by itself: only the call's deadline (abort signal) ends it. */
  hang?: boolean;
  /**
   * Answers a command line matching this instead of exactly `cmd` (then a description):
   * for a name only the run knows, like a backup named by its UTC time.
   */
  like?: RegExp;
  /** Runs when the command is answered (e.g. `cp` creating its file); gets the command line. */
  effect?: (cmd: string) => void;
  /** May be left unused without failing the test. */
  optional?: boolean;
}

/** Reads a captured talosctl output from fixtures/talosctl/. */
export function fx(name: string): string {
  return readFileSync(new URL(`../fixtures/talosctl/${name}`, import.meta.url), "utf8");
}

export class Replay {
  readonly calls: string[] = [];
  readonly unexpected: string[] = [];
  #pending: Recording[];
  readonly $: Shell;

  constructor(recordings: Recording[]) {
    this.#pending = [...recordings];
    this.$ = zx$({
      prefix: "",
      postfix: "",
      quiet: true,
      verbose: false,
      spawn: ((cmd: string, _args: unknown, opts: { signal?: AbortSignal }) =>
        this.#spawn(cmd, opts)) as unknown as typeof spawn,
      kill: () =>
        Promise.resolve(),
    });
  }

  /** Adds recordings while a test runs (e.g. from an effect). */
  add(...recordings: Recording[]): void {
    this.#pending.push(...recordings);
  }

  /** Fails unless every call was expected and every required recording was used. */
  assertDone(): void {
    const unused = this.#pending.filter((r) => !r.optional).map((r) => r.cmd);
    if (this.unexpected.length > 0 || unused.length > 0) {
      throw new Error(
        `replay mismatch:\n  unexpected calls:\n    ${this.unexpected.join("\n    ") || "-"}\n` +
          `  unused recordings:\n    ${unused.join("\n    ") || "-"}`,
      );
    }
  }

  /** Calls whose command line matches `re`. */
  callsMatching(re: RegExp): string[] {
    return this.calls.filter((c) => re.test(c));
  }

  #spawn(cmd: string, opts: { signal?: AbortSignal }) {
    this.calls.push(cmd);
    const index = this.#pending.findIndex((r) => r.like ? r.like.test(cmd) : r.cmd === cmd);
    const rec: Recording = index >= 0
      ? this.#pending.splice(index, 1)[0]
      : { cmd, stderr: `replay: unexpected command: ${cmd}\n`, code: 99 };
    if (index < 0) this.unexpected.push(cmd);
    const child = new EventEmitter() as EventEmitter & Record<string, unknown>;
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    // no pid: zx would signal a real process group -pid on abort; the fake ends on the signal
    Object.assign(child, { stdout, stderr, stdin: new PassThrough(), pid: undefined });
    child.kill = () => true;
    const finish = (code: number | null, signal: string | null) => {
      stdout.end();
      stderr.end();
      child.emit("exit", code, signal);
      child.emit("close", code, signal);
    };
    const onAbort = () => finish(null, "SIGTERM");
    setTimeout(() => {
      if (rec.hang) {
        if (opts.signal?.aborted) onAbort();
        else opts.signal?.addEventListener("abort", onAbort, { once: true });
        return;
      }
      rec.effect?.(cmd);
      if (rec.stdout) stdout.write(rec.stdout);
      if (rec.stderr) stderr.write(rec.stderr);
      setTimeout(() => finish(rec.code ?? 0, null), 0);
    }, 0);
    return child;
  }
}

/** What the fake reader says of one node's copy (fields of `DbStatus`, plus its history hash). */
export type FakeDb = Partial<DbStatus> & { historyHash?: number };

/**
 * What a backup of the restored etcd reads as: a little past the highest copy of the
 * fixtures (1843517), the alarm disarmed.
 */
export const RESTORED_SNAPSHOT: FakeDb = {
  revision: 1843530,
  totalKey: 8132,
  totalKeyLive: 8123,
  totalSize: 48238592,
  version: "3.6.0",
  alarms: [],
};

/** A copy whose text starts with this reads as cut short (a torn `talosctl cp`). */
export const TORN = "torn:";

/**
 * A strict fake of the native db reader: a copy at `…/db.NODE/db` reads as that node's
 * captured `etcdutl snapshot status` (fixtures/talosctl), or as `dbs[NODE]`; a file starting
 * with {@linkcode TORN}, or any other file, is "not an etcd db". Every copy has the same key
 * history unless `historyHash` says otherwise.
 */
export function fakeDbReader(dbs: Record<string, FakeDb> = {}): DbReader {
  // OUT/db.N/db, or OUT/db.N.partial/db while extract reads a new copy back; a backup
  // (OUT/snapshot-….db) reads as `dbs.snapshot`, by default {@linkcode RESTORED_SNAPSHOT}.
  const nodeOf = (path: string) =>
    /\/snapshot-[^/]*\.db$/.test(path)
      ? "snapshot"
      : path.match(/db\.([^/]+?)(?:\.partial)?\/db$/)?.[1] ?? "";
  dbs = { snapshot: RESTORED_SNAPSHOT, ...dbs };
  const read = (path: string): FakeDb & DbStatus => {
    const node = nodeOf(path);
    if (existsSync(path) && readFileSync(path, "latin1").startsWith(TORN)) {
      throw new EtcdDbError(path, "file is cut short: meta page 0 says 85 pages of 4096 bytes");
    }
    let base: Partial<DbStatus> = {};
    try {
      const j = JSON.parse(fx(`etcdutl-snapshot-status.${node}.json.txt`));
      base = {
        hash: j.hash,
        revision: j.revision,
        totalKeyLive: j.totalKey,
        totalKey: j.totalKey + 9,
        totalSize: j.totalSize,
        version: j.version,
      };
    } catch {
      if (!dbs[node]) throw new EtcdDbError(path, [`no fake db for "${path}"`]);
    }
    return {
      path,
      hash: 0,
      revision: 0,
      totalKey: 0,
      totalKeyLive: 0,
      totalSize: 0,
      fileSize: 0,
      version: "",
      consistentIndex: 0n,
      term: 0n,
      scheduledCompactRev: 0,
      finishedCompactRev: 0,
      alarms: [{
        memberId: "15187180991711508585",
        memberIdHex: "d2c3b4a596877869",
        type: "CORRUPT",
        typeCode: 2,
      }],
      members: [],
      removedMembers: [],
      clusterVersion: "3.6.0",
      leases: 0,
      buckets: {},
      pageSize: 4096,
      meta: { slot: 0, txid: 1n },
      metaPages: [],
      warnings: [],
      ...base,
      ...dbs[node],
    };
  };
  return {
    span: (path) =>
      Promise.resolve().then(() => {
        const db = read(path);
        return {
          revision: db.revision,
          compactRevision: Math.max(db.scheduledCompactRev, db.finishedCompactRev),
        };
      }),
    // Like a reader asked for no range: the history comes from history() below. etcdctl's
    // hash only when asked for, as the native reader does.
    status: (path, _history, options) =>
      Promise.resolve().then(() => {
        const db = read(path);
        return options?.etcdHash ? db : { ...db, hash: null };
      }),
    history: (path, uptoRevision, sinceRevision) =>
      Promise.resolve().then(() => {
        const db = read(path);
        return {
          hash: db.historyHash ?? 0x5eed,
          crc: "crc32" as const,
          sinceRevision,
          uptoRevision,
          entries: uptoRevision - sinceRevision,
          kept: 0,
          revision: db.revision,
          compactRevision: 0,
        };
      }),
  };
}

export interface FakeWorld {
  deps: Deps;
  replay: Replay;
  out: string[];
  err: string[];
  /** Text written to stdout. */
  stdout(): string;
  /** Text written to stderr. */
  stderr(): string;
  /** Virtual milliseconds slept. */
  slept(): number;
  /** Ctrl-C: aborts the world's signal. */
  interrupt(): void;
}

/**
 * Deps for a test: the replaying `$`, a virtual clock that `sleep` advances at once, no
 * terminal unless `answers` are given (then prompts read them in order).
 */
export function fakeWorld(
  recordings: Recording[],
  options: {
    answers?: string[];
    env?: Record<string, string>;
    terminal?: boolean;
    dbs?: Record<string, FakeDb>;
    /** Free bytes for any --out (default: what the real filesystem says). */
    freeBytes?: number;
    /** Start of the virtual clock (default 2026-11-24T10:00:00Z), e.g. for a later re-run. */
    clock?: string;
  } = {},
): FakeWorld {
  const replay = new Replay(recordings);
  const out: string[] = [];
  const err: string[] = [];
  let clock = Date.parse(options.clock ?? "2026-11-24T10:00:00Z");
  let slept = 0;
  const answers = [...(options.answers ?? [])];
  const interrupts = new AbortController();
  const deps: Deps = {
    $: replay.$,
    env: { TALOSCTL: "talosctl", ...options.env },
    isTerminal: options.terminal ?? options.answers !== undefined,
    ask: (question) => {
      err.push(question);
      return Promise.resolve(answers.shift() ?? null);
    },
    stdout: (t) => out.push(t),
    stderr: (t) => err.push(t),
    now: () => clock,
    sleep: (ms, signal) => {
      if (signal?.aborted) return Promise.reject(signal.reason);
      clock += ms;
      slept += ms;
      return Promise.resolve();
    },
    signal: interrupts.signal,
    db: fakeDbReader(options.dbs),
    freeBytes: options.freeBytes === undefined ? freeBytes : () => options.freeBytes,
  };
  return {
    deps,
    replay,
    out,
    err,
    stdout: () => out.join(""),
    stderr: () => err.join(""),
    slept: () => slept,
    interrupt: () => interrupts.abort(new Error("SIGINT")),
  };
}
