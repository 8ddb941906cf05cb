/**
 * Copies whose compactions differ, on real etcd 3.4 files (fixtures/db/compact-*, made by
 * scripts/gen_db_fixtures.ts): every readable copy is compared over one compaction-aware view,
 * status names the copies that disagree and the node the majority points to, wipe and recover
 * refuse a seed outside the majority, and copies that could not be compared are never passed
 * over in silence.
 */

import assert from "node:assert/strict";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { main as status } from "../tasks/02_status.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { main as recover } from "../tasks/recover.ts";
import { main as extract } from "../tasks/01_extract.ts";
import { nativeReader } from "../lib/db/reader.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import { brokenClusterRecs, preflightRecs, rec, tempOut } from "./scenario.ts";

const FIXTURES = new URL("../fixtures/db/", import.meta.url).pathname;
const N10 = "192.168.53.10";
const N11 = "192.168.53.11";
const N12 = "192.168.53.12";
const N13 = "192.168.53.13";
const N14 = "192.168.53.14";

/** The cases, node → fixture. p: one cluster; q: p's first 20 writes, then others; o: unrelated. */
const CASES = {
  /** (a) .11 compacted at 31, the lowest revision (.10's); .12 ahead, from q. */
  compactedAtLowest: {
    [N10]: "compact-p.rev31.db",
    [N11]: "compact-p.rev41.c31.db",
    [N12]: "compact-q.rev46.db",
  },
  /** (b) the highest copy (.12, 60) from an unrelated cluster, compacted at 20. */
  otherCluster: {
    [N10]: "compact-p.rev36.db",
    [N11]: "compact-p.rev41.c31.db",
    [N12]: "compact-o.rev60.c20.db",
  },
  /** (c) five nodes, two of them (.13, .14: the highest) diverged. */
  fiveTwoDiverged: {
    [N10]: "compact-p.rev31.db",
    [N11]: "compact-p.rev36.db",
    [N12]: "compact-p.rev41.c31.db",
    [N13]: "compact-q.rev46.db",
    [N14]: "compact-q.rev51.c26.db",
  },
  /** (d) one history, agreeing only once compaction is handled ((C, R] is empty). */
  agreeOnceCompacted: {
    [N10]: "compact-p.rev31.db",
    [N11]: "compact-p.rev36.db",
    [N12]: "compact-p.rev41.c31.db",
  },
  /** (e) .10 ends at 26, below .11's compaction at 31: not comparable with it. */
  oneFarBehind: {
    [N10]: "compact-p.rev26.db",
    [N11]: "compact-p.rev41.c31.db",
    [N12]: "compact-p.rev36.db",
  },
} satisfies Record<string, Record<string, string>>;

/** Puts the real files in OUT and records them with extract (no cp: they exist). */
async function realCopies(out: string, copies: Record<string, string>): Promise<string[]> {
  for (const [node, file] of Object.entries(copies)) {
    mkdirSync(join(out, `db.${node}`), { recursive: true });
    copyFileSync(join(FIXTURES, file), join(out, `db.${node}`, "db"));
  }
  const flag = ["--nodes", Object.keys(copies).join(","), "--out", out];
  const w = fakeWorld([]);
  w.deps.db = nativeReader;
  assert.equal(await extract(flag, w.deps), 0, w.stderr());
  return flag;
}

/** Neither etcdutl nor etcdctl is installed. */
function noTools(out: string, nodes: string[]): Recording[] {
  return nodes.flatMap((node) => {
    const file = join(out, `db.${node}`, "db");
    return ["etcdutl", "etcdctl"].map((bin) => ({
      cmd: `${bin} snapshot status ${file} -w json`,
      stderr: `bash: line 1: ${bin}: command not found\n`,
      code: 127,
    }));
  });
}

async function statusOf(copies: Record<string, string>, extra: string[] = []) {
  const out = tempOut();
  const flag = await realCopies(out, copies);
  const w = fakeWorld(noTools(out, Object.keys(copies)));
  w.deps.db = nativeReader;
  const code = await status([...flag, "--json", ...extra], w.deps);
  w.replay.assertDone();
  return { code, json: JSON.parse(w.stdout()), stderr: w.stderr() };
}

const agrees = (json: { copies: { agrees: string }[] }) => json.copies.map((c) => c.agrees);

