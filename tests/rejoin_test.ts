/**
 * rejoin waits for the wiped nodes to join by themselves and reboots only those that will
 * not: the pure decision (lib/recovery/rejoin_policy.ts) on captured `service etcd` / `etcd members`
 * output, then the task through the strict replaying `$` on a virtual clock.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { main as rejoin } from "../tasks/07_rejoin.ts";
import { type ServiceLook } from "../lib/talos/cluster.ts";
import { parseMembers, parseServiceInfo } from "../lib/talos/parse.ts";
import {
  decide,
  failedReason,
  needsMembers,
  rebootAtOnce,
  type Turn,
} from "../lib/recovery/rejoin_policy.ts";
import { parseOptions } from "../lib/run/cli.ts";
import { fakeWorld, fx, type Recording } from "./replay.ts";
import { fxFor, NODES_FLAG, P, rec, rejoinRecs, SEED, T, tempOut } from "./scenario.ts";

const N10 = "192.168.53.10";
const N12 = "192.168.53.12";

/** fixtures/talosctl-extra (outputs the reference does not hold; provenance in its README). */
const extra = (name: string, node: string) =>
  readFileSync(new URL(`../fixtures/talosctl-extra/${name}`, import.meta.url), "utf8")
    .replaceAll("192.168.53.10", node);

const GAVE_UP = "service-etcd.failed-join-timeout.txt";

const up = (fixture: string, node = N12): ServiceLook => ({
  kind: "up",
  info: parseServiceInfo(fxFor(fixture, node))[0],
});

/** The seed's `etcd members` with only `nodes` (rows of the capture), `learner` as learner. */
function membersText(nodes: string[], learner?: string): string {
  const [header, ...rows] = fx("etcd-members.txt").trimEnd().split("\n");
  const kept = rows.filter((r) => nodes.some((n) => r.includes(`//${n}:`)));
  return [header, ...kept.map((r) => r.includes(`//${learner}:`) ? r.replace(/false$/, "true") : r)]
    .join("\n") + "\n";
}
const members = (nodes: string[], learner?: string): Recording => ({
  cmd: T(SEED, "etcd", "members"),
  stdout: membersText(nodes, learner),
});

const turn = (o: Partial<Turn> = {}): Turn => ({
  node: N12,
  seed: SEED,
  graceMs: 30_000,
  rolling: false,
  voterAtStart: false,
  ...o,
});

const repeat = (r: Recording, n: number) => Array.from({ length: n }, () => ({ ...r }));

// ---- the decision ---------------------------------------------------------------------------

Deno.test("decide(): a Preparing node the seed does not list is waited for until the grace, then rebooted", () => {
  const seedOnly = parseMembers(fx("etcd-members.seed-only.txt"));
  const look = { service: up("service-etcd.preparing.txt"), members: seedOnly };
  const first = decide(turn(), { now: 1_000, ...look });
  assert.equal(first.action.kind, "wait");
  assert.equal(first.quietSince, 1_000, "the grace starts: the seed runs, no learner in flight");
  assert.match(
    (first.action as { state: string }).state,
    /Preparing .* not joining yet; rebooted if still so at 00:00:31 UTC/,
  );
  const before = decide(turn(), { now: 30_999, quietSince: 1_000, ...look });
  assert.equal(before.action.kind, "wait");
  const after = decide(turn(), { now: 31_000, quietSince: 1_000, ...look });
  assert.deepEqual(after.action, { kind: "reboot", why: "still Preparing after 30s" });
});

Deno.test("decide(): while another node is a learner, a node not joining waits its turn and the grace stops", () => {
  const learnerTen = parseMembers(fx("etcd-members.learner.txt")); // .10 is the learner
  const d = decide(turn(), {
    now: 500_000,
    quietSince: 1_000, // long past the grace: the slot was free once
    service: up("service-etcd.preparing.txt"),
    members: learnerTen,
  });
  assert.equal(d.action.kind, "wait");
  assert.match((d.action as { state: string }).state, /waits its turn: talos-cp-1 is a learner/);
  assert.equal(d.quietSince, undefined, "the grace starts again once the learner is promoted");
});

