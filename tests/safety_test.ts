import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { main as wipe } from "../tasks/03_wipe.ts";
import { main as recover } from "../tasks/recover.ts";
import { fakeWorld, type Recording } from "./replay.ts";
import {
  brokenClusterRecs,
  healthyClusterRecs,
  makeCopies,
  NODES,
  NODES_FLAG,
  P,
  preflightRecs,
  rec,
  SEED,
  statusRecs,
  tempOut,
  wipeRecs,
} from "./scenario.ts";

const RESET = / reset /;

function wipeWorld(_out: string, recordings: Recording[], answers?: string[]) {
  return fakeWorld([...preflightRecs(), ...recordings], answers ? { answers } : {});
}

Deno.test("wipe refuses when the seed's copy no longer matches its sha256, even with --force", async () => {
  const out = tempOut();
  makeCopies(out);
  writeFileSync(join(out, `db.${SEED}`, "db"), `RAW db of ${SEED}`); // same size, other bytes
  const others = NODES.filter((n) => n !== SEED);
  const w = wipeWorld(out, statusRecs(out, others));
  const code = await wipe(
    [...NODES_FLAG, "--out", out, "--seed", SEED, "--yes", "--force"],
    w.deps,
  );
  assert.equal(code, 2);
  assert.match(
    w.stderr(),
    /Cannot use seed "192\.168\.53\.11": its copy is not usable \(sha256 differs/,
  );
  assert.deepEqual(w.replay.callsMatching(RESET), []);
  w.replay.assertDone();
});

Deno.test("wipe refuses while a node's copy is missing, naming it; --force goes on", async () => {
  const out = tempOut();
  makeCopies(out);
  rmSync(join(out, "db.192.168.53.12"), { recursive: true });
  const others = NODES.filter((n) => n !== "192.168.53.12");
  const w = wipeWorld(out, statusRecs(out, others));
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  assert.match(w.stderr(), /Refusing to wipe: no usable copy from "192\.168\.53\.12" \(unreadable/);
  assert.match(
    w.stderr(),
    /next: run extract again with the same --out for a missing copy; or pass --force to go on without it/,
  );
  assert.deepEqual(w.replay.callsMatching(RESET), []);
  w.replay.assertDone();

  const forced = wipeWorld(out, [
    ...statusRecs(out, others),
    ...brokenClusterRecs(),
    ...wipeRecs(),
  ]);
  const forcedCode = await wipe([...NODES_FLAG, "--out", out, "--yes", "--force"], forced.deps);
  assert.equal(forcedCode, 0, forced.stderr());
  assert.match(forced.stderr(), /going on without a usable copy from "192\.168\.53\.12"/);
  assert.equal(forced.replay.callsMatching(RESET).length, 3);
  forced.replay.assertDone();
});

Deno.test("wipe refuses a --seed below the highest revision, naming the better node", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = wipeWorld(out, statusRecs(out));
  const code = await wipe(
    [...NODES_FLAG, "--out", out, "--seed", "192.168.53.10", "--yes"],
    w.deps,
  );
  assert.equal(code, 2);
  assert.match(
    w.stderr(),
    /Seed "192\.168\.53\.10" has revision 1843302, but "192\.168\.53\.11" has 1843517/,
  );
  assert.match(w.stderr(), /use --seed 192\.168\.53\.11/);
  assert.deepEqual(w.replay.callsMatching(RESET), []);
  w.replay.assertDone();
});

Deno.test("wipe refuses a healthy cluster (no alarms, every member voting) unless --force", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = wipeWorld(out, [...statusRecs(out), ...healthyClusterRecs()]);
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  assert.match(
    w.stderr(),
    /Refusing to wipe a healthy cluster: "192\.168\.53\.11" lists no alarms and 3 voting members/,
  );
  assert.deepEqual(w.replay.callsMatching(RESET), []);
  w.replay.assertDone();
});

Deno.test("wipe on a terminal asks, naming the nodes; no means exit 3 and nothing reset", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = wipeWorld(out, [...statusRecs(out), ...brokenClusterRecs()], ["n"]);
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 3);
  assert.match(
    w.stderr(),
    /About to wipe etcd on 192\.168\.53\.10, 192\.168\.53\.11, 192\.168\.53\.12 \(seed 192\.168\.53\.11\)\. Continue\? \[y\/N\]/,
  );
  assert.deepEqual(w.replay.callsMatching(RESET), []);
  w.replay.assertDone();
});

