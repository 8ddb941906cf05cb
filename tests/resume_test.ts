import assert from "node:assert/strict";
import { appendFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { readProgress, rejoinedNodes } from "../lib/recovery/resume.ts";
import { join } from "node:path";
import { main as recover } from "../tasks/recover.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { type FakeWorld, fakeWorld } from "./replay.ts";
import type { Recording } from "./replay.ts";
import {
  afterRecs,
  afterWipeRecs,
  brokenClusterRecs,
  extractRecs,
  fullRecoveryRecs,
  interruptedAtBootstrap,
  makeCopies,
  NODES,
  NODES_FLAG,
  preflightRecs,
  rec,
  recordSeed,
  SEED,
  statusRecs,
  T,
  tempOut,
  verifyRecs,
  VIP,
} from "./scenario.ts";

const ARGS = (out: string) => [...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"];

/** A first run that the operator interrupts while bootstrap is "not available yet". */
async function interruptedRun(out: string): Promise<FakeWorld> {
  const world: FakeWorld = fakeWorld(interruptedAtBootstrap(out, () => world.interrupt()));
  assert.equal(await recover(ARGS(out), world.deps), 130, world.stderr());
  return world;
}

Deno.test("Ctrl-C during recover ends the wait, exits 130, and says how to continue", async () => {
  const out = tempOut();
  const w = await interruptedRun(out);
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /error: Interrupted while waiting for "192\.168\.53\.11" to accept the bootstrap, after 0s \(during its first check\); while running: talosctl .* bootstrap/,
  );
  assert.match(w.stderr(), /cluster state: every node wiped/);
  assert.match(
    w.stderr(),
    /to continue: deno task recover --nodes 192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12 --seed 192\.168\.53\.11 --vip 192\.168\.53\.2 --out .* --yes/,
  );
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /failed \(exit 130\)/);
  assert.match(report, /\| wipe \| ok \|/);
});

Deno.test("re-running recover after the wipe resumes at bootstrap and never wipes again", async () => {
  const out = tempOut();
  await interruptedRun(out);
  const second = fakeWorld([
    rec.service(SEED, "service-etcd.preparing.txt"), // resume looks at the seed
    ...afterWipeRecs(out),
  ]);
  const code = await recover(ARGS(out), second.deps);
  assert.equal(code, 0, second.stderr());
  second.replay.assertDone();
  assert.match(second.stderr(), /Resuming from .*journal\.jsonl: wipe done/);
  assert.match(second.stderr(), /live: etcd on 192\.168\.53\.11 is Preparing/);
  assert.deepEqual(second.replay.callsMatching(/ reset | cp /), []);
});

Deno.test("re-running a finished recover reboots nothing, verifies, and takes no second backup", async () => {
  const out = tempOut();
  const w = fakeWorld(fullRecoveryRecs(out));
  assert.equal(await recover(ARGS(out), w.deps), 0, w.stderr());

  const again = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
    ...verifyRecs(),
    ...afterRecs(out, { again: true }), // the backup kept, no kubelet restarted twice
  ]);
  const code = await recover(ARGS(out), again.deps);
  assert.equal(code, 0, again.stderr());
  again.replay.assertDone();
  assert.match(again.stderr(), /rejoined in an earlier run/);
  assert.match(again.stderr(), /where it stands: finished/);
  assert.deepEqual(again.replay.callsMatching(/ reset | reboot | bootstrap | disarm/), []);
});

