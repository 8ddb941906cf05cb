/**
 * The printed plan (lib/talos/plan.ts): it reads like a runbook (helpers at the top, short lines),
 * and its helpers do what the tool does: they are run here, in bash, against a strict fake
 * talosctl that answers each call from a numbered script and fails on a call it has no answer
 * for. Nothing but bash and the fake runs.
 */

import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { main as recover } from "../tasks/recover.ts";
import {
  bootstrapFromPlan,
  copyDbPlan,
  etcdIsPlan,
  etcdRestoredPlan,
  joiningPlan,
  noLearnerPlan,
  planScript,
  talosPlan,
  waitForPlan,
} from "../lib/talos/plan.ts";
import { fakeWorld, fx } from "./replay.ts";
import { main as verify } from "../tasks/08_verify.ts";
import { NODES_FLAG } from "./scenario.ts";

interface Answer {
  stdout?: string;
  stderr?: string;
  code?: number;
}

/** A fake talosctl: call N gets answers[N-1]; any call beyond them exits 99 ("unexpected"). */
function fakeTalosctl(answers: Answer[]): { bin: string; calls: () => string[] } {
  const dir = mkdtempSync(join(tmpdir(), "plan-test-"));
  answers.forEach((a, i) => {
    writeFileSync(join(dir, `${i + 1}.out`), a.stdout ?? "");
    writeFileSync(join(dir, `${i + 1}.err`), a.stderr ?? "");
    writeFileSync(join(dir, `${i + 1}.code`), String(a.code ?? 0));
  });
  const bin = join(dir, "talosctl");
  writeFileSync(
    bin,
    `#!/usr/bin/env bash
d=${JSON.stringify(dir)}
n=$(( $(cat "$d/count" 2>/dev/null || echo 0) + 1 )); echo "$n" > "$d/count"
echo "$*" >> "$d/calls"
[ -f "$d/$n.code" ] || { echo "unexpected call $n: $*" >&2; exit 99; }
cat "$d/$n.out"; cat "$d/$n.err" >&2; exit "$(cat "$d/$n.code")"
`,
  );
  chmodSync(bin, 0o755);
  const calls = () => {
    try {
      return readFileSync(join(dir, "calls"), "utf8").trim().split("\n").filter(Boolean);
    } catch {
      return [];
    }
  };
  return { bin, calls };
}