Deno.test("recover without --yes and without a terminal prints the plan, contacts nothing, exits 0", async () => {
  const out = tempOut();
  const w = fakeWorld([]);
  const code = await recover([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0);
  assert.deepEqual(w.replay.calls, []);
  assert.match(w.stdout(), /^#!\/usr\/bin\/env bash/);
  assert.match(
    w.stdout(),
    /reset --system-labels-to-wipe EPHEMERAL --graceful=false --reboot --wait=false/,
  );
  assert.match(w.stderr(), /No terminal \(stdin or stderr is not one.*\) and no --yes/);
  assert.equal(existsSync(out), false, "a plan-only run leaves no OUT behind");

  // With an OUT of an earlier run, the report says a plan was printed, not "success".
  mkdirSync(out, { recursive: true });
  makeCopies(out);
  const again = fakeWorld([]);
  assert.equal(await recover([...NODES_FLAG, "--out", out], again.deps), 0);
  assert.match(
    readFileSync(join(out, "report.md"), "utf8"),
    /Outcome of the last run \(`recover`\): plan printed \(no terminal, no --yes\): nothing changed/,
  );
});

Deno.test("recover --dry-run prints every step with the real values and runs nothing", async () => {
  const out = "/srv/incident 42/etcd";
  const w = fakeWorld([]);
  const code = await recover(
    [...NODES_FLAG, "--seed", "192.168.53.10", "--out", out, "--vip", "192.168.53.2", "--dry-run"],
    w.deps,
  );
  assert.equal(code, 0);
  assert.deepEqual(w.replay.calls, []);
  const plan = w.stdout();
  for (const n of NODES) {
    assert.ok(
      plan.includes(
        `copy_db ${n} '/srv/incident 42/etcd/db.${n}'`,
      ),
    );
    assert.ok(
      plan.includes(
        P(
          n,
          "reset",
          "--system-labels-to-wipe",
          "EPHEMERAL",
          "--graceful=false",
          "--reboot",
          "--wait=false",
        ),
      ),
    );
  }
  assert.ok(
    plan.includes(
      `bootstrap_from 192.168.53.10 '/srv/incident 42/etcd/db.192.168.53.10/db'`,
    ),
  );
  assert.ok(plan.includes(P("192.168.53.10", "etcd", "alarm", "disarm")));
  assert.ok(plan.includes(P("192.168.53.11", "reboot", "--wait=false")));
  assert.ok(
    !plan.includes(P("192.168.53.10", "reboot", "--wait=false")),
    "the seed is never rebooted",
  );
  assert.ok(plan.indexOf("192.168.53.11 reboot") < plan.indexOf("192.168.53.12 reboot"));
  assert.match(plan, /grep -qF ' 192\.168\.53\.2\/32 '/);
  // etcdutl is optional: the plan runs it only where it is installed.
  assert.match(
    plan,
    /if command -v etcdutl >\/dev\/null 2>&1; then\n( {2}etcdutl snapshot status .* -w json\n){3}fi\n/,
  );
  const check = new Deno.Command("bash", { args: ["-n"], stdin: "piped" }).spawn();
  const writer = check.stdin.getWriter();
  await writer.write(new TextEncoder().encode(plan));
  await writer.close();
  assert.equal((await check.status).code, 0, "the plan is valid bash");
});

Deno.test("recover refuses a healthy cluster before anything is reset, with exit 2", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = fakeWorld([
    ...preflightRecs(),
    ...statusRecs(out),
    ...healthyClusterRecs(),
  ]);
  const code = await recover([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  assert.match(w.stderr(), /reusing the complete extraction/);
  assert.match(w.stderr(), /Refusing to wipe a healthy cluster/);
  assert.match(w.stderr(), /cluster state: unchanged/);
  assert.deepEqual(w.replay.callsMatching(RESET), []);
  w.replay.assertDone();
});

Deno.test("a failed wipe says what state the cluster is in and how to continue", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = fakeWorld([
    ...preflightRecs(),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    rec.reset("192.168.53.10"),
    rec.reset("192.168.53.11"),
    rec.reset("192.168.53.12", {
      stderr:
        "error executing reset: 1 error occurred:\n\t* 192.168.53.12: rpc error: code = Unavailable desc = connection refused\n\n\n",
      code: 1,
    }),
  ]);
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 1);
  assert.match(w.stderr(), /Reset failed on "192\.168\.53\.12"/);
  assert.match(
    w.stderr(),
    /cluster state: reset accepted by 192\.168\.53\.10, 192\.168\.53\.11; FAILED on 192\.168\.53\.12/,
  );
  assert.match(
    w.stderr(),
    /to continue: deno task wipe --nodes 192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12/,
  );
  w.replay.assertDone();
});
