import assert from "node:assert/strict";
import {
  followsLeader,
  holdsVip,
  isBootstrapNotReady,
  isDataDirNotEmpty,
  isLearnerRpc,
  isUnreachable,
  memberForNode,
  OutputFormatError,
  parseAddresses,
  parseAlarms,
  parseEtcdStatus,
  parseEvent,
  parseGoDuration,
  parseMembers,
  parseServiceInfo,
  parseTable,
  urlHost,
} from "../lib/talos/parse.ts";
import { tail } from "../lib/run/command.ts";
import { parseDuration } from "../lib/run/cli.ts";
import { humanizeBytes } from "../lib/run/humanize.ts";
import { UsageError } from "../lib/run/errors.ts";
import { fx } from "./replay.ts";
import { readFileSync } from "node:fs";

/** A sample of fixtures/talosctl-triage/ (copied from the triage reference). */
const triage = (name: string) =>
  readFileSync(new URL(`../fixtures/talosctl-triage/${name}`, import.meta.url), "utf8");

// ---- service blocks -------------------------------------------------------------------------

Deno.test("parseServiceInfo() reads the 9-wide block of a Preparing seed with every event and age", () => {
  const [info, ...rest] = parseServiceInfo(fx("service-etcd.preparing.txt"));
  assert.equal(rest.length, 0);
  assert.equal(info.node, "192.168.53.11");
  assert.equal(info.id, "etcd");
  assert.equal(info.state, "Preparing");
  assert.equal(info.health, "?");
  assert.equal(info.lastHealthMessage, undefined);
  assert.deepEqual(info.events.map((e) => e.state), [
    "Preparing",
    "Waiting",
    "Waiting",
    "Waiting",
    "Starting",
  ]);
  assert.equal(info.events[0].message, "Running pre state");
  assert.equal(info.events[0].ageMs, 81_000);
  assert.equal(info.events.at(-1)?.ageMs, 87_000);
});

Deno.test("parseServiceInfo() reads the 22-wide LAST HEALTH MESSAGE layout of a learner", () => {
  const [info] = parseServiceInfo(fx("service-etcd.running-learner.txt"));
  assert.equal(info.node, "192.168.53.10");
  assert.equal(info.state, "Running");
  assert.equal(info.health, "Fail");
  assert.equal(info.lastHealthMessage, "etcdserver: rpc not supported for learner");
  assert.equal(info.events.length, 8);
  assert.equal(
    info.events[0].message,
    "Health check failed: etcdserver: rpc not supported for learner",
  );
  assert.equal(info.events[0].ageMs, 12_000);
  assert.equal(info.events[3].ageMs, 4 * 60_000 + 40_000);
  // continuation lines start with 22 spaces: none of them leaks into a label
  assert.ok(info.events.every((e) => e.state !== ""), JSON.stringify(info.events));
});

Deno.test("parseServiceInfo() splits the all-nodes file into one block per node, in output order", () => {
  const blocks = parseServiceInfo(fx("service-etcd.all-nodes.txt"));
  assert.deepEqual(blocks.map((b) => [b.node, b.state, b.health]), [
    ["192.168.53.11", "Running", "OK"],
    ["192.168.53.10", "Running", "Fail"],
    ["192.168.53.12", "Preparing", "?"],
  ]);
  assert.deepEqual(blocks.map((b) => b.events.length), [6, 8, 5]);
  // LAST HEALTH MESSAGE belongs to .10 only, not to the blocks around it
  assert.equal(blocks[0].lastHealthMessage, undefined);
  assert.equal(blocks[1].lastHealthMessage, "etcdserver: rpc not supported for learner");
  assert.equal(blocks[2].lastHealthMessage, undefined);
  assert.equal(blocks[2].events[0].message, "Running pre state");
});

Deno.test("parseServiceInfo() keeps the reason of a Failed restore in the newest event", () => {
  const [info] = parseServiceInfo(fx("service-etcd.failed-missing-hash.txt"));
  assert.equal(info.state, "Failed");
  assert.equal(info.events[0].state, "Failed");
  assert.match(info.events[0].message, /snapshot missing hash but --skip-hash-check=false$/);
  assert.equal(info.events[0].ageMs, 8_000);
});

