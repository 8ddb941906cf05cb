import assert from "node:assert/strict";
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  truncateSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  BoltDb,
  BRANCH_PAGE,
  compareBytes,
  fnv1a64,
  FREELIST_PAGE,
  LEAF_PAGE,
  META_PAGE,
  pageBuffer,
} from "../lib/db/bbolt.ts";
import { crc32c } from "../lib/db/crc32c.ts";
import {
  checkIntegrity,
  EtcdDbError,
  keyHistoryHash,
  readHistorySpan,
  readRevision,
  readStatus,
} from "../lib/db/etcd_db.ts";
import { compareCopies, type CopyHistory, planComparison } from "../lib/db/compare.ts";
import {
  formatStatusJson,
  formatStatusSimple,
  formatStatusTable,
  type StatusFigures,
} from "../lib/db/etcd_db_format.ts";
import { etcdctl, startEtcd } from "../scripts/gen_db_fixtures.ts";
import { mulberry32 } from "./random.ts";

/** Everything etcdctl prints: its hash too (status computes it only when asked). */
const ETCD = { etcdHash: true } as const;

const FIXTURES = new URL("../fixtures/db/", import.meta.url).pathname;
const TALOSCTL_FIXTURES = new URL("../fixtures/talosctl/", import.meta.url).pathname;
const MAIN = join(FIXTURES, "etcd-3.4.db");
const enc = new TextEncoder();

/** Fixture facts as the server reported them (ids are strings there). */
interface Expect {
  revision: number;
  liveKeys: number;
  raftIndex: number;
  members: { ID: string; name: string; peerURLs: string[]; clientURLs: string[] }[];
  alarms: { memberID: string; alarm: string }[];
  compactRevision?: number;
  lease?: string;
  hashKV?: number;
  hashKVat21?: number;
  /** etcd's HashKV at each revision, taken after the copy's compaction. */
  hashKVCompacted?: Record<string, number>;
}

const fixture = (name: string, suffix: string) =>
  readFileSync(join(FIXTURES, name.replace(/\.db$/, suffix)), "utf8");
const expectOf = (name: string): Expect => JSON.parse(fixture(name, ".expect.json"));
const dbFixtures = readdirSync(FIXTURES).filter((f) => f.endsWith(".db")).sort();
/** The main fixture's revision, compaction and size, as the server and etcdctl said. */
const MAIN_FACTS = expectOf("etcd-3.4.db");
const MAIN_REV = MAIN_FACTS.revision;
const MAIN_COMPACT = MAIN_FACTS.compactRevision!;
const MAIN_SIZE: number = JSON.parse(fixture("etcd-3.4.db", ".status.json.txt")).totalSize;

// ---------------------------------------------------------------------------------------------
// Tools: tests that run etcd/etcdctl skip when they are missing, except under CI.

const CI = Boolean(Deno.env.get("CI"));
function installed(cmd: string, args: string[]): boolean {
  try {
    return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}
const HAVE_ETCDCTL = installed("etcdctl", ["version"]);
const HAVE_ETCD = installed("etcd", ["--version"]);

function needs(tool: "etcd" | "etcdctl"): { ignore: boolean } {
  const have = tool === "etcd" ? HAVE_ETCD && HAVE_ETCDCTL : HAVE_ETCDCTL;
  return { ignore: !have && !CI };
}
function assertTool(tool: "etcd" | "etcdctl"): void {
  const have = tool === "etcd" ? HAVE_ETCD && HAVE_ETCDCTL : HAVE_ETCDCTL;
  if (!have) {
    throw new Error(
      `CI is set but "${tool}" is not installed (apt-get install etcd-server etcd-client)`,
    );
  }
}

/** etcdctl 3.4 `snapshot status` of a file: exit code and output. */
async function etcdctlStatus(path: string, format: "json" | "table") {
  const out = await new Deno.Command("etcdctl", {
    args: ["snapshot", "status", path, "-w", format],
    env: { ETCDCTL_API: "3" },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  return { ok: out.success, stdout: new TextDecoder().decode(out.stdout) };
}

const tempDirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "etcd-db-test-"));
  tempDirs.push(dir);
  return dir;
}
globalThis.addEventListener("unload", () => {
  for (const dir of tempDirs) Deno.removeSync(dir, { recursive: true });
});

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<EtcdDbError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof EtcdDbError, `expected EtcdDbError, got ${error}`);
    assert.match(error.message, pattern);
    return error;
  }
  assert.fail(`expected an EtcdDbError matching ${pattern}`);
}

// ---------------------------------------------------------------------------------------------
// A small bbolt writer, to build files etcd 3.4 cannot make (3.6 metadata, 16 KiB pages, deep
// trees, nested buckets, a persisted freelist). etcdctl checks them where it is installed.

type SynValue = string | Uint8Array | SynBucket;
interface SynBucket {
  entries: [string | Uint8Array, SynValue][];
  /** Force inline (true) or paged (false); default: bbolt's rule. */
  inline?: boolean;
  /** Append an empty leaf at the right of the tree (bbolt's Cursor.Last steps over it). */
  emptyTail?: boolean;
}
interface SynOptions {
  pageSize?: number;
  /** Entries per leaf page at most. */
  leafMax?: number;
  /** Children per branch page at most. */
  branchMax?: number;
  /** Txids of meta pages 0 and 1. */
  txids?: [number, number];
  /** Persist a freelist (page 2) listing this many extra free pages. */
  freePages?: number;
}
interface Built {
  file: Uint8Array;
  pageSize: number;
  pgid: number;
  rootPage: number;
  /** Root page of each paged top-level bucket. */
  roots: Record<string, number>;
  freePages: number[];
}
type Elem = { key: Uint8Array; value: Uint8Array; flags: number };

const bytes = (v: string | Uint8Array) => (typeof v === "string" ? enc.encode(v) : v);
const isBucket = (v: SynValue): v is SynBucket =>
  typeof v === "object" && !(v instanceof Uint8Array);

