/**
 * Interrupted, then the same command again: replayed through the strict `$`, one test per
 * phase of lib/recovery/phase.ts, for `recover` and for each step task run on its own. Each re-run
 * must finish without repeating a reset, bootstrap, disarm or reboot that took effect.
 */

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { main as recover } from "../tasks/recover.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { main as wait } from "../tasks/04_wait.ts";
import { main as bootstrap } from "../tasks/05_bootstrap.ts";
import { main as disarm } from "../tasks/06_disarm.ts";
import { main as rejoin } from "../tasks/07_rejoin.ts";
import { main as verify } from "../tasks/08_verify.ts";
import { type FakeWorld, fakeWorld, fx, type Recording } from "./replay.ts";
import {
  afterRec,
  afterRecs,
  bootstrapRecs,
  brokenClusterRecs,
  disarmRecs,
  extractRecs,
  kubectlAbsent,
  makeCopies,
  NODES,
  NODES_FLAG,
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
  W2,
  waitRecs,
  wipeRecs,
} from "./scenario.ts";

const [N10, , N12] = NODES;
// The reboots of rejoin are what these tests resume, so they rehearse the rolling reboot; the
// default (the nodes rejoin by themselves) reboots nothing (tests/rejoin_test.ts).
const ARGS = (
  out: string,
) => [...NODES_FLAG, "--vip", VIP, "--out", out, "--yes", "--rolling-reboot"];
const STEP_ARGS = (out: string) => [...NODES_FLAG, "--out", out, "--yes", "--rolling-reboot"];
/** fullRecoveryRecs with the rolling reboot of rejoin (then the after part). */
const fullRecoveryRecs = (out: string) => [
  ...preflightRecs(),
  ...extractRecs(out),
  ...statusRecs(out),
  ...brokenClusterRecs(),
  ...wipeRecs(),
  ...waitRecs(),
  ...bootstrapRecs(out),
  ...disarmRecs(),
  ...rollingRejoinRecs(),
  ...verifyRecs(),
  ...afterRecs(out),
];
const rejoinRecs = rollingRejoinRecs;
const MUTATING = / reset | bootstrap | alarm disarm$| reboot /;

/** Marks `r` as the call after which the operator presses Ctrl-C (it is answered first). */
function thenCtrlC(r: Recording, world: () => FakeWorld): Recording {
  return {
    ...r,
    effect(cmd) {
      r.effect?.call(this, cmd);
      world().interrupt();
    },
  };
}

/** Runs `task` on `recordings`; the recording at `at` is answered, then Ctrl-C: exit 130. */
async function interrupted(
  task: (args: string[], deps: FakeWorld["deps"]) => Promise<number>,
  args: string[],
  recordings: Recording[],
  at: number,
  /** How many recordings the interrupted run may use (calls started at the same time). */
  keep = at + 1,
): Promise<void> {
  const recs = recordings.slice(0, keep);
  recs[at] = thenCtrlC(recs[at], () => w);
  const w: FakeWorld = fakeWorld(recs);
  assert.equal(await task(args, w.deps), 130, w.stderr());
  w.replay.assertDone();
}

/** The journal's time of the last call matching `re` (exit 0), as a virtual clock later on. */
function acceptedAt(out: string, re: RegExp, plusMs: number): string {
  const lines = readFileSync(join(out, "journal.jsonl"), "utf8").split("\n").filter(Boolean)
    .map((l) => JSON.parse(l));
  const call = lines.filter((e) => e.type === "call" && e.exitCode === 0 && re.test(e.command))
    .at(-1);
  assert.ok(call, `no accepted call matching ${re}`);
  return new Date(Date.parse(call.ts) + plusMs).toISOString();
}

/** The re-run: exit 0, every recording used, and no mutating call but `allowed`. */
async function rerun(
  task: (args: string[], deps: FakeWorld["deps"]) => Promise<number>,
  args: string[],
  recordings: Recording[],
  allowed: string[],
  clock?: string,
): Promise<FakeWorld> {
  const w = fakeWorld(recordings, { clock });
  assert.equal(await task(args, w.deps), 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(MUTATING), allowed);
  return w;
}