Deno.test("parseServiceInfo() reads Running/OK, the joined node and the Waiting state", () => {
  const ok = parseServiceInfo(fx("service-etcd.running-ok.txt"))[0];
  assert.deepEqual([ok.state, ok.health, ok.events.length], ["Running", "OK", 6]);
  assert.equal(ok.events[0].message, "Health check successful");
  const joined = parseServiceInfo(fx("service-etcd.running-ok.joined.txt"))[0];
  assert.deepEqual([joined.node, joined.state, joined.health], ["192.168.53.10", "Running", "OK"]);
  assert.equal(joined.events.at(-1)?.ageMs, 6 * 60_000 + 25_000);
  const waiting = parseServiceInfo(fx("service-etcd.waiting.txt"))[0];
  assert.deepEqual([waiting.state, waiting.events.length, waiting.events[1].ageMs], [
    "Waiting",
    2,
    3_000,
  ]);
});

Deno.test("parseServiceInfo() finds no block in an error text or empty output", () => {
  assert.deepEqual(parseServiceInfo(""), []);
  assert.deepEqual(parseServiceInfo(fx("service-etcd.not-registered.err.txt")), []);
  assert.deepEqual(parseServiceInfo(fx("service-etcd.connection-refused.direct.err.txt")), []);
});

// ---- events and Go durations ----------------------------------------------------------------

Deno.test("parseEvent() splits state, message and age, and keeps text it cannot read", () => {
  assert.deepEqual(parseEvent("[Running]: Health check successful (2m54s ago)"), {
    state: "Running",
    message: "Health check successful",
    ageMs: 174_000,
  });
  assert.deepEqual(parseEvent('[Waiting]: Waiting for service "cri" to be "up" (4m43s ago)'), {
    state: "Waiting",
    message: 'Waiting for service "cri" to be "up"',
    ageMs: 283_000,
  });
  const noAge = parseEvent("[Preparing]: Running pre state");
  assert.equal(noAge.state, "Preparing");
  assert.equal(noAge.message, "Running pre state");
  assert.equal(noAge.ageMs, undefined);
  assert.deepEqual(parseEvent("not an event"), { state: "", message: "not an event" });
});

Deno.test("parseGoDuration() reads Go Duration text and rejects the rest", () => {
  assert.equal(parseGoDuration("17s"), 17_000);
  assert.equal(parseGoDuration("1m21s"), 81_000);
  assert.equal(parseGoDuration("2h3m4s"), 2 * 3_600_000 + 3 * 60_000 + 4_000);
  assert.equal(parseGoDuration("1.5s"), 1_500);
  assert.equal(parseGoDuration("300ms"), 300);
  assert.equal(parseGoDuration(""), undefined);
  assert.equal(parseGoDuration("5x"), undefined);
  assert.equal(parseGoDuration("3s ago"), undefined);
});

// ---- tables by header name ------------------------------------------------------------------

Deno.test("parseTable() reads etcd status by header name, ERRORS empty after recovery", () => {
  const rows = parseTable(fx("etcd-status.txt"));
  assert.equal(rows.length, 1);
  assert.equal(rows[0].NODE, "192.168.53.11");
  assert.equal(rows[0]["DB SIZE"], "48 MB");
  assert.equal(rows[0]["IN USE"], "31 MB (64.79%)");
  assert.equal(rows[0]["RAFT APPLIED INDEX"], "6911");
  assert.equal(rows[0].LEARNER, "false");
  assert.equal(rows[0].STORAGE, "3.6.0");
  assert.equal(rows[0].ERRORS, "");
});

Deno.test("parseTable() reads the ERRORS column of a corrupt cluster on every node", () => {
  const rows = parseTable(fx("etcd-status.corrupt.txt"));
  assert.deepEqual(rows.map((r) => r.NODE), ["192.168.53.10", "192.168.53.11", "192.168.53.12"]);
  for (const r of rows) {
    assert.equal(r.ERRORS, "memberID:15187180991711508585 alarm:CORRUPT");
    assert.equal(r.LEADER, "5a6b7c8d9e0f1a2b");
    assert.equal(r["RAFT TERM"], "14");
  }
});

