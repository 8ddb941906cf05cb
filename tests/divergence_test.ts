/**
 * The native reader on real db files made by etcd 3.4 (fixtures/db), with no etcdutl or
 * etcdctl installed: status still names the seed, and a highest-revision copy whose history
 * disagrees with the majority is refused, naming the node the majority points to.
 */

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { main as status } from "../tasks/02_status.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { nativeReader } from "../lib/db/reader.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import { brokenClusterRecs, NODES_FLAG, preflightRecs, tempOut } from "./scenario.ts";
import { main as extract } from "../tasks/01_extract.ts";

const FIXTURES = new URL("../fixtures/db/", import.meta.url).pathname;

/** .10 and .12 share history A (revisions 41 and 31); .11 has history B, revision 46. */
const COPIES: Record<string, string> = {
  "192.168.53.10": "history-a.rev41.db",
  "192.168.53.11": "history-b.rev46.db",
  "192.168.53.12": "history-a.rev31.db",
};

/** Puts the real files in OUT and records them with extract (no cp: they exist). */
async function realCopies(out: string): Promise<void> {
  for (const [node, file] of Object.entries(COPIES)) {
    mkdirSync(join(out, `db.${node}`), { recursive: true });
    copyFileSync(join(FIXTURES, file), join(out, `db.${node}`, "db"));
  }
  const w = fakeWorld([]);
  assert.equal(await extract([...NODES_FLAG, "--out", out], w.deps), 0, w.stderr());
}

/** Neither etcdutl nor etcdctl is installed. */
function noTools(out: string): Recording[] {
  return Object.keys(COPIES).flatMap((node) => {
    const file = join(out, `db.${node}`, "db");
    return ["etcdutl", "etcdctl"].map((bin) => ({
      cmd: `${bin} snapshot status ${file} -w json`,
      stderr: `bash: line 1: ${bin}: command not found\n`,
      code: 127,
    }));
  });
}

Deno.test("status reads real db files with no etcdutl or etcdctl, and flags the copy that diverged", async () => {
  const out = tempOut();
  await realCopies(out);
  const w = fakeWorld(noTools(out));
  w.deps.db = nativeReader;
  const code = await status([...NODES_FLAG, "--out", out, "--json"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const json = JSON.parse(w.stdout());
  assert.equal(json.seed, "192.168.53.11", "the seed is still the highest revision");
  assert.deepEqual(json.copies.map((c: { revision: number }) => c.revision), [41, 46, 31]);
  assert.deepEqual(json.copies.map((c: { agrees: string }) => c.agrees), ["yes", "no", "yes"]);
  assert.equal(json.agreement.highestDisagrees, true);
  assert.equal(json.agreement.majorityPick, "192.168.53.10");
  assert.deepEqual(json.agreement.range, { sinceRevision: 0, uptoRevision: 31 });
  assert.match(
    w.stderr(),
    /the highest-revision copy \("192\.168\.53\.11"\) DISAGREES with the majority \(192\.168\.53\.10, 192\.168\.53\.12\) on revisions 1-31; the majority points to "192\.168\.53\.10"/,
  );
  assert.match(
    w.stderr(),
    /wipe and recover refuse seed 192\.168\.53\.11 without --force \(it disagrees with the majority\): use --seed 192\.168\.53\.10 \(revision 41\)/,
  );
});

Deno.test("wipe refuses the diverged highest copy, naming the majority's node; --seed that node goes on", async () => {
  const out = tempOut();
  await realCopies(out);
  const w = fakeWorld([...preflightRecs(), ...noTools(out)]);
  w.deps.db = nativeReader;
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(w.stderr(), /The copy of "192\.168\.53\.11" disagrees with the majority/);
  assert.match(w.stderr(), /use --seed 192\.168\.53\.10, or --force/);
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);

  // the majority's node is accepted although its revision (41) is below 46
  const ok = fakeWorld([
    ...preflightRecs(),
    ...noTools(out),
    ...brokenClusterRecs(),
  ], { answers: ["n"] });
  ok.deps.db = nativeReader;
  const declined = await wipe(
    [...NODES_FLAG, "--out", out, "--seed", "192.168.53.10"],
    ok.deps,
  );
  assert.equal(declined, 3, ok.stderr());
  assert.match(ok.stderr(), /About to wipe etcd on .* \(seed 192\.168\.53\.10\)/);
  ok.replay.assertDone();
});

/** The native reader, counting full reads and second passes for the history hash. */
function countingReader() {
  const calls = { status: 0, history: 0 };
  const reader: typeof nativeReader = {
    span: nativeReader.span,
    status: (path, range) => (calls.status++, nativeReader.status(path, range)),
    history: (path, upto, since) => (calls.history++, nativeReader.history(path, upto, since)),
  };
  return { reader, calls };
}

Deno.test("status reads each copy whole once: the history hash comes from the same pass", async () => {
  const out = tempOut();
  await realCopies(out);
  const w = fakeWorld(noTools(out));
  const { reader, calls } = countingReader();
  w.deps.db = reader;
  assert.equal(await status([...NODES_FLAG, "--out", out, "--json"], w.deps), 0, w.stderr());
  assert.deepEqual(calls, { status: 3, history: 0 });
  // Progress: one line per copy as it is read.
  for (const node of Object.keys(COPIES)) {
    assert.match(
      w.stderr(),
      new RegExp(`${node.replaceAll(".", "\\.")}: read \\d+ kB \\(revision \\d+\\)`),
    );
  }
  const json = JSON.parse(w.stdout());
  assert.deepEqual(json.copies.map((c: { agrees: string }) => c.agrees), ["yes", "no", "yes"]);
  assert.deepEqual(json.agreement.range, { sinceRevision: 0, uptoRevision: 31 });
});

Deno.test("a copy that fails its full read changes the range: the others are hashed again over it", async () => {
  const out = tempOut();
  await realCopies(out);
  // .12 (revision 31, the lowest) fails its full read; the common range becomes 1-41.
  const file12 = join(out, "db.192.168.53.12", "db");
  const w = fakeWorld(noTools(out));
  const { reader, calls } = countingReader();
  w.deps.db = {
    ...reader,
    status: (path, range) =>
      path === file12
        ? Promise.reject(new Error(`Cannot read etcd db "${path}": page 9: invalid type`))
        : reader.status(path, range),
  };
  // --force: without it, status names no seed while a copy is unusable.
  assert.equal(
    await status([...NODES_FLAG, "--out", out, "--json", "--force"], w.deps),
    0,
    w.stderr(),
  );
  assert.deepEqual(calls, { status: 2, history: 2 });
  const json = JSON.parse(w.stdout());
  assert.deepEqual(json.agreement.range, { sinceRevision: 0, uptoRevision: 41 });
  assert.match(w.stderr(), /192\.168\.53\.12/);
  // Never silent: the copy left out is named, with why, and no verdict claims every copy.
  assert.deepEqual(json.agreement.notCompared.map((n: { node: string }) => n.node), [
    "192.168.53.12",
  ]);
  assert.match(json.agreement.notCompared[0].reason, /^no usable copy \(Cannot read etcd db/);
  assert.deepEqual(json.copies.map((c: { agrees: string }) => c.agrees), ["split", "split", "-"]);
  assert.match(w.stderr(), /no majority: the copies do not agree on revisions 1-41/);
  // The one-pass hashes were over 1-31: not shown next to a verdict over 1-41.
  for (const copy of json.copies) assert.equal("history" in copy, false, JSON.stringify(copy));
});
