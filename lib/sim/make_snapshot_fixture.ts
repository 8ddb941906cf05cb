/**
 * Makes `fixtures/sim/late.disarmed.snapshot.db` with real etcd: what `etcd snapshot` of the
 * lab's restored, disarmed cluster holds (the model backend has no etcd to take one from).
 * `late.db` is restored as a one-member cluster, its CORRUPT alarm disarmed, and the member
 * snapshotted with `etcdctl snapshot save` (the db plus its sha256 trailer); the member is
 * stopped by PID.
 *
 *   deno run --allow-all lib/sim/make_snapshot_fixture.ts
 */

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FIXTURE_DIR, fixturePath } from "./fixtures.ts";
import { pickPorts } from "./ports.ts";
import { spawnDetached, stopGracefully } from "./proc.ts";

/** The snapshot the model takes of a cluster restored from `fixture` once it is disarmed. */
export function disarmedSnapshotPath(fixture: string): string {
  return fixturePath(fixture.replace(/\.db$/, ".disarmed.snapshot.db"));
}

async function etcdctl(args: string[]): Promise<string> {
  const o = await new Deno.Command("etcdctl", {
    args,
    env: { ETCDCTL_API: "3" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(o.stdout) + new TextDecoder().decode(o.stderr);
  if (!o.success) throw new Error(`etcdctl ${args.join(" ")}: ${text}`);
  return text;
}

if (import.meta.main) {
  const dir = mkdtempSync(join(tmpdir(), "sim-snapshot-"));
  const base = pickPorts(2);
  const peer = `http://127.0.0.1:${base}`;
  const client = `http://127.0.0.1:${base + 1}`;
  const data = join(dir, "data");
  let proc;
  try {
    await etcdctl([
      "snapshot",
      "restore",
      fixturePath("late.db"),
      "--skip-hash-check",
      "--data-dir",
      data,
      "--name",
      "m",
      "--initial-cluster",
      `m=${peer}`,
      "--initial-advertise-peer-urls",
      peer,
    ]);
    proc = await spawnDetached(dir, "etcd", [
      "--name",
      "m",
      "--data-dir",
      data,
      "--listen-client-urls",
      client,
      "--advertise-client-urls",
      client,
      "--listen-peer-urls",
      peer,
      "--initial-advertise-peer-urls",
      peer,
      "--initial-cluster",
      `m=${peer}`,
    ], join(dir, "etcd.log"));
    for (let i = 0;; i++) {
      try {
        await etcdctl(["--endpoints", client, "endpoint", "health"]);
        break;
      } catch (error) {
        if (i > 100) throw error;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    console.error(await etcdctl(["--endpoints", client, "alarm", "disarm"]));
    const out = disarmedSnapshotPath("late.db");
    console.error(await etcdctl(["--endpoints", client, "snapshot", "save", out]));
    console.error(await etcdctl(["snapshot", "status", out, "-w", "json"]));
    console.error(`wrote ${out} (in ${FIXTURE_DIR})`);
  } finally {
    await stopGracefully(proc);
    rmSync(dir, { recursive: true, force: true });
  }
}