async function bash(script: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("bash", { args: ["-c", script] }).output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

const N = "192.168.53.10";
const TC = ["--talosconfig", "/etc/talos/config"];
const ENDPOINT = `--talosconfig /etc/talos/config -e ${N} -n ${N}`;

Deno.test("the printed plan has its helpers at the top, no line over 120 characters, and bash -n accepts it", async () => {
  const w = fakeWorld([]);
  const code = await recover(
    [...NODES_FLAG, "--seed", "192.168.53.10", "--vip", "192.168.53.2", "--dry-run"],
    w.deps,
  );
  assert.equal(code, 0);
  assert.deepEqual(w.replay.calls, []);
  const plan = w.stdout();
  const firstAction = plan.indexOf("\nmkdir -p ");
  assert.ok(firstAction > 0, plan);
  const helpers = ["talos", "copy_db", "wait_for", "etcd_is", "etcd_restored", "bootstrap_from"];
  for (const helper of [...helpers, "no_learner"]) {
    const defined = plan.indexOf(`\n${helper}() {`);
    assert.ok(defined > 0 && defined < firstAction, `${helper} is defined above the plan`);
  }
  assert.deepEqual(plan.split("\n").filter((l) => l.length > 120), [], "no line over 120");
  assert.doesNotMatch(plan.slice(firstAction), /^until |deadline=/m, "no inline wait loop below");
  assert.equal((await bash(`bash -n <<'PLAN'\n${plan}PLAN`)).code, 0, "the plan is valid bash");
});

Deno.test("the plan stops before the wipe while a copy is unusable: status runs as the gate, with --seed too, and once", async () => {
  for (const seed of [["--seed", "192.168.53.10"], []]) {
    const w = fakeWorld([]);
    assert.equal(await recover([...NODES_FLAG, ...seed, "--dry-run"], w.deps), 0);
    const plan = w.stdout();
    const wipe = plan.indexOf(" reset --system-labels-to-wipe EPHEMERAL");
    const gate = plan.search(/^(SEED=\$\()?deno task status /m);
    assert.ok(gate > 0 && gate < wipe, `status runs before the first reset:\n${plan}`);
    assert.equal(plan.match(/^(SEED=\$\()?deno task status /gm)?.length, 1, "one gate");
    assert.equal(plan.match(/^set -euo pipefail$/m)?.length, 1, "set -e makes its exit 2 stop");
  }
});

Deno.test("a plan that needs no talosctl call prints no helper", () => {
  const script = planScript(["talosctl"], ["etcdutl snapshot status db -w json"]);
  assert.equal(
    script,
    "#!/usr/bin/env bash\nset -euo pipefail\netcdutl snapshot status db -w json\n",
  );
});

Deno.test("talos NODE names the node as endpoint and node, with --talosconfig", async () => {
  const fake = fakeTalosctl([{ stdout: fx("etcd-members.txt") }]);
  const r = await bash(planScript([fake.bin, ...TC], [talosPlan(N, ["etcd", "members"])]));
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(fake.calls(), [`${ENDPOINT} etcd members`]);
  assert.equal(r.stdout, fx("etcd-members.txt"));
});

Deno.test("wait_for retries etcd_is through a reboot's connection refused until Preparing", async () => {
  const fake = fakeTalosctl([
    { stderr: fx("service-etcd.connection-refused.direct.err.txt"), code: 1 },
    { stdout: fx("service-etcd.waiting.txt") },
    { stdout: fx("service-etcd.preparing.txt") },
  ]);
  const line = waitForPlan(`${N} wiped`, 60, etcdIsPlan(N, "STATE", "Preparing"));
  const r = await bash(planScript([fake.bin, ...TC], [line, "echo done"]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "done\n");
  assert.deepEqual(fake.calls(), Array(3).fill(`${ENDPOINT} service etcd`));
});

Deno.test("wait_for stops the plan at its deadline, saying what it waited for", async () => {
  const fake = fakeTalosctl([{ stdout: fx("service-etcd.waiting.txt") }]);
  const line = waitForPlan(`etcd on ${N} to be Preparing`, 0, etcdIsPlan(N, "STATE", "Preparing"));
  const r = await bash(planScript([fake.bin], [line, "echo not reached"]));
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, `timed out after 0s waiting for etcd on ${N} to be Preparing\n`);
  assert.equal(fake.calls().length, 1);
});

Deno.test("bootstrap_from retries every 'not yet' answer and goes on once accepted", async () => {
  const fake = fakeTalosctl([
    { stderr: fx("bootstrap.not-available.err.txt"), code: 1 },
    { stderr: fx("bootstrap.recover-not-ready.err.txt"), code: 1 },
    { stdout: fx("bootstrap.recover.txt") },
  ]);
  const line = waitForPlan("the bootstrap", 60, bootstrapFromPlan(N, "out dir/db.x/db"));
  const r = await bash(planScript([fake.bin], [line, "echo accepted"]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "accepted\n");
  const call = `-e ${N} -n ${N} bootstrap --recover-from=out dir/db.x/db --recover-skip-hash-check`;
  assert.deepEqual(fake.calls(), Array(3).fill(call));
});

Deno.test("bootstrap_from stops the plan at once on an answer that is not 'not yet'", async () => {
  const fake = fakeTalosctl([{ stderr: "error: etcd data directory is not empty", code: 1 }]);
  const line = waitForPlan("the bootstrap", 60, bootstrapFromPlan(N, "db"));
  const r = await bash(planScript([fake.bin], [line, "echo not reached"]));
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /etcd data directory is not empty/);
  assert.equal(fake.calls().length, 1, "not retried");
});

Deno.test("etcd_restored stops the plan on Failed, printing the service's events", async () => {
  const fake = fakeTalosctl([{ stdout: fx("service-etcd.failed-missing-hash.txt") }]);
  const line = waitForPlan("the restore", 60, etcdRestoredPlan(N));
  const r = await bash(planScript([fake.bin], [line, "echo not reached"]));
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.ok(r.stderr.includes(fx("service-etcd.failed-missing-hash.txt").trim()), r.stderr);
});

Deno.test("etcd_restored waits through Preparing until Running with HEALTH OK", async () => {
  const fake = fakeTalosctl([
    { stdout: fx("service-etcd.preparing.txt") },
    { stdout: fx("service-etcd.running-ok.txt") },
  ]);
  const line = waitForPlan("the restore", 60, etcdRestoredPlan(N));
  const r = await bash(planScript([fake.bin], [line, "echo restored"]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "restored\n");
  assert.equal(fake.calls().length, 2);
});

Deno.test("no_learner waits while the seed lists a learner", async () => {
  const fake = fakeTalosctl([
    { stdout: fx("etcd-members.learner.txt") },
    { stdout: fx("etcd-members.txt") },
  ]);
  const line = waitForPlan("promotion", 60, noLearnerPlan(N));
  const r = await bash(planScript([fake.bin], [line, "echo voters"]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "voters\n");
  assert.deepEqual(fake.calls(), Array(2).fill(`-e ${N} -n ${N} etcd members`));
});

Deno.test("copy_db copies into DIR.partial and moves it to DIR only when cp succeeded", async () => {
  const dir = mkdtempSync(join(tmpdir(), "plan-copy-"));
  const ok = fakeTalosctl([{ stdout: "" }]);
  const made = await bash(planScript([ok.bin], [
    `mkdir -p ${dir}/db.a.partial`, // what the fake's cp would have made
    copyDbPlan(N, `${dir}/db.a`),
  ]));
  assert.equal(made.code, 0, made.stderr);
  assert.deepEqual(ok.calls(), [
    `-e ${N} -n ${N} cp /var/lib/etcd/member/snap/db ${dir}/db.a.partial`,
  ]);
  assert.equal((await bash(`test -d ${dir}/db.a && test ! -e ${dir}/db.a.partial`)).code, 0);
  const failing = fakeTalosctl([{ stderr: "error: file exists", code: 1 }]);
  const failed = await bash(planScript([failing.bin], [copyDbPlan(N, `${dir}/db.b`)]));
  assert.equal(failed.code, 1);
  assert.equal((await bash(`test ! -e ${dir}/db.b`)).code, 0, "no half copy at DIR");
});

Deno.test("joining waits while the node is Preparing and no learner holds the slot; a learner elsewhere counts", async () => {
  const fake = fakeTalosctl([
    { stdout: fx("service-etcd.preparing.txt") }, // the node
    { stdout: fx("etcd-members.seed-only.txt") }, // the seed: no learner
    { stdout: fx("service-etcd.preparing.txt") },
    { stdout: fx("etcd-members.learner.txt") }, // another node is the learner: waiting its turn
  ]);
  const line = waitForPlan("joining", 60, joiningPlan(N, "192.168.53.11"));
  const r = await bash(planScript([fake.bin], [line, "echo joining"]));
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, "joining\n");
  assert.equal(fake.calls().length, 4);
});

Deno.test("a node not joining within the grace is rebooted by the plan: wait_for fails in its subshell", async () => {
  const fake = fakeTalosctl([
    { stdout: fx("service-etcd.preparing.txt") },
    { stdout: fx("etcd-members.seed-only.txt") },
    { stdout: fx("reboot.nowait.txt") },
  ]);
  const wait = waitForPlan("joining", 0, joiningPlan(N, "192.168.53.11"));
  const r = await bash(planScript([fake.bin], [
    `if ! (${wait}); then`,
    `  ${talosPlan(N, ["reboot", "--wait=false"])}`,
    "fi",
    "echo went on",
  ]));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /timed out after 0s waiting for joining/);
  assert.deepEqual(fake.calls().at(-1), `-e ${N} -n ${N} reboot --wait=false`);
  assert.equal(r.stdout.trim().split("\n").at(-1), "went on");
});

Deno.test("the plan's Step 8 checks: every node a voter, no alarm, the VIP on exactly one node", async () => {
  const w = fakeWorld([]);
  const nodes = ["192.168.53.10", "192.168.53.11", "192.168.53.12"];
  assert.equal(
    await verify(["--nodes", nodes.join(","), "--vip", "192.168.53.2", "--dry-run"], w.deps),
    0,
  );
  const lines = w.stdout().split("\n");
  const step8 = lines.slice(lines.findIndex((l) => l.startsWith("# Step 8")))
    .filter((l) => l !== "" && !l.startsWith("kubectl ")); // no kubectl here
  const members = { stdout: fx("etcd-members.txt") };
  const ok = { stdout: fx("service-etcd.running-ok.txt") };
  const run = async (vipOn: number[]) => {
    const fake = fakeTalosctl([
      members,
      ...nodes.flatMap(() => [members, ok]), // voter: members, then etcd HEALTH OK
      { stdout: "" }, // alarm list: empty
      ...nodes.map((_, i) => ({
        stdout: fx(vipOn.includes(i) ? "get-addresses.vip-holder.txt" : "get-addresses.no-vip.txt"),
      })),
    ]);
    return { ...(await bash(planScript([fake.bin], step8))), calls: fake.calls() };
  };
  const one = await run([1]);
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.calls.length, 1 + 6 + 1 + 3);
  const two = await run([0, 1]);
  assert.notEqual(two.code, 0, "two VIP holders fail the plan");
  const none = await run([]);
  assert.notEqual(none.code, 0, "no VIP holder fails the plan");
});