Deno.test("resume refuses when the live state contradicts the journal", async () => {
  const out = tempOut();
  await interruptedRun(out);
  const w = fakeWorld([rec.service(SEED, "service-etcd.running-ok.txt")]);
  const code = await recover(ARGS(out), w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(w.stderr(), /not yet bootstrapped, but its etcd is Running/);
  assert.match(w.stderr(), /--force/);
});

Deno.test("without a terminal, the plan of a re-run starts where the journal says it resumes", async () => {
  const out = tempOut();
  await interruptedRun(out);
  const w = fakeWorld([]);
  const code = await recover([...NODES_FLAG, "--vip", VIP, "--out", out], w.deps);
  assert.equal(code, 0);
  assert.deepEqual(w.replay.calls, []);
  const plan = w.stdout();
  assert.match(plan, /# resuming: wipe done/);
  assert.doesNotMatch(plan, / reset | cp /);
  assert.match(
    plan,
    /bootstrap_from 192\.168\.53\.11 .*db\.192\.168\.53\.11\/db/,
  );
});

Deno.test("resume refuses another --nodes than the earlier run's: exit 2, no call, names both lists", async () => {
  const out = tempOut();
  await interruptedRun(out);
  const other = ["192.168.53.20", "192.168.53.21", "192.168.53.22"];
  const w = fakeWorld([]);
  const code = await recover(["--nodes", other.join(","), "--out", out, "--yes"], w.deps);
  assert.equal(code, 2, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.calls, []);
  assert.match(
    w.stderr(),
    /--nodes 192\.168\.53\.20,192\.168\.53\.21,192\.168\.53\.22 is not the node list of the earlier run in .* \(192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12\), which records wipe done/,
  );
  assert.match(
    w.stderr(),
    /resume that recovery with --nodes 192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12/,
  );
  // Refused, so unchanged by this run; but the wipe of the earlier run stays in view.
  assert.match(
    w.stderr(),
    /cluster state: unchanged by this run; an earlier run left it: every node wiped/,
  );
  assert.match(
    readFileSync(join(out, "report.md"), "utf8"),
    /- Cluster state: unchanged by this run; an earlier run left it: every node wiped/,
  );
  // A subset is refused too: the node left out would never rejoin.
  const fewer = fakeWorld([]);
  const args = ["--nodes", "192.168.53.10,192.168.53.11", "--out", out, "--yes"];
  assert.equal(await recover(args, fewer.deps), 2, fewer.stderr());
  assert.deepEqual(fewer.replay.calls, []);
  assert.match(
    fewer.stderr(),
    /cluster state: unchanged by this run; an earlier run left it: every node wiped/,
    "not nested",
  );
  assert.doesNotMatch(fewer.stderr(), /left it: unchanged/);
});

const [N10, , N12] = NODES;
const repeat = (r: Recording, n: number) =>
  Array.from({ length: n }, () => ({ ...r, optional: true }));

/**
 * A re-run 2m30s after the first run's resets (10:00): the fixtures' Preparing (started 1m27s
 * ago) then started after them, and Running (3m2s ago) before them.
 */
const LATER = "2026-11-24T10:02:30Z";

/** A recover whose resets were all accepted, then .12 never rebooted (its reset did not take). */
async function unfinishedWipe(out: string, etcdPartitionOn12 = false): Promise<void> {
  const preflight = preflightRecs().map((r) =>
    etcdPartitionOn12 && r.cmd === rec.etcdVolume(N12, "directory").cmd
      ? rec.etcdVolume(N12, "partition")
      : r
  );
  const first = fakeWorld([
    ...preflight,
    ...extractRecs(out),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    ...NODES.map((n) => n === N12 && etcdPartitionOn12 ? resetWithEtcd(N12) : rec.reset(n)),
    rec.refused(N10),
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.refused(SEED),
    rec.service(SEED, "service-etcd.preparing.txt"),
    ...repeat(rec.service(N12, "service-etcd.running-ok.txt"), 30),
  ]);
  assert.equal(await recover([...ARGS(out), "--timeout", "1m"], first.deps), 1, first.stderr());
  assert.match(first.stderr(), /to continue: deno task recover .* --yes/);
}

Deno.test("a wipe that did not finish is finished on the re-run: no pre-flight, a node still running is reset again", async () => {
  const out = tempOut();
  await unfinishedWipe(out);

  // Re-run: .10 is wiped, the seed is rebooting, .12 still runs its old etcd.
  const second = fakeWorld([
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.refused(SEED),
    rec.service(N12, "service-etcd.running-ok.txt"),
    rec.reset(N12),
    rec.refused(SEED),
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.refused(N12),
    rec.service(N12, "service-etcd.preparing.txt"),
    ...afterWipeRecs(out),
  ], { clock: LATER });
  const code = await recover(ARGS(out), second.deps);
  assert.equal(code, 0, second.stderr());
  second.replay.assertDone();
  assert.match(
    second.stderr(),
    /Resuming from .*journal\.jsonl: reset sent to 192\.168\.53\.10, 192\.168\.53\.11, 192\.168\.53\.12 \(last .*\), wipe not finished/,
  );
  assert.match(
    second.stderr(),
    /192\.168\.53\.12: reset sent .*; etcd Running .*, not restarted since its reset: resetting it \(again\)/,
  );
  assert.match(second.stderr(), /192\.168\.53\.10: reset sent .*; etcd Preparing .*: wiped\n/);
  assert.match(
    second.stderr(),
    /192\.168\.53\.11: reset sent .*; down .*: waiting for it to come back wiped/,
  );
  assert.deepEqual(second.replay.callsMatching(/ version$| cp /), [], "no pre-flight, no copies");
  assert.deepEqual(second.replay.callsMatching(/ reset /).length, 1, "only .12 is reset again");
  assert.match(second.stderr(), /recovered: etcd restored from 192\.168\.53\.11/);
});

Deno.test("wipe run again after a wipe that did not finish finishes it, without a pre-flight", async () => {
  const out = tempOut();
  await unfinishedWipe(out);
  const w = fakeWorld([
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.refused(N12), // rebooting at last; the two seen wiped are not asked again
    rec.service(N12, "service-etcd.preparing.txt"),
  ], { clock: LATER });
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ version$| reset /), []);
  assert.match(w.stderr(), /wipe not finished \(--force starts over\)/);
  assert.match(w.stderr(), /next: deno task bootstrap .*--yes/);
});

