import assert from "node:assert/strict";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { main as extract } from "../tasks/01_extract.ts";
import { main as status } from "../tasks/02_status.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { main as waitTask } from "../tasks/04_wait.ts";
import { main as bootstrap } from "../tasks/05_bootstrap.ts";
import { main as disarm } from "../tasks/06_disarm.ts";
import { main as rejoin } from "../tasks/07_rejoin.ts";
import { main as verify } from "../tasks/08_verify.ts";
import type { Shell } from "../lib/run/deps.ts";
import { InterruptedError } from "../lib/run/errors.ts";
import type { JournalEntry } from "../lib/run/journal.ts";
import { type FakeWorld, fakeWorld, fx, type Recording, TORN } from "./replay.ts";
import {
  brokenClusterRecs,
  extractRecs,
  fxFor,
  makeCopies,
  NODES,
  NODES_FLAG,
  P,
  preflightRecs,
  rec,
  recordSeed,
  rollingRejoinRecs,
  SEED,
  statusRecs,
  T,
  tempOut,
  verifyRecs,
  VIP,
  wipeRecs,
} from "./scenario.ts";

const [N10, , N12] = NODES;

// ---- helpers --------------------------------------------------------------------------------

/** `n` copies of a recording for a poll that may stop before using them all. */
function repeat(r: Recording, n: number): Recording[] {
  return Array.from({ length: n }, () => ({ ...r, optional: true }));
}

function journal(out: string): JournalEntry[] {
  return readFileSync(join(out, "journal.jsonl"), "utf8").split("\n").filter(Boolean).map((l) =>
    JSON.parse(l) as JournalEntry
  );
}

/** The `end` entry of the last run in OUT/journal.jsonl. */
function lastEnd(out: string): { exitCode: number; error?: string } {
  const end = journal(out).findLast((e) => e.type === "end");
  assert.ok(end && end.type === "end", "journal has an end entry");
  return end;
}

function report(out: string): string {
  return readFileSync(join(out, "report.md"), "utf8");
}

function manifest(out: string) {
  return JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
}

/** `N times` from a deadline message, to compare with the calls the replay saw. */
function attempts(stderr: string): number {
  const m = stderr.match(/checked every 1s to 5s, (\d+) times/);
  assert.ok(m, `deadline message with attempts in:\n${stderr}`);
  return Number(m[1]);
}

/** Records the env each command was given (the replay sees only the command line). */
function captureEnv(w: FakeWorld): { cmd: string; env?: Record<string, string | undefined> }[] {
  const seen: { cmd: string; env?: Record<string, string | undefined> }[] = [];
  const original = w.deps.$;
  w.deps.$ = new Proxy(original, {
    apply(target, thisArg, args) {
      const result = Reflect.apply(target, thisArg, args);
      const [options] = args;
      if (options === null || typeof options !== "object" || Array.isArray(options)) return result;
      const env = (options as { env?: Record<string, string | undefined> }).env;
      return new Proxy(result, {
        apply(inner, innerThis, innerArgs) {
          seen.push({ cmd: (innerArgs[1] as string[]).join(" "), env });
          return Reflect.apply(inner, innerThis, innerArgs);
        },
      });
    },
  }) as Shell;
  return seen;
}

const refusedText = (node: string, verb: string) =>
  `error ${verb}: rpc error: code = Unavailable desc = connection error: desc = "transport: ` +
  `Error while dialing: dial tcp ${node}:50000: connect: connection refused"\n`;

const cpCmd = (out: string, node: string) =>
  T(node, "cp", "/var/lib/etcd/member/snap/db", join(out, `db.${node}.partial`));

// ---- 1 extract ------------------------------------------------------------------------------

Deno.test("extract: a node unreachable during cp fails with exit 1, naming it; the other two are copied", async () => {
  const out = tempOut();
  const w = fakeWorld([
    rec.cp(out, N10),
    rec.cp(out, SEED),
    { cmd: cpCmd(out, N12), stderr: refusedText(N12, "copying"), code: 1 },
  ]);
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ cp /).length, 3);
  assert.match(w.stderr(), /error: 192\.168\.53\.12: copy failed: .*connection refused/);
  assert.match(w.stderr(), /error: Copied 2 of 3 nodes; no copy from "192\.168\.53\.12"/);
  const m = manifest(out);
  assert.deepEqual(Object.keys(m.copies).sort(), [N10, SEED]);
  assert.match(m.failures[N12], /connection refused/);
  assert.equal(readFileSync(join(out, `db.${N10}`, "db"), "utf8"), `raw db of ${N10}`);
  assert.equal(existsSync(join(out, `db.${N12}`)), false);
  assert.equal(existsSync(join(out, `db.${N12}.partial`)), false, "no half copy left behind");
  assert.match(lastEnd(out).error ?? "", /no copy from "192\.168\.53\.12"/);
  assert.match(report(out), /\| 192\.168\.53\.12 \| - \| - \| - \| - \| .*connection refused/);
});

