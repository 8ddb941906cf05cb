import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { main as afterTask } from "../tasks/after.ts";
import { nativeReader } from "../lib/db/reader.ts";
import { afterProgress, findStuck, snapshotName } from "../lib/recovery/after.ts";
import {
  parseKubeNodes,
  parsePodEvents,
  parsePods,
  parseSnapshotSaved,
  parseTalosMembers,
} from "../lib/talos/parse.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import {
  afterFx,
  afterRec,
  kubectl,
  kubectlAbsent,
  kubectlDown,
  kubeletCycle,
  makeCopies,
  NODES_FLAG,
  podsRecs,
  rec,
  recordSeed,
  SEED,
  T,
  tempOut,
  W1,
  W2,
} from "./scenario.ts";

const CLOCK = Date.parse("2026-11-24T10:30:00Z");
const SNAP = snapshotName(CLOCK);

const af = afterFx;
const dbFixture = (name: string) =>
  readFileSync(new URL(`../fixtures/db/${name}`, import.meta.url));

/** A real etcd 3.4 db (revision 41, no alarm) with the sha256 trailer `snapshot save` adds. */
function realSnapshot(): Uint8Array {
  const db = dbFixture("history-a.rev41.db");
  return Buffer.concat([db, createHash("sha256").update(db).digest()]);
}

/** OUT as a rebuild leaves it: copies, the seed, the copies' revisions, an accepted wipe. */
function restoredOut(restored = 41): string {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const line = (body: Record<string, unknown>) =>
    appendFileSync(
      join(out, "journal.jsonl"),
      JSON.stringify({ ts: "2026-11-24T10:00:40.000Z", task: "wipe", ...body }) + "\n",
    );
  line({ type: "fact", key: "copies", value: [{ node: SEED, revision: restored }] });
  line({
    type: "call",
    step: "wipe",
    node: SEED,
    command: T(SEED, "reset"),
    mutating: true,
    exitCode: 0,
    durationMs: 1,
    stdout: "",
    stderr: "",
  });
  return out;
}

const snapCmd = (out: string, node = SEED) => T(node, "etcd", "snapshot", join(out, SNAP));

/** `etcd snapshot` that writes `bytes` as talosctl does and prints its two lines. */
function snapshotRec(out: string, bytes = realSnapshot(), revision = 41): Recording {
  const path = join(out, SNAP);
  return {
    cmd: snapCmd(out),
    stdout: `etcd snapshot saved to "${path}" (${bytes.length} bytes)\n` +
      `snapshot info: hash 1e1e3887, revision ${revision}, total keys 44, total size 24576\n`,
    effect: () => writeFileSync(path, bytes, { mode: 0o600 }),
  };
}

const restartRec = afterRec.restart;
const kubeletRec = afterRec.kubelet;

const seedUp = () => rec.service(SEED, "service-etcd.running-ok.txt");

function world(recs: Recording[], options: { answers?: string[] } = {}) {
  const w = fakeWorld(recs, { ...options, clock: new Date(CLOCK).toISOString() });
  w.deps.db = nativeReader;
  return w;
}

const manifestOf = (out: string) => JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
const reportOf = (out: string) => readFileSync(join(out, "report.md"), "utf8");

// ---- the whole of it ---------------------------------------------------------------------