/** The reset of a node whose etcd has its own partition. */
function resetWithEtcd(node: string): Recording {
  const r = rec.reset(node);
  return {
    ...r,
    cmd: r.cmd.replace(
      "--system-labels-to-wipe EPHEMERAL",
      "--system-labels-to-wipe EPHEMERAL --system-labels-to-wipe ETCD",
    ),
  };
}

Deno.test("a node reset again on the re-run keeps its --system-labels-to-wipe ETCD (no pre-flight finds it now)", async () => {
  const out = tempOut();
  await unfinishedWipe(out, true);
  const w = fakeWorld([
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.service(N12, "service-etcd.running-ok.txt"),
    resetWithEtcd(N12),
    rec.refused(N12),
    rec.service(N12, "service-etcd.preparing.txt"),
  ], { clock: LATER });
  assert.equal(await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps), 0, w.stderr());
  w.replay.assertDone();
});

Deno.test("resume accepts the extraction's --nodes even when a node's copy failed (passed over with --force)", async () => {
  const out = tempOut();
  makeCopies(out);
  const manifestPath = join(out, "manifest.json");
  const manifest = JSON.parse(readFileSync(manifestPath, "utf8"));
  delete manifest.copies[N12];
  manifest.failures[N12] = "connection refused";
  writeFileSync(manifestPath, JSON.stringify(manifest));
  recordSeed(out);
  appendFileSync(
    join(out, "journal.jsonl"),
    JSON.stringify({
      ts: "2026-11-24T10:05:00.000Z",
      task: "recover",
      type: "step",
      step: "wipe",
      event: "ok",
    }) +
      "\n",
  );
  const w = fakeWorld([rec.service(SEED, "service-etcd.running-ok.txt")]);
  assert.equal(await recover(ARGS(out), w.deps), 2, w.stderr());
  w.replay.assertDone();
  assert.doesNotMatch(w.stderr(), /is not the node list/);
  assert.match(
    w.stderr(),
    /not yet bootstrapped, but its etcd is Running/,
    "it got to the live check",
  );
});

