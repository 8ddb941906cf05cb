import assert from "node:assert/strict";
import { main as recover } from "../tasks/recover.ts";
import { fakeWorld, fx, type Recording } from "./replay.ts";
import {
  afterRecs,
  bootstrapRecs,
  brokenClusterRecs,
  disarmRecs,
  extractRecs,
  preflightRecs,
  rec,
  SEED,
  T,
  tempOut,
  VIP,
  waitRecs,
  wipeRecs,
} from "./scenario.ts";

/** `etcd members` of the seed listing every node as a voter (rows cloned from the capture). */
function membersOf(nodes: string[]): string {
  const [header, row] = fx("etcd-members.txt").split("\n");
  const rows = nodes.map((n, i) =>
    row.replaceAll("192.168.53.11:", `${n}:`).replace("talos-cp-2", `talos-cp-${i + 1}`)
      .replace("3b5a4f7e0c1d9a26", (0x3b5a4f7e0c1d9a26n + BigInt(i)).toString(16))
  );
  return [header, ...rows].join("\n") + "\n";
}

for (const count of [5, 7]) {
  Deno.test(`recover works on ${count} control-plane nodes, rebooting one at a time with --rolling-reboot`, async () => {
    const nodes = Array.from({ length: count }, (_, i) => `192.168.53.${10 + i}`);
    const out = tempOut();
    const status = (n: string): Recording => {
      const known = ["192.168.53.10", "192.168.53.11", "192.168.53.12"].includes(n);
      return rec.etcdutl(
        out,
        n,
        known ? {} : {
          stdout: fx("etcdutl-snapshot-status.192.168.53.12.json.txt").replace(
            "1843290",
            "1843001",
          ),
        },
      );
    };
    const members = { cmd: T(SEED, "etcd", "members"), stdout: membersOf(nodes) };
    const others = nodes.filter((n) => n !== SEED);
    const extra = Object.fromEntries(
      nodes.slice(3).map((n) => [n, {
        hash: 175980177,
        revision: 1843001,
        totalKeyLive: 8118,
        totalKey: 8127,
        totalSize: 48230400,
        version: "3.6.0",
      }]),
    );
    const w = fakeWorld([
      ...preflightRecs(nodes),
      ...extractRecs(out, nodes),
      ...nodes.map(status),
      ...brokenClusterRecs(nodes),
      ...wipeRecs(nodes),
      ...waitRecs(),
      ...bootstrapRecs(out),
      ...disarmRecs(),
      rec.service(SEED, "service-etcd.running-ok.txt"),
      rec.members(SEED, "etcd-members.seed-only.txt"), // before any of `members` below
      ...others.flatMap((n) => [
        rec.reboot(n),
        rec.refused(n),
        rec.service(n, "service-etcd.running-learner.txt"),
        rec.service(n, "service-etcd.running-ok.joined.txt"),
        members,
      ]),
      members,
      rec.alarms(SEED, "etcd-alarm-list.empty.txt"),
      ...nodes.map((n) => rec.addresses(n, n === "192.168.53.13")),
      rec.kubectlAbsent(),
      rec.kubectlAbsent(),
      ...afterRecs(out),
    ], { dbs: extra });
    const code = await recover(
      ["--nodes", nodes.join(","), "--vip", VIP, "--out", out, "--yes", "--rolling-reboot"],
      w.deps,
    );
    assert.equal(code, 0, w.stderr());
    w.replay.assertDone();
    assert.match(
      w.stderr(),
      new RegExp(`ok: ${count} nodes: quorum is ${Math.floor(count / 2) + 1}`),
    );
    assert.match(w.stderr(), new RegExp(`members: ${count} voting members`));
    assert.match(w.stderr(), /vip: 192\.168\.53\.2 is on 192\.168\.53\.13/);
    const reboots = w.replay.callsMatching(/ reboot /).map((c) => c.split(" ")[2]);
    assert.deepEqual(reboots, others);
    // one at a time: each reboot comes after the previous node was seen as a voter
    const calls = w.replay.calls;
    for (let i = 1; i < others.length; i++) {
      const prevDone = calls.lastIndexOf(
        members.cmd,
        calls.indexOf(T(others[i], "reboot", "--wait=false")),
      );
      assert.ok(prevDone > calls.indexOf(T(others[i - 1], "reboot", "--wait=false")));
    }
  });
}
