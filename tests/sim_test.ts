/**
 * The simulated control plane (lib/sim/): its talosctl answers against the reference
 * samples (byte for byte where a value is not invented, masked where it is), and its state
 * machine (reset → refused → Waiting → Preparing, bootstrap retries, Failed without the skip
 * flag, the alarm restored with the db, VIP only after disarm, learners one at a time), on
 * the model backend with a controlled clock, and on real etcd when it is installed.
 */

import assert from "node:assert/strict";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { etcdBackend } from "../lib/sim/backend_etcd.ts";
import * as f from "../lib/sim/format.ts";
import { b64, gw } from "../lib/sim/gateway.ts";
import { breakCluster, fault, load, prove } from "../lib/sim/lab.ts";
import { dbPath, TIMELINE } from "../lib/sim/state.ts";
import { run } from "../lib/sim/talosctl.ts";
import {
  asLab,
  cells,
  etcdTests,
  leftoverProcs,
  mask,
  relayout,
  requireEtcd,
  sample,
  scratch,
  state,
  tc,
  triageSample,
  until,
  withLab,
} from "../lib/sim/testing.ts";

const N10 = "127.0.53.10";
const N11 = "127.0.53.11";
const N12 = "127.0.53.12";
const RESET = [
  "reset",
  "--system-labels-to-wipe",
  "EPHEMERAL",
  "--graceful=false",
  "--reboot",
  "--wait=false",
];
const DB = "/var/lib/etcd/member/snap/db";

/** Masked cells of two outputs are equal (values a sample invents may differ). */
function assertLike(actual: string, sampleName: string) {
  assert.deepEqual(cells(mask(actual)), cells(mask(sample(sampleName))), actual);
}

/** Real-cluster seconds → ms at the lab's speed (model tests use speed 20). */
const at = (speed: number, key: keyof typeof TIMELINE) => (TIMELINE[key] * 1000) / speed;

// ---- formats ---------------------------------------------------------------------------

Deno.test("tabwrite() lays out every reference table exactly like Go's tabwriter", () => {
  for (
    const name of [
      "service-etcd.all-nodes.txt",
      "service-etcd.running-learner.txt",
      "service-etcd.failed-missing-hash.txt",
      "service-list.healthy.txt",
      "etcd-status.corrupt.txt",
      "etcd-status.learner.txt",
      "etcd-members.learner.txt",
      "etcd-alarm-list.all-nodes.corrupt.txt",
      "get-addresses.vip-holder.txt",
      "kubectl-get-nodes-wide.txt",
    ]
  ) assert.equal(relayout(sample(name)), sample(name), name);
});

function parseAge(text: string): number {
  const m = text.match(/\((?:(\d+)h)?(?:(\d+)m)?(\d+)s ago\)$/)!;
  return ((Number(m[1] ?? 0) * 60 + Number(m[2] ?? 0)) * 60 + Number(m[3])) * 1000;
}

/** The reference `service etcd` blocks as the simulator stores them. */
function serviceViews(text: string, now: number): f.ServiceView[] {
  const views: f.ServiceView[] = [];
  for (const line of text.trimEnd().split("\n")) {
    const [label, value] = line.split(/ {3,}/);
    if (label === "NODE") {
      views.push({ node: value, state: "", health: "", healthMessage: "", events: [] });
    }
    const v = views[views.length - 1];
    if (label === "STATE") v.state = value;
    if (label === "HEALTH") v.health = value;
    if (label === "LAST HEALTH MESSAGE") v.healthMessage = value;
    if (label === "EVENTS" || label === "") {
      const m = value.match(/^\[(\w+)\]: (.*) \(\S+ ago\)$/)!;
      v.events.unshift({ at: now - parseAge(value), state: m[1], msg: m[2] });
    }
  }
  return views;
}

