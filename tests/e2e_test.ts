/**
 * End to end: the real `deno task recover` as a process, against the lab (fake talosctl,
 * real etcd members on 127.0.0.1 when installed), through the incident and the faults an
 * operator meets: a member that dies during extract, a copy cut short, a node that never
 * comes back from its reset. Each test takes its lab down by PID, whatever happens.
 */

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { backendOf } from "../lib/sim/backend_model.ts";
import { breakCluster, etcdInstalled, fault, load, prove } from "../lib/sim/lab.ts";
import type { Backend } from "../lib/sim/state.ts";
import {
  etcdTests,
  labTask,
  leftoverProcs,
  requireEtcd,
  scratch,
  state,
  withLab,
} from "../lib/sim/testing.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `deno task recover --nodes … --vip … --yes --out OUT …extra` against the lab in `dir`. */
function recover(dir: string, out: string, extra: string[] = []): Promise<Run> {
  return labTask(dir, "recover", ["--vip", state(dir).vip, "--yes", "--out", out, ...extra]);
}

/** Up, load, break: the incident. */
async function incident(dir: string, keys = 1000) {
  await load(dir, keys);
  return await breakCluster(dir);
}

/** The checks of the demo, all passing; the seed copy's revision read from OUT. */
async function assertRecovered(dir: string, out: string) {
  const seed = state(dir).seed;
  assert.ok(seed, "a node was restored");
  const be = await backendOf(state(dir));
  const st = await be.snapshotStatus(join(out, `db.${seed}`, "db"));
  assert.ok(!("error" in st), JSON.stringify(st));
  for (const c of await prove(dir, st.revision)) {
    assert.ok(c.ok || c.notChecked, `${c.name}: ${c.detail}`);
  }
}

function tail(r: Run): string {
  return `exit ${r.code}\n${r.stderr.split("\n").slice(-25).join("\n")}`;
}

const outDir = (dir: string) => join(scratch(dir), "out");

Deno.test({
  name: "e2e: recover brings a corrupt 3-node cluster back (real etcd): keys, revision, votes, VIP",
  ...etcdTests(),
  fn: async () => {
    requireEtcd();
    await withLab({ backend: "etcd", speed: 100 }, async (dir) => {
      const broken = await incident(dir);
      const out = outDir(dir);
      const r = await recover(dir, out, ["--timeout", "2m"]);
      assert.equal(r.code, 0, tail(r));
      assert.equal(state(dir).seed, "127.0.53.11", "the highest revision (first of the tie) wins");
      assert.notEqual(state(dir).seed, broken.stopped);
      assert.ok(existsSync(join(out, "report.md")));
      await assertRecovered(dir, out);
    });
  },
});

Deno.test("e2e: recover brings a 5-node control plane back", async () => {
  const backend: Backend = etcdInstalled() || Deno.env.get("CI") ? "etcd" : "model";
  await withLab({ backend, speed: backend === "etcd" ? 100 : 1000, nodes: 5 }, async (dir) => {
    await incident(dir);
    const out = outDir(dir);
    // on 5 nodes the lab's incident keeps a healthy majority (diagnose: replace); this test
    // rehearses the full rebuild on 5 nodes, so it asks for it
    const r = await recover(dir, out, ["--timeout", "2m", "--full"]);
    assert.equal(r.code, 0, tail(r));
    assert.match(r.stderr, /the full rebuild because of --full, though the verdict is replace/);
    await assertRecovered(dir, out);
  });
});

Deno.test("e2e: a member dead during extract: refused without --force (exit 2), recovered with it", async () => {
  await withLab({ backend: "model", speed: 1000 }, async (dir) => {
    await incident(dir);
    await fault(dir, "127.0.53.12", "crash-on-copy");
    const out = outDir(dir);
    const refused = await recover(dir, out, ["--timeout", "1m"]);
    assert.equal(refused.code, 2, tail(refused));
    assert.match(refused.stderr, /127\.0\.53\.12/);
    assert.ok(
      state(dir).nodes.every((n) => n.phase !== "preparing"),
      "nothing was wiped",
    );
    const forced = await recover(dir, out, ["--timeout", "1m", "--force"]);
    assert.equal(forced.code, 0, tail(forced));
    await assertRecovered(dir, out);
  });
});

