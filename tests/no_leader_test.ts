/**
 * The looks before the wipe: `etcd status` of every node at once, and no wait on a call that
 * cannot answer. Without a leader, `etcd alarm list` blocks for minutes and `etcd members`
 * fails, so neither is asked; the evidence is shown and read as "not healthy". Replayed with
 * the triage samples (fixtures/talosctl-triage/): the strict replay fails on any call not
 * recorded here.
 */

import assert from "node:assert/strict";
import { main as wipe } from "../tasks/03_wipe.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import {
  makeCopies,
  NODES,
  NODES_FLAG,
  preflightRecs,
  rec,
  SEED,
  statusRecs,
  T,
  tempOut,
} from "./scenario.ts";

const NO_LEADER = "../talosctl-triage/etcd-status.no-leader.txt";
const N10 = "192.168.53.10";

/** Every node's `etcd status` call started before the first one answered. */
function allAtOnce(recordings: Recording[], calls: () => string[]): () => void {
  let seen = -1;
  recordings[0].effect = () => seen = calls().filter((c) => c.endsWith(" etcd status")).length;
  return () => assert.equal(seen, NODES.length, "the status looks go to every node at once");
}

Deno.test("wipe on a cluster without a leader asks no alarm list or members, shows why, and goes on", async () => {
  const out = tempOut();
  makeCopies(out);
  const looks = NODES.map((n) => rec.etcdStatus(n, NO_LEADER));
  const w = fakeWorld([...preflightRecs(), ...statusRecs(out), ...looks], { answers: ["n"] });
  const checkAtOnce = allAtOnce(looks, () => w.replay.calls);
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 3, w.stderr()); // got as far as asking: not refused as healthy
  w.replay.assertDone();
  checkAtOnce();
  assert.deepEqual(w.replay.callsMatching(/ etcd (alarm list|members)$/), []);
  const err = w.stderr();
  for (const n of NODES) {
    assert.ok(
      err.includes(
        `${n}: etcd status: NO LEADER (leader 0000000000000000, raft term 19, index 2419911, ` +
          `errors: etcdserver: no leader)`,
      ),
      `the evidence of ${n} is shown`,
    );
  }
  assert.match(
    err,
    /no etcd member follows a leader \(no leader on 192\.168\.53\.11, 192\.168\.53\.10, 192\.168\.53\.12\): etcd alarm list and etcd members not asked, they cannot answer without quorum; a cluster without a leader is not healthy/,
  );
  assert.match(err, /could not list etcd members: not checked that --nodes names them all/);
  assert.doesNotMatch(err, /Refusing to wipe a healthy cluster/);
});

Deno.test("only the nodes that follow a leader are asked for alarms and members", async () => {
  const out = tempOut();
  makeCopies(out);
  const notRunning = {
    cmd: T(N10, "etcd", "status"),
    stderr: "error getting status: 1 error occurred:\n\t* 192.168.53.10: rpc error: code = " +
      "Unknown desc = failed to create etcd client: context deadline exceeded\n\n\n",
    code: 1,
  };
  const leading = NODES.filter((n) => n !== N10);
  const w = fakeWorld([
    ...preflightRecs(),
    ...statusRecs(out),
    notRunning,
    ...leading.map((n) => rec.etcdStatus(n, "etcd-status.corrupt.txt")),
    ...leading.flatMap((n) => [
      rec.alarms(n, "etcd-alarm-list.corrupt.txt"),
      rec.members(n, "etcd-members.txt"),
    ]),
  ], { answers: ["n"] });
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 3, w.stderr());
  w.replay.assertDone();
  assert.deepEqual(w.replay.callsMatching(new RegExp(`-e ${N10} .* etcd (alarm|members)`)), []);
  assert.match(
    w.stderr(),
    /192\.168\.53\.10: etcd status did not answer: \* 192\.168\.53\.10: rpc error: code = Unknown desc = failed to create etcd client/,
  );
  assert.match(
    w.stderr(),
    /192\.168\.53\.11: etcd status: leader 5a6b7c8d9e0f1a2b, raft term 14, index 2419803, errors: memberID:15187180991711508585 alarm:CORRUPT/,
  );
  assert.ok(w.stderr().indexOf(`${SEED}: etcd status`) < w.stderr().indexOf(`${N10}: etcd status`));
});