Deno.test("renderers print the reference samples byte for byte", () => {
  const now = 1_700_000_000_000;
  for (
    const name of [
      "service-etcd.all-nodes.txt",
      "service-etcd.running-learner.txt",
      "service-etcd.running-ok.joined.txt",
      "service-etcd.waiting.txt",
      "service-etcd.failed-missing-hash.txt",
    ]
  ) assert.equal(f.renderServices(serviceViews(sample(name), now), now), sample(name), name);
  const id = (hex: string) => BigInt(`0x${hex}`).toString();
  const row = (node: string, member: string, learner: boolean, inUse: number, size: number) => ({
    node,
    memberId: id(member),
    dbSize: size,
    dbSizeInUse: inUse,
    leader: id("3b5a4f7e0c1d9a26"),
    raftIndex: 5233,
    raftTerm: 2,
    raftAppliedIndex: 5233,
    learner,
    protocol: "3.6.12",
    storage: "3.6.0",
    errors: [],
  });
  assert.equal(
    f.renderStatus([
      row("192.168.53.11", "3b5a4f7e0c1d9a26", false, 31254528, 48238592),
      row("192.168.53.10", "8e21c6d4b7f05a13", true, 31182848, 31232000),
    ]),
    sample("etcd-status.learner.txt"),
  );
  const corrupt = { memberId: "15187180991711508585", alarm: "CORRUPT" };
  assert.equal(
    f.renderAlarms(
      [N10, N11, N12].map((n) => ({ node: n.replace("127.0", "192.168"), ...corrupt })),
    ),
    sample("etcd-alarm-list.all-nodes.corrupt.txt"),
  );
  assert.equal(f.renderAlarms([]), sample("etcd-alarm-list.empty.txt"));
  const member = (hex: string, name: string, ip: string, learner: boolean) => ({
    node: "192.168.53.11",
    id: id(hex),
    hostname: name,
    peerUrls: [`https://${ip}:2380`],
    clientUrls: [`https://${ip}:2379`],
    learner,
  });
  assert.equal(
    f.renderMembers([
      member("3b5a4f7e0c1d9a26", "talos-cp-2", "192.168.53.11", false),
      member("8e21c6d4b7f05a13", "talos-cp-1", "192.168.53.10", true),
    ]),
    sample("etcd-members.learner.txt"),
  );
  assert.equal(
    f.renderAddresses([{ node: "192.168.53.11", index: 1, vip: "192.168.53.2", link: "ens18" }]),
    sample("get-addresses.vip-holder.txt"),
  );
  assert.equal(
    f.renderAddresses([{ node: "192.168.53.10", index: 0, link: "ens18" }]),
    sample("get-addresses.no-vip.txt"),
  );
  assert.equal(
    f.renderVersionClient() + f.renderVersionServer(["192.168.53.11"]),
    sample("version.txt"),
  );
  assert.equal(
    "error getting members: " +
      f.multierror([
        f.nodeRpcError("192.168.53.10", "Unknown", "etcdserver: rpc not supported for learner"),
      ]) +
      "\n",
    sample("etcd-members.learner-node.err.txt"),
  );
  assert.equal(f.goDuration(286_400), "4m46s");
  assert.equal(f.goDuration(7_384_000), "2h3m4s");
  assert.equal(f.goDuration(400), "0s");
  assert.equal(f.goClean("./db.192.168.53.10/db"), "db.192.168.53.10/db");
  assert.equal(f.goClean("/a//b/../c/"), "/a/c");
});

// ---- the fake talosctl on the model backend (controlled clock) --------------------------

Deno.test("talosctl-sim: reset → connection refused → Waiting → Preparing, like the samples", async () => {
  await withLab({ backend: "model", speed: 20 }, async (dir) => {
    await load(dir);
    await breakCluster(dir);
    const r = await tc(dir, N11, RESET);
    assert.deepEqual(r, { stdout: "", stderr: "", code: 0 });
    const bootAt = state(dir).nodes[1].bootAt!;
    const refused = await tc(dir, N11, ["service", "etcd"], bootAt - 1);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, "");
    const lab = (name: string) => asLab(sample(name)).replaceAll(N10, N11);
    assert.equal(refused.stderr, lab("service-etcd.connection-refused.direct.err.txt"));
    const proxied = await run(["-e", N12, "-n", N11, "service", "etcd"], dir, bootAt - 1);
    assert.equal(proxied.stderr, lab("service-etcd.connection-refused.proxied.err.txt"));
    const waiting = await tc(dir, N11, ["service", "etcd"], bootAt + at(20, "volumesMountedS") / 2);
    assert.equal(waiting.code, 0);
    assertLike(waiting.stdout, "service-etcd.waiting.txt");
    const preparing = await tc(dir, N11, ["service", "etcd"], bootAt + at(20, "criUpS") + 1);
    assertLike(preparing.stdout, "service-etcd.preparing.txt");
    assert.equal(state(dir).nodes[1].phase, "preparing");
  });
});