Deno.test("after: a verified backup, each worker's kubelet restarted and Ready before the next, stuck pods listed", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
    ...kubeletCycle(W1, true),
    ...kubeletCycle(W2, true),
    ...podsRecs(),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  // the backup: 0600, its sha256 in the manifest, a restore command without the skip flag
  const file = join(out, SNAP);
  assert.equal(statSync(file).mode & 0o777, 0o600);
  const sha = createHash("sha256").update(readFileSync(file)).digest("hex");
  const backups = manifestOf(out).backups;
  assert.equal(backups.length, 1);
  assert.equal(backups[0].sha256, sha);
  assert.equal(backups[0].revision, 41);
  assert.equal(Object.keys(manifestOf(out).copies).length, 3, "the copies stay recorded");
  assert.match(
    w.stderr(),
    new RegExp(`bootstrap --recover-from=${file.replaceAll(".", "\\.")}\\n`),
  );
  assert.doesNotMatch(w.stderr(), /recover-skip-hash-check/);
  // one worker at a time: W1 Ready before W2 is restarted; the control plane untouched
  const calls = w.replay.calls;
  const w2Restart = calls.indexOf(T(W2, "service", "kubelet", "restart"));
  const lastW1 = calls.findLastIndex((c) => c.includes(W1));
  assert.ok(lastW1 < w2Restart, calls.join("\n"));
  assert.equal(w.replay.callsMatching(/kubelet restart/).length, 2);
  assert.ok(!calls.some((c) => /192\.168\.53\.1\d .*kubelet/.test(c)));
  // stuck pods, grouped by reason, with their commands; nothing deleted without the flag
  assert.match(w.stderr(), /ContainerCreating \(2\):/);
  assert.match(w.stderr(), /CrashLoopBackOff \(1\):/);
  assert.match(
    w.stderr(),
    /default\/db-0 on talos-worker-1, Pending, 42m, StatefulSet\/db; last volume event FailedMount/,
  );
  assert.match(w.stdout(), /^kubectl -n default delete pod db-0$/m);
  assert.match(
    w.stdout(),
    /^# default\/debug-shell: a bare pod: nothing would recreate it; not deleted$/m,
  );
  assert.equal(w.replay.callsMatching(/delete/).length, 0);
  // the report
  const report = reportOf(out);
  assert.match(report, /## After the restore/);
  assert.match(
    report,
    new RegExp(`Backup: \`${file.replaceAll(".", "\\.")}\` from ${SEED}.*sha256 \`${sha}\``),
  );
  assert.match(
    report,
    /Lost: the writes etcd took after the seed's copy \(2026-11-24T10:00:00.000Z\) until the wipe was accepted \(2026-11-24T10:00:40.000Z, 40s later\)/,
  );
  assert.match(report, /kubelets restarted: 192\.168\.53\.20, 192\.168\.53\.21/);
  assert.match(report, /Stuck pods: 3 .*restarted: none/);
  assert.match(report, /Never deleted \(nothing recreates them\): default\/debug-shell/);
});

Deno.test("after: kubectl absent: the workers come from talosctl get members, the pods are not checked (said so)", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectlAbsent("get nodes -o wide"),
    { cmd: T(SEED, "get", "members"), stdout: af("get-members.txt") },
    ...kubeletCycle(W1, false),
    ...kubeletCycle(W2, false),
    kubectlAbsent("get pods -A -o json"),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /kubectl not found: asking Talos for the workers/);
  assert.match(w.stderr(), /stuck workloads not checked: kubectl not found/);
  assert.match(reportOf(out), /Stuck pods: not checked \(kubectl not found\)/);
});

Deno.test("after: kubectl failing: workers from get members, kubelets restarted, then exit 1: the pods could not be checked", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectlDown("get nodes -o wide"),
    { cmd: T(SEED, "get", "members"), stdout: af("get-members.txt") },
    ...kubeletCycle(W1, false),
    ...kubeletCycle(W2, false),
    kubectlDown("get pods -A -o json"),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /Stuck workloads not checked: The connection to the server/);
  assert.equal(manifestOf(out).backups.length, 1, "the backup is kept");
});

Deno.test("after: no workers: nothing restarted, nothing asked", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.no-workers.txt") }),
    ...podsRecs(),
  ], { answers: [] });
  const code = await afterTask([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.doesNotMatch(w.stderr(), /Continue\?/);
  assert.match(w.stderr(), /no workers \(kubectl get nodes\)/);
});

Deno.test("after: a worker not Ready within the deadline fails (exit 1); the next worker is never touched", async () => {
  const out = restoredOut();
  const notReady = kubectl("get nodes", { stdout: af("kubectl-get-nodes.worker-1-notready.txt") });
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
    restartRec(W1),
    ...Array.from({ length: 40 }, () => [
      { ...kubeletRec(W1, "service-kubelet.running-ok.txt"), optional: true },
      { ...notReady, optional: true },
    ]).flat(),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes", "--timeout", "30s"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /Timed out waiting for the kubelet on "192\.168\.53\.20" to run again and node talos-worker-1 to be Ready: deadline 30s/,
  );
  assert.match(w.stderr(), /the next workers were not touched/);
  assert.equal(w.replay.callsMatching(new RegExp(W2)).length, 0);
});

