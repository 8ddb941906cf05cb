/**
 * Waiting with a deadline, and saying so: what is awaited, how often, for how long, and the
 * last state seen. Progress goes to stderr when the state changes and every
 * `HEARTBEAT_MS` while it does not.
 *
 * @example
 * ```ts ignore
 * await poll(ctx, {
 *   what: `etcd on "${seed}" to reach Preparing`,
 *   intervalMs: 5_000,
 *   timeoutMs: ctx.opts.timeoutMs,
 *   check: async () => ({ done: false, state: "Waiting" }),
 * });
 * ```
 */

import type { Ctx } from "./context.ts";
import { DeadlineError, InterruptedError } from "./errors.ts";

export const HEARTBEAT_MS = 30_000;

export type Check<T> = { done: true; value: T } | { done: false; state: string };

export interface PollOptions<T> {
  /** What is awaited, for messages: `etcd on "10.0.0.2" to reach Preparing`. */
  what: string;
  intervalMs: number;
  timeoutMs: number;
  check: () => Promise<Check<T>>;
}

/** `95_000` → `1m35s`. */
export function formatMs(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
}

const INTERRUPTED_SLEEP = "Interrupted while waiting";

/** Sleeps on the context's clock; an interrupt becomes `InterruptedError`. */
export async function pause(ctx: Ctx, ms: number): Promise<void> {
  try {
    await ctx.deps.sleep(ms, ctx.deps.signal);
  } catch (error) {
    if (ctx.deps.signal.aborted) throw new InterruptedError(INTERRUPTED_SLEEP);
    throw error;
  }
}

/** Calls `check` every `intervalMs` until it is done or `timeoutMs` has passed. */
export async function poll<T>(ctx: Ctx, o: PollOptions<T>): Promise<T> {
  const started = ctx.deps.now();
  let lastState = "";
  let lastReport = started;
  let attempts = 0;
  ctx.log.info(
    `waiting for ${o.what} (every ${formatMs(o.intervalMs)}, up to ${formatMs(o.timeoutMs)})`,
  );
  const owner = ctx.pollDeadline === undefined; // concurrent polls share the first deadline
  if (owner) ctx.pollDeadline = started + o.timeoutMs;
  try {
    return await loop();
  } catch (error) {
    // Ctrl-C/SIGTERM in the sleep or in a check: say what was being waited for, and how far.
    if (!(error instanceof InterruptedError) || error.message.includes(o.what)) throw error;
    throw new InterruptedError(
      `Interrupted while waiting for ${o.what}, after ${formatMs(ctx.deps.now() - started)} (${
        lastState ? `last state: ${lastState}` : "during its first check"
      })${
        error.message === INTERRUPTED_SLEEP ? "" : `; ${error.message.replace(/^Interrupted /, "")}`
      }`,
      { hint: error.hint },
    );
  } finally {
    if (owner) ctx.pollDeadline = undefined;
  }

  async function loop(): Promise<T> {
    while (true) {
      attempts++;
      const result = await o.check();
      const elapsed = ctx.deps.now() - started;
      if (result.done) {
        ctx.log.ok(`${o.what}: done after ${formatMs(elapsed)}`);
        return result.value;
      }
      if (result.state !== lastState || ctx.deps.now() - lastReport >= HEARTBEAT_MS) {
        ctx.log.info(`[${formatMs(elapsed)}] ${result.state}`);
        lastState = result.state;
        lastReport = ctx.deps.now();
      }
      if (elapsed + o.intervalMs > o.timeoutMs) {
        throw new DeadlineError(
          `Timed out waiting for ${o.what}: deadline ${formatMs(o.timeoutMs)} (checked every ${
            formatMs(o.intervalMs)
          }, ${attempts} times over ${formatMs(elapsed)}; last state: ${lastState})`,
        );
      }
      await pause(ctx, o.intervalMs);
    }
  }
}