/** Resets every node and returns when the lab's clock says the seed is Preparing. */
async function wipeAll(dir: string, t: number): Promise<number> {
  for (const n of state(dir).nodes) await tc(dir, n.label, RESET, t);
  return Math.max(...state(dir).nodes.map((n) => n.bootAt!)) + at(20, "criUpS") + 1;
}

Deno.test("talosctl-sim: bootstrap retries, restore, and the already-bootstrapped refusal", async () => {
  await withLab({ backend: "model", speed: 20 }, async (dir) => {
    await load(dir);
    await breakCluster(dir);
    const out = scratch(dir);
    assert.equal((await tc(dir, N11, ["cp", DB, join(out, "db.11")])).code, 0);
    const file = join(out, "db.11", "db");
    await tc(dir, N11, RESET, Date.now());
    const bootAt = state(dir).nodes[1].bootAt!;
    const args = ["bootstrap", `--recover-from=${file}`, "--recover-skip-hash-check"];
    const line = `recovering from snapshot "${file}": hash a5c4e758, revision 2801, ` +
      `total keys 2807, total size 348160\n`;

    const early = await tc(dir, N11, args, bootAt + 10);
    assert.equal(early.code, 1);
    assert.equal(early.stdout, line, "talosctl prints the status line before uploading");
    assert.equal(early.stderr, asLab(sample("bootstrap.recover-not-ready.err.txt")));
    const notYet = await tc(dir, N11, args, bootAt + at(20, "volumesMountedS") + 10);
    assert.equal(notYet.stderr, asLab(sample("bootstrap.not-available.err.txt")));
    const t = bootAt + at(20, "criUpS") + 10;
    const okay = await tc(dir, N11, args, t);
    assert.deepEqual(okay, { stdout: line, stderr: "", code: 0 });
    const soon = await tc(dir, N11, ["service", "etcd"], t + 1);
    assert.match(soon.stdout, /STATE {4}Preparing/, "exit 0 is not done: still Preparing");
    const running = await tc(dir, N11, ["service", "etcd"], t + 3_000);
    assertLike(running.stdout, "service-etcd.running-ok.txt");
    const again = await tc(dir, N11, args, t + 3_100);
    assert.equal(again.code, 1);
    assert.equal(again.stdout, line);
    assert.equal(again.stderr, asLab(sample("bootstrap.already-bootstrapped.err.txt")));
  });
});

Deno.test("talosctl-sim: without --recover-skip-hash-check the restore fails in the pre stage", async () => {
  await withLab({ backend: "model", speed: 20 }, async (dir) => {
    const out = scratch(dir);
    await tc(dir, N11, ["cp", DB, out]);
    const t = await wipeAll(dir, Date.now());
    const r = await tc(dir, N11, ["bootstrap", `--recover-from=${out}/db`], t);
    assert.equal(r.code, 0, "the failure only shows in the service state");
    const failed = await tc(dir, N11, ["service", "etcd"], t + 1_000);
    assertLike(failed.stdout, "service-etcd.failed-missing-hash.txt");
    const retry = await tc(dir, N11, [
      "bootstrap",
      `--recover-from=${out}/db`,
      "--recover-skip-hash-check",
    ], t + 1_100);
    assert.equal(retry.stderr, asLab(sample("bootstrap.already-bootstrapped.err.txt")));
  });
});