Deno.test("after: while a kubelet comes back, kubectl out of reach is waited through; Unauthorized stops at once (exit 1)", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
    restartRec(W1),
    kubeletRec(W1, "service-kubelet.running-ok.txt"),
    kubectl("get nodes", {
      stderr:
        "Unable to connect to the server: dial tcp 192.168.53.2:6443: connect: connection refused\n",
      code: 1,
    }),
    kubeletRec(W1, "service-kubelet.running-ok.txt"),
    kubectl("get nodes", {
      stderr: "error: You must be logged in to the server (Unauthorized)\n",
      code: 1,
    }),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone(); // no further poll after Unauthorized, and W2 untouched
  assert.match(
    w.stderr(),
    /kubectl get nodes failed: error: You must be logged in to the server \(Unauthorized\)/,
  );
  assert.match(w.stderr(), /fix kubectl's access, then run deno task after again/);
  assert.equal(w.replay.callsMatching(new RegExp(W2)).length, 0);
});

Deno.test("after: the confirmation is asked naming the workers; no answers no restart (exit 3)", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
  ], { answers: ["n"] });
  const code = await afterTask([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 3, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /About to restart the kubelet on 192\.168\.53\.20, 192\.168\.53\.21 \(workers, one at a time\)/,
  );
});

Deno.test("after --no-kubelet-restart: the workers are shown, no kubelet is touched", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
    ...podsRecs(),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--no-kubelet-restart"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(reportOf(out), /kubelets restarted: none \(--no-kubelet-restart\)/);
});

// ---- the backup ----------------------------------------------------------------------------

Deno.test("after: a snapshot that fails (exit 1): no backup recorded, nothing else done", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    { cmd: snapCmd(out), stderr: af("etcd-snapshot.multi-node.err.txt"), code: 1 },
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /talosctl etcd snapshot .* on "192\.168\.53\.11" failed \(exit 1\)/);
  assert.equal(manifestOf(out).backups, undefined);
  assert.ok(!existsSync(join(out, SNAP)));
});

for (
  const [what, bytes, revision, restored, why] of [
    [
      "a damaged db",
      (() => {
        const b = realSnapshot();
        b.fill(0x55, 16384, 20480); // a page the key bucket lives on, overwritten
        const body = b.subarray(0, b.length - 32);
        b.set(createHash("sha256").update(body).digest(), b.length - 32);
        return b;
      })(),
      41,
      41,
      /the reader refuses it/,
    ],
    ["a db without its sha256 trailer", dbFixture("history-a.rev41.db"), 41, 41, /sha256 trailer/],
    [
      "a revision below the restored one",
      realSnapshot(),
      41,
      50,
      /revision 41 is below the restored revision 50/,
    ],
    [
      "a db that holds an alarm",
      new Uint8Array(dbFixture("etcd-3.4.snapshot.db")),
      482,
      41,
      /it holds the alarm .*CORRUPT/,
    ],
  ] as const
) {
  Deno.test(`after: a snapshot that reads back wrong (${what}) is set aside, exit 1`, async () => {
    const out = restoredOut(restored);
    const w = world([seedUp(), snapshotRec(out, bytes, revision)]);
    const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
    assert.equal(code, 1, w.stderr());
    w.replay.assertDone();
    assert.match(w.stderr(), why);
    assert.ok(!existsSync(join(out, SNAP)), "never left where a restore would take it");
    assert.ok(existsSync(join(out, `${SNAP}.rejected`)));
    assert.equal(manifestOf(out).backups, undefined);
  });
}

Deno.test("after: an unhealthy seed is not snapshotted (exit 1, naming it)", async () => {
  const out = restoredOut();
  const w = world([rec.service(SEED, "service-etcd.preparing.txt")]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 1, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /No healthy etcd member to take the backup from \(192\.168\.53\.11: Preparing/,
  );
});

// ---- stuck pods --------------------------------------------------------------------------

Deno.test("after --restart-stuck: deletes only the pods a controller owns, one at a time; the bare pod is never deleted", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.no-workers.txt") }),
    ...podsRecs(),
    kubectl("-n default delete pod db-0", { stdout: 'pod "db-0" deleted\n' }),
    kubectl("-n default delete pod api-5f6d8b7c9-q8w7e", {
      stdout: 'pod "api-5f6d8b7c9-q8w7e" deleted\n',
    }),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes", "--restart-stuck"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone(); // a delete of debug-shell would be an unexpected call
  assert.deepEqual(w.replay.callsMatching(/delete/), [
    "kubectl -n default delete pod db-0",
    "kubectl -n default delete pod api-5f6d8b7c9-q8w7e",
  ]);
  assert.match(
    w.stderr(),
    /default\/debug-shell is a bare pod: nothing would recreate it: listed, never deleted/,
  );
  assert.match(reportOf(out), /restarted: default\/db-0, default\/api-5f6d8b7c9-q8w7e/);
});