Deno.test("extract: a torn copy (cp exit 0, file cut short) is copied again and the good one kept", async () => {
  const out = tempOut();
  const w = fakeWorld([
    rec.cp(out, N10),
    rec.cp(out, SEED),
    rec.cp(out, N12, `${TORN} half of the db`),
    rec.cp(out, N12),
  ]);
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/-n 192\.168\.53\.12 cp /).length, 2);
  assert.match(w.stderr(), /192\.168\.53\.12: reading the copy back \(\d+ B\)…/);
  assert.match(
    w.stderr(),
    /warning: 192\.168\.53\.12: the copy is not a readable etcd db \(file is cut short: .*\); kept in .*db\.192\.168\.53\.12\.torn-1, copying again/,
  );
  // The revision read back from the copy (the fixture of 192.168.53.12 holds 1843290).
  assert.match(
    w.stderr(),
    /ok: 192\.168\.53\.12: .*db\.192\.168\.53\.12\/db .*revision 1843290, sha256/,
  );
  assert.equal(readFileSync(join(out, `db.${N12}`, "db"), "utf8"), `raw db of ${N12}`);
  assert.equal(existsSync(join(out, `db.${N12}.partial`)), false);
  assert.equal(existsSync(join(out, `db.${N12}.torn-1`)), false, "gone once a whole copy is kept");
  assert.deepEqual(Object.keys(manifest(out).copies).sort(), [N10, SEED, N12]);
  assert.equal(manifest(out).copies[N12].unreadable, undefined);
  assert.deepEqual(manifest(out).failures, {});
});

Deno.test("extract: a copy torn twice is kept and recorded, and extract exits 1 naming the node", async () => {
  const out = tempOut();
  const torn = `${TORN} half of the db`;
  const w = fakeWorld([
    rec.cp(out, N10),
    rec.cp(out, SEED),
    rec.cp(out, N12, torn),
    rec.cp(out, N12, torn),
  ]);
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/-n 192\.168\.53\.12 cp /).length, 2, "one retry, not more");
  assert.match(
    w.stderr(),
    /error: 192\.168\.53\.12: .*db\.192\.168\.53\.12\/db .*is not a readable etcd db: file is cut short/,
  );
  assert.match(
    w.stderr(),
    /error: Copied 3 of 3 nodes; the copy from "192\.168\.53\.12" is not a readable etcd db/,
  );
  assert.match(w.stderr(), /extract into a new --out to copy it again; wipe and recover refuse/);
  // Kept as the node gave it, with its sha256 and why it cannot be read.
  assert.equal(readFileSync(join(out, `db.${N12}`, "db"), "utf8"), torn);
  assert.equal(manifest(out).copies[N12].size, torn.length);
  assert.match(manifest(out).copies[N12].unreadable, /file is cut short/);
  assert.equal(existsSync(join(out, `db.${N12}.torn-1`)), false, "one torn copy is enough");
  assert.match(lastEnd(out).error ?? "", /"192\.168\.53\.12" is not a readable etcd db/);
  assert.match(
    report(out),
    /\| 192\.168\.53\.12 \| - \| - \| \d+ \| [0-9a-f]{16} \| no: file is cut short/,
  );

  // A re-run does not pass the recorded torn copy off as fine, and does not copy again.
  const again = fakeWorld([]);
  assert.equal(await extract([...NODES_FLAG, "--out", out], again.deps), 1, again.stderr());
  assert.deepEqual(again.replay.calls, []);
  assert.match(
    again.stderr(),
    /error: 192\.168\.53\.12: already copied .*sha256 matches\), but not a readable etcd db: file is cut short/,
  );
  assert.match(again.stderr(), /the copy from "192\.168\.53\.12" is not a readable etcd db/);
});

Deno.test("extract: a torn copy whose second cp fails is kept aside; both problems are named", async () => {
  const out = tempOut();
  const torn = `${TORN} half of the db`;
  const w = fakeWorld([
    rec.cp(out, N10),
    { cmd: cpCmd(out, SEED), stderr: refusedText(SEED, "copying"), code: 1 },
    rec.cp(out, N12, torn),
    { cmd: cpCmd(out, N12), stderr: refusedText(N12, "copying"), code: 1 },
  ]);
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  // The only bytes this node gave are not thrown away.
  assert.equal(readFileSync(join(out, `db.${N12}.torn-1`, "db"), "utf8"), torn);
  assert.match(w.stderr(), /warning: 192\.168\.53\.12: the torn earlier copy is kept in .*torn-1/);
  assert.match(
    w.stderr(),
    /error: Copied 1 of 3 nodes; no copy from "192\.168\.53\.11", "192\.168\.53\.12"/,
  );
  assert.deepEqual(Object.keys(manifest(out).copies), [N10]);
});

Deno.test("extract: a failed node and a torn copy in one run are both named", async () => {
  const out = tempOut();
  const torn = `${TORN} half of the db`;
  const w = fakeWorld([
    rec.cp(out, N10, torn),
    rec.cp(out, N10, torn),
    rec.cp(out, SEED),
    { cmd: cpCmd(out, N12), stderr: refusedText(N12, "copying"), code: 1 },
  ]);
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /error: Copied 2 of 3 nodes; no copy from "192\.168\.53\.12"; the copy from "192\.168\.53\.10" is not a readable etcd db/,
  );
  assert.match(w.stderr(), /fix the node's reachability .*; a node whose copy is torn/);
});

Deno.test("extract: Ctrl-C while a copy is read back stops with exit 130 and records nothing for it", async () => {
  const out = tempOut();
  const w = fakeWorld(extractRecs(out));
  const reader = w.deps.db;
  w.deps.db = {
    ...reader,
    status: (path) =>
      path.includes(N12)
        ? Promise.reject(new InterruptedError(`Interrupted while reading ${path}`))
        : reader.status(path),
  };
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 130, w.stderr());
  assert.match(w.stderr(), /error: Interrupted while reading .*db\.192\.168\.53\.12\.partial\/db/);
  assert.doesNotMatch(w.stderr(), /copying again|not a readable etcd db|could not read it back/);
  assert.equal(existsSync(join(out, `db.${N12}`)), false, "an unread copy is not kept as whole");
});