const beforeBootstrap = (out: string) => [
  ...preflightRecs(),
  ...extractRecs(out),
  ...statusRecs(out),
  ...brokenClusterRecs(),
  ...wipeRecs(),
  ...waitRecs(),
];
/** Index of the accepted bootstrap in fullRecoveryRecs. */
const acceptedBootstrap = (out: string) => beforeBootstrap(out).length + 2;
const running = () => rec.service(SEED, "service-etcd.running-ok.txt");
const boot = (out: string) => rec.bootstrap(out, SEED).cmd;

// ---- bootstrap accepted ---------------------------------------------------------------------

Deno.test("recover: Ctrl-C right after the bootstrap was accepted, run again: etcd Running goes on with disarm, no second bootstrap", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), acceptedBootstrap(out));
  const w = await rerun(recover, ARGS(out), [
    running(), // the resume's look
    running(), // the restore is seen done
    ...disarmRecs(),
    ...rejoinRecs(),
    ...verifyRecs(),
    ...afterRecs(out),
  ], [
    T(SEED, "etcd", "alarm", "disarm"),
    T(N10, "reboot", "--wait=false"),
    T(N12, "reboot", "--wait=false"),
  ]);
  assert.match(w.stderr(), /Resuming from .*journal\.jsonl: wipe done .*, bootstrap accepted /);
  assert.match(w.stderr(), /where it stands: restored/);
  assert.match(w.stderr(), /recovered: etcd restored from 192\.168\.53\.11/);
  assert.doesNotMatch(w.stderr(), /not yet bootstrapped/);
});

Deno.test("recover: Ctrl-C after the bootstrap was accepted, the restore still running: waited for, not sent again", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), acceptedBootstrap(out));
  const w = await rerun(recover, ARGS(out), [
    rec.service(SEED, "service-etcd.preparing.txt"),
    rec.refused(SEED),
    running(),
    ...disarmRecs(),
    ...rejoinRecs(),
    ...verifyRecs(),
    ...afterRecs(out),
  ], [
    T(SEED, "etcd", "alarm", "disarm"),
    T(N10, "reboot", "--wait=false"),
    T(N12, "reboot", "--wait=false"),
  ]);
  assert.match(w.stderr(), /where it stands: bootstrap accepted/);
  assert.match(w.stderr(), /etcd on "192\.168\.53\.11" to run the restored data: done/);
});

Deno.test("recover: a restore that failed after the accepted bootstrap is refused with both facts, naming the reset and bootstrap to run", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), acceptedBootstrap(out));
  const w = fakeWorld([rec.service(SEED, "service-etcd.failed-missing-hash.txt")]);
  assert.equal(await recover(ARGS(out), w.deps), 2, w.stderr());
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /The journal says the bootstrap of 192\.168\.53\.11 was accepted \(.*\), its restore not seen done, but its etcd is Failed .*: the restore failed: /,
  );
  assert.match(
    w.stderr(),
    /to continue: deno task wipe --nodes 192\.168\.53\.11 .*--force --yes && deno task bootstrap /,
  );
});

Deno.test("bootstrap run again after Ctrl-C right after it was accepted: no second bootstrap; waits for the restore", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const args = [...STEP_ARGS(out), "--seed", SEED];
  await interrupted(bootstrap, args, bootstrapRecs(out), 2);
  const w = await rerun(bootstrap, args, [running(), running()], []);
  assert.match(w.stderr(), /the bootstrap of 192\.168\.53\.11 was accepted .*: not sent again/);
  assert.match(w.stderr(), /next: deno task disarm .*--yes/);
  // and once more: the restore is recorded now; still nothing sent
  const again = await rerun(bootstrap, args, [running()], []);
  assert.match(again.stderr(), /already done: .*records the bootstrap of 192\.168\.53\.11/);
});

Deno.test("wait run again after the bootstrap was accepted: nothing to wait for while etcd runs; refused otherwise", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const args = [...STEP_ARGS(out), "--seed", SEED];
  await interrupted(bootstrap, args, bootstrapRecs(out), 2);
  const w = await rerun(wait, args, [running()], []);
  assert.match(w.stderr(), /nothing to wait for: .*bootstrap of 192\.168\.53\.11 was accepted/);
  const down = fakeWorld([rec.service(SEED, "service-etcd.failed-missing-hash.txt")]);
  assert.equal(await wait(args, down.deps), 2, down.stderr());
  assert.match(down.stderr(), /but its etcd is Failed .*: it is not Preparing again/);
});

