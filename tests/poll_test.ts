/**
 * poll(): the backoff schedule (look again after 1 s, then 2 s, 3 s, 4 s, capped at 5 s), a new
 * state starting it again, the last look on the deadline, never two looks less than a second
 * apart, and a fixed interval behaving as it always did. On the fake clock of tests/replay.ts.
 */

import assert from "node:assert/strict";
import type { Options } from "../lib/run/cli.ts";
import { createCtx } from "../lib/run/context.ts";
import { DeadlineError } from "../lib/run/errors.ts";
import {
  BACKOFF_MS,
  type Check,
  formatInterval,
  MIN_PAUSE_MS,
  pauseAfter,
  poll,
} from "../lib/run/poll.ts";
import { SERVICE_POLL_MS } from "../lib/talos/cluster.ts";
import { fakeWorld } from "./replay.ts";

/** A context on the fake clock; the journal is off (nothing is written). */
function world() {
  const w = fakeWorld([]);
  const ctx = createCtx("test", { out: "/nonexistent", dryRun: true } as Options, w.deps);
  return { w, ctx };
}

/** Polls with `states(n)` as the n-th look's answer (0-based); returns when each look ran. */
async function run(
  intervalMs: number | readonly number[],
  timeoutMs: number,
  states: (n: number) => Check<string>,
) {
  const { w, ctx } = world();
  const start = w.deps.now();
  const looks: number[] = [];
  let error: unknown;
  let value: string | undefined;
  try {
    value = await poll(ctx, {
      what: "the thing",
      intervalMs,
      timeoutMs,
      check: () => {
        looks.push(w.deps.now() - start);
        return Promise.resolve(states(looks.length - 1));
      },
    });
  } catch (e) {
    error = e;
  }
  return { looks, error, value, stderr: w.stderr() };
}

const waiting = (state = "Waiting"): Check<string> => ({ done: false, state });

Deno.test("the service polls back off: 1s, 2s, 3s, 4s, then every 5s", () => {
  assert.equal(SERVICE_POLL_MS, BACKOFF_MS);
  assert.deepEqual([1, 2, 3, 4, 5, 6, 7].map((n) => pauseAfter(BACKOFF_MS, n)), [
    1_000,
    2_000,
    3_000,
    4_000,
    5_000,
    5_000,
    5_000,
  ]);
  assert.equal(pauseAfter(5_000, 3), 5_000);
  assert.equal(formatInterval(BACKOFF_MS), "1s to 5s");
  assert.equal(formatInterval(5_000), "5s");
});

Deno.test("poll() notices a state reached soon after about a second, not after 5s", async () => {
  const r = await run(BACKOFF_MS, 60_000, (n) => n === 1 ? { done: true, value: "ok" } : waiting());
  assert.equal(r.value, "ok");
  assert.deepEqual(r.looks, [0, 1_000]);
  assert.match(r.stderr, /waiting for the thing \(every 1s to 5s, up to 1m\)/);
  assert.match(r.stderr, /ok: the thing: done after 1s/);
});

Deno.test("poll() backs off to 5s, looks last on the deadline, and says how often it looked", async () => {
  const r = await run(BACKOFF_MS, 22_000, () => waiting());
  assert.deepEqual(r.looks, [0, 1_000, 3_000, 6_000, 10_000, 15_000, 20_000, 22_000]);
  assert.ok(r.error instanceof DeadlineError);
  assert.equal(
    (r.error as Error).message,
    "Timed out waiting for the thing: deadline 22s (checked every 1s to 5s, 8 times over 22s; " +
      "last state: Waiting)",
  );
});

Deno.test("poll() starts the schedule again when the state changes", async () => {
  // Down for the first four looks (0, 1, 3, 6 s), then Preparing at 10 s: 1 s to the next look.
  const r = await run(BACKOFF_MS, 20_000, (n) => waiting(n < 4 ? "down" : "Preparing"));
  assert.deepEqual(r.looks, [0, 1_000, 3_000, 6_000, 10_000, 11_000, 13_000, 16_000, 20_000]);
  assert.match(r.stderr, /\[10s\] Preparing/);
});

Deno.test("poll() never looks twice within a second, even just before its deadline", async () => {
  // A state that changes at every look keeps the pauses at their shortest.
  const r = await run(BACKOFF_MS, 3_500, (n) => waiting(`state ${n}`));
  assert.deepEqual(r.looks, [0, 1_000, 2_000, 3_000]);
  for (let i = 1; i < r.looks.length; i++) {
    assert.ok(r.looks[i] - r.looks[i - 1] >= MIN_PAUSE_MS);
  }
  assert.ok(r.error instanceof DeadlineError);
  assert.match((r.error as Error).message, /4 times over 3s/);
});

Deno.test("poll() with a fixed interval looks at that pace and not past the deadline", async () => {
  const r = await run(5_000, 12_000, () => waiting());
  assert.deepEqual(r.looks, [0, 5_000, 10_000]);
  assert.match(r.stderr, /waiting for the thing \(every 5s, up to 12s\)/);
  assert.match((r.error as Error).message, /checked every 5s, 3 times over 10s; last state/);
});