Deno.test("extract: a re-run copies only the missing node and leaves intact copies untouched", async () => {
  const out = tempOut();
  const first = fakeWorld([
    rec.cp(out, N10),
    rec.cp(out, SEED),
    { cmd: cpCmd(out, N12), stderr: refusedText(N12, "copying"), code: 1 },
  ]);
  assert.equal(await extract([...NODES_FLAG, "--out", out], first.deps), 1);
  const before = manifest(out);
  const mtime = statSync(join(out, `db.${N10}`, "db")).mtimeMs;

  const w = fakeWorld([rec.cp(out, N12)]);
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.calls, [cpCmd(out, N12)], "no cp for the intact copies");
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: already copied .*sha256 matches/);
  assert.match(w.stderr(), /ok: 192\.168\.53\.11: already copied/);
  const after = manifest(out);
  assert.deepEqual(after.copies[N10], before.copies[N10]);
  assert.deepEqual(after.copies[SEED], before.copies[SEED]);
  assert.ok(after.copies[N12], "the missing node is now copied");
  assert.deepEqual(after.failures, {});
  assert.equal(statSync(join(out, `db.${N10}`, "db")).mtimeMs, mtime, "never rewritten");
});

Deno.test("extract: an earlier copy whose bytes changed is not overwritten and is reported", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const file = join(out, `db.${N10}`, "db");
  writeFileSync(file, "bit rot in the copy");
  const w = fakeWorld([]);
  const code = await extract([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 1, w.stderr());
  assert.deepEqual(w.replay.calls, [], "no cp at all: two copies intact, one must not be redone");
  w.replay.assertDone();
  const size = `raw db of ${N10}`.length; // what makeCopies wrote and recorded
  assert.ok(
    w.stderr().includes(
      `error: ${N10}: earlier copy ${file} changed since extraction ` +
        `(size is 19, manifest says ${size}); not overwriting it`,
    ),
    w.stderr(),
  );
  assert.match(w.stderr(), /Copied 2 of 3 nodes; no copy from "192\.168\.53\.10"/);
  assert.equal(readFileSync(file, "utf8"), "bit rot in the copy", "the file is left as found");
  assert.match(manifest(out).failures[N10], /changed since extraction/);
  assert.match(lastEnd(out).error ?? "", /no copy from "192\.168\.53\.10"/);
});

Deno.test({
  name: "extract: a changed copy is still refused on the next run, never adopted as intact",
  fn: async () => {
    const out = tempOut();
    makeCopies(out);
    recordSeed(out);
    const original = manifest(out).copies[N10];
    writeFileSync(join(out, `db.${N10}`, "db"), "bit rot in the copy");
    assert.equal(await extract([...NODES_FLAG, "--out", out], fakeWorld([]).deps), 1);
    const w = fakeWorld([]);
    const code = await extract([...NODES_FLAG, "--out", out], w.deps);
    assert.equal(code, 1, w.stderr());
    assert.deepEqual(w.replay.calls, []);
    assert.match(w.stderr(), /192\.168\.53\.10: .*changed since extraction/);
    assert.notEqual(manifest(out).copies[N10]?.sha256, undefined);
    assert.equal(manifest(out).copies[N10].sha256, original.sha256);
  },
});

// ---- 2 status -------------------------------------------------------------------------------

Deno.test("status: the seed (highest revision) is printed alone on stdout, the table on stderr", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld(statusRecs(out));
  const code = await status([...NODES_FLAG, "--out", out, "--etcd-hash"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/^etcdutl snapshot status /).length, 3);
  assert.equal(w.stdout(), `${SEED}\n`);
  assert.match(w.stderr(), /NODE +REVISION +KEYS +SIZE +HASH +ALARMS +INTACT +AGREES +NOTE/);
  assert.match(
    w.stderr(),
    /192\.168\.53\.11 +1843517 +8123 +48 MB +5f8c3a1b +CORRUPT +yes +yes +seed; etcdutl agrees/,
  );
  assert.match(w.stderr(), /192\.168\.53\.12 +1843290 +8118 +48 MB +0a7d3e91 +CORRUPT +yes/);
  assert.match(w.stderr(), /ok: seed: 192\.168\.53\.11 \(revision 1843517\)/);
});

Deno.test("status: without etcdutl it falls back to etcdctl with ETCDCTL_API=3", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const file = (n: string) => join(out, `db.${n}`, "db");
  const w = fakeWorld(NODES.flatMap((n) => [
    rec.etcdutl(out, n, {
      stdout: "",
      stderr: "bash: line 1: etcdutl: command not found\n",
      code: 127,
    }),
    {
      cmd: `etcdctl snapshot status ${file(n)} -w json`,
      stdout: fx(`etcdutl-snapshot-status.${n}.json.txt`),
    },
  ]));
  const seen = captureEnv(w);
  const code = await status([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.stdout(), `${SEED}\n`);
  for (const n of NODES) {
    const ctl = seen.filter((s) => s.cmd === `etcdctl snapshot status ${file(n)} -w json`);
    assert.equal(ctl.length, 1, n);
    assert.equal(ctl[0].env?.ETCDCTL_API, "3", `etcdctl for ${n} runs with ETCDCTL_API=3`);
    const utl = seen.filter((s) => s.cmd === `etcdutl snapshot status ${file(n)} -w json`);
    assert.equal(utl.length, 1, n);
    assert.equal(utl[0].env?.ETCDCTL_API, undefined, "etcdutl gets no ETCDCTL_API");
    // etcdutl was tried first for every node
    assert.ok(w.replay.calls.indexOf(utl[0].cmd) < w.replay.calls.indexOf(ctl[0].cmd));
  }
  assert.match(w.stderr(), /192\.168\.53\.11 +1843517 .* seed/);
});