Deno.test("wipe run again after the bootstrap was accepted (not seen done) is refused before any call", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), acceptedBootstrap(out));
  const w = fakeWorld([]);
  assert.equal(await wipe(STEP_ARGS(out), w.deps), 2, w.stderr());
  assert.deepEqual(w.replay.calls, []);
  assert.match(w.stderr(), /Refusing to wipe: .*records a bootstrap that was accepted/);
});

// ---- wiped ----------------------------------------------------------------------------------

Deno.test("recover: Ctrl-C right after the wipe finished, run again: bootstraps, never resets again", async () => {
  const out = tempOut();
  const recs = fullRecoveryRecs(out);
  const wipeEnd = [...preflightRecs(), ...extractRecs(out), ...statusRecs(out)].length +
    brokenClusterRecs().length + wipeRecs().length - 1;
  await interrupted(recover, ARGS(out), recs, wipeEnd + 1); // during the wait
  const w = await rerun(
    recover,
    ARGS(out),
    [
      rec.service(SEED, "service-etcd.preparing.txt"),
      ...recs.slice(wipeEnd + 1),
    ],
    [
      boot(out),
      boot(out),
      T(SEED, "etcd", "alarm", "disarm"),
      T(N10, "reboot", "--wait=false"),
      T(N12, "reboot", "--wait=false"),
    ],
  );
  assert.match(w.stderr(), /where it stands: wiped/);
});

Deno.test("wipe run again after it finished sends no reset: done while the seed waits; refused when its etcd runs", async () => {
  const out = tempOut();
  const recs = fullRecoveryRecs(out);
  const wipeEnd = [...preflightRecs(), ...extractRecs(out), ...statusRecs(out)].length +
    brokenClusterRecs().length + wipeRecs().length - 1;
  await interrupted(recover, ARGS(out), recs, wipeEnd + 1);
  const w = await rerun(
    wipe,
    STEP_ARGS(out),
    [rec.service(SEED, "service-etcd.preparing.txt")],
    [],
  );
  assert.match(w.stderr(), /already done: .*records the wipe of every node/);
  assert.match(w.stderr(), /next: deno task bootstrap .*--yes/);
  const up = fakeWorld([running()]);
  assert.equal(await wipe(STEP_ARGS(out), up.deps), 2, up.stderr());
  up.replay.assertDone();
  assert.match(
    up.stderr(),
    /The journal says every node was wiped .* and 192\.168\.53\.11 not yet bootstrapped, but its etcd is Running/,
  );
});

// ---- reset sent -----------------------------------------------------------------------------

Deno.test("recover: Ctrl-C while the resets are sent, run again: a node whose reset was accepted is not reset again, the others are", async () => {
  const out = tempOut();
  const recs = fullRecoveryRecs(out);
  const firstReset = [...preflightRecs(), ...extractRecs(out), ...statusRecs(out)].length +
    brokenClusterRecs().length;
  await interrupted(recover, ARGS(out), recs, firstReset, firstReset + NODES.length);
  // Ctrl-C ended the calls still running: only .10's reset was accepted.
  const journal = readFileSync(join(out, "journal.jsonl"), "utf8");
  const accepted = NODES.filter((n) =>
    journal.includes(`"command":"${rec.reset(n).cmd}","mutating":true,"exitCode":0`)
  );
  assert.deepEqual(accepted, [N10]);
  const later = acceptedAt(out, / reset /, 150_000); // the fixture's Preparing started since
  const w = await rerun(
    recover,
    ARGS(out),
    [
      rec.service(N10, "service-etcd.preparing.txt"),
      running(),
      rec.service(N12, "service-etcd.running-ok.txt"),
      rec.reset(SEED),
      rec.reset(N12),
      ...[SEED, N12].flatMap((n) => [rec.refused(n), rec.service(n, "service-etcd.preparing.txt")]),
      ...recs.slice(firstReset + NODES.length + 2 * NODES.length),
    ],
    [
      rec.reset(SEED).cmd,
      rec.reset(N12).cmd,
      boot(out),
      boot(out),
      T(SEED, "etcd", "alarm", "disarm"),
      T(N10, "reboot", "--wait=false"),
      T(N12, "reboot", "--wait=false"),
    ],
    later,
  );
  assert.match(w.stderr(), /wipe not finished/);
  assert.match(w.stderr(), /192\.168\.53\.10: reset sent .*: wiped/);
});

