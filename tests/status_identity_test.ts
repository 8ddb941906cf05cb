/**
 * Holes a review found in the sha256 skip, kept closed: Deno reports a file's change time in
 * whole seconds, so a copy changed in the same second as its hashing with its modification time
 * put back (`touch -r`, `cp -p`, `tar x`, or a file system with whole-second times: ext4 with
 * 128-byte inodes, FAT, HFS+, some NFS/SMB mounts) must not keep its identity; and status, which
 * changes nothing, must not drop a copy another run recorded in the manifest meanwhile.
 */

import assert from "node:assert/strict";
import {
  chmodSync,
  closeSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  statSync,
  utimesSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { tmpdir } from "node:os";
import { hashWithIdentity, type Manifest, verifyCopy } from "../lib/recovery/manifest.ts";

import { main as status } from "../tasks/02_status.ts";
import { fakeWorld } from "./replay.ts";
import { makeCopies, NODES, settled, statusRecs, tempOut } from "./scenario.ts";
import { sha256File } from "../lib/db/sha256.ts";
import { writeFileSync } from "node:fs";

const FX = new URL("../fixtures/db/", import.meta.url).pathname;

Deno.test("a copy rewritten (same size, mtime put back) in the second it was hashed is not trusted as unchanged", async () => {
  for (let attempt = 1;; attempt++) {
    const out = mkdtempSync(join(tmpdir(), "identity-"));
    mkdirSync(join(out, "db.n1"));
    const file = join(out, "db.n1", "db");
    // start at the beginning of a wall-clock second, so all below happens within it
    while (Date.now() % 1000 > 20) await new Promise((go) => setTimeout(go, 5));
    const second = Math.floor(Date.now() / 1000);
    copyFileSync(join(FX, "history-a.rev41.db"), file);
    chmodSync(file, 0o600);
    await new Promise((go) => setTimeout(go, 70)); // past RACY_MS: no longer "racily" new
    const size = statSync(file).size;
    const { sha256, hashed } = await hashWithIdentity(file);
    const manifest: Manifest = {
      version: 1,
      nodes: ["n1"],
      copies: {
        n1: { file: "db.n1/db", size, sha256, copiedAt: new Date().toISOString(), hashed },
      },
      failures: {},
    } as Manifest;
    // other bytes, same size, and the modification time put back (touch -r)
    const before = statSync(file);
    const fd = openSync(file, "r+");
    writeSync(fd, readFileSync(join(FX, "history-b.rev46.db")), 0, undefined, 0);
    closeSync(fd);
    utimesSync(file, before.atime, before.mtime);
    if (Math.floor(Date.now() / 1000) !== second && attempt < 5) continue; // crossed a second
    const check = await verifyCopy(out, manifest, "n1", undefined, { trustUnchanged: true });
    assert.deepEqual(
      check.ok ? "ok" : check.reason,
      "sha256 differs from the manifest",
      "the changed copy was trusted as unchanged",
    );
    return;
  }
});

Deno.test("status (which changes nothing) does not drop a copy another run recorded in the manifest meanwhile", async () => {
  const [N10, N11, N12] = NODES;
  const out = tempOut();
  makeCopies(out); // a manifest from before the change: no identities, so status hashes and records them
  const path = join(out, "manifest.json");
  const full = JSON.parse(readFileSync(path, "utf8"));
  const record12 = full.copies[N12];
  // extract of N12 still running when status starts: the manifest holds N10 and N11
  delete full.copies[N12];
  full.nodes = [N10, N11, N12];
  writeFileSync(path, JSON.stringify(full));
  // not racily new: status records identities
  for (const n of NODES) await settled(join(out, `db.${n}`, "db"));
  const w = fakeWorld(statusRecs(out, [N10, N11]));
  let once = false;
  w.deps.db = {
    ...w.deps.db,
    sha256: async (p) => {
      if (!once) {
        once = true; // meanwhile extract records N12 (its in-memory manifest, written whole)
        const now = JSON.parse(readFileSync(path, "utf8"));
        now.copies[N12] = record12;
        writeFileSync(path, JSON.stringify(now));
      }
      return await sha256File(p);
    },
  };
  await status(["--nodes", `${N10},${N11}`, "--out", out], w.deps);
  const after = JSON.parse(readFileSync(path, "utf8"));
  assert.ok(after.copies[N10].hashed, "status still records the identities it took");
  assert.ok(
    JSON.parse(readFileSync(path, "utf8")).copies[N12],
    "status rewrote manifest.json from the copy it read at its start: N12's record is gone",
  );
});