// ---- re-run, plan --------------------------------------------------------------------------

Deno.test("after run again: the verified backup is kept, no kubelet restarted twice, no pod deleted twice", async () => {
  const out = restoredOut();
  const first = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
    ...kubeletCycle(W1, true),
    ...kubeletCycle(W2, true),
    ...podsRecs(),
    kubectl("-n default delete pod db-0", { stdout: 'pod "db-0" deleted\n' }),
    kubectl("-n default delete pod api-5f6d8b7c9-q8w7e", { stdout: "" }),
  ]);
  assert.equal(
    await afterTask([...NODES_FLAG, "--out", out, "--yes", "--restart-stuck"], first.deps),
    0,
  );
  first.replay.assertDone();
  const again = world([
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
    ...podsRecs(),
  ]);
  const code = await afterTask(
    [...NODES_FLAG, "--out", out, "--yes", "--restart-stuck"],
    again.deps,
  );
  assert.equal(code, 0, again.stderr());
  again.replay.assertDone(); // no snapshot, no restart, no delete
  assert.match(again.stderr(), /kept: .*snapshot-20261124T103000Z\.db/);
  assert.match(again.stderr(), /restarted earlier in this OUT: 192\.168\.53\.20, 192\.168\.53\.21/);
  assert.equal(manifestOf(out).backups.length, 1);
  assert.deepEqual(readdirSync(out).filter((f) => f.startsWith("snapshot-")), [SNAP]);

  // the plan a run on this OUT prints does the same: no second backup, no kubelet twice
  const plan = world([]);
  assert.equal(await afterTask([...NODES_FLAG, "--out", out, "--dry-run"], plan.deps), 0);
  const script = plan.stdout();
  assert.match(script, /kept: the verified backup taken earlier, .*snapshot-20261124T103000Z\.db/);
  assert.doesNotMatch(script, / etcd snapshot /);
  assert.match(
    script,
    /restarted earlier in this OUT, not again: 192\.168\.53\.20, 192\.168\.53\.21/,
  );
  assert.match(script, /grep -Ev .*192\\\.168\\\.53\\\.20\|192\\\.168\\\.53\\\.21\)\$/);
});