Deno.test("parseTable() tells the learner row of etcd status and every row of all-nodes", () => {
  const learner = parseTable(fx("etcd-status.learner.txt"));
  assert.deepEqual(learner.map((r) => [r.NODE, r.LEARNER]), [
    ["192.168.53.11", "false"],
    ["192.168.53.10", "true"],
  ]);
  const all = parseTable(fx("etcd-status.all-nodes.txt"));
  assert.deepEqual(all.map((r) => r.MEMBER), [
    "3b5a4f7e0c1d9a26",
    "8e21c6d4b7f05a13",
    "c94d0b2a6e7f1835",
  ]);
  assert.ok(all.every((r) => r.ERRORS === "" && r["RAFT INDEX"] === "6911"));
});

Deno.test("parseTable() reads service lists with multi-word LAST CHANGE and LAST EVENT cells", () => {
  const rows = parseTable(fx("service-list.preparing.txt"));
  assert.equal(rows.length, 11);
  const etcd = rows.find((r) => r.SERVICE === "etcd");
  assert.deepEqual(etcd, {
    NODE: "192.168.53.11",
    SERVICE: "etcd",
    STATE: "Preparing",
    HEALTH: "?",
    "LAST CHANGE": "1m21s ago",
    "LAST EVENT": "Running pre state",
  });
  const dashboard = rows.find((r) => r.SERVICE === "dashboard");
  assert.equal(
    dashboard?.["LAST EVENT"],
    'Process Process(["/sbin/dashboard"]) started with PID 2214',
  );
  const healthy = parseTable(fx("service-list.healthy.txt"));
  assert.equal(healthy.find((r) => r.SERVICE === "etcd")?.STATE, "Running");
});

Deno.test("parseTable() reads kubectl get nodes -o wide with cells holding spaces", () => {
  const rows = parseTable(fx("kubectl-get-nodes-wide.txt"));
  assert.deepEqual(rows.map((r) => [r.NAME, r.STATUS, r["INTERNAL-IP"]]), [
    ["talos-cp-1", "Ready", "192.168.53.10"],
    ["talos-cp-2", "Ready", "192.168.53.11"],
    ["talos-cp-3", "Ready", "192.168.53.12"],
  ]);
  assert.equal(rows[0]["OS-IMAGE"], "Talos (v1.13.9)");
  assert.equal(rows[0]["CONTAINER-RUNTIME"], "containerd://2.2.7");
});

Deno.test("parseTable() gives no rows for talosctl's empty outputs", () => {
  for (
    const name of [
      "etcd-alarm-list.empty.txt",
      "etcd-alarm-disarm.empty.txt",
      "cp.txt",
      "reset.nowait.txt",
      "reboot.nowait.txt",
    ]
  ) {
    assert.equal(fx(name), "", `${name} is the empty capture`);
    assert.deepEqual(parseTable(fx(name)), [], name);
  }
  assert.deepEqual(parseTable("\n\n"), []);
});

// ---- alarms ---------------------------------------------------------------------------------

Deno.test("parseAlarms() reads the CORRUPT alarm as listed on the broken cluster", () => {
  assert.deepEqual(parseAlarms(fx("etcd-alarm-list.corrupt.txt")), [
    { node: "192.168.53.10", member: "d2c3b4a596877869", alarm: "CORRUPT" },
  ]);
  assert.deepEqual(parseAlarms(fx("etcd-alarm-list.corrupt-member0.txt")), [
    { node: "192.168.53.10", member: "0000000000000000", alarm: "CORRUPT" },
  ]);
  assert.deepEqual(parseAlarms(fx("etcd-alarm-list.restored-stale.txt")), [
    { node: "192.168.53.11", member: "d2c3b4a596877869", alarm: "CORRUPT" },
  ]);
});

