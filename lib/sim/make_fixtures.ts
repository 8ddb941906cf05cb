/**
 * Makes `fixtures/sim/` with real etcd (run once, or again after changing the lab's load):
 * a 3-node lab, a copy of a member's `member/snap/db` just after `up` (`fresh.db`), after
 * `load` (`loaded.db`, also what the member stopped early holds) and after `break`
 * (`late.db`, with the CORRUPT alarm inside), and `fixtures.json` describing them.
 *
 *   deno run --allow-all lib/sim/make_fixtures.ts
 */

import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { etcdBackend } from "./backend_etcd.ts";
import { FIXTURE_DIR, type FixtureManifest, sha256File } from "./fixtures.ts";
import { breakCluster, down, load, up } from "./lab.ts";
import { dbPath, loadState } from "./state.ts";

async function describe(path: string, alarms: { memberID: string; alarm: string }[]) {
  const st = await etcdBackend.snapshotStatus(path);
  if ("error" in st) throw new Error(`snapshot status ${path}: ${st.error}`);
  return { sha256: await sha256File(path), ...st, size: statSync(path).size, alarms };
}

if (import.meta.main) {
  const dir = join(mkdtempSync(join(tmpdir(), "sim-fixtures-")), "lab");
  const settle = () => new Promise((r) => setTimeout(r, 500));
  try {
    const s = await up(dir, { backend: "etcd", log: console.error });
    const source = s.nodes[1].label;
    mkdirSync(FIXTURE_DIR, { recursive: true });
    const take = (name: string) => copyFileSync(dbPath(dir, source), join(FIXTURE_DIR, name));
    await settle();
    take("fresh.db");
    await load(dir);
    await settle();
    take("loaded.db");
    const broken = await breakCluster(dir);
    await settle();
    take("late.db");
    const st = loadState(dir);
    const alarm = [{ memberID: broken.alarmMember, alarm: "CORRUPT" }];
    const manifest: FixtureManifest = {
      generatedWith: "etcd 3.4.23 (Debian), lib/sim/make_fixtures.ts",
      members: st.nodes.map((n) => n.member!.id),
      keys: st.keys!,
      files: {
        "fresh.db": await describe(join(FIXTURE_DIR, "fresh.db"), []),
        "loaded.db": await describe(join(FIXTURE_DIR, "loaded.db"), []),
        "late.db": await describe(join(FIXTURE_DIR, "late.db"), alarm),
      },
    };
    writeFileSync(join(FIXTURE_DIR, "fixtures.json"), JSON.stringify(manifest, null, 2) + "\n");
    console.error(JSON.stringify(manifest, null, 2));
  } finally {
    await down(dir);
    rmSync(join(dir, ".."), { recursive: true, force: true });
  }
}