Deno.test("talosctl-sim: the alarm comes back, the VIP only after disarm, learners one at a time", async () => {
  await withLab({ backend: "model", speed: 20, nodes: 5 }, async (dir) => {
    const nodes = state(dir).nodes.map((n) => n.label);
    await load(dir);
    const broken = await breakCluster(dir);
    for (const n of nodes.slice(1)) {
      const list = await tc(dir, n, ["etcd", "alarm", "list"]);
      assert.match(list.stdout, new RegExp(`${n} +${f.memberHex(broken.alarmMember)} +CORRUPT`));
    }
    const vipRows = async (t: number) =>
      (await Promise.all(nodes.map((n) => tc(dir, n, ["get", "addresses"], t))))
        .flatMap((r) => r.stdout.split("\n").filter((l) => l.includes("eth0/127.0.53.2/32")));
    assert.deepEqual(await vipRows(Date.now()), [], "no VIP while writes fail");

    const out = scratch(dir);
    await tc(dir, N11, ["cp", DB, out]);
    let t = await wipeAll(dir, Date.now());
    const boot = await tc(dir, N11, [
      "bootstrap",
      `--recover-from=${out}/db`,
      "--recover-skip-hash-check",
    ], t);
    assert.equal(boot.code, 0);
    t += 1_000;
    const stale = await tc(dir, N11, ["etcd", "alarm", "list"], t);
    assertLike(stale.stdout, "etcd-alarm-list.restored-stale.txt");
    assert.match(stale.stdout, new RegExp(f.memberHex(broken.alarmMember)));
    t += 2_000;
    assertLike((await tc(dir, N11, ["etcd", "members"], t)).stdout, "etcd-members.seed-only.txt");
    assert.deepEqual(await vipRows(t), [], "no VIP while the restored alarm is armed");

    assertLike(
      (await tc(dir, N11, ["etcd", "alarm", "disarm"], t)).stdout,
      "etcd-alarm-disarm.txt",
    );
    assert.equal((await tc(dir, N11, ["etcd", "alarm", "list"], t)).stdout, "");
    assert.equal((await tc(dir, N11, ["etcd", "alarm", "disarm"], t)).stdout, "");
    assert.equal((await vipRows(t)).length, 1, "exactly one node holds the VIP after disarm");

    let sawLearner = false;
    for (let i = 0; i < 400; i++) {
      t += 25;
      const members = (await tc(dir, N11, ["etcd", "members"], t)).stdout;
      const rows = members.trim().split("\n").slice(1);
      const learners = rows.filter((r) => r.endsWith("true"));
      assert.ok(learners.length <= 1, `at most one learner at a time:\n${members}`);
      if (learners.length === 1 && !sawLearner) {
        sawLearner = true;
        const node = learners[0].match(/https:\/\/([\d.]+):2380/)![1];
        const svc = await tc(dir, node, ["service", "etcd"], t + at(20, "healthDelayS"));
        assertLike(svc.stdout, "service-etcd.running-learner.txt");
        const refused = await tc(dir, node, ["etcd", "members"], t + at(20, "healthDelayS"));
        assert.equal(
          refused.stderr,
          asLab(sample("etcd-members.learner-node.err.txt")).replaceAll(N10, node),
        );
        const st = await run(["-e", N11, "-n", `${N11},${node}`, "etcd", "status"], dir, t);
        assert.deepEqual(cells(st.stdout.trimEnd()).map((c) => [c[0], c[8]]), [
          ["NODE", "LEARNER"],
          [N11, "false"],
          [node, "true"],
        ]);
      }
      if (rows.length === 5 && learners.length === 0) break;
    }
    assert.ok(sawLearner, "a joining node is a learner first");
    const members = (await tc(dir, N11, ["etcd", "members"], t)).stdout;
    assert.equal(members.trim().split("\n").filter((l) => l.endsWith("false")).length, 5, members);
    const joined = await tc(dir, N10, ["service", "etcd"], t + 5_000);
    assertLike(joined.stdout, "service-etcd.running-ok.joined.txt");
    assert.equal((await vipRows(t + 5_000)).length, 1);
  });
});

Deno.test("talosctl-sim: cp writes DIR/db (0600), never overwrites, and can be cut short", async () => {
  await withLab({ backend: "model" }, async (dir) => {
    const cwd = scratch(dir);
    const talosctl = join(dir, "bin", "talosctl");
    const sh = async (args: string[]) => {
      const o = await new Deno.Command(talosctl, { args, cwd, env: { DENO: Deno.execPath() } })
        .output();
      const d = new TextDecoder();
      return { stdout: d.decode(o.stdout), stderr: d.decode(o.stderr), code: o.code };
    };
    const cp = (node: string, to: string) => sh(["-e", node, "-n", node, "cp", DB, to]);
    assert.deepEqual(await cp(N10, `./db.${N10}`), { stdout: "", stderr: "", code: 0 });
    const file = join(cwd, `db.${N10}`, "db");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(readFileSync(file), readFileSync(dbPath(dir, N10)));
    const again = await cp(N10, `./db.${N10}`);
    assert.deepEqual(again, {
      stdout: "",
      stderr: asLab(sample("cp.file-exists.err.txt")),
      code: 1,
    });
    writeFileSync(join(cwd, `db.${N11}`), "x");
    const notDir = await cp(N11, `./db.${N11}`);
    assert.equal(notDir.stderr, asLab(sample("cp.not-a-directory.err.txt")).replaceAll(N10, N11));

    await fault(dir, N12, "short-copy");
    const short = await cp(N12, "short");
    assert.equal(short.stderr, `error copying data to "short/db": unexpected EOF\n`);
    assert.equal(statSync(join(cwd, "short", "db")).size, statSync(dbPath(dir, N12)).size / 2);
    await fault(dir, N12, "torn-copy");
    assert.equal((await cp(N12, "torn")).code, 0, "a torn copy is not noticed by cp");
    assert.equal(statSync(join(cwd, "torn", "db")).size, statSync(dbPath(dir, N12)).size / 2);
    assert.equal((await cp(N12, "whole")).code, 0, "faults are one-shot");
    assert.equal(statSync(join(cwd, "whole", "db")).size, statSync(dbPath(dir, N12)).size);

    await fault(dir, N11, "crash-on-copy");
    const crash = await cp(N11, "crash");
    assert.equal(crash.code, 1);
    assert.equal(
      crash.stderr,
      `error initializing gzip: ${f.dialError(N11)}\n`,
      "the node went down during the copy",
    );
    assert.equal(state(dir).nodes[1].phase, "down");
  });
});

