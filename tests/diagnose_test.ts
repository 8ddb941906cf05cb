/**
 * `deno task diagnose` against the strict replaying `$`: every node is asked at once, the
 * calls that cannot answer without a leader are never made, nothing that changes the cluster
 * is sent, and the verdict comes out as a table with reasons (stderr) or one JSON object.
 */

import assert from "node:assert/strict";
import { main as diagnose } from "../tasks/diagnose.ts";
import { main as replace } from "../tasks/replace.ts";
import { main as defrag } from "../tasks/defrag.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import { sha256File } from "../lib/db/sha256.ts";
import { hashWithIdentity } from "../lib/recovery/manifest.ts";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  makeCopies,
  NODES,
  NODES_FLAG,
  rec,
  settled,
  statusRecs,
  T,
  tempOut,
  triageFx,
  triageStatusRec,
  unreachableRec,
  versionRec,
} from "./scenario.ts";

const [N10, N11, N12] = NODES;
const MUTATING = / reset | bootstrap | alarm disarm| reboot | remove-member | defrag/;

Deno.test("diagnose: one member crash-loops while two hold quorum: replace it, exit 0, nothing sent", async () => {
  const w = fakeWorld(badMemberLooks());
  const code = await diagnose([...NODES_FLAG, "--out", tempOut(), "--json"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), []);
  const json = JSON.parse(w.stdout());
  assert.equal(json.verdict, "replace");
  assert.deepEqual(json.replace, [N12]);
  assert.equal(json.seed, null, "no copies in OUT: no seed named");
  assert.match(json.reasons.join("\n"), /192\.168\.53\.12 is bad: .*found data inconsistency/);
  const n12 = json.nodes.find((n: { node: string }) => n.node === N12);
  assert.equal(n12.memberId, "d2c3b4a596877869");
  assert.equal(n12.role, "crash loop");
  assert.equal(n12.service.state, "Waiting");
  assert.match(w.stderr(), /verdict: replace/);
  assert.match(w.stderr(), /etcd remove-member d2c3b4a596877869/, "the next command is printed");
});

Deno.test("diagnose: no leader anywhere: rebuild, and alarm list and members are never asked", async () => {
  // Strict replay: an `etcd alarm list` (it would block ~12 minutes) fails the test.
  const w = fakeWorld([
    ...NODES.map((n) => n === N11 ? versionRec(n) : unreachableRec(T(n, "version"), n)),
    unreachableRec(T(N10, "service", "etcd"), N10),
    rec.service(N11, "service-etcd.running-ok.txt"),
    unreachableRec(T(N12, "service", "etcd"), N12),
    unreachableRec(T(N10, "etcd", "status"), N10),
    triageStatusRec(N11, "etcd-status.no-leader.txt"),
    unreachableRec(T(N12, "etcd", "status"), N12),
  ]);
  const code = await diagnose(NODES_FLAG, w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /verdict: rebuild/);
  assert.match(w.stderr(), /no etcd member follows a leader .*quorum is lost/);
  assert.match(w.stderr(), /NODE +TALOS +ETCD/, "the evidence table");
  assert.match(
    w.stderr(),
    /deno task recover --nodes 192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12/,
  );
  assert.equal(w.stdout(), "", "data only with --json");
});

/** The looks of diagnose on the cluster where .12 crash-loops (quorum on .10, .11). */
function badMemberLooks(): Recording[] {
  return [
    ...NODES.map(versionRec),
    rec.service(N10, "service-etcd.running-ok.txt"),
    rec.service(N11, "service-etcd.running-ok.txt"),
    {
      cmd: T(N12, "service", "etcd"),
      stdout: triageFx("service-etcd.crashloop-corrupt-check.txt"),
    },
    triageStatusRec(N10, "etcd-status.one-node-down.txt"),
    triageStatusRec(N11, "etcd-status.one-node-down.txt"),
    unreachableRec(T(N12, "etcd", "status"), N12),
    ...[N10, N11].flatMap((n) => [
      rec.alarms(n, "etcd-alarm-list.empty.txt"),
      { cmd: T(n, "etcd", "members"), stdout: triageFx("etcd-members.before-remove.txt") },
    ]),
  ];
}