/** wipe/recover --yes that must refuse in the safety check: nothing reset, exit 2. */
async function refused(
  task: typeof wipe,
  copies: Record<string, string>,
  extra: string[] = [],
): Promise<string> {
  const out = tempOut();
  const flag = await realCopies(out, copies);
  const nodes = Object.keys(copies);
  // recover looks at the cluster too before it decides (its triage); wipe refuses first
  const cluster = task === recover ? brokenClusterRecs(nodes) : [];
  const w = fakeWorld([...preflightRecs(nodes), ...noTools(out, nodes), ...cluster]);
  w.deps.db = nativeReader;
  const code = await task([...flag, "--yes", ...extra], w.deps);
  assert.equal(code, 2, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);
  return w.stderr();
}

/** wipe/recover whose safety check passes: the operator is asked (and says no: exit 3). */
async function passes(
  task: typeof wipe,
  copies: Record<string, string>,
  seed: string,
  extra: string[] = [],
): Promise<string> {
  const out = tempOut();
  const flag = await realCopies(out, copies);
  const nodes = Object.keys(copies);
  const w = fakeWorld(
    [
      ...preflightRecs(nodes),
      ...noTools(out, nodes),
      ...(nodes.length > 1 ? brokenClusterRecs(nodes) : [
        rec.etcdStatus(nodes[0], "etcd-status.corrupt.txt"),
        rec.alarms(nodes[0], "etcd-alarm-list.corrupt.txt"),
        rec.members(nodes[0], "etcd-members.seed-only.txt"),
      ]),
    ],
    { answers: ["n"] },
  );
  w.deps.db = nativeReader;
  const code = await task([...flag, ...extra], w.deps);
  assert.equal(code, 3, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);
  assert.ok(w.stderr().includes(seed), `the run names the seed ${seed}`);
  return w.stderr();
}

Deno.test("(a) a member compacted at the lowest revision: the copy ahead from another history is named, and the majority's node", async () => {
  const { code, json, stderr } = await statusOf(CASES.compactedAtLowest);
  assert.equal(code, 0, stderr);
  assert.deepEqual(json.agreement.range, { sinceRevision: 31, uptoRevision: 31 });
  assert.equal(json.agreement.compared, true);
  assert.deepEqual(agrees(json), ["yes", "yes", "no"]);
  assert.deepEqual(json.agreement.majority, [N10, N11]);
  assert.deepEqual(json.agreement.outside, [N12]);
  assert.equal(json.agreement.majorityPick, N11);
  assert.match(
    stderr,
    /the highest-revision copy \("192\.168\.53\.12"\) DISAGREES with the majority \(192\.168\.53\.10, 192\.168\.53\.11\) on the keys as of revision 31, where a copy is compacted; the majority points to "192\.168\.53\.11"/,
  );
});

Deno.test("(a) recover --yes refuses the diverged highest copy when a member is compacted at the lowest revision, naming the majority's node", async () => {
  const stderr = await refused(recover, CASES.compactedAtLowest);
  assert.match(stderr, /The copy of "192\.168\.53\.12" disagrees with the majority/);
  assert.match(stderr, /the majority points to "192\.168\.53\.11" \(revision 41\)/);
  assert.match(stderr, /use --seed 192\.168\.53\.11, or --force/);
  // the majority's node is accepted
  const ok = await passes(recover, CASES.compactedAtLowest, N11, ["--seed", N11]);
  assert.match(ok, /WIPE etcd on .* and restore it from 192\.168\.53\.11/);
});

Deno.test("(b) the highest copy from another cluster: status names it, recover --yes refuses it", async () => {
  const { json, stderr } = await statusOf(CASES.otherCluster);
  assert.deepEqual(json.agreement.range, { sinceRevision: 31, uptoRevision: 36 });
  assert.deepEqual(agrees(json), ["yes", "yes", "no"]);
  assert.equal(json.agreement.majorityPick, N11);
  assert.match(
    stderr,
    /the highest-revision copy \("192\.168\.53\.12"\) DISAGREES .* on revisions 32-36 and the keys compaction at 31 kept; the majority points to "192\.168\.53\.11"/,
  );
  const refusal = await refused(recover, CASES.otherCluster);
  assert.match(refusal, /The copy of "192\.168\.53\.12" disagrees with the majority/);
  assert.match(refusal, /use --seed 192\.168\.53\.11/);
});