Deno.test("status: etcdutl failing on one file shows the problem in its row; the seed comes from the others", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld([
    rec.etcdutl(out, N10),
    rec.etcdutl(out, SEED),
    rec.etcdutl(out, N12, {
      stdout: "",
      stderr: "Error: failed to open database: invalid database\n",
      code: 1,
    }),
  ]);
  // --force: a copy without a revision might be the newest, so status names no seed without it.
  const code = await status([...NODES_FLAG, "--out", out, "--force"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/^etcdctl/), [], "a failing etcdutl is not retried");
  assert.equal(w.stdout(), `${SEED}\n`);
  assert.match(
    w.stderr(),
    /192\.168\.53\.12 +- +- +- +- +yes +- +etcdutl cannot read ".*db\.192\.168\.53\.12\/db": Error: failed to open database: invalid database/,
  );
  const copies = journal(out).findLast((e) => e.type === "fact" && e.key === "copies");
  assert.ok(copies?.type === "fact");
  const row12 = (copies.value as { node: string; error?: string }[]).find((c) => c.node === N12);
  assert.match(row12?.error ?? "", /invalid database/);
  assert.match(report(out), /\| 192\.168\.53\.12 \| - \| - \| .*invalid database.* \|/);
});

Deno.test("status --json prints one JSON document carrying every node and the seed", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld(statusRecs(out));
  const code = await status([...NODES_FLAG, "--out", out, "--json"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const doc = JSON.parse(w.stdout());
  assert.equal(doc.seed, SEED);
  assert.equal(doc.revision, 1843517);
  assert.deepEqual(doc.copies.map((c: { node: string }) => c.node), NODES);
  const m = manifest(out);
  for (const c of doc.copies) {
    const expected = JSON.parse(fx(`etcdutl-snapshot-status.${c.node}.json.txt`));
    assert.equal(c.revision, expected.revision, c.node);
    assert.equal(c.totalKey, expected.totalKey, c.node);
    assert.equal(c.hash, null, `${c.node}: etcdctl's hash only with --etcd-hash`);
    assert.equal(c.sha256, m.copies[c.node].sha256, c.node);
    assert.equal(c.intact, true);
    assert.equal(c.problem, null);
    assert.equal(c.crossCheck, "etcdutl agrees");
  }
  assert.doesNotMatch(w.stdout(), /^192\.168\.53\.11$/m, "no bare seed line mixed into the JSON");
});

// ---- 3 wipe ---------------------------------------------------------------------------------

/** Everything wipe asks before it resets: pre-flight, etcdutl on every copy, the alarm list. */
const beforeReset = (
  out: string,
) => [...preflightRecs(), ...statusRecs(out), ...brokenClusterRecs()];

Deno.test("wipe: a reset failing on one node exits 1 naming it; the other nodes were reset", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld([
    ...beforeReset(out),
    rec.reset(N10),
    rec.reset(SEED),
    rec.reset(N12, { stdout: "", stderr: refusedText(N12, "executing reset"), code: 1 }),
  ]);
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes", "--timeout", "1m"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(
    w.replay.callsMatching(/ reset /).map((c) => c.split(" ")[2]).sort(),
    NODES,
    "every node was sent the reset",
  );
  const firstReset = w.replay.calls.findIndex((c) => / reset /.test(c));
  assert.deepEqual(
    w.replay.calls.slice(firstReset).filter((c) => / service etcd$/.test(c)),
    [],
    "no wait after a failed reset",
  );
  assert.match(w.stderr(), /error: Reset failed on "192\.168\.53\.12": .*connection refused/);
  assert.doesNotMatch(w.stderr(), /Reset failed on "192\.168\.53\.10"/);
  assert.match(
    w.stderr(),
    /cluster state: reset accepted by 192\.168\.53\.10, 192\.168\.53\.11; FAILED on 192\.168\.53\.12/,
  );
  assert.match(w.stderr(), /\+ talosctl -e 192\.168\.53\.12 -n 192\.168\.53\.12 reset/);
  assert.match(lastEnd(out).error ?? "", /Reset failed on "192\.168\.53\.12"/);
  assert.match(report(out), /\| wipe \| failed: Reset failed on "192\.168\.53\.12"/);
  assert.match(report(out), /`talosctl -e 192\.168\.53\.12 .* reset .*` → exit 1/);
});

Deno.test({
  name: "wipe: a reset failing with no stderr reports that node's own exit code",
  fn: async () => {
    const out = tempOut();
    makeCopies(out);
    recordSeed(out);
    const w = fakeWorld([
      ...beforeReset(out),
      rec.reset(N10),
      rec.reset(SEED),
      rec.reset(N12, { stdout: "", stderr: "", code: 2 }),
    ]);
    const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
    assert.equal(code, 1, w.stderr());
    w.replay.assertDone();
    assert.match(w.stderr(), /Reset failed on "192\.168\.53\.12": exit 2/);
  },
});