Deno.test("after --dry-run: prints the plan and runs nothing", async () => {
  const out = restoredOut();
  const w = world([]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--dry-run"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const plan = w.stdout();
  assert.match(plan, /^talos 192\.168\.53\.11 etcd snapshot "\$snap"$/m);
  assert.match(plan, /^kubelet_ok\(\) \{$/m);
  assert.match(plan, /^ {2}talos "\$w" service kubelet restart$/m);
  assert.match(plan, /grep -Ev '\^\(192\\\.168\\\.53\\\.10\|/);
  assert.doesNotMatch(plan, /recover-skip-hash-check/);
});

Deno.test("after without a terminal and without --yes: prints the restart plan, restarts nothing (exit 0)", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stdout(), /^talos 192\.168\.53\.20 service kubelet restart$/m);
  assert.match(
    w.stdout(),
    /^wait_for 'the kubelet on 192\.168\.53\.20' 600 kubelet_ok 192\.168\.53\.20$/m,
  );
  assert.match(
    w.stdout(),
    /^kubectl wait --for=condition=Ready node\/talos-worker-1 --timeout=600s$/m,
  );
});

// ---- parsers -------------------------------------------------------------------------------

Deno.test("parseTalosMembers() reads the machine type and the JSON address list", () => {
  const m = parseTalosMembers(af("get-members.txt"));
  assert.equal(m.length, 5);
  assert.deepEqual(m[3], {
    node: SEED,
    id: "talos-worker-1",
    hostname: "talos-worker-1",
    machineType: "worker",
    os: "Talos (v1.13.9)",
    addresses: ["192.168.53.20", "fd00:53::20"],
  });
  assert.equal(m.filter((x) => x.machineType === "controlplane").length, 3);
});

Deno.test("parseKubeNodes() reads roles and INTERNAL-IP; <none> is no role", () => {
  const n = parseKubeNodes(af("kubectl-get-nodes-wide.workers.txt"));
  assert.deepEqual(n[0].roles, ["control-plane"]);
  assert.deepEqual(n[3], { name: "talos-worker-1", status: "Ready", roles: [], internalIp: W1 });
});

Deno.test("findStuck() keeps pods neither Running/Ready nor Succeeded; only controller-owned ones are restartable", () => {
  const stuck = findStuck(
    parsePods(af("pods.json")),
    parsePodEvents(af("events.json")),
    CLOCK,
  );
  assert.deepEqual(stuck.map((p) => [p.name, p.reason, p.restartable]), [
    ["db-0", "ContainerCreating", true],
    ["api-5f6d8b7c9-q8w7e", "CrashLoopBackOff", true],
    ["debug-shell", "ContainerCreating", false],
  ]);
  assert.equal(stuck[0].volumeEvent?.reason, "FailedMount", "the last volume event wins");
  assert.equal(stuck[0].age, "42m");
});

Deno.test("parseSnapshotSaved() reads talosctl's two lines", () => {
  assert.deepEqual(parseSnapshotSaved(af("etcd-snapshot.txt")), {
    path: "db.snapshot",
    bytes: 48238624,
    hash: "5f8c3a1b",
    revision: 1843517,
    totalKeys: 8123,
    totalSize: 48238592,
  });
  assert.equal(parseSnapshotSaved(af("etcd-snapshot.multi-node.err.txt")), undefined);
});

Deno.test("after never restarts a control-plane node's kubelet, even one listed without its role", async () => {
  const out = restoredOut();
  const unlabelled = af("kubectl-get-nodes-wide.no-workers.txt")
    .replace(/^(talos-cp-3 +Ready +)control-plane/m, "$1<none>       ");
  assert.match(unlabelled, /talos-cp-3 +Ready +<none> +41d/);
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: unlabelled }),
    ...podsRecs(),
  ]);
  const code = await afterTask([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone(); // a restart of 192.168.53.12 would be an unexpected call
  assert.match(w.stderr(), /no workers \(kubectl get nodes\)/);
});

Deno.test("after --json: the backup, the workers and the stuck pods on stdout as JSON", async () => {
  const out = restoredOut();
  const w = world([
    seedUp(),
    snapshotRec(out),
    kubectl("get nodes -o wide", { stdout: af("kubectl-get-nodes-wide.workers.txt") }),
    ...podsRecs(),
  ]);
  const code = await afterTask(
    [...NODES_FLAG, "--out", out, "--no-kubelet-restart", "--json"],
    w.deps,
  );
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const j = JSON.parse(w.stdout());
  assert.equal(j.backup.file, SNAP);
  assert.equal(j.backup.sha256, manifestOf(out).backups[0].sha256);
  assert.deepEqual(j.workers.workers.map((x: { address: string }) => x.address), [W1, W2]);
  assert.deepEqual(
    j.pods.stuck.map((p: { name: string; restartable: boolean }) => [p.name, p.restartable]),
    [["db-0", true], ["api-5f6d8b7c9-q8w7e", true], ["debug-shell", false]],
  );
});

Deno.test("afterProgress() tells a kubelet restart accepted from one cut off before talosctl answered (sent again, and said so)", () => {
  const out = tempOut();
  mkdirSync(out, { recursive: true });
  const call = (node: string, exitCode: number | null) =>
    JSON.stringify({
      ts: "2026-11-24T10:40:00.000Z",
      task: "recover",
      type: "call",
      step: `after:kubelet:${node}`,
      node,
      command: `talosctl -e ${node} -n ${node} service kubelet restart`,
      mutating: true,
      exitCode,
      durationMs: 5,
      stdout: "",
      stderr: "",
    });
  writeFileSync(
    join(out, "journal.jsonl"),
    [call("192.168.53.20", 0), call("192.168.53.21", null)].join("\n") + "\n",
  );
  const p = afterProgress(out);
  assert.deepEqual([...p.restarted], ["192.168.53.20"]);
  assert.deepEqual([...p.cutOff], ["192.168.53.21"]);
});
