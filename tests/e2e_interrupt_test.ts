/**
 * End to end: `recover` as a real process against the lab, interrupted (SIGINT by PID) right
 * after the bootstrap was accepted, again right after the first reboot was accepted, and again
 * in the after part right after the first worker's kubelet restart was accepted, then run again
 * each time: the recovery finishes, and the journal shows every reset, the bootstrap, the
 * disarm, the one reboot (of the node whose join gave up) and each kubelet restart accepted
 * once; OUT holds one backup.
 */

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { breakCluster, fault, labEnv, load, prove } from "../lib/sim/lab.ts";
import { backendOf } from "../lib/sim/backend_model.ts";
import { REPO_ROOT, scratch, state, withLab } from "../lib/sim/testing.ts";

/** `recover` as one process (no `deno task` wrapper: the signal goes to it). */
function start(dir: string, out: string): Deno.ChildProcess {
  const s = state(dir);
  return new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-sys=cpus,uid,gid,statfs",
      "tasks/recover.ts",
      "--nodes",
      s.nodes.map((n) => n.label).join(","),
      "--vip",
      s.vip,
      "--yes",
      "--out",
      out,
      "--timeout",
      "1m",
    ],
    cwd: REPO_ROOT,
    env: { ...labEnv(s), NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** Accepted mutating calls in OUT/journal.jsonl, as `NODE verb`. */
function accepted(out: string): string[] {
  const path = join(out, "journal.jsonl");
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l))
    .filter((e) => e.type === "call" && e.mutating && e.exitCode === 0)
    .map((e) =>
      `${e.node} ${
        e.command.match(/ (reset|bootstrap|alarm disarm|reboot|kubelet restart)( |$)/)?.[1]
      }`
    );
}

/** Runs recover; once `when(accepted)` holds, sends SIGINT. Returns exit code and stderr. */
async function runUntil(dir: string, out: string, when?: (calls: string[]) => boolean) {
  const child = start(dir, out);
  const output = child.output();
  let sent = false;
  if (when) {
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline && !when(accepted(out))) {
      if (await Promise.race([output.then(() => true), sleep(20).then(() => false)])) break;
    }
    try {
      child.kill("SIGINT");
      sent = true;
    } catch {
      // it had already ended
    }
  }
  const o = await output;
  return { code: o.code, sent, stderr: new TextDecoder().decode(o.stderr) };
}

Deno.test("e2e: recover interrupted after the bootstrap was accepted, after the first reboot and in the after part, run again each time, repeats nothing", async () => {
  await withLab({ backend: "model", speed: 200 }, async (dir) => {
    await load(dir, 500);
    await breakCluster(dir);
    // the other nodes rejoin by themselves; .12's join gives up, so rejoin reboots it: the
    // reboot this test interrupts
    await fault(dir, "127.0.53.12", "join-gave-up");
    const out = join(scratch(dir), "out");
    const booted = await runUntil(dir, out, (c) => c.some((x) => x.endsWith(" bootstrap")));
    assert.equal(booted.code, 130, booted.stderr);
    const rebooted = await runUntil(dir, out, (c) => c.some((x) => x.endsWith(" reboot")));
    assert.equal(rebooted.code, 130, rebooted.stderr);
    assert.match(rebooted.stderr, /where it stands: (restored|bootstrap accepted)/);
    assert.doesNotMatch(rebooted.stderr, /not yet bootstrapped/);
    await sleep(3_000); // the rebooted node comes back meanwhile
    const inAfter = await runUntil(dir, out, (c) => c.some((x) => x.endsWith(" kubelet restart")));
    assert.equal(inAfter.code, 130, inAfter.stderr);
    // back as a voter since the reboot the second run sent: not rebooted again
    assert.match(
      inAfter.stderr,
      /127\.0\.53\.12: (already a voter|its reboot was accepted .*not rebooted again)/,
    );
    assert.match(inAfter.stderr, /recovered:/);
    assert.match(inAfter.stderr, /error: etcd is recovered \(.*\); only the after part did not/);
    assert.match(inAfter.stderr, /to continue: deno task after .*--yes/);
    const last = await runUntil(dir, out);
    assert.equal(last.code, 0, last.stderr);
    assert.match(last.stderr, /where it stands: verified/);
    assert.match(last.stderr, /kept: .*snapshot-/);
    const snapshots = readdirSync(out).filter((f) => /^snapshot-.*\.db$/.test(f));
    assert.equal(snapshots.length, 1, readdirSync(out).join(" "));

    const calls = accepted(out);
    const nodes = state(dir).nodes.map((n) => n.label);
    const seed = state(dir).seed!;
    assert.deepEqual(
      calls.filter((c) => c.endsWith(" reset")).sort(),
      nodes.map((n) => `${n} reset`).sort(),
      "each node reset once",
    );
    assert.deepEqual(calls.filter((c) => / (bootstrap|alarm disarm)$/.test(c)), [
      `${seed} bootstrap`,
      `${seed} alarm disarm`,
    ]);
    assert.deepEqual(
      calls.filter((c) => c.endsWith(" reboot")),
      ["127.0.53.12 reboot"],
      "the node whose join gave up rebooted once; the others rejoined by themselves",
    );
    assert.deepEqual(
      calls.filter((c) => c.endsWith(" kubelet restart")),
      ["127.0.53.20 kubelet restart", "127.0.53.21 kubelet restart"],
      "each worker's kubelet restarted once, in turn",
    );
    assert.deepEqual(state(dir).workers!.map((w) => w.restarts.length), [1, 1]);
    const be = await backendOf(state(dir));
    const st = await be.snapshotStatus(join(out, `db.${seed}`, "db"));
    assert.ok(!("error" in st), JSON.stringify(st));
    // the model backend keeps no keys: that check is "not checked", never ok
    for (const c of await prove(dir, st.revision)) {
      assert.ok(c.ok || c.notChecked, `${c.name}: ${c.detail}`);
    }
  });
});