Deno.test("finishing a wipe is refused once the journal records a bootstrap since, and for another cluster's --nodes", async () => {
  const out = tempOut();
  await unfinishedWipe(out);
  // Another cluster's nodes on this OUT: nothing is reset.
  const other = fakeWorld([], { clock: LATER });
  const code = await wipe(["--nodes", "192.168.53.20", "--out", out, "--yes"], other.deps);
  assert.equal(code, 2, other.stderr());
  assert.deepEqual(other.replay.calls, []);
  assert.match(other.stderr(), /--nodes 192\.168\.53\.20 is not the node list of the earlier run/);

  // The operator bootstrapped the seed by hand (deno task bootstrap): wipe never resets it.
  appendFileSync(
    join(out, "journal.jsonl"),
    JSON.stringify({
      ts: "2026-11-24T10:02:00.000Z",
      task: "bootstrap",
      type: "step",
      step: "bootstrap",
      event: "ok",
    }) + "\n",
  );
  const w = fakeWorld([], { clock: LATER });
  assert.equal(await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps), 2, w.stderr());
  assert.deepEqual(w.replay.calls, [], "no pre-flight, no reset");
  assert.match(w.stderr(), /Refusing to wipe: .*records a bootstrap that succeeded/);
});

Deno.test("finishing a wipe refuses a node whose etcd runs and started after its reset (bootstrapped outside the journal)", async () => {
  const out = tempOut();
  await unfinishedWipe(out);
  // 5 minutes on: the seed's etcd (Running, started 3m2s ago) started after the resets.
  const w = fakeWorld([
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.service(N12, "service-etcd.preparing.txt"),
  ], { clock: "2026-11-24T10:05:00Z" });
  assert.equal(await recover(ARGS(out), w.deps), 2, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reset | bootstrap /), []);
  assert.match(
    w.stderr(),
    /etcd runs on "192\.168\.53\.11" and started after its reset: bootstrapped or joined since/,
  );
});

Deno.test("a forced restart whose reset failed on one node is finished by the command to continue, not bootstrapped over", async () => {
  const out = tempOut();
  const first = fakeWorld(fullRecoveryRecs(out));
  assert.equal(await recover(ARGS(out), first.deps), 0, first.stderr());
  // The operator starts over (--force); the reset fails on .12.
  const forced = fakeWorld([
    ...preflightRecs(),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    rec.reset(N10),
    rec.reset(SEED),
    rec.reset(N12, { stdout: "", stderr: "rpc error: code = Unavailable", code: 1 }),
  ]);
  assert.equal(await recover([...ARGS(out), "--force"], forced.deps), 1, forced.stderr());
  assert.match(forced.stderr(), /to continue: deno task recover .* --yes/);

  // The command to continue: the wipe is finished (.12 reset now), then every step again,
  // both other nodes rejoined (the earlier recovery's rejoins no longer count).
  const again = fakeWorld([
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.service(N12, "service-etcd.running-ok.txt"),
    rec.reset(N12),
    rec.refused(N12),
    rec.service(N12, "service-etcd.preparing.txt"),
    ...afterWipeRecs(out),
  ], { clock: LATER });
  assert.equal(await recover(ARGS(out), again.deps), 0, again.stderr());
  again.replay.assertDone();
  assert.match(again.stderr(), /wipe not finished/);
  assert.match(
    again.stderr(),
    /192\.168\.53\.12: reset sent never; no reset accepted yet: resetting it/,
  );
  assert.equal(again.stderr().match(/rejoined by itself at/g)?.length, 2, "both rejoin again");
});