// ---- restored / disarmed ------------------------------------------------------------------

/** Index of the disarm call in fullRecoveryRecs. */
const disarmCall = (out: string) => beforeBootstrap(out).length + bootstrapRecs(out).length + 1;

Deno.test("recover: Ctrl-C right after the disarm was accepted, run again: the list is empty, no second disarm", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), disarmCall(out));
  const w = await rerun(recover, ARGS(out), [
    running(),
    rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
    ...rejoinRecs(),
    ...verifyRecs(),
    ...afterRecs(out),
  ], [T(N10, "reboot", "--wait=false"), T(N12, "reboot", "--wait=false")]);
  assert.match(w.stderr(), /where it stands: disarmed/);
  assert.match(w.stderr(), /no alarm listed: nothing to disarm/);
});

Deno.test("disarm run again after it succeeded: no disarm call; an alarm armed again is refused", async () => {
  const out = tempOut();
  const f = fakeWorld(fullRecoveryRecs(out));
  assert.equal(await recover(ARGS(out), f.deps), 0, f.stderr());
  const w = await rerun(
    disarm,
    STEP_ARGS(out),
    [rec.alarms(SEED, "etcd-alarm-list.empty.txt")],
    [],
  );
  assert.match(w.stderr(), /nothing to disarm/);
  const armed = fakeWorld([rec.alarms(SEED, "etcd-alarm-list.corrupt.txt")]);
  assert.equal(await disarm(STEP_ARGS(out), armed.deps), 2, armed.stderr());
  assert.deepEqual(armed.replay.callsMatching(MUTATING), []);
});

// ---- rejoined (per node) -------------------------------------------------------------------

/** Index of the reboot of .10 in fullRecoveryRecs. */
const rebootOf10 = (out: string) =>
  beforeBootstrap(out).length + bootstrapRecs(out).length + disarmRecs().length + 2;
/** What rejoin does for .12 once .10 is dealt with (the rolling reboot), then verify. */
const rest = (out: string) => [...rejoinRecs().slice(2 + 5), ...verifyRecs(), ...afterRecs(out)];
/** The seed's `etcd members` listing `nodes` only (rows of the capture); `learner` as learner. */
function membersOf(nodes: string[], learner?: string): Recording {
  const [header, ...rows] = fx("etcd-members.txt").trimEnd().split("\n");
  const kept = rows.filter((r) => nodes.some((n) => r.includes(`//${n}:`)))
    .map((r) => r.includes(`//${learner}:`) ? r.replace(/false$/, "true") : r);
  return { cmd: T(SEED, "etcd", "members"), stdout: [header, ...kept].join("\n") + "\n" };
}

Deno.test("recover: Ctrl-C while the first rebooted node rejoins, run again: the node back as a healthy voter is not rebooted again", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), rebootOf10(out) + 1);
  const later = acceptedAt(out, / reboot /, 10 * 60_000);
  const w = await rerun(
    recover,
    ARGS(out),
    [
      running(),
      rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
      running(), // rejoin checks the seed
      membersOf([SEED, N10]), // who votes already: .10 came back as a voter
      rec.service(N10, "service-etcd.running-ok.joined.txt"),
      membersOf([SEED, N10]),
      ...rest(out),
    ],
    [T(N12, "reboot", "--wait=false")],
    later,
  );
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: already a voter/);
  assert.match(w.stderr(), /where it stands: disarmed/);
  assert.match(w.stderr(), /recovered:/);
  // the journal now records both as rejoined: a third run reboots nothing
  const third = await rerun(
    recover,
    ARGS(out),
    [
      running(),
      rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
      ...verifyRecs(),
      ...afterRecs(out, { again: true }),
    ],
    [],
    later,
  );
  assert.match(third.stderr(), /where it stands: finished/);
});