function buildDb(buckets: Record<string, SynBucket>, opts: SynOptions = {}): Built {
  const ps = opts.pageSize ?? 4096;
  const leafMax = opts.leafMax ?? Infinity;
  const branchMax = opts.branchMax ?? Infinity;
  const pages = new Map<number, Uint8Array>();
  let next = opts.freePages !== undefined ? 3 : 2;
  const roots: Record<string, number> = {};
  const size = (es: { key: Uint8Array; value?: Uint8Array }[]) =>
    16 + es.reduce((n, e) => n + 16 + e.key.length + (e.value?.length ?? 0), 0);

  const image = (flags: number, es: Elem[], inline: boolean): Uint8Array => {
    const need = size(es);
    const buf = new Uint8Array(inline ? need : Math.max(1, Math.ceil(need / ps)) * ps);
    const v = new DataView(buf.buffer);
    v.setUint16(8, flags, true);
    v.setUint16(10, es.length, true);
    v.setUint32(12, inline ? 0 : buf.length / ps - 1, true);
    let data = 16 + 16 * es.length;
    es.forEach((e, i) => {
      const at = 16 + 16 * i;
      if (flags === LEAF_PAGE) {
        v.setUint32(at, e.flags, true);
        v.setUint32(at + 4, data - at, true);
        v.setUint32(at + 8, e.key.length, true);
        v.setUint32(at + 12, e.value.length, true);
      } else {
        v.setUint32(at, data - at, true);
        v.setUint32(at + 4, e.key.length, true);
        v.setBigUint64(at + 8, new DataView(e.value.buffer).getBigUint64(0, true), true);
      }
      buf.set(e.key, data);
      data += e.key.length;
      if (flags === LEAF_PAGE) {
        buf.set(e.value, data);
        data += e.value.length;
      }
    });
    return buf;
  };
  const place = (buf: Uint8Array): number => {
    const id = next;
    next += buf.length / ps;
    new DataView(buf.buffer).setBigUint64(0, BigInt(id), true);
    pages.set(id, buf);
    return id;
  };
  const childRef = (key: Uint8Array, id: number): Elem => {
    const value = new Uint8Array(8);
    new DataView(value.buffer).setBigUint64(0, BigInt(id), true);
    return { key, value, flags: 0 };
  };
  const tree = (es: Elem[], emptyTail = false): number => {
    const groups: Elem[][] = [];
    let cur: Elem[] = [];
    for (const e of es) {
      if (cur.length > 0 && (cur.length >= leafMax || size([...cur, e]) > ps)) {
        groups.push(cur);
        cur = [];
      }
      cur.push(e);
    }
    if (cur.length > 0 || groups.length === 0) groups.push(cur);
    let level = groups.map((g) =>
      childRef(g[0]?.key ?? new Uint8Array(), place(image(LEAF_PAGE, g, false)))
    );
    if (emptyTail) {
      const last = es.at(-1)?.key ?? new Uint8Array();
      level.push(childRef(new Uint8Array([...last, 0xff]), place(image(LEAF_PAGE, [], false))));
    }
    while (level.length > 1) {
      const up: Elem[] = [];
      for (let i = 0; i < level.length;) {
        const group: Elem[] = [];
        while (i < level.length && group.length < branchMax && size([...group, level[i]]) <= ps) {
          group.push(level[i++]);
        }
        up.push(childRef(group[0].key, place(image(BRANCH_PAGE, group, false))));
      }
      level = up;
    }
    return Number(new DataView(level[0].value.buffer).getBigUint64(0, true));
  };
  const bucketValue = (b: SynBucket, name?: string): Uint8Array => {
    const es: Elem[] = b.entries
      .map(([k, v]): Elem =>
        isBucket(v)
          ? { key: bytes(k), value: bucketValue(v), flags: 1 }
          : { key: bytes(k), value: bytes(v), flags: 0 }
      )
      .sort((x, y) => compareBytes(x.key, y.key));
    const header = new Uint8Array(16);
    const inline = b.inline ??
      (!es.some((e) => e.flags) && !b.emptyTail && size(es) <= ps / 4);
    if (inline) {
      const img = image(LEAF_PAGE, es, true);
      const out = new Uint8Array(16 + img.length);
      out.set(img, 16);
      return out;
    }
    const root = tree(es, b.emptyTail);
    if (name !== undefined) roots[name] = root;
    new DataView(header.buffer).setBigUint64(0, BigInt(root), true);
    return header;
  };
  const rootEntries = Object.keys(buckets)
    .map((name): Elem => ({
      key: enc.encode(name),
      value: bucketValue(buckets[name], name),
      flags: 1,
    }))
    .sort((x, y) => compareBytes(x.key, y.key));
  const rootPage = tree(rootEntries);
  const freePages: number[] = [];
  for (let i = 0; i < (opts.freePages ?? 0); i++) freePages.push(next++);
  const pgid = next;
  const file = new Uint8Array(pgid * ps);
  for (const [id, buf] of pages) file.set(buf, id * ps);
  if (opts.freePages !== undefined) {
    const v = new DataView(file.buffer, 2 * ps, ps);
    v.setBigUint64(0, 2n, true);
    v.setUint16(8, FREELIST_PAGE, true);
    v.setUint16(10, freePages.length, true);
    freePages.forEach((id, i) => v.setBigUint64(16 + 8 * i, BigInt(id), true));
  }
  const [tx0, tx1] = opts.txids ?? [5, 4];
  for (const slot of [0, 1]) {
    const v = new DataView(file.buffer, slot * ps, ps);
    v.setBigUint64(0, BigInt(slot), true);
    v.setUint16(8, META_PAGE, true);
    v.setUint32(16, 0xed0cdaed, true);
    v.setUint32(20, 2, true);
    v.setUint32(24, ps, true);
    v.setBigUint64(32, BigInt(rootPage), true);
    v.setBigUint64(48, opts.freePages !== undefined ? 2n : 0xffff_ffff_ffff_ffffn, true);
    v.setBigUint64(56, BigInt(pgid), true);
    v.setBigUint64(64, BigInt(slot === 0 ? tx0 : tx1), true);
    fixMetaChecksum(file, slot, ps);
  }
  return { file, pageSize: ps, pgid, rootPage, roots, freePages };
}

function fixMetaChecksum(file: Uint8Array, slot: number, ps: number): void {
  const at = slot * ps;
  const v = new DataView(file.buffer, file.byteOffset + at, 80);
  v.setBigUint64(72, fnv1a64(file.subarray(at + 16, at + 72)), true);
}

function writeDb(dir: string, name: string, data: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, data);
  return path;
}

// etcd encodings, for the synthetic files.

function revKey(main: number, sub = 0, tombstone = false): Uint8Array {
  const k = new Uint8Array(tombstone ? 18 : 17);
  const v = new DataView(k.buffer);
  v.setBigUint64(0, BigInt(main));
  k[8] = 0x5f;
  v.setBigUint64(9, BigInt(sub));
  if (tombstone) k[17] = 0x74;
  return k;
}
function varintBytes(n: bigint): number[] {
  const out: number[] = [];
  do {
    let b = Number(n & 0x7fn);
    n >>= 7n;
    if (n > 0n) b |= 0x80;
    out.push(b);
  } while (n > 0n);
  return out;
}
function keyValue(
  key: string | Uint8Array,
  create: number,
  mod: number,
  version: number,
  value: Uint8Array,
) {
  const k = bytes(key);
  return new Uint8Array([
    0x0a,
    ...varintBytes(BigInt(k.length)),
    ...k,
    0x10,
    ...varintBytes(BigInt(create)),
    0x18,
    ...varintBytes(BigInt(mod)),
    0x20,
    ...varintBytes(BigInt(version)),
    0x2a,
    ...varintBytes(BigInt(value.length)),
    ...value,
  ]);
}
function u64be(n: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return b;
}
const alarmKey = (member: bigint, type: number) =>
  new Uint8Array([0x08, ...varintBytes(member), 0x10, type]);

/** A db shaped like etcd 3.6's, with a 4-level `key` tree, and what it holds. */
function etcd36Db(opts: SynOptions = {}) {
  const ops: { key: string; value?: Uint8Array }[] = [];
  for (let i = 0; i < 200; i++) ops.push({ key: `/registry/k${i}`, value: enc.encode(`v${i}`) });
  for (let i = 0; i < 200; i += 3) ops.push({ key: `/registry/k${i}` });
  ops.push({ key: "/registry/big", value: new Uint8Array(10_000).fill(0x61) });
  for (let i = 0; i < 200; i += 9) ops.push({ key: `/registry/k${i}`, value: enc.encode("again") });
  const entries: [Uint8Array, Uint8Array][] = [];
  const live = new Map<string, { create: number; version: number }>();
  ops.forEach((op, i) => {
    const rev = i + 2;
    const prev = live.get(op.key);
    if (op.value) {
      const create = prev?.create ?? rev;
      const version = (prev?.version ?? 0) + 1;
      entries.push([revKey(rev), keyValue(op.key, create, rev, version, op.value)]);
      live.set(op.key, { create, version });
    } else {
      entries.push([revKey(rev, 0, true), keyValue(op.key, 0, 0, 0, new Uint8Array())]);
      live.delete(op.key);
    }
  });
  const learner = 0x4c4abe7743fad589n;
  const voter = 0xcdebd068c8c0e2abn;
  const built = buildDb({
    alarm: {
      entries: [
        [
          new Uint8Array([
            0x08,
            0xab,
            0xc5,
            0x83,
            0xc6,
            0x8c,
            0x8d,
            0xf4,
            0xf5,
            0xcd,
            0x01,
            0x10,
            0x02,
          ]),
          "",
        ],
        [alarmKey(learner, 1), ""],
      ],
    },
    auth: { entries: [["authRevision", u64be(3n)]] },
    authRoles: { entries: [] },
    authUsers: { entries: [] },
    cluster: { entries: [["clusterVersion", "3.6.0"]] },
    key: { entries },
    lease: { entries: [[u64be(0x694d7f1e2a3b4c5dn), new Uint8Array([0x08, 0x01, 0x10, 0x3c])]] },
    members: {
      entries: [
        [
          voter.toString(16),
          `{"id":${voter},"peerURLs":["https://10.0.0.1:2380"],"name":"cp-1","clientURLs":["https://10.0.0.1:2379"]}`,
        ],
        [
          learner.toString(16),
          `{"id":${learner},"peerURLs":["https://10.0.0.2:2380"],"isLearner":true}`,
        ],
      ],
    },
    members_removed: { entries: [["a1", "removed"]] },
    meta: {
      entries: [
        ["confState", '{"voters":[14838182545765491371]}'],
        ["consistent_index", u64be((1n << 60n) + 7n)],
        ["finishedCompactRev", revKey(5)],
        ["scheduledCompactRev", revKey(5)],
        ["storageVersion", "3.6.0"],
        ["term", u64be(9n)],
      ],
    },
  }, { leafMax: 8, branchMax: 4, ...opts });
  const revision = ops.length + 1;
  return { built, revision, liveKeys: live.size, keyEntries: entries.length, voter, learner };
}