Deno.test("talosctl-sim: refuses what it does not simulate, like talosctl does", async () => {
  await withLab({ backend: "model" }, async (dir) => {
    const cases: [string[], RegExp][] = [
      [["-e", N10, "-n", N10, "health"], /^unknown command "health" for "talosctl"/],
      [["-e", N10, "-n", N10, "service", "etcd", "--wait"], /^unknown flag: --wait\n$/],
      [["-e", N10, "-n", N10, "--bogus", "version"], /^unknown flag: --bogus\n$/],
      [["-n", N10, "service", "etcd"], /^failed to determine endpoints\n$/],
      [["-e", N10, "service", "etcd"], /^nodes are not set for the command/],
      [[
        "-e",
        N10,
        "-n",
        N10,
        "reset",
        "--system-labels-to-wipe",
        "EPHEMERAL",
        "--reboot",
        "--wait=false",
      ], /--graceful=false is required/],
      [["-e", N10, "-n", N10, "reboot"], /--wait=false is required/],
      [
        ["-e", N10, "-n", `${N10},${N11}`, "bootstrap"],
        /^command "bootstrap" is not supported with multiple nodes/,
      ],
      [
        ["--talosconfig", "/nonexistent/tc", "-e", N10, "-n", N10, "version"],
        /^failed to open config file "\/nonexistent\/tc"/,
      ],
      [
        ["-e", "10.9.9.9", "-n", "10.9.9.9", "service", "etcd"],
        /dial tcp 10\.9\.9\.9:50000: connect: no route to host/,
      ],
    ];
    for (const [argv, want] of cases) {
      const r = await run(argv, dir);
      assert.equal(r.code, 1, argv.join(" "));
      assert.match(r.stderr, want, argv.join(" "));
    }
    const v = await run([
      "--talosconfig",
      join(dir, "talosconfig"),
      "-e",
      N10,
      "-n",
      N10,
      "version",
    ], dir);
    assert.equal(v.stdout, asLab(sample("version.txt")).replace("127.0.53.11", N10));
  });
});

Deno.test("talosctl-sim: concurrent calls (3 cp, then 3 reset at once) are serialized by the lock", async () => {
  await withLab({ backend: "model" }, async (dir) => {
    const out = scratch(dir);
    const nodes = [N10, N11, N12];
    const call = (args: string[]) =>
      new Deno.Command(join(dir, "bin", "talosctl"), { args, env: { DENO: Deno.execPath() } })
        .output();
    const cps = await Promise.all(
      nodes.map((n) => call(["-e", n, "-n", n, "cp", DB, join(out, n)])),
    );
    assert.deepEqual(cps.map((o) => o.code), [0, 0, 0]);
    const resets = await Promise.all(nodes.map((n) => call(["-e", n, "-n", n, ...RESET])));
    assert.deepEqual(resets.map((o) => o.code), [0, 0, 0]);
    assert.deepEqual(state(dir).nodes.map((n) => n.phase), ["down", "down", "down"]);
    const calls = readFileSync(join(dir, "calls.log"), "utf8").trim().split("\n");
    assert.equal(calls.length, 6);
  });
});

// ---- real etcd ---------------------------------------------------------------------------

