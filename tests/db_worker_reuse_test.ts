/**
 * The worker reader hands a worker that finished to the read waiting for a slot (a start costs
 * about 20 ms) and ends a worker with nothing to do, so a finished process can exit.
 */

import assert from "node:assert/strict";
import { workerReader } from "../lib/copies.ts";

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