// ---------------------------------------------------------------------------------------------
// Real files from etcd 3.4: every figure equals what etcdctl printed.

for (const name of dbFixtures) {
  Deno.test(`readStatus() of ${name} prints exactly what etcdctl 3.4 printed`, async () => {
    const status = await readStatus(join(FIXTURES, name), ETCD);
    assert.equal(formatStatusJson(status, "3.4"), fixture(name, ".status.json.txt"));
    assert.equal(formatStatusTable(status, "3.4"), fixture(name, ".status.table.txt"));
    assert.equal(formatStatusSimple(status, "3.4"), fixture(name, ".status.simple.txt"));
  });

  Deno.test(`readStatus() of ${name} agrees with what the server said`, async () => {
    const status = await readStatus(join(FIXTURES, name), ETCD);
    const facts = expectOf(name);
    // A fresh member's `key` bucket is empty: status says 0 where the server says 1.
    assert.equal(status.revision, facts.revision === 1 ? 0 : facts.revision);
    assert.equal(status.totalKeyLive, facts.liveKeys);
    assert.deepEqual(
      status.members.map((m) => ({
        ID: m.id,
        name: m.name,
        peerURLs: m.peerURLs,
        clientURLs: m.clientURLs,
      })),
      facts.members,
    );
    assert.ok(status.consistentIndex <= BigInt(facts.raftIndex));
    assert.equal(status.term, 0n);
    assert.equal(status.version, "");
    assert.equal(status.clusterVersion, "3.4.0");
    assert.equal(status.pageSize, 4096);
    assert.deepEqual(status.warnings, []);
    assert.equal(status.totalKey, Object.values(status.buckets).reduce((a, b) => a + b, 0));
    const newer = status.metaPages[0].txid! > status.metaPages[1].txid! ? 0 : 1;
    assert.equal(status.meta.slot, newer);
    assert.equal(status.meta.txid, status.metaPages[newer].txid);
  });

  Deno.test(`readRevision() of ${name} equals the revision of the full read`, async () => {
    const path = join(FIXTURES, name);
    assert.equal(await readRevision(path), (await readStatus(path, ETCD)).revision);
  });

  Deno.test(`checkIntegrity() finds nothing wrong in ${name}`, async () => {
    const report = await checkIntegrity(join(FIXTURES, name));
    assert.deepEqual(report.problems, []);
    assert.ok(report.ok);
    assert.equal(report.metaPages.filter((m) => m.valid).length, 2);
    assert.ok(report.pagesReached <= report.highWaterMark);
  });
}

Deno.test("readStatus() decodes alarms, members, compaction, lease and index of a live copy", async () => {
  const status = await readStatus(MAIN, ETCD);
  const facts = MAIN_FACTS;
  const member = BigInt(facts.members[0].ID);
  assert.ok(member > BigInt(Number.MAX_SAFE_INTEGER), "the fixture's member id exceeds 2^53");
  assert.deepEqual(status.alarms, [
    {
      memberId: member.toString(),
      memberIdHex: member.toString(16).padStart(16, "0"),
      type: "NOSPACE",
      typeCode: 1,
    },
    {
      memberId: member.toString(),
      memberIdHex: member.toString(16).padStart(16, "0"),
      type: "CORRUPT",
      typeCode: 2,
    },
  ]);
  assert.deepEqual(
    status.alarms.map((a) => ({ memberID: a.memberId, alarm: a.type })).sort((a, b) =>
      a.alarm.localeCompare(b.alarm)
    ),
    facts.alarms,
  );
  assert.equal(status.scheduledCompactRev, facts.compactRevision);
  assert.equal(status.finishedCompactRev, facts.compactRevision);
  assert.equal(status.leases, 1);
  assert.equal(status.members[0].idHex, member.toString(16).padStart(16, "0"));
  assert.equal(status.members[0].isLearner, false);
  assert.ok(status.consistentIndex > 400n);
  assert.deepEqual(status.removedMembers, []);
  assert.equal(status.totalSize, status.fileSize);
});

Deno.test("readStatus() of a snapshot-save file ignores its sha256 trailer, like etcdctl", async () => {
  const raw = await readStatus(MAIN, ETCD);
  const saved = await readStatus(join(FIXTURES, "etcd-3.4.snapshot.db"), ETCD);
  assert.equal(saved.fileSize, saved.totalSize + 32);
  assert.equal(saved.hash, raw.hash);
  assert.equal(saved.revision, raw.revision);
});

Deno.test("formatStatusJson() and formatStatusTable() in the 3.6 flavour count live keys and add the version", async () => {
  const status = await readStatus(MAIN, ETCD);
  const recorded = JSON.parse(fixture("etcd-3.4.db", ".status.json.txt"));
  const live = expectOf("etcd-3.4.db").liveKeys;
  assert.equal(
    formatStatusJson(status, "3.6"),
    JSON.stringify({ ...recorded, totalKey: live, version: "" }) + "\n",
  );
  const table = formatStatusTable(status, "3.6");
  const size = fixture("etcd-3.4.db", ".status.table.txt").match(/ ([\d.]+ [kMG]?B) \|\n/)![1];
  assert.match(table, /^\| +HASH +\| REVISION \| TOTAL KEYS \| TOTAL SIZE \| VERSION \|$/m);
  const row = new RegExp(
    `^\\| +${recorded.hash.toString(16)} \\| +${MAIN_REV} \\| +${live} \\| +${size} \\| {9}\\|$`,
    "m",
  );
  assert.match(table, row);
});

Deno.test("formatStatusJson() and formatStatusTable() reproduce etcdutl 3.6 output captured on Talos", () => {
  const files = readdirSync(TALOSCTL_FIXTURES).filter((f) =>
    /^etcdutl-snapshot-status\..*\.json\.txt$/.test(f)
  );
  assert.equal(files.length, 3);
  for (const file of files) {
    const json = readFileSync(join(TALOSCTL_FIXTURES, file), "utf8");
    const parsed = JSON.parse(json);
    const figures: StatusFigures = { ...parsed, totalKey: -1, totalKeyLive: parsed.totalKey };
    assert.equal(formatStatusJson(figures, "3.6"), json);
    const table = readFileSync(join(TALOSCTL_FIXTURES, file.replace(".json.", ".table.")), "utf8");
    assert.equal(formatStatusTable(figures, "3.6"), table);
  }
});

Deno.test("formatStatusTable() pads a short hash cell and centres the header like tablewriter", () => {
  const s: StatusFigures = {
    hash: 0xa7d3e91,
    revision: 5,
    totalKey: 1,
    totalKeyLive: 1,
    totalSize: 20480,
    version: "",
  };
  assert.equal(
    formatStatusTable(s, "3.4"),
    "+---------+----------+------------+------------+\n" +
      "|  HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n" +
      "+---------+----------+------------+------------+\n" +
      "| a7d3e91 |        5 |          1 |      20 kB |\n" +
      "+---------+----------+------------+------------+\n",
  );
});

Deno.test("readRevision() reads only the right-most path of the key bucket", async () => {
  const db = await BoltDb.open(MAIN);
  try {
    const key = db.findBucket(db.rootBucket(), enc.encode("key"));
    assert.ok(key && !key.inline);
    const last = db.lastEntry(key);
    assert.ok(last);
    assert.equal(
      new DataView(last.key.buffer, last.key.byteOffset).getBigUint64(0),
      BigInt(MAIN_REV),
    );
    assert.ok(db.pagesRead <= 3, `read ${db.pagesRead} pages`);
  } finally {
    db.close();
  }
});

// ---------------------------------------------------------------------------------------------
// Key history: etcd's HashKV, and comparing copies.

Deno.test("keyHistoryHash() from revision 0 equals etcd's own HashKV", async () => {
  for (const name of dbFixtures.filter((f) => f.startsWith("history-"))) {
    const facts = expectOf(name);
    const path = join(FIXTURES, name);
    const full = await keyHistoryHash(path, facts.revision);
    assert.equal(full.hash, facts.hashKV, name);
    assert.equal(full.entries, facts.revision - 1);
    assert.equal(full.compactRevision, 0);
    if (facts.hashKVat21 !== undefined) {
      assert.equal((await keyHistoryHash(path, 21)).hash, facts.hashKVat21, name);
    }
  }
});

