import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { join } from "node:path";
import { nativeReader, Slots, workerReader } from "../lib/db/reader.ts";
import { EtcdDbError } from "../lib/db/etcd_db.ts";
import { InterruptedError } from "../lib/run/errors.ts";

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

/** CPU milliseconds this process spends over the next `ms` of wall time (idle: about 0). */
async function cpuOver(ms: number): Promise<number> {
  const start = process.cpuUsage();
  await new Promise((r) => setTimeout(r, ms));
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

Deno.test("Ctrl-C stops a running read at once: InterruptedError, and its worker is terminated", async () => {
  const controller = new AbortController();
  const script = new URL("./busy_worker.ts", import.meta.url);
  const reader = workerReader(controller.signal, { script });
  const path = join(mkdtempSync(join(tmpdir(), "ter-worker-")), "etcd-3.4.db");
  const read = reader.status(path);
  read.catch(() => {}); // asserted below
  // Up and spinning (its first start may include a type check, which terminate() cannot stop).
  for (let waited = 0; !existsSync(`${path}.spinning`); waited += 20) {
    assert.ok(waited < 30_000, "the busy worker never started");
    await new Promise((r) => setTimeout(r, 20));
  }
  const during = await cpuOver(300);
  assert.ok(during > 100, "the worker spins");
  const aborted = performance.now();
  controller.abort(new Error("received SIGINT"));
  await assert.rejects(
    read,
    (e) =>
      e instanceof InterruptedError && /Interrupted while reading .*etcd-3\.4\.db/.test(e.message),
  );
  assert.ok(performance.now() - aborted < 1000);
  await new Promise((r) => setTimeout(r, 100));
  const after = await cpuOver(300);
  assert.ok(after < 100, "nothing spins any more: the worker is gone");
  // Once interrupted, no new read starts, fast path included.
  await assert.rejects(reader.status(DB("etcd-3.4.db")), InterruptedError);
  await assert.rejects(reader.span(DB("etcd-3.4.db")), InterruptedError);
});

Deno.test("Slots runs at most its size at once, the rest in order", async () => {
  const slots = new Slots(2);
  let running = 0;
  let most = 0;
  const started: number[] = [];
  const release: (() => void)[] = [];
  const tasks = [0, 1, 2, 3, 4].map((i) =>
    slots.run(async () => {
      started.push(i);
      most = Math.max(most, ++running);
      await new Promise<void>((r) => release.push(r));
      running--;
      return i;
    })
  );
  while (started.length < 5) {
    await new Promise((r) => setTimeout(r, 1));
    release.shift()?.();
  }
  release.forEach((r) => r());
  assert.deepEqual(await Promise.all(tasks), [0, 1, 2, 3, 4]);
  assert.equal(most, 2);
  assert.deepEqual(started, [0, 1, 2, 3, 4]);
});
