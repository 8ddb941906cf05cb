/**
 * What an etcd db file (`member/snap/db`, raw or from `snapshot save`) holds, read natively and
 * read-only: the revision (fast: only the right-most path of the `key` bucket), the full
 * `snapshot status` figures exactly as etcdctl computes them, the alarms, members, compaction
 * and raft indexes, an integrity verdict, and a hash of the key history for comparing copies.
 *
 * Layouts and algorithms: bbolt `page.go`/`db.go`, etcd `mvcc/revision.go`,
 * `clientv3/snapshot/v3_snapshot.go` @v3.4.23 and `etcdutl/snapshot/v3_snapshot.go` @v3.6.5
 * (see /work/shared/reference/etcd.md, part B).
 *
 * @example
 * ```ts
 * import { readRevision, readStatus } from "./etcd_db.ts";
 * await readRevision("fixtures/db/etcd-3.4.db"); // the highest revision, a few page reads
 * const status = await readStatus("fixtures/db/etcd-3.4.db");
 * status.alarms; // [{ memberId: "…", memberIdHex: "…", type: "CORRUPT", typeCode: 2 }, …]
 * ```
 */

import {
  BoltDb,
  BUCKET_LEAF_FLAG,
  type BucketRef,
  type EntryVisitor,
  EtcdDbError,
  Findings,
  latin1,
  type MetaPage,
} from "./bbolt.ts";
import { ByteSet } from "./byte_set.ts";
import { CRC32C, crc32cUpdate } from "./crc32c.ts";
import { CRC32 } from "./crc32.ts";
import type { Crc } from "./crc_algebra.ts";

/** Which CRC a key-history hash is taken with: etcd's own, or the native CRC-32. */
export type HistoryCrc = Crc["name"];
const CRCS: Record<HistoryCrc, Crc> = { crc32: CRC32, crc32c: CRC32C };

export { EtcdDbError, summarize } from "./bbolt.ts";
export type { MetaPage } from "./bbolt.ts";

/** etcd's `AlarmType` (etcdserverpb/rpc.proto); other codes read as UNKNOWN. */
export type AlarmType = "NONE" | "NOSPACE" | "CORRUPT" | "UNKNOWN";

/** One key of the `alarm` bucket (an AlarmMember protobuf). */
export interface DbAlarm {
  /** Member id, exact, in decimal (ids exceed 2^53). */
  memberId: string;
  /** The same id as 16 lower-case hex digits. */
  memberIdHex: string;
  type: AlarmType;
  /** The enum value as stored. */
  typeCode: number;
}

/** One entry of the `members` bucket. */
export interface DbMember {
  /** Member id, exact, in decimal. */
  id: string;
  /** The same id as 16 lower-case hex digits. */
  idHex: string;
  name: string;
  peerURLs: string[];
  clientURLs: string[];
  isLearner: boolean;
}

/** Everything `readStatus` finds in one file. */
export interface DbStatus {
  path: string;
  /**
   * CRC-32C over every bucket name, key and value, as `snapshot status` prints it; null when
   * not asked for (`readStatus` without `etcdHash`: it is most of a read's time, and nothing
   * is decided on it, since the hashes of two members' copies always differ).
   */
  hash: number | null;
  /** Main revision of the last key of bucket `key` (0 when empty). */
  revision: number;
  /** Entries of every bucket: `totalKey` of etcdctl/etcdutl 3.4 and 3.5. */
  totalKey: number;
  /** Distinct live user keys: `totalKey` of etcdutl 3.6 and later. */
  totalKeyLive: number;
  /** High-water mark × page size (not the file size). */
  totalSize: number;
  fileSize: number;
  /** `meta/storageVersion` (etcd 3.6+), or "". */
  version: string;
  /** `meta/consistent_index`, 0 when absent. */
  consistentIndex: bigint;
  /** `meta/term` (etcd 3.5+), 0 when absent. */
  term: bigint;
  /** `meta/scheduledCompactRev`, 0 when absent. */
  scheduledCompactRev: number;
  /** `meta/finishedCompactRev`, 0 when absent. */
  finishedCompactRev: number;
  alarms: DbAlarm[];
  members: DbMember[];
  /** Hex ids in `members_removed`. */
  removedMembers: string[];
  /** `cluster/clusterVersion`, or "". */
  clusterVersion: string;
  /** Entries of the `lease` bucket. */
  leases: number;
  /** Entries per bucket, in bucket order. */
  buckets: Record<string, number>;
  pageSize: number;
  /** The meta page in use. */
  meta: { slot: 0 | 1; txid: bigint };
  /** Both meta pages as found. */
  metaPages: readonly MetaPage[];
  /** Things worth saying that did not stop the read (an invalid meta page). */
  warnings: string[];
  /**
   * The key-history hash over the range asked of `readStatus`, taken in the same pass; absent
   * when none was asked or the range is not in this copy (`keyHistoryHash` says why).
   */
  history?: KeyHistoryHash;
}

