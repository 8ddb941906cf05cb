/**
 * End to end: `deno task recover --yes`, which ends with the after part, as a real process
 * against the lab (fake talosctl and kubectl; real etcd members on 127.0.0.1 when installed).
 * After it, OUT holds a snapshot the native reader and `etcdctl snapshot status` accept, the
 * report names it, the workers' kubelets were restarted one at a time, the stuck pods are
 * listed. Then `deno task after --restart-stuck` on its own: no second backup, no kubelet
 * restarted twice, only the pods a controller recreates deleted.
 */

import assert from "node:assert/strict";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { breakCluster, etcdInstalled, load } from "../lib/sim/lab.ts";
import type { Backend } from "../lib/sim/state.ts";
import { readStatus } from "../lib/db/etcd_db.ts";
import { etcdTests, labTask, requireEtcd, scratch, state, withLab } from "../lib/sim/testing.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function task(dir: string, name: string, out: string, extra: string[]): Promise<Run> {
  return labTask(dir, name, ["--out", out, ...extra]);
}

const tail = (r: Run) => `exit ${r.code}\n${r.stderr.split("\n").slice(-30).join("\n")}`;

/** The revision of the seed's copy, as the status step recorded it in OUT's journal. */
function seedCopyRevision(out: string, seed: string): number {
  const lines = readFileSync(join(out, "journal.jsonl"), "utf8").split("\n").filter(Boolean);
  const copies = lines.map((l) => JSON.parse(l)).findLast((e) => e.key === "copies");
  return copies.value.find((c: { node: string }) => c.node === seed).revision;
}

async function recoverWithAfter(backend: Backend, speed: number) {
  await withLab({ backend, speed }, async (dir) => {
    await load(dir, 500);
    await breakCluster(dir);
    const out = join(scratch(dir), "out");
    const r = await task(dir, "recover", out, [
      "--vip",
      state(dir).vip,
      "--yes",
      "--timeout",
      "2m",
    ]);
    assert.equal(r.code, 0, tail(r));
    const seed = state(dir).seed!;
    assert.match(r.stderr, /recovered: etcd restored from /);
    assert.match(r.stderr, /==> After the restore: a verified backup/);
    const a = r; // the after part ran at the end of recover
    // the backup: in OUT, 0600, read back by the native reader and by etcdctl
    const snaps = readdirSync(out).filter((f) => /^snapshot-\d{8}T\d{6}Z\.db$/.test(f));
    assert.equal(snaps.length, 1, readdirSync(out).join(" "));
    const file = join(out, snaps[0]);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const st = await readStatus(file);
    assert.ok(st.revision >= seedCopyRevision(out, seed), `${st.revision}`);
    assert.deepEqual(st.alarms, []);
    if (etcdInstalled()) {
      const o = await new Deno.Command("etcdctl", {
        args: ["snapshot", "status", file, "-w", "json"],
        env: { ETCDCTL_API: "3" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(o.success, new TextDecoder().decode(o.stderr));
      assert.equal(JSON.parse(new TextDecoder().decode(o.stdout)).revision, st.revision);
    }
    const report = readFileSync(join(out, "report.md"), "utf8");
    assert.match(report, /## After the restore/);
    assert.ok(report.includes(`Backup: \`${file}\``), report);
    assert.match(report, /Outcome of the last run \(`recover`\): success/);
    assert.match(report, /\| after \| ok \|/);
    // the workers' kubelets: each restarted once, the second after the first ran again
    const [w1, w2] = state(dir).workers!;
    assert.equal(w1.restarts.length, 1);
    assert.equal(w2.restarts.length, 1);
    assert.ok(w1.restarts[0].upAt <= w2.restarts[0].at, JSON.stringify(state(dir).workers));
    const calls = readFileSync(join(dir, "calls.log"), "utf8").split("\n").filter(Boolean)
      .map((l) => JSON.parse(l).argv.join(" ")).filter((c) => / kubelet restart$/.test(c));
    assert.deepEqual(
      calls,
      [w1, w2].map((w) => `-e ${w.label} -n ${w.label} service kubelet restart`),
    );
    // the stuck pods, listed; nothing deleted without --restart-stuck
    assert.match(a.stderr, /ContainerCreating \(2\):/);
    assert.match(
      a.stderr,
      /default\/db-0 on talos-worker-1, Pending, .*StatefulSet\/db; last volume event FailedMount/,
    );
    assert.match(
      a.stdout,
      /^# default\/debug-shell: a bare pod: nothing would recreate it; not deleted$/m,
    );
    assert.equal(state(dir).pods!.length, 5);

    // again with --restart-stuck: the backup and the kubelets are done; only owned pods go
    const b = await task(dir, "after", out, ["--yes", "--restart-stuck"]);
    assert.equal(b.code, 0, tail(b));
    assert.equal(readdirSync(out).filter((f) => f.startsWith("snapshot-")).length, 1);
    assert.equal(state(dir).workers![0].restarts.length, 1, "not restarted twice");
    const pods = state(dir).pods!;
    assert.ok(pods.some((p) => p.name === "debug-shell" && !p.ready), "the bare pod stays");
    assert.ok(pods.some((p) => p.name === "db-0" && p.ready), "db-0 recreated by its StatefulSet");
    assert.ok(!pods.some((p) => p.name === "api-5f6d8b7c9-q8w7e"), "api pod replaced");
  });
}

Deno.test({
  name:
    "e2e after: recover on real etcd ends with the after part: a snapshot etcdctl accepts, kubelets one at a time, stuck pods",
  ...etcdTests(),
  fn: async () => {
    requireEtcd();
    await recoverWithAfter("etcd", 100);
  },
});

Deno.test("e2e after: the same on the model backend (the disarmed snapshot fixture)", async () => {
  await recoverWithAfter("model", 1000);
});