Deno.test("keyHistoryHash() of two clusters agrees up to where they diverge, and not after", async () => {
  const a = join(FIXTURES, "history-a.rev41.db");
  const b = join(FIXTURES, "history-b.rev46.db");
  assert.equal((await keyHistoryHash(a, 21)).hash, (await keyHistoryHash(b, 21)).hash);
  assert.notEqual((await keyHistoryHash(a, 22)).hash, (await keyHistoryHash(b, 22)).hash);
  // Compacted at 21: the 20 keys of revisions 2-21 as kept there, then revisions 22-31.
  const view = await keyHistoryHash(a, 31, 21);
  assert.deepEqual([view.entries, view.kept], [30, 20]);
});

Deno.test("keyHistoryHash() at a compaction equals etcd's own HashKV after it, on the compacted copy and on copies never compacted", async () => {
  let checked = 0;
  for (const name of dbFixtures.filter((f) => f.startsWith("compact-"))) {
    const facts = expectOf(name);
    if (!facts.hashKVCompacted) continue;
    const { compactRevision } = await readHistorySpan(join(FIXTURES, name));
    assert.ok(compactRevision > 0, name);
    for (const [at, hash] of Object.entries(facts.hashKVCompacted)) {
      const got = await keyHistoryHash(join(FIXTURES, name), Number(at), compactRevision);
      assert.equal(got.hash, hash, `${name} at ${at}`);
      checked++;
    }
  }
  assert.equal(checked, 7);
  // p at 36, never compacted, reduced to a compaction at 31: what p's etcd said once compacted.
  const p = expectOf("compact-p.rev41.c31.db").hashKVCompacted!;
  const never = await keyHistoryHash(join(FIXTURES, "compact-p.rev36.db"), 36, 31);
  assert.equal(never.hash, p["36"]);
  const raw = await keyHistoryHash(join(FIXTURES, "compact-p.rev36.db"), 36);
  assert.notEqual(raw.hash, never.hash, "without the compaction, superseded entries count");
  // (C, R] empty: the keys as of 31, alike whether the copy was compacted at 31 or not.
  const compacted = await keyHistoryHash(join(FIXTURES, "compact-p.rev41.c31.db"), 31, 31);
  const at31 = await keyHistoryHash(join(FIXTURES, "compact-p.rev31.db"), 31, 31);
  assert.equal(compacted.hash, at31.hash);
  // 20 keys live at 31 (20 first ones, 2 deleted, 2 new): every one kept, nothing after.
  assert.deepEqual([at31.entries, at31.kept], [20, 20]);
  const other = await keyHistoryHash(join(FIXTURES, "compact-q.rev46.db"), 31, 31);
  assert.notEqual(other.hash, at31.hash, "q's writes after revision 21 differ");
  await rejects(
    () => keyHistoryHash(join(FIXTURES, "compact-p.rev31.db"), 30, 31),
    /history up to revision 30 ends below the compaction it is taken at \(31\)/,
  );
});

Deno.test("keyHistoryHash() refuses a range below the copy's compaction or above its revision", async () => {
  await rejects(
    () => keyHistoryHash(MAIN, MAIN_REV),
    new RegExp(`history from revision 0 is compacted \\(up to revision ${MAIN_COMPACT}\\)`),
  );
  await rejects(
    () => keyHistoryHash(MAIN, MAIN_REV + 1, MAIN_COMPACT),
    new RegExp(
      `history up to revision ${
        MAIN_REV + 1
      } is missing \\(the copy ends at revision ${MAIN_REV}\\)`,
    ),
  );
  const ok = await keyHistoryHash(MAIN, MAIN_REV, MAIN_COMPACT);
  assert.equal(ok.compactRevision, MAIN_COMPACT);
  assert.equal(ok.revision, MAIN_REV);
});

Deno.test("readStatus() with a range gives keyHistoryHash()'s answer in the same pass, or none where it refuses", async () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".db"));
  let compared = 0;
  for (const name of files) {
    const path = join(FIXTURES, name);
    const span = await readHistorySpan(path);
    const full = await readStatus(path, ETCD);
    assert.deepEqual(span, {
      revision: full.revision,
      compactRevision: Math.max(full.scheduledCompactRev, full.finishedCompactRev),
    });
    const { revision: rev, compactRevision: compact } = span;
    const ranges = [
      [compact, rev], // everything kept
      [compact, compact], // nothing
      [compact + 1, rev - 1], // one revision off each end
      [compact, Math.floor((compact + rev) / 2)],
      [compact, rev + 1], // past the end: refused
      [compact - 1, rev], // below the compaction: refused (when compacted)
    ];
    for (const [since, upto] of ranges) {
      for (const crc of ["crc32c", "crc32"] as const) {
        const expected = await keyHistoryHash(path, upto, since, crc).catch(() => undefined);
        const got = await readStatus(path, {
          history: { uptoRevision: upto, sinceRevision: since },
          historyCrc: crc,
          etcdHash: true,
        });
        assert.deepEqual(got.history, expected, `${name} (${since}, ${upto}] ${crc}`);
        assert.equal(got.hash, full.hash, "the status hash is unchanged by the range");
        if (expected) compared++;
      }
    }
  }
  assert.ok(compared >= files.length * 6, `only ${compared} ranges compared`);
});

Deno.test("copies agree under the native CRC-32 exactly where they agree under etcd's CRC-32C: every pair of fixtures", async () => {
  const files = readdirSync(FIXTURES).filter((f) => f.endsWith(".db"));
  const spans = await Promise.all(files.map((f) => readHistorySpan(join(FIXTURES, f))));
  let agreeing = 0;
  let differing = 0;
  for (let i = 0; i < files.length; i++) {
    for (let j = i + 1; j < files.length; j++) {
      const range = planComparison([
        { node: "a", ...spans[i] },
        { node: "b", ...spans[j] },
      ]).range;
      if (!range) continue;
      const hash = (f: string, crc: "crc32" | "crc32c") =>
        keyHistoryHash(join(FIXTURES, f), range.uptoRevision, range.sinceRevision, crc)
          .then((h) => h.hash, () => undefined);
      const [c1, c2, n1, n2] = await Promise.all([
        hash(files[i], "crc32c"),
        hash(files[j], "crc32c"),
        hash(files[i], "crc32"),
        hash(files[j], "crc32"),
      ]);
      if (c1 === undefined || c2 === undefined) continue;
      const pair = `${files[i]} / ${files[j]} over (${range.sinceRevision}, ${range.uptoRevision}]`;
      assert.equal(n1 === n2, c1 === c2, pair);
      if (c1 === c2) agreeing++;
      else differing++;
    }
  }
  // both outcomes are exercised, many times
  assert.ok(agreeing >= 10 && differing >= 10, `agreeing ${agreeing}, differing ${differing}`);
});

async function historyOf(names: Record<string, string>): Promise<CopyHistory[]> {
  const copies = await Promise.all(
    Object.entries(names).map(async ([node, file]) => {
      const s = await readStatus(join(FIXTURES, file), ETCD);
      return {
        node,
        file,
        revision: s.revision,
        compactRevision: Math.max(s.scheduledCompactRev, s.finishedCompactRev),
      };
    }),
  );
  const range = planComparison(copies).range!;
  return Promise.all(copies.map(async (c) => ({
    node: c.node,
    revision: c.revision,
    history: await keyHistoryHash(join(FIXTURES, c.file), range.uptoRevision, range.sinceRevision),
  })));
}

Deno.test("compareCopies() flags a highest copy that disagrees with the majority, and names the majority's pick", async () => {
  const verdict = compareCopies(
    await historyOf({
      n1: "history-a.rev31.db",
      n2: "history-a.rev41.db",
      n3: "history-b.rev46.db",
    }),
  );
  assert.deepEqual(verdict.range, { sinceRevision: 0, uptoRevision: 31 });
  assert.deepEqual(verdict.highest, { node: "n3", revision: 46 });
  assert.deepEqual(verdict.majority?.nodes, ["n1", "n2"]);
  assert.equal(verdict.highestDisagrees, true);
  assert.equal(verdict.allAgree, false);
  assert.deepEqual(verdict.majorityPick, { node: "n2", revision: 41 });
});

Deno.test("compareCopies() is quiet when the highest copy is in the majority", async () => {
  const verdict = compareCopies(
    await historyOf({
      n1: "history-a.rev41.db",
      n2: "history-b.rev36.db",
      n3: "history-b.rev46.db",
    }),
  );
  assert.deepEqual(verdict.range, { sinceRevision: 0, uptoRevision: 36 });
  assert.equal(verdict.highestDisagrees, false);
  assert.deepEqual(verdict.majorityPick, { node: "n3", revision: 46 });
  assert.deepEqual(verdict.groups.map((g) => g.nodes), [["n2", "n3"], ["n1"]]);
});