Deno.test("wipe: a node that never goes down hits the deadline, saying what, how often, how long, last state", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld([
    ...beforeReset(out),
    ...NODES.map((n) => rec.reset(n)),
    rec.refused(N10),
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.refused(SEED),
    rec.service(SEED, "service-etcd.preparing.txt"),
    ...repeat(rec.service(N12, "service-etcd.running-ok.txt"), 30),
  ]);
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes", "--timeout", "1m"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  // one look at .12 was the pre-flight's, the others the wait's
  const looks = w.replay.callsMatching(/-e 192\.168\.53\.12 .* service etcd$/).length - 1;
  assert.ok(looks > 1 && looks < 30, `${looks} looks at .12`);
  assert.equal(attempts(w.stderr()), looks, "the message counts the real attempts");
  assert.match(
    w.stderr(),
    /waiting for "192\.168\.53\.12" to reboot wiped \(etcd Preparing\) \(every 1s to 5s, up to 1m\)/,
  );
  assert.match(
    w.stderr(),
    /error: Timed out waiting for "192\.168\.53\.12" to reboot wiped \(etcd Preparing\): deadline 1m \(checked every 1s to 5s, \d+ times over [0-9ms]+; last state: 192\.168\.53\.12: Running \(HEALTH OK\): Health check successful — not rebooted yet\)/,
  );
  for (const n of [N10, SEED]) {
    assert.ok(w.stderr().includes(`"${n}" to reboot wiped (etcd Preparing): done`), n);
  }
  assert.ok(w.slept() >= 60_000, "the virtual clock reached the deadline");
  assert.match(
    w.stderr(),
    /cluster state: reset sent to every node; seen wiped \(etcd Preparing\): 192\.168\.53\.1[01], 192\.168\.53\.1[01]; not seen wiped: 192\.168\.53\.12; the copies in .* are the only data/,
  );
  assert.match(lastEnd(out).error ?? "", /Timed out .* "192\.168\.53\.12"/);
  assert.match(report(out), /Outcome of the last run \(`wipe`\): failed \(exit 1\): Timed out/);
});

Deno.test("wipe without --yes and without a terminal prints the plan on stdout, exits 0, resets nothing", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld(beforeReset(out));
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);
  assert.match(w.stdout(), /^#!\/usr\/bin\/env bash\nset -euo pipefail\n/);
  for (const n of NODES) {
    assert.ok(
      w.stdout().includes(
        `talos ${n} reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false`,
      ),
      n,
    );
  }
  assert.match(
    w.stderr(),
    /No terminal \(stdin or stderr is not one: piped or redirected\?\) and no --yes: printed the plan for "wipe etcd on .*"/,
  );
  assert.match(w.stderr(), /next: review it, then run again with --yes/);
  assert.doesNotMatch(w.stderr(), /^\+ talosctl/m, "no mutating command echoed as run");
});

Deno.test("wipe on a terminal answered n exits 3 and resets nothing", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld(beforeReset(out), { answers: ["n"], env: { NO_COLOR: "1" } });
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 3, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);
  assert.match(
    w.stderr(),
    /About to wipe etcd on 192\.168\.53\.10, 192\.168\.53\.11, 192\.168\.53\.12 \(seed 192\.168\.53\.11\)\. Continue\? \[y\/N\] /,
  );
  assert.match(w.stderr(), /error: Declined: did not wipe etcd on/);
  assert.equal(w.stdout(), "");
  assert.equal(lastEnd(out).exitCode, 3);
});

Deno.test("wipe on a terminal answered y resets every node and waits until each is wiped", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld([...beforeReset(out), ...wipeRecs()], {
    answers: ["y"],
    env: { NO_COLOR: "1" },
  });
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ reset /).length, 3);
  assert.match(w.stderr(), /Continue\? \[y\/N\] /);
  // the question comes before any reset is echoed
  assert.ok(w.stderr().indexOf("Continue?") < w.stderr().indexOf("+ talosctl"));
  for (const n of NODES) {
    assert.ok(w.stderr().includes(`"${n}" to reboot wiped (etcd Preparing): done`), n);
  }
});

// ---- 4 wait ---------------------------------------------------------------------------------

Deno.test("wait: Preparing never reached ends at the deadline with a clear message", async () => {
  const out = tempOut();
  const w = fakeWorld([
    rec.refused(SEED),
    rec.refused(SEED),
    ...repeat(rec.service(SEED, "service-etcd.waiting.txt"), 20),
  ]);
  const code = await waitTask(
    [...NODES_FLAG, "--seed", SEED, "--out", out, "--timeout", "1m"],
    w.deps,
  );
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  const looks = w.replay.callsMatching(/ service etcd$/);
  assert.equal(attempts(w.stderr()), looks.length);
  // 1s, 2s while down; a new state starts again at 1s, then 2s, 3s, 4s, 5s…; the last look
  // falls on the deadline
  assert.equal(w.slept(), 60_000, "the pauses end on the deadline");
  assert.match(
    w.stderr(),
    /waiting for etcd on "192\.168\.53\.11" to be Preparing \(every 1s to 5s, up to 1m\)/,
  );
  assert.match(w.stderr(), /\[0s\] down \(unreachable\)/, "connection refused is expected");
  assert.match(
    w.stderr(),
    /error: Timed out waiting for etcd on "192\.168\.53\.11" to be Preparing: deadline 1m \(checked every 1s to 5s, 17 times over 1m; last state: Waiting \(HEALTH \?\): Waiting for volumes/,
  );
  assert.deepEqual(w.replay.callsMatching(/ (reset|bootstrap|reboot) /), []);
  assert.match(
    report(out),
    /\| wait \| failed: Timed out waiting for etcd on "192\.168\.53\.11" to be Preparing: deadline 1m/,
  );
});

// ---- 5 bootstrap ----------------------------------------------------------------------------

const bootstrapArgs = (out: string) => [
  ...NODES_FLAG,
  "--seed",
  SEED,
  "--out",
  out,
  "--yes",
  "--timeout",
  "1m",
];

Deno.test("bootstrap: retries while the node is not ready yet, then succeeds", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const notYet = (fixture: string) =>
    rec.bootstrap(out, SEED, { stdout: "", stderr: fxFor(fixture, SEED), code: 1 });
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.preparing.txt"),
    notYet("bootstrap.not-available.err.txt"),
    notYet("bootstrap.not-available.err.txt"),
    notYet("bootstrap.time-not-synced.err.txt"),
    notYet("bootstrap.recover-not-ready.err.txt"),
    rec.bootstrap(out, SEED),
    rec.service(SEED, "service-etcd.running-ok.txt"),
  ]);
  const code = await bootstrap(bootstrapArgs(out), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ bootstrap /).length, 5);
  assert.match(w.stderr(), /not yet: bootstrap is not available yet/);
  assert.match(w.stderr(), /not yet: time is not in sync yet/);
  assert.match(w.stderr(), /not yet: etcd service is not ready for recovery yet/);
  assert.match(w.stderr(), /"192\.168\.53\.11" to accept the bootstrap: done after 5s/);
  assert.match(w.stderr(), /etcd on "192\.168\.53\.11" to run the restored data: done/);
  const echoed = w.stderr().match(
    /^\+ talosctl .* bootstrap --recover-from=\S+ --recover-skip-hash-check$/gm,
  );
  assert.equal(echoed?.length, 5, "every attempt is echoed");
  assert.equal(lastEnd(out).exitCode, 0);
});