Deno.test("e2e: a torn copy is copied again; a failed copy is refused before anything is wiped; a re-run recovers", async () => {
  await withLab({ backend: "model", speed: 200 }, async (dir) => {
    await incident(dir);
    // Each fault spoils the node's next cp only: half the file with exit 0, or with an error.
    await fault(dir, "127.0.53.11", "torn-copy");
    await fault(dir, "127.0.53.12", "short-copy");
    const out = outDir(dir);
    const r = await recover(dir, out, ["--timeout", "1m"]);
    assert.equal(r.code, 2, tail(r));
    assert.match(
      r.stderr,
      /127\.0\.53\.11: the copy is not a readable etcd db \(file is cut short: .*\); kept in .*db\.127\.0\.53\.11\.torn-1, copying again/,
    );
    assert.match(r.stderr, /ok: 127\.0\.53\.11: .* revision \d+, sha256/);
    assert.match(r.stderr, /Refusing to wipe: no usable copy from "127\.0\.53\.12"/);
    assert.deepEqual(
      state(dir).nodes.map((n) => n.phase),
      ["crashed", "running", "running"],
      "no node was reset",
    );
    // The same command again copies only the missing node, then recovers.
    const again = await recover(dir, out, ["--timeout", "1m"]);
    assert.equal(again.code, 0, tail(again));
    assert.match(again.stderr, /127\.0\.53\.11: already copied/);
    await assertRecovered(dir, out);
  });
});

Deno.test("e2e: a node that stays unreachable after its reset fails the wait at its deadline; once back, the re-run finishes the wipe and recovers", async () => {
  await withLab({ backend: "model", speed: 200 }, async (dir) => {
    await incident(dir);
    await fault(dir, "127.0.53.12", "stuck-reset");
    const out = outDir(dir);
    const started = Date.now();
    const r = await recover(dir, out, ["--timeout", "6s"]);
    assert.equal(r.code, 1, tail(r));
    assert.match(r.stderr, /Timed out .*127\.0\.53\.12/);
    assert.ok(Date.now() - started < 60_000, "the deadline was kept");
    assert.equal(state(dir).nodes[2].phase, "off");
    assert.match(r.stderr, /to continue: deno task recover .*--yes/);

    // Someone fixes it and powers it on; the command to continue finishes the wipe (no
    // pre-flight, which a node still down would fail) and the recovery.
    await fault(dir, "127.0.53.12", "clear");
    await fault(dir, "127.0.53.12", "on");
    const again = await recover(dir, out, ["--timeout", "30s"]);
    assert.equal(again.code, 0, tail(again));
    assert.match(again.stderr, /Resuming from .*: reset sent to .*, wipe not finished/);
    assert.doesNotMatch(again.stderr, /Pre-flight/);
    assert.match(again.stderr, /recovered: etcd restored from/);
  });
});

/** The `reboot` calls the lab's talosctl answered, as the nodes they went to. */
function reboots(dir: string): string[] {
  return readFileSync(join(dir, "calls.log"), "utf8").split("\n").filter(Boolean)
    .map((l) => JSON.parse(l) as { argv: string[] })
    .filter((c) => c.argv.includes("reboot")).map((c) => c.argv[c.argv.indexOf("-n") + 1]);
}

Deno.test("e2e: the wiped nodes rejoin by themselves: recover reboots no node", async () => {
  const backend: Backend = etcdInstalled() || Deno.env.get("CI") ? "etcd" : "model";
  await withLab({ backend, speed: backend === "etcd" ? 100 : 1000 }, async (dir) => {
    await incident(dir);
    const out = outDir(dir);
    const r = await recover(dir, out, ["--timeout", "2m"]);
    assert.equal(r.code, 0, tail(r));
    assert.deepEqual(reboots(dir), [], "no reboot was sent");
    // each came back by itself, during disarm already at this speed, or while rejoin waited
    for (const n of ["127.0.53.10", "127.0.53.12"]) {
      assert.match(
        r.stderr,
        new RegExp(`ok: ${n}: (already a voter|rejoined by itself at \\d\\d:\\d\\d:\\d\\d UTC)\n`),
      );
    }
    await assertRecovered(dir, out);
  });
});

Deno.test("e2e: a node whose join gave up (etcd Failed) is rebooted, and only that one", async () => {
  const backend: Backend = etcdInstalled() || Deno.env.get("CI") ? "etcd" : "model";
  await withLab({ backend, speed: backend === "etcd" ? 100 : 1000 }, async (dir) => {
    await incident(dir);
    await fault(dir, "127.0.53.12", "join-gave-up");
    const out = outDir(dir);
    const r = await recover(dir, out, ["--timeout", "2m"]);
    assert.equal(r.code, 0, tail(r));
    assert.deepEqual(reboots(dir), ["127.0.53.12"]);
    assert.match(
      r.stderr,
      /127\.0\.53\.12: rebooting: etcd Failed \(Failed to run pre stage: failed to build initial etcd cluster: .*occurred: timeout\)/,
    );
    assert.match(r.stderr, /ok: 127\.0\.53\.10: (already a voter|rejoined by itself)/);
    assert.match(r.stderr, /ok: 127\.0\.53\.12: rebooted: etcd Failed .*; a voter at /);
    await assertRecovered(dir, out);
  });
});

Deno.test("e2e: no etcd process started by these tests is left running (by PID)", () => {
  assert.deepEqual(leftoverProcs(), []);
});
