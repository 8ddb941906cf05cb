/**
 * The simulator's `etcd status`, now asked before every wipe: with and without a leader it
 * prints what talosctl prints (fixtures/talosctl-triage/etcd-status.no-leader.txt), and the
 * model backend names no leader once a majority of voters is down, as etcd does.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { renderStatus } from "../lib/sim/format.ts";
import { modelBackend } from "../lib/sim/backend_model.ts";
import type { LabState } from "../lib/sim/state.ts";
import { followsLeader, parseEtcdStatus } from "../lib/talos/parse.ts";

const sample = (name: string) =>
  readFileSync(new URL(`../fixtures/talosctl-triage/${name}`, import.meta.url), "utf8");

const id = (hex: string) => BigInt(`0x${hex}`).toString();

Deno.test("renderStatus() prints a member without a leader byte for byte like talosctl", () => {
  const row = {
    node: "192.168.53.11",
    memberId: id("5a6b7c8d9e0f1a2b"),
    dbSize: 48_000_000,
    dbSizeInUse: 30_758_400,
    // etcd's JSON leaves the leader out when there is none: the backend reads it as "0"
    leader: "0",
    raftIndex: 2419911,
    raftTerm: 19,
    raftAppliedIndex: 2419911,
    learner: false,
    protocol: "3.6.12",
    storage: "3.6.0",
    errors: ["etcdserver: no leader"],
  };
  assert.equal(renderStatus([row]), sample("etcd-status.no-leader.txt"));
  const leading = { ...row, leader: id("5a6b7c8d9e0f1a2b"), raftTerm: 14, errors: [] };
  const [parsed] = parseEtcdStatus(renderStatus([leading]));
  assert.equal(parsed.leader, "5a6b7c8d9e0f1a2b");
  assert.ok(followsLeader(parsed));
});

/** A model lab of three voters, `running` of them with etcd up. */
function modelLab(running: number): LabState {
  const labels = ["127.0.53.10", "127.0.53.11", "127.0.53.12"];
  return {
    dir: "/nonexistent",
    nodes: labels.map((label, i) => ({
      label,
      proc: i < running ? { pid: 1, startedAt: 0 } : undefined,
      member: { id: String(100 + i), cluster: "c", learner: false },
    })),
    clusters: {
      c: {
        members: labels.map((node, i) => ({
          id: String(100 + i),
          node,
          name: node,
          learner: false,
        })),
        alarms: [{ memberID: "101", alarm: "CORRUPT" }],
        revision: 5,
        raftIndex: 9,
        raftTerm: 3,
        leader: "100",
        fixture: "fresh.db",
      },
    },
  } as unknown as LabState;
}

Deno.test("the model names no leader once a majority of voters is down, the alarms still listed", async () => {
  const lost = modelLab(1);
  const answer = await modelBackend.status(lost, lost.nodes[0]);
  assert.ok(answer.ok);
  assert.equal(answer.value.leader, "0");
  assert.deepEqual(answer.value.errors, ["etcdserver: no leader", "memberID:101 alarm:CORRUPT "]);
  const held = modelLab(2);
  const ok = await modelBackend.status(held, held.nodes[0]);
  assert.ok(ok.ok);
  assert.equal(ok.value.leader, "100");
  assert.deepEqual(ok.value.errors, ["memberID:101 alarm:CORRUPT "]);
});