/** Integrity verdict of one file. */
export interface IntegrityReport {
  path: string;
  ok: boolean;
  /** Damage found (empty when ok). */
  problems: string[];
  /** Survivable findings, e.g. one invalid meta page. */
  warnings: string[];
  /** Both meta pages, when the file could be opened as bbolt. */
  metaPages: readonly MetaPage[];
  /** Pages reached from the root (meta and freelist included). */
  pagesReached: number;
  /** Pages below the high-water mark. */
  highWaterMark: number;
}

/**
 * Hash of the key history as etcd's `HashByRev` takes it (`HashKV` in `etcdctl endpoint hashkv
 * --rev`), for a store compacted at `sinceRevision` and read at `uptoRevision`.
 */
export interface KeyHistoryHash {
  /**
   * The CRC (`crc`) over "key", then, in bucket order, each key and value of the `key` bucket with
   * main revision ≤ `uptoRevision` that is either above `sinceRevision` or, at or below it,
   * the latest revision ≤ `uptoRevision` of its user key and not a deletion.
   */
  hash: number;
  /**
   * Which CRC: "crc32c" is etcd's own (the value `etcdctl endpoint hashkv` prints); "crc32"
   * (native, many times faster) compares copies with each other. Hashes of one kind only are
   * ever compared.
   */
  crc: HistoryCrc;
  /** The compaction the hash is taken at (exclusive lower bound of the full history). */
  sinceRevision: number;
  /** Inclusive upper bound. */
  uptoRevision: number;
  /** Entries hashed (`kept` included). */
  entries: number;
  /** Entries at or below `sinceRevision` hashed: what a compaction there keeps and R still shows. */
  kept: number;
  /** The copy's own revision. */
  revision: number;
  /** The copy's compaction: max of scheduled and finished compact revisions. */
  compactRevision: number;
}

const KEY_BUCKET = new TextEncoder().encode("key");
const REVISION_KEY_SIZE = 17;
const TOMBSTONE_KEY_SIZE = 18;
const TWO_POW_32 = 0x1_0000_0000;
const ALARM_TYPES: AlarmType[] = ["NONE", "NOSPACE", "CORRUPT"];
const EMPTY: Uint8Array = new Uint8Array(0);

/**
 * The highest revision in the file: the main revision of the last key of bucket `key`, found
 * by following only the right-most path of that tree. Does not check the whole file.
 * @throws {EtcdDbError} when the file is not a readable etcd db
 */
export async function readRevision(path: string): Promise<number> {
  const db = await BoltDb.open(path);
  try {
    return lastRevision(db);
  } finally {
    db.close();
  }
}

/**
 * What a copy's history spans, read fast (the right-most path of `key` and the small `meta`
 * bucket): enough to choose the range every copy holds before reading any copy whole.
 * @throws {EtcdDbError} when the file is not a readable etcd db
 */
export async function readHistorySpan(
  path: string,
): Promise<{ revision: number; compactRevision: number }> {
  const db = await BoltDb.open(path);
  try {
    const findings = new Findings(db.meta.pgid);
    const meta = readMetaBucket(db, db.rootBucket(), findings);
    if (findings.total > 0) throw new EtcdDbError(path, findings.list());
    const compactRevision = Math.max(meta.scheduledCompactRev, meta.finishedCompactRev);
    return { revision: lastRevision(db), compactRevision };
  } finally {
    db.close();
  }
}

function lastRevision(db: BoltDb): number {
  const bucket = db.findBucket(db.rootBucket(), KEY_BUCKET);
  const last = bucket && db.lastEntry(bucket);
  if (!last) return 0;
  const problem = revisionKeyProblem(last.key);
  if (problem) throw new EtcdDbError(db.path, `bucket "key": last entry ${problem}`);
  return mainRevision(last.key);
}

