import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { main as recover } from "../tasks/recover.ts";
import { fakeWorld, fx } from "./replay.ts";
import {
  brokenClusterRecs,
  fxFor,
  makeCopies,
  NODES,
  NODES_FLAG,
  preflightRecs,
  rec,
  statusRecs,
  T,
  tempOut,
} from "./scenario.ts";
import { main as wipe } from "../tasks/03_wipe.ts";

const WORKER = "192.168.53.21";

Deno.test("pre-flight refuses a worker address before anything is copied or changed", async () => {
  const out = tempOut();
  const nodes = [...NODES.slice(0, 2), WORKER];
  const w = fakeWorld([
    ...preflightRecs(NODES.slice(0, 2)),
    { cmd: T(WORKER, "version"), stdout: fxFor("version.txt", WORKER) },
    {
      cmd: T(WORKER, "service", "etcd"),
      stderr: fx("service-etcd.not-registered.err.txt"),
      code: 1,
    },
  ]);
  const code = await recover(["--nodes", nodes.join(","), "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(w.stderr(), /"192\.168\.53\.21" runs no etcd: a worker, not a control-plane node/);
  assert.deepEqual(w.replay.callsMatching(/ cp | reset /), []);
});

Deno.test("pre-flight refuses a node that does not answer, naming it", async () => {
  const out = tempOut();
  const down = NODES[2];
  const w = fakeWorld([
    ...preflightRecs(NODES.slice(0, 2)),
    {
      cmd: T(down, "version"),
      stderr: fxFor("service-etcd.connection-refused.direct.err.txt", down).replace(
        "error listing services",
        "error getting version",
      ),
      code: 1,
    },
  ]);
  const code = await recover([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 2);
  w.replay.assertDone();
  assert.match(w.stderr(), /"192\.168\.53\.12" does not answer: .*connection refused/);
});

Deno.test("pre-flight refuses an Omni talosconfig unless --force, one line per finding", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ter-tc-"));
  const config = join(dir, "talosconfig");
  writeFileSync(
    config,
    "context: omni\ncontexts:\n  omni:\n    endpoints:\n      - https://acme.omni.siderolabs.io\n    auth:\n      siderov1:\n        identity: sre@example.com\n",
  );
  const out = tempOut();
  const w = fakeWorld(preflightWith(config));
  const code = await recover(
    [...NODES_FLAG, "--out", out, "--talosconfig", config, "--yes"],
    w.deps,
  );
  assert.equal(code, 2);
  assert.match(w.stderr(), /is Omni's \(siderov1 \/ omni endpoint\): recover through Omni/);
  assert.match(w.stderr(), /ok: 192\.168\.53\.10: control-plane node, Talos v1\.13\.9/);
  assert.match(w.stderr(), /ok: 3 nodes: quorum is 2/);
  assert.deepEqual(w.replay.callsMatching(/ cp /), []);
  // every talosctl call carries the talosconfig
  assert.ok(w.replay.calls.every((c) => c.startsWith(`talosctl --talosconfig ${config} -e `)));
});

Deno.test("pre-flight refuses a --talosconfig that does not exist", async () => {
  const out = tempOut();
  const w = fakeWorld(preflightWith("/nonexistent/tc"));
  const code = await recover(
    [...NODES_FLAG, "--out", out, "--talosconfig", "/nonexistent/tc", "--yes"],
    w.deps,
  );
  assert.equal(code, 2);
  assert.match(w.stderr(), /--talosconfig \/nonexistent\/tc does not exist/);
});

function preflightWith(config: string) {
  return NODES.flatMap((n) => [
    {
      cmd: `talosctl --talosconfig ${config} -e ${n} -n ${n} version`,
      stdout: fxFor("version.txt", n),
    },
    {
      cmd: `talosctl --talosconfig ${config} -e ${n} -n ${n} service etcd`,
      stdout: fxFor("service-etcd.running-ok.txt", n),
    },
  ]);
}

Deno.test("a node with a dedicated ETCD partition is wiped with --system-labels-to-wipe ETCD too", async () => {
  const out = tempOut();
  makeCopies(out);
  const dedicated = "192.168.53.12";
  const w = fakeWorld([
    ...preflightRecs().map((r) =>
      r.cmd === T(dedicated, "get", "volumestatus", "ETCD")
        ? rec.etcdVolume(dedicated, "partition")
        : r
    ),
    ...statusRecs(out),
    ...brokenClusterRecs(),
    rec.reset("192.168.53.10"),
    rec.reset("192.168.53.11"),
    {
      cmd: T(
        dedicated,
        "reset",
        "--system-labels-to-wipe",
        "EPHEMERAL",
        "--system-labels-to-wipe",
        "ETCD",
        "--graceful=false",
        "--reboot",
        "--wait=false",
      ),
    },
    ...NODES.flatMap((n) => [rec.refused(n), rec.service(n, "service-etcd.preparing.txt")]),
  ]);
  const code = await wipe([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /192\.168\.53\.12: etcd has a dedicated ETCD partition/);
});

Deno.test("pre-flight refuses an --out with less than 256 MiB free, saying where to find room", async () => {
  const out = tempOut();
  const w = fakeWorld(preflightRecs(), { freeBytes: 100 * 1024 ** 2 });
  const code = await recover([...NODES_FLAG, "--out", out, "--yes"], w.deps);
  assert.equal(code, 2, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /error: Pre-flight refused: only 105 MB free for .*out\n/);
  assert.equal(w.stderr().match(/only 105 MB free/g)?.length, 1, "said once");
  assert.match(w.stderr(), /next: free space there, or pass an --out on a filesystem with room/);
  assert.doesNotMatch(
    w.stderr(),
    /check --nodes/,
    "the nodes are fine: do not send the operator there",
  );
  assert.deepEqual(w.replay.callsMatching(/ cp | reset /), []);
});

Deno.test("pre-flight warns when --out holds less than 2 GiB per node, and goes on", async () => {
  const out = tempOut();
  makeCopies(out);
  const w = fakeWorld([...preflightRecs(), ...statusRecs(out), ...brokenClusterRecs()], {
    freeBytes: 3 * 1024 ** 3,
  });
  // No terminal and no --yes: wipe goes on to print its plan, and resets nothing.
  const code = await wipe([...NODES_FLAG, "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  assert.match(w.stderr(), /warning: 3\.2 GB free for .*: enough only for dbs under 1\.1 GB each/);
  assert.deepEqual(w.replay.callsMatching(/ reset /), []);
});
