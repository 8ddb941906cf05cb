/**
 * What status spends its time on, and what it does not: the sha256 of a copy unchanged since it
 * was hashed is not taken again (the file's identity says so; `--rehash` takes it anyway; a
 * changed copy is hashed and refused), the destructive steps always hash, and etcdctl's own
 * hash (CRC-32C over the whole db) is computed only with `--etcd-hash`.
 */

import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main as status } from "../tasks/02_status.ts";
import { main as extract } from "../tasks/01_extract.ts";
import { fakeWorld } from "./replay.ts";
import {
  extractRecs,
  makeCopies,
  NODES,
  NODES_FLAG,
  SEED,
  settled,
  statusRecs,
  tempOut,
} from "./scenario.ts";
import { sha256File } from "../lib/db/sha256.ts";
import { COMPARE_CRC, nativeReader, workerReader } from "../lib/db/reader.ts";
import { keyHistoryHash } from "../lib/db/etcd_db.ts";
import {
  fileTimes,
  hashWithIdentity,
  type Manifest,
  RACY_MS,
  settlesAt,
  verifyCopy,
} from "../lib/recovery/manifest.ts";

const [N10, , N12] = NODES;

const manifestOf = (out: string): Manifest =>
  JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));

/** A status run whose sha256 calls are counted (the real sha256 of the file). */
async function countedStatus(out: string, args: string[] = [], nodes = NODES) {
  const w = fakeWorld(statusRecs(out, nodes));
  const hashed: string[] = [];
  w.deps.db = {
    ...w.deps.db,
    sha256: (path) => {
      hashed.push(path.match(/db\.([^/]+)\/db$/)![1]);
      return sha256File(path);
    },
  };
  const code = await status([...NODES_FLAG, "--out", out, ...args], w.deps);
  w.replay.assertDone();
  return { code, hashed: hashed.sort(), stderr: w.stderr(), stdout: w.stdout() };
}

Deno.test("status hashes a copy once: unchanged since, it is not hashed again (and says so); --rehash hashes; a changed copy is hashed and refused", async () => {
  const out = tempOut();
  makeCopies(out);
  for (const n of NODES) await settled(join(out, `db.${n}`, "db"));

  // no identity in the manifest yet: every copy is hashed, and its identity recorded
  const first = await countedStatus(out);
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(first.hashed, [...NODES].sort());
  for (const n of NODES) {
    const id = manifestOf(out).copies[n].hashed!;
    assert.equal(id.size, statSync(join(out, `db.${n}`, "db")).size, n);
    assert.equal(id.ino, statSync(join(out, `db.${n}`, "db")).ino, n);
  }
  assert.doesNotMatch(first.stderr, /sha256 not taken again/);

  const second = await countedStatus(out);
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(second.hashed, []);
  assert.match(
    second.stderr,
    /sha256 not taken again for 192\.168\.53\.10, 192\.168\.53\.11, 192\.168\.53\.12: file unchanged since it was hashed \(\d{4}-\d\d-\d\dT[\d:]+Z: same inode, size, mtime, ctime\); --rehash to hash again/,
  );
  assert.match(second.stderr, new RegExp(`${SEED.replaceAll(".", "\\.")} .* yes +yes +seed`));

  // --json says how each sha256 was found to match
  const json = await countedStatus(out, ["--json"]);
  const doc = JSON.parse(json.stdout);
  for (const c of doc.copies) {
    assert.equal(c.sha256Check.how, "unchanged", c.node);
    assert.equal(c.sha256Check.hashedAt, manifestOf(out).copies[c.node].hashed!.hashedAt);
  }

  const rehash = await countedStatus(out, ["--rehash"]);
  assert.equal(rehash.code, 0, rehash.stderr);
  assert.deepEqual(rehash.hashed, [...NODES].sort());
  assert.equal(
    JSON.parse((await countedStatus(out, ["--rehash", "--json"])).stdout).copies[0].sha256Check.how,
    "hashed",
  );

  // one byte changed, same size: the change time moves, so it is hashed, and refused
  const file = join(out, `db.${N12}`, "db");
  const body = readFileSync(file, "latin1");
  writeFileSync(file, body.slice(0, -1) + "X");
  const changed = await countedStatus(out, [], NODES.filter((n) => n !== N12));
  assert.deepEqual(changed.hashed, [N12]);
  assert.equal(changed.code, 2, changed.stderr);
  assert.match(changed.stderr, /192\.168\.53\.12 +- .* no .*sha256 differs from the manifest/);
});

