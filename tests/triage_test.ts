/**
 * Which way back (lib/recovery/triage.ts), decided from the triage reference samples parsed as the
 * tool parses them: every verdict, the refusal to replace without a healthy majority, and what
 * to run next.
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import {
  type Alarm,
  type EtcdStatusRow,
  parseAlarms,
  parseEtcdStatus,
  parseMembers,
  parseServiceInfo,
  type ServiceInfo,
} from "../lib/talos/parse.ts";
import {
  alarmsOfStatus,
  bytesOf,
  type CopiesEvidence,
  crashLoopReason,
  decide,
  nextSteps,
  type NodeEvidence,
  quorumOf,
} from "../lib/recovery/triage.ts";
import { fx } from "./replay.ts";

const triage = (name: string) =>
  readFileSync(new URL(`../fixtures/talosctl-triage/${name}`, import.meta.url), "utf8");

const [N10, N11, N12] = ["192.168.53.10", "192.168.53.11", "192.168.53.12"];
const NODES = [N10, N11, N12];
/** The triage reference's member IDs. */
const ID = { [N10]: "1f0e8d7c6b5a4932", [N11]: "5a6b7c8d9e0f1a2b", [N12]: "d2c3b4a596877869" };
const MEMBERS = parseMembers(triage("etcd-members.before-remove.txt"));
const UP = { version: { tag: "v1.13.9" } };
const DOWN: NodeEvidence = {
  version: { error: "connection refused" },
  service: { error: "unreachable" },
  status: { error: "connection refused" },
};

const service = (text: string, node: string): ServiceInfo =>
  parseServiceInfo(text.replaceAll(/192\.168\.53\.1\d/g, node))[0];
const running = (node: string) => service(fx("service-etcd.running-ok.txt"), node);

/** A healthy row of `etcd status` for `node`, with `errors` and sizes. */
function row(node: string, extra: Partial<EtcdStatusRow> = {}): EtcdStatusRow {
  const base = parseEtcdStatus(triage("etcd-status.one-node-down.txt"))[0];
  return { ...base, node, member: ID[node], ...extra };
}

function evidence(parts: Record<string, NodeEvidence>): Map<string, NodeEvidence> {
  return new Map(NODES.map((n) => [n, parts[n] ?? { ...UP, service: running(n), status: row(n) }]));
}

const agree: CopiesEvidence = {
  compared: NODES,
  majority: NODES,
  outside: [],
  majorityPick: N11,
};
const NO_ALARM: Alarm[] = [];
const talos = (node: string, args: string[]) => `talosctl -e ${node} -n ${node} ${args.join(" ")}`;
const steps = (d: ReturnType<typeof decide>, status?: Map<string, EtcdStatusRow>) =>
  nextSteps(d, { nodes: NODES, talos, recover: "deno task recover --nodes A,B,C", status });

Deno.test("quorumOf() is a majority of the members", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 7].map(quorumOf), [1, 2, 2, 3, 3, 4]);
});

Deno.test("crashLoopReason() names the reason of each crash-loop sample, and none for a running etcd", () => {
  assert.match(
    crashLoopReason(service(triage("service-etcd.crashloop-corrupt-check.txt"), N12))!,
    /found data inconsistency with peers/,
  );
  assert.match(
    crashLoopReason(service(triage("service-etcd.crashloop-wal-crc.txt"), N12))!,
    /keeps failing and restarting/,
  );
  assert.match(
    crashLoopReason(service(triage("service-etcd.crashloop-removed-member.txt"), N12))!,
    /member was removed/,
  );
  assert.equal(crashLoopReason(running(N10)), undefined);
});

Deno.test("alarmsOfStatus() turns the decimal member ID of ERRORS into hex; member 0 is omitted", () => {
  const nospace = parseEtcdStatus(triage("etcd-status.nospace.txt"))[0];
  assert.deepEqual(alarmsOfStatus(nospace), [{ type: "NOSPACE", memberId: ID[N11] }]);
  const corrupt = parseEtcdStatus(triage("etcd-status.corrupt-member0.txt"))[0];
  assert.deepEqual(alarmsOfStatus(corrupt), [{ type: "CORRUPT", memberId: "0".repeat(16) }]);
});