Deno.test("bootstrap run again after it succeeded sends nothing: done while etcd runs, refused otherwise", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const first = fakeWorld([
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.bootstrap(out, SEED),
    rec.service(SEED, "service-etcd.running-ok.txt"),
  ]);
  assert.equal(await bootstrap(bootstrapArgs(out), first.deps), 0, first.stderr());

  const again = fakeWorld([rec.service(SEED, "service-etcd.running-ok.txt")]);
  assert.equal(await bootstrap(bootstrapArgs(out), again.deps), 0, again.stderr());
  again.replay.assertDone();
  assert.deepEqual(again.replay.callsMatching(/ bootstrap /), []);
  assert.match(
    again.stderr(),
    /already done: .*journal\.jsonl records the bootstrap of 192\.168\.53\.11/,
  );
  assert.match(again.stderr(), /next: deno task disarm .*--yes/);

  const down = fakeWorld([rec.refused(SEED)]);
  assert.equal(await bootstrap(bootstrapArgs(out), down.deps), 2, down.stderr());
  down.replay.assertDone();
  assert.deepEqual(down.replay.callsMatching(/ bootstrap /), []);
  assert.match(down.stderr(), /records the bootstrap of 192\.168\.53\.11 .*, but its etcd is down/);
  assert.match(
    down.stderr(),
    /a second bootstrap needs a wipe first \(--force only to bootstrap again\)/,
  );
});

Deno.test("bootstrap: exit 0 then etcd Failed is a failure carrying the last event", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.bootstrap(out, SEED),
    rec.service(SEED, "service-etcd.failed-missing-hash.txt"),
  ]);
  const code = await bootstrap(bootstrapArgs(out), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ bootstrap /).length, 1, "a Failed restore is not retried");
  assert.match(
    w.stderr(),
    /error: The restore failed on "192\.168\.53\.11": Failed to run pre stage: error recovering from the snapshot: snapshot missing hash but --skip-hash-check=false/,
  );
  assert.match(w.stderr(), /next: a failed restore leaves files behind/);
  assert.match(w.stderr(), /to continue: deno task wipe --nodes 192\.168\.53\.11 .*--force --yes/);
  assert.match(lastEnd(out).error ?? "", /snapshot missing hash/);
  assert.match(report(out), /failed \(exit 1\): The restore failed on "192\.168\.53\.11"/);
  assert.match(report(out), /\| bootstrap \| failed: The restore failed/);
});

Deno.test("bootstrap: 'etcd data directory is not empty' fails at once with the wipe hint", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.bootstrap(out, SEED, {
      stdout: "",
      stderr: fxFor("bootstrap.already-bootstrapped.err.txt", SEED),
      code: 1,
    }),
  ]);
  const code = await bootstrap(bootstrapArgs(out), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ bootstrap /).length, 1, "not retried");
  assert.match(
    w.stderr(),
    /error: talosctl bootstrap \S+ --recover-skip-hash-check on "192\.168\.53\.11" failed \(exit 1\): [^]*etcd data directory is not empty/,
  );
  assert.match(
    w.stderr(),
    /next: the seed was not wiped, or a failed restore left files: run deno task wipe --nodes 192\.168\.53\.11 --yes/,
  );
  assert.match(w.stderr(), /last lines of stderr of: talosctl -e 192\.168\.53\.11/);
  assert.match(lastEnd(out).error ?? "", /etcd data directory is not empty/);
});

Deno.test("bootstrap: a seed copy changed since extraction is refused with exit 2, no bootstrap", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const file = join(out, `db.${SEED}`, "db");
  const body = readFileSync(file, "utf8");
  writeFileSync(file, body.replace("raw", "RAW")); // same size, other bytes
  const w = fakeWorld([]);
  const code = await bootstrap(bootstrapArgs(out), w.deps);
  assert.equal(code, 2, w.stderr());
  assert.deepEqual(w.replay.calls, []);
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /error: Cannot restore from the copy of "192\.168\.53\.11": sha256 differs from the manifest/,
  );
  assert.match(w.stderr(), /cluster state: unchanged/);
  assert.equal(lastEnd(out).exitCode, 2);
});

// ---- 6 disarm -------------------------------------------------------------------------------

const seedArgs = (out: string, ...extra: string[]) => [
  ...NODES_FLAG,
  "--seed",
  SEED,
  "--out",
  out,
  ...extra,
];

Deno.test("disarm: an alarm still listed after disarm exits 1 naming it", async () => {
  const out = tempOut();
  const w = fakeWorld([
    rec.alarms(SEED, "etcd-alarm-list.restored-stale.txt"),
    { cmd: T(SEED, "etcd", "alarm", "disarm"), stdout: fxFor("etcd-alarm-disarm.txt", SEED) },
    rec.alarms(SEED, "etcd-alarm-list.restored-stale.txt"),
  ]);
  const code = await disarm(seedArgs(out, "--yes"), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ alarm disarm$/).length, 1);
  assert.match(w.stderr(), /\+ talosctl -e 192\.168\.53\.11 -n 192\.168\.53\.11 etcd alarm disarm/);
  assert.match(w.stderr(), /error: Alarms still listed after disarm: CORRUPT on d2c3b4a596877869/);
  assert.match(lastEnd(out).error ?? "", /Alarms still listed after disarm/);
  assert.match(report(out), /\| disarm \| failed: Alarms still listed/);
});