/** What `readStatus` computes beside the figures it always reads. */
export interface StatusOptions {
  /** The key-history hash over this range, in the same pass (`status.history`). */
  history?: { uptoRevision: number; sinceRevision: number };
  /** The CRC of that history hash: etcd's CRC-32C (the default) or the native CRC-32. */
  historyCrc?: HistoryCrc;
  /** `status.hash` as `etcdctl snapshot status` prints it (CRC-32C, in JavaScript: slower). */
  etcdHash?: boolean;
}

/**
 * Reads the whole file: `snapshot status` figures, etcd metadata, and an integrity check like
 * `tx.Check()` (which etcdctl runs too). With `history`, also `status.history`: what
 * `keyHistoryHash(path, uptoRevision, sinceRevision, historyCrc)` returns, without a second
 * pass. With `etcdHash`, also `status.hash` (else null).
 * @throws {EtcdDbError} when the file cannot be read or fails the check
 */
export async function readStatus(
  path: string,
  options: StatusOptions & { etcdHash: true },
): Promise<DbStatus & { hash: number }>;
export async function readStatus(path: string, options?: StatusOptions): Promise<DbStatus>;
export async function readStatus(path: string, options: StatusOptions = {}): Promise<DbStatus> {
  const db = await BoltDb.open(path);
  try {
    const view = options.history &&
      new HistoryView(options.history, CRCS[options.historyCrc ?? "crc32c"]);
    const { status, findings } = scan(db, options.etcdHash === true, view);
    if (findings.total > 0) throw new EtcdDbError(path, findings.list());
    if (view) {
      status.history = view.result({
        revision: status.revision,
        compactRevision: Math.max(status.scheduledCompactRev, status.finishedCompactRev),
      });
    }
    return status;
  } finally {
    db.close();
  }
}

/**
 * etcd's `HashByRev` view of one copy, taken while the `key` bucket is walked (in revision
 * order), whatever that copy's own compaction (as long as it is at or below `since`):
 *
 * - entries in `(since, upto]` are contiguous in the bucket, so their CRC follows from the
 *   running CRC before and after them ({@linkcode crc32cSuffix});
 * - of the entries at or below `since`, etcd hashes only those in `keyIndex.Keep(upto)`: per
 *   user key, its latest revision ≤ `upto`, unless that is a deletion (etcd 3.4.23
 *   `mvcc/kvstore.go` HashByRev, `key_index.go` keep/doCompact; 3.5 `mvcc/hash.go` alike).
 *   An entry superseded at or below `upto` is left out, so a copy compacted at `since` and one
 *   never compacted hash alike. Per user key one candidate is held (its position, CRC and
 *   length, 12 bytes), found through the read's key set (`ByteSet` member index): memory grows
 *   with the number of distinct keys, never with the size of the file.
 *
 * One deliberate difference: when no key at all is alive at `upto`, etcd hashes every entry
 * at or below its compaction that is still in the file (`len(keep) > 0` in HashByRev), which
 * depends on how far each member's compaction got; here nothing at or below `since` is hashed
 * then, so copies of one history still agree.
 */
export class HistoryView {
  readonly since: number;
  readonly upto: number;
  /** Entries of `(since, upto]`. */
  entries = 0;
  bytes = 0;
  /** Running CRC before the first entry of `(since, upto]`, and after the last. */
  before = 0;
  after = 0;
  started = false;
  ended = false;
  /** False when the view is not what etcd hashes (only in a damaged file). */
  usable = true;
  /** Per key-set member: 1 + position of its candidate entry at or below `since`, or 0. */
  #at = new Int32Array(1024);
  #crc = new Int32Array(1024);
  #length = new Int32Array(1024);
  #position = 0;
  /** The entry being visited: its place in the range, and the running CRC before it. */
  #current: "kept" | "range" | "" = "";
  #crcBefore = 0;
  #member = -1;
  #tombstone = false;

  /** The CRC the running checksum of `enter`/`leave` is taken with. */
  readonly crc: Crc;

  constructor(range: { uptoRevision: number; sinceRevision: number }, crc: Crc = CRC32C) {
    this.since = range.sinceRevision;
    this.upto = range.uptoRevision;
    this.crc = crc;
  }

