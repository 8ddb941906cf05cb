/**
 * whereItStands() and rejoinStep(): pure functions of what the journal records and what a
 * look at the cluster found. No talosctl, no fake `$`: looks are parsed captured outputs.
 */

import assert from "node:assert/strict";
import { type Looks, PHASES, rejoinStep, whereItStands } from "../lib/recovery/phase.ts";
import type { Progress } from "../lib/recovery/resume.ts";
import type { ServiceLook } from "../lib/talos/cluster.ts";
import { parseMembers, parseServiceInfo } from "../lib/talos/parse.ts";
import { fx } from "./replay.ts";
import { fxFor, NODES, SEED } from "./scenario.ts";

const [N10, , N12] = NODES;
const T0 = Date.parse("2026-11-24T10:00:00Z");
const at = (min: number) => new Date(T0 + min * 60_000).toISOString();

function progress(p: Partial<Progress> = {}): Progress {
  return {
    seed: SEED,
    done: new Map(),
    resetSent: new Map(),
    resetLabels: new Map(),
    rebootSent: new Map(),
    ...p,
  };
}
const up = (fixture: string, node = SEED): ServiceLook => ({
  kind: "up",
  info: parseServiceInfo(fxFor(fixture, node)).find((b) => b.id === "etcd")!,
});
const down: ServiceLook = { kind: "down", detail: "unreachable" };
const RUNNING = "service-etcd.running-ok.txt";
const looks = (l: Partial<Looks> = {}): Looks => ({ now: T0 + 30 * 60_000, ...l });
const stands = (p: Progress, l: Partial<Looks> = {}) => whereItStands(p, looks(l), NODES, true);
const done = (...steps: [string, number][]) => new Map(steps.map(([s, m]) => [s, at(m)]));
const restored = () => done(["wipe", 2], ["bootstrap", 4]);

Deno.test("whereItStands(): nothing recorded is not started, or copies taken once OUT holds copies", () => {
  assert.equal(
    whereItStands(progress({ seed: undefined }), looks(), NODES, false).phase,
    "not started",
  );
  const s = stands(progress());
  assert.equal(s.phase, "copies taken");
  assert.equal(s.next, "start");
});

Deno.test("whereItStands(): resets accepted, wipe not finished: finish the wipe", () => {
  const s = stands(progress({ resetSent: new Map([[N10, at(1)]]) }));
  assert.deepEqual([s.phase, s.next], ["reset sent", "finish wipe"]);
  assert.match(s.journal, /reset sent to 192\.168\.53\.10, wipe not finished/);
});

Deno.test("whereItStands(): wiped goes on with the bootstrap; the seed's etcd Running then is a contradiction", () => {
  const p = progress({ done: done(["wipe", 2]) });
  const s = stands(p, { seed: up("service-etcd.preparing.txt") });
  assert.deepEqual([s.phase, s.next, s.contradiction], ["wiped", "bootstrap", undefined]);
  const r = stands(p, { seed: up(RUNNING) });
  assert.equal(r.next, "refuse");
  assert.match(r.contradiction!.journal, /every node was wiped .* not yet bootstrapped/);
  assert.match(r.contradiction!.live, /^its etcd is Running/);
});

Deno.test("whereItStands(): a bootstrap accepted is never sent again: Running is restored, else its restore is awaited", () => {
  const p = progress({ done: done(["wipe", 2]), bootstrapAccepted: at(3) });
  const running = stands(p, { seed: up(RUNNING) });
  assert.deepEqual([running.phase, running.next], ["restored", "await restore"]);
  for (const seed of [down, up("service-etcd.preparing.txt"), undefined]) {
    const s = stands(p, { seed });
    assert.deepEqual([s.phase, s.next], ["bootstrap accepted", "await restore"]);
  }
  const failed = stands(p, { seed: up("service-etcd.failed-missing-hash.txt") });
  assert.equal(failed.next, "refuse");
  assert.match(failed.contradiction!.journal, /bootstrap of 192\.168\.53\.11 was accepted/);
  assert.match(failed.contradiction!.live, /Failed .*: the restore failed: /);
});

Deno.test("whereItStands(): an accepted bootstrap outranks a wipe the journal shows unfinished on another node", () => {
  const p = progress({ resetSent: new Map([[N12, at(5)]]), bootstrapAccepted: at(3) });
  assert.equal(stands(p, { seed: up(RUNNING) }).next, "await restore");
});

Deno.test("whereItStands(): restored, disarmed, rejoined, verified; a restore whose etcd stopped is refused", () => {
  const p = progress({ done: restored() });
  assert.deepEqual(
    [stands(p, { seed: up(RUNNING) }).phase, stands(p).next],
    ["restored", "disarm"],
  );
  const gone = stands(p, { seed: down });
  assert.equal(gone.next, "refuse");
  assert.match(gone.contradiction!.journal, /192\.168\.53\.11 was bootstrapped/);
  assert.match(gone.contradiction!.live, /its etcd is down/);

  assert.equal(stands({ ...p, disarmAccepted: at(5) }).phase, "disarmed", "accepted, then Ctrl-C");
  p.done.set("disarm", at(5));
  assert.equal(stands(p).phase, "disarmed");
  p.done.set(`rejoin:${N10}`, at(6));
  assert.equal(stands(p).phase, "disarmed", "one node left");
  p.done.set(`rejoin:${N12}`, at(7));
  assert.equal(stands(p).phase, "rejoined");
  p.done.set("verify", at(8));
  const v = stands(p);
  assert.deepEqual([v.phase, v.next], ["verified", "after"], "the after part is next");
  assert.match(v.journal, /verified \(.*\), the after part not finished/);
  p.done.set("after:snapshot", at(9));
  assert.equal(stands(p).next, "after", "a backup alone is not the whole after part");
  p.done.set("after", at(10));
  const f = stands(p);
  assert.deepEqual([f.phase, f.next], ["finished", "disarm"], "a finished one is checked again");
  assert.deepEqual(PHASES.indexOf(f.phase), PHASES.length - 1);
});

