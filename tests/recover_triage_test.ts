/**
 * `recover` diagnoses first and takes the least destructive way back: on a cluster where one
 * member crash-loops while two hold quorum it replaces that member only; `--seed` there is
 * refused naming the smaller fix; `--full` still goes to the rebuild. Strict replay.
 */

import assert from "node:assert/strict";
import { main as recover } from "../tasks/recover.ts";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fakeWorld, type Recording } from "./replay.ts";
import {
  afterRec,
  afterRecs,
  extractRecs,
  healthyClusterRecs,
  NODES,
  NODES_FLAG,
  preflightRecs,
  rec,
  statusRecs,
  T,
  tempOut,
  triageFx,
  triageStatusRec,
  unreachableRec,
  versionRec,
  VIP,
} from "./scenario.ts";

const [N10, N11, N12] = NODES;
const MUTATING = / reset | bootstrap | alarm disarm| reboot | remove-member | defrag/;
const CRASH_LOOP = triageFx("service-etcd.crashloop-corrupt-check.txt");

/** Pre-flight on the cluster where .12 crash-loops: every node answers, .12's etcd Waiting. */
const preflight = (): Recording[] =>
  NODES.flatMap((n) => [
    versionRec(n),
    n === N12
      ? { cmd: T(n, "service", "etcd"), stdout: CRASH_LOOP }
      : rec.service(n, "service-etcd.running-ok.txt"),
    rec.etcdVolume(n, "directory"),
  ]);
/** The cluster's answers before the wipe: .10 and .11 follow the leader .11, .12 is down. */
const cluster = (): Recording[] => [
  triageStatusRec(N10, "etcd-status.one-node-down.txt"),
  triageStatusRec(N11, "etcd-status.one-node-down.txt"),
  unreachableRec(T(N12, "etcd", "status"), N12),
  ...[N10, N11].flatMap((n) => [
    rec.alarms(n, "etcd-alarm-list.empty.txt"),
    { cmd: T(n, "etcd", "members"), stdout: triageFx("etcd-members.before-remove.txt") },
  ]),
];
const badMember = (out: string) => [
  ...preflight(),
  ...extractRecs(out),
  ...statusRecs(out),
  ...cluster(),
];

/** The replacement of .12, up to the healthy cluster it leaves. */
function replaceRecs(out: string): Recording[] {
  const healthy: Recording[] = [
    ...NODES.map(versionRec),
    ...NODES.map((n) => rec.service(n, "service-etcd.running-ok.txt")),
    ...NODES.map((n) => rec.etcdStatus(n, "etcd-status.all-nodes.txt")),
    ...NODES.flatMap((n) => [
      rec.alarms(n, "etcd-alarm-list.empty.txt"),
      rec.members(n, "etcd-members.txt"),
    ]),
  ];
  return [
    ...badMember(out),
    { cmd: T(N11, "etcd", "remove-member", "d2c3b4a596877869"), stdout: "" },
    rec.alarms(N11, "etcd-alarm-list.empty.txt"), // cleared before the reset (none here)
    rec.reset(N12),
    rec.refused(N12),
    rec.service(N12, "service-etcd.running-ok.txt"),
    rec.members(N11, "etcd-members.txt"),
    rec.alarms(N11, "etcd-alarm-list.empty.txt"),
    ...healthy,
  ];
}

Deno.test("recover on a cluster with one bad member replaces only that member: nothing is wiped on the others", async () => {
  const out = tempOut();
  const reset12 = rec.reset(N12);
  const w = fakeWorld([...replaceRecs(out), ...afterRecs(out, { node: N10, kubelets: false })]);
  const code = await recover([...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), [
    T(N11, "etcd", "remove-member", "d2c3b4a596877869"),
    reset12.cmd,
  ]);
  assert.match(w.stderr(), /verdict: replace/);
  assert.match(w.stderr(), /192\.168\.53\.12 is bad: .*found data inconsistency/);
  assert.match(w.stderr(), /ok: healthy: /);
});

