import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { main } from "../tasks/recover.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import {
  afterRec,
  afterRecs,
  fullRecoveryRecs,
  kubectl,
  NODES_FLAG,
  rec,
  SEED,
  T,
  tempOut,
  VIP,
  W1,
  W2,
} from "./scenario.ts";

const ARGS = (out: string, ...extra: string[]) => [
  ...NODES_FLAG,
  "--vip",
  VIP,
  "--out",
  out,
  ...extra,
];
const manifestOf = (out: string) => JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
const reportOf = (out: string) => readFileSync(join(out, "report.md"), "utf8");

Deno.test("recover --yes goes from extraction to verification and exits 0", async () => {
  const out = tempOut();
  const w = fakeWorld(fullRecoveryRecs(out));
  const code = await main(ARGS(out, "--yes"), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /recovered: etcd restored from 192\.168\.53\.11/);
  const report = reportOf(out);
  assert.match(report, /Seed: 192\.168\.53\.11/);
  assert.match(report, /\| 192\.168\.53\.11 \| 1843517 \|/);
  assert.match(report, /\| verify \| ok \|/);
  assert.ok(existsSync(join(out, "journal.jsonl")));
  // the others rejoin by themselves: nothing is rebooted, the seed least of all
  assert.deepEqual(w.replay.callsMatching(/ reboot /), []);
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: rejoined by itself at 10:\d\d:\d\d UTC/);
  assert.match(w.stderr(), /ok: 192\.168\.53\.12: rejoined by itself at /);
  assert.ok(!w.replay.calls.some((c) => c.startsWith(`talosctl -e ${SEED} -n ${SEED} reboot`)));
});

// ---- the after part at the end ---------------------------------------------------------------

