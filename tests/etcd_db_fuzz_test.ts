/**
 * Fuzz: 1,200 seeded, deterministic mutations of real etcd db files. Every read either
 * succeeds or throws EtcdDbError (never another exception), finishes quickly (no loop, no
 * huge allocation), and the fast path, the full read and the verdict agree with each other.
 * A failing case is kept on disk and named in the failure, with its seed and mutations.
 * Explore further with e.g. `FUZZ_SEED=7 FUZZ_ITERATIONS=20000 deno test -A tests/etcd_db_fuzz_test.ts`.
 */

import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fnv1a64 } from "../lib/db/bbolt.ts";
import {
  checkIntegrity,
  EtcdDbError,
  keyHistoryHash,
  readRevision,
  readStatus,
} from "../lib/db/etcd_db.ts";
import { mulberry32 } from "./random.ts";

const FIXTURES = new URL("../fixtures/db/", import.meta.url).pathname;
/** Fixed, so CI is deterministic; FUZZ_SEED and FUZZ_ITERATIONS explore further. */
const SEED = Number(Deno.env.get("FUZZ_SEED") ?? 0x5eed_e7cd);
const ITERATIONS = Number(Deno.env.get("FUZZ_ITERATIONS") ?? 1200);
/** Each call on these small files takes a few ms; a loop or a runaway would take far longer. */
const CALL_LIMIT_MS = 1000;
const PAGE = 4096;

const BASES = [
  { file: "etcd-3.4.db", since: 402, upto: 450 },
  { file: "history-a.rev41.db", since: 0, upto: 30 },
  { file: "etcd-3.4.snapshot.db", since: 402, upto: 482 },
].map((b) => ({ ...b, data: new Uint8Array(readFileSync(join(FIXTURES, b.file))) }));

type Mutation = (d: Uint8Array, r: Rand) => { data: Uint8Array; what: string };

class Rand {
  constructor(readonly next: () => number) {}
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)];
  }
  /** Values that tend to break readers: 0, 1, boundaries, all ones, and noise. */
  interesting(pages: number): bigint {
    return this.pick([
      0n,
      1n,
      2n,
      BigInt(pages - 1),
      BigInt(pages),
      BigInt(pages + 1),
      0xffffn,
      0xffff_ffffn,
      0xffff_ffff_ffff_ffffn,
      1n << 53n,
      BigInt(this.int(0x1_0000_0000)),
    ]);
  }
}

function setField(d: Uint8Array, at: number, width: 2 | 4 | 8, value: bigint): void {
  if (at + width > d.length) return;
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength);
  if (width === 2) v.setUint16(at, Number(value & 0xffffn), true);
  else if (width === 4) v.setUint32(at, Number(value & 0xffff_ffffn), true);
  else v.setBigUint64(at, value, true);
}

const MUTATIONS: Mutation[] = [
  function flipBytes(d, r) {
    const n = 1 + r.int(16);
    for (let i = 0; i < n; i++) d[r.int(d.length)] ^= 1 + r.int(255);
    return { data: d, what: `flip ${n} bytes` };
  },
  function pageHeaderField(d, r) {
    const pages = Math.floor(d.length / PAGE);
    const page = 2 + r.int(pages - 2);
    const [off, width] = r.pick([[0, 8], [8, 2], [10, 2], [12, 4]] as const);
    const value = r.interesting(pages);
    setField(d, page * PAGE + off, width, value);
    return { data: d, what: `page ${page} header +${off} = ${value}` };
  },
  function elementField(d, r) {
    const pages = Math.floor(d.length / PAGE);
    const page = 2 + r.int(pages - 2);
    const elem = r.int(64);
    const [off, width] = r.pick([[0, 4], [4, 4], [8, 4], [12, 4], [8, 8]] as const);
    const value = r.interesting(pages);
    setField(d, page * PAGE + 16 + elem * 16 + off, width, value);
    return { data: d, what: `page ${page} element ${elem} +${off} = ${value}` };
  },
  function zeroPage(d, r) {
    const page = r.int(Math.floor(d.length / PAGE));
    d.fill(0, page * PAGE, (page + 1) * PAGE);
    return { data: d, what: `zero page ${page}` };
  },
  function copyPage(d, r) {
    const pages = Math.floor(d.length / PAGE);
    const from = r.int(pages);
    const to = 2 + r.int(pages - 2);
    d.copyWithin(to * PAGE, from * PAGE, (from + 1) * PAGE);
    return { data: d, what: `copy page ${from} over ${to}` };
  },
  function truncate(d, r) {
    const at = r.next() < 0.5 ? r.int(d.length) : r.int(d.length / PAGE) * PAGE;
    return { data: d.subarray(0, at), what: `cut at ${at}` };
  },
  function metaField(d, r) {
    // A meta page that passes its checksum but says something wrong.
    const slot = r.int(2);
    const pages = Math.floor(d.length / PAGE);
    const [off, width] = r.pick([[24, 4], [32, 8], [48, 8], [56, 8], [64, 8]] as const);
    const value = r.interesting(pages);
    setField(d, slot * PAGE + off, width, value);
    setField(d, slot * PAGE + 72, 8, fnv1a64(d.subarray(slot * PAGE + 16, slot * PAGE + 72)));
    return { data: d, what: `meta ${slot} +${off} = ${value} (checksum fixed)` };
  },
  function appendGarbage(d, r) {
    const extra = new Uint8Array(r.int(3 * PAGE)).map(() => r.int(256));
    const out = new Uint8Array(d.length + extra.length);
    out.set(d);
    out.set(extra, d.length);
    return { data: out, what: `append ${extra.length} bytes` };
  },
];