Deno.test("decide(): a Failed node is rebooted at once, saying why (the join timeout's text, both rows)", () => {
  const info = parseServiceInfo(extra(GAVE_UP, N12))[0];
  assert.equal(
    failedReason(info),
    "Failed to run pre stage: failed to build initial etcd cluster: failed to build cluster " +
      "arguments: 1 error(s) occurred: timeout",
  );
  assert.equal(needsMembers(turn(), { kind: "up", info }), false, "no need to ask the seed");
  const d = decide(turn(), { now: 0, service: { kind: "up", info } });
  assert.deepEqual(d.action, { kind: "reboot", why: `etcd Failed (${failedReason(info)})` });
  // Failed again after this run's reboot: stop, do not reboot twice.
  const again = decide(turn({ rebootedAt: 0 }), {
    now: 60_000,
    service: { kind: "up", info },
    backFromReboot: true,
  });
  assert.equal(again.action.kind, "fail");
  assert.match((again.action as { error: string }).error, /failed after its reboot: .*timeout/);
});

Deno.test("decide(): a learner, a node down and a node already a voter are never rebooted", () => {
  const learner = decide(turn(), { now: 900_000, service: up("service-etcd.running-learner.txt") });
  assert.equal(learner.action.kind, "wait");
  assert.equal(learner.quietSince, undefined, "it is the learner in flight");
  assert.equal(needsMembers(turn(), up("service-etcd.running-learner.txt")), false);
  const down = decide(turn(), {
    now: 900_000,
    quietSince: 0,
    service: { kind: "down", detail: "unreachable" },
  });
  assert.equal(down.action.kind, "wait");
  const all = parseMembers(fx("etcd-members.txt"));
  const voter = decide(turn({ voterAtStart: true, rolling: true }), {
    now: 0,
    service: up("service-etcd.running-ok.joined.txt"),
    members: all,
  });
  assert.deepEqual(voter.action, { kind: "done", why: "already a voter" });
  const joined = decide(turn(), {
    now: Date.parse("2026-11-24T12:04:31Z"),
    service: up("service-etcd.running-ok.joined.txt"),
    members: all,
  });
  assert.deepEqual(joined.action, { kind: "done", why: "rejoined by itself at 12:04:31 UTC" });
  assert.equal(rebootAtOnce(turn({ voterAtStart: true, rolling: true })), undefined);
  assert.equal(rebootAtOnce(turn({ rolling: true })), "rolling reboot (--rolling-reboot)");
  assert.equal(rebootAtOnce(turn()), undefined);
});

// ---- the task -------------------------------------------------------------------------------

const args = (out: string, ...more: string[]) => [
  ...NODES_FLAG,
  "--seed",
  SEED,
  "--out",
  out,
  "--yes",
  ...more,
];

Deno.test("rejoin: every node rejoins by itself: no reboot is sent, and each says so", async () => {
  const w = fakeWorld(rejoinRecs());
  assert.equal(await rejoin(args(tempOut()), w.deps), 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reboot /), []);
  // the polls look again after 1 s: each is seen a second after it came back
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: rejoined by itself at 10:00:01 UTC/);
  assert.match(w.stderr(), /ok: 192\.168\.53\.12: rejoined by itself at 10:00:01 UTC/);
});

Deno.test("rejoin: a node whose join gave up (etcd Failed) is rebooted, and only that one", async () => {
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
    rec.service(N10, "service-etcd.running-learner.txt"),
    rec.service(N10, "service-etcd.running-ok.joined.txt"),
    members([SEED, N10]),
    { cmd: T(N12, "service", "etcd"), stdout: extra(GAVE_UP, N12) },
    rec.reboot(N12),
    rec.refused(N12),
    rec.service(N12, "service-etcd.running-learner.txt"),
    rec.service(N12, "service-etcd.running-ok.joined.txt"),
    rec.members(SEED, "etcd-members.txt"),
  ]);
  assert.equal(await rejoin(args(tempOut()), w.deps), 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reboot /), [T(N12, "reboot", "--wait=false")]);
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: rejoined by itself at /);
  assert.match(
    w.stderr(),
    /ok: 192\.168\.53\.12: rebooted: etcd Failed \(Failed to run pre stage: .*occurred: timeout\); a voter at /,
  );
});