Deno.test("compareCopies() has no majority when two copies disagree", async () => {
  const verdict = compareCopies(
    await historyOf({ n1: "history-a.rev41.db", n2: "history-b.rev46.db" }),
  );
  assert.equal(verdict.majority, undefined);
  assert.equal(verdict.highestDisagrees, false);
  assert.equal(verdict.majorityPick, undefined);
  assert.equal(verdict.groups.length, 2);
});

Deno.test("compareCopies() agrees on identical histories and picks the first of equal revisions", () => {
  const h = { hash: 7, sinceRevision: 0, uptoRevision: 10 };
  const verdict = compareCopies([
    { node: "a", revision: 12, history: h },
    { node: "b", revision: 12, history: h },
    { node: "c", revision: 10, history: h },
  ]);
  assert.equal(verdict.allAgree, true);
  assert.deepEqual(verdict.highest, { node: "a", revision: 12 });
  assert.deepEqual(verdict.majorityPick, { node: "a", revision: 12 });
});

Deno.test("compareCopies() refuses copies hashed over different ranges, and no copies", () => {
  assert.throws(
    () =>
      compareCopies([
        { node: "a", revision: 12, history: { hash: 1, sinceRevision: 0, uptoRevision: 10 } },
        { node: "b", revision: 12, history: { hash: 1, sinceRevision: 0, uptoRevision: 11 } },
      ]),
    /Copies were hashed over different ranges: "a" \(0, 10\], "b" \(0, 11\]/,
  );
  assert.throws(() => compareCopies([]), /No copies to compare/);
  assert.deepEqual(planComparison([]), { compared: [], notCompared: [] });
});

Deno.test("planComparison() spans from the highest compaction to the lowest revision, and leaves out a copy below that compaction", () => {
  assert.deepEqual(
    planComparison([
      { node: "a", revision: 40, compactRevision: 3 },
      { node: "b", revision: 31, compactRevision: 10 },
      { node: "c", revision: 50, compactRevision: 0 },
    ]),
    { range: { sinceRevision: 10, uptoRevision: 31 }, compared: ["a", "b", "c"], notCompared: [] },
  );
  // Compacted at the lowest revision: (C, R] is empty, still a view (the keys as of 31).
  assert.deepEqual(
    planComparison([
      { node: "a", revision: 31, compactRevision: 0 },
      { node: "b", revision: 41, compactRevision: 31 },
    ]).range,
    { sinceRevision: 31, uptoRevision: 31 },
  );
  const behind = planComparison([
    { node: "a", revision: 20, compactRevision: 0 },
    { node: "b", revision: 41, compactRevision: 31 },
    { node: "c", revision: 45, compactRevision: 0 },
  ]);
  assert.deepEqual(behind.range, { sinceRevision: 31, uptoRevision: 41 });
  assert.deepEqual(behind.compared, ["b", "c"]);
  assert.deepEqual(behind.notCompared, [{
    node: "a",
    reason:
      'its revision 20 is below the compaction of "b" (31), which no longer holds the history this copy ends in',
  }]);
});

Deno.test("compareCopies() counts copies not compared against the majority", () => {
  const h = (hash: number) => ({ hash, sinceRevision: 0, uptoRevision: 10 });
  const two = compareCopies(
    [{ node: "a", revision: 12, history: h(1) }, { node: "b", revision: 11, history: h(1) }],
    { notCompared: [{ node: "c", reason: "x" }] },
  );
  assert.deepEqual(two.majority?.nodes, ["a", "b"], "2 of 3 nodes");
  assert.equal(two.allAgree, false, "c was not compared");
  const none = compareCopies(
    [{ node: "a", revision: 12, history: h(1) }, { node: "b", revision: 11, history: h(1) }],
    { notCompared: [{ node: "c", reason: "x" }, { node: "d", reason: "y" }] },
  );
  assert.equal(none.majority, undefined, "2 of 4 nodes is no majority");
  assert.deepEqual(none.outside, ["a", "b"]);
});

// ---------------------------------------------------------------------------------------------
// Damaged files: a clear EtcdDbError naming the file, never another exception.

function damaged(name: string, edit: (data: Uint8Array) => Uint8Array): string {
  const dir = tempDir();
  const data = new Uint8Array(readFileSync(MAIN));
  return writeDb(dir, name, edit(data));
}

/** The last leaf of the `key` bucket (on the right-most path) and its first leaf (not). */
async function keyLeaves(path: string): Promise<{ last: number; first: number }> {
  const db = await BoltDb.open(path);
  try {
    const key = db.findBucket(db.rootBucket(), enc.encode("key"));
    assert.ok(key && !key.inline);
    const branch = db.page(key.root);
    assert.equal(branch.flags, BRANCH_PAGE);
    const child = (i: number) => Number(branch.view.getBigUint64(16 + i * 16 + 8, true));
    return { first: child(0), last: child(branch.count - 1) };
  } finally {
    db.close();
  }
}

Deno.test("a broken meta page 0 checksum still reads from meta page 1, like etcd, and says so", async () => {
  const path = damaged("meta0.db", (d) => {
    d[72] ^= 0xff;
    return d;
  });
  const status = await readStatus(path, ETCD);
  assert.equal(status.meta.slot, 1);
  assert.equal(status.metaPages[0].valid, false);
  assert.match(
    status.warnings[0],
    /^meta page 0 is invalid \(checksum mismatch \(stored 0x[0-9a-f]+, computed 0x[0-9a-f]+\)\); using meta page 1 \(txid \d+\)$/,
  );
  const report = await checkIntegrity(path);
  assert.equal(report.ok, true);
  assert.deepEqual(report.warnings, status.warnings);
  assert.equal(await readRevision(path), status.revision);
});

Deno.test("a broken meta page 0 reads like etcdctl reads it", needs("etcdctl"), async () => {
  assertTool("etcdctl");
  const path = damaged("meta0.db", (d) => {
    d[20] = 9; // version
    return d;
  });
  const status = await readStatus(path, ETCD);
  const json = await etcdctlStatus(path, "json");
  assert.ok(json.ok);
  assert.equal(formatStatusJson(status, "3.4"), json.stdout);
});

Deno.test("a broken meta page 1 reads from meta page 0", async () => {
  const path = damaged("meta1.db", (d) => {
    d[4096 + 16] = 0;
    return d;
  });
  const status = await readStatus(path, ETCD);
  assert.equal(status.meta.slot, 0);
  assert.match(
    status.warnings[0],
    /^meta page 1 is invalid \(bad magic 0x[0-9a-f]{8}\); using meta page 0/,
  );
});

Deno.test("both meta pages broken is not a bbolt database", async () => {
  const path = damaged("metas.db", (d) => {
    d[72] ^= 1;
    d[4096 + 72] ^= 1;
    return d;
  });
  const error = await rejects(
    () => readStatus(path),
    /^Cannot read etcd db ".*metas\.db": not a bbolt database: no valid meta page \(meta page 0: checksum mismatch .*; meta page 1: checksum mismatch .*\)$/,
  );
  assert.equal(error.path, path);
  const report = await checkIntegrity(path);
  assert.equal(report.ok, false);
  assert.match(report.problems[0], /^not a bbolt database/);
});

Deno.test("a file cut in half is cut short", async () => {
  const path = damaged("half.db", (d) => d.subarray(0, d.length / 2));
  const pattern = new RegExp(
    `^Cannot read etcd db ".*half\\.db": file is cut short: meta page \\d says ${
      MAIN_SIZE / 4096
    } pages of 4096 bytes \\(${MAIN_SIZE} bytes\\), the file has ${MAIN_SIZE / 2} bytes$`,
  );
  await rejects(() => readStatus(path), pattern);
  await rejects(() => readRevision(path), pattern);
  await rejects(() => keyHistoryHash(path, 10), pattern);
  assert.equal((await checkIntegrity(path)).ok, false);
});

