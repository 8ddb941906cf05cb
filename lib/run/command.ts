/**
 * Running an external command (talosctl, etcdutl, kubectl) with a deadline and a journal
 * entry, and rendering argv exactly as bash will see it (the echoed and printed commands).
 */

import type { Ctx } from "./context.ts";
import { InterruptedError, StepError } from "./errors.ts";

/** Deadline of one talosctl call that only reads. */
export const CALL_TIMEOUT_MS = 60_000;

/** The least time a call inside a poll gets, even at the poll's deadline. */
export const MIN_CALL_MS = 10_000;

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

/** argv as one shell line, quoted exactly as the shell will see it. */
export function shellLine(argv: string[]): string {
  return argv.map(shellWord).join(" ");
}

/** Marks the seed in plans printed before the seed is known: `SEED=$(deno task status)`. */
export const SEED_VAR = "$SEED";

/**
 * One word for bash, quoted only when it needs it; a word holding `$SEED` is double-quoted so
 * the variable expands.
 */
export function shellWord(word: string): string {
  if (/^[A-Za-z0-9_./:,=@%+-]+$/.test(word)) return word;
  if (!word.includes(SEED_VAR)) return `'${word.replaceAll("'", `'\\''`)}'`;
  return `"${word.replace(/[\\"`]/g, "\\$&").replace(/\$(?!SEED)/g, "\\$")}"`;
}

export interface CallOptions {
  step: string;
  /** Changes the cluster: echoed before running, listed in the report. @default false */
  mutating?: boolean;
  /** Echo before running even though it does not change the cluster. @default false */
  echo?: boolean;
  /** @default CALL_TIMEOUT_MS */
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Return exit 127 (tool not installed) instead of throwing. @default false */
  allowMissing?: boolean;
}

/** Runs any command with a deadline; never throws on a non-zero exit. */
export async function runCommand(
  ctx: Ctx,
  node: string,
  argv: string[],
  options: CallOptions,
): Promise<RunResult> {
  const line = shellLine(argv);
  if (ctx.deps.signal.aborted) throw new InterruptedError(`Interrupted before running: ${line}`);
  if (options.mutating || options.echo) ctx.log.command(line);
  // a call inside a poll ends with the poll's deadline (but gets at least MIN_CALL_MS)
  const pollLeft = ctx.pollDeadline !== undefined
    ? Math.max(ctx.pollDeadline - ctx.deps.now(), MIN_CALL_MS)
    : Infinity;
  const timeoutMs = Math.min(
    options.timeoutMs ?? CALL_TIMEOUT_MS,
    pollLeft,
    ctx.deps.callDeadlineCapMs ?? Infinity,
  );
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = AbortSignal.any([ctx.deps.signal, deadline]);
  const started = ctx.deps.now();
  const env = options.env ? { ...ctx.deps.env, ...options.env } : undefined;
  // detached: on a deadline or Ctrl-C the whole process group is ended, wrappers included
  const out = await ctx.deps.$({
    signal,
    nothrow: true,
    quiet: true,
    env,
    detached: true,
  })`${argv}`;
  const result: RunResult = {
    code: out.exitCode,
    stdout: out.stdout,
    stderr: out.stderr,
    durationMs: ctx.deps.now() - started,
    timedOut: deadline.aborted && !ctx.deps.signal.aborted,
  };
  if (result.timedOut) {
    result.stderr += `\n(ended after its deadline of ${Math.round(timeoutMs / 1000)}s)`;
  }
  ctx.journal.record({
    type: "call",
    step: options.step,
    node,
    command: line,
    mutating: options.mutating ?? false,
    exitCode: result.code,
    durationMs: result.durationMs,
    stdout: result.stdout,
    stderr: result.stderr,
  });
  if (ctx.deps.signal.aborted) {
    throw new InterruptedError(`Interrupted while running: ${line}`);
  }
  if (
    !options.allowMissing && result.code === 127 &&
    /command not found|No such file/.test(result.stderr)
  ) {
    throw new StepError(`Cannot run "${argv[0]}": not found`, {
      hint: `install it or point the matching variable (TALOSCTL, ETCDUTL, KUBECTL) at it`,
    });
  }
  return result;
}

/** The last non-empty lines of a command's stderr, for error messages. */
export function tail(text: string, lines = 5): string {
  return text.split("\n").filter((l) => l.trim() !== "").slice(-lines).join("\n");
}

// ---- after the restore: Kubernetes nodes, Talos cluster members, pods and events ----------
