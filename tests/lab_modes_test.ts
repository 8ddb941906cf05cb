/**
 * The lab rehearses every verdict: each `lab break --mode` makes the cluster the mode names
 * (with real etcd where installed: the bad member refused by etcd's own corruption check,
 * NOSPACE raised by etcd itself, no leader after two members stopped), and the real
 * `deno task diagnose --json` names the way back the mode calls for. End to end with real
 * etcd: `deno task replace` on a bad member loses no key (written before the break or during
 * the replacement) and never restarts a healthy member. Labs are taken down by PID always.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  breakCluster,
  type BreakMode,
  load,
  memberPids,
  proveInPlace,
  startWriter,
} from "../lib/sim/lab.ts";
import type { Backend } from "../lib/sim/state.ts";
import { run } from "../lib/sim/talosctl.ts";
import { gw } from "../lib/sim/gateway.ts";
import {
  asLab,
  cells,
  etcdTests,
  labTask,
  leftoverProcs,
  requireEtcd,
  sample,
  scratch,
  state,
  tc,
  withLab,
} from "../lib/sim/testing.ts";

const SPEED = 100;
const KEYS = 300;

/** `deno task NAME --nodes <every lab node> …args` against the lab in `dir`. */
const task = (dir: string, name: string, args: string[]) => labTask(dir, name, args);

interface Diagnosis {
  verdict: string;
  replace: string[];
  copies: { outside: string[] } | null;
  reasons: string[];
}