Deno.test("disarm: no alarm listed exits 0 without a disarm call", async () => {
  const out = tempOut();
  const w = fakeWorld([rec.alarms(SEED, "etcd-alarm-list.empty.txt")]);
  const code = await disarm(seedArgs(out, "--yes"), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.calls, [T(SEED, "etcd", "alarm", "list")]);
  assert.match(w.stderr(), /ok: no alarm listed: nothing to disarm/);
  assert.doesNotMatch(w.stderr(), /^\+ /m);
  const disarmEnd = journal(out).findLast((e) => e.type === "step" && e.step === "disarm");
  assert.equal(disarmEnd?.type === "step" && disarmEnd.event, "skipped");
});

// ---- 7 rejoin -------------------------------------------------------------------------------

Deno.test("rejoin --rolling-reboot: a learner never promoted ends at the deadline mentioning the learner", async () => {
  const out = tempOut();
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
    rec.reboot(N10),
    rec.refused(N10),
    ...repeat(rec.service(N10, "service-etcd.running-learner.txt"), 20),
  ]);
  const code = await rejoin(
    seedArgs(out, "--yes", "--timeout", "1m", "--rolling-reboot"),
    w.deps,
  );
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reboot /), [T(N10, "reboot", "--wait=false")]);
  assert.equal(
    attempts(w.stderr()),
    w.replay.callsMatching(/-e 192\.168\.53\.10 .*service etcd$/).length,
  );
  assert.match(
    w.stderr(),
    /error: Timed out waiting for "192\.168\.53\.10" to rejoin as a healthy voting member: deadline 1m \(checked every 1s to 5s, \d+ times over [0-9ms]+; last state: Running \(HEALTH Fail\): etcdserver: rpc not supported for learner — a learner, waiting for promotion\)/,
  );
  assert.match(
    w.stderr(),
    /to continue: deno task rejoin .*--seed 192\.168\.53\.11 --yes --rolling-reboot\n/,
  );
  assert.equal(w.stderr().match(/to continue: .*/)![0].split("--seed").length, 2, "--seed once");
  assert.match(
    w.stderr(),
    /cluster state: etcd restored on 192\.168\.53\.11 \(Running at its last check\); rebooted to rejoin, not yet a voter: 192\.168\.53\.10; not rebooted yet: 192\.168\.53\.12\n/,
  );
  assert.match(report(out), /\| rejoin:192\.168\.53\.10 \| failed: Timed out .*learner/);
  assert.ok(!journal(out).some((e) => e.type === "step" && e.event === "ok"), "nothing rejoined");
});

Deno.test("rejoin --rolling-reboot: a node the seed still lists as learner is not done, even with HEALTH OK", async () => {
  const out = tempOut();
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
    rec.reboot(N10),
    rec.refused(N10),
    ...repeat(rec.service(N10, "service-etcd.running-ok.joined.txt"), 20),
    ...repeat(rec.members(SEED, "etcd-members.learner.txt"), 20),
  ]);
  const code = await rejoin(
    seedArgs(out, "--yes", "--timeout", "1m", "--rolling-reboot"),
    w.deps,
  );
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /last state: a learner, waiting for promotion\)/);
  assert.deepEqual(w.replay.callsMatching(/ reboot /).length, 1);
});

Deno.test("rejoin --rolling-reboot reboots the other nodes one at a time, each after the previous votes, never the seed", async () => {
  const out = tempOut();
  const w = fakeWorld(rollingRejoinRecs());
  const code = await rejoin(seedArgs(out, "--yes", "--rolling-reboot"), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const reboots = w.replay.callsMatching(/ reboot /);
  assert.deepEqual(reboots, [T(N10, "reboot", "--wait=false"), T(N12, "reboot", "--wait=false")]);
  assert.ok(
    !w.replay.calls.some((c) => c.startsWith(T(SEED, "reboot"))),
    "the seed is never rebooted",
  );
  const calls = w.replay.calls;
  const secondReboot = calls.indexOf(T(N12, "reboot", "--wait=false"));
  const lastLookAt10 = calls.lastIndexOf(T(N10, "service", "etcd"));
  const firstVoterCheck = calls.indexOf(T(SEED, "etcd", "members"), 2); // after "who votes"
  assert.ok(lastLookAt10 < secondReboot, ".12 is rebooted only after .10 is healthy");
  assert.ok(firstVoterCheck < secondReboot, "...and listed as a voter by the seed");
  assert.ok(
    calls.slice(secondReboot).every((c) => !c.includes(`-e ${N10} `)),
    "nothing is asked of .10 once .12 started",
  );
  assert.match(
    w.stderr(),
    /==> Rejoining 192\.168\.53\.10 \(1 of 2\)[\s\S]*==> Rejoining 192\.168\.53\.12 \(2 of 2\)/,
  );
});

// ---- 8 verify -------------------------------------------------------------------------------

/** One round of verify's checks (members, alarms, addresses on every node, kubectl). */
function verifyRound(
  options: { members?: string; holders?: string[]; kubectl?: Recording } = {},
): Recording[] {
  const holders = options.holders ?? [SEED];
  return [
    rec.members(SEED, options.members ?? "etcd-members.txt"),
    rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
    ...NODES.map((n) => rec.addresses(n, holders.includes(n))),
    options.kubectl ?? rec.kubectlAbsent(),
  ];
}

const verifyArgs = (out: string, ...extra: string[]) =>
  seedArgs(out, "--vip", VIP, "--timeout", "1s", ...extra);

Deno.test("verify: the VIP on no node fails with exit 1", async () => {
  const out = tempOut();
  // --timeout 1s: a look at once and one more a second later, on the deadline
  const w = fakeWorld([...verifyRound({ holders: [] }), ...verifyRound({ holders: [] })]);
  const code = await verify(verifyArgs(out), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/ get addresses$/).length, 6);
  assert.match(w.stderr(), /error: vip: 192\.168\.53\.2 is on no node/);
  assert.match(w.stderr(), /ok: members: 3 voting members/);
  assert.match(
    w.stderr(),
    /error: Timed out waiting for every check to pass: deadline 1s \(checked every 1s to 5s, 2 times over 1s; last state: vip: 192\.168\.53\.2 is on no node\)/,
  );
  assert.match(report(out), /\| verify \| failed: Timed out .*vip: 192\.168\.53\.2 is on no node/);
});