Deno.test({
  name:
    "real etcd: the lab breaks like the incident, and the runbook by hand brings every key back",
  ...etcdTests(),
  fn: async () => {
    requireEtcd();
    const speed = 40;
    await withLab({ backend: "etcd", speed }, async (dir) => {
      await load(dir, 1000);
      const broken = await breakCluster(dir);
      const s = state(dir);
      const put = await gw(s.nodes[1].clientPort, "kv/put", { key: b64("x"), value: b64("y") });
      assert.ok(!put.ok && put.error === "etcdserver: corrupt cluster", JSON.stringify(put));
      for (const n of [N11, N12]) {
        const list = await tc(dir, n, ["etcd", "alarm", "list"]);
        assert.match(list.stdout, new RegExp(`${n} +${f.memberHex(broken.alarmMember)} +CORRUPT`));
        const status = await tc(dir, n, ["etcd", "status"]);
        assert.match(
          status.stdout,
          new RegExp(`memberID:${broken.alarmMember} alarm:CORRUPT $`, "m"),
        );
      }
      for (const n of [N10, N11, N12]) {
        assert.doesNotMatch((await tc(dir, n, ["get", "addresses"])).stdout, /127\.0\.53\.2\/32/);
      }
      assert.match((await tc(dir, N10, ["service", "etcd"])).stdout, /STATE +Waiting/);

      const out = scratch(dir);
      const revisions: number[] = [];
      for (const n of [N10, N11, N12]) {
        assert.equal((await tc(dir, n, ["cp", DB, join(out, n)])).code, 0);
        const st = await etcdBackend.snapshotStatus(join(out, n, "db"));
        assert.ok(!("error" in st));
        revisions.push(st.revision);
      }
      assert.ok(revisions[0] < revisions[1], `the member stopped early is behind: ${revisions}`);
      assert.equal(revisions[1], broken.revision);

      await Promise.all([N10, N11, N12].map((n) => tc(dir, n, RESET)));
      const preparing = () =>
        until("the seed to be Preparing", async () => {
          const r = await tc(dir, N11, ["service", "etcd"]);
          return /STATE +Preparing/.test(r.stdout) ? r : undefined;
        }, 20_000);
      await preparing();
      // Without the skip flag: bootstrap "succeeds", the restore fails, the seed needs a reset.
      assert.equal((await tc(dir, N11, ["bootstrap", `--recover-from=${out}/${N11}/db`])).code, 0);
      const failed = await until("the restore to fail", async () => {
        const r = await tc(dir, N11, ["service", "etcd"]);
        return /STATE +Failed/.test(r.stdout) ? r.stdout : undefined;
      });
      assert.match(failed, /snapshot missing hash but --skip-hash-check=false/);
      await tc(dir, N11, RESET);
      await preparing();
      const args = ["bootstrap", `--recover-from=${out}/${N11}/db`, "--recover-skip-hash-check"];
      const boot = await tc(dir, N11, args);
      assert.equal(boot.code, 0, boot.stderr);
      assert.match(boot.stdout, new RegExp(`revision ${broken.revision},`));
      await until("the seed to be Running and healthy", async () => {
        const r = await tc(dir, N11, ["service", "etcd"]);
        return /STATE +Running\nHEALTH +OK/.test(r.stdout) ? true : undefined;
      }, 30_000);
      const stale = await tc(dir, N11, ["etcd", "alarm", "list"]);
      assert.match(
        stale.stdout,
        new RegExp(f.memberHex(broken.alarmMember)),
        "the alarm came back",
      );
      assert.equal((await tc(dir, N11, ["etcd", "members"])).stdout.trim().split("\n").length, 2);
      assert.equal((await tc(dir, N11, ["etcd", "alarm", "disarm"])).code, 0);
      assert.equal((await tc(dir, N11, ["etcd", "alarm", "list"])).stdout, "");

      let maxLearners = 0;
      await until(
        "every member to vote",
        async () => {
          const m = await tc(dir, N11, ["etcd", "members"]);
          const rows = m.stdout.trim().split("\n").slice(1);
          maxLearners = Math.max(maxLearners, rows.filter((r) => r.endsWith("true")).length);
          return rows.length === 3 && rows.every((r) => r.endsWith("false")) ? true : undefined;
        },
        60_000,
        50,
      );
      assert.ok(maxLearners <= 1, "one learner at a time");
      await until("the VIP", async () => {
        const holders = [];
        for (const n of [N10, N11, N12]) {
          if ((await tc(dir, n, ["get", "addresses"])).stdout.includes("eth0/127.0.53.2/32")) {
            holders.push(n);
          }
        }
        return holders.length === 1 ? holders : undefined;
      });
      const checks = await prove(dir, revisions[1]);
      for (const c of checks) assert.ok(c.ok || c.notChecked, `${c.name}: ${c.detail}`);
    });
  },
});