Deno.test("parseAlarms() reads one row per node in the all-nodes list and the disarm answer", () => {
  const all = parseAlarms(fx("etcd-alarm-list.all-nodes.corrupt.txt"));
  assert.deepEqual(all.map((a) => a.node), ["192.168.53.10", "192.168.53.11", "192.168.53.12"]);
  assert.ok(all.every((a) => a.alarm === "CORRUPT" && a.member === "d2c3b4a596877869"));
  assert.deepEqual(parseAlarms(fx("etcd-alarm-disarm.txt")), [
    { node: "192.168.53.11", member: "d2c3b4a596877869", alarm: "CORRUPT" },
  ]);
});

Deno.test("parseAlarms() reads no alarm from the empty list and the empty disarm", () => {
  assert.deepEqual(parseAlarms(fx("etcd-alarm-list.empty.txt")), []);
  assert.deepEqual(parseAlarms(fx("etcd-alarm-disarm.empty.txt")), []);
});

// ---- members --------------------------------------------------------------------------------

Deno.test("parseMembers() reads three voters with their URLs after recovery", () => {
  const members = parseMembers(fx("etcd-members.txt"));
  assert.deepEqual(members.map((m) => [m.id, m.hostname, m.learner]), [
    ["3b5a4f7e0c1d9a26", "talos-cp-2", false],
    ["8e21c6d4b7f05a13", "talos-cp-1", false],
    ["c94d0b2a6e7f1835", "talos-cp-3", false],
  ]);
  assert.deepEqual(members[1].peerUrls, ["https://192.168.53.10:2380"]);
  assert.deepEqual(members[1].clientUrls, ["https://192.168.53.10:2379"]);
});

Deno.test("parseMembers() marks the learner, and memberForNode() finds each node by URL", () => {
  const members = parseMembers(fx("etcd-members.learner.txt"));
  assert.equal(members.length, 2);
  assert.equal(memberForNode(members, "192.168.53.10")?.learner, true);
  assert.equal(memberForNode(members, "192.168.53.11")?.learner, false);
  assert.equal(memberForNode(members, "192.168.53.12"), undefined);
  const seedOnly = parseMembers(fx("etcd-members.seed-only.txt"));
  assert.deepEqual(seedOnly.map((m) => m.hostname), ["talos-cp-2"]);
  assert.equal(memberForNode(seedOnly, "192.168.53.10"), undefined);
});

Deno.test("memberForNode() matches IPv6 hosts and urlHost() strips brackets and ports", () => {
  assert.equal(urlHost("https://[fd00::1]:2380"), "fd00::1");
  assert.equal(urlHost("https://192.168.53.10:2379"), "192.168.53.10");
  assert.equal(urlHost("not a url"), "");
  const members = [{
    id: "1",
    hostname: "v6",
    peerUrls: ["https://[fd00::1]:2380"],
    clientUrls: [],
    learner: false,
  }];
  assert.equal(memberForNode(members, "fd00::1")?.hostname, "v6");
  assert.equal(memberForNode(members, "fd00::10"), undefined);
});

// ---- addresses and the VIP ------------------------------------------------------------------

Deno.test("parseAddresses() reads the ADDRESS column and holdsVip() sees the VIP/32 holder", () => {
  const holder = parseAddresses(fx("get-addresses.vip-holder.txt"));
  assert.equal(holder.length, 7);
  assert.ok(holder.includes("192.168.53.2/32"));
  assert.ok(holder.includes("fe80::be24:11ff:fe3a:5b0b/64"));
  assert.equal(holdsVip(holder, "192.168.53.2"), true);
  const other = parseAddresses(fx("get-addresses.no-vip.txt"));
  assert.equal(other.length, 6);
  assert.equal(holdsVip(other, "192.168.53.2"), false);
});

Deno.test("holdsVip() wants the VIP as a host address, not a prefix or a node address", () => {
  const holder = parseAddresses(fx("get-addresses.vip-holder.txt"));
  assert.equal(holdsVip(holder, "192.168.53.11"), false, "the node address is /24, not the VIP");
  assert.equal(holdsVip(holder, "192.168.53.20"), false);
  assert.equal(holdsVip(["fd00::2/128"], "fd00::2"), true);
  assert.equal(holdsVip(["fd00::2/64"], "fd00::2"), false);
  assert.equal(holdsVip([], "192.168.53.2"), false);
});

// ---- error classifiers ----------------------------------------------------------------------