Deno.test("a zeroed page on the right-most path fails every read, naming the page", async () => {
  const { last } = await keyLeaves(MAIN);
  const path = damaged("zero-last.db", (d) => {
    d.fill(0, last * 4096, (last + 1) * 4096);
    return d;
  });
  const problem = `page ${last}: header says page 0 (unknown<00>)`;
  const error = await rejects(
    () => readStatus(path),
    /page \d+: header says page 0 \(unknown<00>\)/,
  );
  assert.ok(error.problems.includes(problem), error.message);
  await rejects(() => readRevision(path), new RegExp(`: ${problem.replace(/[()<>]/g, "\\$&")}$`));
  const report = await checkIntegrity(path);
  assert.equal(report.ok, false);
  assert.ok(report.problems.includes(problem));
});

Deno.test("a zeroed page off the right-most path fails the full read but not the fast path", async () => {
  const { first } = await keyLeaves(MAIN);
  const path = damaged("zero-first.db", (d) => {
    d.fill(0, first * 4096, (first + 1) * 4096);
    return d;
  });
  await rejects(() => readStatus(path), new RegExp(`page ${first}: header says page 0`));
  assert.equal(await readRevision(path), MAIN_REV);
});

Deno.test("damaged files fail etcdctl too", needs("etcdctl"), async () => {
  assertTool("etcdctl");
  const { last } = await keyLeaves(MAIN);
  const paths = [
    damaged("half.db", (d) => d.subarray(0, d.length / 2)),
    damaged("zero.db", (d) => d.fill(0, last * 4096, (last + 1) * 4096)),
    damaged("random.db", (d) => d.map((_, i) => (i * 2654435761) >>> 24)),
  ];
  for (const path of paths) {
    assert.equal((await etcdctlStatus(path, "json")).ok, false, path);
    await assert.rejects(() => readStatus(path), EtcdDbError);
  }
});

Deno.test("random bytes, an empty file, 100 bytes, a directory and a missing file each get their own message", async () => {
  const dir = tempDir();
  const rand = mulberry32(42);
  const random = writeDb(dir, "random.db", new Uint8Array(65536).map(() => rand() * 256));
  await rejects(
    () => readStatus(random),
    /^Cannot read etcd db ".*random\.db": not a bbolt database: no valid meta page \(meta page 0: bad magic 0x[0-9a-f]{8}; meta page 1: not found at any page size\)$/,
  );
  const empty = writeDb(dir, "empty.db", new Uint8Array());
  await rejects(
    () => readRevision(empty),
    /^Cannot read etcd db ".*empty\.db": file is empty \(0 bytes\)$/,
  );
  const tiny = writeDb(dir, "tiny.db", new Uint8Array(100));
  await rejects(
    () => readStatus(tiny),
    /^Cannot read etcd db ".*tiny\.db": file is too small to be a bbolt database \(100 bytes, at least 4096 needed\)$/,
  );
  await rejects(() => readStatus(dir), /^Cannot read etcd db ".*": is a directory$/);
  await rejects(
    () => readStatus(join(dir, "nope.db")),
    /^Cannot read etcd db ".*nope\.db": no such file$/,
  );
  for (const p of [random, empty, tiny, dir, join(dir, "nope.db")]) {
    const report = await checkIntegrity(p);
    assert.equal(report.ok, false);
    assert.equal(report.problems.length, 1);
  }
});

Deno.test("EtcdDbError carries a hint and every problem", async () => {
  const error = await rejects(() => readStatus("/nonexistent/db"), /no such file/);
  assert.deepEqual(error.problems, ["no such file"]);
  assert.match(error.hint ?? "", /another node's copy/);
  assert.equal(error.name, "EtcdDbError");
});

// ---------------------------------------------------------------------------------------------
// Built files: etcd 3.6 metadata, other page sizes, odd but valid trees, and damage.

Deno.test("readStatus() decodes etcd 3.6 metadata: term, storage version, ids above 2^63, learners", async () => {
  const { built, revision, liveKeys, keyEntries, voter, learner } = etcd36Db();
  const path = writeDb(tempDir(), "etcd36.db", built.file);
  const s = await readStatus(path, ETCD);
  assert.equal(s.revision, revision);
  assert.equal(s.totalKeyLive, liveKeys);
  assert.equal(s.buckets.key, keyEntries);
  assert.equal(s.totalKey, keyEntries + 2 + 1 + 1 + 1 + 2 + 1 + 6);
  assert.equal(s.totalSize, built.pgid * 4096);
  assert.equal(s.version, "3.6.0");
  assert.equal(s.consistentIndex, (1n << 60n) + 7n);
  assert.equal(s.term, 9n);
  assert.equal(s.scheduledCompactRev, 5);
  assert.equal(s.finishedCompactRev, 5);
  assert.equal(s.clusterVersion, "3.6.0");
  assert.deepEqual(s.removedMembers, ["a1"]);
  assert.equal(s.leases, 1);
  assert.deepEqual(s.alarms, [
    {
      memberId: learner.toString(),
      memberIdHex: "4c4abe7743fad589",
      type: "NOSPACE",
      typeCode: 1,
    },
    {
      memberId: "14838182545765491371",
      memberIdHex: "cdebd068c8c0e2ab",
      type: "CORRUPT",
      typeCode: 2,
    },
  ]);
  assert.deepEqual(s.members, [
    {
      id: learner.toString(),
      idHex: "4c4abe7743fad589",
      name: "",
      peerURLs: ["https://10.0.0.2:2380"],
      clientURLs: [],
      isLearner: true,
    },
    {
      id: voter.toString(),
      idHex: "cdebd068c8c0e2ab",
      name: "cp-1",
      peerURLs: ["https://10.0.0.1:2380"],
      clientURLs: ["https://10.0.0.1:2379"],
      isLearner: false,
    },
  ]);
  assert.equal(
    formatStatusJson(s, "3.6"),
    `{"hash":${s.hash},"revision":${revision},"totalKey":${liveKeys},"totalSize":${s.totalSize},"version":"3.6.0"}\n`,
  );
  assert.equal(await readRevision(path), revision);
  assert.deepEqual((await checkIntegrity(path)).problems, []);
});

Deno.test(
  "readStatus() of built files matches etcdctl: deep trees, overflow, nested buckets, freelist",
  needs("etcdctl"),
  async () => {
    assertTool("etcdctl");
    const dir = tempDir();
    const files = {
      etcd36: etcd36Db().built.file,
      nested: buildDb({
        key: { entries: [[revKey(2), keyValue("a", 2, 2, 1, enc.encode("x"))]] },
        outer: {
          entries: [["a", "1"], ["inner", {
            entries: [["b", "2"], ["deeper", { entries: [["c", "3"]], inline: false }]],
          }], ["z", "9"]],
        },
      }).file,
      freelist:
        buildDb({ key: { entries: [[revKey(7), keyValue("a", 7, 7, 1, enc.encode("x"))]] } }, {
          freePages: 3,
        }).file,
    };
    for (const [name, data] of Object.entries(files)) {
      const path = writeDb(dir, `${name}.db`, data);
      const ours = await readStatus(path, ETCD);
      const json = await etcdctlStatus(path, "json");
      assert.ok(json.ok, `etcdctl failed on ${name}`);
      assert.equal(formatStatusJson(ours, "3.4"), json.stdout, name);
      assert.equal(
        formatStatusTable(ours, "3.4"),
        (await etcdctlStatus(path, "table")).stdout,
        name,
      );
    }
  },
);

Deno.test("a nested bucket hashes as its key alone and counts once, like bbolt's ForEach", async () => {
  const built = buildDb({ outer: { entries: [["a", "1"], ["inner", { entries: [["b", "2"]] }]] } });
  const s = await readStatus(writeDb(tempDir(), "nested.db", built.file), ETCD);
  assert.equal(s.totalKey, 2);
  assert.equal(s.hash, crc32c(enc.encode("outera1inner")));
});

/** A synthetic db bigger than the read-ahead windows: buckets alpha, big, zeta. */
function scatteredDb() {
  // Buckets placed in the file in the reverse of walk order (every bucket is a jump), one entry
  // per leaf, values up to 300 KB whose overflow pages straddle window edges.
  const random = mulberry32(7);
  const value = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(random() * 256));
  const spec: Record<string, [string, Uint8Array][]> = {
    zeta: Array.from({ length: 400 }, (_, i) => [`z${String(i).padStart(4, "0")}`, value(60)]),
    big: Array.from({ length: 30 }, (_, i) => [
      `b${String(i).padStart(3, "0")}`,
      value(1 + Math.floor(random() * 300_000)),
    ]),
    alpha: Array.from({ length: 200 }, (_, i) => [`a${String(i).padStart(4, "0")}`, value(900)]),
  };
  const buckets: Record<string, SynBucket> = {};
  for (const [name, entries] of Object.entries(spec)) buckets[name] = { entries, inline: false };
  return { spec, built: buildDb(buckets, { leafMax: 1, branchMax: 7 }) };
}