Deno.test("healthy: every member a running voter following one leader, no alarm", () => {
  const d = decide({ nodes: NODES, evidence: evidence({}), members: MEMBERS, alarms: NO_ALARM });
  assert.equal(d.verdict, "healthy");
  assert.equal(d.leader, ID[N11]);
  assert.deepEqual(d.replace, []);
  assert.deepEqual(steps(d), ["# nothing to do: etcd is healthy"]);
});

Deno.test("an alarm list that could not be read is no proof of health: unknown", () => {
  const d = decide({ nodes: NODES, evidence: evidence({}), members: MEMBERS });
  assert.equal(d.verdict, "unknown");
  assert.match(d.reasons.join("\n"), /alarm list could not be read/);
});

Deno.test("no leader anywhere (two members down): rebuild, from the majority's pick when copies agree", () => {
  const noLeader = parseEtcdStatus(triage("etcd-status.no-leader.txt"))[0];
  const input = {
    nodes: NODES,
    evidence: evidence({
      [N10]: DOWN,
      [N12]: DOWN,
      [N11]: { ...UP, service: running(N11), status: noLeader },
    }),
  };
  const without = decide(input);
  assert.equal(without.verdict, "rebuild");
  assert.equal(without.seed, null, "no copies: no seed named");
  assert.match(
    without.reasons.join("\n"),
    /leader 0000000000000000 on 192\.168\.53\.11\): quorum is lost/,
  );
  const withCopies = decide({ ...input, copies: agree });
  assert.equal(withCopies.verdict, "rebuild");
  assert.equal(withCopies.seed, N11);
  assert.deepEqual(
    steps(withCopies).at(-1),
    "deno task recover --nodes A,B,C --seed 192.168.53.11",
  );
});

Deno.test("no node answers at all: unknown, not a rebuild", () => {
  const d = decide({ nodes: NODES, evidence: new Map(NODES.map((n) => [n, DOWN])) });
  assert.equal(d.verdict, "unknown");
  assert.ok(d.findings.every((f) => f.role === "down"));
});

Deno.test("replace: one member crash-loops (found data inconsistency) while two hold quorum", () => {
  const d = decide({
    nodes: NODES,
    evidence: evidence({
      [N12]: {
        ...UP,
        service: service(triage("service-etcd.crashloop-corrupt-check.txt"), N12),
        status: { error: "connection refused" },
      },
    }),
    members: MEMBERS,
    alarms: NO_ALARM,
  });
  assert.equal(d.verdict, "replace");
  assert.deepEqual(d.replace, [N12]);
  assert.equal(d.findings.find((f) => f.node === N12)?.memberId, ID[N12], "id from etcd members");
  const next = steps(d);
  const remove = next.indexOf(talos(N11, ["etcd", "remove-member", ID[N12]]));
  const reset = next.findIndex((l) => l.startsWith(`talosctl -e ${N12} -n ${N12} reset`));
  assert.ok(
    remove >= 0 && reset > remove,
    `remove-member on the leader, then reset:\n${next.join("\n")}`,
  );
  assert.ok(
    next[reset].includes(
      "--system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false",
    ),
  );
  assert.ok(
    !next.some((l) => l.startsWith("talosctl") && / reset /.test(l) && !l.includes(N12)),
    "no healthy node is reset",
  );
});