const ERR_FILES = [
  "bootstrap.already-bootstrapped.err.txt",
  "bootstrap.not-available.err.txt",
  "bootstrap.recover-not-ready.err.txt",
  "bootstrap.time-not-synced.err.txt",
  "cp.file-exists.err.txt",
  "cp.not-a-directory.err.txt",
  "etcd-members.learner-node.err.txt",
  "service-etcd.connection-refused.direct.err.txt",
  "service-etcd.connection-refused.proxied.err.txt",
  "service-etcd.not-registered.err.txt",
];

/** Which classifier says yes to which captured error, and no other. */
const EXPECTED: Record<string, string[]> = {
  "bootstrap.already-bootstrapped.err.txt": ["dataDirNotEmpty"],
  "bootstrap.not-available.err.txt": ["bootstrapNotReady"],
  "bootstrap.recover-not-ready.err.txt": ["bootstrapNotReady"],
  "bootstrap.time-not-synced.err.txt": ["bootstrapNotReady"],
  "cp.file-exists.err.txt": [],
  "cp.not-a-directory.err.txt": [],
  "etcd-members.learner-node.err.txt": ["learnerRpc"],
  "service-etcd.connection-refused.direct.err.txt": ["unreachable"],
  "service-etcd.connection-refused.proxied.err.txt": ["unreachable"],
  "service-etcd.not-registered.err.txt": [],
};

Deno.test("each error classifier says yes to its captured errors and no to every other", () => {
  const classifiers: Record<string, (t: string) => boolean> = {
    unreachable: isUnreachable,
    bootstrapNotReady: isBootstrapNotReady,
    dataDirNotEmpty: isDataDirNotEmpty,
    learnerRpc: isLearnerRpc,
  };
  for (const file of ERR_FILES) {
    const text = fx(file);
    const yes = Object.entries(classifiers).filter(([, f]) => f(text)).map(([n]) => n);
    assert.deepEqual(yes, EXPECTED[file], file);
  }
});

Deno.test("no classifier retries a successful output or a learner health message", () => {
  for (const name of ["bootstrap.recover.txt", "service-etcd.running-ok.txt", "etcd-status.txt"]) {
    const text = fx(name);
    assert.equal(isUnreachable(text), false, name);
    assert.equal(isBootstrapNotReady(text), false, name);
    assert.equal(isDataDirNotEmpty(text), false, name);
  }
  assert.equal(isLearnerRpc(fx("service-etcd.running-learner.txt")), true);
  assert.equal(isLearnerRpc(fx("service-etcd.running-ok.txt")), false);
});

Deno.test("tail() keeps the last non-empty lines of a multierror, dropping its trailing blanks", () => {
  const text = fx("bootstrap.already-bootstrapped.err.txt");
  assert.ok(text.endsWith("\n\n\n"), "the capture ends with three newlines");
  assert.equal(
    tail(text, 1),
    "\t* 192.168.53.11: rpc error: code = AlreadyExists desc = etcd data directory is not empty",
  );
  assert.equal(tail(text, 5).split("\n").length, 2);
  assert.match(tail(text, 2), /^error executing bootstrap: 1 error occurred:\n/);
  assert.equal(tail(""), "");
});

// ---- parseDuration (--timeout) --------------------------------------------------------------

Deno.test("parseDuration() reads ms, s, m, h and their combinations", () => {
  const cases: [string, number][] = [
    ["500ms", 500],
    ["90s", 90_000],
    ["1.5s", 1_500],
    ["10m", 600_000],
    ["1m30s", 90_000],
    ["1h", 3_600_000],
    ["1h2m3s", 3_723_000],
  ];
  for (const [raw, ms] of cases) assert.equal(parseDuration(raw), ms, raw);
});

Deno.test("parseDuration() refuses bad values with a UsageError naming the value and the flag", () => {
  for (const raw of ["", "10", "abc", "0s", "0m0s", "-5m", "10 m", "5d", "1m30", "m5"]) {
    assert.throws(
      () => parseDuration(raw),
      (e: unknown) => {
        assert.ok(e instanceof UsageError, raw);
        assert.equal(e.exitCode, 2);
        assert.ok(e.message.includes(`Invalid --timeout value "${raw}"`), e.message);
        return true;
      },
    );
  }
  assert.throws(() => parseDuration("x", "--grace"), /Invalid --grace value "x"/);
});