Deno.test("(c) five nodes with two diverged members: both named, the majority of three points to its highest", async () => {
  const { json, stderr } = await statusOf(CASES.fiveTwoDiverged);
  assert.deepEqual(agrees(json), ["yes", "yes", "yes", "no", "no"]);
  assert.deepEqual(json.agreement.majority, [N10, N11, N12]);
  assert.deepEqual(json.agreement.outside, [N13, N14]);
  assert.equal(json.agreement.majorityPick, N12);
  assert.match(
    stderr,
    /the highest-revision copy \("192\.168\.53\.14"\) DISAGREES .*; the majority points to "192\.168\.53\.12" \("192\.168\.53\.13" disagrees too\)/,
  );
  const refusal = await refused(wipe, CASES.fiveTwoDiverged);
  assert.match(refusal, /The copy of "192\.168\.53\.14" disagrees with the majority/);
  assert.match(refusal, /use --seed 192\.168\.53\.12/);
  // the majority's node goes ahead; the diverged members are named
  const ok = await passes(wipe, CASES.fiveTwoDiverged, N12, ["--seed", N12]);
  assert.match(ok, /About to wipe etcd on .* \(seed 192\.168\.53\.12\)/);
});

Deno.test("(d) copies that agree once compaction is handled go ahead: status names the seed, the safety check passes", async () => {
  const { code, json, stderr } = await statusOf(CASES.agreeOnceCompacted);
  assert.equal(code, 0, stderr);
  assert.equal(json.seed, N12);
  assert.deepEqual(agrees(json), ["yes", "yes", "yes"]);
  assert.equal(json.agreement.allAgree, true);
  assert.deepEqual(json.agreement.notCompared, []);
  assert.match(
    stderr,
    /every copy agrees on the history they all hold \(the keys as of revision 31, where a copy is compacted\)/,
  );
  assert.match(
    await passes(wipe, CASES.agreeOnceCompacted, N12),
    /About to wipe etcd on .* \(seed 192\.168\.53\.12\)/,
  );
  assert.match(
    await passes(recover, CASES.agreeOnceCompacted, N12),
    /WIPE etcd on .* and restore it from 192\.168\.53\.12/,
  );
});

Deno.test("(e) a copy that ends below another's compaction is named as not compared; the two others still make a majority", async () => {
  const { code, json, stderr } = await statusOf(CASES.oneFarBehind);
  assert.equal(code, 0, stderr);
  assert.deepEqual(json.agreement.range, { sinceRevision: 31, uptoRevision: 36 });
  assert.deepEqual(agrees(json), ["-", "yes", "yes"]);
  const why =
    'its revision 26 is below the compaction of "192.168.53.11" (31), which no longer holds the history this copy ends in';
  assert.equal(json.copies[0].notCompared, why);
  assert.deepEqual(json.agreement.notCompared, [{ node: N10, reason: why }]);
  assert.equal(json.agreement.allAgree, false);
  assert.match(stderr, /NOT compared: "192\.168\.53\.10" \(its revision 26 is below/);
  assert.match(stderr, /192\.168\.53\.10 +26 .* -  +not compared: its revision 26/);
  const ok = await passes(wipe, CASES.oneFarBehind, N11);
  assert.match(ok, /not compared with the others: "192\.168\.53\.10"/);
});

Deno.test("a one-node control plane's copy is not compared: status says why, wipe goes ahead", async () => {
  const one = { [N11]: "compact-p.rev31.db" }; // etcd-members.seed-only.txt lists .11 alone
  const { code, json, stderr } = await statusOf(one);
  assert.equal(code, 0, stderr);
  assert.equal(json.agreement.compared, false);
  assert.equal(json.agreement.reason, "there is only one copy: nothing to compare it with");
  assert.equal(json.copies[0].agrees, "-");
  assert.equal(json.copies[0].notCompared, json.agreement.reason);
  assert.match(
    stderr,
    /the copies' histories were NOT compared: there is only one copy: nothing to compare it with/,
  );
  assert.match(stderr, /192\.168\.53\.11 .* -  +seed; not compared: there is only one copy/);
  // nothing could disagree with the only copy there is: not a check that failed to run
  const ok = await passes(wipe, one, N11);
  assert.match(ok, /one control-plane node: its copy is the only history, nothing to compare/);
});

Deno.test("no majority: two copies that disagree are refused without --force, naming both sides", async () => {
  const two = { [N10]: "compact-p.rev41.c31.db", [N11]: "compact-q.rev46.db" };
  const { json } = await statusOf(two);
  assert.deepEqual(agrees(json), ["split", "split"]);
  assert.equal(json.agreement.majority, null);
  const refusal = await refused(wipe, two);
  assert.match(
    refusal,
    /Refusing to wipe: no majority of the 2 copies agrees on revisions 32-41 and the keys compaction at 31 kept: 192\.168\.53\.10 vs 192\.168\.53\.11/,
  );
});