/** `diagnose --json` (with the copies in `out` when given). */
async function diagnose(dir: string, out = join(scratch(dir), "none")): Promise<Diagnosis> {
  const r = await task(dir, "diagnose", ["--out", out, "--json"]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** The cell `column` of the row of `node` in a talosctl table. */
function cell(table: string, node: string, column: string): string {
  const [head, ...rows] = cells(table.trimEnd());
  return (rows.find((r) => r[0] === node)?.[head.indexOf(column)] ?? "").trim();
}

const N10 = "127.0.53.10";
const N11 = "127.0.53.11";
const N12 = "127.0.53.12";

/** The lab on real etcd, or (etcd not installed, not CI) the test is skipped, visibly. */
const real = (name: string, fn: (dir: string) => Promise<void>) =>
  Deno.test({
    name: `${name} (real etcd)`,
    ...etcdTests(),
    fn: async () => {
      if (Deno.env.get("CI")) requireEtcd();
      await withLab({ backend: "etcd", speed: SPEED }, async (dir) => {
        await load(dir, KEYS);
        await fn(dir);
      });
    },
  });

if (etcdTests().ignore) {
  console.error("lab_modes_test: etcd/etcdctl not installed: the real-etcd tests are skipped");
}

real(
  "lab break --mode bad-member: etcd refuses the damaged member; its copy differs; diagnose says replace it",
  async (dir) => {
    const b = await breakCluster(dir, 0, "bad-member");
    assert.equal(b.stopped, N12);
    const svc = await tc(dir, N12, ["service", "etcd"]);
    assert.match(svc.stdout, /STATE {17}Waiting/);
    assert.match(svc.stdout, /LAST HEALTH MESSAGE {3}service not running/);
    assert.match(
      svc.stdout,
      /going to restart forever: task "etcd" failed: exit code 1 \(last log "\{\\"level\\":\\"fatal\\".*found data inconsistency with peers/,
    );
    const out = join(scratch(dir), "out");
    const ex = await task(dir, "extract", ["--out", out]);
    assert.equal(ex.code, 0, ex.stderr);
    const d = await diagnose(dir, out);
    assert.equal(d.verdict, "replace", d.reasons.join("\n"));
    assert.deepEqual(d.replace, [N12]);
    assert.deepEqual(d.copies?.outside, [N12], "its copy's key history differs");
  },
);

real(
  "lab break --mode nospace: etcd raises NOSPACE itself; status and alarm list show it; diagnose says nospace",
  async (dir) => {
    const b = await breakCluster(dir, 0, "nospace");
    assert.equal(
      b.alarmMember,
      state(dir).nodes[1].member!.id,
      "raised by the member with the quota",
    );
    const st = await run(["-e", N11, "-n", [N10, N11, N12].join(","), "etcd", "status"], dir);
    assert.equal(st.code, 0, st.stderr);
    for (const n of [N10, N11, N12]) {
      assert.equal(cell(st.stdout, n, "ERRORS"), `memberID:${b.alarmMember} alarm:NOSPACE`);
    }
    const list = await tc(dir, N11, ["etcd", "alarm", "list"]);
    const rows = cells(list.stdout.trimEnd());
    assert.deepEqual(rows[0], ["NODE", "MEMBER", "ALARM"]);
    assert.equal(rows.length, 2, list.stdout);
    assert.equal(cell(list.stdout, N11, "ALARM"), "NOSPACE");
    const d = await diagnose(dir);
    assert.equal(d.verdict, "nospace", d.reasons.join("\n"));
  },
);

real(
  "lab break --mode quorum-lost: the survivor has no leader; diagnose says rebuild",
  async (dir) => {
    await breakCluster(dir, 0, "quorum-lost");
    const st = await tc(dir, N12, ["etcd", "status"]);
    assert.equal(cell(st.stdout, N12, "LEADER"), "0000000000000000");
    assert.equal(cell(st.stdout, N12, "ERRORS"), "etcdserver: no leader");
    const members = await tc(dir, N12, ["etcd", "members"]);
    assert.match(
      members.stderr,
      /127\.0\.53\.12: rpc error: code = Unknown desc = etcdserver: no leader/,
    );
    const d = await diagnose(dir);
    assert.equal(d.verdict, "rebuild", d.reasons.join("\n"));
  },
);

real("lab break (the incident): diagnose says rebuild", async (dir) => {
  await breakCluster(dir);
  const d = await diagnose(dir);
  assert.equal(d.verdict, "rebuild", d.reasons.join("\n"));
});

real(
  "e2e: replace on a bad member keeps every key and never restarts a healthy member",
  async (dir) => {
    await breakCluster(dir, 0, "bad-member");
    const pidsBefore = await memberPids(dir);
    assert.deepEqual(Object.keys(pidsBefore), [N10, N11]);
    const writer = startWriter(dir, Object.keys(pidsBefore));
    const out = join(scratch(dir), "out");
    const r = await task(dir, "replace", ["--yes", "--out", out, "--timeout", "1m"]);
    const during = await writer.stop();
    assert.equal(r.code, 0, r.stderr.split("\n").slice(-30).join("\n"));
    assert.ok(during.size > 0, "keys were written during the replacement");
    for (const c of await proveInPlace(dir, { pidsBefore, replaced: [N12], during })) {
      assert.ok(c.ok, `${c.name}: ${c.detail}`);
    }
    const resets = r.stderr.split("\n").filter((l) => /^\+ .* reset /.test(l));
    assert.equal(resets.length, 1, resets.join("\n"));
    assert.match(resets[0], /-n 127\.0\.53\.12 reset/, "only the bad node is reset");
  },
);

real(
  "e2e: defrag on each member and disarm clear NOSPACE: writes work again, no member restarted",
  async (dir) => {
    await breakCluster(dir, 0, "nospace");
    const pidsBefore = await memberPids(dir);
    const size = async (n: string) =>
      cell((await tc(dir, n, ["etcd", "status"])).stdout, n, "DB SIZE");
    const before = await size(N11);
    for (const n of [N10, N12, N11]) {
      assert.deepEqual(await tc(dir, n, ["etcd", "defrag"]), { stdout: "", stderr: "", code: 0 });
    }
    assert.notEqual(await size(N11), before, "the defrag shrank the db file");
    const disarm = await tc(dir, N11, ["etcd", "alarm", "disarm"]);
    assert.equal(disarm.code, 0, disarm.stderr);
    assert.equal((await tc(dir, N11, ["etcd", "alarm", "list"])).stdout, "");
    for (const c of await proveInPlace(dir, { pidsBefore, replaced: [], during: new Map() })) {
      assert.ok(c.ok, `${c.name}: ${c.detail}`);
    }
    const d = await diagnose(dir);
    assert.equal(d.verdict, "healthy", d.reasons.join("\n"));
  },
);

real(
  "etcd 3.5's CORRUPT alarm names member 0: the alarm list shows it as the sample",
  async (dir) => {
    const port = state(dir).nodes[1].clientPort;
    const r = await gw(port, "maintenance/alarm", {
      action: "ACTIVATE",
      memberID: "0",
      alarm: "CORRUPT",
    });
    assert.ok(r.ok, JSON.stringify(r));
    const list = await tc(dir, N11, ["etcd", "alarm", "list"]);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      cells(list.stdout),
      cells(asLab(sample("etcd-alarm-list.corrupt-member0.txt")).replaceAll(N10, N11)),
    );
  },
);

// ---- the model backend (no etcd needed): the same verdicts ------------------------------

const EXPECTED: Record<BreakMode, { verdict: string; replace: string[] }> = {
  incident: { verdict: "rebuild", replace: [] },
  "bad-member": { verdict: "replace", replace: [N12] },
  nospace: { verdict: "nospace", replace: [] },
  "quorum-lost": { verdict: "rebuild", replace: [] },
};

for (const mode of Object.keys(EXPECTED) as BreakMode[]) {
  Deno.test(`lab break --mode ${mode} (model): diagnose says ${EXPECTED[mode].verdict}`, async () => {
    const backend: Backend = "model";
    await withLab({ backend, speed: 1000 }, async (dir) => {
      await load(dir);
      await breakCluster(dir, 0, mode);
      const d = await diagnose(dir);
      assert.equal(d.verdict, EXPECTED[mode].verdict, d.reasons.join("\n"));
      assert.deepEqual(d.replace, EXPECTED[mode].replace);
    });
  });
}

Deno.test("every process a lab of this file started is stopped (by PID)", () => {
  assert.deepEqual(leftoverProcs(), []);
});