Deno.test("whereItStands(): the after part is next only once every node is recorded rejoined and verify passed", () => {
  const p = progress({ done: done(["wipe", 2], ["bootstrap", 4], ["disarm", 5], ["verify", 8]) });
  p.done.set(`rejoin:${N10}`, at(6)); // .12 not recorded as rejoined
  assert.deepEqual([stands(p).phase, stands(p).next], ["disarmed", "disarm"]);
  p.done.set(`rejoin:${N12}`, at(7));
  p.done.set("after", at(9));
  p.done.delete("verify"); // an after part without a verify recorded: rejoined, checked again
  assert.deepEqual([stands(p).phase, stands(p).next], ["rejoined", "disarm"]);
});

Deno.test("rejoinStep(): recorded rejoined, or never rebooted", () => {
  const p = progress({ done: done(["bootstrap", 4], [`rejoin:${N10}`, 6]) });
  assert.equal(rejoinStep(p, N10, looks()).do, "done");
  assert.deepEqual(rejoinStep(p, N12, looks()), { do: "reboot", why: "not rebooted yet" });
});

Deno.test("rejoinStep(): a reboot accepted and the node back since as a healthy voter is rejoined", () => {
  // the joined fixture's oldest event is 6m25s old: 30 minutes after 10:00, it started since
  const p = progress({ done: restored(), rebootSent: new Map([[N10, at(20)]]) });
  const nodes = new Map([[N10, up("service-etcd.running-ok.joined.txt", N10)]]);
  const members = parseMembers(fx("etcd-members.txt"));
  const s = rejoinStep(p, N10, looks({ nodes, members }));
  assert.equal(s.do, "done");
  assert.match(s.why, /back since as a healthy voter/);
  // and whereItStands counts it
  assert.equal(stands(p, { nodes, members }).rejoin.get(N10)!.do, "done");
});

Deno.test("rejoinStep(): a reboot accepted, the node on its way back (down, a learner, not listed) is waited for", () => {
  const p = progress({ done: restored(), rebootSent: new Map([[N10, at(20)]]) });
  const since = Date.parse(at(20));
  const learner = parseMembers(fx("etcd-members.learner.txt"));
  const cases: [ServiceLook, Partial<Looks>][] = [
    [down, {}],
    [up("service-etcd.running-learner.txt", N10), {}],
    [up("service-etcd.running-ok.joined.txt", N10), {}], // members not asked
    [up("service-etcd.running-ok.joined.txt", N10), { members: learner }],
    [up("service-etcd.running-ok.joined.txt", N10), {
      members: parseMembers(fx("etcd-members.seed-only.txt")),
    }],
  ];
  for (const [look, extra] of cases) {
    const s = rejoinStep(p, N10, looks({ nodes: new Map([[N10, look]]), ...extra }));
    assert.equal(s.do, "await", s.why);
    assert.equal(s.do === "await" && s.since, since);
  }
  assert.equal(rejoinStep(p, N10, looks()).do, "await", "not looked at: never rebooted blindly");
});

Deno.test("rejoinStep(): a reboot that did not take (etcd not restarted since) or a Failed etcd since is rebooted again", () => {
  // 10:02 + the running fixture's 3m2s-old start: it started before the reboot at 10:01
  const p = progress({ done: restored(), rebootSent: new Map([[N10, at(1)]]) });
  const s = rejoinStep(
    p,
    N10,
    { now: T0 + 2 * 60_000, nodes: new Map([[N10, up(RUNNING, N10)]]) },
  );
  assert.equal(s.do, "reboot");
  assert.match(s.why, /has not restarted since/);
  const failed = rejoinStep(
    progress({ done: restored(), rebootSent: new Map([[N10, at(20)]]) }),
    N10,
    looks({ nodes: new Map([[N10, up("service-etcd.failed-missing-hash.txt", N10)]]) }),
  );
  assert.equal(failed.do, "reboot");
});

Deno.test("whereItStands(): a bootstrap whose answer was cut off counts as accepted only once the seed's etcd runs since", () => {
  // the running fixture started 3m2s ago; the call began at 10:20 and the look is at 10:30
  const p = progress({ done: done(["wipe", 2]), bootstrapCutOff: at(20) });
  const s = stands(p, { seed: up(RUNNING) });
  assert.deepEqual([s.phase, s.next], ["restored", "await restore"]);
  assert.match(s.journal, /sent, its answer cut off/);
  // started before the call began: not its effect, a contradiction
  const early = whereItStands(p, { now: Date.parse(at(21)), seed: up(RUNNING) }, NODES, true);
  assert.equal(early.next, "refuse");
  // still Preparing: it did not take; bootstrap again
  assert.equal(stands(p, { seed: up("service-etcd.preparing.txt") }).next, "bootstrap");
});