type Outcome = { ok: true; value: unknown } | { ok: false; error: EtcdDbError };

async function bounded(call: string, fn: () => Promise<unknown>, describe: () => string) {
  const start = performance.now();
  let outcome: Outcome;
  try {
    outcome = { ok: true, value: await fn() };
  } catch (error) {
    if (!(error instanceof EtcdDbError)) {
      throw new Error(`${call} threw ${error} on ${describe()}`, { cause: error });
    }
    outcome = { ok: false, error };
  }
  const ms = performance.now() - start;
  assert.ok(ms < CALL_LIMIT_MS, `${call} took ${ms.toFixed(0)} ms on ${describe()}`);
  return outcome;
}

Deno.test(`${ITERATIONS} seeded mutations of real db files give EtcdDbError or a consistent read, quickly`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "etcd-db-fuzz-"));
  const rand = new Rand(mulberry32(SEED));
  const tally = { read: 0, refused: 0, metaWarnings: 0 };
  for (let i = 0; i < ITERATIONS; i++) {
    const base = rand.pick(BASES);
    let data: Uint8Array = base.data.slice();
    const applied: string[] = [];
    for (let n = 1 + rand.int(3); n > 0; n--) {
      const m = rand.pick(MUTATIONS)(data, rand);
      data = m.data;
      applied.push(m.what);
    }
    const path = join(dir, `case-${i}.db`);
    writeFileSync(path, data);
    const describe = () =>
      `case ${i} (seed 0x${SEED.toString(16)}, ${base.file}: ${
        applied.join(", ")
      }; kept at ${path})`;
    const revision = await bounded("readRevision()", () => readRevision(path), describe);
    const status = await bounded("readStatus()", () => readStatus(path), describe);
    await bounded(
      "keyHistoryHash()",
      () => keyHistoryHash(path, base.upto, base.since),
      describe,
    );
    const report = await bounded("checkIntegrity()", () => checkIntegrity(path), describe);
    assert.ok(report.ok, `checkIntegrity() rejected on ${describe()}`);
    const verdict = report.value as Awaited<ReturnType<typeof checkIntegrity>>;
    // The full read and the verdict agree; a good full read implies a good fast path.
    assert.equal(verdict.ok, status.ok, `verdict and full read disagree on ${describe()}`);
    if (status.ok) {
      const s = status.value as Awaited<ReturnType<typeof readStatus>>;
      assert.ok(revision.ok, `fast path failed where the full read passed on ${describe()}`);
      assert.equal(revision.value, s.revision, describe());
      if (s.warnings.length > 0) tally.metaWarnings++;
      tally.read++;
    } else {
      assert.ok(status.error.message.includes(path), describe());
      assert.ok(status.error.problems.length > 0);
      tally.refused++;
    }
    // Only a failing case (which threw above) stays on disk.
    Deno.removeSync(path);
  }
  Deno.removeSync(dir, { recursive: true });
  console.log(`fuzz: ${JSON.stringify(tally)}`);
  // Both outcomes must occur, or the mutations are too weak or too strong to mean anything.
  assert.ok(tally.read > ITERATIONS / 20, `only ${tally.read} mutated files read`);
  assert.ok(tally.refused > ITERATIONS / 2, `only ${tally.refused} mutated files refused`);
  assert.ok(tally.metaWarnings > 0, "no mutation left a single valid meta page");
});