Deno.test("recover: Ctrl-C right after a reboot was accepted, the node still a learner: waited for, not rebooted again", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), rebootOf10(out));
  const later = acceptedAt(out, / reboot /, 10 * 60_000);
  const w = await rerun(
    recover,
    ARGS(out),
    [
      running(),
      rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
      running(),
      membersOf([SEED, N10], N10), // .10 is a learner: not a voter yet
      rec.service(N10, "service-etcd.running-learner.txt"), // the look: started since its reboot
      rec.service(N10, "service-etcd.running-learner.txt"), // the wait
      rec.service(N10, "service-etcd.running-ok.joined.txt"),
      membersOf([SEED, N10]),
      ...rest(out),
    ],
    [T(N12, "reboot", "--wait=false")],
    later,
  );
  assert.match(
    w.stderr(),
    /192\.168\.53\.10: its reboot was accepted .*; back since: waited for, not rebooted again/,
  );
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: rebooted: by an earlier run; a voter at /);
});

Deno.test("recover: a reboot accepted whose node never restarted since (the reboot did not take) is sent again", async () => {
  const out = tempOut();
  await interrupted(recover, ARGS(out), fullRecoveryRecs(out), rebootOf10(out));
  // A minute on: .10's old etcd (started 3m2s ago) has not restarted since its reboot.
  const soon = acceptedAt(out, / reboot /, 60_000);
  const w = await rerun(
    recover,
    ARGS(out),
    [
      running(),
      rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
      ...rejoinRecs().slice(0, 2),
      rec.service(N10, "service-etcd.running-ok.txt"),
      ...rejoinRecs().slice(2),
      ...verifyRecs(),
      ...afterRecs(out),
    ],
    [T(N10, "reboot", "--wait=false"), T(N12, "reboot", "--wait=false")],
    soon,
  );
  assert.match(w.stderr(), /has not restarted since: the reboot did not take/);
});

Deno.test("rejoin run on its own again after Ctrl-C while a node rejoined: that node is not rebooted again", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out);
  const args = [...STEP_ARGS(out), "--seed", SEED];
  await interrupted(rejoin, args, rejoinRecs(), 3);
  const later = acceptedAt(out, / reboot /, 10 * 60_000);
  const w = await rerun(
    rejoin,
    args,
    [
      running(),
      membersOf([SEED, N10]),
      rec.service(N10, "service-etcd.running-ok.joined.txt"),
      membersOf([SEED, N10]),
      ...rejoinRecs().slice(2 + 5),
    ],
    [T(N12, "reboot", "--wait=false")],
    later,
  );
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: already a voter/);
  assert.match(
    w.stderr(),
    /Rejoining 192\.168\.53\.10 \(1 of 2\)[\s\S]*Rejoining 192\.168\.53\.12 \(2 of 2\)/,
  );
});

// ---- verified -------------------------------------------------------------------------------

