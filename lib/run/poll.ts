/**
 * Waiting with a deadline, and saying so: what is awaited, how often, for how long, and the
 * last state seen. Progress goes to stderr when the state changes and every
 * `HEARTBEAT_MS` while it does not.
 *
 * The interval is a fixed pause or a schedule of pauses (`BACKOFF_MS`: 1 s, 2 s, 3 s, 4 s, then
 * 5 s): an awaited state is noticed about a second after it is reached when it comes soon, and
 * a long wait costs a look every 5 s. A new state starts the schedule again (one state change
 * often announces the next: Waiting, then Preparing). The last look falls on the deadline.
 *
 * @example
 * ```ts ignore
 * await poll(ctx, {
 *   what: `etcd on "${seed}" to reach Preparing`,
 *   intervalMs: BACKOFF_MS,
 *   timeoutMs: ctx.opts.timeoutMs,
 *   check: async () => ({ done: false, state: "Waiting" }),
 * });
 * ```
 */

import type { Ctx } from "./context.ts";
import { DeadlineError, InterruptedError } from "./errors.ts";

export const HEARTBEAT_MS = 30_000;

/**
 * Pauses between two looks, in order; the last one repeats. A plain number is a fixed pause.
 */
export type Interval = number | readonly number[];

/**
 * Look again after 1 s, then back off by a second per look up to 5 s. Never shorter than
 * `MIN_PAUSE_MS`: at most one call per node per second.
 */
export const BACKOFF_MS: readonly number[] = [1_000, 2_000, 3_000, 4_000, 5_000];

/** The shortest pause between two looks, even before a deadline. */
export const MIN_PAUSE_MS = 1_000;

export type Check<T> = { done: true; value: T } | { done: false; state: string };

export interface PollOptions<T> {
  /** What is awaited, for messages: `etcd on "10.0.0.2" to reach Preparing`. */
  what: string;
  /** A fixed pause, or a schedule of pauses (`BACKOFF_MS`). */
  intervalMs: Interval;
  timeoutMs: number;
  check: () => Promise<Check<T>>;
}

/** The pause before look number `n + 1` (n ≥ 1 looks made since the schedule (re)started). */
export function pauseAfter(interval: Interval, n: number): number {
  if (typeof interval === "number") return interval;
  return interval[Math.min(n, interval.length) - 1];
}

/** `5s`, or `1s to 5s` for a schedule, for messages. */
export function formatInterval(interval: Interval): string {
  if (typeof interval === "number") return formatMs(interval);
  const lo = Math.min(...interval);
  const hi = Math.max(...interval);
  return lo === hi ? formatMs(lo) : `${formatMs(lo)} to ${formatMs(hi)}`;
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

/**
 * Calls `check` after each pause of `intervalMs` until it is done or `timeoutMs` has passed;
 * the last pause is cut short to look once more at the deadline (but never below
 * `MIN_PAUSE_MS` for a schedule).
 */
export async function poll<T>(ctx: Ctx, o: PollOptions<T>): Promise<T> {
  const started = ctx.deps.now();
  const every = formatInterval(o.intervalMs);
  let lastState = "";
  let lastReport = started;
  let attempts = 0;
  /** Looks since the schedule started, or since the state last changed. */
  let sinceChange = 0;
  ctx.log.info(`waiting for ${o.what} (every ${every}, up to ${formatMs(o.timeoutMs)})`);
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
      sinceChange++;
      const result = await o.check();
      const elapsed = ctx.deps.now() - started;
      if (result.done) {
        ctx.log.ok(`${o.what}: done after ${formatMs(elapsed)}`);
        return result.value;
      }
      if (result.state !== lastState) {
        if (attempts > 1) sinceChange = 1; // a new state: look again soon
      }
      if (result.state !== lastState || ctx.deps.now() - lastReport >= HEARTBEAT_MS) {
        ctx.log.info(`[${formatMs(elapsed)}] ${result.state}`);
        lastState = result.state;
        lastReport = ctx.deps.now();
      }
      const next = nextPause(o, sinceChange, o.timeoutMs - elapsed);
      if (next === undefined) {
        throw new DeadlineError(
          `Timed out waiting for ${o.what}: deadline ${
            formatMs(o.timeoutMs)
          } (checked every ${every}, ${attempts} times over ${
            formatMs(elapsed)
          }; last state: ${lastState})`,
        );
      }
      await pause(ctx, next);
    }
  }
}

/**
 * The pause before the next look, cut to the time `left` before the deadline so the last look
 * falls on it; undefined when no look fits any more. A fixed interval keeps its old rule: no
 * look that would come after the deadline.
 */
function nextPause<T>(o: PollOptions<T>, n: number, left: number): number | undefined {
  const wanted = pauseAfter(o.intervalMs, n);
  if (typeof o.intervalMs === "number") return wanted > left ? undefined : wanted;
  if (left < MIN_PAUSE_MS) return undefined;
  return Math.min(wanted, left);
}