Deno.test("a multi-megabyte file read out of order and with long values reads like a whole-file read", async () => {
  // Any stale or torn read-ahead window would change the hash or the count.
  const { spec, built } = scatteredDb();
  assert.ok(built.file.length > 2_000_000, `only ${built.file.length} bytes`);
  // What the walk must see: buckets and keys in byte order, each name, key and value once.
  const expected = Object.keys(spec).sort().flatMap((name) => [
    enc.encode(name),
    ...spec[name].flatMap(([k, v]) => [enc.encode(k), v]),
  ]);
  const all = new Uint8Array(expected.reduce((n, b) => n + b.length, 0));
  expected.reduce((at, b) => (all.set(b, at), at + b.length), 0);
  const path = writeDb(tempDir(), "scattered.db", built.file);
  const s = await readStatus(path, ETCD);
  assert.equal(s.hash, crc32c(all));
  assert.equal(s.totalKey, 630);
  assert.deepEqual(s.buckets, { alpha: 200, big: 30, zeta: 400 });
  assert.equal((await checkIntegrity(path)).ok, true);
});

Deno.test("a branch page read through the read-ahead window survives the window's reuse", async () => {
  // A walk holds a branch page while it reads the children: only leaves may stay views into a
  // window, a branch must be copied into the caller's buffer.
  const { built } = scatteredDb();
  const ps = built.pageSize;
  const branch = built.roots.zeta;
  const expected = built.file.slice(branch * ps, (branch + 1) * ps);
  const db = await BoltDb.open(writeDb(tempDir(), "scattered.db", built.file));
  try {
    db.page(branch - 1, pageBuffer()); // the next read is sequential: it fills a window
    const page = db.page(branch, pageBuffer());
    assert.equal(page.flags, BRANCH_PAGE);
    const other = pageBuffer();
    for (let id = 2; id < 2 + (3 * 256 * 1024) / ps; id++) db.page(id, other); // every window
    assert.deepEqual(page.data, expected);
  } finally {
    db.close();
  }
});