// ---- triage commands: remove-member, defrag, volumestatus, no leader, NOSPACE -------------

/** A triage sample with the lab's addresses, `ids` (sample → lab) swapped in. */
function triage(name: string, ids: Record<string, string> = {}, from = "", to = ""): string {
  let text = asLab(triageSample(name));
  for (const [a, b] of Object.entries(ids)) text = text.replaceAll(a, b);
  return from ? text.replaceAll(from, to) : text;
}

const memberOf = (dir: string, label: string) =>
  state(dir).nodes.find((n) => n.label === label)!
    .member!.id;

Deno.test("talosctl-sim: etcd remove-member prints nothing; NotFound, unhealthy and parse errors as the samples", async () => {
  await withLab({ backend: "model", speed: 20 }, async (dir) => {
    await load(dir);
    const [id10, id12] = [memberOf(dir, N10), memberOf(dir, N12)];
    const rm = (via: string, id: string) => tc(dir, via, ["etcd", "remove-member", id]);
    // talosctl takes the hex ID only: a hostname or a decimal ID is a parse error
    assert.deepEqual(await rm(N11, "talos-cp-3"), {
      stdout: "",
      stderr: triageSample("etcd-remove-member.hostname.err.txt"),
      code: 1,
    });
    assert.deepEqual(await rm(N11, "15187180991711508585"), {
      stdout: "",
      stderr: triageSample("etcd-remove-member.decimal-id.err.txt"),
      code: 1,
    });
    // a healthy voter while another voter is down: etcd refuses
    await fault(dir, N10, "off");
    const refused = await rm(N11, f.memberHex(id12));
    assert.equal(refused.code, 1);
    assert.equal(
      refused.stderr,
      triage("etcd-remove-member.unhealthy.err.txt", { "2237881630366255410": id12 }),
    );
    // the member that is down may go: nothing printed
    const removed = await rm(N11, f.memberHex(id10));
    assert.deepEqual(removed, {
      stdout: triageSample("etcd-remove-member.txt"),
      stderr: "",
      code: 0,
    });
    const again = await rm(N11, f.memberHex(id10));
    assert.equal(
      again.stderr,
      triage("etcd-remove-member.not-found.err.txt", { "15187180991711508585": id10 }),
    );
    const members = await tc(dir, N11, ["etcd", "members"]);
    assert.doesNotMatch(members.stdout, new RegExp(f.memberHex(id10)));
    assert.equal(members.stdout.trim().split("\n").length, 3, "header and the two left");
  });
});

Deno.test("talosctl-sim: a node reset alone rejoins by itself: its old member removed, a learner, then a voter", async () => {
  await withLab({ backend: "model", speed: 20 }, async (dir) => {
    await load(dir);
    const old12 = memberOf(dir, N12);
    const t0 = Date.now();
    assert.equal((await tc(dir, N12, RESET, t0)).code, 0);
    const bootAt = state(dir).nodes[2].bootAt!;
    const joined = bootAt + at(20, "criUpS") + 1;
    const members = await tc(dir, N10, ["etcd", "members"], joined);
    const rows = cells(members.stdout).filter((r) => r[0] === N10);
    assert.equal(rows.length, 3, members.stdout);
    assert.ok(!members.stdout.includes(f.memberHex(old12)), "Talos removed its old self");
    const row12 = rows.find((r) => r[2] === "talos-cp-3")!;
    assert.equal(row12[5], "true", "it joined as a learner");
    // defrag on a learner, and on several nodes at once: refused as talosctl does
    assert.deepEqual(await tc(dir, N12, ["etcd", "defrag"], joined + 1), {
      stdout: "",
      stderr: triage("etcd-defrag.learner.err.txt"),
      code: 1,
    });
    const multi = await run(["-e", N10, "-n", `${N10},${N11}`, "etcd", "defrag"], dir, joined);
    assert.deepEqual(multi, {
      stdout: "",
      stderr: triageSample("etcd-defrag.multi-node.err.txt"),
      code: 1,
    });
    const later = joined + at(20, "promoteFirstS") + at(20, "healthPeriodS") + 1;
    const voted = await tc(dir, N10, ["etcd", "members"], later);
    assert.match(voted.stdout, /talos-cp-3 .* false\n/, voted.stdout);
    assert.equal(state(dir).voters[state(dir).primary], 3);
    assert.deepEqual(await tc(dir, N12, ["etcd", "defrag"], later), {
      stdout: triageSample("etcd-defrag.txt"),
      stderr: "",
      code: 0,
    });
  });
});