Deno.test({
  name: "parseDuration() refuses a value that rounds to zero milliseconds",
  fn: () => {
    assert.throws(() => parseDuration("0.4ms"), UsageError);
  },
});

// ---- humanizeBytes --------------------------------------------------------------------------

Deno.test("humanizeBytes() prints SI units like go-humanize, one decimal below 10", () => {
  const cases: [number, string][] = [
    [0, "0 B"],
    [9, "9 B"],
    [10, "10 B"],
    [999, "999 B"],
    [1000, "1.0 kB"],
    [1500, "1.5 kB"],
    [745_472, "746 kB"],
    [48_238_592, "48 MB"],
    [48_230_400, "48 MB"],
    [1_000_000_000, "1.0 GB"],
  ];
  for (const [bytes, text] of cases) assert.equal(humanizeBytes(bytes), text, String(bytes));
});

Deno.test("humanizeBytes() rounds exact ties to even like Go's %.0f (262500000 → 262 MB)", () => {
  assert.equal(humanizeBytes(262_500_000), "262 MB");
  assert.equal(humanizeBytes(263_500_000), "264 MB");
  assert.equal(humanizeBytes(12_500), "12 kB");
  assert.equal(humanizeBytes(13_500), "14 kB");
  // not a tie: rounds up as usual
  assert.equal(humanizeBytes(262_600_000), "263 MB");
});

// ---- etcd status ----------------------------------------------------------------------------

Deno.test("parseEtcdStatus() reads a member without a leader: LEADER zero and 'etcdserver: no leader'", () => {
  const [row, ...more] = parseEtcdStatus(triage("etcd-status.no-leader.txt"));
  assert.equal(more.length, 0);
  assert.deepEqual(row, {
    node: "192.168.53.11",
    member: "5a6b7c8d9e0f1a2b",
    leader: "0000000000000000",
    raftIndex: 2419911,
    raftTerm: 19,
    raftAppliedIndex: 2419911,
    learner: false,
    dbSize: "48 MB",
    inUse: "31 MB (64.08%)",
    protocol: "3.6.12",
    storage: "3.6.0",
    errors: ["etcdserver: no leader"],
  });
  assert.equal(followsLeader(row), false);
});

Deno.test("parseEtcdStatus() tells a member that follows a leader, and splits the ERRORS cell", () => {
  const corrupt = parseEtcdStatus(fx("etcd-status.corrupt.txt"));
  assert.ok(corrupt.every(followsLeader));
  assert.deepEqual(corrupt[0].errors, ["memberID:15187180991711508585 alarm:CORRUPT"]);
  const two = parseEtcdStatus(triage("etcd-status.nospace-two-alarms.txt"));
  assert.deepEqual(two[1].errors, [
    "memberID:6515438233605577259 alarm:NOSPACE",
    "memberID:2237881630366255410 alarm:NOSPACE",
  ]);
  assert.deepEqual(parseEtcdStatus(triage("etcd-status.corrupt-member0.txt"))[0].errors, [
    "alarm:CORRUPT",
  ]);
  const down = parseEtcdStatus(triage("etcd-status.one-node-down.txt"));
  assert.deepEqual(down.map((r) => [r.node, r.leader, r.errors]), [
    ["192.168.53.10", "5a6b7c8d9e0f1a2b", []],
    ["192.168.53.11", "5a6b7c8d9e0f1a2b", []],
  ]);
  const learner = parseEtcdStatus(triage("etcd-status.rejoin-learner.txt"));
  assert.deepEqual(learner.map((r) => r.learner), [false, false, true]);
  assert.ok(learner.every(followsLeader), "a learner follows the leader too");
});

Deno.test("parseEtcdStatus() refuses a table without its headers and reads nothing as no row", () => {
  assert.throws(
    () => parseEtcdStatus("NODE   ID   HOSTNAME\n10.0.0.1   aa   cp-1\n"),
    OutputFormatError,
  );
  assert.deepEqual(parseEtcdStatus(""), []);
});