Deno.test("rejoin: a node still Preparing after the grace is rebooted, and only that one", async () => {
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
    rec.service(N10, "service-etcd.running-ok.joined.txt"),
    members([SEED, N10]),
    // .12 does not join: looked at after 0, 1, 3, 6, 10, 15, 20, 25 and 30 s (the polls back
    // off to 5 s), rebooted once 30 s passed with no learner
    ...repeat(rec.service(N12, "service-etcd.preparing.txt"), 9),
    ...repeat(members([SEED, N10]), 9),
    rec.reboot(N12),
    rec.refused(N12),
    rec.service(N12, "service-etcd.running-ok.joined.txt"),
    rec.members(SEED, "etcd-members.txt"),
  ]);
  assert.equal(await rejoin(args(tempOut()), w.deps), 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reboot /), [T(N12, "reboot", "--wait=false")]);
  assert.match(w.stderr(), /192\.168\.53\.12: rebooting: still Preparing after 30s\n/);
  assert.match(
    w.stderr(),
    /ok: 192\.168\.53\.12: rebooted: still Preparing after 30s; a voter at /,
  );
  assert.equal(w.slept(), 30_000 + 2 * 1_000, "the grace, then a look a second after each change");
});

Deno.test("rejoin: a node waits its turn while another is a learner, then joins: no reboot though the wait outlasts the grace", async () => {
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
    // .12 took the learner slot first; .10 waits for 60 s (twice the grace), then joins
    ...repeat(rec.service(N10, "service-etcd.preparing.txt"), 12),
    ...repeat(members([SEED, N12], N12), 12),
    rec.service(N10, "service-etcd.running-learner.txt"),
    rec.service(N10, "service-etcd.running-ok.joined.txt"),
    rec.members(SEED, "etcd-members.txt"),
    rec.service(N12, "service-etcd.running-ok.joined.txt"),
    rec.members(SEED, "etcd-members.txt"),
  ]);
  assert.equal(await rejoin(args(tempOut()), w.deps), 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reboot /), []);
  assert.match(w.stderr(), /waits its turn: talos-cp-3 is a learner, catching up/);
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: rejoined by itself/);
});

Deno.test("rejoin --join-grace 10s reboots a node not joining after 10 s", async () => {
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
    // looked at after 0, 1, 3, 6 and 10 s
    ...repeat(rec.service(N10, "service-etcd.preparing.txt"), 5),
    ...repeat(rec.members(SEED, "etcd-members.seed-only.txt"), 5),
    rec.reboot(N10),
    rec.refused(N10),
    rec.service(N10, "service-etcd.running-ok.joined.txt"),
    members([SEED, N10]),
    rec.service(N12, "service-etcd.running-ok.joined.txt"),
    rec.members(SEED, "etcd-members.txt"),
  ]);
  assert.equal(await rejoin(args(tempOut(), "--join-grace", "10s"), w.deps), 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reboot /), [T(N10, "reboot", "--wait=false")]);
  assert.match(w.stderr(), /192\.168\.53\.10: rebooting: still Preparing after 10s/);
});

Deno.test("rejoin --rolling-reboot reboots every other node, one at a time, even one that would rejoin by itself", async () => {
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.seed-only.txt"),
    ...[N10, N12].flatMap((n) => [
      rec.reboot(n),
      rec.refused(n),
      rec.service(n, "service-etcd.running-ok.joined.txt"),
      n === N10 ? members([SEED, N10]) : rec.members(SEED, "etcd-members.txt"),
    ]),
  ]);
  assert.equal(await rejoin(args(tempOut(), "--rolling-reboot"), w.deps), 0, w.stderr());
  w.replay.assertDone();
  const calls = w.replay.calls;
  assert.deepEqual(w.replay.callsMatching(/ reboot /), [
    T(N10, "reboot", "--wait=false"),
    T(N12, "reboot", "--wait=false"),
  ]);
  assert.ok(
    calls.indexOf(T(N12, "reboot", "--wait=false")) > calls.lastIndexOf(T(N10, "service", "etcd")),
    ".12 is rebooted only after .10 is a voter",
  );
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: rebooted: rolling reboot \(--rolling-reboot\)/);
});