Deno.test("recover ends with the after part: a verified backup in OUT, each worker's kubelet Ready before the next, the stuck pods listed, all in the report", async () => {
  const out = tempOut();
  const w = fakeWorld(fullRecoveryRecs(out, { kubectl: true }));
  const code = await main(ARGS(out, "--yes"), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  // after verify, not before: the backup is of the verified etcd
  const calls = w.replay.calls;
  const snapshot = calls.findIndex((c) => / etcd snapshot /.test(c));
  assert.ok(snapshot > calls.lastIndexOf(T(SEED, "get", "addresses")), calls.join("\n"));
  // the backup: 0600, recorded with its sha256, from the seed
  const [backup] = manifestOf(out).backups;
  assert.equal(backup.node, SEED);
  assert.match(backup.file, /^snapshot-20261124T\d{6}Z\.db$/);
  assert.equal(statSync(join(out, backup.file)).mode & 0o777, 0o600);
  assert.equal(backup.revision, 1843530);
  // one worker at a time: W1 Ready again before W2 is restarted; no control-plane kubelet
  const w2Restart = calls.indexOf(T(W2, "service", "kubelet", "restart"));
  assert.ok(calls.findLastIndex((c) => c.includes(W1)) < w2Restart, calls.join("\n"));
  assert.deepEqual(w.replay.callsMatching(/kubelet restart/), [
    T(W1, "service", "kubelet", "restart"),
    T(W2, "service", "kubelet", "restart"),
  ]);
  assert.match(w.stderr(), /ContainerCreating \(2\):/);
  assert.match(w.stdout(), /^kubectl -n default delete pod db-0$/m);
  assert.equal(w.replay.callsMatching(/ delete /).length, 0, "listed, not deleted");
  const report = reportOf(out);
  assert.match(report, /Outcome of the last run \(`recover`\): success/);
  assert.match(report, /## After the restore/);
  assert.ok(report.includes(`Backup: \`${join(out, backup.file)}\` from ${SEED}`), report);
  assert.match(report, /kubelets restarted: 192\.168\.53\.20, 192\.168\.53\.21/);
  assert.match(report, /Stuck pods: 3 /);
  assert.match(report, /\| after:snapshot \| ok \|/);
  assert.match(report, /\| after \| ok \|/);
  assert.match(report, /Cluster state: recovered: etcd restored from .*; backup .*snapshot-/);
  assert.doesNotMatch(w.stderr(), /next: deno task after/, "nothing left to run");
});

Deno.test("recover asks once: the one question names the after part, and no second one comes for the kubelets", async () => {
  const out = tempOut();
  const w = fakeWorld(fullRecoveryRecs(out), { answers: ["y"] });
  const code = await main(ARGS(out), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const asked = w.stderr().match(/About to .*Continue\? \[y\/N\]/g) ?? [];
  assert.equal(asked.length, 1, asked.join("\n"));
  assert.match(
    asked[0],
    /WIPE etcd on .* and restore it from 192\.168\.53\.11 \(.*\), then take a verified backup, restart the kubelet of each worker, one at a time, list the stuck pods/,
  );
  assert.equal(w.replay.callsMatching(/kubelet restart/).length, 2);
});

Deno.test("recover --no-kubelet-restart: the backup and the pods, no kubelet touched; the question says so", async () => {
  const out = tempOut();
  const recs = fullRecoveryRecs(out).filter((r) => !/ service kubelet/.test(r.cmd));
  const w = fakeWorld(recs, { answers: ["y"] });
  const code = await main(ARGS(out, "--no-kubelet-restart"), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.doesNotMatch(w.stderr(), /restart the kubelet/);
  assert.match(reportOf(out), /kubelets restarted: none \(--no-kubelet-restart\)/);
});

Deno.test("recover --restart-stuck deletes the owned stuck pods after the kubelets, under the one question", async () => {
  const out = tempOut();
  const w = fakeWorld([
    ...fullRecoveryRecs(out, { kubectl: true }),
    kubectl("-n default delete pod db-0", { stdout: 'pod "db-0" deleted\n' }),
    kubectl("-n default delete pod api-5f6d8b7c9-q8w7e", { stdout: "" }),
  ], { answers: ["y"] });
  const code = await main(ARGS(out, "--restart-stuck"), w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone(); // a delete of the bare pod would be unexpected
  assert.equal((w.stderr().match(/Continue\? \[y\/N\]/g) ?? []).length, 1);
  assert.match(w.stderr(), /delete the stuck pods a controller recreates, one at a time/);
});

// ---- the after part failing ---------------------------------------------------------------

/** The recovery up to the after part, then `after` in place of the after part's recordings. */
function failingAfter(out: string, after: Recording[]): Recording[] {
  const all = fullRecoveryRecs(out);
  return [...all.slice(0, all.length - afterRecs(out).length), ...after];
}

Deno.test("recover whose backup fails: exit 1, etcd said to be recovered, deno task after named to run it again", async () => {
  const out = tempOut();
  const w = fakeWorld(failingAfter(out, [
    rec.service(SEED, "service-etcd.running-ok.txt"),
    { ...afterRec.snapshot(out), effect: undefined, stderr: "error: injected\n", code: 1 },
  ]));
  const code = await main(ARGS(out, "--yes"), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone(); // no kubelet restarted after a failed backup
  assert.match(
    w.stderr(),
    /error: etcd is recovered \(recovered: etcd restored from 192\.168\.53\.11, every node a voter, no alarm\); only the after part did not finish: talosctl etcd snapshot .* failed \(exit 1\)/,
  );
  assert.match(w.stderr(), /cluster state: recovered: .*; the after part did not finish/);
  const again =
    `deno task after --nodes 192.168.53.10,192.168.53.11,192.168.53.12 --seed ${SEED} ` +
    `--vip ${VIP} --out ${out} --yes`;
  assert.ok(w.stderr().includes(`to continue: ${again}\n`), w.stderr());
  const report = reportOf(out);
  assert.match(report, /failed \(exit 1\): etcd is recovered/);
  assert.ok(report.includes(`To continue: \`${again}\``), report);
  assert.match(report, /\| verify \| ok \|/);
  assert.deepEqual(readdirSync(out).filter((f) => f.startsWith("snapshot-")), []);
});

Deno.test("recover whose worker is not Ready in time: exit 1 as after's own, the next worker untouched, etcd said recovered", async () => {
  const out = tempOut();
  const w = fakeWorld(failingAfter(out, [
    rec.service(SEED, "service-etcd.running-ok.txt"),
    afterRec.snapshot(out),
    kubectl("get nodes -o wide", { stderr: "bash: kubectl: command not found\n", code: 127 }),
    afterRec.members(),
    afterRec.restart(W1),
    ...Array.from({ length: 40 }, () => ({
      ...afterRec.kubelet(W1, "service-kubelet.starting.txt"),
      optional: true,
    })),
  ]));
  const code = await main(ARGS(out, "--yes", "--timeout", "30s"), w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /error: etcd is recovered .*; only the after part did not finish: Timed out waiting for the kubelet on "192\.168\.53\.20" to run again/,
  );
  assert.equal(w.replay.callsMatching(new RegExp(W2)).length, 0);
  assert.match(w.stderr(), /to continue: deno task after .* --yes\n/);
  assert.equal(manifestOf(out).backups.length, 1, "the backup is done and kept");
});

// ---- the plan -----------------------------------------------------------------------------------

Deno.test("recover --dry-run: the plan ends with the after part (after's own lines)", async () => {
  const out = tempOut();
  const w = fakeWorld([]);
  const code = await main(ARGS(out, "--dry-run"), w.deps);
  assert.equal(code, 0, w.stderr());
  assert.deepEqual(w.replay.calls, []);
  const plan = w.stdout();
  const verifyAt = plan.indexOf("kubectl get nodes -o wide\n");
  const afterAt = plan.indexOf("# After the restore 1/3: a verified backup from $SEED");
  assert.ok(verifyAt > 0 && afterAt > verifyAt, plan);
  assert.match(plan, /^talos "\$SEED" etcd snapshot "\$snap"$/m);
  assert.match(plan, /^ {2}talos "\$w" service kubelet restart$/m);
  assert.match(plan, /^kubelet_ok\(\) \{$/m);
  const noKubelets = fakeWorld([]);
  await main(ARGS(out, "--dry-run", "--no-kubelet-restart"), noKubelets.deps);
  assert.doesNotMatch(noKubelets.stdout(), /service kubelet restart/);
  assert.match(noKubelets.stdout(), /^# 2\/3: --no-kubelet-restart: the kubelets are left alone$/m);
  assert.match(noKubelets.stdout(), / etcd snapshot /);
});
