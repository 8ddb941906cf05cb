import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { nativeReader, workerReader } from "../lib/copies.ts";
import { EtcdDbError } from "../lib/etcd_db.ts";
import { InterruptedError } from "../lib/errors.ts";

const DB = (name: string) => new URL(`../fixtures/db/${name}`, import.meta.url).pathname;
const FIXTURES = [
  "etcd-3.4.db",
  "etcd-3.4.snapshot.db",
  "history-a.rev41.db",
  "history-b.rev46.db",
];

/** Whatever the reader did: its result, or its error's class, message and problems. */
async function outcome(read: () => Promise<unknown>): Promise<unknown> {
  try {
    return { result: await read() };
  } catch (error) {
    const e = error as Error;
    return {
      error: e.constructor.name,
      message: e.message,
      problems: e instanceof EtcdDbError ? e.problems : undefined,
    };
  }
}

Deno.test("the worker reader answers exactly like the reader on the main thread", async () => {
  const reader = workerReader(new AbortController().signal);
  for (const name of FIXTURES) {
    const path = DB(name);
    const span = await nativeReader.span(path);
    assert.deepEqual(await reader.span(path), span, name);
    const range = { uptoRevision: span.revision - 3, sinceRevision: span.compactRevision };
    assert.deepEqual(await reader.status(path, range), await nativeReader.status(path, range));
    assert.deepEqual(
      await reader.history(path, range.uptoRevision, range.sinceRevision),
      await nativeReader.history(path, range.uptoRevision, range.sinceRevision),
    );
  }
});

Deno.test("the worker reader reads copies side by side, each as on its own", async () => {
  const reader = workerReader(new AbortController().signal);
  const paths = FIXTURES.map(DB);
  const together = await Promise.all(paths.map((p) => reader.status(p)));
  for (const [i, p] of paths.entries()) assert.deepEqual(together[i], await nativeReader.status(p));
});

Deno.test("a damaged copy is refused with the same EtcdDbError as on the main thread", async () => {
  const dir = mkdtempSync(join(tmpdir(), "ter-worker-"));
  const bytes = readFileSync(DB("etcd-3.4.db"));
  const half = join(dir, "half.db");
  writeFileSync(half, bytes.subarray(0, bytes.length / 2));
  const zeroed = join(dir, "zeroed.db");
  const copy = new Uint8Array(bytes);
  copy.fill(0, 0, 4096 * 2); // both meta pages
  writeFileSync(zeroed, copy);
  const reader = workerReader(new AbortController().signal);
  for (const path of [half, zeroed, join(dir, "missing.db"), dir]) {
    const viaWorker = await outcome(() => reader.status(path));
    assert.deepEqual(viaWorker, await outcome(() => nativeReader.status(path)), path);
    assert.equal((viaWorker as { error?: string }).error, "EtcdDbError", path);
  }
});

Deno.test("Ctrl-C stops a read at once: InterruptedError, and no worker is left running", async () => {
  const controller = new AbortController();
  const reader = workerReader(controller.signal);
  const started = performance.now();
  const read = reader.status(DB("etcd-3.4.db"));
  controller.abort(new Error("received SIGINT"));
  await assert.rejects(
    read,
    (e) => e instanceof InterruptedError && /Interrupted while reading/.test(e.message),
  );
  assert.ok(performance.now() - started < 1000);
  // Once interrupted, no new read starts. (Deno's sanitizers fail this test on a live worker.)
  await assert.rejects(reader.span(DB("etcd-3.4.db")), InterruptedError);
});
