import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { main as recover } from "../tasks/recover.ts";
import { fakeWorld } from "./replay.ts";
import {
  bootstrapRecs,
  brokenClusterRecs,
  disarmRecs,
  extractRecs,
  NODES_FLAG,
  preflightRecs,
  rec,
  rejoinRecs,
  SEED,
  statusRecs,
  tempOut,
  verifyRecs,
  VIP,
  waitRecs,
  wipeRecs,
} from "./scenario.ts";

const ARGS = (out: string) => [...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"];

Deno.test("Ctrl-C during recover ends the wait, exits 130, and says how to continue", async () => {
  const out = tempOut();
  const boot = bootstrapRecs(out);
  const w = fakeWorld([
    ...preflightRecs(),
    ...extractRecs(out),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    ...wipeRecs(),
    ...waitRecs(),
    ...boot.slice(0, 2),
  ]);
  // the operator presses Ctrl-C while bootstrap is refused ("not available yet")
  const refused = boot[1];
  refused.effect = () => w.interrupt();
  const code = await recover(ARGS(out), w.deps);
  assert.equal(code, 130, w.stderr());
  w.replay.assertDone();
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
  const boot = bootstrapRecs(out);
  // first run: interrupted while bootstrap is not available yet
  const firstWorld = fakeWorld([
    ...preflightRecs(),
    ...extractRecs(out),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    ...wipeRecs(),
    ...waitRecs(),
    boot[0],
    boot[1],
  ]);
  boot[1].effect = () => firstWorld.interrupt();
  assert.equal(await recover(ARGS(out), firstWorld.deps), 130);

  const second = fakeWorld([
    rec.service(SEED, "service-etcd.preparing.txt"), // resume looks at the seed
    ...waitRecs(),
    ...bootstrapRecs(out),
    ...disarmRecs(),
    ...rejoinRecs(),
    ...verifyRecs(),
  ]);
  const code = await recover(ARGS(out), second.deps);
  assert.equal(code, 0, second.stderr());
  second.replay.assertDone();
  assert.match(second.stderr(), /Resuming from .*journal\.jsonl: wipe done/);
  assert.match(second.stderr(), /live: etcd on 192\.168\.53\.11 is Preparing/);
  assert.deepEqual(second.replay.callsMatching(/ reset | cp /), []);
});

Deno.test("re-running a finished recover reboots nothing and only verifies", async () => {
  const out = tempOut();
  const w = fakeWorld([
    ...preflightRecs(),
    ...extractRecs(out),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    ...wipeRecs(),
    ...waitRecs(),
    ...bootstrapRecs(out),
    ...disarmRecs(),
    ...rejoinRecs(),
    ...verifyRecs(),
  ]);
  assert.equal(await recover(ARGS(out), w.deps), 0, w.stderr());

  const again = fakeWorld([
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
    ...verifyRecs(),
  ]);
  const code = await recover(ARGS(out), again.deps);
  assert.equal(code, 0, again.stderr());
  again.replay.assertDone();
  assert.match(again.stderr(), /rejoined in an earlier run/);
  assert.deepEqual(again.replay.callsMatching(/ reset | reboot | bootstrap | disarm/), []);
});

Deno.test("resume refuses when the live state contradicts the journal", async () => {
  const out = tempOut();
  const boot = bootstrapRecs(out);
  const first = fakeWorld([
    ...preflightRecs(),
    ...extractRecs(out),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    ...wipeRecs(),
    ...waitRecs(),
    boot[0],
    boot[1],
  ]);
  boot[1].effect = () => first.interrupt();
  assert.equal(await recover(ARGS(out), first.deps), 130);

  const w = fakeWorld([rec.service(SEED, "service-etcd.running-ok.txt")]);
  const code = await recover(ARGS(out), w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(w.stderr(), /not yet bootstrapped, but its etcd is Running/);
  assert.match(w.stderr(), /--force/);
});
