import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { main } from "../tasks/recover.ts";
import { fakeWorld } from "./replay.ts";
import { fullRecoveryRecs, NODES_FLAG, SEED, tempOut, VIP } from "./scenario.ts";

Deno.test("recover --yes goes from extraction to verification and exits 0", async () => {
  const out = tempOut();
  const w = fakeWorld(fullRecoveryRecs(out));
  const code = await main([...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /recovered: etcd restored from 192\.168\.53\.11/);
  const report = readFileSync(join(out, "report.md"), "utf8");
  assert.match(report, /Seed: 192\.168\.53\.11/);
  assert.match(report, /\| 192\.168\.53\.11 \| 1843517 \|/);
  assert.match(report, /\| verify \| ok \|/);
  assert.ok(existsSync(join(out, "journal.jsonl")));
  // the others rejoin by themselves: nothing is rebooted, the seed least of all
  assert.deepEqual(w.replay.callsMatching(/ reboot /), []);
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: rejoined by itself at 10:\d\d:\d\d UTC/);
  assert.match(w.stderr(), /ok: 192\.168\.53\.12: rejoined by itself at /);
  assert.ok(!w.replay.calls.some((c) => c.startsWith(`talosctl -e ${SEED} -n ${SEED} reboot`)));
});
