import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { main } from "../tasks/01_extract.ts";
import { fakeWorld, fx, type Recording } from "./replay.ts";

const NODES = ["192.168.53.10", "192.168.53.11", "192.168.53.12"];

function cpRec(out: string, node: string, body = `db of ${node}`): Recording {
  const partial = join(out, `db.${node}.partial`);
  return {
    cmd: `talosctl -e ${node} -n ${node} cp /var/lib/etcd/member/snap/db ${partial}`,
    stdout: fx("cp.txt"),
    effect: () => {
      mkdirSync(partial, { recursive: true });
      writeFileSync(join(partial, "db"), body);
    },
  };
}

Deno.test("extract copies every node concurrently, records sha256, keeps 0600 files in 0700 folders", async () => {
  const out = join(mkdtempSync(join(tmpdir(), "ter-")), "out");
  const w = fakeWorld(NODES.map((n) => cpRec(out, n)));
  const code = await main(["--nodes", NODES.join(","), "--out", out], w.deps);
  assert.equal(code, 0, w.stderr());
  w.replay.assertDone();
  const manifest = JSON.parse(readFileSync(join(out, "manifest.json"), "utf8"));
  for (const n of NODES) {
    const file = join(out, `db.${n}`, "db");
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(join(out, `db.${n}`)).mode & 0o777, 0o700);
    assert.equal(manifest.copies[n].size, `db of ${n}`.length);
    assert.match(manifest.copies[n].sha256, /^[0-9a-f]{64}$/);
  }
  assert.equal(statSync(out).mode & 0o777, 0o700);
  assert.match(w.stderr(), /\+ talosctl -e 192\.168\.53\.10 -n 192\.168\.53\.10 cp/);
  assert.ok(existsSync(join(out, "journal.jsonl")));
  assert.match(
    w.stderr(),
    /holds raw etcd copies \(every Secret of the cluster, unencrypted\): keep it private, and delete it once the incident is closed\n$/,
  );
});