Deno.test("rejoin: nodes already voters are 'already a voter': nothing sent, not even a prompt", async () => {
  // No --yes and no terminal: with nothing to reboot there is no plan to print instead.
  const w = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.members(SEED, "etcd-members.txt"),
    rec.service(N10, "service-etcd.running-ok.joined.txt"),
    rec.members(SEED, "etcd-members.txt"),
    rec.service(N12, "service-etcd.running-ok.joined.txt"),
    rec.members(SEED, "etcd-members.txt"),
  ]);
  const out = tempOut();
  const code = await rejoin(
    [...NODES_FLAG, "--seed", SEED, "--out", out, "--rolling-reboot"],
    w.deps,
  );
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(/ reboot /), []);
  assert.equal(w.stdout(), "", "no plan");
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: already a voter\n/);
  assert.match(w.stderr(), /ok: 192\.168\.53\.12: already a voter\n/);
});

// ---- flags and plan -------------------------------------------------------------------------

Deno.test("--join-grace takes --timeout's durations; a bad value is a usage error naming it (exit 2)", async () => {
  assert.equal(parseOptions([...NODES_FLAG], {}).joinGraceMs, 30_000);
  assert.equal(parseOptions([...NODES_FLAG, "--join-grace", "1m30s"], {}).joinGraceMs, 90_000);
  assert.equal(parseOptions([...NODES_FLAG, "--rolling-reboot"], {}).rollingReboot, true);
  for (const bad of ["30", "soon", "-5s", "0s"]) {
    const w = fakeWorld([]);
    const code = await rejoin([...args(tempOut()), `--join-grace=${bad}`], w.deps);
    assert.equal(code, 2, w.stderr());
    assert.ok(w.stderr().includes(`Invalid --join-grace value "${bad}"`), w.stderr());
    assert.deepEqual(w.replay.calls, []);
  }
  const help = fakeWorld([]);
  assert.equal(await rejoin(["--help"], help.deps), 0);
  assert.match(help.stdout(), /--join-grace 30s +rejoin: reboot a node/);
  assert.match(help.stdout(), /--rolling-reboot +rejoin: reboot every other node/);
});

Deno.test("rejoin --dry-run: waits the grace for each node to begin joining and reboots it only if not", async () => {
  const w = fakeWorld([]);
  const code = await rejoin(
    [...NODES_FLAG, "--seed", SEED, "--out", tempOut(), "--dry-run", "--join-grace", "45s"],
    w.deps,
  );
  assert.equal(code, 0, w.stderr());
  const plan = w.stdout();
  const reboot10 = plan.indexOf(`  ${P(N10, "reboot", "--wait=false")}\n`);
  assert.ok(reboot10 > 0, plan);
  const before = plan.slice(0, reboot10);
  assert.match(
    before,
    /\nif ! \(wait_for '192\.168\.53\.10 to begin joining' 45 joining 192\.168\.53\.10 192\.168\.53\.11\); then\n$/,
  );
  assert.match(before, /\njoining\(\) \{/, "the helper is defined at the top");
  assert.match(
    plan,
    /# Step 7: the other nodes rejoin by themselves, one learner at a time; one not joining within 45s is rebooted/,
  );
  assert.ok(!plan.includes(P(SEED, "reboot")), "never the seed");
  const rolling = fakeWorld([]);
  await rejoin(
    [...NODES_FLAG, "--seed", SEED, "--out", tempOut(), "--dry-run", "--rolling-reboot"],
    rolling.deps,
  );
  assert.match(rolling.stdout(), new RegExp(`\n${P(N10, "reboot", "--wait=false")}\nsleep 30\n`));
  assert.doesNotMatch(rolling.stdout(), /begin joining/);
});