/** The looks of diagnose once every member votes again (no alarm). */
function healthyLooks(): Recording[] {
  return [
    ...NODES.map(versionRec),
    ...NODES.map((n) => rec.service(n, "service-etcd.running-ok.txt")),
    ...NODES.map((n) => rec.etcdStatus(n, "etcd-status.all-nodes.txt")),
    ...NODES.flatMap((n) => [
      rec.alarms(n, "etcd-alarm-list.empty.txt"),
      rec.members(n, "etcd-members.txt"),
    ]),
  ];
}

Deno.test("replace: removes the bad member on the leader, resets only that node, waits until it votes", async () => {
  const out = tempOut();
  const resetOf12 = rec.reset(N12);
  const w = fakeWorld([
    ...badMemberLooks(),
    { cmd: T(N11, "etcd", "remove-member", "d2c3b4a596877869"), stdout: "" },
    rec.alarms(N11, "etcd-alarm-list.empty.txt"), // cleared before the reset (none here)
    resetOf12,
    rec.refused(N12),
    rec.service(N12, "service-etcd.running-learner.txt"),
    { cmd: T(N11, "etcd", "members"), stdout: triageFx("etcd-members.unstarted.txt") },
    rec.service(N12, "service-etcd.running-ok.txt"),
    rec.members(N11, "etcd-members.txt"),
    rec.alarms(N11, "etcd-alarm-list.empty.txt"),
    ...healthyLooks(),
  ]);
  const code = await replace([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const mutating = w.replay.callsMatching(MUTATING);
  assert.deepEqual(mutating, [T(N11, "etcd", "remove-member", "d2c3b4a596877869"), resetOf12.cmd]);
  assert.match(
    w.stderr(),
    /\+ talosctl -e 192\.168\.53\.11 -n 192\.168\.53\.11 etcd remove-member/,
  );
  assert.match(w.stderr(), /ok: healthy: /);
});

Deno.test("replace refuses any other verdict (exit 2), sending nothing", async () => {
  const w = fakeWorld(healthyLooks());
  const code = await replace([...NODES_FLAG, "--out", tempOut(), "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), []);
  assert.match(w.stderr(), /The verdict is healthy, not replace/);
});

Deno.test("replace without a terminal prints its plan: remove-member, reset of that node only, the wait", async () => {
  const w = fakeWorld(badMemberLooks());
  const code = await replace([...NODES_FLAG, "--out", tempOut()], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), []);
  const plan = w.stdout();
  assert.ok(plan.includes("talos 192.168.53.11 etcd remove-member d2c3b4a596877869"), plan);
  assert.ok(plan.includes(`talos ${N12} reset --system-labels-to-wipe EPHEMERAL`), plan);
  assert.ok(!/talos 192\.168\.53\.1[01] reset/.test(plan), "no healthy node is reset");
  assert.match(
    plan,
    /wait_for '192\.168\.53\.12 to vote' 600 voter 192\.168\.53\.11 192\.168\.53\.12/,
  );
  assert.match(plan, /\nvoter\(\) \{/);
});

/** diagnose's looks on the NOSPACE cluster of the reference: every member follows .11. */
function nospaceLooks(): Recording[] {
  return [
    ...NODES.map(versionRec),
    ...NODES.map((n) => rec.service(n, "service-etcd.running-ok.txt")),
    ...NODES.map((n) => triageStatusRec(n, "etcd-status.nospace.txt")),
    ...NODES.flatMap((n) => [
      { cmd: T(n, "etcd", "alarm", "list"), stdout: triageFx("etcd-alarm-list.nospace.txt") },
      { cmd: T(n, "etcd", "members"), stdout: triageFx("etcd-members.before-remove.txt") },
    ]),
  ];
}

Deno.test("defrag: each member one at a time, the leader last, then disarm; no node is reset or rebooted", async () => {
  const after = triageFx("etcd-status.nospace.after-defrag.txt").replace(
    / memberID:\S+ alarm:NOSPACE *$/m,
    "",
  );
  const w = fakeWorld([
    ...nospaceLooks(),
    ...[N10, N12, N11].flatMap((n) => [
      { cmd: T(n, "etcd", "defrag"), stdout: triageFx("etcd-defrag.txt") },
      rec.service(n, "service-etcd.running-ok.txt"),
    ]),
    { cmd: T(N11, "etcd", "alarm", "list"), stdout: triageFx("etcd-alarm-list.nospace.txt") },
    { cmd: T(N11, "etcd", "alarm", "disarm"), stdout: triageFx("etcd-alarm-list.nospace.txt") },
    rec.alarms(N11, "etcd-alarm-list.empty.txt"),
    ...NODES.map((n) => ({ cmd: T(n, "etcd", "status"), stdout: after.replaceAll(N11, n) })),
    ...healthyLooks(),
  ]);
  const code = await defrag([...NODES_FLAG, "--out", tempOut(), "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), [
    T(N10, "etcd", "defrag"),
    T(N12, "etcd", "defrag"),
    T(N11, "etcd", "defrag"),
    T(N11, "etcd", "alarm", "disarm"),
  ]);
  assert.doesNotMatch(w.stderr(), /quota-backend-bytes/, "603 MB in use: defrag freed it");
  assert.match(w.stderr(), /ok: healthy: /);
});

Deno.test("defrag refuses a cluster without NOSPACE (exit 2), sending nothing", async () => {
  const w = fakeWorld(badMemberLooks());
  const code = await defrag([...NODES_FLAG, "--out", tempOut(), "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), []);
  assert.match(w.stderr(), /The verdict is replace, not nospace/);
  assert.match(w.stderr(), /run deno task diagnose --nodes /);
});

Deno.test("defrag --dry-run prints the defrags in order, the leader last, and the disarm", async () => {
  const w = fakeWorld(nospaceLooks());
  const code = await defrag([...NODES_FLAG, "--out", tempOut(), "--dry-run"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const plan = w.stdout();
  const at = (n: string) => plan.indexOf(`talos ${n} etcd defrag`);
  assert.ok(at(N10) > 0 && at(N10) < at(N12) && at(N12) < at(N11), plan);
  assert.ok(plan.indexOf(`talos ${N11} etcd alarm disarm`) > at(N11));
});

Deno.test("diagnose trusts a copy unchanged since its sha256 was taken; replace, which acts on the copies, hashes them", async () => {
  const out = tempOut();
  makeCopies(out);
  const manifestPath = join(out, "manifest.json");
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  for (const n of NODES) {
    const file = join(out, `db.${n}`, "db");
    await settled(file);
    manifest.copies[n].hashed = (await hashWithIdentity(file)).hashed;
    assert.ok(manifest.copies[n].hashed, n);
  }
  writeFileSync(manifestPath, JSON.stringify(manifest));
  for (const [task, run, hashes] of [["diagnose", diagnose, 0], ["replace", replace, 3]] as const) {
    const w = fakeWorld([...healthyLooks(), ...statusRecs(out)]);
    const hashed: string[] = [];
    w.deps.db = { ...w.deps.db, sha256: (p) => (hashed.push(p), sha256File(p)) };
    await run([...NODES_FLAG, "--out", out, "--yes"], w.deps);
    w.replay.assertDone();
    assert.equal(hashed.length, hashes, `${task}: ${w.stderr()}`);
    assert.deepEqual(w.replay.callsMatching(MUTATING), []);
  }
});