Deno.test("recover after replace ends with the after part: a verified backup and the stuck pods, no kubelet restarted", async () => {
  const out = tempOut();
  const w = fakeWorld([
    ...replaceRecs(out),
    ...afterRecs(out, { node: N10, kubelets: false, kubectl: true }),
  ]);
  const code = await recover([...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone(); // a kubelet restart would be an unexpected call
  assert.deepEqual(w.replay.callsMatching(/kubelet/), []);
  assert.match(
    w.stderr(),
    /replacing the bad members lost no write: no kubelet restart needed: the workers' kubelets are left alone/,
  );
  const backups = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).backups;
  assert.equal(backups.length, 1);
  assert.equal(backups[0].node, N10, "from a healthy member");
  assert.ok(existsSync(join(out, backups[0].file)));
  assert.match(w.stderr(), /ContainerCreating \(2\):/);
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /## After the restore/);
  assert.match(report, /- Lost: nothing recorded in this OUT \(no rebuild: no copy restored\)/);
  assert.match(report, /kubelets restarted: none \(replacing the bad members lost no write/);
  assert.match(report, /Stuck pods: 3 /);
  assert.doesNotMatch(w.stderr(), /next: /, "nothing left to run");
});

Deno.test("recover after replace whose after part fails: exit 1, etcd said recovered; run again on the healthy cluster, only the after part runs", async () => {
  const out = tempOut();
  const w = fakeWorld([
    ...replaceRecs(out),
    rec.service(N10, "service-etcd.running-ok.txt"),
    { ...afterRec.snapshot(out, N10), effect: undefined, stderr: "error: injected\n", code: 1 },
  ]);
  const code = await recover([...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /error: etcd is recovered \(recovered by replacing the bad members: 192\.168\.53\.12 replaced; every member votes\); only the after part did not finish: talosctl etcd snapshot/,
  );
  assert.match(w.stderr(), /to continue: deno task after .* --yes --no-kubelet-restart\n/);
  assert.doesNotMatch(w.stderr(), /--seed/, "no seed: any healthy member will do");

  const again = fakeWorld([
    ...preflightRecs(),
    ...statusRecs(out),
    ...healthyClusterRecs(),
    ...afterRecs(out, { node: N10, kubelets: false }),
  ]);
  const code2 = await recover([...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"], again.deps);
  assert.equal(code2, 0, again.stderr());
  again.replay.assertDone(); // no remove-member, no reset: only the after part
  assert.deepEqual(again.replay.callsMatching(MUTATING), []);
  assert.match(again.stderr(), /records replacing the bad members, its after part not finished/);
  assert.equal(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).backups.length, 1);
  // and once done, a third run on the healthy cluster is refused as before: nothing to recover
  const third = fakeWorld([...preflightRecs(), ...statusRecs(out), ...healthyClusterRecs()]);
  const code3 = await recover([...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"], third.deps);
  assert.equal(code3, 2, third.stderr());
  third.replay.assertDone();
  assert.match(third.stderr(), /Refusing to wipe a healthy cluster/);
});

Deno.test("recover --seed on a cluster with a smaller fix is refused (exit 2), naming it and --full", async () => {
  const out = tempOut();
  const w = fakeWorld(badMember(out));
  const code = await recover(
    [...NODES_FLAG, "--vip", VIP, "--out", out, "--yes", "--seed", N11],
    w.deps,
  );
  assert.equal(code, 2, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), []);
  assert.match(
    w.stderr(),
    /--seed 192\.168\.53\.11 asks for the full rebuild, but a smaller way back exists: replace/,
  );
  assert.match(
    w.stderr(),
    /without --seed to take it \(replace only the bad members.*or add --full/,
  );
});

Deno.test("recover --full rebuilds even where replace would do: it goes on to the safety check and the wipe's question", async () => {
  const out = tempOut();
  const w = fakeWorld(badMember(out), { answers: ["n"] });
  const code = await recover([...NODES_FLAG, "--vip", VIP, "--out", out, "--full"], w.deps);
  assert.equal(code, 3, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), []);
  assert.match(w.stderr(), /the full rebuild because of --full, though the verdict is replace/);
  assert.match(
    w.stderr(),
    /About to WIPE etcd on 192\.168\.53\.10, 192\.168\.53\.11, 192\.168\.53\.12/,
  );
});
