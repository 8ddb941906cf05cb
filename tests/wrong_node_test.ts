/**
 * The wrong node, or the wrong moment: steps run one by one must not restore older data,
 * reboot the node that holds the restored etcd, or wipe it again; Ctrl-C at the prompt stops.
 */

import assert from "node:assert/strict";
import { main as bootstrap } from "../tasks/05_bootstrap.ts";
import { main as rejoin } from "../tasks/07_rejoin.ts";
import { main as wipe } from "../tasks/03_wipe.ts";
import { main as recover } from "../tasks/recover.ts";
import { fakeWorld } from "./replay.ts";
import {
  brokenClusterRecs,
  corruptWithLeaderRecs,
  fullRecoveryRecs,
  makeCopies,
  NODES_FLAG,
  preflightRecs,
  rec,
  recordSeed,
  SEED,
  statusRecs,
  tempOut,
  VIP,
} from "./scenario.ts";

const N10 = "192.168.53.10";

Deno.test("bootstrap --seed of an older copy is refused like wipe refuses it, nothing sent", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = fakeWorld(statusRecs(out));
  const code = await bootstrap([...NODES_FLAG, "--out", out, "--seed", N10, "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /Seed "192\.168\.53\.10" has revision 1843302, but "192\.168\.53\.11" has 1843517/,
  );
  assert.deepEqual(w.replay.callsMatching(/ bootstrap /), []);
});

Deno.test("rejoin uses the seed the journal recorded and refuses another --seed", async () => {
  const out = tempOut();
  makeCopies(out);
  recordSeed(out, SEED);
  const w = fakeWorld([]);
  const code = await rejoin([...NODES_FLAG, "--out", out, "--seed", N10, "--yes"], w.deps);
  assert.equal(code, 2);
  assert.deepEqual(w.replay.calls, []);
  assert.match(
    w.stderr(),
    /--seed 192\.168\.53\.10 differs from the seed the earlier steps used, 192\.168\.53\.11/,
  );
});

Deno.test("rejoin refuses when the seed's etcd is not running: it would reboot the restored node", async () => {
  const out = tempOut();
  const w = fakeWorld([rec.service(N10, "service-etcd.preparing.txt")]);
  const code = await rejoin([...NODES_FLAG, "--out", out, "--seed", N10, "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(w.stderr(), /etcd on the seed "192\.168\.53\.10" is Preparing/);
  assert.deepEqual(w.replay.callsMatching(/ reboot /), []);
});

Deno.test("wipe refuses after a bootstrap succeeded (journal), pointing to recover to resume", async () => {
  const out = tempOut();
  const first = fakeWorld(fullRecoveryRecs(out));
  assert.equal(await recover([...NODES_FLAG, "--vip", VIP, "--out", out, "--yes"], first.deps), 0);
  // Refused before the pre-flight asks anything; with a partial --nodes, the hint names the
  // recovery's own list (recover refuses another one).
  const w = fakeWorld([]);
  const code = await wipe(
    ["--nodes", "192.168.53.10,192.168.53.11", "--out", out, "--yes"],
    w.deps,
  );
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.deepEqual(w.replay.calls, []);
  assert.match(w.stderr(), /Refusing to wipe: .*journal\.jsonl records a bootstrap that succeeded/);
  assert.match(
    w.stderr(),
    /continue with deno task recover --nodes 192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12 /,
  );
});

Deno.test("Ctrl-C at the [y/N] prompt exits 130 at once and resets nothing", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = fakeWorld([...preflightRecs(), ...statusRecs(out), ...brokenClusterRecs()], {
    terminal: true,
  });
  w.deps.ask = () => {
    w.interrupt(); // the operator presses Ctrl-C instead of answering
    return new Promise(() => {}); // the read never returns
  };
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 130);
  assert.match(w.stderr(), /Interrupted at the prompt: did not wipe etcd on/);
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);
  assert.match(w.stderr(), /cluster state: unchanged by this run/);
  // Stopped before the wipe named its own way on: the same command again.
  assert.match(
    w.stderr(),
    /to continue: deno task wipe --nodes 192\.168\.53\.10,192\.168\.53\.11,192\.168\.53\.12 (--seed \S+ )?--out \S+\n/,
  );
});

Deno.test("the dry-run of every step is valid bash with a space and a quote in --out, no --seed", async () => {
  const out = "/srv/incident 42/o'ut";
  for (const task of [wipe, bootstrap, rejoin, recover]) {
    const w = fakeWorld([]);
    assert.equal(await task([...NODES_FLAG, "--out", out, "--dry-run"], w.deps), 0);
    assert.deepEqual(w.replay.calls, []);
    const check = new Deno.Command("bash", { args: ["-n"], stdin: "piped", stderr: "piped" })
      .spawn();
    const writer = check.stdin.getWriter();
    await writer.write(new TextEncoder().encode(w.stdout()));
    await writer.close();
    const result = await check.output();
    assert.equal(result.code, 0, `${w.stdout()}\n${new TextDecoder().decode(result.stderr)}`);
  }
});

Deno.test("wipe refuses when etcd lists a member that is not in --nodes", async () => {
  const out = tempOut();
  const two = ["192.168.53.10", SEED];
  makeCopies(out, two);
  const w = fakeWorld([
    ...preflightRecs(two),
    ...statusRecs(out, two),
    ...corruptWithLeaderRecs(two),
  ]);
  const code = await wipe(["--nodes", two.join(","), "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(
    w.stderr(),
    /etcd lists members that are not in --nodes: talos-cp-3 \(https:\/\/192\.168\.53\.12:2380\)/,
  );
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);
});