Deno.test("readProgress: a reset of another node keeps the restore; a reset of the seed ends it", () => {
  const out = tempOut();
  mkdirSync(out, { recursive: true });
  const at = (m: number) => `2026-11-24T10:${String(m).padStart(2, "0")}:00.000Z`;
  const step = (m: number, name: string) => ({
    ts: at(m),
    task: "recover",
    type: "step",
    step: name,
    event: "ok",
  });
  const reset = (m: number, node: string, exitCode = 0) => ({
    ts: at(m),
    task: "wipe",
    type: "call",
    step: "wipe",
    node,
    command: `${T(node, "reset", "--system-labels-to-wipe", "EPHEMERAL", "--graceful=false")}`,
    mutating: true,
    exitCode,
    durationMs: 10,
    stdout: "",
    stderr: "",
  });
  const write = (entries: object[]) =>
    appendFileSync(
      join(out, "journal.jsonl"),
      entries.map((e) => JSON.stringify(e) + "\n").join(""),
    );
  write([
    { ts: at(0), task: "recover", type: "fact", key: "seed", value: SEED },
    ...NODES.map((n) => reset(1, n)),
    step(2, "wipe"),
    step(3, "bootstrap"),
    step(4, "disarm"),
    step(5, `rejoin:${N10}`),
    step(6, `rejoin:${N12}`),
  ]);
  let p = readProgress(out);
  assert.deepEqual([...p.resetSent.keys()], [], "a finished wipe leaves nothing to finish");
  assert.deepEqual([...rejoinedNodes(p)].sort(), [N10, N12]);

  write([reset(7, N12), reset(7, N10, 1)]); // wipe --nodes .12 (a failed call counts for nothing)
  p = readProgress(out);
  assert.deepEqual([...p.resetSent.keys()], [N12]);
  assert.ok(p.done.has("bootstrap") && p.done.has("disarm"), "the seed's restore still stands");
  assert.deepEqual([...rejoinedNodes(p)], [N10], ".12 has to rejoin again");
  assert.equal(p.done.has("wipe"), false);

  write([reset(8, SEED)]);
  p = readProgress(out);
  assert.deepEqual([...p.done.keys()], [], "the seed was reset: nothing after the wipe holds");
  assert.deepEqual([...p.resetSent.keys()].sort(), [SEED, N12].sort());
});

Deno.test("disarm refuses an alarm armed again after this recovery cleared its own: a new incident", async () => {
  const out = tempOut();
  const first = fakeWorld(fullRecoveryRecs(out));
  assert.equal(await recover(ARGS(out), first.deps), 0, first.stderr());
  // Later, the cluster is corrupt again; someone re-runs recover on the same OUT.
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.alarms(SEED, "etcd-alarm-list.corrupt.txt"),
  ]);
  assert.equal(await recover(ARGS(out), w.deps), 2, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ disarm$/), []);
  assert.match(
    w.stderr(),
    /CORRUPT is armed again on 192\.168\.53\.11, after the alarms of this recovery were cleared/,
  );
  assert.match(w.stderr(), /a new --out/);
});

Deno.test("a resume, or finishing a wipe, refuses another --seed than the earlier run's; nothing is called", async () => {
  const out = tempOut();
  await interruptedRun(out);
  const w = fakeWorld([]);
  assert.equal(await recover([...ARGS(out), "--seed", N10], w.deps), 2, w.stderr());
  assert.deepEqual(w.replay.calls, []);
  assert.match(
    w.stderr(),
    /--seed 192\.168\.53\.10 differs from the seed of the earlier run, 192\.168\.53\.11/,
  );

  const unfinished = tempOut();
  await unfinishedWipe(unfinished);
  const wiping = fakeWorld([], { clock: LATER });
  const args = [...NODES_FLAG, "--out", unfinished, "--seed", N10, "--yes"];
  assert.equal(await wipe(args, wiping.deps), 2, wiping.stderr());
  assert.deepEqual(wiping.replay.calls, []);
  assert.match(wiping.stderr(), /differs from the seed of the earlier run/);
});

Deno.test("finishing a wipe: a reset refused again fails with exit 1, naming the node and the state", async () => {
  const out = tempOut();
  await unfinishedWipe(out);
  const w = fakeWorld([
    rec.service(N10, "service-etcd.preparing.txt"),
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.service(N12, "service-etcd.running-ok.txt"),
    rec.reset(N12, {
      stdout: "",
      stderr: "rpc error: code = Unavailable desc = connection refused",
      code: 1,
    }),
  ], { clock: LATER });
  assert.equal(await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps), 1, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /Reset failed on "192\.168\.53\.12": rpc error: code = Unavailable/);
  assert.match(
    w.stderr(),
    /cluster state: reset sent earlier to .*; sent again to 192\.168\.53\.12 and FAILED on 192\.168\.53\.12 \(still holding the old etcd\)/,
  );
  assert.match(w.stderr(), /to continue: deno task wipe .*--yes/);
});