Deno.test("verifyCopy() trusts an unchanged file only when asked (the read-only looks); the destructive steps hash every time", async () => {
  const out = tempOut();
  makeCopies(out);
  await settled(join(out, `db.${N10}`, "db"));
  const file = join(out, `db.${N10}`, "db");
  const { hashed } = await hashWithIdentity(file);
  assert.ok(hashed, "a file last changed in an earlier second gets an identity");
  const manifest = manifestOf(out);
  manifest.copies[N10].hashed = hashed;
  const calls: string[] = [];
  const hash = (p: string) => (calls.push(p), sha256File(p));
  // a destructive step's check (no trustUnchanged): hashed although unchanged
  const full = await verifyCopy(out, manifest, N10, hash);
  assert.equal(full.ok && full.how, "hashed");
  assert.deepEqual(calls, [file]);
  calls.length = 0;
  assert.deepEqual(await verifyCopy(out, manifest, N10, hash, { trustUnchanged: true }), {
    ok: true,
    how: "unchanged",
  });
  assert.deepEqual(calls, []);
});

Deno.test("hashWithIdentity() keeps no identity for a file changed just before its hashing starts: 50 ms by its mtime, or within its ctime's second (racily clean)", async () => {
  const out = tempOut();
  makeCopies(out);
  const file = join(out, `db.${N10}`, "db");
  const { mtimeMs, ctimeMs } = fileTimes(file)!;
  const settles = settlesAt({ mtimeMs, ctimeMs });
  assert.ok(settles >= Math.floor(ctimeMs / 1000) * 1000 + 1000 + RACY_MS);
  assert.ok(settles > mtimeMs + RACY_MS);
  for (const start of [mtimeMs + RACY_MS - 1, settles - 1]) {
    assert.equal((await hashWithIdentity(file, sha256File, () => start)).hashed, undefined);
  }
  const later = await hashWithIdentity(file, sha256File, () => settles);
  assert.equal(later.hashed?.mtimeMs, mtimeMs);
  assert.equal(later.hashed?.ino, statSync(file).ino);
});

Deno.test("status computes etcdctl's hash only with --etcd-hash: the HASH column and the reader's option follow the flag", async () => {
  const out = tempOut();
  makeCopies(out);
  for (const [args, wanted] of [[[], false], [["--etcd-hash"], true]] as const) {
    const w = fakeWorld(statusRecs(out));
    const asked: boolean[] = [];
    const read = w.deps.db.status;
    w.deps.db = {
      ...w.deps.db,
      status: (path, history, options) => {
        asked.push(options?.etcdHash === true);
        return read(path, history, options);
      },
    };
    assert.equal(await status([...NODES_FLAG, "--out", out, ...args], w.deps), 0, w.stderr());
    w.replay.assertDone();
    assert.deepEqual(asked, [wanted, wanted, wanted]);
    const header = /NODE +REVISION +KEYS +SIZE +HASH +ALARMS/;
    if (wanted) assert.match(w.stderr(), header);
    else {
      assert.doesNotMatch(w.stderr(), header);
      assert.match(w.stderr(), /NODE +REVISION +KEYS +SIZE +ALARMS +INTACT/);
    }
  }
});

Deno.test("extract records each copy's identity with its sha256, so the status after it hashes none", async () => {
  const out = tempOut();
  const x = fakeWorld(extractRecs(out));
  // extract waits (at most a second) until a copy's times can vouch for it: on the real clock
  x.deps.sleep = (ms) => new Promise((go) => setTimeout(go, ms));
  assert.equal(await extract([...NODES_FLAG, "--out", out], x.deps), 0, x.stderr());
  x.replay.assertDone();
  for (const n of NODES) {
    const record = manifestOf(out).copies[n];
    assert.equal(record.hashed?.ino, statSync(join(out, record.file)).ino, n);
  }
  const after = await countedStatus(out);
  assert.equal(after.code, 0, after.stderr);
  assert.deepEqual(after.hashed, []);
  assert.match(
    after.stderr,
    /sha256 not taken again for 192\.168\.53\.10, 192\.168\.53\.11, 192\.168\.53\.12/,
  );
});

Deno.test("the readers status uses compare copies with the native CRC-32, the same in a worker as on this thread", async () => {
  const file = new URL("../fixtures/db/history-a.rev41.db", import.meta.url).pathname;
  const span = await nativeReader.span(file);
  const range = { uptoRevision: span.revision, sinceRevision: span.compactRevision };
  const here = await nativeReader.status(file, range);
  const controller = new AbortController();
  const worker = await workerReader(controller.signal).status(file, range);
  const second = await nativeReader.history(file, range.uptoRevision, range.sinceRevision);
  assert.equal(COMPARE_CRC, "crc32");
  for (const h of [here.history, worker.history, second]) {
    assert.equal(h?.crc, "crc32");
    assert.equal(h?.hash, here.history?.hash);
  }
  const etcds = await keyHistoryHash(file, range.uptoRevision, range.sinceRevision);
  assert.equal(etcds.crc, "crc32c", "keyHistoryHash's default is etcd's own CRC");
  assert.notEqual(etcds.hash, here.history?.hash);
  assert.equal(here.hash, null, "no etcdctl hash unless asked");
});