Deno.test("talosctl-sim: get volumestatus ETCD answers like the reference (a directory, ready)", async () => {
  await withLab({ backend: "model", speed: 20 }, async (dir) => {
    const r = await tc(dir, N11, ["get", "volumestatus", "ETCD"]);
    assert.equal(r.code, 0, r.stderr);
    const want = triage("volumestatus-etcd.directory.txt");
    // same cells; the layout is Go's tabwriter (the sample's LOCATION column is one space wider)
    const trimmed = (t: string) => cells(t).map((row) => row.map((c) => c.trim()));
    assert.deepEqual(trimmed(r.stdout), trimmed(want));
  });
});

Deno.test("talosctl-sim: without a leader, status says so, members fail, alarm list hangs then fails", async () => {
  await withLab({ backend: "model", speed: 1000 }, async (dir) => {
    await load(dir);
    await breakCluster(dir, 0, "quorum-lost");
    const st = await tc(dir, N12, ["etcd", "status"]);
    assert.equal(st.code, 0);
    const [head, row] = cells(st.stdout);
    const cell = (name: string) => row[head.indexOf(name)].trim();
    const [sHead, sRow] = cells(triageSample("etcd-status.no-leader.txt"));
    assert.deepEqual(head, sHead);
    assert.equal(cell("LEADER"), sRow[sHead.indexOf("LEADER")]);
    assert.equal(cell("ERRORS"), sRow[sHead.indexOf("ERRORS")].trim());
    const swap = (name: string) => triage(name, {}, "127.0.53.11", N12);
    assert.deepEqual(await tc(dir, N12, ["etcd", "members"]), {
      stdout: "",
      stderr: swap("etcd-members.no-leader.err.txt"),
      code: 1,
    });
    const id10 = f.memberHex(memberOf(dir, N10));
    assert.equal(
      (await tc(dir, N12, ["etcd", "remove-member", id10])).stderr,
      triage(
        "etcd-remove-member.no-leader.err.txt",
        { "15187180991711508585": memberOf(dir, N10) },
        "127.0.53.11",
        N12,
      ),
    );
    const t0 = performance.now();
    const alarms = await tc(dir, N12, ["etcd", "alarm", "list"]);
    const waited = performance.now() - t0;
    assert.deepEqual(alarms, {
      stdout: "",
      stderr: swap("etcd-alarm-list.no-leader.err.txt"),
      code: 1,
    });
    assert.ok(waited >= at(1000, "alarmNoLeaderS"), `answered after ${waited} ms: it hangs first`);
  });
});

Deno.test("talosctl-sim: NOSPACE shows in every status row and once in the alarm list, like the samples", async () => {
  await withLab({ backend: "model", speed: 20 }, async (dir) => {
    await load(dir);
    await breakCluster(dir, 0, "nospace");
    const id11 = memberOf(dir, N11);
    const st = await run(["-e", N11, "-n", `${N10},${N11},${N12}`, "etcd", "status"], dir);
    const [head, ...rows] = cells(st.stdout.trimEnd());
    const errors = rows.map((r) => r[head.indexOf("ERRORS")]);
    const [sHead, ...sRows] = cells(triageSample("etcd-status.nospace.txt").trimEnd());
    assert.deepEqual(head, sHead);
    const want = sRows.map((r) => r[sHead.indexOf("ERRORS")].replace("6515438233605577259", id11));
    assert.deepEqual(errors, want);
    const list = await tc(dir, N11, ["etcd", "alarm", "list"]);
    assert.deepEqual(
      cells(mask(list.stdout)),
      cells(mask(triageSample("etcd-alarm-list.nospace.txt"))),
    );
  });
});

Deno.test("every process a lab of this file started is stopped (by PID)", () => {
  assert.deepEqual(leftoverProcs(), []);
});
