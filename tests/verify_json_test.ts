/**
 * `verify --json` names every node: its member ID, voter or learner, its etcd service (state
 * and health) and whether it holds the VIP. Strict replay.
 */

import assert from "node:assert/strict";
import { main as verify } from "../tasks/08_verify.ts";
import { fakeWorld } from "./replay.ts";
import { NODES, NODES_FLAG, rec, SEED, tempOut, verifyRecs, VIP } from "./scenario.ts";

Deno.test("verify --json carries each node's member ID, role, etcd state and health, and the VIP", async () => {
  const w = fakeWorld([
    ...verifyRecs(),
    rec.service(NODES[0], "service-etcd.running-ok.txt"),
    rec.service(SEED, "service-etcd.running-ok.txt"),
    rec.service(NODES[2], "service-etcd.running-learner.txt"),
  ]);
  const code = await verify(
    [...NODES_FLAG, "--seed", SEED, "--vip", VIP, "--out", tempOut(), "--json"],
    w.deps,
  );
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const json = JSON.parse(w.stdout());
  assert.equal(json.ok, true);
  assert.ok(json.checks.every((c: { facts?: unknown }) => c.facts === undefined));
  assert.deepEqual(json.nodes.map((n: { node: string }) => n.node), NODES);
  const [n10, n11, n12] = json.nodes;
  assert.deepEqual(n11, {
    node: SEED,
    memberId: "3b5a4f7e0c1d9a26",
    role: "voter",
    etcd: { state: "Running", health: "OK" },
    holdsVip: true,
  });
  assert.equal(n10.memberId, "8e21c6d4b7f05a13");
  assert.equal(n10.holdsVip, false);
  assert.deepEqual(n12.etcd, { state: "Running", health: "Fail" });
});