Deno.test("recover: Ctrl-C in the after part (the second worker's kubelet restarting), run again: resumes at after, no second backup, no kubelet restarted twice", async () => {
  const out = tempOut();
  const recs = fullRecoveryRecs(out);
  const afterAt = recs.length - afterRecs(out).length;
  const w2Polled = afterAt + 8; // service, snapshot, kubectl, members, W1 ×3, W2's restart, its poll
  assert.equal(recs[w2Polled].cmd, T(W2, "service", "kubelet"));
  await interrupted(recover, ARGS(out), recs, w2Polled);
  const snapshots = () => readdirSync(out).filter((f) => f.startsWith("snapshot-"));
  assert.equal(snapshots().length, 1);

  // without a terminal and --yes, the plan of the re-run: the after part only
  const plan = fakeWorld([]);
  assert.equal(await recover([...NODES_FLAG, "--vip", VIP, "--out", out], plan.deps), 0);
  assert.deepEqual(plan.replay.calls, []);
  assert.match(plan.stdout(), /# resuming: .*verify done .*; the after part not finished/);
  assert.doesNotMatch(plan.stdout(), /etcd alarm|reboot|get addresses/);
  assert.match(plan.stdout(), /# After the restore 1\/3/);

  // on a terminal, without --yes: one question, naming the after part
  const again = fakeWorld([
    running(), // the resume's look
    kubectlAbsent("get nodes -o wide"),
    afterRec.members(),
    afterRec.kubelet(W2, "service-kubelet.running-ok.txt"), // waited for, not restarted
    kubectlAbsent("get pods -A -o json"),
  ], { answers: ["y"], env: { NO_COLOR: "1" } });
  const noYes = ARGS(out).filter((a) => a !== "--yes");
  assert.equal(await recover(noYes, again.deps), 0, again.stderr());
  again.replay.assertDone();
  assert.deepEqual(again.replay.callsMatching(MUTATING), []);
  const asked = again.stderr().match(/About to .*\[y\/N\]/g) ?? [];
  assert.deepEqual(asked, [
    "About to continue the recovery with the after part (seed 192.168.53.11): keep the verified " +
    "backup taken earlier, restart the kubelet of each other worker (not 192.168.53.20, " +
    "192.168.53.21 again), one at a time, list the stuck pods. Continue? [y/N]",
  ]);
  assert.match(again.stderr(), /where it stands: verified/);
  assert.match(again.stderr(), /==> After the restore: a verified backup, the workers' kubelets/);
  assert.deepEqual(again.replay.callsMatching(/ etcd snapshot | kubelet restart$/), []);
  assert.match(again.stderr(), /kept: .*snapshot-\d{8}T\d{6}Z\.db/);
  assert.match(again.stderr(), /restarted earlier in this OUT: 192\.168\.53\.20/);
  assert.match(again.stderr(), /192\.168\.53\.21: its restart was accepted earlier: waiting/);
  assert.equal(snapshots().length, 1);
  assert.equal(JSON.parse(readFileSync(join(out, "manifest.json"), "utf8")).backups.length, 1);
  assert.match(
    readFileSync(join(out, "report.md"), "utf8"),
    /kubelets restarted: 192\.168\.53\.20, 192\.168\.53\.21/,
  );
});

Deno.test("verify run again after a finished recovery changes nothing and passes", async () => {
  const out = tempOut();
  const f = fakeWorld(fullRecoveryRecs(out));
  assert.equal(await recover(ARGS(out), f.deps), 0, f.stderr());
  await rerun(verify, [...STEP_ARGS(out), "--vip", VIP], verifyRecs(), []);
});

Deno.test("the members fixture lists .10 as a voter (what the rejoin tests rely on)", () => {
  assert.match(fx("etcd-members.txt"), /192\.168\.53\.10:2380 .* false/);
});

// ---- a call whose answer Ctrl-C cut off ------------------------------------------------------

/**
 * Runs `task` on `recordings` where the recording at `at` hangs; Ctrl-C comes while it does
 * (the call is journaled with no exit code): exit 130.
 */
async function cutOff(
  task: (args: string[], deps: FakeWorld["deps"]) => Promise<number>,
  args: string[],
  recordings: Recording[],
  at: number,
): Promise<void> {
  const recs = recordings.slice(0, at + 1);
  const target = recs[at].cmd;
  recs[at] = { cmd: target, hang: true };
  const w = fakeWorld(recs);
  const seen = recs.slice(0, at + 1).filter((r) => r.cmd === target).length;
  const timer = setInterval(() => {
    if (w.replay.calls.filter((c) => c === target).length === seen) w.interrupt();
  }, 5);
  try {
    assert.equal(await task(args, w.deps), 130, w.stderr());
  } finally {
    clearInterval(timer);
  }
  w.replay.assertDone();
  assert.match(readFileSync(join(out(args), "journal.jsonl"), "utf8"), /"exitCode":null/);
}
const out = (args: string[]) => args[args.indexOf("--out") + 1];

/** The time the last call matching `re` began (its answer cut off), plus `plusMs`. */
function cutOffAt(dir: string, re: RegExp, plusMs: number): string {
  const lines = readFileSync(join(dir, "journal.jsonl"), "utf8").split("\n").filter(Boolean)
    .map((l) => JSON.parse(l));
  const call = lines.filter((e) => e.type === "call" && e.exitCode === null && re.test(e.command))
    .at(-1);
  assert.ok(call, `no cut-off call matching ${re}`);
  return new Date(Date.parse(call.ts) - call.durationMs + plusMs).toISOString();
}

Deno.test("recover: Ctrl-C during the bootstrap call itself, run again: the seed's etcd running since counts as accepted, not sent again", async () => {
  const dir = tempOut();
  await cutOff(recover, ARGS(dir), fullRecoveryRecs(dir), acceptedBootstrap(dir));
  // Five minutes on, the running fixture (started 3m2s ago) started after the call began.
  const later = cutOffAt(dir, / bootstrap /, 5 * 60_000);
  const w = await rerun(recover, ARGS(dir), [
    running(),
    running(),
    ...disarmRecs(),
    ...rejoinRecs(),
    ...verifyRecs(),
    ...afterRecs(dir),
  ], [
    T(SEED, "etcd", "alarm", "disarm"),
    T(N10, "reboot", "--wait=false"),
    T(N12, "reboot", "--wait=false"),
  ], later);
  assert.match(w.stderr(), /where it stands: restored/);
  assert.match(w.stderr(), /bootstrap sent .*; not sent again/);
});

Deno.test("recover: Ctrl-C during the bootstrap call, the seed still Preparing: the bootstrap did not take and is sent again", async () => {
  const dir = tempOut();
  await cutOff(recover, ARGS(dir), fullRecoveryRecs(dir), acceptedBootstrap(dir));
  const w = await rerun(recover, ARGS(dir), [
    rec.service(SEED, "service-etcd.preparing.txt"),
    ...waitRecs(),
    ...fullRecoveryRecs(dir).slice(beforeBootstrap(dir).length),
  ], [
    boot(dir),
    boot(dir),
    T(SEED, "etcd", "alarm", "disarm"),
    T(N10, "reboot", "--wait=false"),
    T(N12, "reboot", "--wait=false"),
  ]);
  assert.match(w.stderr(), /where it stands: wiped/);
});

Deno.test("rejoin: Ctrl-C during a reboot call, run again: the node back since is not rebooted again", async () => {
  const dir = tempOut();
  makeCopies(dir);
  recordSeed(dir);
  const args = [...STEP_ARGS(dir), "--seed", SEED];
  await cutOff(rejoin, args, rejoinRecs(), 2);
  const later = cutOffAt(dir, / reboot /, 10 * 60_000);
  const w = await rerun(
    rejoin,
    args,
    [
      running(),
      membersOf([SEED]), // not a voter yet: the seed alone votes
      rec.service(N10, "service-etcd.running-ok.joined.txt"), // started since the cut-off call
      rec.service(N10, "service-etcd.running-ok.joined.txt"),
      membersOf([SEED, N10]),
      ...rejoinRecs().slice(2 + 5),
    ],
    [T(N12, "reboot", "--wait=false")],
    later,
  );
  assert.match(
    w.stderr(),
    /192\.168\.53\.10: its reboot was accepted .*; back since: waited for, not rebooted again/,
  );
});

Deno.test("without a terminal, the plan of a re-run after an accepted bootstrap waits for the restore and sends no bootstrap", async () => {
  const dir = tempOut();
  await interrupted(recover, ARGS(dir), fullRecoveryRecs(dir), acceptedBootstrap(dir));
  const w = fakeWorld([]);
  assert.equal(await recover([...NODES_FLAG, "--vip", VIP, "--out", dir], w.deps), 0);
  assert.deepEqual(w.replay.calls, []);
  const plan = w.stdout();
  assert.match(plan, /# resuming: wipe done .*, bootstrap accepted .* \(never sent again\)/);
  // no line runs either (the after part's comment names how to restore from its backup)
  assert.doesNotMatch(plan, /^[^#\n]*( bootstrap --recover-from| reset )/m);
  assert.match(plan, /etcd on 192\.168\.53\.11 to run the restored data/);
  assert.match(plan, /etcd alarm disarm/);
});