  /** Before an entry of `key` is hashed into the running CRC (`crc` so far). */
  enter(key: Uint8Array, flags: number, crc: number): void {
    this.#current = "";
    this.#member = -1;
    const revision = revisionKeyProblem(key) ? -1 : mainRevision(key);
    if (revision < 0 || revision > this.upto) {
      if (this.started) this.ended = true;
      return;
    }
    // A sub-bucket hashes differently here.
    if (flags & BUCKET_LEAF_FLAG) this.usable = false;
    this.#crcBefore = crc;
    this.#tombstone = key.length === TOMBSTONE_KEY_SIZE;
    if (revision <= this.since) {
      if (this.started) this.usable = false; // keys out of order
      this.#current = "kept";
      return;
    }
    if (this.ended) this.usable = false; // a gap: keys out of order
    if (!this.started) {
      this.started = true;
      this.before = crc;
    }
    this.#current = "range";
  }

  /** The user key of the entry being visited, as a member of the read's key set. */
  member(m: number): void {
    this.#member = m;
  }

  /** After the entry was hashed (`crc` now), `size` bytes of key and value. */
  leave(crc: number, size: number): void {
    const place = this.#current;
    if (place === "") return;
    this.#current = "";
    const m = this.#member;
    if (m < 0) {
      this.usable = false; // no user key: a damaged value (the read says so)
      return;
    }
    if (m >= this.#at.length) this.#grow(m);
    if (place === "range") {
      this.entries++;
      this.bytes += size;
      this.after = crc;
      this.#at[m] = 0; // superseded at or below `upto`
      return;
    }
    this.#position++;
    if (this.#tombstone) {
      this.#at[m] = 0;
      return;
    }
    this.#at[m] = this.#position;
    this.#crc[m] = this.crc.suffix(crc, this.#crcBefore, size);
    this.#length[m] = size;
  }

  /** etcd's hash over the view (`revision` and `compactRevision` are the copy's). */
  hash(): Pick<KeyHistoryHash, "hash" | "crc" | "entries" | "kept"> {
    const { combine, suffix, update, name } = this.crc;
    const kept: number[] = [];
    for (let m = 0; m < this.#at.length; m++) if (this.#at[m] > 0) kept.push(m);
    kept.sort((a, b) => this.#at[a] - this.#at[b]);
    let hash = update(0, KEY_BUCKET);
    for (const m of kept) hash = combine(hash, this.#crc[m] >>> 0, this.#length[m]);
    if (this.started) hash = combine(hash, suffix(this.after, this.before, this.bytes), this.bytes);
    return { hash, crc: name, entries: kept.length + this.entries, kept: kept.length };
  }

  /** The answer of keyHistoryHash, or undefined when it would refuse (it then says why). */
  result(status: { revision: number; compactRevision: number }): KeyHistoryHash | undefined {
    if (rangeProblem(this.since, this.upto, status) || !this.usable) return undefined;
    return {
      ...this.hash(),
      sinceRevision: this.since,
      uptoRevision: this.upto,
      revision: status.revision,
      compactRevision: status.compactRevision,
    };
  }

  #grow(m: number): void {
    const n = Math.max(this.#at.length * 2, m + 1);
    const bigger = (a: Int32Array) => {
      const b = new Int32Array(n);
      b.set(a);
      return b;
    };
    this.#at = bigger(this.#at);
    this.#crc = bigger(this.#crc);
    this.#length = bigger(this.#length);
  }
}

/** Why `(since, upto]` cannot be hashed on a copy, or undefined. */
function rangeProblem(
  since: number,
  upto: number,
  copy: { revision: number; compactRevision: number },
): string | undefined {
  if (since < copy.compactRevision) {
    return `history from revision ${since} is compacted (up to revision ${copy.compactRevision})`;
  }
  if (upto > copy.revision) {
    return `history up to revision ${upto} is missing (the copy ends at revision ${copy.revision})`;
  }
  if (upto < since) {
    return `history up to revision ${upto} ends below the compaction it is taken at (${since})`;
  }
  return undefined;
}

/**
 * Checks every page of the file like bbolt's `tx.Check()`, plus key order and element bounds,
 * and the etcd encodings of the known buckets. Never rejects for a damaged or missing file:
 * the verdict says what is wrong.
 */
export async function checkIntegrity(path: string): Promise<IntegrityReport> {
  let db: BoltDb;
  try {
    db = await BoltDb.open(path);
  } catch (error) {
    if (!(error instanceof EtcdDbError)) throw error;
    return {
      path,
      ok: false,
      problems: [...error.problems],
      warnings: [],
      metaPages: [],
      pagesReached: 0,
      highWaterMark: 0,
    };
  }
  try {
    const { findings } = scan(db, false);
    const problems = findings.list();
    return {
      path,
      ok: problems.length === 0,
      problems,
      warnings: db.metaWarnings(),
      metaPages: db.metaPages,
      pagesReached: findings.reached + 2,
      highWaterMark: db.meta.pgid,
    };
  } finally {
    db.close();
  }
}

/**
 * Hashes the key history like etcd's `HashByRev` (`etcdctl endpoint hashkv --rev
 * uptoRevision` of a member compacted at `sinceRevision`): see {@linkcode HistoryView}. Any
 * copy whose own compaction is at or below `sinceRevision` and whose revision reaches
 * `uptoRevision` gives the hash the member would, compacted or not; `uptoRevision` equal to
 * `sinceRevision` hashes the keys as of that revision (etcd itself refuses that one).
 * @throws {EtcdDbError} when the file cannot be read, `sinceRevision` is below this copy's
 * compaction, `uptoRevision` is above its revision, or below `sinceRevision`
 */
export async function keyHistoryHash(
  path: string,
  uptoRevision: number,
  sinceRevision = 0,
  crcName: HistoryCrc = "crc32c",
): Promise<KeyHistoryHash> {
  const crc = CRCS[crcName];
  const db = await BoltDb.open(path);
  try {
    const findings = new Findings(db.meta.pgid);
    const root = db.rootBucket();
    const meta = readMetaBucket(db, root, findings);
    const compactRevision = Math.max(meta.scheduledCompactRev, meta.finishedCompactRev);
    const bucket = db.findBucket(root, KEY_BUCKET);
    const view = new HistoryView({ uptoRevision, sinceRevision }, crc);
    const update = crc.update;
    const keys = new ByteSet();
    let running = 0;
    let index = 0;
    if (bucket) {
      db.walk(bucket, findings, (key, value, flags) => {
        const problem = revisionKeyProblem(key);
        if (problem) return findings.add(`bucket "key": entry ${index++} ${problem}`);
        index++;
        if (mainRevision(key) > uptoRevision) return; // nothing after the view counts
        view.enter(key, flags, running);
        running = update(update(running, key), value);
        try {
          view.member(keys.mark(keyValueKey(value), key.length !== TOMBSTONE_KEY_SIZE));
        } catch (error) {
          if (!(error instanceof DecodeError)) throw error;
          findings.add(`bucket "key": entry ${index - 1} ${error.message}`);
        }
        view.leave(running, key.length + value.length);
      });
    }
    if (findings.total > 0) throw new EtcdDbError(path, findings.list());
    const copy = { revision: bucket ? lastRevision(db) : 0, compactRevision };
    const problem = rangeProblem(sinceRevision, uptoRevision, copy);
    if (problem) throw new EtcdDbError(path, problem);
    return {
      ...view.hash(),
      sinceRevision,
      uptoRevision,
      revision: copy.revision,
      compactRevision,
    };
  } finally {
    db.close();
  }
}

/**
 * One pass over the whole file: counts, etcd metadata, and the page checks; with `hashing`,
 * also `status.hash` (CRC-32C in JavaScript: more than half the time); with `view`, the
 * key-history hash (its own CRC, over the `key` bucket only).
 */
function scan(
  db: BoltDb,
  hashing: boolean,
  view?: HistoryView,
): { status: DbStatus; findings: Findings } {
  const findings = new Findings(db.meta.pgid);
  db.readFreelist(findings);
  const status: DbStatus = {
    path: db.path,
    hash: hashing ? 0 : null,
    revision: 0,
    totalKey: 0,
    totalKeyLive: 0,
    totalSize: db.meta.pgid * db.pageSize,
    fileSize: db.fileSize,
    version: "",
    consistentIndex: 0n,
    term: 0n,
    scheduledCompactRev: 0,
    finishedCompactRev: 0,
    alarms: [],
    members: [],
    removedMembers: [],
    clusterVersion: "",
    leases: 0,
    buckets: {},
    pageSize: db.pageSize,
    meta: { slot: db.meta.slot, txid: db.meta.txid },
    metaPages: db.metaPages,
    warnings: db.metaWarnings(),
  };
  const live = new ByteSet();
  let hash = 0;
  /** The view's running checksum over the `key` bucket. */
  let history = 0;
  const historyUpdate = view?.crc.update;
  const rootEntry: EntryVisitor = (key, _value, flags) => {
    if (!(flags & BUCKET_LEAF_FLAG)) {
      findings.add(`root bucket: "${latin1(key)}" is not a bucket`);
    }
  };
  const counts: (() => void)[] = [];
  const onBucket = (nameBytes: Uint8Array): EntryVisitor => {
    const name = latin1(nameBytes);
    if (hashing) hash = crc32cUpdate(hash, nameBytes);
    let entries = 0;
    counts.push(() => (status.buckets[name] = entries));
    const track = name === "key" ? view : undefined;
    const decode = bucketDecoder(name, status, live, findings, track);
    return (key, value, flags) => {
      const sub = (flags & BUCKET_LEAF_FLAG) !== 0;
      if (track) {
        track.enter(key, flags, history);
        history = historyUpdate!(history, key);
        if (!sub) history = historyUpdate!(history, value);
      }
      if (hashing) hash = crc32cUpdate(hash, key);
      entries++;
      // bbolt's ForEach gives a nil value for a sub-bucket.
      if (sub) decode?.(key, EMPTY);
      else {
        if (hashing) hash = crc32cUpdate(hash, value);
        decode?.(key, value);
      }
      track?.leave(history, sub ? key.length : key.length + value.length);
    };
  };
  db.walk(db.rootBucket(), findings, rootEntry, onBucket);
  db.checkUnreachable(findings);
  for (const count of counts) count();
  status.totalKey = Object.values(status.buckets).reduce((a, b) => a + b, 0);
  if (hashing) status.hash = hash;
  status.totalKeyLive = live.live;
  return { status, findings };
}

/** Decodes the entries of the buckets etcd gives meaning to. */
function bucketDecoder(
  name: string,
  status: DbStatus,
  live: ByteSet,
  findings: Findings,
  view?: HistoryView,
): ((key: Uint8Array, value: Uint8Array) => void) | undefined {
  let index = 0;
  const guard =
    (fn: (key: Uint8Array, value: Uint8Array) => void) => (key: Uint8Array, value: Uint8Array) => {
      try {
        fn(key, value);
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        findings.add(`bucket "${name}": entry ${index} ${error.message}`);
      }
      index++;
    };
  switch (name) {
    case "key":
      return guard((key, value) => {
        const problem = revisionKeyProblem(key);
        if (problem) throw new DecodeError(problem);
        status.revision = mainRevision(key);
        const member = live.mark(keyValueKey(value), key.length !== TOMBSTONE_KEY_SIZE);
        view?.member(member);
      });
    case "meta":
      return guard((key, value) => readMetaEntry(latin1(key), value, status));
    case "alarm":
      return guard((key) => status.alarms.push(decodeAlarm(key)));
    case "members":
      return guard((key, value) => status.members.push(decodeMember(latin1(key), value)));
    case "members_removed":
      return guard((key) => status.removedMembers.push(latin1(key)));
    case "cluster":
      return guard((key, value) => {
        if (latin1(key) === "clusterVersion") status.clusterVersion = latin1(value);
      });
    case "lease":
      return guard(() => status.leases++);
    default:
      return undefined;
  }
}

type MetaFields = Pick<
  DbStatus,
  "consistentIndex" | "term" | "scheduledCompactRev" | "finishedCompactRev" | "version"
>;

function readMetaEntry(key: string, value: Uint8Array, into: MetaFields): void {
  switch (key) {
    case "consistent_index":
      into.consistentIndex = u64be(value, key);
      break;
    case "term":
      into.term = u64be(value, key);
      break;
    case "scheduledCompactRev":
      into.scheduledCompactRev = compactRevision(value, key);
      break;
    case "finishedCompactRev":
      into.finishedCompactRev = compactRevision(value, key);
      break;
    case "storageVersion":
      into.version = latin1(value);
      break;
  }
}

/** Reads only the `meta` bucket (small, usually inline). */
function readMetaBucket(db: BoltDb, root: BucketRef, findings: Findings): MetaFields {
  const fields: MetaFields = {
    consistentIndex: 0n,
    term: 0n,
    scheduledCompactRev: 0,
    finishedCompactRev: 0,
    version: "",
  };
  const bucket = db.findBucket(root, new TextEncoder().encode("meta"));
  if (!bucket) return fields;
  db.walk(bucket, findings, (key, value) => {
    try {
      readMetaEntry(latin1(key), value, fields);
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      findings.add(`bucket "meta": ${error.message}`);
    }
  });
  return fields;
}

class DecodeError extends Error {}

/** Why a `key` bucket key is not `8-byte main, '_', 8-byte sub[, 't']`, or undefined. */
function revisionKeyProblem(key: Uint8Array): string | undefined {
  const size = key.length;
  if (size !== REVISION_KEY_SIZE && size !== TOMBSTONE_KEY_SIZE) {
    return `is not a revision (${size} bytes)`;
  }
  if (key[8] !== 0x5f) return "is not a revision (no '_' separator)";
  if (size === TOMBSTONE_KEY_SIZE && key[17] !== 0x74) {
    return "is not a revision (bad tombstone mark)";
  }
  if (key[0] >= 0x80 || (key[0] << 24 | key[1] << 16 | key[2] << 8 | key[3]) >>> 0 >= 0x20_0000) {
    return "has a revision beyond 2^53";
  }
  return undefined;
}

/** Main revision of a checked revision key (big-endian u64, below 2^53). */
function mainRevision(key: Uint8Array): number {
  const hi = (key[0] << 24 | key[1] << 16 | key[2] << 8 | key[3]) >>> 0;
  const lo = (key[4] << 24 | key[5] << 16 | key[6] << 8 | key[7]) >>> 0;
  return hi * TWO_POW_32 + lo;
}

function u64be(value: Uint8Array, key: string): bigint {
  if (value.length !== 8) throw new DecodeError(`"${key}" is ${value.length} bytes, not 8`);
  return new DataView(value.buffer, value.byteOffset, 8).getBigUint64(0);
}

function compactRevision(value: Uint8Array, key: string): number {
  if (value.length !== REVISION_KEY_SIZE || revisionKeyProblem(value)) {
    throw new DecodeError(`"${key}" is not a revision`);
  }
  return mainRevision(value);
}

/** Reads a protobuf varint at `at`; returns the value and the next offset. */
function varint(bytes: Uint8Array, at: number): { value: bigint; next: number } {
  let value = 0n;
  for (let i = 0; i < 10; i++) {
    if (at + i >= bytes.length) throw new DecodeError("is a cut-short protobuf");
    const b = bytes[at + i];
    value |= BigInt(b & 0x7f) << BigInt(7 * i);
    if (b < 0x80) {
      if (value >= 1n << 64n) throw new DecodeError("has a varint beyond 64 bits");
      return { value, next: at + i + 1 };
    }
  }
  throw new DecodeError("has a varint longer than 10 bytes");
}

/** Small varint (tags, lengths) as a number. */
function smallVarint(bytes: Uint8Array, at: number): { value: number; next: number } {
  let value = 0;
  for (let i = 0; i < 5 && at + i < bytes.length; i++) {
    const b = bytes[at + i];
    value += (b & 0x7f) * 2 ** (7 * i);
    if (b < 0x80) return { value, next: at + i + 1 };
  }
  const big = varint(bytes, at);
  return { value: Number(big.value), next: big.next };
}

/** Walks protobuf fields, calling `field` for each; wire types 0, 1, 2 and 5. */
function forEachField(
  bytes: Uint8Array,
  field: (num: number, wire: number, start: number, end: number, int?: bigint) => void,
): void {
  let at = 0;
  while (at < bytes.length) {
    const tag = smallVarint(bytes, at);
    at = tag.next;
    const num = Math.floor(tag.value / 8);
    const wire = tag.value % 8;
    if (num === 0) throw new DecodeError("is not a protobuf (field 0)");
    if (wire === 0) {
      const v = varint(bytes, at);
      field(num, wire, at, v.next, v.value);
      at = v.next;
    } else if (wire === 2) {
      const len = smallVarint(bytes, at);
      const end = len.next + len.value;
      if (end > bytes.length) throw new DecodeError("is a cut-short protobuf");
      field(num, wire, len.next, end);
      at = end;
    } else if (wire === 1 || wire === 5) {
      const end = at + (wire === 1 ? 8 : 4);
      if (end > bytes.length) throw new DecodeError("is a cut-short protobuf");
      field(num, wire, at, end);
      at = end;
    } else {
      throw new DecodeError(`is not a protobuf (wire type ${wire})`);
    }
  }
}

/**
 * Field 1 (`key`) of an mvccpb.KeyValue. Runs once per revision, so it skips the other fields
 * without BigInt or closures.
 */
function keyValueKey(value: Uint8Array): Uint8Array {
  let key = EMPTY;
  const n = value.length;
  let at = 0;
  while (at < n) {
    let tag = 0;
    for (let shift = 0;; shift += 7) {
      if (at >= n || shift > 28) throw new DecodeError("is a cut-short protobuf");
      const b = value[at++];
      tag += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) break;
    }
    const wire = tag % 8;
    const field = Math.floor(tag / 8);
    if (field === 0) throw new DecodeError("is not a protobuf (field 0)");
    if (wire === 0) {
      let i = 0;
      while (at < n && value[at] >= 0x80 && i < 9) at++, i++;
      if (at >= n || value[at] >= 0x80) throw new DecodeError("is a cut-short protobuf");
      at++;
    } else if (wire === 2) {
      let len = 0;
      for (let shift = 0;; shift += 7) {
        if (at >= n || shift > 28) throw new DecodeError("is a cut-short protobuf");
        const b = value[at++];
        len += (b & 0x7f) * 2 ** shift;
        if (b < 0x80) break;
      }
      if (at + len > n) throw new DecodeError("is a cut-short protobuf");
      if (field === 1) key = value.subarray(at, at + len);
      at += len;
    } else if (wire === 1 || wire === 5) {
      at += wire === 1 ? 8 : 4;
      if (at > n) throw new DecodeError("is a cut-short protobuf");
    } else {
      throw new DecodeError(`is not a protobuf (wire type ${wire})`);
    }
    if (field === 1 && wire !== 2) {
      throw new DecodeError("is not a KeyValue (field 1 is not bytes)");
    }
  }
  return key;
}

/** An AlarmMember protobuf: field 1 memberID (uint64), field 2 alarm (enum). */
function decodeAlarm(key: Uint8Array): DbAlarm {
  let member = 0n;
  let code = 0n;
  forEachField(key, (num, wire, _start, _end, int) => {
    if (num !== 1 && num !== 2) return;
    if (wire !== 0 || int === undefined) {
      throw new DecodeError(`is not an AlarmMember (field ${num} is not a varint)`);
    }
    if (num === 1) member = int;
    else code = BigInt.asIntN(32, int);
  });
  const typeCode = Number(code);
  return {
    memberId: member.toString(),
    memberIdHex: member.toString(16).padStart(16, "0"),
    type: ALARM_TYPES[typeCode] ?? "UNKNOWN",
    typeCode,
  };
}

/** A `members` entry: key = hex id, value = JSON with a uint64 `id` as a bare number. */
function decodeMember(hexKey: string, value: Uint8Array): DbMember {
  const text = new TextDecoder().decode(value);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text);
  } catch {
    throw new DecodeError("is not member JSON");
  }
  if (typeof json !== "object" || json === null) throw new DecodeError("is not member JSON");
  // JSON.parse rounds ids above 2^53: read the digits from the text instead.
  const digits = text.match(/"id"\s*:\s*(\d+)/)?.[1];
  let id: bigint;
  if (digits !== undefined) id = BigInt(digits);
  else if (/^[0-9a-f]{1,16}$/.test(hexKey)) id = BigInt(`0x${hexKey}`);
  else throw new DecodeError("has no member id");
  const strings = (v: unknown): string[] =>
    Array.isArray(v) ? v.filter((s): s is string => typeof s === "string") : [];
  return {
    id: id.toString(),
    idHex: id.toString(16).padStart(16, "0"),
    name: typeof json.name === "string" ? json.name : "",
    peerURLs: strings(json.peerURLs),
    clientURLs: strings(json.clientURLs),
    isLearner: json.isLearner === true,
  };
}