Deno.test("16 KiB pages with a broken meta page 0 are found by probing, like bbolt 1.3.7+", async () => {
  const { built, revision } = etcd36Db({ pageSize: 16384 });
  built.file[16] ^= 0xff;
  const path = writeDb(tempDir(), "probe.db", built.file);
  const s = await readStatus(path, ETCD);
  assert.equal(s.pageSize, 16384);
  assert.equal(s.meta.slot, 1);
  assert.equal(s.metaPages[1].offset, 16384);
  assert.equal(s.revision, revision);
  assert.match(s.warnings[0], /meta page 0 is invalid \(bad magic/);
});

Deno.test("the newer meta page wins", async () => {
  const { built } = etcd36Db({ txids: [3, 8] });
  const s = await readStatus(writeDb(tempDir(), "newer.db", built.file));
  assert.deepEqual(s.meta, { slot: 1, txid: 8n });
});

Deno.test("readRevision() steps over an empty right-most leaf, like Cursor.Last", async () => {
  const built = buildDb({
    key: {
      entries: [[revKey(2), keyValue("a", 2, 2, 1, enc.encode("x"))], [
        revKey(3),
        keyValue("b", 3, 3, 1, enc.encode("y")),
      ]],
      emptyTail: true,
    },
  });
  const path = writeDb(tempDir(), "empty-tail.db", built.file);
  assert.equal(await readRevision(path), 3);
  assert.equal((await readStatus(path, ETCD)).revision, 3);
});

Deno.test("totalKeyLive counts binary user keys exactly, bytes 0x80-0x9f included", async () => {
  const users = [[0x80], [0x81], [0xe2, 0x82, 0xac], [0x00], [0x80, 0x00]].map((k) =>
    new Uint8Array(k)
  );
  const entries: [Uint8Array, Uint8Array][] = users.map((k, i) => [
    revKey(i + 2),
    keyValue(k, i + 2, i + 2, 1, enc.encode("v")),
  ]);
  entries.push([revKey(9, 0, true), keyValue(users[4], 0, 0, 0, new Uint8Array())]);
  const built = buildDb({ key: { entries } });
  const s = await readStatus(writeDb(tempDir(), "binary.db", built.file));
  assert.equal(s.totalKeyLive, 4);
  assert.equal(s.revision, 9);
});

Deno.test("an empty or missing key bucket has revision 0", async () => {
  const dir = tempDir();
  const none = writeDb(dir, "none.db", buildDb({ meta: { entries: [] } }).file);
  assert.equal(await readRevision(none), 0);
  const empty = writeDb(dir, "empty.db", buildDb({ key: { entries: [], inline: false } }).file);
  assert.equal(await readRevision(empty), 0);
  assert.equal((await readStatus(empty, ETCD)).revision, 0);
});

Deno.test("a persisted freelist is checked: unreachable pages must be free, free pages unreachable", async () => {
  const dir = tempDir();
  const built = buildDb({
    key: { entries: [[revKey(2), keyValue("a", 2, 2, 1, enc.encode("x"))]] },
  }, { freePages: 2 });
  assert.ok((await checkIntegrity(writeDb(dir, "ok.db", built.file))).ok);
  const unfreed = built.file.slice();
  new DataView(unfreed.buffer).setUint16(2 * 4096 + 10, 1, true); // list only one free page
  const report = await checkIntegrity(writeDb(dir, "unfreed.db", unfreed));
  assert.deepEqual(report.problems, [`page ${built.freePages[1]}: unreachable unfreed`]);
  const both = built.file.slice();
  new DataView(both.buffer).setBigUint64(2 * 4096 + 16, BigInt(built.rootPage), true);
  const r2 = await checkIntegrity(writeDb(dir, "both.db", both));
  assert.ok(
    r2.problems.includes(`page ${built.rootPage}: reachable freed`),
    r2.problems.join("; "),
  );
});

/** A built db with a multi-level key tree, and the page of its key bucket root. */
function treeDb() {
  const { built } = etcd36Db();
  return { file: built.file, root: built.roots.key };
}

function branchChild(file: Uint8Array, page: number, i: number): number {
  return Number(new DataView(file.buffer).getBigUint64(page * 4096 + 16 + i * 16 + 8, true));
}
function setBranchChild(file: Uint8Array, page: number, i: number, child: number): void {
  new DataView(file.buffer).setBigUint64(page * 4096 + 16 + i * 16 + 8, BigInt(child), true);
}

Deno.test("a page referenced twice is found, and a loop does not hang any read", async () => {
  const dir = tempDir();
  const { file, root } = treeDb();
  const twice = file.slice();
  setBranchChild(twice, root, 1, branchChild(twice, root, 0));
  await rejects(() => readStatus(writeDb(dir, "twice.db", twice)), /page \d+: multiple references/);
  const loop = file.slice();
  const count = new DataView(loop.buffer).getUint16(root * 4096 + 10, true);
  setBranchChild(loop, root, count - 1, root);
  const path = writeDb(dir, "loop.db", loop);
  await rejects(() => readStatus(path), new RegExp(`page ${root}: multiple references`));
  await rejects(
    () => readRevision(path),
    new RegExp(`page ${root}: tree has a loop or is too deep`),
  );
});

Deno.test("a branch pointing outside the file, and a too-deep tree, are damage", async () => {
  const dir = tempDir();
  const { file, root } = treeDb();
  const out = file.slice();
  setBranchChild(out, root, 0, 1_000_000);
  await rejects(
    () => readStatus(writeDb(dir, "out.db", out)),
    new RegExp(`page ${root}: element 0 points to page 1000000, out of bounds`),
  );
  // 70 branch pages, each pointing to the next.
  const chain = buildDb({
    key: { entries: [[revKey(2), keyValue("a", 2, 2, 1, enc.encode("x"))]], inline: false },
  });
  const ps = 4096;
  const depth = 70;
  const data = new Uint8Array((chain.pgid + depth) * ps);
  data.set(chain.file);
  const v = new DataView(data.buffer);
  const key = revKey(2);
  for (let i = 0; i < depth; i++) {
    const id = chain.pgid + i;
    v.setBigUint64(id * ps, BigInt(id), true);
    v.setUint16(id * ps + 8, BRANCH_PAGE, true);
    v.setUint16(id * ps + 10, 1, true);
    v.setUint32(id * ps + 16, 16, true);
    v.setUint32(id * ps + 20, key.length, true);
    v.setBigUint64(id * ps + 24, BigInt(i === depth - 1 ? chain.roots.key : id + 1), true);
    data.set(key, id * ps + 32);
  }
  // The root bucket's only leaf: point "key" at the top of the chain.
  const rootLeaf = chain.rootPage * ps;
  const valueAt = rootLeaf + 16 + v.getUint32(rootLeaf + 20, true) +
    v.getUint32(rootLeaf + 24, true);
  v.setBigUint64(valueAt, BigInt(chain.pgid), true);
  for (const slot of [0, 1]) {
    v.setBigUint64(slot * ps + 56, BigInt(chain.pgid + depth), true);
    fixMetaChecksum(data, slot, ps);
  }
  const path = writeDb(dir, "deep.db", data);
  await rejects(() => readStatus(path), /tree deeper than 64 levels/);
  await rejects(() => readRevision(path), /tree has a loop or is too deep/);
});

Deno.test("keys out of order and elements past the end of their page are damage", async () => {
  const dir = tempDir();
  const built = buildDb({ key: { entries: [[revKey(2), "a"], [revKey(3), "b"]], inline: false } });
  const leaf = built.roots.key * 4096;
  const swapped = built.file.slice();
  const firstKey = leaf + 16 + new DataView(swapped.buffer).getUint32(leaf + 20, true);
  swapped[firstKey + 7] = 9; // revision 9 before revision 3
  await rejects(
    () => readStatus(writeDb(dir, "order.db", swapped)),
    /page \d+: key of element 1 is out of order/,
  );
  const long = built.file.slice();
  new DataView(long.buffer).setUint32(leaf + 16 + 12, 1 << 30, true);
  await rejects(
    () => readStatus(writeDb(dir, "long.db", long)),
    /page \d+: element 0 runs past the end of the page/,
  );
});

Deno.test("a valid meta page that points outside the file is damage", async () => {
  const dir = tempDir();
  const built = buildDb({ key: { entries: [] } });
  const bad = built.file.slice();
  for (const slot of [0, 1]) {
    new DataView(bad.buffer).setBigUint64(slot * 4096 + 32, 99n, true);
    fixMetaChecksum(bad, slot, 4096);
  }
  await rejects(
    () => readRevision(writeDb(dir, "root.db", bad)),
    /meta page 0: root page 99 is out of bounds \(high-water mark \d+\)/,
  );
});

Deno.test("undecodable etcd values are damage: a bad KeyValue, a bad alarm, an unknown alarm type", async () => {
  const dir = tempDir();
  const badKv = buildDb({ key: { entries: [[revKey(2), new Uint8Array([0x0a, 0x05, 0x61])]] } });
  await rejects(
    () => readStatus(writeDb(dir, "kv.db", badKv.file)),
    /bucket "key": entry 0 is a cut-short protobuf/,
  );
  const badKey = buildDb({ key: { entries: [["short", "x"]] } });
  await rejects(
    () => readStatus(writeDb(dir, "key.db", badKey.file)),
    /bucket "key": entry 0 is not a revision \(5 bytes\)/,
  );
  await rejects(
    () => readRevision(join(dir, "key.db")),
    /bucket "key": last entry is not a revision \(5 bytes\)/,
  );
  const badAlarm = buildDb({ alarm: { entries: [[new Uint8Array([0x08, 0xff]), ""]] } });
  await rejects(
    () => readStatus(writeDb(dir, "alarm.db", badAlarm.file)),
    /bucket "alarm": entry 0 is a cut-short protobuf/,
  );
  const unknown = buildDb({ alarm: { entries: [[alarmKey(5n, 7), ""]] } });
  const s = await readStatus(writeDb(dir, "unknown.db", unknown.file), ETCD);
  assert.deepEqual(s.alarms, [{
    memberId: "5",
    memberIdHex: "0000000000000005",
    type: "UNKNOWN",
    typeCode: 7,
  }]);
});

// ---------------------------------------------------------------------------------------------
// A live etcd: the reader agrees with etcdctl on a fresh copy, and reads a db etcd holds open.

Deno.test(
  "readStatus() of a raw copy and a saved snapshot from a live etcd matches etcdctl",
  needs("etcd"),
  async () => {
    assertTool("etcd");
    const dir = tempDir();
    const etcd = await startEtcd(dir, { ports: "free", token: "etcd-db-test" });
    try {
      const gw = etcd.gateway;
      for (let i = 0; i < 50; i++) await gw.put(`/test/${i}`, `value ${i}`);
      await gw.put("/test/big", new Uint8Array(30_000).fill(0x42));
      await gw.del("/test/7");
      const lease = await gw.leaseGrant(600);
      const last = await gw.put("/test/leased", "v", lease);
      await gw.alarm("ACTIVATE", await gw.memberId(), "CORRUPT");
      await new Promise((r) => setTimeout(r, 300));
      // The reader takes no lock: it reads the db etcd holds open.
      assert.equal(await readRevision(etcd.dbPath), last);
      const raw = join(dir, "raw.db");
      copyFileSync(etcd.dbPath, raw);
      const saved = join(dir, "saved.db");
      await etcdctl(["--endpoints", etcd.url, "snapshot", "save", saved]);
      for (const path of [raw, saved]) {
        const s = await readStatus(path, ETCD);
        assert.equal(formatStatusJson(s, "3.4"), (await etcdctlStatus(path, "json")).stdout, path);
        assert.equal(
          formatStatusTable(s, "3.4"),
          (await etcdctlStatus(path, "table")).stdout,
          path,
        );
        assert.equal(s.revision, last);
        assert.equal(s.totalKeyLive, 51);
        assert.deepEqual(s.alarms.map((a) => a.type), ["CORRUPT"]);
      }
    } finally {
      await etcd.stop();
    }
  },
);

Deno.test(
  "keyHistoryHash() equals etcdctl endpoint hashkv --rev R of a live etcd after a compaction to C",
  needs("etcd"),
  async () => {
    assertTool("etcd");
    const dir = tempDir();
    const etcd = await startEtcd(dir, { ports: "free", token: "etcd-db-hashkv" });
    try {
      const gw = etcd.gateway;
      for (let i = 0; i < 20; i++) await gw.put(`/k/${i}`, `v${i}`);
      for (let i = 0; i < 10; i++) await gw.put(`/k/${i}`, `w${i}`);
      for (let i = 10; i < 14; i++) await gw.del(`/k/${i}`);
      await gw.put("/k/10", "back after its deletion");
      const compactAt = await gw.put("/k/mark", "c");
      for (let i = 0; i < 5; i++) await gw.put(`/k/${i}`, `x${i}`); // supersede kept entries
      await gw.del("/k/15");
      const last = await gw.put("/k/end", "e");
      await new Promise((r) => setTimeout(r, 300));
      const before = join(dir, "before.db");
      copyFileSync(etcd.dbPath, before);
      await gw.compact(compactAt);
      await new Promise((r) => setTimeout(r, 300));
      const after = join(dir, "after.db");
      copyFileSync(etcd.dbPath, after);
      assert.deepEqual(await readHistorySpan(after), {
        revision: last,
        compactRevision: compactAt,
      });
      for (const at of [compactAt + 1, compactAt + 3, last]) {
        const out = await etcdctl([
          "--endpoints",
          etcd.url,
          "endpoint",
          "hashkv",
          "--rev",
          String(at),
          "-w",
          "json",
        ]);
        assert.match(out, new RegExp(`"compact_revision":${compactAt}\\b`));
        const expected = Number(out.match(/"hash":(\d+)/)?.[1]);
        for (const path of [before, after]) {
          const got = await keyHistoryHash(path, at, compactAt);
          assert.equal(got.hash, expected, `${path} at ${at}`);
          const status = await readStatus(path, {
            history: { uptoRevision: at, sinceRevision: compactAt },
          });
          assert.equal(status.history?.hash, expected, `one pass: ${path} at ${at}`);
        }
      }
    } finally {
      await etcd.stop();
    }
  },
);

Deno.test("a copy cut to any page boundary never reads as valid with a wrong size", async () => {
  const dir = tempDir();
  const path = join(dir, "cut.db");
  copyFileSync(MAIN, path);
  for (const pages of [40, 20, 2, 1]) {
    truncateSync(path, pages * 4096);
    await rejects(() => readStatus(path), /file is cut short|file is too small|no valid meta page/);
  }
});