Deno.test("verify: the VIP on two nodes fails with exit 1 naming both", async () => {
  const out = tempOut();
  const round = () => verifyRound({ holders: [N10, SEED] });
  const w = fakeWorld([...round(), ...round()]);
  const code = await verify(verifyArgs(out), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /error: vip: 192\.168\.53\.2 is on 2 nodes at once: 192\.168\.53\.10, 192\.168\.53\.11/,
  );
  assert.match(lastEnd(out).error ?? "", /last state: vip: .* on 2 nodes at once/);
});

Deno.test("verify: without kubectl it still exits 0 and says the API was not checked", async () => {
  const out = tempOut();
  const w = fakeWorld(verifyRecs());
  const code = await verify(seedArgs(out, "--vip", VIP), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /kubectl not found: the Kubernetes API is not checked/);
  assert.match(w.stderr(), /ok: vip: 192\.168\.53\.2 is on 192\.168\.53\.11/);
  assert.match(w.stderr(), /ok: alarms: none/);
  assert.doesNotMatch(w.stderr(), /^error:/m);
});

Deno.test("verify without --seed asks the seed the journal recorded, not the first node", async () => {
  const out = tempOut();
  mkdirSync(out, { recursive: true });
  recordSeed(out); // .11, not .10 (first in --nodes)
  const w = fakeWorld(verifyRecs());
  const code = await verify([...NODES_FLAG, "--out", out, "--vip", VIP], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /Verifying the control plane \(asking 192\.168\.53\.11\)/);
});

Deno.test("verify: kubectl's node table is shown on stderr when kubectl answers", async () => {
  const out = tempOut();
  const kubectl = { cmd: "kubectl get nodes -o wide", stdout: fx("kubectl-get-nodes-wide.txt") };
  const w = fakeWorld([...verifyRound({ kubectl }), kubectl]);
  const code = await verify(seedArgs(out, "--vip", VIP), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.equal(w.replay.callsMatching(/^kubectl /).length, 2);
  assert.ok(w.stderr().includes(fx("kubectl-get-nodes-wide.txt")), "the table, verbatim");
  assert.match(w.stderr(), /ok: kubernetes api: answers \(3 nodes\)/);
  assert.doesNotMatch(w.stderr(), /not Ready yet/);
  assert.equal(w.stdout(), "", "data only with --json");
});

Deno.test("verify: a learner listed by the seed is not ok", async () => {
  const out = tempOut();
  const round = () => verifyRound({ members: "etcd-members.learner.txt" });
  // --json looks at each node's etcd once more, for its per-node facts
  const looks = NODES.map((n) => rec.service(n, "service-etcd.running-ok.txt"));
  const w = fakeWorld([...round(), ...round(), ...looks]);
  const code = await verify(verifyArgs(out, "--json"), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /error: members: not a member: 192\.168\.53\.12; learners: talos-cp-1; 2 members for 3 nodes/,
  );
  const doc = JSON.parse(w.stdout());
  assert.equal(doc.ok, false);
  const members = doc.checks.find((c: { name: string }) => c.name === "members");
  assert.equal(members.ok, false);
  assert.ok(doc.checks.some((c: { name: string; ok: boolean }) => c.name === "vip" && c.ok));
  const role = (n: string) => doc.nodes.find((x: { node: string }) => x.node === n).role;
  assert.deepEqual(NODES.map(role), ["learner", "voter", "not a member"]);
});

Deno.test("rejoin's printed plan uses the recorded seed and leaves out the nodes already rejoined", async () => {
  const out = tempOut();
  mkdirSync(out, { recursive: true });
  recordSeed(out);
  appendFileSync(
    join(out, "journal.jsonl"),
    JSON.stringify({
      ts: "2026-11-24T10:10:00.000Z",
      task: "rejoin",
      type: "step",
      step: `rejoin:${N10}`,
      event: "ok",
    }) + "\n",
  );
  // No terminal, no --yes: the plan, and nothing rebooted.
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
  ]);
  const code = await rejoin([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const plan = w.stdout();
  assert.ok(plan.includes(P(N12, "reboot", "--wait=false")), plan);
  assert.ok(!plan.includes(P(N10, "reboot")), "a node that rejoined is not rebooted again");
  assert.ok(!plan.includes("SEED=$("), "the seed comes from the journal, not from status");
  assert.match(plan, /# already rejoined in an earlier run: 192\.168\.53\.10/);
  assert.match(
    w.stderr(),
    /printed the plan for "wait for 192\.168\.53\.12 to rejoin, rebooting \(one at a time\) only a node whose etcd is Failed or that has not begun to join within 30s"/,
  );
});
