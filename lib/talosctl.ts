/**
 * talosctl: the exact command lines of the runbook, and one function that runs them.
 *
 * Every call names its node as both endpoint and node (`-e N -n N`): the VIP must never be
 * the endpoint, and a recovering cluster has no other reliable one. Mutating calls are echoed
 * before they run, pasteable. Every call is journaled and has a deadline.
 */

import type { Ctx } from "./context.ts";
import { CommandError, InterruptedError, StepError } from "./errors.ts";
import { tail } from "./parse.ts";

/** Where etcd keeps its bbolt file on a Talos node. */
export const ETCD_DB_PATH = "/var/lib/etcd/member/snap/db";
/** Deadline of one talosctl call that only reads. */
export const CALL_TIMEOUT_MS = 60_000;
/** The least time a call inside a poll gets, even at the poll's deadline. */
export const MIN_CALL_MS = 10_000;
/** Deadline of one `cp` (a large db over a slow link). */
export const COPY_TIMEOUT_MS = 15 * 60_000;

/** The talosctl subcommands of the runbook (what follows `-e N -n N`). */
export const sub = {
  copyDb: (dir: string) => ["cp", ETCD_DB_PATH, dir],
  serviceEtcd: () => ["service", "etcd"],
  reset: (labels: string[] = ["EPHEMERAL"]) => [
    "reset",
    ...labels.flatMap((l) => ["--system-labels-to-wipe", l]),
    "--graceful=false",
    "--reboot",
    "--wait=false",
  ],
  bootstrap: (file: string) => ["bootstrap", `--recover-from=${file}`, "--recover-skip-hash-check"],
  alarmList: () => ["etcd", "alarm", "list"],
  alarmDisarm: () => ["etcd", "alarm", "disarm"],
  members: () => ["etcd", "members"],
  reboot: () => ["reboot", "--wait=false"],
  addresses: () => ["get", "addresses"],
  version: () => ["version"],
  etcdVolume: () => ["get", "volumestatus", "ETCD"],
};

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  durationMs: number;
  timedOut: boolean;
}

/** talosctl and the flags of every call (`--talosconfig`), before `-e N -n N`. */
export function talosBase(ctx: Ctx): string[] {
  const tc = ctx.opts.talosconfig ? ["--talosconfig", ctx.opts.talosconfig] : [];
  return [ctx.opts.talosctl, ...tc];
}

/** The full argv of a talosctl call against `node`. */
export function talosArgv(ctx: Ctx, node: string, args: string[]): string[] {
  return [...talosBase(ctx), "-e", node, "-n", node, ...args];
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

/** Runs `talosctl -e node -n node …args`; never throws on a non-zero exit. */
export function talos(
  ctx: Ctx,
  node: string,
  args: string[],
  options: CallOptions,
): Promise<RunResult> {
  return runCommand(ctx, node, talosArgv(ctx, node, args), options);
}

/** Like `talos`, but a non-zero exit or a deadline is a `CommandError` with the stderr tail. */
export async function talosOk(
  ctx: Ctx,
  node: string,
  args: string[],
  options: CallOptions,
): Promise<string> {
  const r = await talos(ctx, node, args, options);
  if (r.code !== 0) throw commandFailure(ctx, node, args, r);
  return r.stdout;
}

export function commandFailure(
  ctx: Ctx,
  node: string,
  args: string[],
  r: RunResult,
  hint?: string,
): CommandError {
  const what = r.timedOut ? "did not answer in time" : `failed (exit ${r.code ?? "signal"})`;
  return new CommandError(
    `talosctl ${args.join(" ")} on "${node}" ${what}: ${tail(r.stderr, 3) || "(no output)"}`,
    shellLine(talosArgv(ctx, node, args)),
    r.code,
    r.stderr,
    { hint },
  );
}
