/**
 * The worker reader hands a worker that finished to the read waiting for a slot (a start costs
 * about 20 ms) and ends a worker with nothing to do, so a finished process can exit; it hashes
 * copies in workers too, and an interrupted hash is an interrupt, not an unreadable copy.
 */

import assert from "node:assert/strict";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { workerReader } from "../lib/db/reader.ts";
import { InterruptedError } from "../lib/run/errors.ts";
import { verifyCopy } from "../lib/recovery/manifest.ts";
import { sha256File } from "../lib/db/sha256.ts";

const script = new URL("./id_worker.ts", import.meta.url);

Deno.test("a waiting read takes the worker that finished; an idle worker is ended", async () => {
  const reader = workerReader(new AbortController().signal, { script, workers: 1 });
  const id = (p: Promise<unknown>) => p.then((r) => (r as { id: string }).id);
  // Three reads at once on one slot: the second and third wait, and get the first's worker.
  const ids = await Promise.all(["a", "b", "c"].map((p) => id(reader.status(p))));
  assert.equal(new Set(ids).size, 1, `one worker for all three: ${ids}`);
  // Nothing waited when the last one finished: it was ended, so the next read starts another.
  const later = await id(reader.status("d"));
  assert.notEqual(later, ids[0]);
  // Two slots: two workers side by side, the third read reuses one of them.
  const two = workerReader(new AbortController().signal, { script, workers: 2 });
  const side = await Promise.all(["a", "b", "c"].map((p) => id(two.status(p))));
  assert.equal(new Set(side).size, 2, `two workers for three reads: ${side}`);
});

Deno.test("the worker reader hashes a copy in a worker, the same sha256 as on this thread", async () => {
  const file = new URL("../fixtures/db/etcd-3.4.db", import.meta.url).pathname;
  const reader = workerReader(new AbortController().signal);
  assert.equal(await reader.sha256!(file), await sha256File(file));
  // It is the worker's answer: the id worker answers a sha256 like any other op.
  const ids = workerReader(new AbortController().signal, { script });
  assert.match((await ids.sha256!(file) as unknown as { id: string }).id, /^[0-9a-f-]{36}$/);
});

Deno.test("a sha256 check interrupted by Ctrl-C is an interrupt, not an unreadable copy", async () => {
  const out = join(Deno.makeTempDirSync(), "out");
  const body = "raw db";
  mkdirSync(join(out, "db.n1"), { recursive: true });
  writeFileSync(join(out, "db.n1", "db"), body);
  const manifest = {
    version: 1 as const,
    nodes: ["n1"],
    copies: {
      n1: { file: "db.n1/db", size: body.length, sha256: "x", copiedAt: "2026-12-04T00:00:00Z" },
    },
    failures: {},
  };
  const interrupted = () => Promise.reject(new InterruptedError("Interrupted while reading"));
  await assert.rejects(verifyCopy(out, manifest, "n1", interrupted), InterruptedError);
  const broken = () => Promise.reject(new Error("EIO"));
  assert.deepEqual(await verifyCopy(out, manifest, "n1", broken), {
    ok: false,
    reason: "unreadable: EIO",
  });
});