Deno.test("replace: a copy outside the majority is the bad member, even while its etcd runs", () => {
  const d = decide({
    nodes: NODES,
    evidence: evidence({}),
    members: MEMBERS,
    alarms: parseAlarms(fx("etcd-alarm-list.corrupt-member0.txt")),
    copies: { compared: NODES, majority: [N10, N11], outside: [N12], majorityPick: N11 },
  });
  assert.equal(d.verdict, "replace");
  assert.deepEqual(d.replace, [N12]);
  assert.match(d.reasons.join("\n"), /192\.168\.53\.12 is bad: its copy's history differs/);
  assert.ok(
    steps(d).includes(talos(N11, ["etcd", "alarm", "disarm"])),
    "the alarm is disarmed after",
  );
});

Deno.test("two bad members of three: no healthy majority is left, so rebuild, not replace", () => {
  const loop = service(triage("service-etcd.crashloop-corrupt-check.txt"), N12);
  const d = decide({
    nodes: NODES,
    evidence: evidence({
      [N10]: { ...UP, service: { ...loop }, status: { error: "connection refused" } },
      [N12]: { ...UP, service: loop, status: { error: "connection refused" } },
    }),
    members: MEMBERS,
    alarms: NO_ALARM,
  });
  assert.equal(d.verdict, "rebuild");
  assert.match(d.reasons.join("\n"), /would leave 1 healthy member\(s\), fewer than a quorum of 2/);
});

Deno.test("alarm-only: CORRUPT on member 0, every copy agrees, no member bad; without copies: unknown", () => {
  const corrupt = parseAlarms(fx("etcd-alarm-list.corrupt-member0.txt"));
  const base = { nodes: NODES, evidence: evidence({}), members: MEMBERS, alarms: corrupt };
  const d = decide({ ...base, copies: agree });
  assert.equal(d.verdict, "alarm-only");
  const next = steps(d);
  assert.ok(next.includes(talos(N11, ["etcd", "alarm", "disarm"])), next.join("\n"));
  assert.match(next.join("\n"), /if CORRUPT comes back/);
  const blind = decide(base);
  assert.equal(blind.verdict, "unknown");
  assert.match(blind.reasons.join("\n"), /no copies were read/);
});

Deno.test("nospace: defrag every member one at a time, the leader last, then disarm; a full quota is named", () => {
  const rows = parseEtcdStatus(triage("etcd-status.nospace.txt"));
  const status = new Map(rows.map((r) => [r.node, r]));
  const d = decide({
    nodes: NODES,
    evidence: evidence(
      Object.fromEntries(rows.map((r) => [r.node, { ...UP, service: running(r.node), status: r }])),
    ),
    members: MEMBERS,
    alarms: parseAlarms(triage("etcd-alarm-list.nospace.txt")),
  });
  assert.equal(d.verdict, "nospace");
  const next = steps(d, status);
  const defrags = next.filter((l) => l.endsWith(" etcd defrag"));
  assert.deepEqual(defrags, [N10, N12, N11].map((n) => talos(n, ["etcd", "defrag"])));
  assert.ok(next.indexOf(talos(N11, ["etcd", "alarm", "disarm"])) > next.indexOf(defrags[2]));
  assert.doesNotMatch(next.join("\n"), /quota-backend-bytes/, "603 MB in use: defrag frees it");
  const full = new Map([...status].map(([n, r]) => [n, { ...r, inUse: "1.9 GB (90.00%)" }]));
  assert.match(steps(d, full).join("\n"), /near the 2 GiB default quota.*\n.*quota-backend-bytes/);
});

Deno.test("a learner on its way is not a verdict yet: unknown, naming it", () => {
  const d = decide({
    nodes: NODES,
    evidence: evidence({
      [N12]: { ...UP, service: running(N12), status: row(N12, { learner: true }) },
    }),
    members: MEMBERS,
    alarms: NO_ALARM,
  });
  assert.equal(d.verdict, "unknown");
  assert.match(d.reasons.join("\n"), /192\.168\.53\.12 learner/);
});

Deno.test("bytesOf() reads go-humanize sizes", () => {
  assert.equal(bytesOf("2.1 GB"), 2.1e9);
  assert.equal(bytesOf("603 MB (28.10%)"), 603e6);
  assert.equal(bytesOf("-"), undefined);
});

Deno.test("a crash loop beside a CORRUPT alarm on member 0 and no copies: unknown, not a replace of the wrong member", () => {
  const input = {
    nodes: NODES,
    evidence: evidence({
      [N12]: {
        ...UP,
        service: service(triage("service-etcd.crashloop-wal-crc.txt"), N12),
        status: { error: "connection refused" },
      },
    }),
    members: MEMBERS,
    alarms: parseAlarms(fx("etcd-alarm-list.corrupt-member0.txt")),
  };
  const blind = decide(input);
  assert.equal(blind.verdict, "unknown");
  assert.match(blind.reasons.join("\n"), /only be told from their copies/);
  // the copies vouch for the running members: replace the bad one
  const seen = decide({ ...input, copies: { ...agree, majority: [N10, N11], outside: [] } });
  assert.equal(seen.verdict, "replace");
  assert.deepEqual(seen.replace, [N12]);
});
